// Chapters of a recording on the watch page (issue 18): markers on a timeline under the video and a
// chapter list; clicking either seeks. Chapters are rows of nchat_stream_chapters (readable with the
// stream), the same ones the server writes into the VOD playlists (EXT-X-DATERANGE) and chapters.vtt.
import { gql } from "./api";
import { h } from "./ui";

export interface ChapterRow {
  id: string;
  start_seconds: number;
  title: string;
  source: string;
}

export async function chapters(streamId: string): Promise<ChapterRow[]> {
  const data = await gql<{ nchat_stream_chapters: ChapterRow[] }>(
    `query Chapters($id: uuid!) {
      nchat_stream_chapters(where: {stream_id: {_eq: $id}}, order_by: [{start_seconds: asc}, {created_at: asc}]) {
        id start_seconds title source
      }
    }`,
    { id: streamId },
  );
  return data.nchat_stream_chapters;
}

// Kept here rather than in style.css: the chapter view is this module's alone.
const STYLE = `
.chapters { margin-top: .75rem; }
.chapters h2 { font-size: 1rem; margin: 0 0 .4rem; }
.chapter-timeline { position: relative; height: .6rem; border-radius: .3rem; background: rgba(127,127,127,.25); }
.chapter-marker { position: absolute; top: -.2rem; width: .5rem; height: 1rem; margin-left: -.25rem; padding: 0;
  border: none; border-radius: .15rem; background: var(--accent, #4f7cff); cursor: pointer; }
.chapter-marker.active { outline: 2px solid currentColor; }
.chapter-list { margin: .5rem 0 0; padding-left: 1.4rem; }
.chapter-list button.active { font-weight: 600; }
`;

function addStyle(): void {
  if (document.getElementById("chapters-style")) return;
  document.head.append(h("style", { id: "chapters-style" }, STYLE));
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const mm = Math.floor(s / 60);
  return `${mm}:${String(s % 60).padStart(2, "0")}`;
}

/** Shows the chapters of `streamId`'s recording beside `video` (once; again after `refresh()`). */
export function mountChapters(host: HTMLElement, video: HTMLVideoElement, streamId: string): { refresh: () => void } {
  addStyle();
  const box = h("section", { class: "chapters", "data-testid": "chapters", "aria-label": "Chapters" });
  box.hidden = true;
  host.append(box);
  let rows: ChapterRow[] = [];

  const current = (): void => {
    const at = video.currentTime;
    let active = -1;
    rows.forEach((row, i) => { if (row.start_seconds <= at + 0.05) active = i; });
    box.querySelectorAll<HTMLElement>("[data-index]").forEach((node) => {
      node.classList.toggle("active", Number(node.dataset.index) === active);
    });
  };

  const render = (): void => {
    box.replaceChildren();
    if (!rows.length) { box.hidden = true; return; }
    box.hidden = false;
    const duration = Number.isFinite(video.duration) && video.duration > 0
      ? video.duration : Math.max(...rows.map((r) => r.start_seconds)) + 1;
    const seek = (row: ChapterRow) => () => {
      video.currentTime = row.start_seconds;
      current();
    };
    const bar = h("div", { class: "chapter-timeline", "data-testid": "chapter-timeline" });
    rows.forEach((row, i) => {
      const left = Math.min(100, (100 * row.start_seconds) / duration);
      const marker = h("button", {
        type: "button", class: "chapter-marker", "data-index": i, title: `${clock(row.start_seconds)} ${row.title}`,
        "aria-label": `Chapter ${row.title} at ${clock(row.start_seconds)}`, style: `left: ${left.toFixed(2)}%`,
        onclick: seek(row),
      });
      bar.append(marker);
    });
    const list = h("ol", { class: "chapter-list" });
    rows.forEach((row, i) => {
      list.append(h("li", {},
        h("button", { type: "button", class: "link", "data-index": i, "data-testid": "chapter",
          onclick: seek(row) }, `${clock(row.start_seconds)} ${row.title}`)));
    });
    box.append(h("h2", {}, "Chapters"), bar, list);
    current();
  };

  const refresh = (): void => {
    chapters(streamId).then((found) => { rows = found; render(); }).catch(() => {
      // Chapters are an extra: a failure only leaves them out.
    });
  };
  video.addEventListener("loadedmetadata", render);
  video.addEventListener("timeupdate", current);
  refresh();
  return { refresh };
}

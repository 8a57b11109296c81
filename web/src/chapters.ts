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
  return (await chaptersAndLength(streamId)).rows;
}

/** The chapters, and the full recording's length (seconds; null while there is none). */
async function chaptersAndLength(streamId: string): Promise<{ rows: ChapterRow[]; length: number | null }> {
  const data = await gql<{
    nchat_stream_chapters: ChapterRow[];
    nchat_stream_recordings: { duration_seconds: number | null }[];
  }>(
    `query Chapters($id: uuid!) {
      nchat_stream_chapters(where: {stream_id: {_eq: $id}}, order_by: [{start_seconds: asc}, {created_at: asc}]) {
        id start_seconds title source
      }
      nchat_stream_recordings(where: {stream_id: {_eq: $id}, kind: {_eq: "full"}}, limit: 1) { duration_seconds }
    }`,
    { id: streamId },
  );
  const length = data.nchat_stream_recordings[0]?.duration_seconds;
  return { rows: data.nchat_stream_chapters, length: length ? Number(length) : null };
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
  let length: number | null = null;

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
      ? video.duration : length ?? Math.max(...rows.map((r) => r.start_seconds)) + 1;
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
    chaptersAndLength(streamId).then((found) => {
      rows = found.rows;
      length = found.length;
      render();
    }).catch(() => {
      // Chapters are an extra: a failure only leaves them out.
    });
  };
  video.addEventListener("loadedmetadata", render);
  video.addEventListener("timeupdate", current);
  refresh();
  return { refresh };
}

// ---- console: the broadcaster's highlights and chapters ----------------------------------------

interface HighlightRow {
  id: string;
  title: string;
  status: string;
  startSeconds: number;
  endSeconds: number;
  peakSeconds: number;
}

const HIGHLIGHT_FIELDS = "id title status startSeconds endSeconds peakSeconds";

/** The console's panel after `after`: suggested highlights to keep or discard, and the chapters to edit.
 *  Returns a function that removes it. */
export function mountHighlightsEditor(after: HTMLElement, streamId: string): () => void {
  addStyle();
  const box = h("section", { class: "highlights-editor", "data-testid": "highlights-editor" });
  const msg = h("p", { class: "msg", hidden: true });
  const highlightList = h("ul", { class: "highlight-list" });
  const chapterList = h("ol", { class: "chapter-list" });
  const newTitle = h("input", { placeholder: "Chapter title", maxlength: 200, "aria-label": "New chapter title" });
  const newStart = h("input", { type: "number", min: 0, step: 1, value: 0, "aria-label": "New chapter start (s)",
    style: "width: 6rem" });
  after.after(box);

  const fail = (err: unknown): void => {
    msg.hidden = false;
    msg.textContent = (err as Error).message;
  };
  const load = async (): Promise<void> => {
    const data = await gql<{ streamHighlights: HighlightRow[] }>(
      `query H($id: ID!) { streamHighlights(streamId: $id) { ${HIGHLIGHT_FIELDS} } }`, { id: streamId });
    highlightList.replaceChildren(...data.streamHighlights.map((row) => h("li", { "data-testid": "highlight" },
      `${clock(row.startSeconds)}–${clock(row.endSeconds)} ${row.title} `,
      h("span", { class: "badge" }, row.status), " ",
      h("button", { type: "button", class: "link", disabled: row.status === "kept",
        onclick: () => void decide(row.id, "kept") }, "Keep"),
      h("button", { type: "button", class: "link danger", disabled: row.status === "discarded",
        onclick: () => void decide(row.id, "discarded") }, "Discard"))));
    const rows = await chapters(streamId);
    chapterList.replaceChildren(...rows.map((row) => {
      const title = h("input", { value: row.title, maxlength: 200, "aria-label": "Chapter title" });
      const start = h("input", { type: "number", min: 0, step: 1, value: row.start_seconds, style: "width: 6rem",
        "aria-label": "Chapter start (s)" });
      return h("li", { "data-testid": "chapter-edit" }, start, " ", title, " ",
        h("button", { type: "button", class: "link", onclick: () => void run(
          `mutation U($id: ID!, $t: String, $s: Float) { updateChapter(id: $id, title: $t, startSeconds: $s) { id } }`,
          { id: row.id, t: title.value, s: Number(start.value) }) }, "Save"),
        h("button", { type: "button", class: "link danger", onclick: () => void run(
          "mutation R($id: ID!) { removeChapter(id: $id) }", { id: row.id }) }, "Remove"));
    }));
  };
  const run = async (query: string, variables: Record<string, unknown>): Promise<void> => {
    try {
      msg.hidden = true;
      await gql(query, variables);
      await load();
    } catch (err) {
      fail(err);
    }
  };
  const decide = (id: string, status: string): Promise<void> =>
    run("mutation D($id: ID!, $s: String!) { setHighlightStatus(id: $id, status: $s) { id } }", { id, s: status });

  box.append(
    h("h2", {}, "Highlights"),
    h("button", { type: "button", class: "secondary", "data-testid": "detect-highlights", onclick: () => void run(
      "mutation F($id: ID!) { detectHighlights(streamId: $id) { id } }", { id: streamId }) }, "Find highlights"),
    highlightList,
    h("h2", {}, "Chapters"),
    chapterList,
    h("div", { class: "row" }, newStart, newTitle, h("button", { type: "button", onclick: () => void run(
      "mutation A($id: ID!, $s: Float!, $t: String!) { addChapter(streamId: $id, startSeconds: $s, title: $t) { id } }",
      { id: streamId, s: Number(newStart.value), t: newTitle.value }) }, "Add chapter")),
    msg,
  );
  load().catch(fail);
  return () => box.remove();
}

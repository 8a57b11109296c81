// Reaction buttons and the floating emoji over the video. Reactions arrive on the server's batched
// `reactions` subscription; if that is refused, new rows of the reactions table are used instead.
import { getToken } from "./api";
import { EMOJIS, reactionEvents, sendReaction, watchReactions } from "./ops";
import { h, say } from "./ui";

interface Shown {
  id: string;
  emoji: string;
  x: number | null;
}

export function mountReactions(
  bar: HTMLElement,
  overlay: HTMLElement,
  msg: HTMLElement,
  streamId: string,
  interactive: boolean,
): () => void {
  if (interactive) {
    bar.replaceChildren(...EMOJIS.map((emoji) => h("button", {
      type: "button", class: "reaction", "aria-label": `React ${emoji}`, "data-emoji": emoji,
      onclick: async () => {
        if (!getToken()) return say(msg, "Sign in to react.", "warn");
        try {
          await sendReaction(streamId, emoji, Math.round(10 + Math.random() * 80), 90);
        } catch (err) {
          say(msg, `Reaction not sent: ${(err as Error).message}`, "error");
        }
      },
    }, emoji)));
  }
  const recent = h("span", { class: "recent", "data-testid": "recent-reactions", "aria-label": "Recent reactions" });
  bar.append(recent);
  const seen = new Set<string>();
  const latest: string[] = [];
  const show = (rows: Shown[], animate: boolean): void => {
    for (const row of rows) {
      if (seen.has(row.id)) continue;
      seen.add(row.id);
      latest.unshift(row.emoji);
      if (animate) float(overlay, row);
    }
    latest.length = Math.min(latest.length, 8);
    recent.textContent = latest.join(" ");
  };

  let stop = reactionEvents(
    streamId,
    (batch) => show(batch.map((r) => ({ id: r.id, emoji: r.emoji, x: r.positionX })), true),
    () => {
      stop();
      let first = true;
      stop = watchReactions(streamId, (rows) => {
        // The first snapshot is history: listed, not floated.
        show(rows.slice().reverse().map((r) => ({ id: r.id, emoji: r.emoji, x: r.position_x })), !first);
        first = false;
      });
    },
  );
  return () => stop();
}

function float(overlay: HTMLElement, row: Shown): void {
  const node = h("span", { class: "float", "data-testid": "floating-reaction", "aria-hidden": "true" }, row.emoji);
  node.style.left = `${row.x ?? 10 + Math.random() * 80}%`;
  overlay.append(node);
  setTimeout(() => node.remove(), 3000);
}

// Reaction buttons and the floating emoji over the video. Every new reaction row seen on the live
// view floats once, at the position the sender clicked (or a random one).
import { getToken } from "./api";
import { EMOJIS, type ReactionRow, sendReaction, watchReactions } from "./ops";
import { h, say } from "./ui";

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
        const x = 10 + Math.random() * 80;
        try {
          await sendReaction(streamId, emoji, Math.round(x), 90);
        } catch (err) {
          say(msg, `Reaction not sent: ${(err as Error).message}`, "error");
        }
      },
    }, emoji)));
  }
  const recent = h("span", { class: "recent", "data-testid": "recent-reactions", "aria-label": "Recent reactions" });
  bar.append(recent);
  const seen = new Set<string>();
  let first = true;
  return watchReactions(streamId, (rows: ReactionRow[]) => {
    for (const row of rows.slice().reverse()) {
      if (seen.has(row.id)) continue;
      seen.add(row.id);
      // The first snapshot is history; only what arrives after it floats.
      if (!first) float(overlay, row);
    }
    recent.textContent = rows.slice(0, 8).map((r) => r.emoji).join(" ");
    first = false;
  }, () => undefined);
}

function float(overlay: HTMLElement, row: ReactionRow): void {
  const x = row.position_x ?? 10 + Math.random() * 80;
  const node = h("span", { class: "float", "data-testid": "floating-reaction", "aria-hidden": "true" }, row.emoji);
  node.style.left = `${x}%`;
  overlay.append(node);
  setTimeout(() => node.remove(), 3000);
}

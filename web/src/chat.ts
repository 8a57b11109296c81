// The chat panel: a live list of the last 50 messages, a composer, and (for the broadcaster or a
// moderator) pin and delete on each message.
import { claims, getToken } from "./api";
import {
  type ChatRow, deleteChatMessage, pinChatMessage, sendChatMessage, watchChat,
} from "./ops";
import { h, say } from "./ui";

export interface ChatOptions {
  streamId: string;
  moderate: boolean;
}

export function mountChat(root: HTMLElement, opts: ChatOptions): () => void {
  const pinned = h("div", { class: "pinned", "data-testid": "pinned", hidden: true });
  const list = h("ol", { class: "chat-list", "aria-live": "polite", "aria-label": "Chat messages",
    "data-testid": "chat-list" });
  const input = h("input", { id: `chat-input`, maxlength: 500, autocomplete: "off", placeholder: "Say something…" });
  const button = h("button", { type: "submit" }, "Send");
  const msg = h("p", { class: "msg", hidden: true });
  const form = h("form", { class: "composer", "aria-label": "Send a chat message" },
    h("label", { for: "chat-input", class: "sr-only" }, "Chat message"), input, button);
  root.replaceChildren(h("h2", {}, "Chat"), pinned, list, form, msg);

  const me = (): string | null => claims()?.userId ?? null;
  const refreshComposer = (): void => {
    const signedIn = Boolean(getToken());
    input.disabled = !signedIn;
    button.disabled = !signedIn;
    input.placeholder = signedIn ? "Say something…" : "Sign in to chat";
  };
  refreshComposer();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const content = input.value.trim();
    if (!content) return;
    button.disabled = true;
    try {
      await sendChatMessage(opts.streamId, content);
      input.value = "";
      say(msg, "");
    } catch (err) {
      say(msg, `Message not sent: ${(err as Error).message}`, "error");
    } finally {
      button.disabled = false;
      input.focus();
    }
  });

  const act = async (fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      say(msg, (err as Error).message, "error");
    }
  };

  const render = (rows: ChatRow[]): void => {
    refreshComposer();
    const visible = rows.filter((r) => !r.is_deleted).reverse();
    const pin = visible.find((r) => r.is_pinned);
    pinned.hidden = !pin;
    pinned.replaceChildren(...(pin ? [h("strong", {}, "📌 Pinned: "), `${author(pin)}: ${pin.content}`] : []));
    list.replaceChildren(
      ...visible.map((row) => {
        const tools = opts.moderate || row.user_id === me()
          ? h("span", { class: "tools" },
            opts.moderate
              ? h("button", { type: "button", class: "link", "aria-label": `${row.is_pinned ? "Unpin" : "Pin"} message`,
                onclick: () => act(() => pinChatMessage(row.id, !row.is_pinned)) }, row.is_pinned ? "Unpin" : "Pin")
              : null,
            h("button", { type: "button", class: "link danger", "aria-label": "Delete message",
              onclick: () => act(() => deleteChatMessage(row.id)) }, "Delete"))
          : null;
        // A held or denied message reaches only its author and the moderators (RLS): say so.
        const status = row.status && row.status !== "visible"
          ? h("span", { class: "badge", "data-testid": "chat-status" },
            row.status === "held" ? "held for review" : "not published")
          : null;
        return h("li", { "data-id": row.id, "data-status": row.status ?? "visible",
          class: row.is_pinned ? "is-pinned" : "" },
        h("span", { class: "author" }, author(row)), " ",
        h("span", { class: "content" }, row.content), status, tools);
      }),
    );
    list.scrollTop = list.scrollHeight;
  };
  return watchChat(opts.streamId, render, (err) => say(msg, `Chat unavailable: ${err.message}`, "warn"));
}

function author(row: ChatRow): string {
  return row.user?.display_name || row.user?.username || "viewer";
}

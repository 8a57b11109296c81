// Small DOM helpers shared by the pages: element builder, messages, sign-in bar, connection banner.
import { claims, getToken, gql, onSocketState, setToken } from "./api";

type Attrs = Record<string, string | number | boolean | EventListener | undefined>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") node.addEventListener(key.replace(/^on/, ""), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

export function $(selector: string): HTMLElement {
  const node = document.querySelector<HTMLElement>(selector);
  if (!node) throw new Error(`page is missing ${selector}`);
  return node;
}

export type Tone = "info" | "ok" | "warn" | "error";

/** Shows a message in a live region (errors as alerts so screen readers announce them). */
export function say(target: HTMLElement, text: string, tone: Tone = "info"): void {
  target.textContent = text;
  target.dataset.tone = tone;
  target.hidden = !text;
  target.setAttribute("role", tone === "error" ? "alert" : "status");
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  const two = (n: number): string => n.toString().padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
}

export function streamIdFromPath(): string {
  const parts = location.pathname.split("/").filter(Boolean);
  return decodeURIComponent(parts[parts.length - 1] ?? "");
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The sign-in bar: paste a development token (`nchat-live token` or `seed-demo` prints one). */
export function mountAuth(container: HTMLElement, onChange: () => void, optional = false): void {
  const render = (): void => {
    container.replaceChildren();
    const token = getToken();
    const who = claims(token);
    if (token && who) {
      const expired = who.expiresAt !== null && who.expiresAt * 1000 < Date.now();
      const label = h("span", { class: "who", "data-testid": "signed-in" },
        expired ? "Token expired — sign in again" : `Signed in as ${who.userId ?? "?"} (${who.role})`);
      if (!expired && who.userId) {
        gql<{ nchat_users_by_pk: { display_name: string | null; username: string } | null }>(
          "query Me($id: uuid!) { nchat_users_by_pk(id: $id) { display_name username } }", { id: who.userId },
        ).then((d) => {
          const me = d.nchat_users_by_pk;
          if (me) label.textContent = `Signed in as ${me.display_name || me.username} (@${me.username}, ${who.role})`;
        }).catch(() => undefined);
      }
      container.append(
        label,
        h("button", { type: "button", class: "link", onclick: () => { setToken(null); render(); onChange(); } },
          "Sign out"),
      );
      return;
    }
    const input = h("input", {
      id: "token-input", type: "password", autocomplete: "off", placeholder: "Paste a JWT",
      "aria-describedby": "token-help", required: true,
    });
    const error = h("span", { class: "msg", hidden: true });
    const form = h("form", { class: "signin", "aria-label": "Sign in" },
      h("label", { for: "token-input" }, "Development token"),
      input,
      h("button", { type: "submit" }, "Sign in"),
      h("small", { id: "token-help" }, optional
        ? "Optional: sign in to chat, react and ask questions."
        : "Run `nchat-live token --user-id <id>` or `nchat-live seed-demo` and paste the token."),
      error,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!claims(value)) {
        say(error, "That is not a JWT (three base64url parts separated by dots).", "error");
        input.focus();
        return;
      }
      setToken(value);
      render();
      onChange();
    });
    container.append(form);
  };
  render();
}

/** A banner that says when the realtime connection drops and when it is back. */
export function mountConnectionBanner(banner: HTMLElement): void {
  onSocketState((state, detail) => {
    if (state === "reconnecting") {
      say(banner, `Connection lost — reconnecting…${detail ? ` (${detail})` : ""}`, "warn");
    } else if (state === "closed") {
      say(banner, `Live updates are unavailable${detail ? `: ${detail}` : ""}. Retrying…`, "warn");
    } else if (state === "connected") {
      say(banner, "", "info");
    }
  });
  window.addEventListener("offline", () => say(banner, "Network lost — waiting to reconnect…", "warn"));
  window.addEventListener("online", () => say(banner, "Network is back — reconnecting…", "info"));
}

// /schedule: upcoming and live streams; viewers opt into reminders, broadcasters jump to the console.
import "./style.css";
import { claims, getToken } from "./api";
import { cancelStream, remindMe, upcomingStreams } from "./ops";
import { $, h, mountAuth, mountConnectionBanner, say } from "./ui";

const list = $("#schedule-list");
const msg = $("#schedule-msg");

mountConnectionBanner($("#banner"));
mountAuth($("#auth"), () => void load(), true);

async function load(): Promise<void> {
  const me = claims()?.userId ?? null;
  let rows;
  try {
    rows = await upcomingStreams();
  } catch (err) {
    say(msg, `The schedule could not be loaded: ${(err as Error).message}`, "error");
    return;
  }
  say(msg, rows.length ? "" : "Nothing scheduled yet. Schedule a stream from the console.", "info");
  list.replaceChildren(...rows.map((s) => {
    const when = s.status === "live" ? "Live now" : s.scheduled_at ? new Date(s.scheduled_at).toLocaleString() : "Not set";
    const mine = me !== null && s.broadcaster_id === me;
    const actions = h("div", { class: "actions" },
      h("a", { href: `/watch/${s.id}`, class: "button" }, s.status === "live" ? "Watch" : "Open"),
      mine ? h("a", { href: `/console?stream=${s.id}`, class: "button" }, "Go to console") : null,
      !mine && getToken() && me && s.status === "scheduled"
        ? h("button", { type: "button", onclick: async (ev: Event) => {
          const button = ev.currentTarget as HTMLButtonElement;
          try {
            await remindMe(s.id);
            button.textContent = "Reminder set";
            button.disabled = true;
          } catch (err) {
            say(msg, `Reminder not set: ${(err as Error).message}`, "error");
          }
        } }, "Remind me")
        : null,
      mine && s.status === "scheduled"
        ? h("button", { type: "button", class: "danger", onclick: async () => {
          try {
            await cancelStream(s.id);
            await load();
          } catch (err) {
            say(msg, `Not cancelled: ${(err as Error).message}`, "error");
          }
        } }, "Cancel")
        : null,
    );
    return h("li", { class: "card" },
      h("time", { datetime: s.scheduled_at ?? "" }, when),
      h("h3", {}, s.title),
      h("p", { class: "muted" }, `${s.channel?.name ?? ""}${s.description ? ` — ${s.description}` : ""}`),
      actions);
  }));
}

void load();

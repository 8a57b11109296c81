// /guest: a guest speaker's page. Sign in, see your invitations, accept or decline; join an accepted one
// (camera preview, then a WHIP publish with a stream-scoped guest token as the Bearer), leave (stop
// publishing; join again any time while invited), or withdraw from the stream.
import "./style.css";
import { claims, getToken, gql, live } from "./api";
import { fromRow, GUEST_ROW, type GuestRow, type StreamGuest } from "./guests";
import { $, h, mountAuth, mountConnectionBanner, say } from "./ui";
import { publish, WhipError, type WhipSession } from "./whip";

const list = $("#invitations");
const preview = $("#preview") as HTMLVideoElement;
const leaveButton = $("#leave") as HTMLButtonElement;
const stageMsg = $("#stage-msg");
const stageStream = $("#stage-stream");

let media: MediaStream | null = null;
let session: WhipSession | null = null;
let joined: StreamGuest | null = null;
let retries = 0;

mountConnectionBanner($("#banner"));
mountAuth($("#auth"), () => void refresh());

let following: { userId: string; stop: () => void } | null = null;
let shown: StreamGuest[] = [];

function render(items: StreamGuest[]): void {
  const rows = items.map((g) => h("li", { "data-testid": "invitation" },
    h("strong", {}, g.streamTitle ?? "A stream"), " ",
    h("span", { class: "badge", "data-status": g.status, role: "status" }, g.status), " ",
    g.muted ? h("span", { class: "badge" }, "muted by the host") : null,
    h("small", { class: "muted" }, ` stream ${g.streamStatus ?? "?"}`),
    h("div", { class: "actions" },
      ...(g.status === "invited" ? [
        h("button", { type: "button", onclick: () => void respond(g, true) }, "Accept"),
        h("button", { type: "button", class: "secondary", onclick: () => void respond(g, false) }, "Decline"),
      ] : [
        h("button", { type: "button", disabled: joined?.id === g.id, onclick: () => void join(g) }, "Join"),
        h("button", { type: "button", class: "danger", onclick: () => void withdraw(g) }, "Withdraw"),
      ]))));
  list.replaceChildren(h("h2", {}, "My invitations"),
    rows.length ? h("ul", { class: "simulcast-list" }, ...rows) : h("p", { class: "muted" }, "No invitations."));
}

/** Follow the caller's invitations live (myGuestInvitations' rows, pushed as they change). */
async function refresh(): Promise<void> {
  const userId = getToken() ? claims()?.userId : undefined;
  if (following && following.userId !== userId) {
    following.stop();
    following = null;
  }
  if (!userId) {
    list.replaceChildren(h("h2", {}, "My invitations"), h("p", { class: "muted" }, "Sign in to see your invitations."));
    return;
  }
  if (following) {
    render(shown); // the page's own state (joined) changed, the rows did not
    return;
  }
  const stop = live<{ nchat_stream_guests: GuestRow[] }>(
    "MyInvitations($u: uuid!)",
    `nchat_stream_guests(where: {user_id: {_eq: $u}, status: {_in: ["invited", "accepted"]}},
      order_by: [{created_at: desc}, {id: asc}]) { ${GUEST_ROW} }`,
    { u: userId },
    (data) => void invitations(data.nchat_stream_guests.map(fromRow)),
    (err) => say(stageMsg, err.message, "error"),
  );
  following = { userId, stop };
}

async function invitations(items: StreamGuest[]): Promise<void> {
  // Removed by the broadcaster (or the stream ended) while on stage: the server has cut the media already.
  if (joined && !items.some((g) => g.id === joined?.id && g.status === "accepted")) {
    await leave("You are no longer a guest of this stream.", "warn");
  }
  shown = items;
  render(items);
}

async function respond(g: StreamGuest, accept: boolean): Promise<void> {
  try {
    await gql("mutation($g: ID!, $a: Boolean!) { respondGuestInvitation(guestId: $g, accept: $a) { id } }",
      { g: g.id, a: accept });
    say(stageMsg, accept ? "Accepted: join when the broadcaster is live." : "Declined.", accept ? "ok" : "info");
  } catch (err) {
    say(stageMsg, (err as Error).message, "error");
  }
  await refresh();
}

async function withdraw(g: StreamGuest): Promise<void> {
  if (joined?.id === g.id) await leave("", "info");
  try {
    await gql("mutation($g: ID!) { leaveGuest(guestId: $g) { id } }", { g: g.id });
    say(stageMsg, "You left the stream; the broadcaster can invite you again.", "info");
  } catch (err) {
    say(stageMsg, (err as Error).message, "error");
  }
  await refresh();
}

function whipMessage(err: unknown): string {
  if (!(err instanceof WhipError)) return (err as Error).message;
  if (err.status === 401) return "Your guest token was refused; press Join again for a new one.";
  if (err.status === 403) return "You are not an accepted guest of this stream any more.";
  if (err.status === 409) return "The broadcaster is not live yet; join once they are.";
  return err.message;
}

async function join(g: StreamGuest): Promise<void> {
  if (session) await leave("", "info");
  joined = g;
  retries = 0;
  stageStream.textContent = `On ${g.streamTitle ?? "the stream"}`;
  if (!media) {
    try {
      media = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: true });
    } catch (err) {
      joined = null;
      say(stageMsg, `The camera could not start: ${(err as Error).message}`, "error");
      return;
    }
    preview.srcObject = media;
  }
  await connect(g);
}

async function connect(g: StreamGuest): Promise<void> {
  if (!media || joined?.id !== g.id) return;
  say(stageMsg, "Connecting…", "info");
  leaveButton.disabled = false;
  try {
    // A fresh short-lived token for every attempt: a guest who drops and comes back keeps their place.
    const data = await gql<{ guestPublishToken: { token: string; whipUrl: string } }>(
      "mutation($s: ID!) { guestPublishToken(streamId: $s) { token whipUrl } }", { s: g.streamId });
    const url = new URL(data.guestPublishToken.whipUrl, location.href);
    session = await publish(`${url.pathname}${url.search}`, data.guestPublishToken.token, media);
  } catch (err) {
    session = null;
    const fatal = err instanceof WhipError ? err.status === 403 : !(err instanceof TypeError);
    if (fatal || retries >= 5) {
      say(stageMsg, whipMessage(err), "error");
      joined = null;
      leaveButton.disabled = true;
      await refresh();
      return;
    }
    retries += 1;
    say(stageMsg, `${whipMessage(err)} Retrying (${retries}/5)…`, "warn");
    setTimeout(() => void connect(g), 2000 * retries);
    return;
  }
  const pc = session.pc;
  pc.addEventListener("connectionstatechange", () => {
    if (session?.pc !== pc) return;
    if (pc.connectionState === "connected") {
      retries = 0;
      say(stageMsg, "You are on air.", "ok");
    } else if (pc.connectionState === "failed" && joined) {
      say(stageMsg, "Connection lost — rejoining…", "warn");
      const old = session;
      session = null;
      void old?.stop().then(() => connect(g));
    }
  });
  await refresh();
}

async function leave(text: string, tone: "info" | "warn"): Promise<void> {
  joined = null;
  const old = session;
  session = null;
  await old?.stop();
  media?.getTracks().forEach((t) => t.stop());
  media = null;
  preview.srcObject = null;
  leaveButton.disabled = true;
  stageStream.textContent = "Accept an invitation, then join: your camera is shown here first.";
  say(stageMsg, text, tone);
}

leaveButton.addEventListener("click", () => void leave("You left the stage; join again any time.", "info")
  .then(refresh));
window.addEventListener("pagehide", () => void session?.stop());

void refresh();

// Guest speakers in the console (the broadcaster's side): invite a user by username or id, follow each
// guest's status, mute or remove them, and switch the program layout (solo with a focus, side by side, grid).
import { gql, live } from "./api";
import { h, say, UUID_RE } from "./ui";

export interface StreamGuest {
  id: string;
  streamId: string;
  userId: string;
  status: string;
  muted: boolean;
  username: string;
  displayName: string | null;
  streamTitle: string | null;
  streamStatus: string | null;
}

export const GUEST_FIELDS = "id streamId userId status muted username displayName streamTitle streamStatus";
/** The same guest through the table API (live queries: pushed when a row the caller may read changes). */
export const GUEST_ROW = "id stream_id user_id status muted user { username display_name } stream { title status }";

export interface GuestRow {
  id: string;
  stream_id: string;
  user_id: string;
  status: string;
  muted: boolean;
  user: { username: string; display_name: string | null } | null;
  stream: { title: string; status: string } | null;
}

export function fromRow(r: GuestRow): StreamGuest {
  return {
    id: r.id, streamId: r.stream_id, userId: r.user_id, status: r.status, muted: r.muted,
    username: r.user?.username ?? r.user_id, displayName: r.user?.display_name ?? null,
    streamTitle: r.stream?.title ?? null, streamStatus: r.stream?.status ?? null,
  };
}
const LAYOUTS: [string, string][] = [["grid", "Grid"], ["side_by_side", "Side by side"], ["solo", "Solo"]];

export function guestName(g: Pick<StreamGuest, "displayName" | "username">): string {
  return g.displayName ? `${g.displayName} (@${g.username})` : `@${g.username}`;
}

/** A user id from what was typed: an id as it is, a username looked up (users are public). */
async function findUser(text: string): Promise<string | null> {
  const value = text.trim().replace(/^@/, "");
  if (UUID_RE.test(value)) return value;
  const data = await gql<{ nchat_users: { id: string }[] }>(
    "query FindUser($u: String!) { nchat_users(where: {username: {_eq: $u}}, limit: 1) { id } }", { u: value });
  return data.nchat_users[0]?.id ?? null;
}

export function mountGuests(root: HTMLElement, streamId: string): () => void {
  const rows = h("ul", { class: "simulcast-list", "aria-label": "Guests", "aria-live": "polite" });
  const msg = h("p", { class: "msg", hidden: true });
  const who = h("input", { id: "guest-user", placeholder: "username or user id", required: true, maxlength: 100 });
  const invite = h("form", { class: "simulcast-form", "aria-label": "Invite a guest" },
    h("label", { for: "guest-user" }, "Invite"), who, h("button", { type: "submit" }, "Invite guest"));
  const layout = h("select", { id: "program-layout" }, ...LAYOUTS.map(([v, label]) => h("option", { value: v }, label)));
  const focus = h("select", { id: "program-focus" });
  const program = h("form", { class: "simulcast-form", "aria-label": "Program layout" },
    h("label", { for: "program-layout" }, "Layout"), layout,
    h("label", { for: "program-focus" }, "Solo shows"), focus,
    h("button", { type: "submit", class: "secondary" }, "Switch layout"));
  root.replaceChildren(h("h2", {}, "Guests"), rows, invite, program, msg);
  let accepted: StreamGuest[] = [];

  const render = (items: StreamGuest[]): void => {
    accepted = items.filter((g) => g.status === "accepted");
    const chosen = focus.value;
    focus.replaceChildren(h("option", { value: "" }, "You (the broadcaster)"),
      ...accepted.map((g) => h("option", { value: g.id, selected: g.id === chosen }, guestName(g))));
    const active = items.filter((g) => g.status === "invited" || g.status === "accepted");
    if (!active.length) {
      rows.replaceChildren(h("li", { class: "empty" }, "No guests: invite someone to appear with you."));
      return;
    }
    rows.replaceChildren(...active.map((g) => h("li", { "data-testid": "guest", "data-guest": g.username },
      h("strong", {}, guestName(g)), " ",
      h("span", { class: "badge", "data-status": g.status, role: "status" }, g.status), " ",
      g.muted ? h("span", { class: "badge" }, "muted") : null,
      h("button", { type: "button", class: "secondary", onclick: () => void change(
        "mutation($g: ID!, $m: Boolean!) { setGuestMuted(guestId: $g, muted: $m) { id } }", { g: g.id, m: !g.muted }) },
      g.muted ? "Unmute" : "Mute"),
      h("button", { type: "button", class: "danger", onclick: () => void change(
        "mutation($g: ID!) { removeGuest(guestId: $g) { id } }", { g: g.id }) },
      g.status === "accepted" ? "Remove" : "Revoke"))));
  };

  // Live: the stream's guests and layout are pushed as they change (invitations answered, mutes, removals).
  const stop = live<{ nchat_streams_by_pk: { program_layout: string; guests: GuestRow[] } | null }>(
    "Guests($sid: uuid!)",
    `nchat_streams_by_pk(id: $sid) { program_layout guests(order_by: {created_at: asc}) { ${GUEST_ROW} } }`,
    { sid: streamId },
    (data) => {
      const stream = data.nchat_streams_by_pk;
      render((stream?.guests ?? []).map(fromRow));
      if (stream && document.activeElement !== layout) layout.value = stream.program_layout;
    },
    (err) => say(msg, `Guests unavailable: ${err.message}`, "warn"),
  );

  const change = async (query: string, variables: Record<string, unknown>): Promise<void> => {
    try {
      await gql(query, variables);
    } catch (err) {
      say(msg, (err as Error).message, "error");
    }
  };

  invite.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const userId = await findUser(who.value);
      if (!userId) {
        say(msg, `No user named “${who.value.trim()}”.`, "error");
        return;
      }
      await gql("mutation($s: ID!, $u: ID!) { inviteGuest(streamId: $s, userId: $u) { id } }", { s: streamId, u: userId });
      say(msg, "Invitation sent: it appears on their guest page (/guest).", "ok");
      who.value = "";
    } catch (err) {
      say(msg, `Not invited: ${(err as Error).message}`, "error");
    }
  });

  program.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void change("mutation($s: ID!, $l: String!, $f: ID) { setProgramLayout(streamId: $s, layout: $l, focusGuestId: $f) { id } }",
      { s: streamId, l: layout.value, f: layout.value === "solo" && focus.value ? focus.value : null });
  });

  return stop;
}

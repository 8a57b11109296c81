// Moderation tools for the console: the queue of held messages (approve publishes a message in its
// original place, deny keeps it from everyone but its author), the channel's chat rules (emote-only,
// link filter with allowed domains, minimum account age), blocked terms and the moderation log.
import { gql, live } from "./api";
import { h, say } from "./ui";

interface HeldRow {
  id: string;
  content: string;
  created_at: string;
  user_id: string;
  user: { display_name: string | null; username: string } | null;
}

interface Settings {
  linkFilter: boolean;
  allowedDomains: string[];
  emoteOnly: boolean;
  minAccountAgeSeconds: number;
}

interface Term { id: string; term: string; isPattern: boolean; action: string }
interface LogRow { action: string; actorId: string | null; targetUserId: string | null; createdAt: string }

export function mountModeration(after: HTMLElement, opts: { streamId: string; channelId: string }): () => void {
  const held = h("ol", { class: "chat-list", "aria-label": "Held messages", "data-testid": "held-list" });
  const terms = h("ul", { "aria-label": "Blocked terms", "data-testid": "term-list" });
  const log = h("ol", { "aria-label": "Moderation log", "data-testid": "mod-log" });
  const msg = h("p", { class: "msg", hidden: true });
  const emoteOnly = h("input", { type: "checkbox", id: "mod-emote-only" });
  const linkFilter = h("input", { type: "checkbox", id: "mod-link-filter" });
  const domains = h("input", { id: "mod-domains", placeholder: "example.com, docs.example.org" });
  const minAge = h("input", { id: "mod-min-age", type: "number", min: 0, max: 31536000, value: 0, style: "width: 8rem" });
  const settingsForm = h("form", { class: "composer", "aria-label": "Chat rules" },
    h("label", { class: "inline" }, emoteOnly, " Emote-only"),
    h("label", { class: "inline" }, linkFilter, " Block links except:"), domains,
    h("label", { for: "mod-min-age" }, "Minimum account age (s)"), minAge,
    h("button", { type: "submit" }, "Save rules"));
  const term = h("input", { id: "mod-term", maxlength: 200, placeholder: "word or pattern", "aria-label": "Term" });
  const isPattern = h("input", { type: "checkbox", id: "mod-pattern" });
  const action = h("select", { id: "mod-action", "aria-label": "Action" },
    h("option", { value: "block" }, "Block"), h("option", { value: "hold" }, "Hold for review"));
  const termForm = h("form", { class: "composer", "aria-label": "Add a blocked term", "data-testid": "term-form" },
    term, h("label", { class: "inline" }, isPattern, " Regex"), action, h("button", { type: "submit" }, "Add"));
  const box = h("section", { class: "moderation", "data-testid": "moderation" },
    h("h2", {}, "Held for review"), held, h("h2", {}, "Chat rules"), settingsForm, termForm, terms,
    h("h2", {}, "Moderation log"), log, msg);
  after.after(box);

  const fail = (err: unknown): void => say(msg, (err as Error).message, "error");

  async function loadRules(): Promise<void> {
    const data = await gql<{ chatSettings: Settings; blockedTerms: Term[]; moderationLog: LogRow[] }>(
      `query R($c: ID!) { chatSettings(channelId: $c) { linkFilter allowedDomains emoteOnly minAccountAgeSeconds }
         blockedTerms(channelId: $c) { id term isPattern action }
         moderationLog(channelId: $c, limit: 20) { action actorId targetUserId createdAt } }`, { c: opts.channelId });
    const s = data.chatSettings;
    emoteOnly.checked = s.emoteOnly;
    linkFilter.checked = s.linkFilter;
    domains.value = s.allowedDomains.join(", ");
    minAge.value = String(s.minAccountAgeSeconds);
    terms.replaceChildren(...data.blockedTerms.map((t) => h("li", { "data-testid": "term" },
      h("code", {}, t.term), ` ${t.isPattern ? "regex" : "word"} · ${t.action} `,
      h("button", { type: "button", class: "link danger", onclick: () => void removeTerm(t.id) }, "Remove"))));
    log.replaceChildren(...data.moderationLog.map((e) => h("li", { "data-testid": "mod-log-entry" },
      `${new Date(e.createdAt).toLocaleTimeString()} ${e.action}`)));
  }

  async function removeTerm(id: string): Promise<void> {
    try {
      await gql("mutation D($t: ID!) { removeBlockedTerm(termId: $t) }", { t: id });
      await loadRules();
    } catch (err) {
      fail(err);
    }
  }

  settingsForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await gql(`mutation U($c: ID!, $e: Boolean, $l: Boolean, $d: [String!], $a: Int) {
        updateChatSettings(channelId: $c, emoteOnly: $e, linkFilter: $l, allowedDomains: $d,
                           minAccountAgeSeconds: $a) { emoteOnly } }`, {
        c: opts.channelId, e: emoteOnly.checked, l: linkFilter.checked,
        d: domains.value.split(",").map((d) => d.trim()).filter(Boolean), a: Number(minAge.value || 0) });
      say(msg, "Rules saved.", "ok");
      await loadRules();
    } catch (err) {
      fail(err);
    }
  });

  termForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!term.value.trim()) return;
    try {
      await gql(`mutation A($c: ID!, $t: String!, $p: Boolean!, $a: String!) {
        addBlockedTerm(channelId: $c, term: $t, isPattern: $p, action: $a) { id } }`,
      { c: opts.channelId, t: term.value, p: isPattern.checked, a: action.value });
      term.value = "";
      say(msg, "");
      await loadRules();
    } catch (err) {
      fail(err);
    }
  });

  async function review(id: string, approve: boolean): Promise<void> {
    try {
      const op = approve ? "approveChatMessage" : "denyChatMessage";
      await gql(`mutation R($m: ID!) { ${op}(messageId: $m) { id status } }`, { m: id });
      await loadRules();
    } catch (err) {
      fail(err);
    }
  }

  const stop = live<{ nchat_stream_chat_messages: HeldRow[] }>(
    "Held($id: uuid!)",
    `nchat_stream_chat_messages(where: {stream_id: {_eq: $id}, status: {_eq: "held"}, is_deleted: {_eq: false}},
                                order_by: {created_at: asc}, limit: 100) {
      id content created_at user_id user { display_name username } }`,
    { id: opts.streamId },
    (data) => {
      const rows = data.nchat_stream_chat_messages;
      held.replaceChildren(...(rows.length ? rows.map((row) => h("li", { "data-testid": "held", "data-id": row.id },
        h("span", { class: "author" }, row.user?.display_name || row.user?.username || "viewer"), " ",
        h("span", { class: "content" }, row.content), " ",
        h("button", { type: "button", class: "link", onclick: () => void review(row.id, true) }, "Approve"),
        h("button", { type: "button", class: "link danger", onclick: () => void review(row.id, false) }, "Deny")))
        : [h("li", { class: "empty" }, "Nothing held.")]));
    },
    (err) => say(msg, `Review queue unavailable: ${err.message}`, "warn"),
  );
  loadRules().catch(fail);
  return () => {
    stop();
    box.remove();
  };
}

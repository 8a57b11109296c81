// Live polls: the broadcaster or a moderator creates, opens and closes them; signed-in viewers vote
// (and change their vote while the poll is open); results arrive through the pollResults
// subscription, which the server batches (at most one batch per 200 ms).
import { getToken, gql, subscribe } from "./api";
import { h, say } from "./ui";

export interface PollRow {
  id: string;
  question: string;
  options: string[];
  voteCounts: number[];
  voters: number;
  status: string;
  allowMultiple: boolean;
  closesAt: string | null;
}

const FIELDS = "id question options voteCounts voters status allowMultiple closesAt";

const STYLE = `
.polls { margin-top: 1rem; }
.poll-list { list-style: none; padding: 0; margin: .5rem 0; }
.poll-list > li { border: 1px solid #e5e7eb; border-radius: 8px; padding: .5rem .7rem; margin-bottom: .5rem; }
.poll-option { display: grid; grid-template-columns: 1fr auto; gap: .2rem .5rem; align-items: center; margin: .3rem 0; }
.poll-option .bar { grid-column: 1 / -1; height: 6px; background: #e5e7eb; border-radius: 3px; overflow: hidden; }
.poll-option .bar > span { display: block; height: 100%; background: #6366f1; }
.poll-option button[aria-pressed=true] { font-weight: 700; }
`;

function addStyle(): void {
  if (document.getElementById("polls-style")) return;
  document.head.append(h("style", { id: "polls-style" }, STYLE));
}

export function mountPolls(after: HTMLElement, opts: { streamId: string; host: boolean }): () => void {
  addStyle();
  const list = h("ol", { class: "poll-list", "aria-live": "polite", "aria-label": "Polls" });
  const msg = h("p", { class: "msg", hidden: true });
  const box = h("section", { class: "polls", "data-testid": "polls" }, h("h2", {}, "Polls"));
  const polls = new Map<string, PollRow>();
  const order: string[] = [];
  const mine = new Map<string, number[]>();
  let loaded = false;

  if (opts.host) {
    const question = h("input", { id: "poll-question", maxlength: 200, placeholder: "Ask the audience…" });
    const options = h("textarea", { id: "poll-options", rows: 3, placeholder: "One option per line (2–10)" });
    const multiple = h("input", { type: "checkbox", id: "poll-multiple" });
    const duration = h("input", { type: "number", id: "poll-duration", min: 5, max: 86400, placeholder: "seconds",
      style: "width: 7rem" });
    const form = h("form", { class: "composer", "aria-label": "Create a poll", "data-testid": "poll-form" },
      h("label", { for: "poll-question" }, "Question"), question,
      h("label", { for: "poll-options" }, "Options"), options,
      h("label", { class: "inline" }, multiple, " Multiple choice"),
      h("label", { for: "poll-duration" }, "Closes after (optional)"), duration,
      h("button", { type: "submit" }, "Start poll"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const lines = options.value.split("\n").map((o) => o.trim()).filter(Boolean);
      try {
        const made = await gql<{ createPoll: PollRow }>(
          `mutation C($s: ID!, $q: String!, $o: [String!]!, $m: Boolean!, $d: Int) {
             createPoll(streamId: $s, question: $q, options: $o, allowMultiple: $m, durationSeconds: $d) { ${FIELDS} } }`,
          { s: opts.streamId, q: question.value, o: lines, m: multiple.checked,
            d: duration.value ? Number(duration.value) : null });
        upsert(made.createPoll, true);
        question.value = "";
        options.value = "";
        say(msg, "");
      } catch (err) {
        say(msg, `Poll not created: ${(err as Error).message}`, "error");
      }
    });
    box.append(form);
  }
  box.append(list, msg);
  after.after(box);

  function upsert(row: PollRow, fresh: boolean): void {
    if (!polls.has(row.id)) {
      if (fresh) order.unshift(row.id);
      else order.push(row.id);
    }
    polls.set(row.id, { ...polls.get(row.id), ...row });
    render();
  }

  async function vote(poll: PollRow, index: number): Promise<void> {
    if (!getToken()) return say(msg, "Sign in to vote.", "warn");
    const current = mine.get(poll.id) ?? [];
    const choices = poll.allowMultiple
      ? (current.includes(index) ? current.filter((c) => c !== index) : [...current, index])
      : [index];
    if (!choices.length) return;
    try {
      const got = await gql<{ votePoll: PollRow }>(
        `mutation V($p: ID!, $c: [Int!]!) { votePoll(pollId: $p, choices: $c) { ${FIELDS} } }`,
        { p: poll.id, c: choices });
      mine.set(poll.id, choices);
      upsert(got.votePoll, false);
    } catch (err) {
      say(msg, `Vote not counted: ${(err as Error).message}`, "error");
    }
  }

  async function setStatus(poll: PollRow, action: "openPoll" | "closePoll"): Promise<void> {
    try {
      const got = await gql<Record<string, PollRow>>(
        `mutation S($p: ID!) { ${action}(pollId: $p) { ${FIELDS} } }`, { p: poll.id });
      upsert(got[action], false);
    } catch (err) {
      say(msg, (err as Error).message, "error");
    }
  }

  function render(): void {
    if (!order.length) {
      list.replaceChildren(h("li", { class: "empty" }, loaded ? "No polls yet." : "Loading polls…"));
      return;
    }
    list.replaceChildren(...order.map((id) => {
      const poll = polls.get(id) as PollRow;
      const total = poll.voteCounts.reduce((a, b) => a + b, 0);
      const chosen = mine.get(poll.id) ?? [];
      const rows = poll.options.map((label, i) => {
        const count = poll.voteCounts[i] ?? 0;
        const pct = total ? Math.round((100 * count) / total) : 0;
        const name = !opts.host && poll.status === "open"
          ? h("button", { type: "button", class: "link", "aria-pressed": String(chosen.includes(i)),
            "data-testid": "poll-vote", onclick: () => void vote(poll, i) }, label)
          : h("span", {}, label);
        return h("div", { class: "poll-option" }, name,
          h("span", { class: "count", "data-testid": "poll-count" }, `${count} (${pct}%)`),
          h("div", { class: "bar", "aria-hidden": "true" }, h("span", { style: `width: ${pct}%` })));
      });
      const tools = opts.host
        ? [poll.status === "draft"
          ? h("button", { type: "button", class: "secondary", onclick: () => void setStatus(poll, "openPoll") }, "Open")
          : null,
        poll.status !== "closed"
          ? h("button", { type: "button", class: "secondary", "data-testid": "poll-close",
            onclick: () => void setStatus(poll, "closePoll") }, "Close poll")
          : null]
        : [];
      return h("li", { "data-testid": "poll", "data-status": poll.status, "data-id": poll.id },
        h("strong", {}, poll.question), " ", h("span", { class: "badge" }, poll.status),
        ...rows, h("small", { class: "muted" }, `${poll.voters} voter${poll.voters === 1 ? "" : "s"}`), ...tools);
    }));
  }

  render();
  const stop = subscribe<{ pollResults: PollRow[] }>(
    `subscription P($s: ID!) { pollResults(streamId: $s) { ${FIELDS} } }`, { s: opts.streamId },
    (data) => {
      const first = !loaded;
      loaded = true;
      for (const row of data.pollResults) upsert(row, !first);
      render();
    },
    (err) => say(msg, `Polls unavailable: ${err.message}`, "warn"));
  return () => {
    stop();
    box.remove();
  };
}

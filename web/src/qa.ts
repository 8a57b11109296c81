// Q&A: viewers ask and upvote; the broadcaster answers. Questions sorted by votes.
import { getToken } from "./api";
import { answerQuestion, askQuestion, type QuestionRow, upvoteQuestion, watchQuestions } from "./ops";
import { h, say } from "./ui";

export function mountQa(root: HTMLElement, opts: { streamId: string; host: boolean }): () => void {
  const list = h("ol", { class: "qa-list", "aria-label": "Questions", "aria-live": "polite" });
  const msg = h("p", { class: "msg", hidden: true });
  const input = h("input", { id: "qa-input", maxlength: 500, autocomplete: "off", placeholder: "Ask a question…" });
  const form = h("form", { class: "composer", "aria-label": "Ask a question" },
    h("label", { for: "qa-input", class: "sr-only" }, "Question"), input, h("button", { type: "submit" }, "Ask"));
  root.replaceChildren(h("h2", {}, "Q&A"), list, ...(opts.host ? [msg] : [form, msg]));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const content = input.value.trim();
    if (!content) return;
    if (!getToken()) return say(msg, "Sign in to ask a question.", "warn");
    try {
      await askQuestion(opts.streamId, content);
      input.value = "";
      say(msg, "Question sent.", "ok");
    } catch (err) {
      say(msg, `Question not sent: ${(err as Error).message}`, "error");
    }
  });

  const render = (rows: QuestionRow[]): void => {
    if (!rows.length) {
      list.replaceChildren(h("li", { class: "empty" }, "No questions yet."));
      return;
    }
    list.replaceChildren(...rows.map((q) => {
      const votes = h("button", { type: "button", class: "vote", "aria-label": `Upvote (${q.upvotes} votes)`,
        disabled: opts.host || q.status !== "open",
        onclick: () => upvoteQuestion(q.id).catch((e: Error) => say(msg, e.message, "error")) }, `▲ ${q.upvotes}`);
      let answerUi: HTMLElement | null = null;
      if (q.answer) answerUi = h("p", { class: "answer" }, h("strong", {}, "Answer: "), q.answer);
      else if (opts.host) {
        const field = h("input", { "aria-label": "Answer", placeholder: "Answer…", maxlength: 1000 });
        answerUi = h("form", { class: "composer small" }, field, h("button", { type: "submit" }, "Answer"));
        answerUi.addEventListener("submit", (ev) => {
          ev.preventDefault();
          if (field.value.trim()) {
            answerQuestion(q.id, field.value.trim()).catch((e: Error) => say(msg, e.message, "error"));
          }
        });
      }
      return h("li", {}, votes, h("span", { class: "content" }, q.content), answerUi);
    }));
  };
  return watchQuestions(opts.streamId, render, (err) => say(msg, `Q&A unavailable: ${err.message}`, "warn"));
}

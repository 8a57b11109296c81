// Simulcast settings in the console: the stream's RTMP(S) destinations, their push status and errors.
// Keys are write-only: typed once, never shown again (only their last characters).
import { gql } from "./api";
import { h, say } from "./ui";

interface Destination {
  id: string;
  name: string;
  url: string;
  keyHint: string;
  rendition: string;
  enabled: boolean;
  status: string;
  lastError: string | null;
  attempts: number;
}

const FIELDS = "id name url keyHint rendition enabled status lastError attempts";
const RENDITIONS = ["1080p", "720p", "480p", "360p"];

async function list(streamId: string): Promise<Destination[]> {
  const data = await gql<{ simulcastDestinations: Destination[] }>(
    `query Simulcast($id: ID!) { simulcastDestinations(streamId: $id) { ${FIELDS} } }`, { id: streamId });
  return data.simulcastDestinations;
}

export function mountSimulcast(root: HTMLElement, streamId: string): () => void {
  const rows = h("ul", { class: "simulcast-list", "aria-label": "Simulcast destinations", "aria-live": "polite" });
  const msg = h("p", { class: "msg", hidden: true });
  const name = h("input", { id: "sc-name", maxlength: 100, placeholder: "YouTube", required: true });
  const url = h("input", { id: "sc-url", placeholder: "rtmp://a.rtmp.youtube.com/live2", required: true });
  const key = h("input", { id: "sc-key", type: "password", autocomplete: "off", required: true });
  const rendition = h("select", { id: "sc-rendition" },
    ...RENDITIONS.map((r) => h("option", { value: r, selected: r === "720p" }, r)));
  const form = h("form", { class: "simulcast-form", "aria-label": "Add a simulcast destination" },
    h("label", { for: "sc-name" }, "Name"), name,
    h("label", { for: "sc-url" }, "RTMP(S) URL"), url,
    h("label", { for: "sc-key" }, "Destination key"), key,
    h("label", { for: "sc-rendition" }, "Rendition"), rendition,
    h("button", { type: "submit" }, "Add destination"));
  root.replaceChildren(h("h2", {}, "Simulcast"), rows, form, msg);

  const render = (items: Destination[]): void => {
    if (!items.length) {
      rows.replaceChildren(h("li", { class: "empty" }, "No destinations: the stream goes only to this server."));
      return;
    }
    rows.replaceChildren(...items.map((d) => h("li", { "data-destination": d.name },
      h("strong", {}, d.name), " ",
      h("span", { class: "badge", "data-status": d.status, role: "status" }, d.status), " ",
      h("small", { class: "muted" }, `${d.url} · key ${d.keyHint} · ${d.rendition}`),
      d.lastError ? h("p", { class: "msg", "data-tone": "error", role: "alert" },
        `${d.lastError} (attempt ${d.attempts}; retrying)`) : null,
      h("button", { type: "button", class: "secondary", onclick: () => void change(
        `mutation($id: ID!, $on: Boolean) { updateSimulcastDestination(destinationId: $id, enabled: $on) { id } }`,
        { id: d.id, on: !d.enabled }) }, d.enabled ? "Disable" : "Enable"),
      h("button", { type: "button", class: "danger", onclick: () => void change(
        `mutation($id: ID!) { removeSimulcastDestination(destinationId: $id) }`, { id: d.id }) }, "Remove"))));
  };

  const refresh = async (): Promise<void> => {
    try {
      render(await list(streamId));
    } catch (err) {
      say(msg, `Simulcast unavailable: ${(err as Error).message}`, "warn");
    }
  };

  const change = async (query: string, variables: Record<string, unknown>): Promise<void> => {
    try {
      await gql(query, variables);
      await refresh();
    } catch (err) {
      say(msg, (err as Error).message, "error");
    }
  };

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await gql(`mutation($id: ID!, $name: String!, $url: String!, $key: String!, $r: String!) {
        addSimulcastDestination(streamId: $id, name: $name, url: $url, streamKey: $key, rendition: $r) { id } }`,
      { id: streamId, name: name.value, url: url.value, key: key.value, r: rendition.value });
      key.value = "";
      name.value = "";
      url.value = "";
      say(msg, "Destination added: it gets the stream whenever you are live.", "ok");
      await refresh();
    } catch (err) {
      say(msg, `Not added: ${(err as Error).message}`, "error");
    }
  });

  void refresh();
  const timer = window.setInterval(() => void refresh(), 3000);
  return () => clearInterval(timer);
}

// /dashboard/{id}: stream health over time from the quality metrics (one row per 5 s).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { getToken, gql } from "./api";
import { type MetricRow, streamById, watchMetrics, watchStream } from "./ops";
import { $, h, mountAuth, mountConnectionBanner, say, streamIdFromPath, UUID_RE } from "./ui";

const id = streamIdFromPath();
const msg = $("#dash-msg");
const grid = $("#charts");

interface Series {
  key: keyof MetricRow;
  label: string;
  unit: string;
  color: string;
}

const SERIES: Series[] = [
  { key: "current_viewer_count", label: "Viewers", unit: "", color: "#2563eb" },
  { key: "bitrate_kbps", label: "Bitrate", unit: "kbit/s", color: "#16a34a" },
  { key: "fps", label: "Frame rate", unit: "fps", color: "#d97706" },
  { key: "health_score", label: "Health score", unit: "/100", color: "#dc2626" },
];

const charts = new Map<string, { plot: uPlot; value: HTMLElement }>();

mountConnectionBanner($("#banner"));
mountAuth($("#auth"), () => location.reload());

function makeCharts(): void {
  for (const s of SERIES) {
    const value = h("span", { class: "big", "data-metric": String(s.key) }, "—");
    const box = h("div", { class: "chart", role: "img", "aria-label": `${s.label} over time` });
    grid.append(h("section", { class: "card" }, h("h2", {}, s.label, " ", value, " ", h("small", {}, s.unit)), box));
    const plot = new uPlot({
      width: Math.max(240, box.clientWidth || 320),
      height: 180,
      series: [{}, { label: s.label, stroke: s.color, width: 2, fill: `${s.color}22` }],
      axes: [{}, { size: 50 }],
      scales: s.key === "health_score" ? { y: { range: [0, 100] } } : {},
      legend: { show: false },
    }, [[], []], box);
    charts.set(String(s.key), { plot, value });
    // Cards reflow as siblings are added and as the window changes; follow the card's width.
    new ResizeObserver(() => {
      const width = Math.max(240, Math.floor(box.clientWidth));
      if (width !== plot.width) plot.setSize({ width, height: 180 });
    }).observe(box);
  }
}

function render(rows: MetricRow[]): void {
  const xs = rows.map((r) => Date.parse(r.recorded_at) / 1000);
  for (const s of SERIES) {
    const chart = charts.get(String(s.key));
    if (!chart) continue;
    const ys = rows.map((r) => (r[s.key] === null ? null : Number(r[s.key])));
    chart.plot.setData([xs, ys] as uPlot.AlignedData);
    const last = ys.length ? ys[ys.length - 1] : null;
    chart.value.textContent = last === null ? "—" : String(Math.round(last * 10) / 10);
  }
  say(msg, rows.length ? "" : "No measurements yet: they arrive every 5 seconds while the stream is live.", "info");
}

// The audience distributions (streamAnalytics), refreshed every 10 s while live and once after.
interface NamedCount { name: string; count: number }
const DISTRIBUTIONS: [string, string][] = [
  ["countries", "Countries"], ["devices", "Devices"], ["operatingSystems", "Operating systems"],
  ["browsers", "Browsers"], ["renditions", "Renditions"], ["bitrateHistogram", "Playback bitrate"],
  ["bufferingHistogram", "Buffering ratio"],
];
const AUDIENCE = `query Audience($id: ID!) { streamAnalytics(streamId: $id) { status totalViews
  ${DISTRIBUTIONS.map(([k]) => `${k} { name count }`).join(" ")} } }`;

function bars(title: string, rows: NamedCount[]): HTMLElement {
  const top = Math.max(1, ...rows.map((r) => r.count));
  const total = rows.reduce((n, r) => n + r.count, 0) || 1;
  return h("section", { class: "card bars", "data-distribution": title },
    h("h3", {}, title),
    rows.length ? h("ol", {}, ...rows.slice(0, 10).map((r) => h("li", {},
      h("span", {}, r.name),
      h("span", { class: "bar", style: `width: ${(100 * r.count) / top}%`, role: "img",
        "aria-label": `${r.name}: ${r.count}` }),
      h("span", {}, `${r.count} (${Math.round((100 * r.count) / total)}%)`)))) : h("p", {}, "No sessions yet."));
}

async function refreshAudience(): Promise<string | undefined> {
  const box = $("#audience-bars");
  try {
    const data = await gql<{ streamAnalytics: Record<string, NamedCount[]> & { status: string } }>(AUDIENCE, { id });
    const a = data.streamAnalytics;
    box.replaceChildren(...DISTRIBUTIONS.map(([key, title]) => bars(title, a[key] as NamedCount[])));
    say($("#audience-msg"), "");
    return a.status;
  } catch (err) {
    say($("#audience-msg"), `Audience unavailable: ${(err as Error).message}`, "warn");
    return undefined;
  }
}

async function download(kind: "csv" | "pdf"): Promise<void> {
  const token = getToken();
  const r = await fetch(`/api/streams/${id}/analytics.${kind}`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  if (!r.ok) return say($("#audience-msg"), `Export failed (${r.status})`, "error");
  const link = h("a", { href: URL.createObjectURL(await r.blob()), download: `stream-${id}-analytics.${kind}` });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.getAttribute("href") ?? ""), 10_000);
}

async function followAudience(): Promise<void> {
  $("#export-csv").addEventListener("click", () => void download("csv"));
  $("#export-pdf").addEventListener("click", () => void download("pdf"));
  const status = await refreshAudience();
  if (status === "live" || status === "preparing") {
    const timer = window.setInterval(async () => {
      const now = await refreshAudience();
      if (now && now !== "live" && now !== "preparing") clearInterval(timer);
    }, 10_000);
  }
}

async function main(): Promise<void> {
  if (!UUID_RE.test(id)) return say(msg, "There is no stream at this address.", "error");
  try {
    const stream = await streamById(id);
    if (!stream) return say(msg, "There is no stream at this address, or it is not visible to you.", "error");
    $("#title").textContent = `Health: ${stream.title}`;
  } catch (err) {
    return say(msg, (err as Error).message, "error");
  }
  makeCharts();
  watchStream(id, (row) => {
    $("#stream-state").textContent = row?.status ?? "unknown";
    $("#peak").textContent = String(row?.peak_viewers ?? 0);
  });
  watchMetrics(id, render, (err) => say(msg, `Metrics unavailable: ${err.message}`, "warn"));
  void followAudience();
}

void main();

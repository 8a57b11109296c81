// /dashboard/{id}: stream health over time from the quality metrics (one row per 5 s).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";
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
}

void main();

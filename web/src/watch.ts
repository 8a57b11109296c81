// /watch/{id}: the viewer's page. LL-HLS through hls.js, quality and volume, live edge and measured
// latency, viewer count, chat, reactions, Q&A. An unknown or ended stream says so.
import Hls from "hls.js/light";
import { MAX_BUFFERING_PER_BEAT_MS, playWhep, renditionLabel, type WhepPlayer } from "./whep";
import "./style.css";
import { getToken } from "./api";
import { mountChapters } from "./chapters";
import { mountChat } from "./chat";
import {
  hlsUrlFor, isOwnOrigin, joinStream, leaveStreamOnUnload, mediaToken, recordingUrlFor, recordings, streamById,
  type StreamRow, viewerHeartbeat, watchAsViewer, watchStream,
} from "./ops";
import { mountPolls } from "./polls";
import { mountQa } from "./qa";
import { mountReactions } from "./reactions";
import { $, h, mountAuth, mountConnectionBanner, say, streamIdFromPath, UUID_RE } from "./ui";

const id = streamIdFromPath();
const video = $("#video") as HTMLVideoElement;
const state = $("#stream-state");
const notice = $("#notice");
const playerMsg = $("#player-msg");
const quality = $("#quality") as HTMLSelectElement;
const volume = $("#volume") as HTMLInputElement;
const mute = $("#mute") as HTMLButtonElement;
const liveBadge = $("#live-badge") as HTMLButtonElement;
const latency = $("#latency");
const viewerCount = $("#viewer-count");

let hls: Hls | null = null;
let stream: StreamRow | null = null;
let sessionId: string | null = null;
let bufferingMs = 0;
let waitingSince: number | null = null;
let heartbeat: number | undefined;
let panelsMounted = false;
let endedShown = false;
let starting = false;
// A private channel's media takes a short-lived token scoped to this stream, never the login token.
let media: { token: string; expiresAt: number } | null = null;

mountConnectionBanner($("#banner"));
mountAuth($("#auth"), () => location.reload(), true);

const ENDED = ["ended", "cancelled", "failed"];

async function main(): Promise<void> {
  if (!UUID_RE.test(id)) return unknown();
  try {
    stream = await streamById(id);
  } catch (err) {
    say(notice, `The stream could not be loaded: ${(err as Error).message}`, "error");
    return;
  }
  if (!stream) return unknown();
  $("#title").textContent = stream.title;
  document.title = `${stream.title} — nchat-live`;
  $("#description").textContent = stream.description ?? "";
  onStream(stream);
  watchStream(id, (row) => (row ? onStream(row) : unknown()));
}

function unknown(): void {
  $("#title").textContent = "Stream not found";
  state.textContent = "unknown";
  state.dataset.status = "unknown";
  say(notice, "There is no stream at this address, or it is private to its channel.", "error");
  ($("#player") as HTMLElement).hidden = true;
}

function onStream(row: StreamRow): void {
  stream = row;
  state.textContent = row.status === "live" ? "Live" : row.status;
  state.dataset.status = row.status;
  viewerCount.textContent = String(row.current_viewers);
  if (!panelsMounted) {
    panelsMounted = true;
    if (row.enable_chat) mountChat($("#chat"), { streamId: id, moderate: false });
    else $("#chat").replaceChildren(h("p", {}, "Chat is off for this stream."));
    if (row.enable_qa) mountQa($("#qa"), { streamId: id, host: false });
    else $("#qa").hidden = true;
    if (row.enable_reactions) mountReactions($("#reactions"), $("#overlay"), playerMsg, id, true);
    mountPolls($("#chat"), { streamId: id, host: false });
  }
  if (row.status === "live") {
    say(notice, "");
    if (!hls && !video.src && !video.srcObject && !starting) {
      starting = true;
      void playLive(row).finally(() => { starting = false; });
    }
  } else if (ENDED.includes(row.status)) {
    void ended(row);
  } else {
    say(notice, row.scheduled_at
      ? `This stream starts ${new Date(row.scheduled_at).toLocaleString()}. It will play here when it goes live.`
      : "Waiting for the broadcaster to go live…", "info");
  }
}

async function ended(row: StreamRow): Promise<void> {
  if (endedShown) return;
  endedShown = true;
  stopPlayback();
  leave();
  liveBadge.dataset.live = "false";
  liveBadge.hidden = true;
  const text = row.status === "ended" ? "This stream has ended." : `This stream was ${row.status}.`;
  say(notice, text, "info");
  if (notice.querySelector("[data-testid=watch-recording]")) return;
  // The recording is finalised just after the stream ends: look a few times before giving up.
  let ready = false;
  for (let attempt = 0; attempt < 6 && !ready; attempt += 1) {
    if (attempt) await new Promise((r) => setTimeout(r, 2000));
    try {
      ready = (await recordings(id)).some((r) => r.url) || Boolean((await streamById(id))?.recording_url);
    } catch {
      // A missing recording list only hides the replay offer.
    }
  }
  if (ready && !notice.querySelector("[data-testid=watch-recording]")) {
    // The recording's URL is the server's own, from the stream id; the row's URL is only a sign it exists.
    notice.append(" ", h("button", { type: "button", "data-testid": "watch-recording",
      onclick: () => {
        void play(recordingUrlFor(id), false);
        if (!document.querySelector("[data-testid=chapters]")) mountChapters($("#player"), video, id);
      } }, "Watch the recording"));
  }
}

// ---- playback ----------------------------------------------------------------------------------

/** A media token for this stream when signed in (refreshed before it expires); null for anonymous viewers. */
async function refreshMediaToken(): Promise<string | null> {
  if (!getToken()) return (media = null);
  if (media && media.expiresAt - Date.now() > 60_000) return media.token;
  try {
    const minted = await mediaToken(id);
    media = { token: minted.token, expiresAt: Date.parse(minted.expiresAt) };
  } catch {
    media = null; // a public stream plays without one
  }
  return media?.token ?? null;
}
setInterval(() => { if (hls || video.src) void refreshMediaToken(); }, 30_000);

/** The credential for a media request: only to this page's own origin, never to another host. */
let stopWhep: (() => void) | null = null;
let whep: WhepPlayer | null = null;

// Live: WebRTC (WHEP, sub-second) when the browser and the server can, else LL-HLS; the label says which.
async function playLive(row: StreamRow): Promise<void> {
  await refreshMediaToken();
  video.muted = true;
  whep = await playWhep(video, id, media ? media.token : null);
  stopWhep = whep ? whep.stop : null;
  if (whep) {
    // The WHEP session is itself a viewer session (server side). The page's join shares it (one open
    // session per signed-in viewer, or per anonymous address + browser: migration 0011), counted once,
    // and gives the page the session's token for its quality heartbeats (from the peer connection's stats).
    leave();
    void joinByMutation();
    setMode("WebRTC (WHEP)");
    void video.play().catch(() => undefined);
    return;
  }
  setMode("LL-HLS");
  await play(hlsUrlFor(row), true);
}

function setMode(text: string): void {
  let label = document.querySelector<HTMLElement>("#playback-mode");
  if (!label) {
    label = h("p", { id: "playback-mode", class: "muted" });
    $("#player").append(label);
  }
  label.textContent = `Playing: ${text}`;
  label.dataset.mode = text.startsWith("WebRTC") ? "whep" : "hls";
}

function credentialFor(url: string): string | null {
  return media && isOwnOrigin(url) ? media.token : null;
}

async function play(url: string, isLive: boolean): Promise<void> {
  stopPlayback();
  if (!isOwnOrigin(url)) {
    say(playerMsg, "This stream's address is not on this server; it is not played.", "error");
    return;
  }
  await refreshMediaToken();
  video.muted = true; // browsers allow muted autoplay; the viewer unmutes with one click
  syncVolumeUi();
  if (Hls.isSupported()) {
    hls = new Hls({ lowLatencyMode: isLive, backBufferLength: 30,
      // Live: after a stall, play up to 1.15x until back at the target latency (1 = never catch up).
      maxLiveSyncPlaybackRate: isLive ? 1.15 : 1,
      // A private channel's media needs the stream's media token; public streams ignore it. It goes to
      // this server only: a playlist that names another host gets no credential.
      xhrSetup: (xhr, reqUrl) => {
        const token = credentialFor(reqUrl);
        if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      },
      manifestLoadPolicy: {
      default: { maxTimeToFirstByteMs: 10_000, maxLoadTimeMs: 20_000,
        timeoutRetry: { maxNumRetry: 4, retryDelayMs: 500, maxRetryDelayMs: 4000 },
        errorRetry: { maxNumRetry: 10, retryDelayMs: 1000, maxRetryDelayMs: 4000 } },
    } });
    hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
      quality.replaceChildren(h("option", { value: "-1" }, "Auto"),
        ...data.levels.map((lvl, i) => h("option", { value: String(i) }, lvl.height ? `${lvl.height}p` : `${i}`)));
      quality.disabled = false;
      void video.play().catch(() => say(playerMsg, "Press play to start the video.", "info"));
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
      const lvl = hls?.levels[data.level];
      quality.title = lvl?.height ? `Playing ${lvl.height}p` : "";
      const auto = quality.querySelector("option[value='-1']");
      if (auto && hls?.autoLevelEnabled) auto.textContent = lvl?.height ? `Auto (${lvl.height}p)` : "Auto";
    });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
        say(playerMsg, "Connection to the stream lost — reconnecting…", "warn");
        setTimeout(() => hls?.startLoad(), 2000);
      } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls?.recoverMediaError();
      } else {
        say(playerMsg, `Playback failed: ${data.details}`, "error");
      }
    });
    hls.on(Hls.Events.FRAG_LOADED, () => {
      if (playerMsg.dataset.tone === "warn") say(playerMsg, "");
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    // Safari plays (LL-)HLS natively and sends no headers: the media token (never the login token) rides
    // in the query.
    const token = credentialFor(url);
    video.src = token ? `${url}?token=${encodeURIComponent(token)}` : url;
    void video.play().catch(() => undefined);
  } else {
    say(playerMsg, "This browser cannot play HLS.", "error");
  }
}

function stopPlayback(): void {
  stopWhep?.();
  stopWhep = null;
  whep = null;
  hls?.destroy();
  hls = null;
  video.removeAttribute("src");
  video.load();
}

quality.addEventListener("change", () => {
  if (hls) hls.currentLevel = Number(quality.value);
});

function syncVolumeUi(): void {
  mute.textContent = video.muted || video.volume === 0 ? "Unmute" : "Mute";
  mute.setAttribute("aria-pressed", String(video.muted));
  volume.value = String(video.muted ? 0 : video.volume);
}
volume.addEventListener("input", () => {
  video.volume = Number(volume.value);
  video.muted = video.volume === 0;
});
mute.addEventListener("click", () => {
  video.muted = !video.muted;
  if (!video.muted && video.volume === 0) video.volume = 0.8;
});
video.addEventListener("volumechange", syncVolumeUi);

liveBadge.addEventListener("click", () => {
  if (hls?.liveSyncPosition) video.currentTime = hls.liveSyncPosition;
});

setInterval(() => {
  if (!hls || !stream || stream.status !== "live") {
    latency.textContent = "—";
    return;
  }
  const behind = hls.latency;
  latency.textContent = Number.isFinite(behind) && behind > 0 ? `${behind.toFixed(1)} s` : "—";
  const target = hls.targetLatency ?? 3;
  liveBadge.dataset.live = String(Number.isFinite(behind) && behind < target * 2 + 1);
}, 1000);

// ---- viewer session ----------------------------------------------------------------------------

video.addEventListener("waiting", () => { waitingSince = performance.now(); });
video.addEventListener("playing", () => {
  if (waitingSince !== null) bufferingMs += performance.now() - waitingSince;
  waitingSince = null;
  if (!sessionId && !stopWhep && stream?.status === "live") join(); // WHEP counts itself
});

function qualityLabel(): string {
  const lvl = hls && hls.currentLevel >= 0 ? hls.levels[hls.currentLevel] : undefined;
  return renditionLabel(lvl?.height); // the server knows the ladder's rung names, not arbitrary heights
}

/** The playing rendition's bitrate (kbit/s) for the analytics' network-quality histogram. */
function playbackKbps(): number | null {
  const lvl = hls && hls.currentLevel >= 0 ? hls.levels[hls.currentLevel] : undefined;
  return lvl?.bitrate ? Math.min(1_000_000, Math.round(lvl.bitrate / 1000)) : null;
}

let stopPresence: (() => void) | null = null;

/** Counted as a viewer through the `watchStream` subscription (its session shared by a join by mutation for
 * the quality heartbeats); the mutations alone if it is refused. */
function join(): void {
  sessionId = "presence";
  let reporting = false;
  stopPresence = watchAsViewer(id, (n) => {
    viewerCount.textContent = String(n);
    // The first count comes once the presence session is open. The page's join then shares it (one open
    // session per signed-in viewer, or per anonymous address + browser: migration 0011), so it is counted
    // once and one client toward the anonymous per-address cap, and its token carries the quality
    // heartbeats the server's presence heartbeats lack.
    if (!reporting && sessionId === "presence") {
      reporting = true;
      void joinByMutation();
    }
  }, () => {
    stopPresence?.();
    stopPresence = null;
    if (sessionId === "presence") void joinByMutation();
  });
}

async function joinByMutation(): Promise<void> {
  sessionId = "pending";
  try {
    sessionId = await joinStream(id, qualityLabel());
  } catch (err) {
    // A WHEP or presence viewer is counted by that session all the same; only its quality reports are lost.
    sessionId = stopPresence ? "presence" : null;
    if (!whep && !stopPresence) say(playerMsg, `Not counted as a viewer: ${(err as Error).message}`, "warn");
    return;
  }
  // WHEP: prime the stats so the first heartbeat already has a bitrate.
  void whep?.sample();
  heartbeat = window.setInterval(() => void beat(), 10_000);
}

/** One heartbeat: the rendition, buffering and bitrate of whichever player plays (WHEP's from getStats). */
async function beat(): Promise<void> {
  if (!sessionId || sessionId === "pending" || sessionId === "presence") return;
  const sid = sessionId;
  if (whep) {
    const sample = await whep.sample();
    if (sample) {
      await viewerHeartbeat(sid, sample.quality, sample.bufferingMs, sample.bitrateKbps).catch(() => undefined);
      return;
    }
  }
  // At most 5 s a beat (the rest carried), as WHEP's sampler: the server bounds bufferingMs by the time since
  // the session's previous heartbeat + 5 s, and the presence session's own heartbeats touch the same session.
  const sent = Math.min(bufferingMs, MAX_BUFFERING_PER_BEAT_MS);
  await viewerHeartbeat(sid, qualityLabel(), sent, playbackKbps()).then(() => { bufferingMs -= sent; })
    .catch(() => undefined);
}

function leave(): void {
  stopPresence?.();
  stopPresence = null;
  if (heartbeat !== undefined) clearInterval(heartbeat);
  heartbeat = undefined;
  if (sessionId && sessionId !== "pending" && sessionId !== "presence") leaveStreamOnUnload(sessionId, getToken());
  sessionId = null;
}
window.addEventListener("pagehide", leave);

void main();

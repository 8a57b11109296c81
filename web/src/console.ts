// /console: the broadcaster's page. Sign in, pick a channel, create (or schedule) a stream, choose
// camera and microphone, preview, go live over WHIP, follow viewers and chat, end the stream.
import "./style.css";
import { ApiError, claims, getToken } from "./api";
import { mountHighlightsEditor } from "./chapters";
import { mountChat } from "./chat";
import { mountGuests } from "./guests";
import {
  createStream, endStream, myChannels, myStreams, startStream, streamById, streamKey, type StreamRow,
  watchStream, whipUrlFor,
} from "./ops";
import { mountModeration } from "./moderation";
import { mountPolls } from "./polls";
import { mountQa } from "./qa";
import { mountReactions } from "./reactions";
import { mountSimulcast } from "./simulcast";
import { $, formatDuration, h, mountAuth, mountConnectionBanner, say } from "./ui";
import { publish, WhipError, type WhipSession } from "./whip";

const form = $("#create-form") as HTMLFormElement;
const channelSelect = $("#channel") as HTMLSelectElement;
const existingSelect = $("#existing") as HTMLSelectElement;
const keyInput = $("#stream-key") as HTMLInputElement;
const setupMsg = $("#setup-msg");
const mediaMsg = $("#media-msg");
const preview = $("#preview") as HTMLVideoElement;
const cameraSelect = $("#camera") as HTMLSelectElement;
const micSelect = $("#mic") as HTMLSelectElement;
const goLive = $("#go-live") as HTMLButtonElement;
const endButton = $("#end-stream") as HTMLButtonElement;
const statusBadge = $("#status");
const viewers = $("#viewers");
const duration = $("#duration");
const links = $("#stream-links");

let media: MediaStream | null = null;
let session: WhipSession | null = null;
let current: { id: string; key: string | null } | null = null;
let stream: StreamRow | null = null;
let stopViews: (() => void)[] = [];
let wantLive = false;
let retries = 0;

mountConnectionBanner($("#banner"));
mountAuth($("#auth"), () => void loadAccount());

// ---- account, channels, streams ----------------------------------------------------------------

async function loadAccount(): Promise<void> {
  const who = claims();
  const signedIn = Boolean(getToken() && who?.userId);
  form.querySelectorAll<HTMLElement>("input, select, textarea, button").forEach((el) => {
    (el as HTMLInputElement).disabled = !signedIn;
  });
  if (!signedIn || !who?.userId) {
    say(setupMsg, "Sign in with a development token to create a stream.", "info");
    return;
  }
  try {
    const channels = await myChannels(who.userId);
    channelSelect.replaceChildren(...channels.map((c) => h("option", { value: c.id }, c.name)));
    if (!channels.length) say(setupMsg, "You own or moderate no channel yet; create one first.", "warn");
    else say(setupMsg, "");
    const streams = await myStreams(who.userId);
    existingSelect.replaceChildren(
      h("option", { value: "" }, streams.length ? "— choose —" : "none"),
      ...streams.map((s) => h("option", { value: s.id }, `${s.title} (${s.status})`)),
    );
  } catch (err) {
    say(setupMsg, describe(err), "error");
  }
  const resume = new URLSearchParams(location.search).get("stream");
  if (resume && !current) await useStream(resume, null);
}

function describe(err: unknown): string {
  if (err instanceof ApiError && (err.code === "invalid-jwt" || err.code === "access-denied")) {
    return `Your token was refused (${err.message}). Sign out and paste a fresh one.`;
  }
  return (err as Error).message;
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const data = new FormData(form);
  const scheduled = String(data.get("scheduled_at") ?? "");
  try {
    const created = await createStream({
      channelId: String(data.get("channel")),
      title: String(data.get("title")).trim(),
      description: String(data.get("description") ?? "").trim() || undefined,
      scheduledAt: scheduled ? new Date(scheduled).toISOString() : undefined,
      maxResolution: String(data.get("quality")),
      enableChat: data.get("enable_chat") === "on",
      enableReactions: data.get("enable_reactions") === "on",
      enableQa: data.get("enable_qa") === "on",
      chatMode: String(data.get("chat_mode")),
      slowModeSeconds: Number(data.get("slow_mode") || 0),
      tags: String(data.get("tags") ?? "").split(",").map((t) => t.trim()).filter(Boolean),
    });
    say(setupMsg, scheduled ? "Stream scheduled. Come back here to go live." : "Stream created. Go live when ready.",
      "ok");
    await useStream(created.id, created.streamKey);
  } catch (err) {
    say(setupMsg, `Could not create the stream: ${describe(err)}`, "error");
  }
});

$("#use-existing").addEventListener("click", () => {
  if (existingSelect.value) void useStream(existingSelect.value, null);
});

async function useStream(id: string, key: string | null): Promise<void> {
  for (const stop of stopViews) stop();
  stopViews = [];
  if (!key) {
    try {
      key = await streamKey(id);
    } catch {
      key = null; // not readable here: the broadcaster pastes it
    }
  }
  current = { id, key };
  keyInput.value = key ?? "";
  history.replaceState(null, "", `/console?stream=${id}`);
  try {
    stream = await streamById(id);
  } catch (err) {
    say(setupMsg, describe(err), "error");
  }
  if (!stream) {
    say(setupMsg, "That stream does not exist or is not yours.", "error");
    return;
  }
  links.replaceChildren(
    h("a", { href: `/watch/${id}`, target: "_blank", rel: "noopener", "data-testid": "watch-link" }, "Viewer page"),
    " · ",
    h("a", { href: `/dashboard/${id}`, target: "_blank", rel: "noopener" }, "Health dashboard"),
  );
  $("#stream-title").textContent = stream.title;
  $("#stream-id").textContent = id;
  renderStatus();
  stopViews.push(watchStream(id, (row) => {
    stream = row;
    renderStatus();
  }));
  stopViews.push(mountChat($("#chat"), { streamId: id, moderate: true }));
  stopViews.push(mountQa($("#qa"), { streamId: id, host: true }));
  stopViews.push(mountHighlightsEditor($("#qa"), id));
  stopViews.push(mountPolls($("#chat"), { streamId: id, host: true }));
  stopViews.push(mountModeration($("#chat"), { streamId: id, channelId: stream.channel_id }));
  stopViews.push(mountReactions($("#reactions"), $("#overlay"), mediaMsg, id, false));
  stopViews.push(mountSimulcast($("#simulcast"), id));
  stopViews.push(mountGuests($("#guests"), id));
}

function renderStatus(): void {
  const status = stream?.status ?? "none";
  statusBadge.textContent = status === "live" ? "LIVE" : status;
  statusBadge.dataset.status = status;
  viewers.textContent = String(stream?.current_viewers ?? 0);
  const ended = ["ended", "cancelled", "failed"].includes(status);
  goLive.disabled = !current || !media || Boolean(session) || ended;
  endButton.disabled = !current || ended || (!session && status !== "live" && status !== "preparing");
  if (ended && session) void stopPublishing();
}

setInterval(() => {
  const started = stream?.started_at ? Date.parse(stream.started_at) : null;
  const endedAt = stream?.ended_at ? Date.parse(stream.ended_at) : Date.now();
  duration.textContent = started ? formatDuration((endedAt - started) / 1000) : "00:00";
}, 1000);

// ---- camera and microphone ---------------------------------------------------------------------

/** The stream's preset: the camera size asked for and the bit rate the encoder may send (twice the
 * server's top rung, as the WHIP answer's b=TIAS says). */
const PRESETS: Record<string, { width: number; height: number; kbps: number }> = {
  "1080p": { width: 1920, height: 1080, kbps: 6000 },
  "720p": { width: 1280, height: 720, kbps: 3000 },
  "480p": { width: 854, height: 480, kbps: 1600 },
  "360p": { width: 640, height: 360, kbps: 800 },
};

function preset(): { width: number; height: number; kbps: number } {
  return PRESETS[stream?.max_resolution ?? "720p"] ?? PRESETS["720p"];
}

function cameraPreset(): MediaTrackConstraints {
  const { width, height } = preset();
  return { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 30 } };
}

/** Ask the camera for the preset's size and the encoder for its bit rate, keeping the resolution when
 * bandwidth or CPU is short (frame rate gives way first): the ladder is built from what arrives. */
async function applyPreset(pc: RTCPeerConnection): Promise<void> {
  const video = media?.getVideoTracks()[0];
  if (video) {
    video.contentHint = "detail";
    await video.applyConstraints(cameraPreset()).catch(() => undefined);
  }
  for (const sender of pc.getSenders()) {
    if (sender.track?.kind !== "video") continue;
    const params = sender.getParameters() as RTCRtpSendParameters & { degradationPreference?: string };
    if (!params.encodings?.length) params.encodings = [{}];
    params.encodings[0].maxBitrate = preset().kbps * 1000;
    params.degradationPreference = "maintain-resolution";
    await sender.setParameters(params).catch(() => undefined);
  }
}

async function startMedia(): Promise<void> {
  media?.getTracks().forEach((t) => t.stop());
  media = null;
  try {
    media = await navigator.mediaDevices.getUserMedia({
      video: { ...(cameraSelect.value ? { deviceId: { exact: cameraSelect.value } } : {}), ...cameraPreset() },
      audio: micSelect.value ? { deviceId: { exact: micSelect.value } } : true,
    });
  } catch (err) {
    const name = (err as DOMException).name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      say(mediaMsg, "Camera or microphone access was denied. Allow it in the browser's site settings, then press "
        + "“Retry camera”.", "error");
    } else if (name === "NotFoundError" || name === "OverconstrainedError") {
      say(mediaMsg, "No camera or microphone matches that choice. Plug one in or choose another.", "error");
    } else if (name === "NotReadableError") {
      say(mediaMsg, "The camera is in use by another application.", "error");
    } else {
      say(mediaMsg, `The camera could not start: ${(err as Error).message}`, "error");
    }
    renderStatus();
    return;
  }
  preview.srcObject = media;
  say(mediaMsg, "");
  await listDevices();
  if (session) {
    // Swap tracks in place so a device change does not interrupt the broadcast.
    for (const sender of session.pc.getSenders()) {
      const next = media.getTracks().find((t) => t.kind === sender.track?.kind);
      if (next) await sender.replaceTrack(next);
    }
  }
  renderStatus();
}

async function listDevices(): Promise<void> {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select: HTMLSelectElement, kind: MediaDeviceKind, label: string): void => {
    const active = media?.getTracks().find((t) => `${t.kind}input` === kind)?.getSettings().deviceId;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) =>
      h("option", { value: d.deviceId, selected: d.deviceId === active }, d.label || `${label} ${i + 1}`)));
  };
  fill(cameraSelect, "videoinput", "Camera");
  fill(micSelect, "audioinput", "Microphone");
}

cameraSelect.addEventListener("change", () => void startMedia());
micSelect.addEventListener("change", () => void startMedia());
$("#retry-media").addEventListener("click", () => void startMedia());

// ---- going live --------------------------------------------------------------------------------

goLive.addEventListener("click", async () => {
  if (!current || !media) return;
  const key = keyInput.value.trim();
  if (!key) {
    say(mediaMsg, "Paste the stream key of this stream to go live.", "error");
    keyInput.focus();
    return;
  }
  wantLive = true;
  retries = 0;
  await connect(key);
});

async function connect(key: string): Promise<void> {
  if (!current || !media) return;
  goLive.disabled = true;
  say(mediaMsg, "Connecting to the ingest server…", "info");
  try {
    session = await publish(whipUrlFor(current.id), key, media);
    await applyPreset(session.pc);
  } catch (err) {
    session = null;
    const rejected = err instanceof WhipError && (err.status === 401 || err.status === 403);
    say(mediaMsg, (err as Error).message, "error");
    if (rejected || !wantLive || retries >= 5) {
      wantLive = false;
      renderStatus();
      return;
    }
    retries += 1;
    say(mediaMsg, `${(err as Error).message} Retrying (${retries}/5)…`, "warn");
    setTimeout(() => void connect(key), 2000 * retries);
    return;
  }
  const pc = session.pc;
  pc.addEventListener("connectionstatechange", () => {
    if (session?.pc !== pc) return;
    if (pc.connectionState === "connected") {
      retries = 0;
      say(mediaMsg, "Broadcasting.", "ok");
      ensureLive();
    } else if (pc.connectionState === "disconnected") {
      say(mediaMsg, "Network lost — reconnecting…", "warn");
    } else if (pc.connectionState === "failed" && wantLive) {
      say(mediaMsg, "Connection to the ingest server failed — reconnecting…", "warn");
      const old = session;
      session = null;
      void old?.stop().then(() => connect(key));
    }
  });
  renderStatus();
}

/** Ingest marks the stream live when media arrives; if it has not after a while, ask explicitly. */
function ensureLive(): void {
  const id = current?.id;
  setTimeout(() => {
    if (id && current?.id === id && session && stream && ["scheduled", "preparing"].includes(stream.status)) {
      startStream(id).catch(() => undefined);
    }
  }, 8000);
}

async function stopPublishing(): Promise<void> {
  wantLive = false;
  const old = session;
  session = null;
  await old?.stop();
  renderStatus();
}

endButton.addEventListener("click", async () => {
  if (!current) return;
  endButton.disabled = true;
  try {
    await endStream(current.id);
    say(mediaMsg, "Stream ended.", "ok");
  } catch (err) {
    say(mediaMsg, `Could not end the stream: ${describe(err)}`, "error");
  }
  await stopPublishing();
});

window.addEventListener("pagehide", () => void session?.stop());

void loadAccount();
void startMedia();

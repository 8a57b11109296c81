// WHEP playback (the IETF WHEP draft): offer recvonly audio+video, POST it to /whep/{id}, apply the answer.

/** The ladder's rung names the server accepts as a viewer's quality (resolvers/viewers.py QUALITIES). */
export function renditionLabel(height: number | null | undefined): string {
  if (!height) return "auto";
  return height >= 1080 ? "1080p" : height >= 720 ? "720p" : height >= 480 ? "480p" : "360p";
}

/** The inbound-rtp video counters a heartbeat is made from (RTCInboundRtpStreamStats, the fields used). */
export interface InboundVideo {
  timestamp: number; // ms
  bytesReceived: number;
  frameHeight: number | null;
  totalFreezesDuration: number | null; // s
}

/** What one viewer heartbeat carries, as the HLS player's: rendition, buffering since the last one, kbit/s. */
export interface PlaybackSample {
  quality: string;
  bufferingMs: number;
  bitrateKbps: number | null;
}

// The server refuses a heartbeat whose bufferingMs exceeds the time since its previous heartbeat + 5 s; the
// WHEP session's own server-side heartbeat touches the same session, so at most this much goes per beat and
// the rest waits for the next one.
export const MAX_BUFFERING_PER_BEAT_MS = 5000;
const MAX_KBPS = 1_000_000; // viewerHeartbeat's bound

/** The heartbeat for `cur`, the counters `prev` taken one interval earlier (null: the first, no bitrate yet). */
export function heartbeatFromStats(prev: InboundVideo | null, cur: InboundVideo): PlaybackSample {
  let bitrateKbps: number | null = null;
  let bufferingMs = 0;
  if (prev) {
    const ms = cur.timestamp - prev.timestamp;
    const bytes = cur.bytesReceived - prev.bytesReceived;
    // bits per ms is kbit/s; a counter that went backwards (a new stream) gives no figure.
    if (ms > 0 && bytes >= 0) bitrateKbps = Math.min(MAX_KBPS, Math.round((bytes * 8) / ms));
    const frozen = ((cur.totalFreezesDuration ?? 0) - (prev.totalFreezesDuration ?? 0)) * 1000;
    if (frozen > 0) bufferingMs = Math.min(frozen, Math.max(0, ms));
  }
  return { quality: renditionLabel(cur.frameHeight), bufferingMs, bitrateKbps };
}

function inboundVideo(report: RTCStatsReport): InboundVideo | null {
  let found: InboundVideo | null = null;
  report.forEach((s: Record<string, unknown>) => {
    if (s.type !== "inbound-rtp" || s.kind !== "video") return;
    const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
    found = {
      timestamp: num(s.timestamp) ?? performance.now(),
      bytesReceived: num(s.bytesReceived) ?? 0,
      frameHeight: num(s.frameHeight),
      totalFreezesDuration: num(s.totalFreezesDuration),
    };
  });
  return found;
}

export interface WhepPlayer {
  stop: () => void;
  /** The heartbeat since the previous call, from the peer connection's stats (null when it has none). */
  sample: () => Promise<PlaybackSample | null>;
}

/** Samples a peer connection's inbound video; the buffering not yet sent rides on the next sample. */
function sampler(pc: RTCPeerConnection): () => Promise<PlaybackSample | null> {
  let prev: InboundVideo | null = null;
  let owedMs = 0;
  return async () => {
    if (pc.connectionState === "closed") return null;
    const cur = inboundVideo(await pc.getStats());
    if (!cur) return null;
    const beat = heartbeatFromStats(prev, cur);
    prev = cur;
    owedMs += beat.bufferingMs;
    const bufferingMs = Math.min(owedMs, MAX_BUFFERING_PER_BEAT_MS);
    owedMs -= bufferingMs;
    return { ...beat, bufferingMs: Math.round(bufferingMs) };
  };
}

// Resolves with the player when the server answered 201, or null (no WebRTC, or not playable: use HLS).
export async function playWhep(video: HTMLVideoElement, streamId: string, token: string | null):
    Promise<WhepPlayer | null> {
  if (typeof RTCPeerConnection === "undefined") return null;
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const media = new MediaStream();
  pc.ontrack = (e) => { media.addTrack(e.track); video.srcObject = media; };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise<void>((resolve) => {  // non-trickle: send the offer with its candidates
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
      setTimeout(resolve, 2000);
    });
    const headers: Record<string, string> = { "Content-Type": "application/sdp" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(`/whep/${streamId}`, { method: "POST", headers, body: pc.localDescription?.sdp });
    if (res.status !== 201) { pc.close(); return null; }
    const location = res.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    const stop = (): void => {
      if (location) void fetch(location, { method: "DELETE", headers, keepalive: true }).catch(() => undefined);
      pc.close();
      video.srcObject = null;
    };
    return { stop, sample: sampler(pc) };
  } catch {
    pc.close();
    return null;
  }
}

// Publishing a MediaStream over WHIP (RFC 9725): one SDP offer with every ICE candidate in it
// (non-trickle, the server does not take PATCH updates), one answer back, DELETE to stop.

export class WhipError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

export interface WhipSession {
  pc: RTCPeerConnection;
  resource: string;
  stop(): Promise<void>;
}

function gatheringComplete(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = (): void => {
      if (pc.iceGatheringState === "complete") done();
    };
    // Host candidates arrive at once; a missing STUN server must not hold the offer forever.
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

async function reason(res: Response): Promise<string> {
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text) as { error?: string | { message?: string }; message?: string };
      if (typeof body.error === "object") return body.error.message ?? text;
      return body.message ?? body.error ?? text;
    } catch {
      return text;
    }
  } catch {
    return "";
  }
}

export async function publish(url: string, streamKey: string, media: MediaStream): Promise<WhipSession> {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  for (const track of media.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc, 3000);
    const auth = { Authorization: `Bearer ${streamKey}` };
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", ...auth },
        body: pc.localDescription?.sdp ?? "",
      });
    } catch {
      throw new WhipError("The ingest server cannot be reached. Check your network connection.", 0);
    }
    if (res.status === 401 || res.status === 403) {
      throw new WhipError("The stream key was rejected. Create a new stream or paste its current key.", res.status);
    }
    if (res.status === 404) throw new WhipError("The ingest server does not know this stream.", 404);
    if (res.status === 409) throw new WhipError("Another publisher is already live on this stream.", 409);
    if (res.status === 503) throw new WhipError("The ingest server is busy; try again in a moment.", 503);
    if (res.status !== 201 && res.status !== 200) {
      throw new WhipError(`Ingest refused the offer (${res.status}): ${await reason(res)}`, res.status);
    }
    const location = res.headers.get("Location");
    const resource = location ? new URL(location, new URL(url, window.location.href)).toString() : url;
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    return {
      pc,
      resource,
      async stop() {
        pc.close();
        try {
          await fetch(resource, { method: "DELETE", headers: auth });
        } catch {
          // Ingest ends the session on its own once media stops; nothing more to do offline.
        }
      },
    };
  } catch (err) {
    pc.close();
    throw err;
  }
}

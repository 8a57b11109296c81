// WHEP playback (the IETF WHEP draft): offer recvonly audio+video, POST it to /whep/{id}, apply the answer.
// Resolves with a stop function when the server answered 201, or null (no WebRTC, or not playable: use HLS).
export async function playWhep(video: HTMLVideoElement, streamId: string, token: string | null):
    Promise<(() => void) | null> {
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
    return () => {
      if (location) void fetch(location, { method: "DELETE", headers, keepalive: true }).catch(() => undefined);
      pc.close();
      video.srcObject = null;
    };
  } catch {
    pc.close();
    return null;
  }
}

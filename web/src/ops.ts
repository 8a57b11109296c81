// Every GraphQL document the pages send, in one place. Table fields follow Hasura's naming over the
// nchat_* tables; camelCase operations are the domain API (createStream, sendChatMessage, ...).
import { ApiError, gql, live, subscribe } from "./api";

export interface StreamRow {
  id: string;
  title: string;
  description: string | null;
  status: string;
  channel_id: string;
  broadcaster_id: string;
  scheduled_at: string | null;
  started_at: string | null;
  ended_at: string | null;
  current_viewers: number;
  peak_viewers: number;
  hls_manifest_url: string | null;
  recording_url: string | null;
  enable_chat: boolean;
  enable_reactions: boolean;
  enable_qa: boolean;
  chat_mode: string;
  max_resolution: string;
}

const STREAM_FIELDS = `id title description status channel_id broadcaster_id scheduled_at started_at ended_at
  current_viewers peak_viewers hls_manifest_url recording_url enable_chat enable_reactions enable_qa chat_mode
  max_resolution`;

export interface ChatRow {
  id: string;
  content: string;
  created_at: string;
  is_pinned: boolean;
  is_deleted: boolean;
  // visible; held (its author and the moderators see it until reviewed); denied (its author only)
  status?: string;
  user_id: string;
  user: { display_name: string | null; username: string } | null;
}

export interface QuestionRow {
  id: string;
  content: string;
  status: string;
  upvotes: number;
  answer: string | null;
  user_id: string;
  created_at: string;
}

export interface ReactionRow {
  id: string;
  emoji: string;
  position_x: number | null;
  position_y: number | null;
  created_at: string;
}

export interface RecordingRow {
  id: string;
  url: string | null;
  status: string;
  duration_seconds: number | null;
}

export interface MetricRow {
  recorded_at: string;
  current_viewer_count: number;
  bitrate_kbps: number | null;
  fps: number | null;
  health_score: number | null;
  resolution: string | null;
}

export interface CreatedStream {
  id: string;
  streamKey: string | null;
  whipUrl: string | null;
}

export const EMOJIS = ["👍", "❤️", "😂", "🔥", "🎉", "👏", "😮"];

export function whipUrlFor(streamId: string): string {
  return `/whip/${streamId}`;
}

// The players play only URLs the server makes, on this page's own origin, from the stream's id: never
// `hls_manifest_url`/`recording_url` from the row, which a broadcaster could point at her own host.
export function hlsUrlFor(stream: Pick<StreamRow, "id">): string {
  return `/hls/${encodeURIComponent(stream.id)}/master.m3u8`;
}

export function recordingUrlFor(streamId: string): string {
  return `/recordings/${encodeURIComponent(streamId)}/master.m3u8`;
}

/** Whether `url` (relative or absolute) is on this page's origin: the only place credentials go. */
export function isOwnOrigin(url: string): boolean {
  try {
    return new URL(url, location.href).origin === location.origin;
  } catch {
    return false;
  }
}

export interface MediaToken {
  token: string;
  expiresAt: string;
}

/** A few minutes' token for one stream's media (never the login token: it goes into media URLs). */
export async function mediaToken(streamId: string): Promise<MediaToken> {
  const data = await gql<{ mediaToken: MediaToken }>(
    `mutation MediaToken($id: ID!) { mediaToken(streamId: $id) { token expiresAt } }`,
    { id: streamId },
  );
  return data.mediaToken;
}

// ---- queries -----------------------------------------------------------------------------------

export async function myChannels(userId: string): Promise<{ id: string; name: string }[]> {
  const data = await gql<{
    nchat_channels: { id: string; name: string; owner_id: string | null }[];
    nchat_channel_members: { channel_id: string; role: string }[];
  }>(
    `query MyChannels($me: uuid!) {
      nchat_channels(order_by: {name: asc}) { id name owner_id }
      nchat_channel_members(where: {user_id: {_eq: $me}}) { channel_id role }
    }`,
    { me: userId },
  );
  const managed = new Set(
    data.nchat_channel_members.filter((m) => ["owner", "admin", "moderator"].includes(m.role)).map((m) => m.channel_id),
  );
  return data.nchat_channels.filter((c) => c.owner_id === userId || managed.has(c.id));
}

export async function streamById(id: string): Promise<StreamRow | null> {
  const data = await gql<{ nchat_streams_by_pk: StreamRow | null }>(
    `query Stream($id: uuid!) { nchat_streams_by_pk(id: $id) { ${STREAM_FIELDS} } }`,
    { id },
  );
  return data.nchat_streams_by_pk;
}

export async function myStreams(userId: string): Promise<StreamRow[]> {
  const data = await gql<{ nchat_streams: StreamRow[] }>(
    `query MyStreams($me: uuid!) {
      nchat_streams(where: {broadcaster_id: {_eq: $me}, status: {_in: ["scheduled", "preparing", "live"]}},
                    order_by: {created_at: desc}, limit: 20) { ${STREAM_FIELDS} }
    }`,
    { me: userId },
  );
  return data.nchat_streams;
}

export async function upcomingStreams(): Promise<(StreamRow & { channel: { name: string } | null })[]> {
  const data = await gql<{ nchat_streams: (StreamRow & { channel: { name: string } | null })[] }>(
    `query Upcoming {
      nchat_streams(where: {status: {_in: ["scheduled", "live"]}}, order_by: {scheduled_at: asc_nulls_last},
                    limit: 100) { ${STREAM_FIELDS} channel { name } }
    }`,
  );
  return data.nchat_streams;
}

export async function recordings(streamId: string): Promise<RecordingRow[]> {
  const data = await gql<{ nchat_stream_recordings: RecordingRow[] }>(
    `query Recordings($id: uuid!) {
      nchat_stream_recordings(where: {stream_id: {_eq: $id}, status: {_eq: "ready"}}, order_by: {created_at: desc}) {
        id url status duration_seconds
      }
    }`,
    { id: streamId },
  );
  return data.nchat_stream_recordings;
}

/** The stream key is the broadcaster's secret; RLS gives it to them and admins only. */
export async function streamKey(id: string): Promise<string | null> {
  const data = await gql<{ nchat_streams_by_pk: { stream_key: string | null } | null }>(
    `query Key($id: uuid!) { nchat_streams_by_pk(id: $id) { stream_key } }`,
    { id },
  );
  return data.nchat_streams_by_pk?.stream_key ?? null;
}

// ---- live views --------------------------------------------------------------------------------

export function watchStream(id: string, onData: (s: StreamRow | null) => void, onError?: (e: Error) => void) {
  return live<{ nchat_streams_by_pk: StreamRow | null }>(
    "WatchStream($id: uuid!)",
    `nchat_streams_by_pk(id: $id) { ${STREAM_FIELDS} }`,
    { id },
    (d) => onData(d.nchat_streams_by_pk),
    onError,
  );
}

export function watchChat(id: string, onData: (rows: ChatRow[]) => void, onError?: (e: Error) => void) {
  return live<{ nchat_stream_chat_messages: ChatRow[] }>(
    "WatchChat($id: uuid!)",
    `nchat_stream_chat_messages(where: {stream_id: {_eq: $id}}, order_by: {created_at: desc}, limit: 50) {
      id content created_at is_pinned is_deleted status user_id user { display_name username }
    }`,
    { id },
    (d) => onData(d.nchat_stream_chat_messages),
    onError,
  );
}

export function watchQuestions(id: string, onData: (rows: QuestionRow[]) => void, onError?: (e: Error) => void) {
  return live<{ nchat_stream_questions: QuestionRow[] }>(
    "WatchQuestions($id: uuid!)",
    `nchat_stream_questions(where: {stream_id: {_eq: $id}, status: {_neq: "dismissed"}},
                            order_by: [{upvotes: desc}, {created_at: asc}], limit: 50) {
      id content status upvotes answer user_id created_at
    }`,
    { id },
    (d) => onData(d.nchat_stream_questions),
    onError,
  );
}

export function watchReactions(id: string, onData: (rows: ReactionRow[]) => void, onError?: (e: Error) => void) {
  return live<{ nchat_stream_reactions: ReactionRow[] }>(
    "WatchReactions($id: uuid!)",
    `nchat_stream_reactions(where: {stream_id: {_eq: $id}}, order_by: {created_at: desc}, limit: 30) {
      id emoji position_x position_y created_at
    }`,
    { id },
    (d) => onData(d.nchat_stream_reactions),
    onError,
  );
}

export function watchMetrics(id: string, onData: (rows: MetricRow[]) => void, onError?: (e: Error) => void) {
  return live<{ nchat_stream_quality_metrics: MetricRow[] }>(
    "WatchMetrics($id: uuid!)",
    `nchat_stream_quality_metrics(where: {stream_id: {_eq: $id}}, order_by: {recorded_at: desc}, limit: 360) {
      recorded_at current_viewer_count bitrate_kbps fps health_score resolution
    }`,
    { id },
    (d) => onData([...d.nchat_stream_quality_metrics].reverse()),
    onError,
  );
}

// ---- domain operations -------------------------------------------------------------------------

export interface CreateStreamInput {
  channelId: string;
  title: string;
  description?: string;
  scheduledAt?: string;
  maxResolution: string;
  enableChat: boolean;
  enableReactions: boolean;
  enableQa: boolean;
  chatMode: string;
  slowModeSeconds: number;
  tags: string[];
}

export async function createStream(input: CreateStreamInput): Promise<CreatedStream> {
  const data = await gql<{ createStream: CreatedStream }>(
    `mutation CreateStream($input: CreateStreamInput!) {
      createStream(input: $input) { id streamKey whipUrl }
    }`,
    { input },
  );
  return data.createStream;
}

export async function startStream(streamId: string): Promise<void> {
  await gql(`mutation Start($id: ID!) { startStream(streamId: $id) { id status } }`, { id: streamId });
}

export async function endStream(streamId: string): Promise<void> {
  await gql(`mutation End($id: ID!) { endStream(streamId: $id) { id status } }`, { id: streamId });
}

export async function cancelStream(streamId: string): Promise<void> {
  await gql(`mutation Cancel($id: ID!) { cancelStream(streamId: $id) { id status } }`, { id: streamId });
}

export async function sendChatMessage(streamId: string, content: string): Promise<void> {
  await gql(
    `mutation Chat($id: ID!, $content: String!) { sendChatMessage(streamId: $id, content: $content) { id } }`,
    { id: streamId, content },
  );
}

export async function deleteChatMessage(messageId: string): Promise<void> {
  await gql(`mutation Del($id: ID!) { deleteChatMessage(messageId: $id) { id } }`, { id: messageId });
}

export async function pinChatMessage(messageId: string, pinned: boolean): Promise<void> {
  const op = pinned ? "pinChatMessage" : "unpinChatMessage";
  await gql(`mutation Pin($id: ID!) { ${op}(messageId: $id) { id } }`, { id: messageId });
}

export async function sendReaction(streamId: string, emoji: string, x: number, y: number): Promise<void> {
  await gql(
    `mutation React($id: ID!, $emoji: String!, $x: Float, $y: Float) {
      sendReaction(streamId: $id, emoji: $emoji, positionX: $x, positionY: $y) { id }
    }`,
    { id: streamId, emoji, x, y },
  );
}

export async function joinStream(streamId: string, quality: string): Promise<string> {
  const data = await gql<{ joinStream: { sessionId: string } }>(
    `mutation Join($id: ID!, $quality: String) { joinStream(streamId: $id, quality: $quality) { sessionId } }`,
    { id: streamId, quality },
  );
  return data.joinStream.sessionId;
}

export async function viewerHeartbeat(
  sessionId: string, quality: string, bufferingMs: number, bitrateKbps: number | null = null,
): Promise<void> {
  await gql(
    `mutation Beat($sid: String!, $quality: String, $buffering: Int, $kbps: Int) {
      viewerHeartbeat(sessionId: $sid, quality: $quality, bufferingMs: $buffering, bitrateKbps: $kbps) { sessionId }
    }`,
    { sid: sessionId, quality, buffering: Math.round(bufferingMs), kbps: bitrateKbps },
  );
}

export function leaveStreamOnUnload(sessionId: string, token: string | null): void {
  // keepalive lets the request outlive the page, which sendBeacon cannot do with an auth header.
  void fetch("/v1/graphql", {
    method: "POST",
    keepalive: true,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({
      query: `mutation Leave($sid: String!) { leaveStream(sessionId: $sid) { sessionId } }`,
      variables: { sid: sessionId },
    }),
  }).catch(() => undefined);
}

export async function askQuestion(streamId: string, content: string): Promise<void> {
  await gql(
    `mutation Ask($id: ID!, $content: String!) { askQuestion(streamId: $id, content: $content) { id } }`,
    { id: streamId, content },
  );
}

export async function upvoteQuestion(questionId: string): Promise<void> {
  await gql(`mutation Up($id: ID!) { upvoteQuestion(questionId: $id) { id } }`, { id: questionId });
}

export async function answerQuestion(questionId: string, answer: string): Promise<void> {
  await gql(
    `mutation Answer($id: ID!, $answer: String!) { answerQuestion(questionId: $id, answer: $answer) { id } }`,
    { id: questionId, answer },
  );
}

export async function remindMe(streamId: string): Promise<void> {
  await gql(`mutation Remind($id: ID!) { setStreamReminder(streamId: $id, enabled: true) { streamId } }`, { id: streamId });
}

/**
 * Counts the caller as a viewer for as long as the subscription (or its websocket) lives: the server
 * joins on start and leaves when it ends, so a closed tab stops counting within seconds.
 */
export function watchAsViewer(id: string, onCount: (n: number) => void, onError: (e: ApiError) => void) {
  return subscribe<{ watchStream: { count: number } }>(
    `subscription WatchAsViewer($id: ID!) { watchStream(streamId: $id) { count } }`,
    { id },
    (d) => onCount(d.watchStream.count),
    onError,
  );
}

export interface ReactionEvent {
  id: string;
  emoji: string;
  positionX: number | null;
  positionY: number | null;
}

/** Reactions as they happen, batched by the server (at most one batch per 100 ms). */
export function reactionEvents(id: string, onBatch: (rows: ReactionEvent[]) => void, onError: (e: ApiError) => void) {
  return subscribe<{ reactions: { reactions: ReactionEvent[] } }>(
    `subscription Reactions($id: ID!) { reactions(streamId: $id) { reactions { id emoji positionX positionY } } }`,
    { id },
    (d) => onBatch(d.reactions.reactions),
    onError,
  );
}

// GraphQL over HTTP (queries, mutations) and over a websocket (subscriptions), Hasura style:
// the JWT goes in `Authorization: Bearer` on HTTP and in connection_init's headers on the socket.
import { createClient, type Client } from "graphql-ws";

const TOKEN_KEY = "nchat.token";
export const GRAPHQL_PATH = "/v1/graphql";

export interface Claims {
  userId: string | null;
  role: string;
  expiresAt: number | null;
}

export class ApiError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

export function getToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token.trim());
  else localStorage.removeItem(TOKEN_KEY);
  resetSocket();
}

/** Reads the token's Hasura claims for display only; the server verifies the signature. */
export function claims(token = getToken()): Claims | null {
  if (!token) return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const payload = JSON.parse(json) as Record<string, unknown>;
    const hasura = (payload["https://hasura.io/jwt/claims"] ?? {}) as Record<string, string>;
    const lower: Record<string, string> = {};
    for (const [k, v] of Object.entries(hasura)) lower[k.toLowerCase()] = v;
    return {
      userId: lower["x-hasura-user-id"] ?? (payload.sub as string | undefined) ?? null,
      role: lower["x-hasura-default-role"] ?? "user",
      expiresAt: typeof payload.exp === "number" ? payload.exp : null,
    };
  } catch {
    return null;
  }
}

function authHeaders(): Record<string, string> {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(GRAPHQL_PATH, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("The server cannot be reached. Check your network connection.", "network");
  }
  let body: GraphQLResponse<T>;
  try {
    body = (await res.json()) as GraphQLResponse<T>;
  } catch {
    throw new ApiError(`The server answered ${res.status} without a GraphQL body.`, "unexpected");
  }
  if (body.errors?.length) {
    const first = body.errors[0];
    throw new ApiError(first.message, first.extensions?.code ?? "unexpected");
  }
  if (body.data == null) throw new ApiError("The server returned no data.", "unexpected");
  return body.data;
}

// ---- realtime ----------------------------------------------------------------------------------

export type SocketState = "connecting" | "connected" | "reconnecting" | "closed";
type StateListener = (state: SocketState, detail?: string) => void;
const stateListeners = new Set<StateListener>();
let socket: Client | null = null;
let everConnected = false;

export function onSocketState(listener: StateListener): void {
  stateListeners.add(listener);
}

function emitState(state: SocketState, detail?: string): void {
  for (const l of stateListeners) l(state, detail);
}

function wsUrl(): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}${GRAPHQL_PATH}`;
}

function getSocket(): Client {
  if (socket) return socket;
  socket = createClient({
    url: wsUrl(),
    connectionParams: () => ({ headers: authHeaders() }),
    lazy: true,
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    on: {
      connecting: () => emitState(everConnected ? "reconnecting" : "connecting"),
      connected: () => {
        everConnected = true;
        emitState("connected");
      },
      closed: (event) => {
        const e = event as CloseEvent | undefined;
        // 1000 is the lazy client closing an idle socket itself: nothing is wrong.
        if (e?.code === 1000) return;
        if (everConnected) emitState("reconnecting", e?.reason || undefined);
        else emitState("closed", e?.reason || undefined);
      },
    },
  });
  return socket;
}

function resetSocket(): void {
  if (socket) void socket.dispose();
  socket = null;
  everConnected = false;
}

/**
 * A live view of `selection` (a Hasura query body such as `nchat_streams_by_pk(id: $id) { ... }`):
 * a subscription over the websocket; if the server refuses the subscription itself, the same
 * document is polled over HTTP once a second so the page keeps working.
 */
export function live<T>(
  header: string,
  selection: string,
  variables: Record<string, unknown>,
  onData: (data: T) => void,
  onError: (err: ApiError) => void = () => undefined,
): () => void {
  let stopped = false;
  let timer: number | undefined;
  const poll = async (): Promise<void> => {
    if (stopped) return;
    try {
      onData(await gql<T>(`query ${header} { ${selection} }`, variables));
    } catch (err) {
      onError(err as ApiError);
    }
    if (!stopped) timer = window.setTimeout(poll, 1000);
  };
  const unsubscribe = getSocket().subscribe<T>(
    { query: `subscription ${header} { ${selection} }`, variables },
    {
      next: (msg) => {
        if (msg.errors?.length) {
          const first = msg.errors[0] as { message: string; extensions?: { code?: string } };
          onError(new ApiError(first.message, first.extensions?.code ?? "unexpected"));
        } else if (msg.data) onData(msg.data);
      },
      error: () => {
        // The socket itself retries forever, so an error here is the server refusing this
        // operation (or the protocol): fall back to polling rather than going quiet.
        if (!stopped) void poll();
      },
      complete: () => undefined,
    },
  );
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    unsubscribe();
  };
}

/** An event subscription (no polling equivalent): `onError` gets the server's refusal or protocol error. */
export function subscribe<T>(
  query: string,
  variables: Record<string, unknown>,
  onData: (data: T) => void,
  onError: (err: ApiError) => void,
): () => void {
  return getSocket().subscribe<T>(
    { query, variables },
    {
      next: (msg) => {
        if (msg.errors?.length) {
          const first = msg.errors[0] as { message: string; extensions?: { code?: string } };
          onError(new ApiError(first.message, first.extensions?.code ?? "unexpected"));
        } else if (msg.data) onData(msg.data);
      },
      error: (err) => {
        const list = Array.isArray(err) ? (err as { message: string }[]) : null;
        onError(new ApiError(list?.[0]?.message ?? "subscription failed", "unexpected"));
      },
      complete: () => undefined,
    },
  );
}

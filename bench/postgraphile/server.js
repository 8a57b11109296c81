// PostGraphile v4 over the bench's database: a same-run baseline for bench/graphql_bench.py.
// Not part of nchat-live. Each request runs as PGL_ROLE (a reader role holding SELECT on every column,
// a member of nchat_user: v4 selects whole rows in subqueries, which nchat_user's column grants refuse)
// with the caller's claims in `hasura.user`, so the same row-level security policies apply. The claims
// come from the same bearer token nchat-live gets, verified here as it is there (HS256, JWT_KEY, the
// Hasura claims namespace), so both servers do the same work per request.
//   node server.js  (env DATABASE_URL, PORT, PGL_ROLE, JWT_KEY)
const crypto = require("crypto");
const http = require("http");
const jwt = require("jsonwebtoken");
const { postgraphile } = require("postgraphile");

const NAMESPACE = "https://hasura.io/jwt/claims";
// A key object made once: given the secret as a string, jsonwebtoken 9 makes one per call (~0.8 ms a
// verify on this machine, ~25 us with this).
const KEY = crypto.createSecretKey(Buffer.from(process.env.JWT_KEY || ""));

function claims(req) {
  const [scheme, token] = (req.headers.authorization || "").split(" ");
  if (scheme !== "Bearer" || !token) {
    return "{}";
  }
  // Throws on a bad token: PostGraphile answers with the error, as nchat-live refuses it.
  const payload = jwt.verify(token, KEY, { algorithms: ["HS256"] });
  const granted = payload[NAMESPACE] || {};
  return JSON.stringify({ "x-hasura-user-id": granted["x-hasura-user-id"], "x-hasura-role": granted["x-hasura-default-role"] });
}

const pgl = postgraphile(process.env.DATABASE_URL, "public", {
  pgSettings: (req) => ({ role: process.env.PGL_ROLE, "hasura.user": claims(req) }),
  appendPlugins: [require("@graphile/pg-aggregates").default],
  disableQueryLog: true,
  retryOnInitFail: false,
  setofFunctionsContainNulls: false,
  ignoreRBAC: false,
  graphiql: false,
});

http.createServer(pgl).listen(Number(process.env.PORT), "127.0.0.1", () => {
  process.stdout.write("ready\n");
});

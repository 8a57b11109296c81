// PostGraphile v4 over the bench's database: a same-run baseline for bench/graphql_bench.py.
// Not part of nchat-live. Each request runs as PGL_ROLE (a reader role holding SELECT on every column,
// a member of nchat_user: v4 selects whole rows in subqueries, which nchat_user's column grants refuse)
// with the caller's claims in `hasura.user`, so the same row-level security policies apply.
//   node server.js  (env DATABASE_URL, PORT, PGL_ROLE)
const http = require("http");
const { postgraphile } = require("postgraphile");

const pgl = postgraphile(process.env.DATABASE_URL, "public", {
  pgSettings: (req) => ({ role: process.env.PGL_ROLE, "hasura.user": req.headers["x-hasura-claims"] || "{}" }),
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

#!/usr/bin/env node
// graphql-http's audit of the GraphQL-over-HTTP spec against a server: one line of JSON per
// audit ({id, name, status: ok|warn|error, reason}), then a summary; exit 1 on a failed MUST.
//   node audit.mjs http://127.0.0.1:8000/graphql
import { auditServer } from "graphql-http";

const url = process.argv[2];
if (!url) {
  console.error("usage: node audit.mjs URL");
  process.exit(2);
}
const results = await auditServer({ url });
const out = results.map((r) => ({ id: r.id, name: r.name, status: r.status, reason: r.reason || null }));
for (const r of out) console.log(JSON.stringify(r));
const count = (s) => out.filter((r) => r.status === s).length;
console.log(JSON.stringify({ summary: { ok: count("ok"), warn: count("warn"), error: count("error") } }));
process.exit(count("error") ? 1 : 0);

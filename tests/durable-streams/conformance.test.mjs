// The Durable Streams conformance suite, pinned in package.json, against the
// server at DS_URL (a gateway started by crates/sse-bridge/tests/durable_streams.rs,
// or any server: `DS_URL=http://127.0.0.1:8000 npx vitest run conformance.test.mjs`).
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.DS_URL
if (!baseUrl) throw new Error("DS_URL is required (the server's base URL)")
runConformanceTests({ baseUrl })

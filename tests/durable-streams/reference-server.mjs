// The reference Node server of Durable Streams, for comparisons (the
// conformance baseline and BENCHMARKS.md): `node reference-server.mjs PORT`.
import { DurableStreamTestServer } from "@durable-streams/server"

const port = Number(process.argv[2] ?? 4437)
const server = new DurableStreamTestServer({ port, host: "127.0.0.1" })
await server.start()
console.log(`listening on http://127.0.0.1:${port}`)

// A TCP proxy that cuts connections mid-response, for resumption tests.
// Each connection accepted gets a byte budget for what it forwards from the
// upstream to the client; past it, both sides are destroyed (a reset mid
// headers or mid body, as a flaky network or a proxy's idle timeout does).
// Budgets grow with each connection, so every response eventually fits.
import net from "node:net"

/**
 * Starts the proxy on a free loopback port in front of `upstream`
 * (`host:port`). `budget(k)` is the k-th connection's byte budget
 * (Infinity: never cut). Returns `{ url, cuts, connections, close }`.
 */
export async function startCutProxy(upstream, budget) {
  const [host, port] = [upstream.split(":")[0], Number(upstream.split(":")[1])]
  const stats = { cuts: 0, connections: 0 }
  const sockets = new Set()
  const server = net.createServer((client) => {
    const k = stats.connections++
    let left = budget(k)
    const server = net.connect(port, host)
    sockets.add(client)
    sockets.add(server)
    const cut = () => {
      client.destroy()
      server.destroy()
    }
    client.on("data", (chunk) => server.write(chunk))
    server.on("data", (chunk) => {
      if (chunk.length <= left) {
        left -= chunk.length
        client.write(chunk)
        return
      }
      // Forward the part within budget, then cut.
      if (left > 0) client.write(chunk.subarray(0, left))
      left = 0
      stats.cuts++
      client.end(() => cut())
      setTimeout(cut, 5)
    })
    client.on("close", () => { server.destroy(); sockets.delete(client) })
    server.on("close", () => { client.destroy(); sockets.delete(server) })
    client.on("error", () => {})
    server.on("error", () => {})
  })
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port: local } = server.address()
  return {
    url: `http://127.0.0.1:${local}`,
    stats,
    close: () => {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

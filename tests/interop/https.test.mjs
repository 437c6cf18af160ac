// Ten concurrent sessions from one page over HTTPS (run by
// crates/sse-bridge/tests/tls_http2.rs): over HTTP/2 they share one
// connection; over HTTP/1.1 a browser opens at most 6 per origin and the
// 7th would wait. The gateway's certificate comes from a private CA, so
// Chromium is told to accept it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const url = process.env.SSE_BRIDGE_HTTPS_URL;
const executablePath = process.env.SSE_BRIDGE_CHROMIUM ?? "/usr/bin/chromium";

test("ten sessions stream at once over one HTTP/2 connection", async () => {
  assert.ok(url, "SSE_BRIDGE_HTTPS_URL is set");
  const browser = await chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--ignore-certificate-errors"],
  });
  try {
    const page = await browser.newPage({ ignoreHTTPSErrors: true });
    await page.goto(`${url}/`);
    const result = await page.evaluate(async () => {
      const session = async () => {
        const response = await fetch("/v1/react/sessions", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ user_query: "What is 2+3?" }),
        });
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let text = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
        }
        return text.includes('"event_type":"FinalAnswerStreamEnd"');
      };
      const completed = await Promise.all(Array.from({ length: 10 }, session));
      const protocols = performance
        .getEntriesByType("resource")
        .filter((entry) => entry.name.endsWith("/v1/react/sessions"))
        .map((entry) => entry.nextHopProtocol);
      return { completed, protocols };
    });
    assert.deepEqual(result.completed, Array(10).fill(true));
    assert.equal(result.protocols.length, 10);
    assert.ok(result.protocols.every((p) => p === "h2"), JSON.stringify(result.protocols));
  } finally {
    await browser.close();
  }
});

// A plain HTTP pass-through proxy (node:http in, undici out), the floor for the latency any separate proxy
// process adds on this machine: the benchmark runs it beside mcplex so that mcplex's overhead can be read against
// what forwarding alone costs. Event streams are streamed; other answers are written in one go. It knows nothing
// about MCP or LLMs and is not part of mcplex.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const target = new URL(process.argv[2] ?? '');
const pool = new Pool(target.origin, { connections: 64 });
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host']);

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  // A client that goes away (a closed SSE stream) must free the upstream connection as well.
  const abort = new AbortController();
  res.on('close', () => abort.abort());
  req.on('end', () => {
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(key) && typeof value === 'string') headers[key] = value;
    }
    pool
      .request({
        method: req.method === 'GET' ? 'GET' : req.method === 'DELETE' ? 'DELETE' : 'POST',
        path: target.pathname,
        headers,
        body: req.method === 'POST' ? Buffer.concat(chunks) : null,
        signal: abort.signal,
      })
      .then(async (upstream) => {
        const out: Record<string, string | string[]> = {};
        for (const [key, value] of Object.entries(upstream.headers)) {
          if (!HOP_BY_HOP.has(key) && value !== undefined) out[key] = value;
        }
        if (String(upstream.headers['content-type'] ?? '').includes('text/event-stream')) {
          // A stream goes on as it arrives.
          res.writeHead(upstream.statusCode, out);
          for await (const chunk of upstream.body) res.write(chunk);
          res.end();
          return;
        }
        // Anything else is read whole and written in one go, headers and body in a single write: the cheapest
        // way to forward a small answer, so that this floor is as low as a plain proxy gets.
        const body = Buffer.from(await upstream.body.arrayBuffer());
        out['content-length'] = String(body.length);
        res.writeHead(upstream.statusCode, out);
        res.end(body);
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`LISTENING http://127.0.0.1:${(server.address() as AddressInfo).port}${target.pathname}\n`);
});

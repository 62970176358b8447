// A plain HTTP pass-through proxy (node:http in, undici out), the floor for the latency any separate proxy
// process adds on this machine: the benchmark runs it beside mcplex so that mcplex's overhead can be read against
// what forwarding alone costs. It uses undici's dispatch (no per-request stream, promise or AbortSignal), and
// writes a non-streamed answer in one go, so that this floor is as low as a Node proxy gets. Event streams are
// streamed as they arrive. It knows nothing about MCP or LLMs and is not part of mcplex.
import { createServer } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const target = new URL(process.argv[2] ?? '');
const pool = new Pool(target.origin, { connections: 64 });
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host']);

function endToEnd(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(key) && value !== undefined) out[key] = value;
  }
  return out;
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let status = 502;
    let headers: Record<string, string | string[]> = {};
    let streaming = false;
    const body: Buffer[] = [];
    pool.dispatch(
      {
        method: req.method === 'GET' ? 'GET' : req.method === 'DELETE' ? 'DELETE' : 'POST',
        path: target.pathname,
        headers: endToEnd(req.headers) as Record<string, string>,
        body: req.method === 'POST' ? Buffer.concat(chunks) : null,
      },
      {
        onRequestStart(controller) {
          // A client that goes away (a closed SSE stream) must free the upstream connection as well.
          res.once('close', () => {
            if (!res.writableFinished) controller.abort(new Error('client went away'));
          });
        },
        onResponseStart(_controller, statusCode, upstreamHeaders) {
          status = statusCode;
          headers = endToEnd(upstreamHeaders);
          streaming = String(upstreamHeaders['content-type'] ?? '').includes('text/event-stream');
          if (streaming) res.writeHead(status, headers);
        },
        onResponseData(_controller, chunk) {
          if (streaming) res.write(chunk);
          else body.push(chunk);
        },
        onResponseEnd() {
          if (streaming) {
            res.end();
            return;
          }
          const whole = Buffer.concat(body);
          headers['content-length'] = String(whole.length);
          res.writeHead(status, headers);
          res.end(whole);
        },
        onResponseError() {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        },
      },
    );
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`LISTENING http://127.0.0.1:${(server.address() as AddressInfo).port}${target.pathname}\n`);
});

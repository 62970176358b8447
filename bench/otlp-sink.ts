// An OTLP/HTTP traces receiver for benchmarks: accepts POST /v1/traces (JSON), counts the spans it got and answers
// 200; GET /count reports the count. It runs in its own process, as a collector would.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const SPAN_ID = Buffer.from('"spanId"');
let spans = 0;
let exports = 0;
const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/count') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ spans, exports }));
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    if (req.method !== 'POST' || req.url !== '/v1/traces') {
      res.writeHead(404).end();
      return;
    }
    // Every span has one spanId; counting them in the bytes is enough here, and cheaper than decoding the batch.
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    for (let at = body.indexOf(SPAN_ID); at !== -1; at = body.indexOf(SPAN_ID, at + SPAN_ID.length)) spans++;
    exports++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`LISTENING http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});

// An OTLP/HTTP traces receiver for benchmarks: accepts POST /v1/traces (protobuf or JSON), counts the spans it got
// and answers 200; GET /count reports the count. It runs in its own process, as a collector would.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const SPAN_ID = Buffer.from('"spanId"');

/** Reads the varint at `at` of `bytes`: its value and the position after it. */
function varint(bytes: Buffer, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = bytes[at++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at];
    scale *= 0x80;
  }
}

/**
 * Calls `visit` for each length-delimited field numbered `field` in `bytes[from, to)`, skipping the rest (the
 * wire types OTLP's messages use).
 */
function eachField(bytes: Buffer, from: number, to: number, field: number, visit: (from: number, to: number) => void) {
  let at = from;
  while (at < to) {
    const [tag, afterTag] = varint(bytes, at);
    at = afterTag;
    const wire = tag & 7;
    if (wire === 0) at = varint(bytes, at)[1];
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const [length, start] = varint(bytes, at);
      at = start + length;
      if (tag >>> 3 === field) visit(start, at);
    } else throw new Error(`wire type ${wire}`);
  }
}

/** The spans of an ExportTraceServiceRequest: ResourceSpans (1) > ScopeSpans (2) > Span (2). */
function countProtobuf(body: Buffer): number {
  let count = 0;
  eachField(body, 0, body.length, 1, (rs, re) =>
    eachField(body, rs, re, 2, (ss, se) => eachField(body, ss, se, 2, () => count++)),
  );
  return count;
}
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
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    if (/protobuf/.test(req.headers['content-type'] ?? '')) spans += countProtobuf(body);
    // Every JSON span has one spanId; counting them in the bytes is enough here, and cheaper than decoding it.
    else for (let at = body.indexOf(SPAN_ID); at !== -1; at = body.indexOf(SPAN_ID, at + SPAN_ID.length)) spans++;
    exports++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`LISTENING http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});

// The HTTP fast path resumes a legacy-era response stream that ends before its answer (SEP-1699 polling): a GET
// with Last-Event-ID after the server's `retry:` delay. A 2026-07-28 stream, or one without event ids, is not
// resumed.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpForwarder } from '../src/mcp/upstream/http-forwarder.js';
import type { ForwardSession, HttpForwarder } from '../src/mcp/upstream/http-forwarder.js';

interface Get {
  at: number;
  lastEventId: string | undefined;
  sessionId: string | undefined;
}

/** A server whose POST streams send a priming event and end; a GET answers the pending request. */
async function pollingServer(options: { eventIds: boolean }) {
  const gets: Get[] = [];
  let pendingId: unknown;
  let closedAt = 0;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET') {
      gets.push({
        at: Date.now(),
        lastEventId: req.headers['last-event-id'] as string | undefined,
        sessionId: req.headers['mcp-session-id'] as string | undefined,
      });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const answer = { jsonrpc: '2.0', id: pendingId, result: { content: [{ type: 'text', text: 'done' }] } };
      // Left open, as the suite's mock server leaves it: the client closes it once it has the answer.
      res.write(`id: e2\nevent: message\ndata: ${JSON.stringify(answer)}\n\n`);
      return;
    }
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      pendingId = (JSON.parse(body) as { id: unknown }).id;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(options.eventIds ? 'id: e1\nretry: 200\ndata: \n\n' : 'retry: 200\ndata: \n\n');
      setTimeout(() => {
        closedAt = Date.now();
        res.end();
      }, 20);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    gets,
    closedAt: () => closedAt,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const legacy: ForwardSession = { era: 'legacy', protocolVersion: '2025-11-25', sessionId: 's1', envelope: undefined };
const modern: ForwardSession = { era: 'modern', protocolVersion: '2026-07-28', sessionId: undefined, envelope: {} };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(
  eventIds: boolean,
): Promise<{ server: Awaited<ReturnType<typeof pollingServer>>; forwarder: HttpForwarder }> {
  const server = await pollingServer({ eventIds });
  const forwarder = createHttpForwarder({
    url: server.url,
    headers: {},
    answerServerRequest: () => Promise.reject(new Error('no requests expected')),
  });
  cleanups.push(server.close, () => forwarder.close());
  return { server, forwarder };
}

const call = (forwarder: HttpForwarder, session: ForwardSession) =>
  forwarder.call('tools/call', { name: 'slow', arguments: {} }, { session, signal: new AbortController().signal });

describe('the HTTP fast path when the server ends a call’s stream before the answer', () => {
  it('resumes a legacy stream with Last-Event-ID after the retry delay and returns the answer', async () => {
    const { server, forwarder } = await setup(true);
    const outcome = await call(forwarder, legacy);
    expect(outcome).toEqual({ kind: 'result', result: { content: [{ type: 'text', text: 'done' }] } });
    expect(server.gets).toHaveLength(1);
    expect(server.gets[0]).toMatchObject({ lastEventId: 'e1', sessionId: 's1' });
    expect(server.gets[0]!.at - server.closedAt()).toBeGreaterThanOrEqual(190);
  });

  it('does not resume a 2026-07-28 stream: its end is final', async () => {
    const { server, forwarder } = await setup(true);
    await expect(call(forwarder, modern)).rejects.toThrow('ended the response stream without answering');
    expect(server.gets).toHaveLength(0);
  });

  it('does not resume a stream without event ids', async () => {
    const { server, forwarder } = await setup(false);
    await expect(call(forwarder, legacy)).rejects.toThrow('ended the response stream without answering');
    expect(server.gets).toHaveLength(0);
  });
});

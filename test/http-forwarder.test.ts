// The HTTP fast path's exchange with an upstream: answers read whole or from an event stream that arrives in
// pieces, progress that keeps a call inside its timeout, a timeout that ends a silent call, and a caller's
// cancellation, which reaches the upstream as a closed connection (2026-07-28) or a cancel notice (legacy).
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpForwarder, ForwardTimeout } from '../src/mcp/upstream/http-forwarder.js';
import type { ForwardSession, HttpForwarder } from '../src/mcp/upstream/http-forwarder.js';

interface Received {
  method: string;
  id: unknown;
  params: Record<string, unknown> | undefined;
}

type Handler = (message: Received, res: ServerResponse, req: IncomingMessage) => void;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A server that hands each POSTed JSON-RPC message to `handler`; every message is recorded. */
async function upstream(
  handler: Handler,
  options: { connections?: number; lingerMs?: number } = {},
): Promise<{ forwarder: HttpForwarder; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const message = JSON.parse(body) as Received;
      received.push(message);
      handler(message, res, req);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const forwarder = createHttpForwarder({
    url: `http://127.0.0.1:${port}/mcp`,
    headers: {},
    answerServerRequest: () => Promise.reject(new Error('no requests expected')),
    ...options,
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    () => forwarder.close(),
  );
  return { forwarder, received };
}

const legacy: ForwardSession = { era: 'legacy', protocolVersion: '2025-11-25', sessionId: 's1', envelope: undefined };
const modern: ForwardSession = { era: 'modern', protocolVersion: '2026-07-28', sessionId: undefined, envelope: {} };

const event = (message: unknown) => `event: message\ndata: ${JSON.stringify(message)}\n\n`;
const answer = (id: unknown, text: string) => ({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }] } });
const progressToken = (message: Received) => (message.params?._meta as { progressToken?: unknown }).progressToken;

describe('the HTTP fast path', () => {
  it('reads a JSON answer whole', async () => {
    const { forwarder } = await upstream((message, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer(message.id, 'plain')));
    });
    const outcome = await forwarder.call('tools/call', { name: 't', arguments: {} }, { session: modern });
    expect(outcome).toEqual({ kind: 'result', result: { content: [{ type: 'text', text: 'plain' }] } });
  });

  it('reads an event stream that arrives in pieces, a character split between two of them', async () => {
    const text = 'grüße, 世界';
    const { forwarder } = await upstream((message, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const bytes = Buffer.from(event(answer(message.id, text)));
      // Cut inside the three bytes of 世.
      const cut = bytes.indexOf(Buffer.from('世')) + 1;
      res.write(bytes.subarray(0, cut));
      setTimeout(() => res.end(bytes.subarray(cut)), 20);
    });
    const outcome = await forwarder.call('tools/call', { name: 't', arguments: {} }, { session: modern });
    expect(outcome).toEqual({ kind: 'result', result: { content: [{ type: 'text', text }] } });
  });

  it('cuts a stream the server keeps open after answering, so that its connection serves the next call', async () => {
    const closed: number[] = [];
    const { forwarder } = await upstream(
      (message, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(event(answer(message.id, `answer ${String(message.id)}`)));
        res.once('close', () => closed.push(Date.now()));
      },
      { connections: 1, lingerMs: 100 },
    );
    const call = () => forwarder.call('tools/call', { name: 't', arguments: {} }, { session: modern });
    const first = await call();
    expect(first).toMatchObject({ kind: 'result' });
    // The only connection is busy with the open stream until it is cut; then the next call goes through.
    const second = await call();
    expect(second).toMatchObject({ kind: 'result' });
    expect(closed.length).toBeGreaterThanOrEqual(1);
  });

  it('ends a call that times out while waiting for a pooled connection, without waiting for one', async () => {
    const { forwarder, received } = await upstream(
      (_message, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': working\n\n');
      },
      { connections: 1 },
    );
    const cancel = new AbortController();
    const first = forwarder.call(
      'tools/call',
      { name: 't', arguments: {} },
      { session: modern, signal: cancel.signal },
    );
    await expect.poll(() => received.length).toBe(1);
    // The only connection is busy with the first call, which never answers.
    const queued = await forwarder
      .call('tools/call', { name: 't', arguments: {} }, { session: modern, timeoutMs: 100 })
      .catch((e: unknown) => e);
    expect(queued).toBeInstanceOf(ForwardTimeout);
    cancel.abort(new Error('done'));
    await expect(first).rejects.toThrow('done');
    // The queued request was given up: it never reaches the server.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(received).toHaveLength(1);
  });

  it('keeps a call that reports progress alive past its timeout, and hands the progress on', async () => {
    const { forwarder } = await upstream((message, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const token = progressToken(message);
      let step = 0;
      const tick = setInterval(() => {
        step++;
        if (step < 6) {
          res.write(
            event({
              jsonrpc: '2.0',
              method: 'notifications/progress',
              params: { progressToken: token, progress: step },
            }),
          );
          return;
        }
        clearInterval(tick);
        res.end(event(answer(message.id, 'slow but alive')));
      }, 80);
    });
    const progress: unknown[] = [];
    const outcome = await forwarder.call(
      'tools/call',
      { name: 't', arguments: {} },
      { session: modern, timeoutMs: 300, onProgress: (p) => progress.push(p) },
    );
    expect(outcome).toEqual({ kind: 'result', result: { content: [{ type: 'text', text: 'slow but alive' }] } });
    expect(progress.map((p) => (p as { progress: number }).progress)).toEqual([1, 2, 3, 4, 5]);
  });

  it('ends a silent call at its timeout with ForwardTimeout, and the next call goes through', async () => {
    let silent = true;
    const { forwarder } = await upstream((message, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (!silent) res.end(event(answer(message.id, 'answered')));
    });
    const call = () => forwarder.call('tools/call', { name: 't', arguments: {} }, { session: modern, timeoutMs: 100 });
    const error = await call().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForwardTimeout);
    silent = false;
    expect(await call()).toEqual({ kind: 'result', result: { content: [{ type: 'text', text: 'answered' }] } });
  });

  it('cancels a 2026-07-28 call by closing its connection', async () => {
    let closed!: () => void;
    const upstreamClosed = new Promise<void>((resolve) => (closed = resolve));
    const { forwarder } = await upstream((_message, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': working\n\n');
      res.once('close', () => closed());
    });
    const cancel = new AbortController();
    const call = forwarder.call('tools/call', { name: 't', arguments: {} }, { session: modern, signal: cancel.signal });
    setTimeout(() => cancel.abort(new Error('the client went away')), 50);
    await expect(call).rejects.toThrow('the client went away');
    await upstreamClosed;
  });

  it('cancels a legacy call with a cancel notice naming its request', async () => {
    const { forwarder, received } = await upstream((message, res) => {
      if (message.method === 'notifications/cancelled') {
        res.writeHead(202).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': working\n\n');
    });
    const cancel = new AbortController();
    const call = forwarder.call('tools/call', { name: 't', arguments: {} }, { session: legacy, signal: cancel.signal });
    setTimeout(() => cancel.abort(new Error('cancelled by the client')), 50);
    await expect(call).rejects.toThrow('cancelled by the client');
    await expect.poll(() => received.find((m) => m.method === 'notifications/cancelled')).toBeDefined();
    const notice = received.find((m) => m.method === 'notifications/cancelled')!;
    expect(notice.params).toEqual({ requestId: received[0]!.id });
  });

  it('does not start a call whose caller has already cancelled', async () => {
    const { forwarder, received } = await upstream(() => {});
    const cancel = new AbortController();
    cancel.abort(new Error('too late'));
    await expect(
      forwarder.call('tools/call', { name: 't', arguments: {} }, { session: modern, signal: cancel.signal }),
    ).rejects.toThrow('too late');
    expect(received).toHaveLength(0);
  });
});

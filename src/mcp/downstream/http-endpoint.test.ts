import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it, vi } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { McpServer } from '@modelcontextprotocol/server';
import { parseConfig } from '../../config/load-config.js';
import { createLogger } from '../../log/logger.js';
import { ANONYMOUS } from '../../policy/auth/keys.js';
import { Catalog } from '../catalog/catalog.js';
import { inMemoryUpstream, slowSubscribeServer } from '../upstream/in-memory-upstream.js';
import type { Upstream } from '../upstream/upstream.js';
import { createAggregateServer } from './aggregate-server.js';
import { createMcpHttpEndpoint } from './http-endpoint.js';
import { createMemorySessions } from '../../store/memory/memory-sessions.js';
import { createSubscriptions } from './subscriptions.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** /mcp served by the endpoint on a loopback port, over one in-memory upstream `up`. */
async function serve(build: () => McpServer): Promise<{ url: string; upstream: Upstream; closed: () => number }> {
  let closedResponses = 0;
  const holder: { catalog?: Catalog } = {};
  const { upstream } = inMemoryUpstream(build, { protocol: 'legacy', onChange: () => holder.catalog?.rebuild() });
  const catalog = new Catalog([upstream]);
  holder.catalog = catalog;
  upstream.start();
  await upstream.whenSettled();
  const subscriptions = createSubscriptions(catalog);
  const { server: limits } = parseConfig({}, {});
  const endpoint = createMcpHttpEndpoint({
    createServer: () =>
      createAggregateServer(catalog, {
        name: 'mcplex',
        version: '1',
        pageSize: limits.pageSize,
        subscriptions,
        maxSubscriptions: limits.maxSubscriptions,
      }),
    catalog,
    subscriptions,
    logger: createLogger('silent'),
    sessions: limits.sessions,
    directory: createMemorySessions(limits.sessions),
    replica: 'test',
    maxSubscriptions: limits.maxSubscriptions,
  });
  const http: HttpServer = createServer((req, res) => {
    res.once('close', () => closedResponses++);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = chunks.length === 0 ? undefined : (JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
      void endpoint.post(req, res, body, ANONYMOUS).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  cleanup.push(async () => {
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
    await endpoint.close();
    await upstream.close();
  });
  const { port } = http.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/mcp`, upstream, closed: () => closedResponses };
}

async function modernClient(url: string): Promise<Client> {
  const client = new Client(
    { name: 'test', version: '1' },
    { capabilities: {}, versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  cleanup.push(() => client.close());
  return client;
}

/** A raw 2026-07-28 subscriptions/listen request for `uris`, which the caller may abort. */
function listen(url: string, uris: string[], signal: AbortSignal): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    signal,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'subscriptions/listen',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'subscriptions/listen',
      params: {
        notifications: { resourceSubscriptions: uris },
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
}

it('a client that goes away while its listen request is still subscribing leaves no count and no upstream subscription behind (regression: both leaked)', async () => {
  const server = slowSubscribeServer();
  const { url, upstream, closed } = await serve(server.build);
  const abort = new AbortController();
  const request = listen(url, ['mcplex://up/x://1'], abort.signal).catch(() => undefined);
  await vi.waitUntil(() => server.asked.length === 1, { timeout: 5000, interval: 1 });
  expect(upstream.subscriptionHolders('x://1')).toBe(1);
  // The client goes away; mcplex sees its response close while the upstream has not answered the subscribe.
  abort.abort();
  await request;
  await vi.waitUntil(() => closed() === 1, { timeout: 5000, interval: 1 });
  server.answer();
  // The upstream sends its unsubscribe only once the subscribe is answered.
  await vi.waitUntil(() => server.asked.length === 2, { timeout: 5000, interval: 5 });
  expect(server.asked).toEqual(['subscribe x://1', 'unsubscribe x://1']);
  expect(server.held).toEqual(new Set());
  expect(upstream.subscriptionHolders('x://1')).toBe(0);
});

it('a listen stream holds its URIs until it closes, and two streams on one URI share one upstream subscription', async () => {
  const server = slowSubscribeServer();
  const { url, upstream } = await serve(server.build);
  const answering = setInterval(server.answer, 1);
  cleanup.push(async () => clearInterval(answering));
  const first = await (await modernClient(url)).listen({ resourceSubscriptions: ['mcplex://up/x://1'] });
  const second = await (await modernClient(url)).listen({ resourceSubscriptions: ['mcplex://up/x://1'] });
  expect(server.held).toEqual(new Set(['x://1']));
  await first.close();
  await vi.waitUntil(() => upstream.subscriptionHolders('x://1') === 1, { timeout: 5000, interval: 5 });
  expect(server.held).toEqual(new Set(['x://1']));
  await second.close();
  await vi.waitUntil(() => server.held.size === 0, { timeout: 5000, interval: 5 });
  expect(server.asked).toEqual(['subscribe x://1', 'unsubscribe x://1']);
});

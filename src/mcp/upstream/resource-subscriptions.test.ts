import { afterEach, describe, expect, it, vi } from 'vitest';
import type { McpServer } from '@modelcontextprotocol/server';
import { inMemoryUpstream, slowSubscribeServer } from './in-memory-upstream.js';
import type { Upstream } from './upstream.js';

const open: Upstream[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((upstream) => upstream.close()));
});

async function readyUpstream(build: () => McpServer): Promise<Upstream> {
  const { upstream } = inMemoryUpstream(build, { protocol: 'legacy' });
  open.push(upstream);
  upstream.start();
  await upstream.whenSettled();
  expect(upstream.isReady).toBe(true);
  return upstream;
}

describe('resource subscriptions on one upstream', () => {
  it('subscribes the server once per URI and unsubscribes it after the last holder', async () => {
    const server = slowSubscribeServer();
    const upstream = await readyUpstream(server.build);
    const first = upstream.subscribe('x://1');
    const second = upstream.subscribe('x://1');
    await vi.waitUntil(() => server.asked.length === 1, { timeout: 5000, interval: 1 });
    server.answer();
    await Promise.all([first, second]);
    await upstream.unsubscribe('x://1');
    expect(server.held).toEqual(new Set(['x://1']));
    await upstream.unsubscribe('x://1');
    expect(server.asked).toEqual(['subscribe x://1', 'unsubscribe x://1']);
    expect(server.held).toEqual(new Set());
  });

  it('ends unsubscribed when the last holder leaves while the first subscribe is still waiting (regression: left subscribed, untracked)', async () => {
    const server = slowSubscribeServer();
    const upstream = await readyUpstream(server.build);
    const subscribing = upstream.subscribe('x://1');
    await vi.waitUntil(() => server.asked.length === 1, { timeout: 5000, interval: 1 });
    const unsubscribing = upstream.unsubscribe('x://1');
    server.answer();
    await Promise.all([subscribing, unsubscribing]);
    expect(server.held).toEqual(new Set());
    // Nothing is left counted either: the next holder subscribes the server afresh.
    const again = upstream.subscribe('x://1');
    await vi.waitUntil(() => server.asked.filter((line) => line.startsWith('subscribe')).length === 2, {
      timeout: 5000,
      interval: 1,
    });
    server.answer();
    await again;
    expect(server.held).toEqual(new Set(['x://1']));
  });

  it('ends subscribed when a holder leaves and another arrives while the first subscribe is still waiting', async () => {
    const server = slowSubscribeServer();
    const upstream = await readyUpstream(server.build);
    const subscribing = upstream.subscribe('x://1');
    await vi.waitUntil(() => server.asked.length === 1, { timeout: 5000, interval: 1 });
    const unsubscribing = upstream.unsubscribe('x://1');
    const resubscribing = upstream.subscribe('x://1');
    // Whatever the upstream sends meanwhile, each subscribe is answered once it arrives.
    const answering = setInterval(server.answer, 1);
    try {
      await Promise.all([subscribing, unsubscribing, resubscribing]);
    } finally {
      clearInterval(answering);
    }
    expect(server.held).toEqual(new Set(['x://1']));
    await upstream.unsubscribe('x://1');
    expect(server.held).toEqual(new Set());
  });

  it('renews what it holds on a new connection', async () => {
    const server = slowSubscribeServer();
    const { upstream, serverSides } = inMemoryUpstream(server.build, { protocol: 'legacy' });
    open.push(upstream);
    upstream.start();
    await upstream.whenSettled();
    const subscribing = upstream.subscribe('x://1');
    server.answer();
    await vi.waitUntil(() => server.asked.length === 1, { timeout: 5000, interval: 1 });
    server.answer();
    await subscribing;
    await serverSides.at(-1)!.close();
    await vi.waitUntil(
      () => {
        server.answer();
        return upstream.isReady && server.asked.length === 2;
      },
      { timeout: 5000, interval: 1 },
    );
    expect(server.asked).toEqual(['subscribe x://1', 'subscribe x://1']);
  });
});

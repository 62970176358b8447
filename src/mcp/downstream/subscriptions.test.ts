import { describe, expect, it } from 'vitest';
import type { Catalog } from '../catalog/catalog.js';
import type { Upstream } from '../upstream/upstream.js';
import { createSubscriptions } from './subscriptions.js';

/** An upstream that records what reaches its server, and a catalog that routes every URI to it. */
function setup() {
  const calls: string[] = [];
  const holders = new Map<string, number>();
  let ready = true;
  const upstream = {
    key: 'up',
    config: { prefix: 'up' },
    // An upstream counts its holders: the server is subscribed by the first and unsubscribed after the last.
    subscribe: async (uri: string) => {
      const count = holders.get(uri) ?? 0;
      holders.set(uri, count + 1);
      if (count === 0) calls.push(`subscribe ${uri}`);
    },
    unsubscribe: async (uri: string) => {
      const count = holders.get(uri) ?? 0;
      if (count === 0) return;
      holders.set(uri, count - 1);
      if (count === 1) calls.push(`unsubscribe ${uri}`);
    },
  } as unknown as Upstream;
  const catalog = {
    resolveResource: (uri: string) => {
      if (!ready) throw new Error(`unknown resource "${uri}"`);
      return { upstream, original: uri.replace('mcplex://up/', '') };
    },
  } as unknown as Catalog;
  return { calls, upstream, subscriptions: createSubscriptions(catalog), down: () => (ready = false) };
}

describe('subscriptions', () => {
  it('subscribes the upstream once per URI and releases it after the last subscriber (regression: counted twice)', async () => {
    const { calls, subscriptions } = setup();
    const a = { notifyUpdated: () => {} };
    const b = { notifyUpdated: () => {} };
    await subscriptions.subscribe('mcplex://up/x://1', a);
    await subscriptions.subscribe('mcplex://up/x://1', a);
    await subscriptions.subscribe('mcplex://up/x://1', b);
    await subscriptions.unsubscribe('mcplex://up/x://1', a);
    expect(calls).toEqual(['subscribe x://1']);
    await subscriptions.unsubscribe('mcplex://up/x://1', b);
    expect(calls).toEqual(['subscribe x://1', 'unsubscribe x://1']);
  });

  it('releases the upstream subscription even while the server is down (regression: leaked)', async () => {
    const { calls, subscriptions, down } = setup();
    const a = { notifyUpdated: () => {} };
    await subscriptions.subscribe('mcplex://up/x://2', a);
    down();
    subscriptions.drop(a);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toEqual(['subscribe x://2', 'unsubscribe x://2']);
  });

  it('sends an update only to the subscribers of that URI', async () => {
    const { upstream, subscriptions } = setup();
    const seen: string[] = [];
    await subscriptions.subscribe('mcplex://up/x://3', { notifyUpdated: (uri) => seen.push(`a ${uri}`) });
    await subscriptions.subscribe('mcplex://up/x://4', { notifyUpdated: (uri) => seen.push(`b ${uri}`) });
    subscriptions.updated(upstream, 'x://3');
    expect(seen).toEqual(['a mcplex://up/x://3']);
  });
});

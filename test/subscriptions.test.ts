// Resource subscriptions through mcplex: the subscribed client gets resources/updated for its URI, in the
// namespaced form it subscribed to (resources/subscribe in 2025-11-25, subscriptions/listen in 2026-07-28); a
// client that did not subscribe gets nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import { EVERYTHING_TRANSPORTS, connectHttp, startEverything, startMcplex, waitFor } from './support/harness.js';
import type { EverythingUpstream } from './support/harness.js';

describe.each(EVERYTHING_TRANSPORTS)('server-everything over %s', (transport) => {
  let everything: EverythingUpstream;
  let mcplex: RunningServer;
  let subscribed: Client;
  let bystander: Client;
  const updates = { subscribed: [] as string[], bystander: [] as string[] };

  beforeAll(async () => {
    everything = await startEverything(transport);
    mcplex = await startMcplex({ mcpServers: { everything: everything.server } });
    await mcplex.gateway.whenSettled();
    subscribed = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
    bystander = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
    subscribed.setNotificationHandler('notifications/resources/updated', async (n) => {
      updates.subscribed.push(n.params.uri);
    });
    bystander.setNotificationHandler('notifications/resources/updated', async (n) => {
      updates.bystander.push(n.params.uri);
    });
  });
  afterAll(async () => {
    await subscribed?.close();
    await bystander?.close();
    await mcplex?.close();
    await everything?.close();
  });

  describe('resource subscriptions', () => {
    it('send resources/updated to the subscribed client only', async () => {
      expect(subscribed.getServerCapabilities()?.resources?.subscribe).toBe(true);
      const { resources } = await subscribed.listResources();
      const uri = resources.find((r) => r.uri.startsWith('mcplex://everything/'))!.uri;
      await subscribed.subscribeResource({ uri });
      await subscribed.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} });
      await waitFor(() => updates.subscribed.length > 0, 'resources/updated');
      expect(new Set(updates.subscribed)).toEqual(new Set([uri]));
      // The bystander shares the upstream connection but never subscribed.
      await bystander.listTools();
      expect(updates.bystander).toEqual([]);
      await subscribed.unsubscribeResource({ uri });
      await subscribed.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} });
    });

    it('reach a 2026-07-28 client that listens for the URI, and not one that listens for another', async () => {
      const listener = await connectHttp(`${mcplex.url}/mcp`, 'modern');
      const other = await connectHttp(`${mcplex.url}/mcp`, 'modern');
      const heard = { listener: [] as string[], other: [] as string[] };
      listener.setNotificationHandler('notifications/resources/updated', async (n) => {
        heard.listener.push(n.params.uri);
      });
      other.setNotificationHandler('notifications/resources/updated', async (n) => {
        heard.other.push(n.params.uri);
      });
      const uris = (await listener.listResources()).resources
        .map((r) => r.uri)
        .filter((u) => u.startsWith('mcplex://everything/'));
      const [uri, elsewhere] = uris as [string, string];
      const subscription = await listener.listen({ resourceSubscriptions: [uri] });
      const otherSubscription = await other.listen({ resourceSubscriptions: [elsewhere] });
      try {
        await listener.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} });
        await waitFor(() => heard.listener.length > 0, 'resources/updated on the listen stream');
        expect(new Set(heard.listener)).toEqual(new Set([uri]));
        expect(heard.other.filter((u) => u === uri)).toEqual([]);
        await listener.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} });
      } finally {
        await subscription.close();
        await otherSubscription.close();
        await listener.close();
        await other.close();
      }
    });

    it('refuses a 2026-07-28 listen for an unknown resource with a clear error', async () => {
      const client = await connectHttp(`${mcplex.url}/mcp`, 'modern');
      try {
        await expect(client.listen({ resourceSubscriptions: ['mcplex://nowhere/x://y'] })).rejects.toThrow(
          /unknown resource/,
        );
      } finally {
        await client.close();
      }
    });

    it('refuses a subscription to an unknown resource with a clear error', async () => {
      await expect(subscribed.subscribeResource({ uri: 'mcplex://nowhere/x://y' })).rejects.toThrow(/unknown resource/);
    });
  });

  describe('with server.maxSubscriptions: 2', () => {
    let limited: RunningServer;
    let uris: string[];
    beforeAll(async () => {
      limited = await startMcplex({ mcpServers: { everything: everything.server }, server: { maxSubscriptions: 2 } });
      await limited.gateway.whenSettled();
      const probe = await connectHttp(`${limited.url}/mcp`, 'legacy');
      uris = (await probe.listResources()).resources.map((r) => r.uri).slice(0, 3);
      await probe.close();
      expect(uris).toHaveLength(3);
    });
    afterAll(async () => {
      await limited?.close();
    });

    it('a 2025-era session holds at most 2 URIs; unsubscribing makes room, and other sessions have their own', async () => {
      const [a, b, c] = uris as [string, string, string];
      const client = await connectHttp(`${limited.url}/mcp`, 'legacy');
      const other = await connectHttp(`${limited.url}/mcp`, 'legacy');
      try {
        await client.subscribeResource({ uri: a });
        await client.subscribeResource({ uri: b });
        // Subscribing again to a URI it holds is not a new subscription.
        await client.subscribeResource({ uri: b });
        const refused = await client.subscribeResource({ uri: c }).catch((error: unknown) => error);
        expect(refused).toMatchObject({ code: -32602 });
        expect(String(refused)).toMatch(/too many resource subscriptions.*2/);
        await other.subscribeResource({ uri: c });
        await client.unsubscribeResource({ uri: a });
        await client.subscribeResource({ uri: c });
        // The session is still served.
        expect((await client.listTools()).tools.length).toBeGreaterThan(0);
      } finally {
        await client.close();
        await other.close();
      }
    });

    it('subscribes sent together cannot pass the limit between them', async () => {
      const client = await connectHttp(`${limited.url}/mcp`, 'legacy');
      try {
        const outcomes = await Promise.allSettled(uris.map((uri) => client.subscribeResource({ uri })));
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
        const refused = outcomes.filter((o) => o.status === 'rejected');
        expect(refused).toHaveLength(1);
        expect(String((refused[0] as PromiseRejectedResult).reason)).toMatch(/too many resource subscriptions/);
      } finally {
        await client.close();
      }
    });

    it('a 2026-07-28 listen request may name at most 2 URIs', async () => {
      const client = await connectHttp(`${limited.url}/mcp`, 'modern');
      try {
        await expect(client.listen({ resourceSubscriptions: uris })).rejects.toThrow(/too many resource subscriptions/);
        const subscription = await client.listen({ resourceSubscriptions: uris.slice(0, 2) });
        await subscription.close();
      } finally {
        await client.close();
      }
    });
  });
});

// A 2026-07-28 requestState belongs to the principal whose call it parks: another key that copies it is refused as
// if the state were invalid (whatever its scope), and the owner's own retry still resumes the call.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import { upstreamFetch } from '../src/mcp/upstream/transport.js';
import { startFixtureHttp } from './fixtures/fixture-server.js';
import type { FixtureHandle } from './fixtures/fixture-server.js';
import { clientOptions, startMcplex } from './support/harness.js';

let upstream: FixtureHandle;
let mcplex: RunningServer;

beforeAll(async () => {
  upstream = await startFixtureHttp();
  mcplex = await startMcplex({
    auth: { mode: 'keys' },
    mcpServers: { modern: { url: upstream.url, protocol: 'modern' } },
  });
  await mcplex.gateway.whenSettled();
});
afterAll(async () => {
  await mcplex?.close();
  await upstream?.close();
});

/** A 2026-07-28 client under `token` that hands input-required results back instead of answering them. */
async function manualClient(token: string | undefined, base = mcplex.url): Promise<Client> {
  const client = new Client(
    { name: 'manual-rounds', version: '1.0.0' },
    { ...clientOptions('modern'), capabilities: { elicitation: { form: {} } }, inputRequired: { autoFulfill: false } },
  );
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
    fetch: upstreamFetch,
    ...(token === undefined ? {} : { requestInit: { headers: { authorization: `Bearer ${token}` } } }),
  });
  await client.connect(transport);
  return client;
}

interface Round {
  resultType?: string;
  requestState?: string;
  content?: { text?: string }[];
}

const confirm = { name: 'modern__confirm', arguments: { question: 'proceed?' } };
const answers = { confirm: { action: 'accept', content: { ok: true } } };

async function firstRound(client: Client): Promise<string> {
  const first = (await client.callTool(confirm, { allowInputRequired: true })) as unknown as Round;
  expect(first.resultType).toBe('input_required');
  return first.requestState!;
}

function retry(client: Client, name: string, requestState: string): Promise<Round> {
  return client.callTool({ ...confirm, name, inputResponses: answers, requestState } as typeof confirm, {
    allowInputRequired: true,
  }) as unknown as Promise<Round>;
}

describe('a requestState used by another key', () => {
  it("is refused as invalid, whatever that key's scope, and the owner's retry still resumes the call", async () => {
    const owner = await mcplex.policy.keys.create({ name: 'owner' });
    const other = await mcplex.policy.keys.create({ name: 'echo-only', tools: ['modern__echo'] });
    const wide = await mcplex.policy.keys.create({ name: 'everything' });
    const a = await manualClient(owner.token);
    const c = await manualClient(other.token);
    const w = await manualClient(wide.token);
    try {
      const state = await firstRound(a);
      // Before the fix, this key (which may call only modern__echo) received the tool's result.
      await expect(retry(c, 'modern__confirm', state)).rejects.toThrow(/Invalid or expired requestState/);
      await expect(retry(c, 'modern__echo', state)).rejects.toThrow(/Invalid or expired requestState/);
      await expect(retry(w, 'modern__confirm', state)).rejects.toThrow(/Invalid or expired requestState/);
      // Before the fix, the stranger's retry had taken the parked call and the owner's was refused.
      const resumed = await retry(a, 'modern__confirm', state);
      expect(resumed.content?.[0]?.text).toBe('confirmed');
      // Single use: the same state a second time finds nothing.
      await expect(retry(a, 'modern__confirm', state)).rejects.toThrow(/no longer waiting/);
    } finally {
      await Promise.all([a.close(), c.close(), w.close()]);
    }
  });
});

describe('the requestState key from configuration', () => {
  // Keyless replicas: every caller is the same principal on each, so only the key decides.
  const replica = async (requestState: { key: string; previousKey?: string }) => {
    const other = await startMcplex({
      mcpServers: { modern: { url: upstream.url, protocol: 'modern' } },
      server: { requestState },
    });
    await other.gateway.whenSettled();
    return other;
  };
  const ONE = 'one-'.repeat(8);
  const TWO = 'two-'.repeat(8);

  it('is accepted by every replica with the same key or with it as the previous key, and refused by others', async () => {
    const origin = await replica({ key: ONE });
    const a = await manualClient(undefined, origin.url);
    const state = await firstRound(a);
    try {
      for (const [keys, verdict] of [
        // Verified; the call itself is parked on the replica that began it.
        [{ key: ONE }, /no longer waiting/],
        [{ key: TWO, previousKey: ONE }, /no longer waiting/],
        [{ key: TWO }, /Invalid or expired requestState/],
      ] as const) {
        const other = await replica(keys);
        const client = await manualClient(undefined, other.url);
        try {
          await expect(retry(client, 'modern__confirm', state)).rejects.toThrow(verdict);
        } finally {
          await client.close();
          await other.close();
        }
      }
      // The replica that began it resumes it.
      expect((await retry(a, 'modern__confirm', state)).content?.[0]?.text).toBe('confirmed');
    } finally {
      await a.close();
      await origin.close();
    }
  });
});

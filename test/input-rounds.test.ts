// Input-required rounds of a 2026-07-28 upstream: each question goes to the client whose call asked it, under
// the key the upstream gave it, whichever era that client speaks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import { startFixtureHttp } from './fixtures/fixture-server.js';
import type { FixtureHandle } from './fixtures/fixture-server.js';
import { clientOptions, startMcplex } from './support/harness.js';

let upstream: FixtureHandle;
let mcplex: RunningServer;

beforeAll(async () => {
  upstream = await startFixtureHttp();
  mcplex = await startMcplex({ mcpServers: { modern: { url: upstream.url, protocol: 'modern' } } });
  await mcplex.gateway.whenSettled();
});
afterAll(async () => {
  await mcplex?.close();
  await upstream?.close();
});

function text(result: { content?: unknown }): string {
  return (result.content as { text?: string }[]).map((c) => c.text ?? '').join('\n');
}

/** A legacy client that answers every confirmation with `ok`, after `delayMs`. */
async function confirmingClient(ok: boolean, delayMs: number): Promise<Client> {
  const client = new Client(
    { name: `confirms-${ok}`, version: '1.0.0' },
    { ...clientOptions('legacy'), capabilities: { elicitation: { form: {} } } },
  );
  client.setRequestHandler('elicitation/create', async () => {
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    return { action: 'accept', content: { ok } };
  });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${mcplex.url}/mcp`)));
  return client;
}

describe('input-required rounds of a 2026-07-28 upstream', () => {
  it('reach the client of each call when several calls ask at once (regression: all went to the newest call)', async () => {
    const yes = await confirmingClient(true, 50);
    const no = await confirmingClient(false, 0);
    try {
      const calls = Array.from({ length: 4 }, (_, i) => {
        const client = i % 2 === 0 ? yes : no;
        return client.callTool({ name: 'modern__confirm', arguments: { question: `call ${i}` } });
      });
      const answers = (await Promise.all(calls)).map(text);
      expect(answers).toEqual(['confirmed', 'declined', 'confirmed', 'declined']);
    } finally {
      await Promise.all([yes.close(), no.close()]);
    }
  });

  it("keep the upstream's keys for a 2026-07-28 client, and its answers reach the upstream", async () => {
    const client = new Client(
      { name: 'manual-rounds', version: '1.0.0' },
      {
        ...clientOptions('modern'),
        capabilities: { elicitation: { form: {} } },
        inputRequired: { autoFulfill: false },
      },
    );
    await client.connect(new StreamableHTTPClientTransport(new URL(`${mcplex.url}/mcp`)));
    try {
      const params = { name: 'modern__confirm', arguments: { question: 'proceed?' } };
      const first = (await client.callTool(params, { allowInputRequired: true })) as unknown as {
        resultType: string;
        inputRequests: Record<string, { method: string }>;
        requestState: string;
      };
      expect(first.resultType).toBe('input_required');
      expect(Object.keys(first.inputRequests)).toEqual(['confirm']);
      expect(first.inputRequests.confirm?.method).toBe('elicitation/create');
      const second = await client.callTool(
        {
          ...params,
          inputResponses: { confirm: { action: 'accept', content: { ok: true } } },
          requestState: first.requestState,
        } as typeof params,
        { allowInputRequired: true },
      );
      expect(text(second)).toBe('confirmed');
    } finally {
      await client.close();
    }
  });
});

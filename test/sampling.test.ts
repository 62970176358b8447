// Sampling answered by the shared LLM: server-everything's trigger-sampling-request (a 2025-11-25 server pushing
// sampling/createMessage) and the fixture's summarize tool (a 2026-07-28 input-required sampling request), called
// by clients that cannot sample themselves; usage goes to the server's identity; deny and rpm are enforced.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { startFixtureHttp } from './fixtures/fixture-server.js';
import type { FixtureHandle } from './fixtures/fixture-server.js';
import { connectHttp, everythingStdio, startMcplex } from './support/harness.js';

let mock: MockLlm;
let modern: FixtureHandle;
let mcplex: RunningServer;

beforeAll(async () => {
  mock = await startMockLlm({ name: 'sampling-mock' });
  modern = await startFixtureHttp();
  mcplex = await startMcplex({
    mcpServers: {
      everything: everythingStdio(),
      modern: { url: modern.url, protocol: 'modern' },
      refused: { ...everythingStdio(), sampling: { mode: 'deny' } },
      limited: { ...everythingStdio(), sampling: { rpm: 2 } },
    },
    llm: { models: { shared: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } } },
  });
  await mcplex.gateway.whenSettled();
});
afterAll(async () => {
  await mcplex?.close();
  await modern?.close();
  await mock?.close();
});

const text = (result: { content?: unknown }) =>
  (result.content as { type: string; text?: string }[]).map((c) => c.text ?? '').join('\n');

describe('sampling through the shared LLM', () => {
  it('answers trigger-sampling-request for a client without sampling, and accounts it to the server', async () => {
    const client = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
    try {
      const result = await client.callTool({
        name: 'everything__trigger-sampling-request',
        arguments: { prompt: 'hello from the test', maxTokens: 40 },
      });
      expect(result.isError).toBeFalsy();
      expect(text(result)).toContain('mock reply: Resource trigger-sampling-request context: hello from the test');
      const sent = mock.requests.at(-1)!.body as { model: string; messages: { role: string; content: unknown }[] };
      expect(sent.model).toBe('backend');
      expect(sent.messages[0]).toEqual({ role: 'system', content: 'You are a helpful test server.' });
      const totals = await mcplex.policy.usage.totals({ subject: 'server:everything' });
      expect(totals).toEqual([expect.objectContaining({ subject: 'server:everything', model: 'shared', requests: 1 })]);
      expect(totals[0]!.completionTokens).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
  });

  it('answers the input-required sampling request of a 2026-07-28 upstream', async () => {
    for (const era of ['legacy', 'modern'] as const) {
      const client = await connectHttp(`${mcplex.url}/mcp`, era);
      try {
        const result = await client.callTool({ name: 'modern__summarize', arguments: { text: 'a long story' } });
        expect(text(result)).toBe('summary: mock reply: Summarize: a long story');
      } finally {
        await client.close();
      }
    }
  });

  it('refuses sampling for a server whose policy is deny, with a clear error', async () => {
    const client = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
    try {
      const outcome = await client
        .callTool({ name: 'refused__trigger-sampling-request', arguments: { prompt: 'x' } })
        .then((r) => text(r))
        .catch((e: unknown) => String(e));
      expect(outcome).toMatch(/sampling is not allowed for server "refused"/);
    } finally {
      await client.close();
    }
  });

  it("enforces the server's requests-per-minute limit", async () => {
    const client = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
    try {
      const outcomes: string[] = [];
      for (let i = 0; i < 3; i++) {
        outcomes.push(
          await client
            .callTool({ name: 'limited__trigger-sampling-request', arguments: { prompt: `n${i}` } })
            .then((r) => text(r))
            .catch((e: unknown) => String(e)),
        );
      }
      expect(outcomes[0]).toContain('mock reply');
      expect(outcomes[1]).toContain('mock reply');
      expect(outcomes[2]).toMatch(/Rate limit reached for limited: 2 requests per minute/);
    } finally {
      await client.close();
    }
  });
});

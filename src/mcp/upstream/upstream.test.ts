import { afterEach, describe, expect, it, vi } from 'vitest';
import { McpServer, acceptedContent, inputRequired } from '@modelcontextprotocol/server';
import type { CallToolResult, InputRequiredResult } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { inMemoryUpstream } from './in-memory-upstream.js';
import type { DownstreamRelay, Upstream } from './upstream.js';

const open: Upstream[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((upstream) => upstream.close()));
});

function connected(protocol: string) {
  const made = inMemoryUpstream(testServer, { protocol });
  open.push(made.upstream);
  return made;
}

function text(value: string): CallToolResult {
  return { content: [{ type: 'text', text: value }] };
}

function testServer(): McpServer {
  const server = new McpServer({ name: 'in-memory', version: '1' });
  server.registerTool('echo', { inputSchema: z.object({ message: z.string() }) }, ({ message }) => text(message));
  // An input-required result; the SDK's legacy shim pushes the question to a 2025-era client instead.
  server.registerTool(
    'confirm',
    { inputSchema: z.object({ question: z.string() }) },
    async ({ question }, ctx): Promise<CallToolResult | InputRequiredResult> => {
      const schema = z.object({ ok: z.boolean() });
      const answer = acceptedContent(ctx.mcpReq.inputResponses, 'confirm', schema);
      if (answer !== undefined) return text(answer.ok ? 'confirmed' : 'declined');
      return inputRequired({
        inputRequests: { confirm: inputRequired.elicit({ message: question, requestedSchema: schema }) },
      });
    },
  );
  return server;
}

async function ready(upstream: Upstream): Promise<void> {
  upstream.start();
  await upstream.whenSettled();
  expect(upstream.status()).toMatchObject({ state: 'ready', lastError: null });
}

describe.each([
  ['legacy', 'legacy'],
  ['modern', 'modern'],
  ['auto', 'modern'],
] as const)('an upstream over an in-memory pair (protocol %s)', (protocol, era) => {
  it(`connects in the ${era} era, lists the catalog and forwards a call`, async () => {
    const { upstream } = connected(protocol);
    await ready(upstream);
    expect(upstream.status()).toMatchObject({ era, tools: 2, pid: null });
    expect(upstream.catalog.tools.map((tool) => tool.name)).toEqual(['echo', 'confirm']);
    const result = await upstream.callTool({ name: 'echo', arguments: { message: 'hi' } });
    expect(result.content).toEqual([{ type: 'text', text: 'hi' }]);
  });

  it('puts a question the server asks during a call to the relay of that call', async () => {
    const { upstream } = connected(protocol);
    await ready(upstream);
    const asked: unknown[] = [];
    const relay: DownstreamRelay = {
      capabilities: { elicitation: { form: {} } },
      request: async (method, params, key) => {
        asked.push({ method, message: (params as { message?: unknown }).message, key });
        return { action: 'accept', content: { ok: true } };
      },
    };
    const result = await upstream.callTool({ name: 'confirm', arguments: { question: 'sure?' } }, { relay });
    expect(result.content).toEqual([{ type: 'text', text: 'confirmed' }]);
    // A 2026-07-28 server names its question; a pushed 2025-era request has no name.
    expect(asked).toEqual([
      { method: 'elicitation/create', message: 'sure?', key: era === 'modern' ? 'confirm' : undefined },
    ]);
  });

  it('refuses a question the calling client cannot answer, without asking it', async () => {
    const { upstream } = connected(protocol);
    await ready(upstream);
    let asked = 0;
    const relay: DownstreamRelay = { capabilities: {}, request: async () => void asked++ };
    const outcome = await upstream
      .callTool({ name: 'confirm', arguments: { question: 'sure?' } }, { relay })
      .then((result) => JSON.stringify(result.content), String);
    // mcplex refuses a pushed request; a 2026-07-28 server, told the caller's capabilities, refuses to ask.
    expect(outcome).toMatch(/elicitation/);
    expect(asked).toBe(0);
  });

  it('reconnects after the server side drops the connection', async () => {
    const { upstream, serverSides } = connected(protocol);
    await ready(upstream);
    await serverSides.at(-1)!.close();
    await vi.waitUntil(() => upstream.status().restarts === 1 && upstream.isReady, { timeout: 5000, interval: 1 });
    const result = await upstream.callTool({ name: 'echo', arguments: { message: 'again' } });
    expect(result.content).toEqual([{ type: 'text', text: 'again' }]);
  });
});

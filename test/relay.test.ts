// Requests an upstream server sends during a call (elicitation, roots) reach the downstream client that made
// the call, and the answer goes back to the server; a client without the capability gets a clear error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import { startFixtureHttp } from './fixtures/fixture-server.js';
import type { FixtureHandle } from './fixtures/fixture-server.js';
import { EVERYTHING_TRANSPORTS, clientOptions, startEverything, startMcplex } from './support/harness.js';
import type { Era, EverythingUpstream } from './support/harness.js';

let modernUpstream: FixtureHandle;

beforeAll(async () => {
  modernUpstream = await startFixtureHttp();
});
afterAll(async () => {
  await modernUpstream?.close();
});

function text(result: { content?: unknown }): string {
  return (result.content as { type: string; text?: string }[]).map((c) => c.text ?? '').join('\n');
}

describe.each(EVERYTHING_TRANSPORTS)('server-everything over %s', (transport) => {
  let everything: EverythingUpstream;
  let mcplex: RunningServer;

  beforeAll(async () => {
    everything = await startEverything(transport);
    mcplex = await startMcplex({
      mcpServers: { everything: everything.server, modern: { url: modernUpstream.url, protocol: 'modern' } },
    });
    await mcplex.gateway.whenSettled();
  });
  afterAll(async () => {
    await mcplex?.close();
    await everything?.close();
  });

  describe.each<Era>(['legacy', 'modern'])('a %s client with elicitation and roots', (era) => {
    let client: Client;
    const elicited: unknown[] = [];
    beforeAll(async () => {
      client = new Client(
        { name: 'relay-test', version: '1.0.0' },
        { ...clientOptions(era), capabilities: { elicitation: { form: {} }, roots: { listChanged: true } } },
      );
      client.setRequestHandler('elicitation/create', async (request) => {
        elicited.push(request.params);
        const ok = (request.params as { requestedSchema?: { properties?: object } }).requestedSchema?.properties;
        const content: Record<string, string | boolean> =
          ok && 'ok' in ok ? { ok: true } : { name: 'Ada Lovelace', check: true };
        return { action: 'accept', content };
      });
      client.setRequestHandler('roots/list', async () => ({
        roots: [{ uri: 'file:///work/project', name: 'project' }],
      }));
      await client.connect(new StreamableHTTPClientTransport(new URL(`${mcplex.url}/mcp`)));
    });
    afterAll(async () => {
      await client?.close();
    });

    it('answers an elicitation request of a legacy upstream', async () => {
      expect(client.getProtocolEra()).toBe(era);
      const result = await client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
      expect(elicited).toHaveLength(1);
      expect(elicited[0]).toMatchObject({ message: expect.stringContaining('Please provide inputs') });
      expect(result.isError ?? false).toBe(false);
      expect(text(result)).toContain('Ada Lovelace');
    });

    it('answers the input-required elicitation of a modern upstream', async () => {
      const result = await client.callTool({ name: 'modern__confirm', arguments: { question: 'Ship it?' } });
      expect(elicited.at(-1)).toMatchObject({ message: 'Ship it?' });
      expect(result.content).toEqual([{ type: 'text', text: 'confirmed' }]);
    });

    it("returns the client's roots to the upstream", async () => {
      const result = await client.callTool({ name: 'everything__get-roots-list', arguments: {} });
      expect(text(result)).toContain('file:///work/project');
    });
  });

  describe.each<Era>(['legacy', 'modern'])('a %s client with sampling', (era) => {
    it("answers an upstream sampling request with its own model's reply", async () => {
      const client = new Client(
        { name: 'sampler', version: '1.0.0' },
        { ...clientOptions(era), capabilities: { sampling: {} } },
      );
      const asked: unknown[] = [];
      client.setRequestHandler('sampling/createMessage', async (request) => {
        asked.push(request.params);
        return { role: 'assistant', content: { type: 'text', text: `reply for ${era}` }, model: 'test-model' };
      });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${mcplex.url}/mcp`)));
      const result = await client.callTool({
        name: 'everything__trigger-sampling-request',
        arguments: { prompt: 'say hi', maxTokens: 20 },
      });
      expect(asked).toHaveLength(1);
      expect(JSON.stringify(asked[0])).toContain('say hi');
      expect(text(result)).toContain(`reply for ${era}`);
      await client.close();
    });
  });

  describe('a client without elicitation', () => {
    it('gets a clear error from the upstream instead of a hang', async () => {
      const client = new Client({ name: 'plain', version: '1.0.0' }, { capabilities: {} });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${mcplex.url}/mcp`)));
      const result = await client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
      expect(result.isError).toBe(true);
      expect(text(result)).toMatch(/does not support elicitation/);
      await client.close();
    });
  });
});

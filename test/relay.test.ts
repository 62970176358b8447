// Requests an upstream server sends during a call (elicitation, roots) reach the downstream client that made
// the call, and the answer goes back to the server; a client without the capability gets a clear error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import { everythingStdio, startMcplex } from './support/harness.js';

let mcplex: RunningServer;

beforeAll(async () => {
  mcplex = await startMcplex({ mcpServers: { everything: everythingStdio() } });
  await mcplex.gateway.whenSettled();
});
afterAll(async () => {
  await mcplex?.close();
});

function text(result: { content?: unknown }): string {
  return (result.content as { type: string; text?: string }[]).map((c) => c.text ?? '').join('\n');
}

describe('a legacy client with elicitation and roots', () => {
  let client: Client;
  const elicited: unknown[] = [];
  beforeAll(async () => {
    client = new Client(
      { name: 'relay-test', version: '1.0.0' },
      { capabilities: { elicitation: { form: {} }, roots: { listChanged: true } } },
    );
    client.setRequestHandler('elicitation/create', async (request) => {
      elicited.push(request.params);
      return { action: 'accept', content: { name: 'Ada Lovelace', check: true } };
    });
    client.setRequestHandler('roots/list', async () => ({
      roots: [{ uri: 'file:///work/project', name: 'project' }],
    }));
    await client.connect(new StreamableHTTPClientTransport(new URL(`${mcplex.url}/mcp`)));
  });
  afterAll(async () => {
    await client?.close();
  });

  it('answers an upstream elicitation request', async () => {
    const result = await client.callTool({ name: 'everything__trigger-elicitation-request', arguments: {} });
    expect(elicited).toHaveLength(1);
    expect(elicited[0]).toMatchObject({ message: expect.stringContaining('Please provide inputs') });
    expect(result.isError ?? false).toBe(false);
    expect(text(result)).toContain('Ada Lovelace');
  });

  it("returns the client's roots to the upstream", async () => {
    const result = await client.callTool({ name: 'everything__get-roots-list', arguments: {} });
    expect(text(result)).toContain('file:///work/project');
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

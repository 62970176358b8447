// Mcp-Param-* headers on 2026-07-28 tools/call requests: mcplex checks those a tool declares against the arguments
// (400 / -32020 when they disagree) and passes on to a 2026-07-28 HTTP upstream those it does not know.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/main.js';
import { startFixtureHttp } from './fixtures/fixture-server.js';
import type { FixtureHandle } from './fixtures/fixture-server.js';
import { startMcplex } from './support/harness.js';

let upstream: FixtureHandle;
let mcplex: RunningServer;

beforeAll(async () => {
  upstream = await startFixtureHttp();
  mcplex = await startMcplex({ mcpServers: { up: { url: upstream.url, protocol: 'modern' } } });
  await mcplex.gateway.whenSettled();
});
afterAll(async () => {
  await mcplex?.close();
  await upstream?.close();
});

/** A raw 2026-07-28 tools/call of up__param_headers with the given arguments and extra headers. */
async function call(args: Record<string, unknown>, extra: Record<string, string>) {
  const response = await fetch(`${mcplex.url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'up__param_headers',
      ...extra,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {
        name: 'up__param_headers',
        arguments: args,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  const text = await response.text();
  const json = text.startsWith('{')
    ? JSON.parse(text)
    : JSON.parse(
        text
          .split('\n')
          .find((line) => line.startsWith('data: {'))!
          .slice(6),
      );
  return {
    status: response.status,
    body: json as { result?: { content: { text: string }[] }; error?: { code: number } },
  };
}

describe('Mcp-Param-* headers', () => {
  it('pass unknown ones on to the upstream, and the declared one as mcplex computes it', async () => {
    const { status, body } = await call(
      { region: 'eu-west' },
      { 'mcp-param-region': 'eu-west', 'mcp-param-tenant': 'acme' },
    );
    expect(status).toBe(200);
    const seen = JSON.parse(body.result!.content[0]!.text) as Record<string, string>;
    expect(seen).toEqual({ 'mcp-param-region': 'eu-west', 'mcp-param-tenant': 'acme' });
  });

  it('reject a declared header that disagrees with its argument, without calling the upstream', async () => {
    const { status, body } = await call({ region: 'eu-west' }, { 'mcp-param-region': 'us-east' });
    expect(status).toBe(400);
    expect(body.error?.code).toBe(-32020);
  });
});

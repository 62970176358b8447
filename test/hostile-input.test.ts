// Bad input found by probing mcplex as an outsider: each gets a 4xx (or a JSON-RPC error) in the route's own
// shape that blames the request, not a 5xx or an error that blames an upstream, and mcplex stays up.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { fixtureStdio, legacyInitialize, startMcplex } from './support/harness.js';
import type { Era } from './support/harness.js';

let mock: MockLlm;
let mcplex: RunningServer;
let token: string;
let admin: string;

beforeAll(async () => {
  mock = await startMockLlm({ name: 'hostile-mock' });
  mcplex = await startMcplex({
    auth: { mode: 'keys' },
    mcpServers: { fixture: fixtureStdio() },
    llm: { models: { m: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } } },
  });
  await mcplex.gateway.whenSettled();
  token = (await mcplex.policy.keys.create({ name: 'user' })).token;
  admin = (await mcplex.policy.keys.create({ name: 'admin', admin: true })).token;
});
afterAll(async () => {
  await mcplex?.close();
  await mock?.close();
});

const MODERN_META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
};

interface Answer {
  status: number;
  text: string;
  headers: Headers;
}

async function send(path: string, init: RequestInit & { headers?: Record<string, string> }): Promise<Answer> {
  const response = await fetch(`${mcplex.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, ...init.headers },
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

/** The JSON-RPC error of an /mcp answer, whether it came as JSON or as an SSE event. */
function rpcError(answer: Answer): { code: number; message: string } | undefined {
  const line = answer.text.split('\n').find((l) => l.startsWith('data: {'));
  const message = JSON.parse(line ? line.slice('data: '.length) : answer.text) as {
    error?: { code: number; message: string };
  };
  return message.error;
}

/** A POST to /mcp in either era: legacy in a fresh session, modern with its envelope and headers. */
async function mcpPost(era: Era, method: string, params: Record<string, unknown>, raw?: string): Promise<Answer> {
  const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  if (era === 'modern') {
    const body = { jsonrpc: '2.0', id: 7, method, params: { ...params, _meta: MODERN_META } };
    const name: Record<string, string> = typeof params.name === 'string' ? { 'mcp-name': params.name } : {};
    const headers = { ...base, 'mcp-protocol-version': '2026-07-28', 'mcp-method': method, ...name };
    return send('/mcp', { method: 'POST', headers, body: raw ?? JSON.stringify(body) });
  }
  const init = await send('/mcp', {
    method: 'POST',
    headers: base,
    body: legacyInitialize('probe'),
  });
  expect(init.status).toBe(200);
  const headers = {
    ...base,
    'mcp-session-id': init.headers.get('mcp-session-id')!,
    'mcp-protocol-version': '2025-11-25',
  };
  return send('/mcp', {
    method: 'POST',
    headers,
    body: raw ?? JSON.stringify({ jsonrpc: '2.0', id: 7, method, params }),
  });
}

const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

describe.each<Era>(['legacy', 'modern'])('a %s client', (era) => {
  it('gets -32602 naming the field for a parameter of the wrong type (regression: -32603 and a raw schema dump)', async () => {
    const cases: [string, Record<string, unknown>, string][] = [
      ['tools/call', { name: 'fixture__echo', arguments: [1, 2] }, 'params.arguments'],
      ['tools/call', { name: 42 }, 'params.name'],
      ['resources/read', { uri: { a: 1 } }, 'params.uri'],
      ['prompts/get', { name: 'fixture__greet', arguments: 'text' }, 'params.arguments'],
      ['tools/list', { cursor: 5 }, 'params.cursor'],
      ...(era === 'legacy'
        ? [['logging/setLevel', { level: 'loud' }, 'params.level'] as [string, Record<string, unknown>, string]]
        : []),
    ];
    for (const [method, params, field] of cases) {
      const answer = await mcpPost(era, method, params);
      expect(answer.status, `${method} ${field}`).toBeLessThan(500);
      const error = rpcError(answer);
      expect(error?.code, `${method} ${field}`).toBe(-32602);
      expect(error?.message).toContain(field);
      expect(error?.message).not.toMatch(/"code":|\[\s*\{/);
    }
  });

  it('gets 400 / -32600 for JSON nested 20,000 deep, before any upstream sees it (regression: blamed the upstream)', async () => {
    const body = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"fixture__echo","arguments":{"message":"x","deep":${deep(20_000)}}}}`;
    const answer = await mcpPost(era, 'tools/call', { name: 'fixture__echo' }, body);
    expect(answer.status).toBe(400);
    expect(rpcError(answer)?.code).toBe(-32600);
    expect(rpcError(answer)?.message).not.toMatch(/fixture|server/);
  });
});

describe('found by the fuzz suite', () => {
  it('answers each invalid member of a 2025-era batch with -32602 and still answers the others', async () => {
    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: 10, method: 'ping' },
      { jsonrpc: '2.0', id: 11, method: 'resources/templates/list', params: { cursor: 0 } },
    ]);
    const answer = await mcpPost('legacy', 'ping', {}, batch);
    // One JSON array, or one SSE event per answer: both are 2025-11-25 answers to a batch.
    type Reply = { id: number; error?: { code: number; message: string } };
    const messages = answer.text.startsWith('[')
      ? (JSON.parse(answer.text) as Reply[])
      : answer.text
          .split('\n')
          .filter((line) => line.startsWith('data: {'))
          .map((line) => JSON.parse(line.slice('data: '.length)) as Reply);
    const byId = new Map(messages.map((m) => [m.id, m]));
    expect(byId.get(10)?.error).toBeUndefined();
    expect(byId.get(11)?.error?.code).toBe(-32602);
    expect(byId.get(11)?.error?.message).toContain('params.cursor');
  });

  it('refuses a tools/call whose _meta is no object with -32602, on the fast path too', async () => {
    for (const meta of [0, 'text', null, []]) {
      const answer = await mcpPost('legacy', 'tools/call', {
        name: 'fixture__echo',
        arguments: { message: '' },
        _meta: meta,
      });
      expect(rpcError(answer)?.code, JSON.stringify(meta)).toBe(-32602);
    }
  });

  it("answers a foreign Host on /v1 and /admin in OpenAI's error shape, and on /mcp in JSON-RPC's", async () => {
    // fetch sends its own Host: node:http lets a test send another.
    const host = (path: string) =>
      new Promise<Answer>((resolve, reject) => {
        const url = new URL(mcplex.url);
        const req = httpRequest(
          {
            host: url.hostname,
            port: url.port,
            path,
            headers: { host: 'evil.example', authorization: `Bearer ${admin}` },
          },
          (res) => {
            let text = '';
            res.on('data', (chunk: Buffer) => (text += chunk.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: new Headers() }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    for (const path of ['/v1/models', '/admin/keys']) {
      const answer = await host(path);
      expect(answer.status).toBe(403);
      expect(JSON.parse(answer.text)).toMatchObject({ error: { type: 'permission_error' } });
    }
    const mcp = await host('/mcp');
    expect(mcp.status).toBe(403);
    expect(JSON.parse(mcp.text)).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } });
  });

  it('refuses a key whose admin field is not a boolean, instead of creating a plain key', async () => {
    for (const value of [1, 'true', {}]) {
      const answer = await fetch(`${mcplex.url}/admin/keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `odd-${JSON.stringify(value)}`, admin: value }),
      });
      expect(answer.status).toBe(400);
    }
  });
});

describe('/mcp framing', () => {
  it('answers an empty batch in a session with 400, as without one (regression: 202)', async () => {
    const answer = await mcpPost('legacy', 'ping', {}, '[]');
    expect(answer.status).toBe(400);
    expect(rpcError(answer)?.code).toBe(-32600);
  });

  it('refuses a body that is not application/json with 415', async () => {
    const answer = await send('/mcp', {
      method: 'POST',
      headers: { 'content-type': 'text/plain', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: MODERN_META } }),
    });
    expect(answer.status).toBe(415);
  });
});

describe('/v1 and /admin', () => {
  const chat = (body: string, contentType = 'application/json') =>
    send('/v1/chat/completions', { method: 'POST', headers: { 'content-type': contentType }, body });

  it('refuses a body that is not JSON by its content type with 415 (regression: text/plain got 200)', async () => {
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const answer = await chat(body, type);
      expect(answer.status).toBe(415);
      expect(JSON.parse(answer.text)).toMatchObject({ error: { type: 'invalid_request_error' } });
    }
    expect((await chat(body, 'application/json; charset=utf-8')).status).toBe(200);
  });

  it('answers JSON nested 20,000 deep with 400 in the OpenAI shape (regression: 500 internal error)', async () => {
    const answer = await chat(`{"model":"m","messages":[{"role":"user","content":${deep(20_000)}}]}`);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text)).toMatchObject({ error: { type: 'invalid_request_error' } });
  });

  it('answers a key id with bad percent-encoding with 400 (regression: 500)', async () => {
    const answer = await fetch(`${mcplex.url}/admin/keys/%E0%A4%A`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(answer.status).toBe(400);
    expect(((await answer.json()) as { error: { message: string } }).error.message).toMatch(/percent-encoding/);
  });

  it('accepts the Bearer scheme in any case (regression: lowercase was refused)', async () => {
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const response = await fetch(`${mcplex.url}/v1/models`, { headers: { authorization: `${scheme} ${token}` } });
      expect(response.status, scheme).toBe(200);
    }
  });

  it('stays up', async () => {
    expect((await fetch(`${mcplex.url}/healthz`)).status).toBe(200);
  });
});

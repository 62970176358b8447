// Bad input on /mcp gets a clear error with the right JSON-RPC code or HTTP status, and mcplex stays up.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import { connectHttp, fixtureStdio, legacyInitialize, startMcplex } from './support/harness.js';
import type { Era } from './support/harness.js';

let mcplex: RunningServer;
let endpoint: string;

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** Reads a JSON-RPC answer whether it came as a JSON body or as an SSE event. */
async function jsonRpc(
  response: Response,
): Promise<{ id?: unknown; result?: unknown; error?: { code: number; message: string } }> {
  const text = await response.text();
  if ((response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    const data = text.split('\n').find((line) => line.startsWith('data: {'));
    return JSON.parse(data!.slice('data: '.length)) as { error?: { code: number; message: string } };
  }
  return JSON.parse(text) as { error?: { code: number; message: string } };
}

/** A refusal as any route words it: `error` holds OpenAI's `type`, mcplex's `code` or JSON-RPC's numeric code. */
type Refusal = { jsonrpc?: string; error: { code?: string | number; type?: string; message: string } };

async function healthy(): Promise<boolean> {
  return (await fetch(`${mcplex.url}/healthz`)).ok;
}

function rawRequest(headers: Record<string, string>, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(endpoint);
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { ...JSON_HEADERS, ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  mcplex = await startMcplex({ mcpServers: { fixture: fixtureStdio() }, server: { maxBodyBytes: 2048 } });
  await mcplex.gateway.whenSettled();
  endpoint = `${mcplex.url}/mcp`;
});
afterAll(async () => {
  await mcplex?.close();
});

describe('malformed and unknown requests', () => {
  it('answers malformed JSON with -32700', async () => {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: '{"jsonrpc": "2.0", "id": 1,',
    });
    expect(response.status).toBe(400);
    expect((await jsonRpc(response)).error?.code).toBe(-32700);
    expect(await healthy()).toBe(true);
  });

  it('answers an unknown method with -32601 in a legacy session', async () => {
    const init = await fetch(endpoint, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: legacyInitialize('raw'),
    });
    expect(init.status).toBe(200);
    const session = init.headers.get('mcp-session-id')!;
    expect(session).toBeTruthy();
    await init.text();
    const headers = { ...JSON_HEADERS, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
    await fetch(endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    const response = await fetch(endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/frobnicate', params: {} }),
    });
    const answer = await jsonRpc(response);
    expect(answer.id).toBe(2);
    expect(answer.error?.code).toBe(-32601);
  });

  it('answers a request for an ended session with 404', async () => {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { ...JSON_HEADERS, 'mcp-session-id': 'no-such-session' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list', params: {} }),
    });
    expect(response.status).toBe(404);
  });
});

describe.each<Era>(['legacy', 'modern'])('unknown names with a %s client', (era) => {
  let client: Client;
  beforeAll(async () => {
    client = await connectHttp(endpoint, era);
  });
  afterAll(async () => {
    await client?.close();
  });

  it('names the unknown tool with an invalid-params error', async () => {
    const failure = client.callTool({ name: 'nowhere__nothing', arguments: {} });
    await expect(failure).rejects.toThrow(/unknown tool "nowhere__nothing"/);
    await expect(failure).rejects.toMatchObject({ code: -32602 });
  });

  it('names the unknown resource', async () => {
    await expect(client.readResource({ uri: 'mcplex://nowhere/file:///x' })).rejects.toThrow(
      /unknown resource "mcplex:\/\/nowhere\/file:\/\/\/x"/,
    );
    await expect(client.readResource({ uri: 'file:///etc/passwd' })).rejects.toThrow(/unknown resource/);
  });

  it('names the unknown prompt', async () => {
    await expect(client.getPrompt({ name: 'fixture__nope' })).rejects.toThrow(/unknown prompt "fixture__nope"/);
  });

  it('rejects an invalid cursor', async () => {
    await expect(client.listTools({ cursor: 'not-a-cursor' })).rejects.toThrow(/invalid cursor/);
  });

  it('passes an upstream error for a resource the server does not have', async () => {
    await expect(client.readResource({ uri: 'mcplex://fixture/fixture://static/missing' })).rejects.toThrow();
    expect(await healthy()).toBe(true);
  });
});

describe('HTTP guards', () => {
  it('refuses a foreign Origin with 403', async () => {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { ...JSON_HEADERS, origin: 'https://evil.example' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(403);
  });

  it('accepts a localhost Origin', async () => {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { ...JSON_HEADERS, origin: 'http://localhost:3000' },
      body: '{',
    });
    expect(response.status).toBe(400);
  });

  it('refuses a foreign Host with 403 (DNS rebinding)', async () => {
    const response = await rawRequest({ host: 'evil.example:7070' }, '{}');
    expect(response.status).toBe(403);
  });

  it('refuses a body over the limit with 413 and stays up', async () => {
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { padding: 'x'.repeat(4096) } });
    const response = await rawRequest({}, big);
    expect(response.status).toBe(413);
    expect(response.body).toMatch(/exceeds the limit of 2048 bytes/);
    expect(await healthy()).toBe(true);
  });

  it.each([
    ['/readyz', 'GET', (body: Refusal) => expect(body.error.code).toBe('FORBIDDEN')],
    ['/metrics', 'GET', (body: Refusal) => expect(body.error.code).toBe('FORBIDDEN')],
    // Each route answers in its own error shape: OpenAI's on /v1 and /admin, JSON-RPC on /mcp.
    ['/v1/models', 'GET', (body: Refusal) => expect(body.error.type).toBe('permission_error')],
    ['/admin/keys', 'GET', (body: Refusal) => expect(body.error.type).toBe('permission_error')],
    ['/mcp', 'POST', (body: Refusal) => expect(body).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } })],
  ])('refuses %s to a foreign Host with 403 in the shape of the route', async (path, method, shape) => {
    const url = new URL(`${mcplex.url}${path}`);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(
        { host: url.hostname, port: url.port, path: url.pathname, method, headers: { host: 'evil.example' } },
        (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
    const body = JSON.parse(text) as Refusal;
    expect(JSON.stringify(body)).toMatch(/Host/i);
    shape(body);
  });

  it('leaves a modern tools/call whose headers disagree with its body to the SDK checks', async () => {
    const envelope = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
      'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
    };
    const call = (headers: Record<string, string>) =>
      fetch(endpoint, {
        method: 'POST',
        headers: { ...JSON_HEADERS, ...headers },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 9,
          method: 'tools/call',
          params: { name: 'fixture__echo', arguments: { message: 'm' }, _meta: envelope },
        }),
      });
    const agreeing = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'fixture__echo' };
    const ok = await call(agreeing);
    expect(ok.status).toBe(200);
    // The result names mcplex as its server, not the upstream behind it.
    expect(await jsonRpc(ok)).toMatchObject({
      id: 9,
      result: {
        content: [{ type: 'text', text: 'm' }],
        resultType: 'complete',
        _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'mcplex' } },
      },
    });
    for (const headers of [
      { ...agreeing, 'mcp-name': 'fixture__pid' },
      { 'mcp-protocol-version': '2026-07-28' },
      { ...agreeing, 'mcp-protocol-version': '2025-11-25' },
    ]) {
      const response = await call(headers);
      expect(response.status).toBe(400);
      expect((await jsonRpc(response)).error).toBeDefined();
    }
  });

  it('answers other methods with 405', async () => {
    const response = await fetch(endpoint, { method: 'PUT', body: '{}' });
    expect(response.status).toBe(405);
  });
});

describe('pagination', () => {
  let small: RunningServer;
  let client: Client;
  beforeAll(async () => {
    small = await startMcplex({ mcpServers: { fixture: fixtureStdio() }, server: { pageSize: 2 } });
    await small.gateway.whenSettled();
    client = await connectHttp(`${small.url}/mcp`, 'modern');
  });
  afterAll(async () => {
    await client?.close();
    await small?.close();
  });

  it('pages merged lists with opaque cursors', async () => {
    const all = (await client.listTools()).tools.map((t) => t.name);
    expect(all.length).toBeGreaterThan(2);
    const walked: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await client.request({ method: 'tools/list', params: cursor ? { cursor } : {} });
      expect(page.tools.length).toBeLessThanOrEqual(2);
      walked.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(Math.ceil(all.length / 2));
    expect(walked).toEqual(all);
  });
});

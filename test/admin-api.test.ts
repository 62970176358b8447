// The admin API the console reads, without a browser: who is signed in, the recent-requests log as the LLM gate and
// the MCP call guard write it, usage per time bucket, the servers' event stream, keyless mode, and the console's
// static files (headers, redirects, nothing outside the build).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/main.js';
import type { LoggedRequest } from '../src/store/store.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { fixtureStdio, sseEvents, startMcplex, waitFor } from './support/harness.js';

let mock: MockLlm;
let mcplex: RunningServer;
let admin: string;
let limited: string;
let limitedId: string;

const headers = (key: string, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${key}`, ...extra });
const get = (path: string, key = admin) => fetch(`${mcplex.url}${path}`, { headers: headers(key) });

async function chat(key: string, content: string): Promise<Response> {
  return fetch(`${mcplex.url}/v1/chat/completions`, {
    method: 'POST',
    headers: headers(key, { 'content-type': 'application/json' }),
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content }] }),
  });
}

/** A plain 2026-07-28 tools/call, as the console sends it. */
async function callTool(key: string, name: string, args: Record<string, unknown>): Promise<unknown> {
  const res = await fetch(`${mcplex.url}/mcp`, {
    method: 'POST',
    headers: headers(key, {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': name,
    }),
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {
        name,
        arguments: args,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  return res.json();
}

beforeAll(async () => {
  mock = await startMockLlm({ name: 'admin-api-mock' });
  mcplex = await startMcplex({
    mcpServers: { fx: fixtureStdio('--name', 'fx') },
    auth: { mode: 'keys' },
    cluster: { name: 'replica-a' },
    llm: { models: { m: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } } },
  });
  await mcplex.gateway.whenSettled();
  admin = (await mcplex.policy.keys.create({ name: 'the-admin', admin: true })).token;
  const created = await mcplex.policy.keys.create({ name: 'two-a-minute', rpm: 2 });
  limited = created.token;
  limitedId = created.key.id;
});

afterAll(async () => {
  await mcplex?.close();
  await mock?.close();
});

describe('GET /admin/whoami', () => {
  it('names the admin key and the replica, and refuses other keys', async () => {
    const who = (await (await get('/admin/whoami')).json()) as { mode: string; replica: string; key: { name: string } };
    expect(who).toMatchObject({ mode: 'keys', replica: 'replica-a', key: { name: 'the-admin' } });
    expect((await get('/admin/whoami', limited)).status).toBe(403);
    expect((await fetch(`${mcplex.url}/admin/whoami`)).status).toBe(401);
  });
});

describe('the recent-requests log', () => {
  it('holds each model call with its status, tokens and key, refusals included, and each MCP call', async () => {
    // Two requests a minute: a chat and a tool call are served, the next chat is refused.
    expect((await chat(limited, 'first')).status).toBe(200);
    const answer = (await callTool(limited, 'fx__echo', { message: 'logged' })) as { result?: unknown };
    expect(answer.result).toBeDefined();
    expect((await chat(limited, 'second')).status).toBe(429);

    const page = (await (await get(`/admin/requests?subject=${limitedId}`)).json()) as { data: LoggedRequest[] };
    const [refused, mcp, served] = page.data;
    expect(page.data).toHaveLength(3);
    expect(refused).toMatchObject({ route: 'chat', target: 'm', status: '429', promptTokens: 0 });
    expect(mcp).toMatchObject({ route: 'mcp', target: 'fx/echo', status: 'ok', subject: limitedId });
    expect(served).toMatchObject({ route: 'chat', target: 'm', status: '200', replica: 'replica-a' });
    expect(served!.promptTokens).toBeGreaterThan(0);
    expect(served!.completionTokens).toBeGreaterThan(0);
    expect(served!.latencyMs).toBeGreaterThan(0);
    // Newest first.
    expect(refused!.id).toBeGreaterThan(mcp!.id);
    expect(mcp!.id).toBeGreaterThan(served!.id);
  });

  it('filters and pages on the server', async () => {
    const onlyMcp = (await (await get('/admin/requests?route=mcp')).json()) as { data: LoggedRequest[] };
    expect(onlyMcp.data.length).toBeGreaterThan(0);
    expect(onlyMcp.data.every((r) => r.route === 'mcp')).toBe(true);

    const all = (await (await get('/admin/requests')).json()) as { data: LoggedRequest[] };
    const first = (await (await get('/admin/requests?limit=1')).json()) as { data: LoggedRequest[]; next: number };
    expect(first.data).toEqual(all.data.slice(0, 1));
    expect(first.next).toBe(all.data[0]!.id);
    const second = (await (await get(`/admin/requests?limit=1&before=${first.next}`)).json()) as {
      data: LoggedRequest[];
    };
    expect(second.data).toEqual(all.data.slice(1, 2));
  });

  it('answers bad parameters with 400 naming them, and is for admin keys only', async () => {
    for (const query of ['limit=0', 'limit=501', 'limit=x', 'before=-1', 'since=soon', `target=${'t'.repeat(257)}`]) {
      const res = await get(`/admin/requests?${query}`);
      expect(res.status, query).toBe(400);
      const body = (await res.json()) as { error: { message: string } };
      expect(body.error.message, query).toMatch(/limit|before|since|target/);
    }
    expect((await get('/admin/requests', limited)).status).toBe(403);
  });
});

describe('GET /admin/usage/series', () => {
  it('gives usage per bucket, subject and model over a range', async () => {
    const res = await get('/admin/usage/series?since=1h&bucket=60s');
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      bucketMs: number;
      data: { at: number; subject: string; model: string; requests: number }[];
    };
    expect(body.bucketMs).toBe(60_000);
    const mine = body.data.filter((b) => b.subject === limitedId);
    // The chat that was served, and the tool call (counted as `mcp:<server>/<tool>`); the refused chat is no usage.
    expect(mine.filter((b) => b.model === 'm').reduce((n, b) => n + b.requests, 0)).toBe(1);
    expect(mine.some((b) => b.model === 'mcp:fx/echo')).toBe(true);
    expect(body.data.every((b) => b.at % 60_000 === 0)).toBe(true);
  });

  it('refuses buckets below a second or above 366 days, and ranges of more than 2,000 buckets', async () => {
    expect((await get('/admin/usage/series?since=1h&bucket=999999999999d')).status).toBe(400);
    expect((await get('/admin/usage/series?since=1h&bucket=367d')).status).toBe(400);
    expect((await get('/admin/usage/series?since=1h&bucket=500')).status).toBe(400);
    expect((await get('/admin/usage/series?since=7d&bucket=60s')).status).toBe(400);
    expect((await get('/admin/usage/series?since=1h&bucket=5x')).status).toBe(400);
    expect((await get('/admin/usage/series?since=1h&until=2h')).status).toBe(400);
  });
});

describe('GET /admin/servers/events', () => {
  it('sends the servers at once and again when one changes', async () => {
    const res = await get('/admin/servers/events');
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const events = sseEvents(res);
    try {
      const first = JSON.parse((await events.next())!.data) as { data: { name: string; restarts: number }[] };
      expect(first.data.map((s) => s.name)).toEqual(['fx']);
      const restart = await fetch(`${mcplex.url}/admin/servers/fx/restart`, {
        method: 'POST',
        headers: headers(admin),
      });
      expect(restart.status).toBe(200);
      const restarted = await waitFor(async () => {
        const next = JSON.parse((await events.next())!.data) as { data: { restarts: number; state: string }[] };
        return next.data[0]!.restarts === first.data[0]!.restarts + 1 && next.data[0]!.state === 'ready' && next;
      }, 'an event with the restart');
      expect(restarted.data[0]!.restarts).toBe(first.data[0]!.restarts + 1);
    } finally {
      events.stop();
    }
  });
});

describe('the console files under /ui/', () => {
  it('redirects /ui relative to where it is, and serves the page with a strict policy', async () => {
    const redirect = await fetch(`${mcplex.url}/ui`, { redirect: 'manual' });
    expect(redirect.status).toBe(301);
    expect(redirect.headers.get('location')).toBe('ui/');
    const page = await fetch(`${mcplex.url}/ui/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    const html = await page.text();
    const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${mcplex.url}/ui/${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toContain('immutable');
  });

  it('serves nothing outside the build', async () => {
    for (const path of ['/ui/../package.json', '/ui/..%2Fpackage.json', '/ui/assets/', '/ui/nope.js', '/ui/%00']) {
      const res = await fetch(`${mcplex.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(await res.text(), path).not.toContain('"name": "mcplex"');
    }
    expect((await fetch(`${mcplex.url}/ui/`, { method: 'POST' })).status).toBe(404);
  });
});

describe('keyless mode', () => {
  let open: RunningServer;
  beforeAll(async () => {
    open = await startMcplex({ mcpServers: { fx: fixtureStdio('--name', 'fx') } });
  });
  afterAll(async () => {
    await open?.close();
  });

  it('opens the admin API to this host, except keys, which need keys mode', async () => {
    const who = (await (await fetch(`${open.url}/admin/whoami`)).json()) as { mode: string; key: unknown };
    expect(who).toEqual(expect.objectContaining({ mode: 'none', key: null }));
    expect((await fetch(`${open.url}/admin/servers`)).status).toBe(200);
    const keys = await fetch(`${open.url}/admin/keys`);
    expect(keys.status).toBe(403);
    expect(((await keys.json()) as { error: { message: string } }).error.message).toMatch(/"mode": "keys"/);
    // A page elsewhere cannot reach it (the Origin check), nor can anyone through a proxy on this host.
    const foreign = await fetch(`${open.url}/admin/servers`, { headers: { origin: 'https://evil.example' } });
    expect(foreign.status).toBe(403);
    for (const proxied of [
      { 'x-forwarded-for': '203.0.113.9' },
      { forwarded: 'for=203.0.113.9' },
      { 'x-real-ip': '1.2.3.4' },
    ] as Record<string, string>[]) {
      const res = await fetch(`${open.url}/admin/servers`, { headers: proxied });
      expect(res.status, JSON.stringify(proxied)).toBe(403);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/this host only/);
    }
  });
});

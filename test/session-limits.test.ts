// Legacy sessions are bounded per principal and in all, idle ones go sooner at the cap, and the replay buffers
// for Last-Event-ID are bounded per session and in all; a resume beyond them gets a clear 400.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import { upstreamFetch } from '../src/mcp/upstream/transport.js';
import { OPERATOR, clientOptions, fixtureStdio, legacyInitialize, startMcplex, waitFor } from './support/harness.js';

let mcplex: RunningServer;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  mcplex = await startMcplex({
    auth: { mode: 'keys' },
    mcpServers: { fixture: fixtureStdio() },
    server: {
      sessions: {
        max: 5,
        maxPerPrincipal: 3,
        maxListensPerPrincipal: 2,
        pressureIdleMs: 150,
        replayBytes: 200_000,
        replayTotalBytes: 300_000,
      },
    },
  });
  await mcplex.gateway.whenSettled();
  for (const name of ['a', 'b', 'c', 'replay', 'listener', 'other']) {
    tokens[name] = (await mcplex.policy.keys.create({ name })).token;
  }
});
afterAll(async () => {
  await mcplex?.close();
});

const headers = (token: string, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${token}`,
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  ...extra,
});

async function initialize(
  token: string,
  base = mcplex.url,
): Promise<{ status: number; session?: string; body: string }> {
  const response = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: headers(token),
    body: legacyInitialize('raw'),
  });
  const session = response.headers.get('mcp-session-id') ?? undefined;
  return { status: response.status, ...(session ? { session } : {}), body: await response.text() };
}

async function ping(token: string, session: string, base = mcplex.url): Promise<number> {
  const response = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: headers(token, { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' }),
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
  });
  await response.text();
  return response.status;
}

async function readyz(): Promise<{ sessions: number; replayBufferBytes: number }> {
  return (await (await fetch(`${mcplex.url}/readyz`, { headers: OPERATOR })).json()) as {
    sessions: number;
    replayBufferBytes: number;
  };
}

/** Opens the session's GET stream: a session that holds one is in use, however long since its last request. */
async function openStream(token: string, session: string): Promise<Response> {
  const stream = await fetch(`${mcplex.url}/mcp`, {
    headers: headers(token, { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' }),
  });
  expect(stream.status).toBe(200);
  return stream;
}

describe('sessions per principal and in all', () => {
  // The cap was global only: one key opened 9,997 sessions and every other key's initialize got 503.
  it('regression: one key cannot take every session; past its own cap it gets 429, others still get theirs', async () => {
    const a = await Promise.all([initialize(tokens.a!), initialize(tokens.a!), initialize(tokens.a!)]);
    expect(a.map((r) => r.status)).toEqual([200, 200, 200]);
    // Streams keep every session in use while the caps are checked, however slowly this test runs.
    const aStreams = await Promise.all(a.map((r) => openStream(tokens.a!, r.session!)));
    const refused = await initialize(tokens.a!);
    expect(refused.status).toBe(429);
    expect(refused.body).toMatch(/too many open sessions for this key \(3\)/);
    const b = await Promise.all([initialize(tokens.b!), initialize(tokens.b!)]);
    expect(b.map((r) => r.status)).toEqual([200, 200]);
    const bStreams = await Promise.all(b.map((r) => openStream(tokens.b!, r.session!)));
    // Five in all now, every one in use: a third key gets 503.
    expect((await initialize(tokens.c!)).status).toBe(503);

    // Once two of a's streams end, those sessions go idle; at the cap, idle past pressureIdleMs, they make room.
    await Promise.all(aStreams.slice(1).map((stream) => stream.body?.cancel()));
    const again = await waitFor(async () => {
      const r = await initialize(tokens.a!);
      return r.status === 200 ? r : undefined;
    }, 'an idle session to make room');
    expect(again.session).toBeDefined();
    expect(await ping(tokens.a!, a[0]!.session!)).toBe(200);
    expect(await ping(tokens.a!, a[1]!.session!)).toBe(404);
    expect(await ping(tokens.a!, a[2]!.session!)).toBe(404);
    await Promise.all([aStreams[0], ...bStreams].map((stream) => stream?.body?.cancel()));
  });
});

describe('2026-07-28 listen streams per principal', () => {
  const listen = (token: string) =>
    fetch(`${mcplex.url}/mcp`, {
      method: 'POST',
      headers: headers(token, { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'subscriptions/listen' }),
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'subscriptions/listen',
        params: {
          notifications: { toolsListChanged: true },
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    });

  it('are capped per key (429), other keys unaffected, and a closed stream makes room', async () => {
    const open = [await listen(tokens.listener!), await listen(tokens.listener!)];
    expect(open.map((r) => r.status)).toEqual([200, 200]);
    const refused = await listen(tokens.listener!);
    expect(refused.status).toBe(429);
    expect(await refused.text()).toMatch(/TOO_MANY_LISTENS/);
    const other = await listen(tokens.other!);
    expect(other.status).toBe(200);
    await open[0]!.body?.cancel();
    const again = await waitFor(async () => {
      const response = await listen(tokens.listener!);
      if (response.status === 200) return response;
      await response.text();
      return undefined;
    }, 'room for another listen stream');
    for (const stream of [open[1], other, again]) await stream?.body?.cancel();
  });
});

describe('pressure expiry', () => {
  let busy: RunningServer;
  beforeAll(async () => {
    busy = await startMcplex({
      auth: { mode: 'keys' },
      mcpServers: { fixture: fixtureStdio() },
      server: { sessions: { maxPerPrincipal: 2, pressureIdleMs: 100 } },
    });
    await busy.gateway.whenSettled();
  });
  afterAll(async () => {
    await busy?.close();
  });

  it('never closes a session whose call is still running, only the idle ones', async () => {
    const { token: key } = await busy.policy.keys.create({ name: 'busy' });
    const open = async () => (await initialize(key, busy.url)).session!;
    const [calling, idle] = [await open(), await open()];
    const call = fetch(`${busy.url}/mcp`, {
      method: 'POST',
      headers: headers(key, { 'mcp-session-id': calling, 'mcp-protocol-version': '2025-11-25' }),
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'fixture__slow', arguments: { ms: 1500 } },
      }),
    }).then((r) => r.text());
    // The cap is reached; once the idle session is idle long enough, a new one takes its place.
    await waitFor(async () => (await initialize(key, busy.url)).status === 200, 'room for a new session');
    expect(await call).toContain('done');
    expect(await ping(key, calling, busy.url)).toBe(200);
    expect(await ping(key, idle, busy.url)).toBe(404);
  });
});

describe('replay buffers', () => {
  /** A legacy client that can be asked for input: it takes the SDK path, whose SSE events are kept for replay. */
  async function askableClient(): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const client = new Client(
      { name: 'askable', version: '1.0.0' },
      { ...clientOptions('legacy'), capabilities: { elicitation: { form: {} } } },
    );
    const transport = new StreamableHTTPClientTransport(new URL(`${mcplex.url}/mcp`), {
      fetch: upstreamFetch,
      requestInit: { headers: { authorization: `Bearer ${tokens.replay}` } },
    });
    await client.connect(transport);
    return { client, transport };
  }

  it('keep no event over the per-session bound and stay under the total; a resume beyond them gets 400', async () => {
    // Four sessions are open (the test above), one more fits.
    const before = (await readyz()).replayBufferBytes;
    const { client, transport } = await askableClient();
    try {
      const huge = await client.callTool({ name: 'fixture__echo', arguments: { message: 'h'.repeat(250_000) } });
      expect((huge.content as { text: string }[])[0]?.text).toHaveLength(250_000);
      expect((await readyz()).replayBufferBytes - before).toBeLessThan(10_000);
      for (let i = 0; i < 3; i++) {
        await client.callTool({ name: 'fixture__echo', arguments: { message: String(i).repeat(150_000) } });
      }
      const kept = (await readyz()).replayBufferBytes;
      // Answers within the bound are kept (the newest), all of them under the total.
      expect(kept).toBeGreaterThan(150_000);
      expect(kept).toBeLessThanOrEqual(300_000);

      const resume = await fetch(`${mcplex.url}/mcp`, {
        headers: headers(tokens.replay!, {
          'mcp-session-id': transport.sessionId!,
          'mcp-protocol-version': '2025-11-25',
          'last-event-id': 'stream_00000000-0000-0000-0000-000000000000',
        }),
      });
      expect(resume.status).toBe(400);
      const body = (await resume.json()) as { error: { message: string; data: { code: string } } };
      expect(body.error.data.code).toBe('EVENT_NOT_REPLAYABLE');
      expect(body.error.message).toMatch(/without Last-Event-ID/);
    } finally {
      await client.close();
    }
  });
});

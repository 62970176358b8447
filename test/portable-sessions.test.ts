// 2025-11-25 sessions on any replica: two mcplex instances on one Redis, each with its own upstream, serve one
// session between them as a round-robin balancer would send it. The SDK client's requests are sent to one replica
// or the other by what they are, so that each case crosses replicas on purpose.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import { testNamespace } from '../src/store/redis/redis-test-support.js';
import { clientOptions, fixtureStdio, legacyInitialize, sseEvents, startMcplex, waitFor } from './support/harness.js';

const redis = testNamespace();
const REDIS_URL = process.env.MCPLEX_TEST_REDIS ?? 'redis://127.0.0.1:6379/0';
let a: RunningServer;
let b: RunningServer;

let prefixOfAB: string;

beforeAll(async () => {
  const prefix = (prefixOfAB = redis.fresh());
  const replica = (name: string) =>
    startMcplex({
      redis: { url: REDIS_URL, prefix },
      cluster: { name, heartbeatMs: 200 },
      mcpServers: { fixture: fixtureStdio() },
      // The same requestState key on both, as every replica of a deployment has.
      server: { drainMs: 0, requestState: { key: 'k'.repeat(32) } },
    });
  [a, b] = await Promise.all([replica('a'), replica('b')]);
  await Promise.all([a.gateway.whenSettled(), b.gateway.whenSettled()]);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await redis.removeAll();
});

type Route = (init: RequestInit | undefined) => 'a' | 'b';

/** A fetch that sends each request to the replica `route` picks, and writes down who served it. */
function balancer(route: Route): { fetch: typeof fetch; served: string[] } {
  const served: string[] = [];
  const urls = { a: new URL(a.url), b: new URL(b.url) };
  return {
    served,
    fetch: async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      const target = urls[route(init)];
      url.host = target.host;
      const response = await fetch(url, init);
      served.push(response.headers.get('x-mcplex-replica') ?? '?');
      return response;
    },
  };
}

const body = (init: RequestInit | undefined): string => (typeof init?.body === 'string' ? init.body : '');
/** Requests to `a`; answers to the server's requests, and GET streams, to `b`. */
const crossing: Route = (init) =>
  init?.method === 'GET' || (body(init).includes('"result"') && !body(init).includes('"method"')) ? 'b' : 'a';

async function connect(route: Route, capabilities: Record<string, unknown> = {}, era: 'legacy' | 'modern' = 'legacy') {
  const { fetch: balanced, served } = balancer(route);
  const client = new Client({ name: 'portable', version: '1.0.0' }, { ...clientOptions(era), capabilities });
  const transport = new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), { fetch: balanced });
  await client.connect(transport);
  return { client, transport, served };
}

const textOf = (result: unknown) => (result as { content: { text: string }[] }).content[0]?.text;

describe('a session on two replicas', () => {
  it('serves calls and lists on whichever replica gets them, as one replica would', async () => {
    let turn = 0;
    const { client, served } = await connect(() => (turn++ % 2 === 0 ? 'a' : 'b'));
    try {
      const tools = await client.listTools();
      for (let i = 0; i < 10; i++) {
        expect(textOf(await client.callTool({ name: 'fixture__echo', arguments: { message: `m${i}` } }))).toBe(`m${i}`);
      }
      expect((await client.listTools()).tools).toEqual(tools.tools);
      expect(new Set(served)).toEqual(new Set(['a', 'b']));
    } finally {
      await client.close();
    }
  });

  it("hands the client's answer to a question to the replica running the call", async () => {
    const { client, served } = await connect(crossing, { elicitation: { form: {} } });
    try {
      let asked = 0;
      client.setRequestHandler('elicitation/create', async () => {
        asked++;
        return { action: 'accept', content: { ok: true } };
      });
      const result = await client.callTool({ name: 'fixture__confirm', arguments: { question: 'sure?' } });
      expect(textOf(result)).toBe('confirmed');
      expect(asked).toBe(1);
      expect(served).toContain('b');
    } finally {
      await client.close();
    }
  });

  it("resumes a 2026-07-28 client's input-required call on the replica where the retry lands", async () => {
    // Retries (they carry the requestState) go to b; the call began on a.
    const { client, served } = await connect(
      (init) => (body(init).includes('requestState') ? 'b' : 'a'),
      { elicitation: { form: {} } },
      'modern',
    );
    try {
      let asked = 0;
      client.setRequestHandler('elicitation/create', async () => {
        asked++;
        return { action: 'accept', content: { ok: true } };
      });
      const result = await client.callTool({ name: 'fixture__confirm', arguments: { question: 'sure?' } });
      expect(textOf(result)).toBe('confirmed');
      expect(asked).toBe(1);
      expect(served).toEqual(expect.arrayContaining(['a', 'b']));
    } finally {
      await client.close();
    }
  });

  it("tells the session's GET stream on one replica of a list change seen by the other", async () => {
    const { client, served } = await connect(crossing);
    try {
      let changed = 0;
      client.setNotificationHandler('notifications/tools/list_changed', () => {
        changed++;
      });
      // The client's GET stream is on b: wait until b holds it.
      await waitFor(() => b.gateway !== undefined && served.filter((s) => s === 'b').length > 0, 'the GET stream');
      await new Promise((resolve) => setTimeout(resolve, 200));
      await client.callTool({ name: 'fixture__add_tool', arguments: { name: `added_${Date.now()}` } });
      await waitFor(() => changed > 0, 'a list-changed notification on the stream held by b');
    } finally {
      await client.close();
    }
  });

  it('ends a session everywhere when one replica gets its DELETE', async () => {
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const init = await fetch(`${a.url}/mcp`, { method: 'POST', headers, body: legacyInitialize('delete') });
    const session = init.headers.get('mcp-session-id')!;
    await init.text();
    const inSession = { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
    const ping = (url: string) =>
      fetch(`${url}/mcp`, {
        method: 'POST',
        headers: inSession,
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
      }).then(async (r) => (await r.text(), r.status));
    expect(await ping(b.url)).toBe(200);
    const ended = await fetch(`${b.url}/mcp`, { method: 'DELETE', headers: inSession });
    expect(ended.status).toBe(200);
    expect(await ping(a.url)).toBe(404);
    expect(await ping(b.url)).toBe(404);
  });
});

describe('the cluster view', () => {
  it('lists every live replica to an admin key (GET /admin/cluster)', async () => {
    const c = await startMcplex({
      redis: { url: REDIS_URL, prefix: prefixOfAB },
      cluster: { name: 'c', heartbeatMs: 200 },
      auth: { mode: 'keys' },
      mcpServers: {},
    });
    try {
      const { token } = await c.policy.keys.create({ name: 'admin', admin: true });
      const { token: plain } = await c.policy.keys.create({ name: 'plain' });
      const view = async (key: string) =>
        fetch(`${c.url}/admin/cluster`, { headers: { authorization: `Bearer ${key}` } });
      expect((await view(plain)).status).toBe(403);
      await waitFor(async () => {
        const body = (await (await view(token)).json()) as { replica: string; data: { name: string }[] };
        return body.replica === 'c' && body.data.map((r) => r.name).join(',') === 'a,b,c';
      }, 'a, b and c in the cluster view');
    } finally {
      await c.close();
    }
  });
});

describe('streams across replicas', () => {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

  async function openSession(url: string, capabilities?: Record<string, unknown>): Promise<Record<string, string>> {
    const body = capabilities
      ? JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 'streams', version: '1' } },
        })
      : legacyInitialize('streams');
    const init = await fetch(`${url}/mcp`, { method: 'POST', headers, body });
    await init.text();
    return { ...headers, 'mcp-session-id': init.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-11-25' };
  }

  it("resumes a session's GET stream on the other replica from the shared log, missing nothing", async () => {
    const session = await openSession(a.url);
    const stream = sseEvents(await fetch(`${a.url}/mcp`, { headers: session }));
    const priming = await stream.next();
    expect(priming?.id).toBeDefined();
    const add = (url: string) =>
      fetch(`${url}/mcp`, {
        method: 'POST',
        headers: session,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/call',
          params: { name: 'fixture__add_tool', arguments: { name: `resume_${Date.now()}_${Math.random()}` } },
        }),
      }).then((r) => r.text());
    await add(a.url);
    const first = await stream.next();
    expect(first?.data).toContain('notifications/tools/list_changed');
    await add(b.url);
    const second = await stream.next();
    expect(second?.data).toContain('notifications/tools/list_changed');
    stream.stop();
    // The client saw the first; the second was lost on its way (as when the replica died while sending it).
    const resumed = sseEvents(await fetch(`${b.url}/mcp`, { headers: { ...session, 'last-event-id': first!.id! } }));
    const replayed = await resumed.next();
    expect(replayed).toEqual(second);
    // A stream that nobody held for a moment may have missed list changes: the client is told to list again.
    const notice = await resumed.next();
    expect(notice?.data).toContain('notifications/tools/list_changed');
    resumed.stop();
  });

  it("refuses a session id that is not one of mcplex's with 404, whatever it looks like in the store", async () => {
    const session = await openSession(a.url);
    // The session's log exists once a stream was opened: an id naming it must not reach it.
    const stream = sseEvents(await fetch(`${a.url}/mcp`, { headers: session }));
    expect((await stream.next())?.id).toBeDefined();
    stream.stop();
    for (const id of [`${session['mcp-session-id']}:log`, `${session['mcp-session-id']}:subs`, 'x'.repeat(5000)]) {
      const response = await fetch(`${b.url}/mcp`, {
        method: 'POST',
        headers: { ...session, 'mcp-session-id': id },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
      });
      await response.text();
      expect(response.status).toBe(404);
    }
  });

  it("does not hand one session's answer to another session's question (regression: exchange ids are guessable)", async () => {
    const asker = await openSession(a.url, { elicitation: { form: {} } });
    const call = await fetch(`${a.url}/mcp`, {
      method: 'POST',
      headers: asker,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 9,
        method: 'tools/call',
        params: { name: 'fixture__confirm', arguments: { question: 'sure?' } },
      }),
    });
    const stream = sseEvents(call);
    let question: { id: string } | undefined;
    while (!question) {
      const event = await stream.next();
      const message = JSON.parse(event?.data || '{}') as { id?: string; method?: string };
      if (message.method === 'elicitation/create') question = message as { id: string };
    }
    const intruder = await openSession(a.url);
    for (const url of [a.url, b.url]) {
      const injected = await fetch(`${url}/mcp`, {
        method: 'POST',
        headers: intruder,
        body: JSON.stringify({ jsonrpc: '2.0', id: question.id, result: { action: 'accept', content: { ok: false } } }),
      });
      await injected.text();
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const answered = await fetch(`${b.url}/mcp`, {
      method: 'POST',
      headers: asker,
      body: JSON.stringify({ jsonrpc: '2.0', id: question.id, result: { action: 'accept', content: { ok: true } } }),
    });
    expect(answered.status).toBe(202);
    let result: string | undefined;
    for (let event = await stream.next(); event && result === undefined; event = await stream.next()) {
      const message = JSON.parse(event.data || '{}') as { id?: number; result?: { content: { text: string }[] } };
      if (message.id === 9) result = message.result?.content[0]?.text;
    }
    expect(result).toBe('confirmed');
  });

  it('refuses a GET or DELETE with an unsupported protocol version with 400 (found by the fuzz suite)', async () => {
    const session = await openSession(a.url);
    for (const method of ['GET', 'DELETE']) {
      const response = await fetch(`${b.url}/mcp`, {
        method,
        headers: { ...session, 'mcp-protocol-version': '1999-01-01' },
      });
      await response.text();
      expect(response.status, method).toBe(400);
    }
  });

  it('ends the stream of a call in progress when its session is deleted (found by the fuzz suite: it hung)', async () => {
    const session = await openSession(a.url);
    const call = await fetch(`${a.url}/mcp`, {
      method: 'POST',
      headers: session,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 8,
        method: 'tools/call',
        params: { name: 'fixture__slow', arguments: { ms: 20_000, steps: 200 }, _meta: { progressToken: 'p' } },
      }),
    });
    const stream = sseEvents(call);
    expect((await stream.next())?.id).toBeDefined();
    expect((await fetch(`${b.url}/mcp`, { method: 'DELETE', headers: session })).status).toBe(200);
    // The stream ends (a cancelled request gets no answer), well before the call's 20 s.
    for (let event = await stream.next(); event; event = await stream.next()) {
      expect(JSON.parse(event.data || '{}')).not.toHaveProperty('result');
    }
  });

  // Last: it stops replica a.
  it('ends a call whose replica stopped with an error on the stream the client resumes elsewhere', async () => {
    const session = await openSession(a.url);
    const call = await fetch(`${a.url}/mcp`, {
      method: 'POST',
      headers: session,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 5,
        method: 'tools/call',
        params: { name: 'fixture__slow', arguments: { ms: 5000, steps: 50 }, _meta: { progressToken: 'p' } },
      }),
    });
    const posted = sseEvents(call);
    const first = await posted.next();
    expect(first?.id).toBeDefined();
    posted.stop();
    const stream = sseEvents(await fetch(`${a.url}/mcp`, { headers: session }));
    expect((await stream.next())?.id).toBeDefined();
    await a.close();
    // Stopping, a ends its notification streams (their clients reconnect elsewhere) and leaves the session valid.
    expect(await stream.next()).toBeUndefined();
    const ping = await fetch(`${b.url}/mcp`, {
      method: 'POST',
      headers: session,
      body: JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'ping' }),
    });
    await ping.text();
    expect(ping.status).toBe(200);
    const resumed = sseEvents(await fetch(`${b.url}/mcp`, { headers: { ...session, 'last-event-id': first!.id! } }));
    let answer: { id?: number; error?: { message: string } } | undefined;
    for (let event = await resumed.next(); event; event = await resumed.next()) {
      const message = JSON.parse(event.data || '{}') as { id?: number; method?: string; error?: { message: string } };
      if (message.id === 5 && message.method === undefined) {
        answer = message;
        break;
      }
    }
    expect(answer?.error?.message).toMatch(/stopped|lost|shutting down/);
    resumed.stop();
  });
});

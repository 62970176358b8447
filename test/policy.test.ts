// API keys, scopes, rate limits and usage on /v1 and /mcp (auth.mode "keys"), with the official clients.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import type { CreateKeyInput } from '../src/policy/auth/key-service.js';
import {
  METRICS_TOKEN,
  OPERATOR,
  clientOptions,
  fixtureStdio,
  processAlive,
  startMcplex,
  waitFor,
} from './support/harness.js';
import type { Era } from './support/harness.js';

let mock: MockLlm;
let mcplex: RunningServer;

beforeAll(async () => {
  mock = await startMockLlm({ name: 'policy-mock' });
  const deployment = { provider: 'openai' as const, baseUrl: `${mock.url}/v1`, model: 'backend' };
  mcplex = await startMcplex({
    auth: { mode: 'keys' },
    mcpServers: { alpha: fixtureStdio('--name', 'alpha'), beta: fixtureStdio('--name', 'beta') },
    llm: { models: { small: { deployments: [deployment] }, large: { deployments: [deployment] } } },
  });
  await mcplex.gateway.whenSettled();
});

afterAll(async () => {
  await mcplex?.close();
  await mock?.close();
});

async function key(input: CreateKeyInput): Promise<string> {
  return (await mcplex.policy.keys.create(input)).token;
}

const openai = (apiKey: string) => new OpenAI({ baseURL: `${mcplex.url}/v1`, apiKey, maxRetries: 0 });
const chat = (apiKey: string, model = 'small', extra: Record<string, unknown> = {}) =>
  fetch(`${mcplex.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra }),
  });

async function mcpClient(apiKey: string, era: Era): Promise<Client> {
  const client = new Client({ name: 'policy-test', version: '1.0.0' }, clientOptions(era));
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${mcplex.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${apiKey}` } },
    }),
  );
  return client;
}

describe('authentication', () => {
  it('answers /v1 without a valid key with 401 in the OpenAI shape', async () => {
    for (const apiKey of ['', 'sk-not-ours', 'mcx_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
      const error = await openai(apiKey)
        .chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'x' }] })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
      expect((error as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
    }
  });

  it('answers /mcp without a key with 401 and a Bearer challenge', async () => {
    const response = await fetch(`${mcplex.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="mcplex"/);
  });

  it('stops accepting a key once it is revoked', async () => {
    const token = await key({ name: 'to-revoke' });
    expect((await chat(token)).status).toBe(200);
    const id = token.split('_')[1]!;
    expect(await mcplex.policy.keys.revoke(id)).toBe(true);
    expect((await chat(token)).status).toBe(401);
  });
});

describe('the operator endpoints with API keys', () => {
  it('answers /readyz with the status alone unless an admin key or the metrics token asks', async () => {
    const user = await key({ name: 'readyz-user' });
    const admin = await key({ name: 'readyz-admin', admin: true });
    const readyz = async (authorization?: string) => {
      const response = await fetch(`${mcplex.url}/readyz`, authorization ? { headers: { authorization } } : {});
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    // A balancer's probe needs no key, and learns nothing about the servers.
    expect(await readyz()).toEqual({ status: 200, body: { ready: true } });
    expect(await readyz(`Bearer ${user}`)).toEqual({ status: 200, body: { ready: true } });
    expect(await readyz('Bearer not-the-token')).toEqual({ status: 200, body: { ready: true } });
    for (const authorization of [`Bearer ${admin}`, OPERATOR.authorization]) {
      const { status, body } = await readyz(authorization);
      expect(status).toBe(200);
      expect((body.servers as { name: string }[]).map((s) => s.name).sort()).toEqual(['alpha', 'beta']);
    }
  });

  it('answers /metrics only to an admin key or the metrics token', async () => {
    const user = await key({ name: 'metrics-user' });
    const admin = await key({ name: 'metrics-admin', admin: true });
    const metrics = (authorization?: string) =>
      fetch(`${mcplex.url}/metrics`, authorization ? { headers: { authorization } } : {});
    const missing = await metrics();
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect(((await missing.json()) as { error: { message: string } }).error.message).toMatch(/admin API key/);
    expect((await metrics(`Bearer ${user}`)).status).toBe(403);
    expect((await metrics(`Bearer ${METRICS_TOKEN}x`)).status).toBe(403);
    for (const authorization of [`Bearer ${admin}`, OPERATOR.authorization]) {
      const response = await metrics(authorization);
      expect(response.status).toBe(200);
      expect(await response.text()).toMatch(/^# HELP /m);
    }
  });
});

describe('the MCP servers over /admin', () => {
  it('lists the servers and restarts one on request (a new child process), for admin keys only', async () => {
    const admin = await key({ name: 'servers-admin', admin: true });
    const user = await key({ name: 'servers-user' });
    const call = (path: string, token: string, method = 'GET') =>
      fetch(`${mcplex.url}/admin/servers${path}`, { method, headers: { authorization: `Bearer ${token}` } });
    expect((await call('', user)).status).toBe(403);
    expect((await call('/alpha/restart', user, 'POST')).status).toBe(403);
    const listed = (await (await call('', admin)).json()) as {
      data: { name: string; pid: number; restarts: number }[];
    };
    const before = listed.data.find((s) => s.name === 'alpha')!;
    expect(listed.data.map((s) => s.name).sort()).toEqual(['alpha', 'beta']);

    const restarted = await call('/alpha/restart', admin, 'POST');
    expect(restarted.status).toBe(200);
    const after = (await restarted.json()) as { state: string; pid: number; restarts: number };
    expect(after).toMatchObject({ state: 'ready', restarts: before.restarts + 1 });
    expect(after.pid).not.toBe(before.pid);
    // The old child is gone, and the server answers as before.
    await waitFor(() => !processAlive(before.pid), 'the old child to exit');
    const client = await mcpClient(admin, 'legacy');
    try {
      expect((await client.callTool({ name: 'alpha__echo', arguments: { message: 'back' } })).isError).toBeFalsy();
    } finally {
      await client.close();
    }
    expect((await call('/nope/restart', admin, 'POST')).status).toBe(404);
  });
});

describe('scopes', () => {
  it('a key limited to one model gets 403 on another, and lists only its own', async () => {
    const token = await key({ name: 'small-only', models: ['small'] });
    expect((await chat(token, 'small')).status).toBe(200);
    const error = await openai(token)
      .chat.completions.create({ model: 'large', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.PermissionDeniedError);
    const ids = [];
    for await (const model of openai(token).models.list()) ids.push(model.id);
    expect(ids).toEqual(['small']);
  });

  it.each<Era>(['legacy', 'modern'])(
    'a key limited to server alpha neither sees nor calls beta (%s client)',
    async (era) => {
      const token = await key({ name: `alpha-only-${era}`, servers: ['alpha'] });
      const client = await mcpClient(token, era);
      try {
        const names = (await client.listTools()).tools.map((t) => t.name);
        expect(names).toContain('alpha__echo');
        expect(names.filter((n) => n.startsWith('beta__'))).toEqual([]);
        expect((await client.listResources()).resources.map((r) => r.uri)).not.toContain(
          'mcplex://beta/fixture://static/hello',
        );
        const ok = await client.callTool({ name: 'alpha__echo', arguments: { message: 'mine' } });
        expect(ok.content).toEqual([{ type: 'text', text: 'mine' }]);
        await expect(client.callTool({ name: 'beta__echo', arguments: { message: 'theirs' } })).rejects.toThrow(
          /unknown tool "beta__echo"/,
        );
        await expect(client.readResource({ uri: 'mcplex://beta/fixture://static/hello' })).rejects.toThrow(
          /unknown resource/,
        );
      } finally {
        await client.close();
      }
    },
  );

  it('a key limited by tool pattern sees only the matching tools', async () => {
    const token = await key({ name: 'echo-tools', tools: ['*__echo'] });
    const client = await mcpClient(token, 'legacy');
    try {
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['alpha__echo', 'beta__echo']);
    } finally {
      await client.close();
    }
  });

  it("a session opened with one key is not usable with another's", async () => {
    const owner = await mcpClient(await key({ name: 'session-owner' }), 'legacy');
    const sessionId = (owner.transport as StreamableHTTPClientTransport).sessionId!;
    const other = await key({ name: 'session-thief' });
    const response = await fetch(`${mcplex.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${other}`,
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(404);
    await owner.close();
  });
});

describe('rate limits', () => {
  it('accepts exactly 10 of 15 requests at 10 per minute; the 429s carry the limit headers', async () => {
    const token = await key({ name: 'rpm-10', rpm: 10 });
    const statuses: number[] = [];
    let refused: Response | undefined;
    let accepted: Response | undefined;
    for (let i = 0; i < 15; i++) {
      const response = await chat(token);
      statuses.push(response.status);
      if (response.status === 429) refused ??= response;
      else accepted = response;
      await response.arrayBuffer();
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.slice(10)).toEqual([429, 429, 429, 429, 429]);
    expect(accepted!.headers.get('x-ratelimit-limit-requests')).toBe('10');
    expect(accepted!.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(refused!.headers.get('x-ratelimit-limit-requests')).toBe('10');
    expect(refused!.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused!.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(ms|s|m\d+s)$/);
    const body = (await chat(token).then((r) => r.json())) as { error: { code: string } };
    expect(body.error.code).toBe('rate_limit_exceeded');
  });

  it('admits requests up to the tokens per minute, counted from the estimate', async () => {
    // Each request is estimated at 1 prompt token ("hi") + 24 max tokens = 25: 100 per minute admits 4 at once.
    const token = await key({ name: 'tpm-100', tpm: 100 });
    mock.setOptions({ latencyMs: 300 });
    try {
      const responses = await Promise.all(Array.from({ length: 6 }, () => chat(token, 'small', { max_tokens: 24 })));
      const statuses = responses.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
      const refused = responses.find((r) => r.status === 429)!;
      expect(refused.headers.get('x-ratelimit-limit-tokens')).toBe('100');
      expect(Number(refused.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThan(25);
    } finally {
      mock.setOptions({ latencyMs: 0 });
    }
  });

  it('admits only max-concurrent requests at a time', async () => {
    const token = await key({ name: 'concurrent-2', maxConcurrent: 2 });
    mock.setOptions({ latencyMs: 300 });
    try {
      const responses = await Promise.all(Array.from({ length: 5 }, () => chat(token)));
      expect(responses.map((r) => r.status).sort()).toEqual([200, 200, 429, 429, 429]);
      const body = (await responses.find((r) => r.status === 429)!.json()) as { error: { code: string } };
      expect(body.error.code).toBe('concurrency_limit_exceeded');
    } finally {
      mock.setOptions({ latencyMs: 0 });
    }
    // Once they are done, the key may go on.
    expect((await chat(token)).status).toBe(200);
  });
});

describe('usage and the admin API', () => {
  it('records requests and tokens per key and model, readable from /admin/usage by an admin key', async () => {
    const token = await key({ name: 'usage-counted' });
    const id = token.split('_')[1]!;
    for (let i = 0; i < 3; i++) await (await chat(token)).arrayBuffer();
    const admin = await key({ name: 'admin', admin: true });
    const response = await fetch(`${mcplex.url}/admin/usage?subject=${id}`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(response.status).toBe(200);
    const { data } = (await response.json()) as {
      data: { subject: string; model: string; requests: number; promptTokens: number; completionTokens: number }[];
    };
    expect(data).toEqual([
      {
        subject: id,
        model: 'small',
        requests: 3,
        promptTokens: expect.any(Number),
        completionTokens: expect.any(Number),
      },
    ]);
    expect(data[0]!.completionTokens).toBeGreaterThan(0);
  });

  it("takes the CLI's forms of since in /admin/usage and refuses the rest with 400 (regression: an empty 200)", async () => {
    const token = await key({ name: 'usage-since' });
    const id = token.split('_')[1]!;
    await (await chat(token)).arrayBuffer();
    const admin = await key({ name: 'admin-since', admin: true });
    const usage = (query: string) =>
      fetch(`${mcplex.url}/admin/usage?subject=${id}&${query}`, { headers: { authorization: `Bearer ${admin}` } });
    for (const since of ['1h', '7d', '90m', new Date(Date.now() - 60_000).toISOString(), String(Date.now() - 60_000)]) {
      const response = await usage(`since=${encodeURIComponent(since)}`);
      expect(response.status, since).toBe(200);
      expect(((await response.json()) as { data: { requests: number }[] }).data[0]?.requests, since).toBe(1);
    }
    // The usage is older than a moment from now: since in the future finds none.
    const future = await usage(`since=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`);
    expect(((await future.json()) as { data: unknown[] }).data).toEqual([]);
    for (const bogus of ['bogus', '1y', '', 'tomorrow', '1h ago']) {
      const response = await usage(`since=${encodeURIComponent(bogus)}`);
      expect(response.status, bogus).toBe(400);
      expect(((await response.json()) as { error: { message: string } }).error.message).toContain("'since'");
    }
    expect((await usage('until=soon')).status).toBe(400);
  });

  it('creates and revokes keys over /admin/keys for admin keys only', async () => {
    const admin = await key({ name: 'admin-2', admin: true });
    const plain = await key({ name: 'not-admin' });
    const create = (apiKey: string, body: unknown) =>
      fetch(`${mcplex.url}/admin/keys`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
        body: JSON.stringify(body),
      });
    expect((await create(plain, { name: 'nope' })).status).toBe(403);
    const bad = await create(admin, { name: 'bad', models: ['no-such-model'] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/unknown model/);
    const created = (await (await create(admin, { name: 'made-by-admin', rpm: 5 })).json()) as {
      id: string;
      key: string;
      limits: { rpm: number };
    };
    expect(created.limits.rpm).toBe(5);
    expect((await chat(created.key)).status).toBe(200);
    const revoke = await fetch(`${mcplex.url}/admin/keys/${created.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(revoke.status).toBe(200);
    expect((await chat(created.key)).status).toBe(401);
    const list = (await (
      await fetch(`${mcplex.url}/admin/keys`, { headers: { authorization: `Bearer ${admin}` } })
    ).json()) as { data: { name: string; secretHash?: string }[] };
    expect(list.data.map((k) => k.name)).toContain('made-by-admin');
    expect(list.data.every((k) => k.secretHash === undefined)).toBe(true);
  });
});

describe('the response cache per key', () => {
  it('keeps one key’s cached answers from another key', async () => {
    const [first, second] = [await key({ name: 'cache-a' }), await key({ name: 'cache-b' })];
    const body = { temperature: 0, messages: [{ role: 'user', content: 'per-key cache' }] };
    const a1 = await chat(first, 'small', body);
    const a2 = await chat(first, 'small', body);
    const b1 = await chat(second, 'small', body);
    expect([a1, a2, b1].map((r) => r.headers.get('x-mcplex-cache'))).toEqual(['miss', 'hit', 'miss']);
  });
});

describe('limits and usage of MCP calls', () => {
  let limited: RunningServer;
  beforeAll(async () => {
    limited = await startMcplex({
      auth: { mode: 'keys' },
      mcpServers: {
        open: fixtureStdio('--name', 'open'),
        // A slow upstream protected from every caller together.
        guarded: { ...fixtureStdio('--name', 'guarded'), limits: { rpm: 4, maxConcurrent: 1 } },
      },
      llm: {
        models: { small: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } },
      },
    });
    await limited.gateway.whenSettled();
  });
  afterAll(() => limited?.close());

  const connect = async (apiKey: string, era: Era) => {
    const client = new Client({ name: 'mcp-limits-test', version: '1.0.0' }, clientOptions(era));
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${limited.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${apiKey}` } },
      }),
    );
    return client;
  };
  const outcome = (call: Promise<unknown>) =>
    call.then(
      () => 'ok',
      (error: { code?: number; data?: { limit?: string; by?: string; retryAfterMs?: number } }) =>
        `${error.code} ${error.data?.by} ${error.data?.limit} ${(error.data?.retryAfterMs ?? 0) > 0}`,
    );

  it.each<Era>(['legacy', 'modern'])(
    "a key's rpm counts its tool calls, resource reads and prompts as it counts /v1 requests (%s client)",
    async (era) => {
      const token = (await limited.policy.keys.create({ name: `mcp-rpm-${era}`, rpm: 3 })).token;
      const client = await connect(token, era);
      try {
        const results = [];
        results.push(await outcome(client.callTool({ name: 'open__echo', arguments: { message: 'a' } })));
        results.push(await outcome(client.readResource({ uri: 'mcplex://open/fixture://static/hello' })));
        results.push(await outcome(client.getPrompt({ name: 'open__greet', arguments: { name: 'x' } })));
        results.push(await outcome(client.callTool({ name: 'open__echo', arguments: { message: 'b' } })));
        expect(results).toEqual(['ok', 'ok', 'ok', '-32029 key requests true']);
        // Lists are served by mcplex itself and are not counted.
        expect((await client.listTools()).tools.length).toBeGreaterThan(0);
        // The same budget as /v1.
        const response = await fetch(`${limited.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'hi' }] }),
        });
        expect(response.status).toBe(429);
      } finally {
        await client.close();
      }
    },
  );

  it("a key's maxConcurrent holds a slot for each tool call in progress", async () => {
    const token = (await limited.policy.keys.create({ name: 'mcp-concurrent', maxConcurrent: 1 })).token;
    const client = await connect(token, 'modern');
    try {
      const slow = client.callTool({ name: 'open__slow', arguments: { ms: 400, steps: 1 } });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await outcome(client.callTool({ name: 'open__echo', arguments: { message: 'x' } }))).toBe(
        '-32029 key concurrency true',
      );
      expect(await outcome(slow)).toBe('ok');
      expect(await outcome(client.callTool({ name: 'open__echo', arguments: { message: 'y' } }))).toBe('ok');
    } finally {
      await client.close();
    }
  });

  it("a server's own limits hold for every caller together", async () => {
    const [a, b] = await Promise.all(
      ['server-limit-a', 'server-limit-b'].map(async (name) =>
        connect((await limited.policy.keys.create({ name })).token, 'legacy'),
      ),
    );
    try {
      // One call in progress at a time: the other key's call meanwhile is refused, the other server's is not.
      const slow = a!.callTool({ name: 'guarded__slow', arguments: { ms: 400, steps: 1 } });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await outcome(b!.callTool({ name: 'guarded__echo', arguments: { message: 'x' } }))).toBe(
        '-32029 server concurrency true',
      );
      expect(await outcome(b!.callTool({ name: 'open__echo', arguments: { message: 'x' } }))).toBe('ok');
      expect(await outcome(slow)).toBe('ok');
      // 4 per minute from both keys together: 2 taken above (the slow call, and the refused one's not at all).
      const results = [];
      for (const client of [a!, b!, a!, b!]) {
        results.push(await outcome(client.callTool({ name: 'guarded__echo', arguments: { message: 'x' } })));
      }
      expect(results).toEqual(['ok', 'ok', 'ok', '-32029 server requests true']);
    } finally {
      await Promise.all([a!.close(), b!.close()]);
    }
  });

  it('records each tool call in usage per key, server and tool, as mcp:<server>/<tool>', async () => {
    const { token, key: created } = await limited.policy.keys.create({ name: 'mcp-usage', rpm: 4 });
    const client = await connect(token, 'legacy');
    try {
      for (let i = 0; i < 3; i++) await client.callTool({ name: 'open__echo', arguments: { message: `${i}` } });
      // A tool's own error is a call made; a call refused by a limit is not.
      expect((await client.callTool({ name: 'open__fail', arguments: {} })).isError).toBe(true);
      expect(await outcome(client.callTool({ name: 'open__echo', arguments: { message: 'x' } }))).toBe(
        '-32029 key requests true',
      );
    } finally {
      await client.close();
    }
    await limited.policy.usage.flush();
    const totals = await limited.policy.usage.totals({ subject: created.id });
    expect(totals.map((t) => [t.model, t.requests, t.promptTokens + t.completionTokens])).toEqual([
      ['mcp:open/echo', 3, 0],
      ['mcp:open/fail', 1, 0],
    ]);
  });
});

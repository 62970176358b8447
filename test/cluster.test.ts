// The cluster a user deploys: three `mcplex serve` replicas on one PostgreSQL schema and one Redis prefix behind
// nginx in plain round robin (deploy/nginx.conf, started by `mcplex cluster up`'s own code). MCP clients in both
// eras use it as one server: sessions, questions during calls, list changes and resumed streams cross replicas, and
// a replica killed with SIGKILL costs a client nothing it has not seen.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { freePortRun, startCluster } from '../src/cli/cluster.js';
import type { RunningCluster } from '../src/cli/cluster.js';
import { testNamespace } from '../src/store/redis/redis-test-support.js';
import {
  clientOptions,
  everythingStdio,
  fixtureStdio,
  legacyInitialize,
  spawnMcplex,
  sseEvents,
  tempDir,
  waitFor,
  writeConfig,
} from './support/harness.js';
import type { Era } from './support/harness.js';

const POSTGRES = process.env.MCPLEX_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `mcplex_cluster_${randomBytes(4).toString('hex')}`;
const redis = testNamespace();
const dir = tempDir('mcplex-cluster-test-');
let cluster: RunningCluster;
let config: string;

beforeAll(async () => {
  config = writeConfig(dir.path, {
    store: `${POSTGRES}?schema=${schema}`,
    redis: { url: process.env.MCPLEX_TEST_REDIS ?? 'redis://127.0.0.1:6379/0', prefix: redis.fresh() },
    cluster: { heartbeatMs: 500 },
    server: { drainMs: 1000, requestState: { key: randomBytes(32).toString('hex') } },
    mcpServers: { everything: everythingStdio(), fixture: fixtureStdio() },
  });
  cluster = await startCluster({ replicas: 3, port: await freePortRun(4), config, dir: `${dir.path}/cluster` });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await redis.removeAll();
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
  dir.remove();
}, 60_000);

interface Served {
  method: string;
  kind: string;
  replica: string;
}

/** A fetch to nginx that writes down which replica served each request, and what it was. */
function recording(): { fetch: typeof fetch; served: Served[] } {
  const served: Served[] = [];
  return {
    served,
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      const body = typeof init?.body === 'string' ? init.body : '';
      const kind = /"method":"([^"]+)"/.exec(body)?.[1] ?? (body.includes('"result"') ? 'answer' : '');
      served.push({ method: init?.method ?? 'GET', kind, replica: response.headers.get('x-mcplex-replica') ?? '?' });
      return response;
    },
  };
}

async function connect(era: Era, capabilities: Record<string, unknown> = {}, url = cluster.url) {
  const { fetch: recorded, served } = recording();
  const client = new Client({ name: `cluster-${era}`, version: '1.0.0' }, { ...clientOptions(era), capabilities });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { fetch: recorded }));
  return { client, served };
}

describe('three replicas behind nginx', () => {
  it('spread a legacy client’s 30 calls over every replica, with the answers one replica gives', async () => {
    const { client, served } = await connect('legacy');
    const single = await connect('legacy', {}, cluster.replicas[0]!.url);
    try {
      const tools = await client.listTools();
      expect(tools).toEqual(await single.client.listTools());
      for (let i = 0; i < 30; i++) {
        const args = { name: 'everything__get-sum', arguments: { a: i, b: 2 } };
        expect(await client.callTool(args)).toEqual(await single.client.callTool(args));
      }
      const calls = served.filter((s) => s.kind === 'tools/call');
      expect(calls).toHaveLength(30);
      expect(new Set(calls.map((s) => s.replica))).toEqual(new Set(cluster.replicas.map((r) => r.name)));
    } finally {
      await Promise.all([client.close(), single.client.close()]);
    }
  });

  it.each<Era>(['legacy', 'modern'])(
    'complete everything’s elicitation and sampling when a %s client’s answer lands on another replica',
    async (era) => {
      const { client, served } = await connect(era, { elicitation: { form: {} }, sampling: {} });
      client.setRequestHandler('elicitation/create', async () => ({
        action: 'accept',
        content: { name: 'Ada Lovelace', check: true },
      }));
      client.setRequestHandler('sampling/createMessage', async () => ({
        role: 'assistant',
        content: { type: 'text', text: 'sampled on the client' },
        model: 'test-model',
      }));
      try {
        // Round robin sends the answer (legacy: a POST of the result; modern: the retry) elsewhere two times in
        // three: try until both tools have crossed replicas.
        const crossed = new Set<string>();
        for (let attempt = 0; attempt < 20 && crossed.size < 2; attempt++) {
          for (const [tool, args, expected] of [
            ['everything__trigger-elicitation-request', {}, 'Ada Lovelace'],
            ['everything__trigger-sampling-request', { prompt: 'hi', maxTokens: 10 }, 'sampled on the client'],
          ] as const) {
            const before = served.length;
            const result = await client.callTool({ name: tool, arguments: args });
            expect(JSON.stringify(result.content)).toContain(expected);
            const exchange = served.slice(before).filter((s) => s.method === 'POST');
            const first = exchange[0]!.replica;
            if (exchange.slice(1).some((s) => s.replica !== first)) crossed.add(tool);
          }
        }
        expect(crossed.size).toBe(2);
      } finally {
        await client.close();
      }
    },
  );

  it("tells a session's GET stream of a list change that another replica saw", async () => {
    const { client, served } = await connect('legacy');
    try {
      let changed = 0;
      client.setNotificationHandler('notifications/tools/list_changed', () => {
        changed++;
      });
      await waitFor(() => served.some((s) => s.method === 'GET' && s.replica !== '?'), 'the GET stream');
      const holder = served.find((s) => s.method === 'GET')!.replica;
      // Calls go round robin: add tools until one is added through a replica other than the stream's.
      for (let i = 0; i < 6; i++) {
        const before = served.length;
        await client.callTool({ name: 'fixture__add_tool', arguments: { name: `cluster_${Date.now()}_${i}` } });
        if (served.slice(before).some((s) => s.kind === 'tools/call' && s.replica !== holder)) break;
      }
      await waitFor(() => changed > 0, 'a list-changed notification');
    } finally {
      await client.close();
    }
  });

  it('lists the live replicas with their upstreams (mcplex cluster status)', async () => {
    const status = spawnMcplex(['cluster', 'status', '--json', '--config', config]);
    expect(await status.exited).toBe(0);
    const replicas = JSON.parse(status.stdout()) as {
      name: string;
      draining: boolean;
      upstreams: { state: string }[];
    }[];
    expect(replicas.map((r) => r.name)).toEqual(cluster.replicas.map((r) => r.name));
    for (const replica of replicas) {
      expect(replica.draining).toBe(false);
      expect(replica.upstreams.map((u) => u.state)).toEqual(['ready', 'ready']);
    }
  });

  it('ends a session everywhere when one replica gets its DELETE', async () => {
    const [one, two] = cluster.replicas;
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const init = await fetch(`${one!.url}/mcp`, { method: 'POST', headers, body: legacyInitialize('delete') });
    await init.text();
    const inSession = {
      ...headers,
      'mcp-session-id': init.headers.get('mcp-session-id')!,
      'mcp-protocol-version': '2025-11-25',
    };
    const ping = async (url: string) => {
      const response = await fetch(`${url}/mcp`, {
        method: 'POST',
        headers: inSession,
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
      });
      await response.text();
      return response.status;
    };
    expect(await ping(two!.url)).toBe(200);
    expect((await fetch(`${one!.url}/mcp`, { method: 'DELETE', headers: inSession })).status).toBe(200);
    expect(await ping(two!.url)).toBe(404);
    expect(await ping(cluster.url)).toBe(404);
  });

  // Last: it kills a replica (and starts it again).
  it('resumes a GET stream whose replica was killed on another one, missing nothing', async () => {
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const init = await fetch(`${cluster.url}/mcp`, { method: 'POST', headers, body: legacyInitialize('kill') });
    await init.text();
    const session = {
      ...headers,
      'mcp-session-id': init.headers.get('mcp-session-id')!,
      'mcp-protocol-version': '2025-11-25',
    };
    const get = await fetch(`${cluster.url}/mcp`, { headers: session });
    const holder = cluster.replicas.find((r) => r.name === get.headers.get('x-mcplex-replica'))!;
    const stream = sseEvents(get);
    expect((await stream.next())?.id).toBeDefined();
    const addTool = async () => {
      const response = await fetch(`${cluster.url}/mcp`, {
        method: 'POST',
        headers: session,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/call',
          params: { name: 'fixture__add_tool', arguments: { name: `kill_${Date.now()}_${Math.random()}` } },
        }),
      });
      await response.text();
    };
    await addTool();
    const seen = await stream.next();
    expect(seen?.data).toContain('list_changed');
    await addTool();
    const lost = await stream.next();
    expect(lost?.data).toContain('list_changed');
    // The replica holding the stream dies with the second event perhaps still on its way to the client.
    await holder.stop('SIGKILL');
    stream.stop();
    const resumed = await fetch(`${cluster.url}/mcp`, { headers: { ...session, 'last-event-id': seen!.id! } });
    expect(resumed.status).toBe(200);
    expect(resumed.headers.get('x-mcplex-replica')).not.toBe(holder.name);
    const replay = sseEvents(resumed);
    expect(await replay.next()).toEqual(lost);
    replay.stop();
    await holder.start();
  });
});

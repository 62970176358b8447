// Three real `mcplex serve` processes sharing one PostgreSQL schema and one Redis prefix, as replicas behind a load
// balancer would: a key's rate limit and requests in progress hold across them, a replica killed mid-request frees
// its slots within the lease time, a cached answer from one is a hit on another, and a key revoked through one is
// refused by the others at once (well before their key caches expire).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { testNamespace } from '../src/store/redis/redis-test-support.js';
import { listeningUrl, spawnMcplex, tempDir, waitFor, writeConfig } from './support/harness.js';
import type { SpawnedMcplex } from './support/harness.js';

const POSTGRES = process.env.MCPLEX_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `mcplex_replicas_${randomBytes(4).toString('hex')}`;
const redis = testNamespace();
const dir = tempDir();
/** The key cache's lifetime in each replica: longer than the test runs, so only a message can end it. */
const KEY_CACHE_MS = 600_000;

let fast: MockLlm;
let slow: MockLlm;
let capped: MockLlm;
let config: string;
let admin: string;
const replicas: SpawnedMcplex[] = [];
const urls: string[] = [];

beforeAll(async () => {
  fast = await startMockLlm({ name: 'replicas-fast' });
  slow = await startMockLlm({ name: 'replicas-slow', latencyMs: 1500 });
  capped = await startMockLlm({ name: 'replicas-capped', latencyMs: 300 });
  config = writeConfig(dir.path, {
    store: `${POSTGRES}?schema=${schema}`,
    redis: { url: process.env.MCPLEX_TEST_REDIS ?? 'redis://127.0.0.1:6379/0', prefix: redis.fresh() },
    auth: { mode: 'keys', keyCacheMs: KEY_CACHE_MS },
    server: { port: 0 },
    limits: { leaseTtlMs: 2000 },
    mcpServers: {},
    llm: {
      models: {
        fast: { deployments: [{ provider: 'openai', baseUrl: `${fast.url}/v1`, model: 'backend' }] },
        slow: { deployments: [{ provider: 'openai', baseUrl: `${slow.url}/v1`, model: 'backend' }] },
        capped: {
          deployments: [{ provider: 'openai', baseUrl: `${capped.url}/v1`, model: 'backend', maxConcurrent: 8 }],
        },
        budgeted: { deployments: [{ provider: 'openai', baseUrl: `${fast.url}/v1`, model: 'backend', rpm: 5 }] },
      },
      cache: { store: 'redis' },
    },
  });
  const created = spawnMcplex(['keys', 'create', '--name', 'admin', '--admin', '--config', config]);
  expect(await created.exited).toBe(0);
  admin = created.stdout().trim();
  // All three start at once on a schema that exists already (the command above made it); see the store's own
  // tests for replicas migrating a new one together.
  for (let i = 0; i < 3; i++) replicas.push(spawnMcplex(['serve', '--config', config]));
  urls.push(...(await Promise.all(replicas.map((r) => listeningUrl(r)))));
}, 60_000);

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await Promise.all([fast?.close(), slow?.close(), capped?.close()]);
  await redis.removeAll();
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
  dir.remove();
});

async function createKey(limits: Record<string, number>): Promise<{ id: string; token: string }> {
  const response = await fetch(`${urls[0]}/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: `k-${randomBytes(4).toString('hex')}`, ...limits }),
  });
  expect(response.status).toBe(201);
  const body = (await response.json()) as { id: string; key: string };
  return { id: body.id, token: body.key };
}

interface Answer {
  status: number;
  headers: Headers;
}

async function chat(url: string, token: string, model = 'fast', extra: Record<string, unknown> = {}): Promise<Answer> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], ...extra }),
  });
  await response.arrayBuffer();
  return { status: response.status, headers: response.headers };
}

describe('three replicas on one PostgreSQL and one Redis', () => {
  it('grant a key with rpm 10 exactly 10 of 30 requests spread over them, with the limit headers', async () => {
    const { token } = await createKey({ rpm: 10 });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => chat(urls[i % 3]!, token)));
    const accepted = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 429);
    expect(accepted).toHaveLength(10);
    expect(refused).toHaveLength(20);
    // One bucket decided each request atomically: every admitted one saw a different number left.
    const remaining = accepted
      .map((a) => Number(a.headers.get('x-ratelimit-remaining-requests')))
      .sort((x, y) => x - y);
    expect(remaining).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const answer of answers) expect(answer.headers.get('x-ratelimit-limit-requests')).toBe('10');
    for (const answer of refused) expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('hold maxConcurrent 4 across them: 12 requests at once, 4 run and 8 are refused', async () => {
    const { token } = await createKey({ maxConcurrent: 4 });
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => chat(urls[i % 3]!, token, 'slow')));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(4);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(8);
  });

  it("hold a deployment's maxConcurrent 8 across them: 48 clients at once, never more than 8 at the backend", async () => {
    const { token } = await createKey({});
    const answers = await Promise.all(Array.from({ length: 48 }, (_, i) => chat(urls[i % 3]!, token, 'capped')));
    expect(capped.peakInFlight).toBe(8);
    expect(answers.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(8);
    // The rest are told the model is busy, as when one process has every slot in use.
    expect(answers.every((a) => a.status === 200 || a.status === 503)).toBe(true);
  });

  it("hold a deployment's own rpm 5 across them: 15 requests spread over them, 5 reach the backend", async () => {
    const { token } = await createKey({});
    const before = fast.requests.length;
    const answers = await Promise.all(Array.from({ length: 15 }, (_, i) => chat(urls[i % 3]!, token, 'budgeted')));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(5);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(10);
    expect(fast.requests.length).toBe(before + 5);
  });

  it('free the slots of a replica killed mid-request once its leases expire', async () => {
    const { token } = await createKey({ maxConcurrent: 4 });
    const doomed = spawnMcplex(['serve', '--config', config]);
    const doomedUrl = await listeningUrl(doomed);
    const before = slow.requests.length;
    // These two never get an answer: their replica dies under them.
    const held = [chat(doomedUrl, token, 'slow'), chat(doomedUrl, token, 'slow')].map((p) => p.catch(() => undefined));
    await waitFor(() => slow.requests.length >= before + 2, 'the doomed replica to hold two slots');
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    await Promise.all(held);
    // Right after the kill its two leases still count: of four requests at once, two run.
    const first = await Promise.all([0, 1, 2, 3].map((i) => chat(urls[i % 3]!, token, 'slow')));
    expect(first.filter((a) => a.status === 200)).toHaveLength(2);
    // Within the lease time (2 s here) they expire: four at once all run again.
    const all = await waitFor(async () => {
      const probe = await Promise.all([0, 1, 2, 3].map((i) => chat(urls[i % 3]!, token, 'slow')));
      return probe.every((a) => a.status === 200) && probe;
    }, "the dead replica's slots to be free again");
    expect(all).toHaveLength(4);
  });

  it('let exactly one of 50 appends at the same expected_version win, spread over them, with gapless seq', async () => {
    const { token } = await createKey({});
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const created = await fetch(`${urls[0]}/v1/conversations`, { method: 'POST', headers, body: '{}' });
    expect(created.status).toBe(200);
    const { id } = (await created.json()) as { id: string };
    const append = (url: string, text: string, expected?: number) =>
      fetch(`${url}/v1/conversations/${id}/items`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          items: [{ role: 'user', content: text }],
          ...(expected === undefined ? {} : { expected_version: expected }),
        }),
      }).then(async (response) => ({ status: response.status, body: await response.text() }));
    const racing = await Promise.all(Array.from({ length: 50 }, (_, i) => append(urls[i % 3]!, `race ${i}`, 0)));
    expect(racing.filter((a) => a.status === 200)).toHaveLength(1);
    expect(racing.filter((a) => a.status === 409)).toHaveLength(49);
    // Without a version they all go in, one after another, whichever replica takes them.
    const all = await Promise.all(Array.from({ length: 30 }, (_, i) => append(urls[i % 3]!, `turn ${i}`)));
    expect(all.every((a) => a.status === 200)).toBe(true);
    const versions = all.map((a) => (JSON.parse(a.body) as { version: number }).version).sort((x, y) => x - y);
    expect(versions).toEqual(Array.from({ length: 30 }, (_, i) => i + 2));
    const listed = await fetch(`${urls[1]}/v1/conversations/${id}/items?order=asc&limit=100`, { headers });
    const page = (await listed.json()) as { data: { seq: number }[] };
    expect(page.data.map((item) => item.seq)).toEqual(Array.from({ length: 31 }, (_, i) => i + 1));
  });

  it('answer from the shared cache: a miss on one replica is a hit on the others', async () => {
    const { token } = await createKey({});
    const before = fast.requests.length;
    const extra = { temperature: 0, messages: [{ role: 'user', content: `cache ${randomBytes(4).toString('hex')}` }] };
    const miss = await chat(urls[0]!, token, 'fast', extra);
    expect(miss.headers.get('x-mcplex-cache')).toBe('miss');
    const hits = await Promise.all([chat(urls[1]!, token, 'fast', extra), chat(urls[2]!, token, 'fast', extra)]);
    for (const hit of hits) {
      expect(hit.status).toBe(200);
      expect(hit.headers.get('x-mcplex-cache')).toBe('hit');
    }
    expect(fast.requests.length).toBe(before + 1);
  });

  it('send 30 identical deterministic requests spread over them at once to the backend once', async () => {
    const { token } = await createKey({});
    const before = capped.requests.length;
    const extra = { temperature: 0, messages: [{ role: 'user', content: `once ${randomBytes(4).toString('hex')}` }] };
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => chat(urls[i % 3]!, token, 'capped', extra)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(capped.requests.length).toBe(before + 1);
    // Each replica other than the leader's answered from the entry the leader saved.
    expect(answers.filter((a) => a.headers.get('x-mcplex-cache') === 'hit').length).toBeGreaterThanOrEqual(20);
  });

  it('refuse a key revoked through one replica on the others at once, not when their key caches expire', async () => {
    const { id, token } = await createKey({});
    // Both others have the key in their caches.
    for (const url of [urls[1]!, urls[2]!]) expect((await chat(url, token)).status).toBe(200);
    const revoked = await fetch(`${urls[0]}/admin/keys/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(revoked.status).toBe(200);
    // Their cached copies would last for the whole run: only the revocation's message can make them refuse it.
    for (const url of [urls[1]!, urls[2]!]) {
      await waitFor(async () => (await chat(url, token)).status === 401, 'the revoked key to be refused');
    }
  });
});

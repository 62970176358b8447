// mcplex serving /v1 on a Redis of the test's own that is killed and started again under it: with onError "local"
// requests go on, each limited in this process alone, /readyz and /metrics say Redis is away, and once it is back
// the limits are shared again with no restart; with onError "refuse" a limited request gets a 503 in OpenAI's
// error shape while an unlimited one is still served. No request waits for Redis, also under load.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { freePort, startRedis, stopAllRedis, stopRedis } from '../src/store/redis/redis-test-support.js';
import { openRedisState, type RedisState } from '../src/store/redis/redis-state.js';
import { OPERATOR, startMcplex, waitFor } from './support/harness.js';

let mock: MockLlm;
beforeAll(async () => {
  mock = await startMockLlm({ name: 'fallback-mock' });
});
afterAll(async () => {
  stopAllRedis();
  await mock?.close();
});

async function start(
  onError: 'local' | 'refuse',
): Promise<{ mcplex: RunningServer; redis: ChildProcess; port: number }> {
  const port = await freePort();
  const redis = await startRedis(port);
  const mcplex = await startMcplex({
    redis: { url: `redis://127.0.0.1:${port}/0`, prefix: 'mcplex-fallback:', onError, localShare: 0.5 },
    auth: { mode: 'keys' },
    llm: { models: { m: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } } },
  });
  return { mcplex, redis, port };
}

async function chat(url: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function readiness(url: string): Promise<{ sharedState?: { state: string; lastError?: string } }> {
  return (await (await fetch(`${url}/readyz`, { headers: OPERATOR })).json()) as { sharedState?: { state: string } };
}

describe('Redis not there when mcplex starts', () => {
  it('starts degraded (limits counted here, /readyz says why), and shares limits and revocations once Redis comes', async () => {
    const port = await freePort();
    const prefix = 'mcplex-late:';
    const mcplex = await startMcplex({
      redis: { url: `redis://127.0.0.1:${port}/0`, prefix, onError: 'local', localShare: 0.5 },
      auth: { mode: 'keys', keyCacheMs: 60_000 },
      llm: { models: { m: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } } },
    });
    let redis: ChildProcess | undefined;
    let other: RedisState | undefined;
    try {
      const ready = await readiness(mcplex.url);
      expect(ready.sharedState?.state).toBe('unavailable');
      expect(ready.sharedState?.lastError).toContain(`127.0.0.1:${port}`);
      const { token, key } = await mcplex.policy.keys.create({ name: 'limited', rpm: 8 });
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await chat(mcplex.url, token)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 429]);

      redis = await startRedis(port);
      await waitFor(
        async () =>
          (await chat(mcplex.url, token)).status === 200 &&
          (await readiness(mcplex.url)).sharedState?.state === 'ready',
        'the limits to be shared once Redis is there',
      );
      // Another replica revokes the key: this one, whose key cache would trust it for a minute, hears of it.
      other = await openRedisState(`redis://127.0.0.1:${port}/0`, { prefix });
      await mcplex.policy.store.keys.revoke(key.id, Date.now());
      await waitFor(async () => {
        await other!.coordination.publish('keys:revoked', key.id);
        return (await chat(mcplex.url, token)).status === 401;
      }, 'the revocation to reach the replica that started without Redis');
    } finally {
      await other?.close();
      await mcplex.close();
      if (redis) await stopRedis(redis);
    }
  });
});

describe('Redis going away under a running mcplex', () => {
  it('with onError "local": limits counted here at the configured share, shown in /readyz and /metrics, shared again once Redis is back', async () => {
    const { mcplex, redis, port } = await start('local');
    try {
      const { token } = await mcplex.policy.keys.create({ name: 'limited', rpm: 8 });
      expect((await chat(mcplex.url, token)).status).toBe(200);
      expect((await readiness(mcplex.url)).sharedState?.state).toBe('ready');
      await stopRedis(redis);
      // Half of 8 per replica while Redis is away: 4 more here, then 429.
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await chat(mcplex.url, token)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
      const ready = await readiness(mcplex.url);
      expect(ready.sharedState?.state).toBe('unavailable');
      expect(ready.sharedState?.lastError).toContain(`127.0.0.1:${port}`);
      expect(await (await fetch(`${mcplex.url}/metrics`, { headers: OPERATOR })).text()).toMatch(
        /^mcplex_shared_state_up 0$/m,
      );
      // Back on the same port: the limits go back to Redis (whose bucket still has 7 of 8 left).
      const again = await startRedis(port);
      try {
        const back = await waitFor(async () => {
          const answer = await chat(mcplex.url, token);
          return (await readiness(mcplex.url)).sharedState?.state === 'ready' && answer;
        }, 'the limits to be shared again');
        expect(back.status).toBe(200);
        expect(await (await fetch(`${mcplex.url}/metrics`, { headers: OPERATOR })).text()).toMatch(
          /^mcplex_shared_state_up 1$/m,
        );
      } finally {
        await stopRedis(again);
      }
    } finally {
      await mcplex.close();
    }
  });

  it('answers every request of a load running while Redis is killed, none left hanging', async () => {
    const { mcplex, redis } = await start('local');
    try {
      const { token } = await mcplex.policy.keys.create({ name: 'busy', rpm: 1_000_000, maxConcurrent: 64 });
      const statuses: number[] = [];
      let stop = false;
      // 16 clients back to back; a request still unanswered after 5 s counts as hung (the fetch is aborted).
      const client = async () => {
        while (!stop) {
          const response = await fetch(`${mcplex.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
            signal: AbortSignal.timeout(5000),
          });
          await response.arrayBuffer();
          statuses.push(response.status);
        }
      };
      const clients = Array.from({ length: 16 }, client);
      await waitFor(() => statuses.length >= 200, 'the load to run');
      await stopRedis(redis);
      const atKill = statuses.length;
      await waitFor(() => statuses.length >= atKill + 200, 'the load to go on without Redis');
      stop = true;
      await Promise.all(clients);
      expect(statuses.every((status) => status === 200)).toBe(true);
    } finally {
      await mcplex.close();
    }
  });

  it('with onError "refuse": a limited request gets 503 in the OpenAI shape, an unlimited one is served', async () => {
    const { mcplex, redis } = await start('refuse');
    try {
      const limited = await mcplex.policy.keys.create({ name: 'limited', rpm: 100 });
      const free = await mcplex.policy.keys.create({ name: 'free' });
      await stopRedis(redis);
      const refused = await chat(mcplex.url, limited.token);
      expect(refused.status).toBe(503);
      expect(refused.body).toMatchObject({ error: { type: 'server_error' } });
      expect(String((refused.body.error as { message: string }).message)).toMatch(/shared state is unavailable/);
      expect((await chat(mcplex.url, free.token)).status).toBe(200);
    } finally {
      await mcplex.close();
    }
  });
});

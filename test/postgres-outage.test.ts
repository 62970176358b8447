// mcplex on PostgreSQL through a TCP relay that the test cuts and restores (the server itself stays up for the other
// tests): while PostgreSQL cannot be reached a request that needs it gets 503 in OpenAI's error shape and /readyz
// says why, requests whose key is cached are still served and their usage is kept until it can be written, and
// once PostgreSQL is reachable again everything works with no restart.
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { OPERATOR, startMcplex, waitFor } from './support/harness.js';

const POSTGRES = new URL(process.env.MCPLEX_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test');
const schema = `mcplex_outage_${randomBytes(4).toString('hex')}`;

/** A TCP relay to PostgreSQL that can be cut (listener closed, every connection destroyed) and restored. */
interface Relay {
  port: number;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

async function startRelay(): Promise<Relay> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(POSTGRES.port || 5432), POSTGRES.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
  const port = await listen(0);
  const cut = async () => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });
  };
  return { port, cut, restore: () => listen(port).then(() => undefined), close: cut };
}

let mock: MockLlm;
let relay: Relay;
let mcplex: RunningServer;

beforeAll(async () => {
  mock = await startMockLlm({ name: 'pg-outage-mock' });
  relay = await startRelay();
  const url = new URL(POSTGRES);
  url.port = String(relay.port);
  url.searchParams.set('schema', schema);
  mcplex = await startMcplex({
    store: url.toString(),
    auth: { mode: 'keys', keyCacheMs: 600_000 },
    llm: { models: { m: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } } },
  });
});

afterAll(async () => {
  await mcplex?.close();
  await relay?.close();
  await mock?.close();
  const client = new pg.Client({ connectionString: POSTGRES.toString() });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

async function chat(token: string): Promise<{ status: number; body: { error?: { type: string; message: string } } }> {
  const response = await fetch(`${mcplex.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
  });
  return { status: response.status, body: (await response.json()) as { error?: { type: string; message: string } } };
}

const storeState = async () =>
  (
    (await (await fetch(`${mcplex.url}/readyz`, { headers: OPERATOR })).json()) as {
      store?: { state: string; lastError?: string };
    }
  ).store;

describe('PostgreSQL going away under a running mcplex', () => {
  it('answers 503 where it is needed, keeps what was counted, and recovers without a restart', async () => {
    const used = await mcplex.policy.keys.create({ name: 'used' });
    const fresh = await mcplex.policy.keys.create({ name: 'fresh' });
    expect((await chat(used.token)).status).toBe(200);
    expect((await storeState())?.state).toBe('ready');

    await relay.cut();
    // A key this process never read needs the store: a clear 503, not a 500 and not a hang.
    const refused = await chat(fresh.token);
    expect(refused.status).toBe(503);
    expect(refused.body.error?.type).toBe('server_error');
    expect(refused.body.error?.message).toMatch(/PostgreSQL at .* is unavailable/);
    expect((await storeState())?.state).toBe('unavailable');
    // A cached key is still served; the usage of these three waits for the store.
    for (let i = 0; i < 3; i++) expect((await chat(used.token)).status).toBe(200);
    await expect(mcplex.policy.usage.flush()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });

    await relay.restore();
    await waitFor(async () => (await chat(fresh.token)).status === 200, 'the fresh key to work again');
    expect((await storeState())?.state).toBe('ready');
    const totals = await mcplex.policy.usage.totals({ subject: used.key.id });
    expect(totals.reduce((n, t) => n + t.requests, 0)).toBe(4);
  });
});

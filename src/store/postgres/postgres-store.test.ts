// The PostgreSQL store against the real server (127.0.0.1:5432, database `test`; MCPLEX_TEST_POSTGRES overrides):
// the shared Store contract, each store in a schema of its own that is dropped afterwards, then what only a shared
// server can show: replicas migrating at once, appends and rate limits decided across separate connection pools
// (as separate processes would hold), and connection failures that never show a password.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreError, type Store } from '../store.js';
import { describeStoreContract } from '../store-contract.js';
import { describeLeaseContract } from '../coordination-contract.js';
import { PG_MIGRATIONS } from './migrations.js';
import { openPostgresStore } from './postgres-store.js';
import { redactUrl } from '../redact-url.js';

const URL = process.env.MCPLEX_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const RUN = `mcplex_t${randomBytes(4).toString('hex')}`;
const schemas: string[] = [];

/** A schema name of its own for this run, dropped in afterAll. */
function freshSchema(): string {
  const schema = `${RUN}_${schemas.length}`;
  schemas.push(schema);
  return schema;
}

afterAll(async () => {
  const client = new pg.Client({ connectionString: URL });
  await client.connect();
  try {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
});

describeStoreContract('postgres', () => openPostgresStore(URL, { schema: freshSchema() }));
describeLeaseContract('postgres store leases', async (now) => {
  const store = await openPostgresStore(URL, { schema: freshSchema(), now });
  return { leases: store.leases, close: () => store.close() };
});

describe('PostgreSQL store', () => {
  it('migrates once when three replicas open a new schema at the same time', async () => {
    const schema = freshSchema();
    const stores = await Promise.all([1, 2, 3].map(() => openPostgresStore(URL, { schema })));
    try {
      const client = new pg.Client({ connectionString: URL });
      await client.connect();
      const { rows } = await client.query<{ version: number }>(
        `SELECT version FROM ${schema}.schema_version ORDER BY version`,
      );
      await client.end();
      expect(rows.map((r) => r.version)).toEqual(PG_MIGRATIONS.map((m) => m.version));
      // Every replica works on the same tables.
      await stores[0]!.keys.create(key('k1', 'first'));
      expect((await stores[2]!.keys.get('k1'))?.name).toBe('first');
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('refuses a schema written by a newer mcplex (MIGRATION_FAILED) and leaves it as it was', async () => {
    const schema = freshSchema();
    await (await openPostgresStore(URL, { schema })).close();
    const client = new pg.Client({ connectionString: URL });
    await client.connect();
    await client.query(`INSERT INTO ${schema}.schema_version VALUES (999, 'from the future', 0)`);
    await expect(openPostgresStore(URL, { schema })).rejects.toMatchObject({ code: 'MIGRATION_FAILED' });
    const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${schema}.schema_version`);
    await client.end();
    expect(rows[0].n).toBe(PG_MIGRATIONS.length + 1);
  });

  it('lets exactly one of 50 concurrent appends at the same version win, across separate pools, with gapless seq', async () => {
    const schema = freshSchema();
    const stores = await Promise.all([1, 2, 3].map(() => openPostgresStore(URL, { schema })));
    try {
      const conversation = await stores[0]!.conversations.create('owner', {});
      const outcomes = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          stores[i % 3]!.conversations.append(conversation.id, [{ role: 'user', content: `turn ${i}` }], 0),
        ),
      );
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      const lost = outcomes.filter((o) => o.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost.every((o) => (o.reason as StoreError).code === 'CONFLICT')).toBe(true);
      // Appends without a version check all go in, one after another.
      await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          stores[i % 3]!.conversations.append(conversation.id, [
            { role: 'user', content: `a ${i}` },
            { role: 'assistant', content: `b ${i}` },
          ]),
        ),
      );
      const items = await stores[1]!.conversations.items(conversation.id, { limit: 100, order: 'asc' });
      expect(items.map((item) => item.seq)).toEqual(Array.from({ length: 61 }, (_, i) => i + 1));
      expect((await stores[2]!.conversations.get(conversation.id))?.version).toBe(31);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('grants a bucket of 10 exactly 10 times among 30 concurrent takes from three pools', async () => {
    const schema = freshSchema();
    const stores = await Promise.all([1, 2, 3].map(() => openPostgresStore(URL, { schema })));
    try {
      const now = 1_700_000_000_000;
      const decisions = await Promise.all(
        Array.from({ length: 30 }, (_, i) => stores[i % 3]!.limits.take('k:rpm', 1, 10, 60_000, now)),
      );
      expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
      expect(decisions.filter((d) => !d.allowed).every((d) => d.retryAfterMs > 0)).toBe(true);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('grants 10 leases of a key with limit 10 among 30 concurrent acquires from three pools', async () => {
    const schema = freshSchema();
    const stores = await Promise.all([1, 2, 3].map(() => openPostgresStore(URL, { schema })));
    try {
      const got = await Promise.all(
        Array.from({ length: 30 }, (_, i) => stores[i % 3]!.leases.acquire('k', 10, 30_000)),
      );
      expect(got.filter(Boolean)).toHaveLength(10);
      expect(await stores[1]!.leases.count('k')).toBe(10);
      await got.find(Boolean)!.release();
      expect(await stores[2]!.leases.count('k')).toBe(9);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('fails to open with OPEN_FAILED, naming the server without its password', async () => {
    const secret = `pw${randomBytes(6).toString('hex')}`;
    const unreachable = `postgres://mcplex:${secret}@127.0.0.1:1/test`;
    const error = await openPostgresStore(unreachable, { connectTimeoutMs: 2000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('OPEN_FAILED');
    expect((error as StoreError).message).toContain('127.0.0.1:1');
    expect((error as StoreError).message).not.toContain(secret);
    expect(redactUrl(unreachable)).not.toContain(secret);
  });

  it('refuses a schema name that would need quoting', async () => {
    await expect(openPostgresStore(URL, { schema: 'x; DROP TABLE y' })).rejects.toMatchObject({ code: 'OPEN_FAILED' });
  });
});

function key(id: string, name: string) {
  return {
    id,
    name,
    secretHash: 'ab'.repeat(32),
    scopes: {},
    limits: {},
    createdAt: 1_700_000_000_000,
    expiresAt: null,
    revokedAt: null,
  };
}

export type { Store };

// openStore: the URL forms it accepts, the ones it refuses, and the drivers loaded only on demand.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from './open-store.js';
import { StoreError } from './store.js';
import { describeStoreContract } from './store-contract.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcplex-open-store-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describeStoreContract('sqlite::memory: through openStore', () => openStore('sqlite::memory:'));

describe('openStore', () => {
  it('memory: opens the in-process store', async () => {
    const store = await openStore('memory:');
    expect(store.kind).toBe('memory');
    await store.close();
  });

  it('sqlite:<path> opens (and creates) a SQLite file', async () => {
    const path = join(dir, 'open.db');
    const store = await openStore(`sqlite:${path}`);
    expect(store.kind).toBe('sqlite');
    await store.cache.set('k', { body: 'b', kind: 'json', createdAt: 1, expiresAt: 10 });
    await store.close();
    expect(existsSync(path)).toBe(true);
    const again = await openStore(`sqlite:${path}`);
    expect((await again.cache.get('k', 5))?.body).toBe('b');
    await again.close();
  });

  it('sqlite::memory: opens an in-memory SQLite database that forgets on close', async () => {
    const store = await openStore('sqlite::memory:');
    expect(store.kind).toBe('sqlite');
    await store.usage.record({ subject: 's', model: 'm', requests: 1, promptTokens: 1, completionTokens: 1, at: 1 });
    expect(await store.usage.totals()).toHaveLength(1);
    await store.close();
    const other = await openStore('sqlite::memory:');
    expect(await other.usage.totals()).toEqual([]);
    await other.close();
  });

  it.each([
    '',
    'memory',
    'mysql://localhost/mcplex',
    'postgres:/no-host',
    'sqlite:',
    'sqlite://data.db',
    'SQLITE:x.db',
    'redis:',
  ])('refuses %j with OPEN_FAILED listing the accepted forms', async (url) => {
    const error: unknown = await openStore(url).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('OPEN_FAILED');
    expect((error as StoreError).message).toContain('"memory:"');
    expect((error as StoreError).message).toContain('"sqlite:<path>"');
    expect((error as StoreError).message).toContain('"sqlite::memory:"');
  });

  it('reports a SQLite file that cannot be opened as OPEN_FAILED naming the path', async () => {
    const path = join(dir, 'missing', 'x.db');
    await expect(openStore(`sqlite:${path}`)).rejects.toMatchObject({
      code: 'OPEN_FAILED',
      message: expect.stringContaining(path),
    });
  });

  it('postgres:// opens PostgreSQL in the schema ?schema= names, and postgresql:// too', async () => {
    const schema = `mcplex_open_${process.pid}`;
    const base = process.env.MCPLEX_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
    for (const url of [`${base}?schema=${schema}`, `${base.replace(/^postgres:/, 'postgresql:')}?schema=${schema}`]) {
      const store = await openStore(url);
      try {
        expect(store.kind).toBe('postgres');
        await store.cache.set('k', { body: 'b', kind: 'json', createdAt: 1, expiresAt: 10 });
        expect((await store.cache.get('k', 5))?.body).toBe('b');
      } finally {
        await store.close();
      }
    }
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: base });
    await client.connect();
    try {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${schema}.cache`);
      expect(rows[0].n).toBe(1);
    } finally {
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  });

  it('loads the SQLite driver only when a sqlite: URL is opened', async () => {
    const script = join(dir, 'lazy.mts');
    const module = pathToFileURL(join(ROOT, 'src/store/open-store.ts')).href;
    writeFileSync(
      script,
      `import { createRequire } from 'node:module';
       import { openStore } from ${JSON.stringify(module)};
       const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes('better-sqlite3'));
       const pgLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((p) => /[\\/]node_modules[\\/]pg[\\/]/.test(p));
       const seen = [loaded()];
       await (await openStore('memory:')).close();
       seen.push(loaded());
       await (await openStore('sqlite::memory:')).close();
       seen.push(loaded(), pgLoaded());
       process.stdout.write(JSON.stringify(seen));`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], { cwd: ROOT });
    // Neither memory: nor sqlite: loads the PostgreSQL driver.
    expect(JSON.parse(stdout)).toEqual([false, false, true, false]);
  });
});

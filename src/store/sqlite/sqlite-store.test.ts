// The SQLite store: the shared Store contract on a temporary file, then what only a file can show: several
// connections and processes on one file, reopening, migrations, open failures, and no secret ever on disk.
import { Buffer } from 'node:buffer';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError, type ApiKeyRecord, type Store } from '../store.js';
import { describeStoreContract } from '../store-contract.js';
import { describeLeaseContract } from '../coordination-contract.js';
import { migrate } from './migrate.js';
import { MIGRATIONS } from './migrations.js';
import { openSqliteStore } from './sqlite-store.js';

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

let dir: string;
let counter = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcplex-sqlite-store-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A path for a database file of its own in the temporary directory. */
function freshPath(): string {
  counter += 1;
  return join(dir, `store-${counter}.db`);
}

describeStoreContract('sqlite', async () => openSqliteStore(freshPath()));
describeLeaseContract('sqlite store leases', async (now) => {
  const store = openSqliteStore(freshPath(), { now });
  return { leases: store.leases, close: () => store.close() };
});

function key(id: string, name: string, secretHash = 'cd'.repeat(32)): ApiKeyRecord {
  return {
    id,
    name,
    secretHash,
    scopes: { models: ['gpt-4o'], tools: ['files__*'] },
    limits: { rpm: 10 },
    createdAt: T0,
    expiresAt: null,
    revokedAt: null,
  };
}

async function caught(run: () => unknown): Promise<StoreError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    return error as StoreError;
  }
  throw new Error('expected a StoreError, but nothing was thrown');
}

describe('sqlite store: one file, several connections', () => {
  it('two stores on one file share a limit: interleaved takes never exceed it', async () => {
    const path = freshPath();
    const a = openSqliteStore(path);
    const b = openSqliteStore(path);
    const decisions = [];
    for (let i = 0; i < 30; i += 1) decisions.push(await (i % 2 === 0 ? a : b).limits.take('k', 1, 10, MINUTE, T0));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
    expect(decisions.slice(0, 10).map((d) => d.remaining)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    // A refund through one is seen by the other.
    await b.limits.refund('k', 2, 10, MINUTE, T0);
    expect((await a.limits.take('k', 1, 10, MINUTE, T0)).remaining).toBe(1);
    expect((await b.limits.take('k', 1, 10, MINUTE, T0)).remaining).toBe(0);
    expect((await a.limits.take('k', 1, 10, MINUTE, T0)).allowed).toBe(false);
    // The other sub-stores are shared too.
    await a.keys.create(key('k1', 'alpha'));
    await expect(b.keys.create(key('k2', 'alpha'))).rejects.toMatchObject({ code: 'DUPLICATE' });
    await b.usage.record({ subject: 'k1', model: 'm', requests: 1, promptTokens: 2, completionTokens: 3, at: T0 });
    expect(await a.usage.totals()).toHaveLength(1);
    await a.close();
    await b.close();
  });

  it('processes taking from one bucket at the same moment are allowed exactly the limit between them', async () => {
    const path = freshPath();
    // Create and migrate the file first, so that the processes race on takes and not on the schema.
    await openSqliteStore(path).close();
    const script = join(dir, 'take-many.mts');
    const storeModule = pathToFileURL(join(ROOT, 'src/store/sqlite/sqlite-store.ts')).href;
    // Each process opens the store, says "ready", and starts taking only when told "go", so that they all run at once.
    writeFileSync(
      script,
      `import { once } from 'node:events';
       import { openSqliteStore } from ${JSON.stringify(storeModule)};
       const [path, attempts] = process.argv.slice(2);
       const store = openSqliteStore(path);
       process.stdout.write('ready\\n');
       await once(process.stdin, 'data');
       let allowed = 0;
       for (let i = 0; i < Number(attempts); i += 1) {
         if ((await store.limits.take('shared', 1, 600, ${MINUTE}, ${T0})).allowed) allowed += 1;
       }
       await store.close();
       process.stdout.write(String(allowed) + '\\n');
       process.exit(0);`,
    );
    const children = [1, 2, 3, 4].map(() =>
      spawn(process.execPath, ['--import', 'tsx', script, path, '300'], {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
    const outputs = children.map(watch);
    await Promise.all(outputs.map((o) => o.ready));
    for (const child of children) child.stdin.end('go\n');
    const results = await Promise.all(outputs.map((o) => o.done));
    const allowed = results.map((text) => Number(text.split('\n')[1]));
    expect(allowed.every((n) => Number.isInteger(n))).toBe(true);
    expect(allowed.reduce((sum, n) => sum + n, 0)).toBe(600);
    const store = openSqliteStore(path);
    expect((await store.limits.take('shared', 1, 600, MINUTE, T0)).allowed).toBe(false);
    await store.close();
  });

  it('two stores on one file append to one conversation: dense seqs, one version per append, one winner', async () => {
    const path = freshPath();
    const a = openSqliteStore(path);
    const b = openSqliteStore(path);
    const { id } = await a.conversations.create('o', {});
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 === 0 ? a : b).conversations.append(id, [{ role: 'user', content: `m${i}` }]),
      ),
    );
    expect(results.map((r) => r.version).sort((x, y) => x - y)).toEqual(seqs(50));
    const items = await b.conversations.items(id, { limit: 100, order: 'asc' });
    expect(items.map((item) => item.seq)).toEqual(seqs(50));
    expect(new Set(items.map((item) => item.message.content)).size).toBe(50);
    expect((await a.conversations.get(id))?.version).toBe(50);

    const settled = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? a : b).conversations.append(id, [{ role: 'user', content: `race ${i}` }], 50),
      ),
    );
    expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
    const lost = settled.filter((s) => s.status === 'rejected');
    expect(lost).toHaveLength(19);
    for (const s of lost) expect(s.reason).toMatchObject({ code: 'CONFLICT' });
    expect((await b.conversations.get(id))?.version).toBe(51);
    expect(await a.conversations.items(id, { limit: 100, order: 'desc' })).toHaveLength(51);
    // A delete through one is seen by the other, items included.
    expect(await b.conversations.delete(id)).toBe(true);
    await expect(a.conversations.append(id, [{ role: 'user', content: 'late' }])).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    expect(await a.conversations.items(id, { limit: 100, order: 'asc' })).toEqual([]);
    await a.close();
    await b.close();
  });

  it('processes appending to one conversation at once: no lost, duplicated or interleaved items', async () => {
    const path = freshPath();
    const setup = openSqliteStore(path);
    const { id } = await setup.conversations.create('o', {});
    await setup.close();
    const script = join(dir, 'append-many.mts');
    const storeModule = pathToFileURL(join(ROOT, 'src/store/sqlite/sqlite-store.ts')).href;
    // Each round a process appends one message blindly, then commits a pair optimistically (read the version, wait,
    // append expecting it, start again on CONFLICT), so the processes keep invalidating each other's reads.
    writeFileSync(
      script,
      `import { once } from 'node:events';
       import { openSqliteStore } from ${JSON.stringify(storeModule)};
       const [path, id, name, rounds] = process.argv.slice(2);
       const store = openSqliteStore(path);
       process.stdout.write('ready\\n');
       await once(process.stdin, 'data');
       let conflicts = 0;
       for (let i = 0; i < Number(rounds); i += 1) {
         await store.conversations.append(id, [{ role: 'user', content: name + ' blind ' + i }]);
         for (let tries = 0; ; tries += 1) {
           if (tries === 1000) throw new Error('no commit after 1000 tries');
           const { version } = await store.conversations.get(id);
           // Think for a moment, as a chat turn would, so that others get to write in between.
           await new Promise((resolve) => setTimeout(resolve, 1));
           try {
             await store.conversations.append(
               id,
               [{ role: 'user', content: name + ' ask ' + i }, { role: 'assistant', content: name + ' answer ' + i }],
               version,
             );
             break;
           } catch (error) {
             if (error.code !== 'CONFLICT') throw error;
             conflicts += 1;
           }
         }
       }
       await store.close();
       process.stdout.write(String(conflicts) + '\\n');
       process.exit(0);`,
    );
    const names = ['p1', 'p2', 'p3', 'p4'];
    const rounds = 25;
    const children = names.map((name) =>
      spawn(process.execPath, ['--import', 'tsx', script, path, id, name, String(rounds)], {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
    const outputs = children.map(watch);
    await Promise.all(outputs.map((o) => o.ready));
    for (const child of children) child.stdin.end('go\n');
    // Each prints how many of its commits lost a race (usually dozens, never asserted: timing decides).
    const conflicts = (await Promise.all(outputs.map((o) => o.done))).map((text) => Number(text.split('\n')[1]));
    expect(conflicts.every((n) => Number.isInteger(n))).toBe(true);

    const store = openSqliteStore(path);
    const total = names.length * rounds * 3;
    expect((await store.conversations.get(id))?.version).toBe(names.length * rounds * 2);
    const items = await store.conversations.items(id, { limit: total + 10, order: 'asc' });
    expect(items.map((item) => item.seq)).toEqual(seqs(total));
    const contents = items.map((item) => String(item.message.content));
    expect(new Set(contents).size).toBe(total);
    for (const name of names) {
      // Each process's messages appear in the order it sent them, and each pair is adjacent.
      const mine = contents.filter((c) => c.startsWith(`${name} `));
      const expected = Array.from({ length: rounds }, (_, i) => [
        `${name} blind ${i}`,
        `${name} ask ${i}`,
        `${name} answer ${i}`,
      ]).flat();
      expect(mine).toEqual(expected);
      for (let i = 0; i < rounds; i += 1) {
        expect(contents.indexOf(`${name} answer ${i}`)).toBe(contents.indexOf(`${name} ask ${i}`) + 1);
      }
    }
    await store.close();
  });

  it('reopening a file keeps keys, usage, cache and limit state', async () => {
    const path = freshPath();
    const first = openSqliteStore(path);
    await first.keys.create(key('k1', 'alpha'));
    await first.keys.revoke('k1', T0 + 1);
    await first.usage.record({ subject: 'k1', model: 'm', requests: 2, promptTokens: 20, completionTokens: 5, at: T0 });
    await first.cache.set('c', { body: '{}', kind: 'json', createdAt: T0, expiresAt: T0 + MINUTE });
    for (let i = 0; i < 10; i += 1) await first.limits.take('k1', 1, 10, MINUTE, T0);
    await first.close();

    const second = openSqliteStore(path);
    expect(await second.keys.get('k1')).toEqual({ ...key('k1', 'alpha'), revokedAt: T0 + 1 });
    expect(await second.usage.totals()).toEqual([
      { subject: 'k1', model: 'm', requests: 2, promptTokens: 20, completionTokens: 5 },
    ]);
    expect(await second.cache.get('c', T0)).toEqual({
      body: '{}',
      kind: 'json',
      createdAt: T0,
      expiresAt: T0 + MINUTE,
    });
    expect((await second.limits.take('k1', 1, 10, MINUTE, T0)).allowed).toBe(false);
    await second.close();
  });
});

function seqs(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** Resolves `ready` when the child has printed its first line, `done` with all its output when it exits with 0. */
function watch(child: ChildProcess): {
  ready: Promise<void>;
  done: Promise<string>;
} {
  let text = '';
  child.stdout?.setEncoding('utf8');
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: string) => {
      text += chunk;
      if (text.startsWith('ready\n')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready`)));
  });
  const done = new Promise<string>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`worker exited with ${code}`))));
  });
  return { ready, done };
}

describe('sqlite store: schema', () => {
  it('reads whole hours of a series in hour buckets from the rollup, and only the partial hours from raw rows', async () => {
    const HOUR = 3_600_000;
    const base = Math.floor(T0 / HOUR) * HOUR;
    const path = freshPath();
    const store = openSqliteStore(path);
    try {
      const at = [base + 10, base + HOUR + 10, base + 2 * HOUR + 10];
      await store.usage.recordMany(
        at.map((t) => ({ subject: 'k', model: 'm', requests: 1, promptTokens: 0, completionTokens: 0, at: t })),
      );
      // Raw rows gone, rollup kept: what a series still counts came from the rollup.
      const other = new Database(path);
      other.prepare('DELETE FROM usage').run();
      other.close();
      const counts = async (bucketMs: number) =>
        (await store.usage.series({ since: base + 5, until: base + 3 * HOUR, bucketMs })).map((b) => b.requests);
      // [base + 5, base + HOUR) is a partial hour, read from the (now empty) raw rows; the two whole hours are not.
      expect(await counts(HOUR)).toEqual([1, 1]);
      expect(await counts(15 * 60_000)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('fills the hourly usage rollup from the rows a database already had, so totals stay the same', async () => {
    const path = freshPath();
    const old = new Database(path);
    migrate(old, MIGRATIONS.slice(0, 2), path);
    const insert = old.prepare(
      'INSERT INTO usage (subject, model, at, requests, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?)',
    );
    for (let i = 0; i < 300; i++) insert.run(i % 3 ? 'k1' : 'k2', 'm', T0 + i * 60_000, 1, i, 2 * i);
    old.close();
    const store = openSqliteStore(path);
    try {
      const sum = (from: number, to: number, pick: (i: number) => boolean) => {
        let requests = 0;
        let prompt = 0;
        for (let i = from; i < to; i++) if (pick(i)) [requests, prompt] = [requests + 1, prompt + i];
        return { requests, prompt };
      };
      const k1 = sum(0, 300, (i) => i % 3 !== 0);
      expect(await store.usage.totals({ subject: 'k1' })).toEqual([
        { subject: 'k1', model: 'm', requests: k1.requests, promptTokens: k1.prompt, completionTokens: 2 * k1.prompt },
      ]);
      const since = T0 + 61 * 60_000 + 5;
      const until = T0 + 250 * 60_000;
      const k2 = sum(62, 250, (i) => i % 3 === 0);
      expect(await store.usage.totals({ subject: 'k2', since, until })).toEqual([
        { subject: 'k2', model: 'm', requests: k2.requests, promptTokens: k2.prompt, completionTokens: 2 * k2.prompt },
      ]);
    } finally {
      await store.close();
    }
  });

  it('runs each migration once and records it; the file is in WAL mode', async () => {
    const path = freshPath();
    await openSqliteStore(path).close();
    const raw = new Database(path, { readonly: true });
    const rows = raw.prepare('SELECT version, description, applied_at FROM schema_version ORDER BY version').all();
    expect(rows).toEqual(
      MIGRATIONS.map((m) => ({ version: m.version, description: m.description, applied_at: expect.any(Number) })),
    );
    const tables = raw
      .prepare<[], { name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
      .all()
      .map((t) => t.name);
    expect(tables).toEqual([
      'api_keys',
      'cache',
      'conversation_items',
      'conversations',
      'leases',
      'limits',
      'request_log',
      'schema_version',
      'upstream_credentials',
      'usage',
      'usage_hourly',
    ]);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();

    await openSqliteStore(path).close();
    await openSqliteStore(path).close();
    const again = new Database(path, { readonly: true });
    expect(again.prepare('SELECT version, description, applied_at FROM schema_version ORDER BY version').all()).toEqual(
      rows,
    );
    again.close();
  });

  it('refuses a database written by a newer mcplex (MIGRATION_FAILED, naming the path)', async () => {
    const path = freshPath();
    await openSqliteStore(path).close();
    const raw = new Database(path);
    raw.prepare('INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)').run(99, 'x', T0);
    raw.close();
    const error = await caught(() => openSqliteStore(path));
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.message).toContain(path);
    expect(error.message).toContain('99');
  });

  it('a failing migration is rolled back whole and reported as MIGRATION_FAILED', async () => {
    const path = freshPath();
    const raw = new Database(path);
    const broken = [
      ...MIGRATIONS,
      { version: 1000, description: 'broken', sql: 'CREATE TABLE extra (x); SELECT * FROM no_such_table;' },
    ];
    const error = await caught(() => migrate(raw, broken, path));
    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.message).toContain('migration 1000');
    expect(error.message).toContain(path);
    const names = raw
      .prepare<[], { name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table'")
      .all()
      .map((t) => t.name);
    expect(names).not.toContain('extra');
    expect(names).toContain('api_keys');
    expect(raw.prepare('SELECT max(version) AS v FROM schema_version').get()).toEqual({
      v: MIGRATIONS.at(-1)?.version,
    });
    raw.close();
  });

  it('refuses migrations that are not in increasing order', async () => {
    const raw = new Database(':memory:');
    const error = await caught(() =>
      migrate(
        raw,
        [
          { version: 2, description: 'b', sql: '' },
          { version: 1, description: 'a', sql: '' },
        ],
        ':memory:',
      ),
    );
    expect(error.code).toBe('MIGRATION_FAILED');
    raw.close();
  });
});

describe('sqlite store: open failures', () => {
  it('a directory that does not exist → OPEN_FAILED naming the path', async () => {
    const path = join(dir, 'no-such-dir', 'store.db');
    const error = await caught(() => openSqliteStore(path));
    expect(error.code).toBe('OPEN_FAILED');
    expect(error.message).toContain(path);
  });

  it('a file that is not a database → OPEN_FAILED naming the path, and the file is left alone', async () => {
    const path = join(dir, 'not-a-database.db');
    const content = 'this is a text file, not SQLite\n'.repeat(200);
    writeFileSync(path, content);
    const error = await caught(() => openSqliteStore(path));
    expect(error.code).toBe('OPEN_FAILED');
    expect(error.message).toContain(path);
    expect(error.cause).toBeDefined();
    expect(readFileSync(path, 'utf8')).toBe(content);
  });

  it('a path that is a directory → OPEN_FAILED naming the path', async () => {
    const path = join(dir, 'a-directory');
    mkdirSync(path);
    const error = await caught(() => openSqliteStore(path));
    expect(error.code).toBe('OPEN_FAILED');
    expect(error.message).toContain(path);
  });

  it('an empty path → OPEN_FAILED', async () => {
    expect((await caught(() => openSqliteStore(''))).code).toBe('OPEN_FAILED');
  });
});

describe('sqlite store: secrets', () => {
  it('never writes a key secret to disk, only its SHA-256', async () => {
    const path = freshPath();
    const store: Store = openSqliteStore(path);
    const secrets: string[] = [];
    const hashes: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const id = `id${i}${randomBytes(4).toString('hex')}`;
      const secret = randomBytes(24).toString('base64url');
      const hash = createHash('sha256').update(secret).digest('hex');
      secrets.push(secret, `mcx_${id}_${secret}`);
      hashes.push(hash);
      await store.keys.create({ ...key(id, `key ${i}`, hash), limits: { rpm: 60, tpm: 1000 } });
      await store.usage.record({ subject: id, model: 'm', requests: 1, promptTokens: 1, completionTokens: 1, at: T0 });
      await store.limits.take(`rpm:${id}`, 1, 60, MINUTE, T0);
    }
    await store.close();

    const prefix = basename(path);
    const files = readdirSync(dir).filter((name) => name.startsWith(prefix));
    expect(files).toContain(prefix);
    const bytes = Buffer.concat(files.map((name) => readFileSync(join(dir, name))));
    // The hashes are there (so these are the right bytes); the secrets, in any form a key takes, are not.
    for (const hash of hashes) expect(bytes.includes(hash)).toBe(true);
    for (const secret of secrets) {
      expect(bytes.includes(secret)).toBe(false);
      expect(bytes.includes(Buffer.from(secret, 'utf16le'))).toBe(false);
    }
  });
});

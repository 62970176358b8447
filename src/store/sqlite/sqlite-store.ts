// A Store in one SQLite file through better-sqlite3: the default, shared safely by several mcplex processes on one
// machine (WAL journal, a busy timeout, and IMMEDIATE transactions wherever a value is read and then written).

import Database from 'better-sqlite3';
import { gcraIsLive, gcraRefund, gcraTake, type GcraState } from '../gcra.js';
import {
  StoreError,
  type ApiKeyRecord,
  type CacheEntry,
  type CacheStore,
  type KeyStore,
  type LimitStore,
  type Store,
  type UsageFilter,
  type UsageStore,
  type UsageTotal,
} from '../store.js';
import { sortUsageTotals } from '../usage-order.js';
import { migrate } from './migrate.js';
import { MIGRATIONS } from './migrations.js';

export interface SqliteStoreOptions {
  /** How long a write waits for another connection's write lock before failing. Default 5000 ms. */
  busyTimeoutMs?: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating if needed) the database at `path`, or an in-memory one for `:memory:`, and migrates it.
 * Throws StoreError OPEN_FAILED when the file cannot be opened or is not a database, MIGRATION_FAILED when its
 * schema cannot be brought up to date (including a database written by a newer mcplex).
 */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Store {
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new RangeError(`busyTimeoutMs must be a whole number of milliseconds ≥ 0, got ${busyTimeoutMs}`);
  }
  if (path === '') throw new StoreError('OPEN_FAILED', 'the SQLite database path is empty');
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    // The first statements that read the file: a file that is not a database fails here.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
  } catch (error) {
    db?.close();
    throw new StoreError('OPEN_FAILED', `cannot open the SQLite database at ${path}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  try {
    migrate(db, MIGRATIONS, path);
    return createSqliteStore(db);
  } catch (error) {
    db.close();
    if (error instanceof StoreError) throw error;
    throw new StoreError('OPEN_FAILED', `cannot use the SQLite database at ${path}: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

function createSqliteStore(db: Database.Database): Store {
  const keys = createKeyStore(db);
  const usage = createUsageStore(db);
  const cache = createCacheStore(db);
  const limits = createLimitStore(db);
  return {
    kind: 'sqlite',
    keys,
    usage,
    cache,
    limits,
    async close() {
      if (db.open) db.close();
    },
  };
}

interface KeyRow {
  id: string;
  name: string;
  secret_hash: string;
  scopes: string;
  limits: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

const KEY_COLUMNS = 'id, name, secret_hash, scopes, limits, created_at, expires_at, revoked_at';

function createKeyStore(db: Database.Database): KeyStore {
  const insert = db.prepare<KeyRow>(
    `INSERT INTO api_keys (${KEY_COLUMNS})
     VALUES (@id, @name, @secret_hash, @scopes, @limits, @created_at, @expires_at, @revoked_at)`,
  );
  const selectOne = db.prepare<[string], KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE id = ?`);
  const selectAll = db.prepare<[], KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY created_at, rowid`);
  const markRevoked = db.prepare<[number, string]>(
    'UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL',
  );
  return {
    async create(record) {
      try {
        insert.run({
          id: record.id,
          name: record.name,
          secret_hash: record.secretHash,
          scopes: JSON.stringify(record.scopes),
          limits: JSON.stringify(record.limits),
          created_at: record.createdAt,
          expires_at: record.expiresAt,
          revoked_at: record.revokedAt,
        });
      } catch (error) {
        const code = error instanceof Database.SqliteError ? error.code : undefined;
        if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new StoreError('DUPLICATE', `an API key with id "${record.id}" already exists`, { cause: error });
        }
        if (code === 'SQLITE_CONSTRAINT_UNIQUE') {
          throw new StoreError('DUPLICATE', `an API key named "${record.name}" already exists`, { cause: error });
        }
        throw error;
      }
    },
    async get(id) {
      const row = selectOne.get(id);
      return row && toKey(row);
    },
    async list() {
      return selectAll.all().map(toKey);
    },
    async revoke(id, at) {
      return markRevoked.run(at, id).changes > 0;
    },
  };
}

function toKey(row: KeyRow): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    secretHash: row.secret_hash,
    scopes: JSON.parse(row.scopes) as ApiKeyRecord['scopes'],
    limits: JSON.parse(row.limits) as ApiKeyRecord['limits'],
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  };
}

interface TotalRow {
  subject: string;
  model: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
}

type FilterParams = Partial<Record<keyof UsageFilter, string | number>>;

function createUsageStore(db: Database.Database): UsageStore {
  const insert = db.prepare<[string, string, number, number, number, number]>(
    `INSERT INTO usage (subject, model, at, requests, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?)`,
  );
  // One statement per combination of filters present (at most 16), each prepared on first use and kept, so every
  // query has a plain WHERE clause the planner can match to an index.
  const totalsBy = new Map<string, Database.Statement<[FilterParams], TotalRow>>();
  function totalsStatement(filter: UsageFilter): Database.Statement<[FilterParams], TotalRow> {
    const conditions: string[] = [];
    if (filter.subject !== undefined) conditions.push('subject = @subject');
    if (filter.model !== undefined) conditions.push('model = @model');
    if (filter.since !== undefined) conditions.push('at >= @since');
    if (filter.until !== undefined) conditions.push('at < @until');
    const where = conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
    let statement = totalsBy.get(where);
    if (statement === undefined) {
      statement = db.prepare<[FilterParams], TotalRow>(
        `SELECT subject, model, sum(requests) AS requests, sum(prompt_tokens) AS prompt_tokens,
                sum(completion_tokens) AS completion_tokens
         FROM usage ${where} GROUP BY subject, model`,
      );
      totalsBy.set(where, statement);
    }
    return statement;
  }
  return {
    async record(entry) {
      insert.run(entry.subject, entry.model, entry.at, entry.requests, entry.promptTokens, entry.completionTokens);
    },
    async totals(filter: UsageFilter = {}) {
      const params: FilterParams = {};
      if (filter.subject !== undefined) params.subject = filter.subject;
      if (filter.model !== undefined) params.model = filter.model;
      if (filter.since !== undefined) params.since = filter.since;
      if (filter.until !== undefined) params.until = filter.until;
      const rows = totalsStatement(filter).all(params);
      return sortUsageTotals(
        rows.map((row): UsageTotal => ({
          subject: row.subject,
          model: row.model,
          requests: row.requests,
          promptTokens: row.prompt_tokens,
          completionTokens: row.completion_tokens,
        })),
      );
    },
  };
}

interface CacheRow {
  body: string;
  kind: CacheEntry['kind'];
  created_at: number;
  expires_at: number;
}

function createCacheStore(db: Database.Database): CacheStore {
  const selectLive = db.prepare<[string, number], CacheRow>(
    'SELECT body, kind, created_at, expires_at FROM cache WHERE key = ? AND expires_at > ?',
  );
  const upsert = db.prepare<[string, string, string, number, number]>(
    `INSERT INTO cache (key, body, kind, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET body = excluded.body, kind = excluded.kind,
       created_at = excluded.created_at, expires_at = excluded.expires_at`,
  );
  const remove = db.prepare<[string]>('DELETE FROM cache WHERE key = ?');
  const removeExpired = db.prepare<[number]>('DELETE FROM cache WHERE expires_at <= ?');
  return {
    async get(key, now) {
      const row = selectLive.get(key, now);
      return row && { body: row.body, kind: row.kind, createdAt: row.created_at, expiresAt: row.expires_at };
    },
    async set(key, entry) {
      upsert.run(key, entry.body, entry.kind, entry.createdAt, entry.expiresAt);
    },
    async delete(key) {
      remove.run(key);
    },
    async prune(now) {
      return removeExpired.run(now).changes;
    },
  };
}

function createLimitStore(db: Database.Database): LimitStore {
  const select = db.prepare<[string], GcraState>('SELECT units, at FROM limits WHERE key = ?');
  const upsert = db.prepare<[string, number, number]>(
    'INSERT INTO limits (key, units, at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET units = excluded.units, at = excluded.at',
  );
  const remove = db.prepare<[string]>('DELETE FROM limits WHERE key = ?');
  function write(key: string, state: GcraState | undefined, limit: number, periodMs: number, now: number): void {
    // No row means a full bucket, so a bucket that is full again is deleted rather than kept.
    if (state === undefined || !gcraIsLive(state, limit, periodMs, now)) remove.run(key);
    else upsert.run(key, state.units, state.at);
  }
  // IMMEDIATE takes the write lock before the read, so another connection (or process) cannot read the same state in
  // between; a deferred transaction would fail with SQLITE_BUSY on the upgrade instead of waiting its turn.
  const take = db.transaction((key: string, cost: number, limit: number, periodMs: number, now: number) => {
    const result = gcraTake(select.get(key), cost, limit, periodMs, now);
    if (result.next !== undefined) write(key, result.next, limit, periodMs, now);
    return result.decision;
  });
  const refund = db.transaction((key: string, amount: number, limit: number, periodMs: number, now: number) => {
    write(key, gcraRefund(select.get(key), amount, limit, periodMs, now), limit, periodMs, now);
  });
  return {
    async take(key, cost, limit, periodMs, now) {
      return take.immediate(key, cost, limit, periodMs, now);
    },
    async refund(key, amount, limit, periodMs, now) {
      refund.immediate(key, amount, limit, periodMs, now);
    },
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

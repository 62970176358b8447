// A Store in one SQLite file through better-sqlite3: the default, shared safely by several mcplex processes on one
// machine (WAL journal, a busy timeout, and IMMEDIATE transactions wherever a value is read and then written).

import Database from 'better-sqlite3';
import {
  checkConversationPage,
  checkExpectedVersion,
  checkItemPage,
  newConversationId,
  newItemId,
  prepareMessages,
} from '../conversation-rules.js';
import { checkKeep, checkRequestPage } from '../request-log-rules.js';
import { checkCredentialKey, checkCredentialRecord } from '../credential-rules.js';
import { checkGcraBatch, gcraBatchKeys, gcraTakeAll, limitStoreOf, type GcraState } from '../gcra.js';
import {
  StoreError,
  type CacheStore,
  type ConversationItem,
  type ConversationRecord,
  type ConversationRole,
  type ConversationStore,
  type CredentialKey,
  type CredentialStore,
  type KeyStore,
  type LimitBatch,
  type LimitStore,
  type RequestLogEntry,
  type RequestLogStore,
  type Store,
  type UsageEntry,
  type UsageFilter,
  type UsageStore,
} from '../store.js';
import {
  CONVERSATION_COLUMNS,
  CREDENTIAL_COLUMNS,
  credentialValues,
  toCredential,
  type CredentialRow,
  ITEM_COLUMNS,
  KEY_COLUMNS,
  messageOf,
  requestPageQuery,
  toConversation,
  toItem,
  toKey,
  toLoggedRequest,
  type CacheRow,
  type ConversationRow,
  type ItemRow,
  type KeyRow,
  type RequestRow,
  type TotalRow,
  toUsageTotal,
  toUsageBucket,
  REQUEST_LOG_COLUMNS,
  requestLogValues,
} from '../sql-rows.js';
import { sortUsageBuckets, sortUsageTotals } from '../usage-order.js';
import { createSqlLeases, type LeaseTable } from '../sql-leases.js';
import { checkSeriesFilter, rollUp, seriesQuery, totalsQuery } from '../usage-rollup.js';
import { migrate } from './migrate.js';
import { MIGRATIONS } from './migrations.js';

export interface SqliteStoreOptions {
  /** How long a write waits for another connection's write lock before failing. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** The clock leases expire by. Default Date.now. */
  now?: () => number;
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
    return createSqliteStore(db, migrate(db, MIGRATIONS, path), options.now);
  } catch (error) {
    db.close();
    if (error instanceof StoreError) throw error;
    throw new StoreError('OPEN_FAILED', `cannot use the SQLite database at ${path}: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

function createSqliteStore(db: Database.Database, schemaVersion: number, now?: () => number): Store {
  const keys = createKeyStore(db);
  const usage = createUsageStore(db);
  const cache = createCacheStore(db);
  const limits = createLimitStore(db);
  const conversations = createConversationStore(db);
  const requests = createRequestLogStore(db);
  const credentials = createCredentialStore(db);
  return {
    kind: 'sqlite',
    schemaVersion,
    leases: createSqlLeases(createLeaseTable(db), now),
    keys,
    usage,
    cache,
    limits,
    conversations,
    requests,
    credentials,
    async close() {
      if (db.open) db.close();
    },
  };
}

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

function createUsageStore(db: Database.Database): UsageStore {
  const insert = db.prepare<[string, string, number, number, number, number]>(
    `INSERT INTO usage (subject, model, at, requests, prompt_tokens, completion_tokens) VALUES (?, ?, ?, ?, ?, ?)`,
  );
  const addHour = db.prepare<[string, string, number, number, number, number]>(
    `INSERT INTO usage_hourly (subject, model, hour, requests, prompt_tokens, completion_tokens)
     VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (subject, model, hour) DO UPDATE SET requests = requests + excluded.requests,
       prompt_tokens = prompt_tokens + excluded.prompt_tokens,
       completion_tokens = completion_tokens + excluded.completion_tokens`,
  );
  const insertAll = db.transaction((entries: readonly UsageEntry[]) => {
    for (const e of entries) insert.run(e.subject, e.model, e.at, e.requests, e.promptTokens, e.completionTokens);
    for (const h of rollUp(entries)) {
      addHour.run(h.subject, h.model, h.hour, h.requests, h.promptTokens, h.completionTokens);
    }
  });
  // One statement per shape of report, prepared on first use and kept (there are a few dozen shapes at most).
  const statements = new Map<string, Database.Statement<[Record<string, string | number>], TotalRow>>();
  const seriesStatements = new Map<
    string,
    Database.Statement<[Record<string, string | number>], TotalRow & { at: number }>
  >();
  return {
    async record(entry) {
      insertAll.immediate([entry]);
    },
    async recordMany(entries) {
      if (entries.length > 0) insertAll.immediate(entries);
    },
    async totals(filter: UsageFilter = {}) {
      const { sql, params } = totalsQuery(filter, (name) => `@${name}`);
      let statement = statements.get(sql);
      if (statement === undefined) {
        statement = db.prepare<[Record<string, string | number>], TotalRow>(sql);
        statements.set(sql, statement);
      }
      return sortUsageTotals(statement.all(params).map(toUsageTotal));
    },
    async series(filter) {
      checkSeriesFilter(filter);
      const { sql, params } = seriesQuery(filter, (name) => `@${name}`);
      let statement = seriesStatements.get(sql);
      if (statement === undefined) {
        statement = db.prepare<[Record<string, string | number>], TotalRow & { at: number }>(sql);
        seriesStatements.set(sql, statement);
      }
      return sortUsageBuckets(statement.all(params).map(toUsageBucket));
    },
  };
}

function createRequestLogStore(db: Database.Database): RequestLogStore {
  const insert = db.prepare<(string | number | null)[]>(
    `INSERT INTO request_log (${REQUEST_LOG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const prune = db.prepare<[number]>('DELETE FROM request_log WHERE id <= (SELECT max(id) FROM request_log) - ?');
  const append = db.transaction((entries: readonly RequestLogEntry[], keep: number) => {
    for (const e of entries) insert.run(...requestLogValues(e));
    prune.run(keep);
  });
  // One statement per combination of filters (at most 2^7), prepared on first use.
  const statements = new Map<string, Database.Statement<[Record<string, string | number>], RequestRow>>();
  return {
    async appendMany(entries, keep) {
      checkKeep(keep);
      append.immediate(entries, keep);
    },
    async page(filter, page) {
      checkRequestPage(filter, page);
      const { sql, params } = requestPageQuery(filter, page, (name) => `@${name}`);
      let statement = statements.get(sql);
      if (statement === undefined) {
        statement = db.prepare<[Record<string, string | number>], RequestRow>(sql);
        statements.set(sql, statement);
      }
      return statement.all(params).map(toLoggedRequest);
    },
  };
}

function createCredentialStore(db: Database.Database): CredentialStore {
  const KEY = 'kind = ? AND principal = ? AND upstream = ? AND issuer = ?';
  const LIVE = '(expires_at IS NULL OR expires_at > ?)';
  type Key = [string, string, string, string];
  const keyOf = (key: CredentialKey): Key => [key.kind, key.principal, key.upstream, key.issuer];
  const upsert = db.prepare<(string | number | null)[]>(
    `INSERT INTO upstream_credentials (${CREDENTIAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (kind, principal, upstream, issuer)
     DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
  );
  const select = db.prepare<[...Key, number], CredentialRow>(
    `SELECT ${CREDENTIAL_COLUMNS} FROM upstream_credentials WHERE ${KEY} AND ${LIVE}`,
  );
  const take = db.prepare<[...Key, number], CredentialRow>(
    `DELETE FROM upstream_credentials WHERE ${KEY} AND ${LIVE} RETURNING ${CREDENTIAL_COLUMNS}`,
  );
  const remove = db.prepare<Key>(`DELETE FROM upstream_credentials WHERE ${KEY}`);
  const listAll = db.prepare<[string, number], CredentialRow>(
    `SELECT ${CREDENTIAL_COLUMNS} FROM upstream_credentials WHERE kind = ? AND ${LIVE}
     ORDER BY upstream, issuer, principal`,
  );
  const listOne = db.prepare<[string, string, number], CredentialRow>(
    `SELECT ${CREDENTIAL_COLUMNS} FROM upstream_credentials WHERE kind = ? AND principal = ? AND ${LIVE}
     ORDER BY upstream, issuer, principal`,
  );
  const removeConnection = db.prepare<[string, string]>(
    `DELETE FROM upstream_credentials WHERE principal = ? AND upstream = ? AND kind <> 'client'`,
  );
  const prune = db.prepare<[number]>('DELETE FROM upstream_credentials WHERE expires_at <= ?');
  return {
    async put(record) {
      checkCredentialRecord(record);
      upsert.run(...credentialValues(record));
    },
    async get(key, now) {
      checkCredentialKey(key);
      const row = select.get(...keyOf(key), now);
      return row && toCredential(row);
    },
    async take(key, now) {
      checkCredentialKey(key);
      const row = take.get(...keyOf(key), now);
      return row && toCredential(row);
    },
    async delete(key) {
      checkCredentialKey(key);
      return remove.run(...keyOf(key)).changes > 0;
    },
    async list(kind, principal, now) {
      const rows = principal === undefined ? listAll.all(kind, now) : listOne.all(kind, principal, now);
      return rows.map(toCredential);
    },
    async deleteConnection(principal, upstream) {
      return removeConnection.run(principal, upstream).changes;
    },
    async prune(now) {
      return prune.run(now).changes;
    },
  };
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
  // IMMEDIATE takes the write lock before the reads, so another connection (or process) cannot read the same state
  // in between; a deferred transaction would fail with SQLITE_BUSY on the upgrade instead of waiting its turn.
  const takeAll = db.transaction((batch: LimitBatch) => {
    const keys = gcraBatchKeys(batch);
    const { decisions, writes } = gcraTakeAll(new Map(keys.map((key) => [key, select.get(key)])), batch);
    for (const { key, state, changed } of writes) {
      if (!changed) continue;
      // No row means a full bucket, so a bucket that is full again is deleted rather than kept.
      if (state === undefined) remove.run(key);
      else upsert.run(key, state.units, state.at);
    }
    return decisions;
  });
  return limitStoreOf(async (batch) => {
    checkGcraBatch(batch);
    return takeAll.immediate(batch);
  });
}

function createLeaseTable(db: Database.Database): LeaseTable {
  const removeExpired = db.prepare<[string, number]>('DELETE FROM leases WHERE key = ? AND expires_at <= ?');
  const countLive = db.prepare<[string, number], { n: number }>(
    'SELECT count(*) AS n FROM leases WHERE key = ? AND expires_at > ?',
  );
  const insert = db.prepare<[string, string, number]>('INSERT INTO leases (id, key, expires_at) VALUES (?, ?, ?)');
  const extend = db.prepare<[number, string, number]>(
    'UPDATE leases SET expires_at = ? WHERE id = ? AND expires_at > ?',
  );
  const remove = db.prepare<[string]>('DELETE FROM leases WHERE id = ?');
  // IMMEDIATE: the count and the insert happen under the write lock, so processes on the file take turns.
  const acquire = db.transaction((key: string, id: string, limit: number, now: number, expiresAt: number) => {
    removeExpired.run(key, now);
    if ((countLive.get(key, now)?.n ?? 0) >= limit) return false;
    insert.run(id, key, expiresAt);
    return true;
  });
  return {
    acquire: async (key, id, limit, now, expiresAt) => acquire.immediate(key, id, limit, now, expiresAt),
    renew: async (id, now, expiresAt) => extend.run(expiresAt, id, now).changes > 0,
    release: async (id) => void remove.run(id),
    count: async (key, now) => countLive.get(key, now)?.n ?? 0,
  };
}

function createConversationStore(db: Database.Database): ConversationStore {
  const insert = db.prepare<[string, string, string, number]>(
    'INSERT INTO conversations (id, owner, metadata, version, created_at) VALUES (?, ?, ?, 0, ?)',
  );
  const selectOne = db.prepare<[string], ConversationRow>(
    `SELECT ${CONVERSATION_COLUMNS} FROM conversations WHERE id = ?`,
  );
  const selectFirstPage = db.prepare<[string, number], ConversationRow>(
    `SELECT ${CONVERSATION_COLUMNS} FROM conversations WHERE owner = ?
     ORDER BY created_at DESC, rowid DESC LIMIT ?`,
  );
  // An `after` that is not one of the owner's conversations makes the row value NULL, and so the page empty.
  const selectNextPage = db.prepare<{ owner: string; after: string; limit: number }, ConversationRow>(
    `SELECT ${CONVERSATION_COLUMNS} FROM conversations
     WHERE owner = @owner
       AND (created_at, rowid) < (SELECT created_at, rowid FROM conversations WHERE id = @after AND owner = @owner)
     ORDER BY created_at DESC, rowid DESC LIMIT @limit`,
  );
  const removeItems = db.prepare<[string]>('DELETE FROM conversation_items WHERE conversation_id = ?');
  const removeConversation = db.prepare<[string]>('DELETE FROM conversations WHERE id = ?');
  const selectVersion = db.prepare<[string], { version: number }>('SELECT version FROM conversations WHERE id = ?');
  const selectLastSeq = db.prepare<[string], { seq: number | null }>(
    'SELECT max(seq) AS seq FROM conversation_items WHERE conversation_id = ?',
  );
  const insertItem = db.prepare<[string, number, string, string, string, number]>(
    `INSERT INTO conversation_items (conversation_id, seq, id, role, message, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
  );
  const bumpVersion = db.prepare<[string]>('UPDATE conversations SET version = version + 1 WHERE id = ?');
  const selectAsc = db.prepare<[string, number, number], ItemRow>(
    `SELECT ${ITEM_COLUMNS} FROM conversation_items WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
  );
  const selectDesc = db.prepare<[string, number, number], ItemRow>(
    `SELECT ${ITEM_COLUMNS} FROM conversation_items WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
  );
  const selectItem = db.prepare<[string, string], ItemRow>(
    `SELECT ${ITEM_COLUMNS} FROM conversation_items WHERE conversation_id = ? AND id = ?`,
  );

  const remove = db.transaction((id: string): boolean => {
    removeItems.run(id);
    return removeConversation.run(id).changes > 0;
  });
  // IMMEDIATE: the version and the last seq are read under the write lock, so two connections (or processes) can
  // never both append at the same version or write the same seq.
  const append = db.transaction(
    (id: string, messages: { role: ConversationRole; json: string }[], expectedVersion: number | undefined) => {
      const current = selectVersion.get(id);
      if (current === undefined) throw new StoreError('NOT_FOUND', `no conversation with id "${id}"`);
      if (expectedVersion !== undefined && expectedVersion !== current.version) {
        throw new StoreError(
          'CONFLICT',
          `conversation "${id}" is at version ${current.version}, not the expected ${expectedVersion}`,
        );
      }
      const last = selectLastSeq.get(id)?.seq ?? 0;
      const now = Date.now();
      const items = messages.map(({ role, json }, index): ConversationItem => {
        const item = { id: newItemId(), seq: last + index + 1 };
        insertItem.run(id, item.seq, item.id, role, json, now);
        return {
          ...item,
          conversationId: id,
          role,
          message: JSON.parse(json) as Record<string, unknown>,
          createdAt: now,
        };
      });
      bumpVersion.run(id);
      return { version: current.version + 1, items };
    },
  );

  return {
    async create(owner, metadata) {
      const record: ConversationRecord = {
        id: newConversationId(),
        owner,
        metadata: { ...metadata },
        version: 0,
        createdAt: Date.now(),
      };
      insert.run(record.id, record.owner, JSON.stringify(record.metadata), record.createdAt);
      return record;
    },
    async get(id) {
      const row = selectOne.get(id);
      return row && toConversation(row);
    },
    async list(owner, page) {
      checkConversationPage(page);
      const rows =
        page.after === undefined
          ? selectFirstPage.all(owner, page.limit)
          : selectNextPage.all({ owner, after: page.after, limit: page.limit });
      return rows.map(toConversation);
    },
    async delete(id) {
      return remove.immediate(id);
    },
    async append(id, messages, expectedVersion) {
      checkExpectedVersion(expectedVersion);
      return append.immediate(id, prepareMessages(messages), expectedVersion);
    },
    async items(id, page) {
      checkItemPage(page);
      const rows =
        page.order === 'asc'
          ? selectAsc.all(id, page.after ?? 0, page.limit)
          : selectDesc.all(id, page.after ?? Number.MAX_SAFE_INTEGER, page.limit);
      return rows.map(toItem);
    },
    async item(id, itemId) {
      const row = selectItem.get(id, itemId);
      return row && toItem(row);
    },
  };
}

// A Store in PostgreSQL through pg: what many replicas share and must not lose (keys, usage, conversations), with
// the response cache and rate-limit state as well. Every read-then-write runs in one transaction under a lock
// (a row lock, or an advisory lock for a row that may not exist yet), so concurrent processes never lose updates.
import pg from 'pg';
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
  type ConversationStore,
  type CredentialKey,
  type CredentialStore,
  type KeyStore,
  type LimitStore,
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
import type { Migration } from '../sqlite/migrations.js';
import { PG_MIGRATIONS } from './migrations.js';
import { createAvailability, isConnectionFailure, type Availability } from './availability.js';
import { redactUrl } from '../redact-url.js';

export interface PostgresStoreOptions {
  /** The schema that holds mcplex's tables, created when missing. Default `public`. */
  schema?: string;
  /** Connections in the pool. Default 10. */
  maxConnections?: number;
  /** How long opening a connection may take. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** The clock leases expire by. Default Date.now. */
  now?: () => number;
}

/** Schema names mcplex accepts: plain lower-case identifiers, so they never need quoting anywhere. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** int8 (BIGINT, and sums of it) as a JavaScript number: every value mcplex keeps fits in 2^53. */
const INT8_OID = 20;

/** The largest seq an INTEGER column holds: a page bound past it means "from the end". */
const MAX_SEQ = 2_147_483_647;

/** Usage rows per INSERT: six parameters each, under PostgreSQL's 65535 per statement. */
const USAGE_CHUNK = 5000;

/** Request log rows per INSERT: nine parameters each. */
const REQUEST_CHUNK = 5000;

/**
 * Connects to the database at `url`, creates the schema if needed and migrates it (under an advisory lock, so
 * that replicas starting together apply each migration once). Throws StoreError OPEN_FAILED when the server cannot
 * be reached or refuses the login, MIGRATION_FAILED when the schema cannot be brought up to date (including one
 * written by a newer mcplex).
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<Store> {
  const schema = options.schema ?? 'public';
  if (!SCHEMA_NAME.test(schema)) {
    throw new StoreError(
      'OPEN_FAILED',
      `PostgreSQL schema name "${schema}" is not a plain lower-case identifier (letters, digits, _)`,
    );
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    options: `-c search_path=${schema}`,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as never,
    },
  });
  let schemaVersion: number;
  // An idle connection that breaks (a restarted server) must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  try {
    schemaVersion = await migrate(pool, schema, PG_MIGRATIONS, redactUrl(url));
  } catch (error) {
    await pool.end().catch(() => {});
    if (error instanceof StoreError) throw error;
    throw new StoreError(
      'OPEN_FAILED',
      `cannot use the PostgreSQL database at ${redactUrl(url)}: ${messageOf(error)}`,
      {
        cause: error,
      },
    );
  }
  return createPostgresStore(pool, schemaVersion, redactUrl(url), options.now);
}

/** Applies every migration newer than the schema's in one transaction, holding the schema's advisory lock. */
export async function migrate(
  pool: pg.Pool,
  schema: string,
  migrations: readonly Migration[],
  where: string,
): Promise<number> {
  const latest = migrations.at(-1)?.version ?? 0;
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw new StoreError('OPEN_FAILED', `cannot connect to PostgreSQL at ${where}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`mcplex:migrate:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.schema_version
         (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
    );
    const found =
      (await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${schema}.schema_version`))
        .rows[0]?.version ?? 0;
    if (found > latest) {
      throw new StoreError(
        'MIGRATION_FAILED',
        `the PostgreSQL schema ${schema} at ${where} has schema version ${found}, newer than this mcplex knows ` +
          `(${latest}); upgrade mcplex or point it at another schema`,
      );
    }
    for (const migration of migrations) {
      if (migration.version <= found) continue;
      try {
        await client.query(migration.sql);
      } catch (error) {
        throw new StoreError(
          'MIGRATION_FAILED',
          `migration ${migration.version} (${migration.description}) of ${schema} at ${where} failed: ${messageOf(error)}`,
          { cause: error },
        );
      }
      await client.query(
        `INSERT INTO ${schema}.schema_version (version, description, applied_at) VALUES ($1, $2, $3)`,
        [migration.version, migration.description, Date.now()],
      );
    }
    await client.query('COMMIT');
    return latest;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

function createPostgresStore(raw: pg.Pool, schemaVersion: number, where: string, now?: () => number): Store {
  let closed: Promise<void> | undefined;
  const availability = createAvailability(`PostgreSQL at ${where}`);
  const pool = guard(raw, availability);
  return {
    kind: 'postgres',
    schemaVersion,
    leases: createSqlLeases(createLeaseTable(pool), now),
    keys: createKeyStore(pool),
    usage: createUsageStore(pool),
    cache: createCacheStore(pool),
    limits: createLimitStore(pool),
    conversations: createConversationStore(pool),
    requests: createRequestLogStore(pool),
    credentials: createCredentialStore(pool),
    health: () => availability.health(),
    close() {
      closed ??= raw.end();
      return closed;
    },
  };
}

/** What the stores below need of the pool: queries, and transactions on one connection. */
interface Db {
  query: pg.Pool['query'];
  /** Runs `work` in one transaction on one connection: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
}

/** The pool with every failure to reach the server turned into STORE_UNAVAILABLE (503) and recorded in `health`. */
function guard(pool: pg.Pool, health: Availability): Db {
  const query = (...args: unknown[]) =>
    (pool.query as (...a: unknown[]) => Promise<unknown>)(...args).then(
      (result) => {
        health.ok();
        return result;
      },
      (error: unknown) => {
        throw health.fail(error);
      },
    );
  return {
    query: query as pg.Pool['query'],
    async transaction(work) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (error) {
        throw health.fail(error);
      }
      let broken = false;
      try {
        await client.query('BEGIN');
        const result = await work(client);
        await client.query('COMMIT');
        health.ok();
        return result;
      } catch (error) {
        broken = isConnectionFailure(error);
        if (!broken) await client.query('ROLLBACK').catch(() => {});
        throw health.fail(error);
      } finally {
        // A connection that broke is dropped rather than handed to the next caller.
        client.release(broken);
      }
    },
  };
}

function createKeyStore(pool: Db): KeyStore {
  return {
    async create(record) {
      try {
        await pool.query(`INSERT INTO api_keys (${KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
          record.id,
          record.name,
          record.secretHash,
          JSON.stringify(record.scopes),
          JSON.stringify(record.limits),
          record.createdAt,
          record.expiresAt,
          record.revokedAt,
        ]);
      } catch (error) {
        const { code, constraint } = error as { code?: string; constraint?: string };
        if (code === '23505' && constraint === 'api_keys_pkey') {
          throw new StoreError('DUPLICATE', `an API key with id "${record.id}" already exists`, { cause: error });
        }
        if (code === '23505') {
          throw new StoreError('DUPLICATE', `an API key named "${record.name}" already exists`, { cause: error });
        }
        throw error;
      }
    },
    async get(id) {
      const { rows } = await pool.query<KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE id = $1`, [id]);
      return rows[0] && toKey(rows[0]);
    },
    async list() {
      const { rows } = await pool.query<KeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY created_at, n`);
      return rows.map(toKey);
    },
    async revoke(id, at) {
      const result = await pool.query('UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [
        at,
        id,
      ]);
      return (result.rowCount ?? 0) > 0;
    },
  };
}

function createUsageStore(pool: Db): UsageStore {
  async function write(entries: readonly UsageEntry[]): Promise<void> {
    if (entries.length === 0) return;
    // One statement per chunk (PostgreSQL takes at most 65535 parameters in one), rows and rollup in one transaction.
    await pool.transaction(async (client) => {
      for (let start = 0; start < entries.length; start += USAGE_CHUNK) {
        const chunk = entries.slice(start, start + USAGE_CHUNK);
        await client.query(
          `INSERT INTO usage (subject, model, at, requests, prompt_tokens, completion_tokens) VALUES ${tuples(chunk.length, 6)}`,
          chunk.flatMap((e) => [e.subject, e.model, e.at, e.requests, e.promptTokens, e.completionTokens]),
        );
      }
      const hours = rollUp(entries);
      for (let start = 0; start < hours.length; start += USAGE_CHUNK) {
        const chunk = hours.slice(start, start + USAGE_CHUNK);
        await client.query(
          `INSERT INTO usage_hourly (subject, model, hour, requests, prompt_tokens, completion_tokens)
           VALUES ${tuples(chunk.length, 6)}
           ON CONFLICT (subject, model, hour) DO UPDATE SET requests = usage_hourly.requests + excluded.requests,
             prompt_tokens = usage_hourly.prompt_tokens + excluded.prompt_tokens,
             completion_tokens = usage_hourly.completion_tokens + excluded.completion_tokens`,
          chunk.flatMap((h) => [h.subject, h.model, h.hour, h.requests, h.promptTokens, h.completionTokens]),
        );
      }
    });
  }
  return {
    record: (entry) => write([entry]),
    recordMany: write,
    async totals(filter: UsageFilter = {}) {
      const { placeholder, values } = positional();
      const { sql, params } = totalsQuery(filter, placeholder, (expression) => `${expression}::int8`);
      const { rows } = await pool.query<TotalRow>(sql, values(params));
      return sortUsageTotals(rows.map(toUsageTotal));
    },
    async series(filter) {
      checkSeriesFilter(filter);
      const { placeholder, values } = positional();
      // `at` is a whole number, so `at >= since` and `at < until` mean the same with both rounded up; a bound with a
      // fraction would not pass as a BIGINT parameter.
      const whole = { ...filter, since: Math.ceil(filter.since), until: Math.ceil(filter.until) };
      const { sql, params } = seriesQuery(whole, placeholder, (expression) => `${expression}::int8`);
      const { rows } = await pool.query<TotalRow & { at: number }>(sql, values(params));
      return sortUsageBuckets(rows.map(toUsageBucket));
    },
  };
}

/** `$1`, `$2`, … for named parameters, one number per name however often it is used, and their values in order. */
function positional(): {
  placeholder: (name: string) => string;
  values: (params: Record<string, string | number>) => (string | number | undefined)[];
} {
  const positions = new Map<string, number>();
  return {
    placeholder(name) {
      if (!positions.has(name)) positions.set(name, positions.size + 1);
      return `$${positions.get(name)}`;
    },
    values: (params) => [...positions.keys()].map((name) => params[name]),
  };
}

function createCredentialStore(pool: Db): CredentialStore {
  const KEY = 'kind = $1 AND principal = $2 AND upstream = $3 AND issuer = $4';
  const keyOf = (key: CredentialKey) => [key.kind, key.principal, key.upstream, key.issuer];
  const listed = `SELECT ${CREDENTIAL_COLUMNS} FROM upstream_credentials`;
  return {
    async put(record) {
      checkCredentialRecord(record);
      await pool.query(
        `INSERT INTO upstream_credentials (${CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (kind, principal, upstream, issuer)
         DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
        credentialValues(record),
      );
    },
    async get(key, now) {
      checkCredentialKey(key);
      const { rows } = await pool.query<CredentialRow>(
        `${listed} WHERE ${KEY} AND (expires_at IS NULL OR expires_at > $5)`,
        [...keyOf(key), Math.floor(now)],
      );
      return rows[0] && toCredential(rows[0]);
    },
    async take(key, now) {
      checkCredentialKey(key);
      // One statement: of two replicas taking the same state at once, one gets the row and the other nothing.
      const { rows } = await pool.query<CredentialRow>(
        `DELETE FROM upstream_credentials WHERE ${KEY} AND (expires_at IS NULL OR expires_at > $5)
         RETURNING ${CREDENTIAL_COLUMNS}`,
        [...keyOf(key), Math.floor(now)],
      );
      return rows[0] && toCredential(rows[0]);
    },
    async delete(key) {
      checkCredentialKey(key);
      return ((await pool.query(`DELETE FROM upstream_credentials WHERE ${KEY}`, keyOf(key))).rowCount ?? 0) > 0;
    },
    async list(kind, principal, now) {
      const { rows } =
        principal === undefined
          ? await pool.query<CredentialRow>(
              `${listed} WHERE kind = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY upstream COLLATE "C", issuer COLLATE "C", principal COLLATE "C"`,
              [kind, Math.floor(now)],
            )
          : await pool.query<CredentialRow>(
              `${listed} WHERE kind = $1 AND principal = $2 AND (expires_at IS NULL OR expires_at > $3)
               ORDER BY upstream COLLATE "C", issuer COLLATE "C", principal COLLATE "C"`,
              [kind, principal, Math.floor(now)],
            );
      return rows.map(toCredential);
    },
    async deleteConnection(principal, upstream) {
      const result = await pool.query(
        `DELETE FROM upstream_credentials WHERE principal = $1 AND upstream = $2 AND kind <> 'client'`,
        [principal, upstream],
      );
      return result.rowCount ?? 0;
    },
    async prune(now) {
      return (
        (await pool.query('DELETE FROM upstream_credentials WHERE expires_at <= $1', [Math.floor(now)])).rowCount ?? 0
      );
    },
  };
}

function createRequestLogStore(pool: Db): RequestLogStore {
  return {
    async appendMany(entries, keep) {
      checkKeep(keep);
      await pool.transaction(async (client) => {
        for (let start = 0; start < entries.length; start += REQUEST_CHUNK) {
          const chunk = entries.slice(start, start + REQUEST_CHUNK);
          await client.query(
            `INSERT INTO request_log (${REQUEST_LOG_COLUMNS}) VALUES ${tuples(chunk.length, 9)}`,
            chunk.flatMap(requestLogValues),
          );
        }
        // The statement sees this transaction's rows; a replica appending at the same time prunes by its own view,
        // so the table may briefly hold a little more than `keep`, never less of the newest.
        await client.query(
          'DELETE FROM request_log WHERE id < (SELECT id FROM request_log ORDER BY id DESC OFFSET $1 LIMIT 1)',
          [keep - 1],
        );
      });
    },
    async page(filter, page) {
      checkRequestPage(filter, page);
      const { placeholder, values } = positional();
      // As in series: `at` is whole, so rounding the bounds up changes nothing and keeps them valid BIGINTs.
      const whole = {
        ...filter,
        ...(filter.since === undefined ? {} : { since: Math.ceil(filter.since) }),
        ...(filter.until === undefined ? {} : { until: Math.ceil(filter.until) }),
      };
      const { sql, params } = requestPageQuery(whole, page, placeholder);
      const { rows } = await pool.query<RequestRow>(sql, values(params));
      return rows.map(toLoggedRequest);
    },
  };
}

/** `($1, $2, …), (…)`: `rows` tuples of `width` parameters, numbered in order. */
function tuples(rows: number, width: number): string {
  const out: string[] = [];
  for (let row = 0; row < rows; row++) {
    const base = row * width;
    out.push(`(${Array.from({ length: width }, (_, i) => `$${base + i + 1}`).join(', ')})`);
  }
  return out.join(', ');
}

function createCacheStore(pool: Db): CacheStore {
  return {
    async get(key, now) {
      const { rows } = await pool.query<CacheRow>(
        'SELECT body, kind, created_at, expires_at FROM cache WHERE key = $1 AND expires_at > $2',
        [key, now],
      );
      const row = rows[0];
      return row && { body: row.body, kind: row.kind, createdAt: row.created_at, expiresAt: row.expires_at };
    },
    async set(key, entry) {
      await pool.query(
        `INSERT INTO cache (key, body, kind, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (key) DO UPDATE SET body = excluded.body, kind = excluded.kind,
           created_at = excluded.created_at, expires_at = excluded.expires_at`,
        [key, entry.body, entry.kind, entry.createdAt, entry.expiresAt],
      );
    },
    async delete(key) {
      await pool.query('DELETE FROM cache WHERE key = $1', [key]);
    },
    async prune(now) {
      return (await pool.query('DELETE FROM cache WHERE expires_at <= $1', [now])).rowCount ?? 0;
    },
  };
}

function createLimitStore(pool: Db): LimitStore {
  return limitStoreOf(async (batch) => {
    checkGcraBatch(batch);
    const keys = gcraBatchKeys(batch);
    return pool.transaction(async (client) => {
      // Every bucket's row locked until the transaction ends, in key order (so that two batches cannot deadlock).
      // A bucket without a row (a full one) gets one with the full state (no units owed), so that it can be locked
      // too; ON CONFLICT reads the latest committed row even when it waited for another transaction's lock, where
      // a plain SELECT would see its statement's snapshot.
      const { rows } = await client.query<GcraState & { key: string }>(
        `INSERT INTO limits (key, units, at) SELECT key, 0, $2 FROM unnest($1::text[]) AS key ORDER BY key
         ON CONFLICT (key) DO UPDATE SET units = limits.units RETURNING key, units, at`,
        [keys, batch.now],
      );
      const { decisions, writes } = gcraTakeAll(new Map(rows.map(({ key, units, at }) => [key, { units, at }])), batch);
      // Every row is written back: a row made only to be locked goes again, as does a bucket that is full again.
      const gone = writes.filter((w) => w.state === undefined).map((w) => w.key);
      const kept = writes.filter((w) => w.state !== undefined);
      if (gone.length > 0) await client.query('DELETE FROM limits WHERE key = ANY($1::text[])', [gone]);
      if (kept.length > 0) {
        await client.query(
          `UPDATE limits SET units = v.units, at = v.at
           FROM unnest($1::text[], $2::float8[], $3::float8[]) AS v(key, units, at) WHERE limits.key = v.key`,
          [kept.map((w) => w.key), kept.map((w) => w.state!.units), kept.map((w) => w.state!.at)],
        );
      }
      return decisions;
    });
  });
}

function createLeaseTable(pool: Db): LeaseTable {
  const countLive = async (client: Pick<pg.PoolClient, 'query'>, key: string, now: number) =>
    (
      await client.query<{ n: number }>('SELECT count(*)::int AS n FROM leases WHERE key = $1 AND expires_at > $2', [
        key,
        now,
      ])
    ).rows[0]?.n ?? 0;
  return {
    acquire: (key, id, limit, now, expiresAt) =>
      pool.transaction(async (client) => {
        // A key without rows can be locked too; the statements after the lock see what its last holder wrote.
        await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 3))', [key]);
        await client.query('DELETE FROM leases WHERE key = $1 AND expires_at <= $2', [key, now]);
        if ((await countLive(client, key, now)) >= limit) return false;
        await client.query('INSERT INTO leases (id, key, expires_at) VALUES ($1, $2, $3)', [id, key, expiresAt]);
        return true;
      }),
    async renew(id, now, expiresAt) {
      const result = await pool.query('UPDATE leases SET expires_at = $1 WHERE id = $2 AND expires_at > $3', [
        expiresAt,
        id,
        now,
      ]);
      return (result.rowCount ?? 0) > 0;
    },
    async release(id) {
      await pool.query('DELETE FROM leases WHERE id = $1', [id]);
    },
    count: (key, now) => countLive(pool, key, now),
  };
}

function createConversationStore(pool: Db): ConversationStore {
  return {
    async create(owner, metadata) {
      const record: ConversationRecord = {
        id: newConversationId(),
        owner,
        metadata: { ...metadata },
        version: 0,
        createdAt: Date.now(),
      };
      await pool.query(
        'INSERT INTO conversations (id, owner, metadata, version, created_at) VALUES ($1, $2, $3, 0, $4)',
        [record.id, record.owner, JSON.stringify(record.metadata), record.createdAt],
      );
      return record;
    },
    async get(id) {
      const { rows } = await pool.query<ConversationRow>(
        `SELECT ${CONVERSATION_COLUMNS} FROM conversations WHERE id = $1`,
        [id],
      );
      return rows[0] && toConversation(rows[0]);
    },
    async list(owner, page) {
      checkConversationPage(page);
      // An `after` that is not one of the owner's conversations makes the row value NULL, and so the page empty.
      const { rows } =
        page.after === undefined
          ? await pool.query<ConversationRow>(
              `SELECT ${CONVERSATION_COLUMNS} FROM conversations WHERE owner = $1
               ORDER BY created_at DESC, n DESC LIMIT $2`,
              [owner, page.limit],
            )
          : await pool.query<ConversationRow>(
              `SELECT ${CONVERSATION_COLUMNS} FROM conversations
               WHERE owner = $1
                 AND (created_at, n) < (SELECT created_at, n FROM conversations WHERE id = $2 AND owner = $1)
               ORDER BY created_at DESC, n DESC LIMIT $3`,
              [owner, page.after, page.limit],
            );
      return rows.map(toConversation);
    },
    async delete(id) {
      // Its items go with it (ON DELETE CASCADE), in the same statement.
      return ((await pool.query('DELETE FROM conversations WHERE id = $1', [id])).rowCount ?? 0) > 0;
    },
    async append(id, messages, expectedVersion) {
      checkExpectedVersion(expectedVersion);
      const prepared = prepareMessages(messages);
      return pool.transaction(async (client) => {
        // The row lock makes concurrent appends to one conversation take turns: each reads the version and the
        // last seq its predecessor wrote, so exactly one wins at a given version and seq has no gaps.
        const { rows } = await client.query<{ version: number }>(
          'SELECT version FROM conversations WHERE id = $1 FOR UPDATE',
          [id],
        );
        const current = rows[0];
        if (current === undefined) throw new StoreError('NOT_FOUND', `no conversation with id "${id}"`);
        if (expectedVersion !== undefined && expectedVersion !== current.version) {
          throw new StoreError(
            'CONFLICT',
            `conversation "${id}" is at version ${current.version}, not the expected ${expectedVersion}`,
          );
        }
        // A statement of its own, after the lock: its snapshot includes the items the previous holder wrote.
        const last =
          (
            await client.query<{ last: number | null }>(
              'SELECT max(seq) AS last FROM conversation_items WHERE conversation_id = $1',
              [id],
            )
          ).rows[0]?.last ?? 0;
        const now = Date.now();
        const items = prepared.map(({ role, json }, index): ConversationItem => ({
          id: newItemId(),
          conversationId: id,
          seq: last + index + 1,
          role,
          message: JSON.parse(json) as Record<string, unknown>,
          createdAt: now,
        }));
        await client.query(
          `INSERT INTO conversation_items (conversation_id, seq, id, role, message, created_at)
           VALUES ${tuples(prepared.length, 6)}`,
          prepared.flatMap(({ role, json }, index) => [id, items[index]!.seq, items[index]!.id, role, json, now]),
        );
        await client.query('UPDATE conversations SET version = version + 1 WHERE id = $1', [id]);
        return { version: current.version + 1, items };
      });
    },
    async items(id, page) {
      checkItemPage(page);
      const { rows } =
        page.order === 'asc'
          ? await pool.query<ItemRow>(
              `SELECT ${ITEM_COLUMNS} FROM conversation_items WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
              [id, Math.min(page.after ?? 0, MAX_SEQ), page.limit],
            )
          : await pool.query<ItemRow>(
              `SELECT ${ITEM_COLUMNS} FROM conversation_items WHERE conversation_id = $1 AND seq < $2
               ORDER BY seq DESC LIMIT $3`,
              [id, Math.min(page.after ?? MAX_SEQ, MAX_SEQ), page.limit],
            );
      return rows.map(toItem);
    },
    async item(id, itemId) {
      const { rows } = await pool.query<ItemRow>(
        `SELECT ${ITEM_COLUMNS} FROM conversation_items WHERE conversation_id = $1 AND id = $2`,
        [id, itemId],
      );
      return rows[0] && toItem(rows[0]);
    },
  };
}

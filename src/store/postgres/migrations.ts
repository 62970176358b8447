// The PostgreSQL schema, as an ordered list of migrations applied under an advisory lock (see postgres-store.ts).
// Append a new entry to change the schema; never edit one that has shipped: databases record what they applied.
import type { Migration } from '../sqlite/migrations.js';

export const PG_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'api keys, usage, response cache, rate-limit state, conversations',
    sql: `
      -- Only the SHA-256 of a key's secret is kept. JSON documents are kept as text, exactly as written (JSONB
      -- would refuse a \\u0000 in a string). n orders rows created in the same millisecond.
      CREATE TABLE api_keys (
        n           BIGINT GENERATED ALWAYS AS IDENTITY,
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        secret_hash TEXT NOT NULL,
        scopes      TEXT NOT NULL,
        limits      TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT,
        revoked_at  BIGINT
      );

      -- One row per UsageStore.record call: totals are sums over rows, exact for any since/until.
      CREATE TABLE usage (
        subject           TEXT NOT NULL,
        model             TEXT NOT NULL,
        at                BIGINT NOT NULL,
        requests          BIGINT NOT NULL,
        prompt_tokens     BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL
      );
      CREATE INDEX usage_at ON usage (at);
      CREATE INDEX usage_subject_at ON usage (subject, at);

      -- Sums per subject, model and hour, kept with every usage write (same transaction): reports add whole hours
      -- from here and only the partial hours at the ends of their range from the raw rows.
      CREATE TABLE usage_hourly (
        subject           TEXT NOT NULL,
        model             TEXT NOT NULL,
        hour              BIGINT NOT NULL,
        requests          BIGINT NOT NULL,
        prompt_tokens     BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        PRIMARY KEY (subject, model, hour)
      );
      CREATE INDEX usage_hourly_hour ON usage_hourly (hour);

      CREATE TABLE cache (
        key        TEXT PRIMARY KEY,
        body       TEXT NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('json', 'sse')),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      );
      CREATE INDEX cache_expires_at ON cache (expires_at);

      -- GCRA state per bucket, TAT = at + units × periodMs / limit (see src/store/gcra.ts); no row is a full bucket.
      CREATE TABLE limits (
        key   TEXT PRIMARY KEY,
        units DOUBLE PRECISION NOT NULL,
        at    DOUBLE PRECISION NOT NULL
      );

      -- version counts appends; an append locks the row, checks and bumps it in one transaction. n orders
      -- conversations created in the same millisecond.
      CREATE TABLE conversations (
        n          BIGINT GENERATED ALWAYS AS IDENTITY,
        id         TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        metadata   TEXT NOT NULL,
        version    INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL
      );
      CREATE INDEX conversations_owner_created_at ON conversations (owner, created_at DESC, n DESC);

      -- Requests in progress shared by the processes on the database: one row per live lease; a key's expired rows
      -- are removed when it is next taken from, under the key's advisory lock.
      CREATE TABLE leases (
        id         TEXT PRIMARY KEY,
        key        TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
      );
      CREATE INDEX leases_key_expires_at ON leases (key, expires_at);

      CREATE TABLE conversation_items (
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq             INTEGER NOT NULL CHECK (seq >= 1),
        id              TEXT NOT NULL UNIQUE,
        role            TEXT NOT NULL CHECK (role IN ('system', 'developer', 'user', 'assistant', 'tool')),
        message         TEXT NOT NULL,
        created_at      BIGINT NOT NULL,
        PRIMARY KEY (conversation_id, seq)
      );
    `,
  },
  {
    version: 2,
    description: 'request log: the bounded log of recent requests',
    sql: `
      -- id comes from an identity sequence, so it only grows; it is taken at insert and not at commit, so a page
      -- read while two replicas append may see a higher id before a lower one (a best-effort log for the console).
      -- Pruning (after every append, in the same transaction) deletes below the keep-th newest id, exact even where
      -- the sequence has gaps. No index but the primary key: a page walks the newest rows first and stops at its
      -- limit, and over at most keep (10,000) rows that is cheaper than more index updates on every row written.
      CREATE TABLE request_log (
        id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at                BIGINT NOT NULL,
        route             TEXT NOT NULL,
        subject           TEXT,
        target            TEXT NOT NULL,
        status            TEXT NOT NULL,
        latency_ms        DOUBLE PRECISION NOT NULL,
        prompt_tokens     BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        replica           TEXT NOT NULL
      );
    `,
  },
  {
    version: 3,
    description: 'upstream credentials: sealed OAuth tokens, client registrations and sign-ins in progress',
    sql: `
      -- sealed is AES-GCM ciphertext bound to the row's key (the vault's work): nothing here is a secret in the
      -- clear. expires_at (epoch ms) is set for a sign-in's state; NULL keeps the row until it is deleted.
      CREATE TABLE upstream_credentials (
        kind       TEXT NOT NULL,
        principal  TEXT NOT NULL,
        upstream   TEXT NOT NULL,
        issuer     TEXT NOT NULL,
        sealed     TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        expires_at BIGINT,
        PRIMARY KEY (kind, principal, upstream, issuer)
      );
      CREATE INDEX upstream_credentials_connection ON upstream_credentials (principal, upstream);
    `,
  },
];

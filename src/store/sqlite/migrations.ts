// The SQLite schema, as an ordered list of migrations. Append a new entry to change the schema; never edit one that
// has shipped, since databases record which versions they have applied (see migrate.ts).

export interface Migration {
  /** Strictly increasing, starting at 1. */
  version: number;
  /** One line for people reading the schema_version table. */
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'api keys, usage, response cache, rate-limit state',
    sql: `
      -- Only the SHA-256 of a key's secret is kept; scopes and limits are JSON documents.
      CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY NOT NULL,
        name        TEXT NOT NULL UNIQUE,
        secret_hash TEXT NOT NULL,
        scopes      TEXT NOT NULL CHECK (json_valid(scopes)),
        limits      TEXT NOT NULL CHECK (json_valid(limits)),
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER,
        revoked_at  INTEGER
      );

      -- One row per UsageStore.record call: totals are sums over rows, exact for any since/until.
      CREATE TABLE usage (
        id                INTEGER PRIMARY KEY,
        subject           TEXT NOT NULL,
        model             TEXT NOT NULL,
        at                INTEGER NOT NULL,
        requests          INTEGER NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL
      );
      CREATE INDEX usage_at ON usage (at);
      CREATE INDEX usage_subject_at ON usage (subject, at);

      CREATE TABLE cache (
        key        TEXT PRIMARY KEY NOT NULL,
        body       TEXT NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('json', 'sse')),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
      CREATE INDEX cache_expires_at ON cache (expires_at);

      -- GCRA state per bucket: the theoretical arrival time, kept exactly as TAT = at + units × periodMs / limit
      -- (see src/store/gcra.ts); a missing row is a full bucket.
      CREATE TABLE limits (
        key   TEXT PRIMARY KEY NOT NULL,
        units REAL NOT NULL,
        at    REAL NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    description: 'conversations and their items',
    sql: `
      -- version counts appends; an append reads and bumps it inside one IMMEDIATE transaction. The rowid orders
      -- conversations created in the same millisecond.
      CREATE TABLE conversations (
        id         TEXT PRIMARY KEY NOT NULL,
        owner      TEXT NOT NULL,
        metadata   TEXT NOT NULL CHECK (json_valid(metadata)),
        version    INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX conversations_owner_created_at ON conversations (owner, created_at);

      -- seq is 1, 2, 3, … per conversation; the key keeps it unique and a conversation's items together on disk.
      -- Items are deleted with their conversation, in the same transaction (foreign keys are not enabled).
      CREATE TABLE conversation_items (
        conversation_id TEXT NOT NULL,
        seq             INTEGER NOT NULL CHECK (seq >= 1),
        id              TEXT NOT NULL UNIQUE,
        role            TEXT NOT NULL CHECK (role IN ('system', 'developer', 'user', 'assistant', 'tool')),
        message         TEXT NOT NULL CHECK (json_valid(message)),
        created_at      INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, seq)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    description: 'hourly usage rollup',
    sql: `
      -- Sums per subject, model and hour, kept with every usage write (same transaction): reports add whole hours
      -- from here and only the partial hours at the ends of their range from the raw rows. Filled from the rows
      -- already written.
      CREATE TABLE usage_hourly (
        subject           TEXT NOT NULL,
        model             TEXT NOT NULL,
        hour              INTEGER NOT NULL,
        requests          INTEGER NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        PRIMARY KEY (subject, model, hour)
      ) WITHOUT ROWID;
      CREATE INDEX usage_hourly_hour ON usage_hourly (hour);
      INSERT INTO usage_hourly (subject, model, hour, requests, prompt_tokens, completion_tokens)
        SELECT subject, model, CAST(at / 3600000 AS INTEGER) * 3600000, sum(requests), sum(prompt_tokens),
               sum(completion_tokens)
        FROM usage GROUP BY 1, 2, 3;
    `,
  },
  {
    version: 4,
    description: 'leases: requests in progress shared by the processes on the file',
    sql: `
      -- One row per live lease; expired rows are removed when their key is next taken from.
      CREATE TABLE leases (
        id         TEXT PRIMARY KEY NOT NULL,
        key        TEXT NOT NULL,
        expires_at REAL NOT NULL
      );
      CREATE INDEX leases_key_expires_at ON leases (key, expires_at);
    `,
  },
  {
    version: 5,
    description: 'request log: the bounded log of recent requests',
    sql: `
      -- id is the rowid, one above the largest when a row is added; pruning (after every append, in the same
      -- transaction) keeps the newest rows, so the largest is never removed and ids only grow. latency_ms is REAL,
      -- as measured. No index but the rowid: a page walks the newest rows first and stops at its limit, and over at
      -- most keep (10,000) rows that is cheaper than five more index updates on every one of the rows written.
      CREATE TABLE request_log (
        id                INTEGER PRIMARY KEY,
        at                INTEGER NOT NULL,
        route             TEXT NOT NULL,
        subject           TEXT,
        target            TEXT NOT NULL,
        status            TEXT NOT NULL,
        latency_ms        REAL NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        replica           TEXT NOT NULL
      );
    `,
  },
  {
    version: 6,
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
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (kind, principal, upstream, issuer)
      );
      CREATE INDEX upstream_credentials_connection ON upstream_credentials (principal, upstream);
    `,
  },
];

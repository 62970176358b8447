// The shared state of mcplex behind small interfaces: API keys, usage, the response cache and rate-limit counters.
// Implementations: memory (tests, one process) and SQLite (the default); PostgreSQL and Redis can follow, and the
// same contract suite runs against each.

/** What a key may reach. An absent list means no restriction on that axis; `admin` opens /admin. */
export interface KeyScopes {
  /** Public model names (or aliases) the key may use on /v1. */
  models?: string[];
  /** MCP server keys whose tools, resources and prompts the key may list and use. */
  servers?: string[];
  /** Exposed tool names or glob patterns (`*`, `?`) the key may list and call. */
  tools?: string[];
  admin?: boolean;
}

export interface KeyLimits {
  /** Requests per minute. */
  rpm?: number;
  /** Tokens (prompt + completion) per minute. */
  tpm?: number;
  /** Requests in progress at once. */
  maxConcurrent?: number;
}

export interface ApiKeyRecord {
  /** Public identifier, part of the key itself (`mcx_<id>_<secret>`); safe to show and log. */
  id: string;
  name: string;
  /** SHA-256 of the secret part, hex. The secret itself is never stored. */
  secretHash: string;
  scopes: KeyScopes;
  limits: KeyLimits;
  /** Milliseconds since the epoch. */
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

export interface KeyStore {
  /** Adds a key; a second key with the same id or name is refused (StoreError code DUPLICATE). */
  create(record: ApiKeyRecord): Promise<void>;
  get(id: string): Promise<ApiKeyRecord | undefined>;
  /** Every key, revoked ones included, oldest first. */
  list(): Promise<ApiKeyRecord[]>;
  /** Marks the key revoked; false when there is no such key or it already was. */
  revoke(id: string, at: number): Promise<boolean>;
}

export interface UsageEntry {
  /** Who used it: an API key id, or `server:<key>` for an MCP server's own identity. */
  subject: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  /** Milliseconds since the epoch. */
  at: number;
}

export interface UsageTotal {
  subject: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
}

export interface UsageFilter {
  subject?: string;
  model?: string;
  /** Inclusive lower bound on `at`. */
  since?: number;
  /** Exclusive upper bound on `at`. */
  until?: number;
}

export interface UsageStore {
  record(entry: UsageEntry): Promise<void>;
  /** Totals per subject and model for the entries that match, sorted by subject then model. */
  totals(filter?: UsageFilter): Promise<UsageTotal[]>;
}

export interface CacheEntry {
  /** The response body exactly as it was sent: a JSON document, or the whole SSE text of a stream. */
  body: string;
  kind: 'json' | 'sse';
  /** Milliseconds since the epoch. */
  createdAt: number;
  expiresAt: number;
}

export interface CacheStore {
  /** The entry, unless absent or expired (an expired entry is never returned). */
  get(key: string, now: number): Promise<CacheEntry | undefined>;
  set(key: string, entry: CacheEntry): Promise<void>;
  delete(key: string): Promise<void>;
  /** Removes expired entries; returns how many. */
  prune(now: number): Promise<number>;
}

export interface RateDecision {
  allowed: boolean;
  /** Whole units left in the window after this decision. */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
  /** When refused: milliseconds until `cost` would be allowed. */
  retryAfterMs: number;
}

export interface LimitStore {
  /**
   * GCRA over `limit` units per `periodMs`: atomically takes `cost` units from the bucket named `key` if they are
   * there (a burst of up to `limit` is allowed). A refused take changes nothing.
   */
  take(key: string, cost: number, limit: number, periodMs: number, now: number): Promise<RateDecision>;
  /** Gives back units taken earlier (a token estimate corrected down); never above a full bucket. */
  refund(key: string, amount: number, limit: number, periodMs: number, now: number): Promise<void>;
}

export interface Store {
  readonly kind: 'memory' | 'sqlite';
  readonly keys: KeyStore;
  readonly usage: UsageStore;
  readonly cache: CacheStore;
  readonly limits: LimitStore;
  close(): Promise<void>;
}

export type StoreErrorCode = 'DUPLICATE' | 'OPEN_FAILED' | 'MIGRATION_FAILED';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

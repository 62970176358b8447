// The shared state of mcplex behind small interfaces: API keys, usage, the response cache, rate-limit counters and
// server-side conversations.
// Implementations: memory (tests, one process), SQLite (the default) and PostgreSQL; the same contract suite runs
// against each.
import type { LoggedRequest, RequestLogEntry, UsageBucket, UsageTotal } from './records.js';
import type { Leases } from './coordination.js';

export type { LoggedRequest, RequestLogEntry, UsageBucket, UsageTotal } from './records.js';

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
  /** Records every entry in one write (the usage recorder's flush); all or none of them are kept. */
  recordMany(entries: readonly UsageEntry[]): Promise<void>;
  /** Totals per subject and model for the entries that match, sorted by subject then model. */
  totals(filter?: UsageFilter): Promise<UsageTotal[]>;
  /**
   * Totals per time bucket, subject and model over [since, until): buckets start at whole multiples of `bucketMs`
   * since the epoch (a bucket is `at` to `at + bucketMs`); only buckets with entries are returned, sorted by
   * `at`, then subject, then model. RangeError for a bucket below one second or a range of more than 2,000 buckets.
   */
  series(filter: UsageSeriesFilter): Promise<UsageBucket[]>;
}

export interface UsageSeriesFilter {
  subject?: string;
  model?: string;
  /** Inclusive lower bound on `at`. */
  since: number;
  /** Exclusive upper bound on `at`. */
  until: number;
  bucketMs: number;
}

export interface RequestLogFilter {
  route?: string;
  subject?: string;
  target?: string;
  status?: string;
  /** Inclusive lower bound on `at`. */
  since?: number;
  /** Exclusive upper bound on `at`. */
  until?: number;
}

export interface RequestLogStore {
  /**
   * Appends the entries in one write, then drops the oldest so that at most `keep` remain (a whole number ≥ 1;
   * RangeError otherwise).
   */
  appendMany(entries: readonly RequestLogEntry[], keep: number): Promise<void>;
  /** The newest entries that match, newest first, at most `limit` (1–500), only those with an id below `before`. */
  page(filter: RequestLogFilter, page: { limit: number; before?: number }): Promise<LoggedRequest[]>;
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

/** One bucket's part of a LimitStore.takeAll: GCRA over `limit` units per `periodMs`. */
export interface LimitTake {
  key: string;
  /** Units to take (≥ 0). */
  cost: number;
  limit: number;
  periodMs: number;
}

/**
 * A change to a bucket that is never refused: units taken earlier given back (negative, never below a full bucket)
 * or used beyond what was taken (positive, never beyond an empty bucket).
 */
export interface LimitCorrection {
  key: string;
  units: number;
  limit: number;
  periodMs: number;
}

export interface LimitBatch {
  takes: readonly LimitTake[];
  /** Applied first, whatever the takes decide. */
  corrections?: readonly LimitCorrection[];
  /** The caller's clock, milliseconds since the epoch (a shared store may go by its own instead). */
  now: number;
}

export interface LimitStore {
  /**
   * One atomic step: applies the corrections, then takes every take's cost if every bucket has it, and from none
   * otherwise (a burst of up to `limit` is allowed). One decision per take, in order, each saying whether its own
   * bucket had room and how it stands after the step. Throws RangeError for arguments that make no sense, before
   * anything changes.
   */
  takeAll(batch: LimitBatch): Promise<RateDecision[]>;
  /** One take on its own. */
  take(key: string, cost: number, limit: number, periodMs: number, now: number): Promise<RateDecision>;
  /** Gives back units taken earlier (a token estimate corrected down); never above a full bucket. */
  refund(key: string, amount: number, limit: number, periodMs: number, now: number): Promise<void>;
}

/** The roles a stored chat message may have: those of OpenAI's chat completions (`developer` included). */
export const CONVERSATION_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;

export type ConversationRole = (typeof CONVERSATION_ROLES)[number];

export interface ConversationRecord {
  /** `conv_` and 32 hex digits. */
  id: string;
  /** The principal id that created it; nobody else may see it. */
  owner: string;
  metadata: Record<string, string>;
  /** How many appends it has had: 0 when created, then exactly one more per append. */
  version: number;
  /** Milliseconds since the epoch. */
  createdAt: number;
}

export interface ConversationItem {
  /** `item_` and 32 hex digits. */
  id: string;
  conversationId: string;
  /** 1, 2, 3, … in the order appended, with no gaps. */
  seq: number;
  role: ConversationRole;
  /** The OpenAI chat message as it was sent or received (a JSON object; its `role` is `role`). */
  message: Record<string, unknown>;
  /** Milliseconds since the epoch. */
  createdAt: number;
}

export interface ConversationPage {
  /** At most this many, a whole number ≥ 1. */
  limit: number;
  /** The id of the last conversation of the previous page; an id that is not the owner's gives an empty page. */
  after?: string;
}

export interface ItemPage {
  /** At most this many, a whole number ≥ 1. */
  limit: number;
  /** Only items after this seq in `order` (above it for asc, below it for desc). */
  after?: number;
  order: 'asc' | 'desc';
}

export interface AppendResult {
  /** The conversation's version after this append. */
  version: number;
  /** The items written, in order. */
  items: ConversationItem[];
}

export interface ConversationStore {
  /** A new, empty conversation (version 0) owned by `owner`. */
  create(owner: string, metadata: Record<string, string>): Promise<ConversationRecord>;
  get(id: string): Promise<ConversationRecord | undefined>;
  /** The owner's conversations, newest first (creation order breaking ties). */
  list(owner: string, page: ConversationPage): Promise<ConversationRecord[]>;
  /** Removes the conversation and its items; false when there was none. */
  delete(id: string): Promise<boolean>;
  /**
   * Atomically appends `messages` (at least one, each an object with a role of CONVERSATION_ROLES; TypeError
   * otherwise) as consecutive items and adds 1 to the version. When `expectedVersion` is given and is not the
   * current version, nothing is written (StoreError CONFLICT). An unknown id is StoreError NOT_FOUND.
   */
  append(id: string, messages: Record<string, unknown>[], expectedVersion?: number): Promise<AppendResult>;
  /** A page of the conversation's items (none for an unknown id). */
  items(id: string, page: ItemPage): Promise<ConversationItem[]>;
  /** One item by its id, if it belongs to the conversation. */
  item(id: string, itemId: string): Promise<ConversationItem | undefined>;
}

/**
 * What a stored credential is: a principal's tokens for an upstream server, an OAuth client registration mcplex
 * holds at an authorization server (shared by every principal), or a sign-in in progress (its state, used once).
 */
export const CREDENTIAL_KINDS = ['tokens', 'client', 'flow'] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

export interface CredentialKey {
  kind: CredentialKind;
  /** The principal id it belongs to; '' for what all principals share (a client registration). */
  principal: string;
  /** The upstream server's key in the configuration. */
  upstream: string;
  /** The authorization server's issuer; for a sign-in in progress, its state's id. */
  issuer: string;
}

export interface CredentialRecord extends CredentialKey {
  /** The value sealed by the vault (AES-GCM, bound to this key): the store never holds a secret in the clear. */
  sealed: string;
  /** Milliseconds since the epoch. */
  updatedAt: number;
  /** When it stops being usable (a sign-in's deadline); undefined: kept until deleted. */
  expiresAt: number | undefined;
}

export interface CredentialStore {
  /** Writes the record, replacing the one with the same key. */
  put(record: CredentialRecord): Promise<void>;
  /** The record with this key, unless it has expired by `now`. */
  get(key: CredentialKey, now: number): Promise<CredentialRecord | undefined>;
  /** Reads and deletes the record in one step, so that only one caller gets it (a sign-in's state is used once). */
  take(key: CredentialKey, now: number): Promise<CredentialRecord | undefined>;
  /** False when there was none. */
  delete(key: CredentialKey): Promise<boolean>;
  /** The unexpired records of a kind, of one principal when given, ordered by upstream, then issuer. */
  list(kind: CredentialKind, principal: string | undefined, now: number): Promise<CredentialRecord[]>;
  /** Deletes every credential of the principal for the upstream (a connection revoked); how many there were. */
  deleteConnection(principal: string, upstream: string): Promise<number>;
  /** Deletes what expired by `now`; how many. */
  prune(now: number): Promise<number>;
}

/** Whether a store on a server can be reached (embedded stores have no such state). */
export interface StoreHealth {
  readonly state: 'ready' | 'unavailable';
  /** Why it is unavailable, without credentials. */
  readonly lastError?: string;
  /** Milliseconds since the epoch when the state last changed. */
  readonly since: number;
}

export interface Store {
  readonly kind: 'memory' | 'sqlite' | 'postgres';
  /** The schema version the store is at after opening (its migrations applied); 0 for the memory store. */
  readonly schemaVersion: number;
  readonly keys: KeyStore;
  readonly usage: UsageStore;
  readonly cache: CacheStore;
  readonly limits: LimitStore;
  readonly conversations: ConversationStore;
  /** The bounded log of recent requests. */
  readonly requests: RequestLogStore;
  /** Sealed OAuth credentials for upstream servers, per principal. */
  readonly credentials: CredentialStore;
  /**
   * Counting leases (requests in progress) kept in the store, so that every process on it shares them when no
   * Redis is configured: slower than Redis, and correct across processes.
   */
  readonly leases: Leases;
  /** Whether the store's server can be reached; absent for embedded stores. */
  health?(): StoreHealth;
  close(): Promise<void>;
}

/** UNAVAILABLE: a network store (Redis) is unreachable or too slow; the call may or may not have taken effect. */
export type StoreErrorCode =
  'DUPLICATE' | 'OPEN_FAILED' | 'MIGRATION_FAILED' | 'CONFLICT' | 'NOT_FOUND' | 'UNAVAILABLE';

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

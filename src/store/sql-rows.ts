// What the SQL stores (SQLite and PostgreSQL) share: the rows their tables hold, the columns they select, and how
// a row becomes a record. The schemas match column for column, so one mapping serves both.
import type {
  ApiKeyRecord,
  CacheEntry,
  ConversationItem,
  ConversationRecord,
  ConversationRole,
  CredentialKind,
  CredentialRecord,
  LoggedRequest,
  RequestLogEntry,
  RequestLogFilter,
  UsageBucket,
  UsageTotal,
} from './store.js';

export const KEY_COLUMNS = 'id, name, secret_hash, scopes, limits, created_at, expires_at, revoked_at';
export const CONVERSATION_COLUMNS = 'id, owner, metadata, version, created_at';
export const ITEM_COLUMNS = 'id, conversation_id, seq, role, message, created_at';
export const REQUEST_COLUMNS =
  'id, at, route, subject, target, status, latency_ms, prompt_tokens, completion_tokens, replica';

export interface KeyRow {
  id: string;
  name: string;
  secret_hash: string;
  scopes: string;
  limits: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

export function toKey(row: KeyRow): ApiKeyRecord {
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

export interface TotalRow {
  subject: string;
  model: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
}

export function toUsageTotal(row: TotalRow): UsageTotal {
  return {
    subject: row.subject,
    model: row.model,
    requests: row.requests,
    promptTokens: row.prompt_tokens,
    completionTokens: row.completion_tokens,
  };
}

export function toUsageBucket(row: TotalRow & { at: number }): UsageBucket {
  return { at: row.at, ...toUsageTotal(row) };
}

export interface CacheRow {
  body: string;
  kind: CacheEntry['kind'];
  created_at: number;
  expires_at: number;
}

export interface ConversationRow {
  id: string;
  owner: string;
  metadata: string;
  version: number;
  created_at: number;
}

export interface ItemRow {
  id: string;
  conversation_id: string;
  seq: number;
  role: ConversationRole;
  message: string;
  created_at: number;
}

export function toConversation(row: ConversationRow): ConversationRecord {
  return {
    id: row.id,
    owner: row.owner,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    version: row.version,
    createdAt: row.created_at,
  };
}

export function toItem(row: ItemRow): ConversationItem {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    seq: row.seq,
    role: row.role,
    message: JSON.parse(row.message) as Record<string, unknown>,
    createdAt: row.created_at,
  };
}

export interface RequestRow {
  id: number;
  at: number;
  route: string;
  subject: string | null;
  target: string;
  status: string;
  latency_ms: number;
  prompt_tokens: number;
  completion_tokens: number;
  replica: string;
}

/** The columns an append writes, in the order of requestLogValues. */
export const REQUEST_LOG_COLUMNS =
  'at, route, subject, target, status, latency_ms, prompt_tokens, completion_tokens, replica';

export function requestLogValues(e: RequestLogEntry): (string | number | null)[] {
  return [e.at, e.route, e.subject, e.target, e.status, e.latencyMs, e.promptTokens, e.completionTokens, e.replica];
}

export function toLoggedRequest(row: RequestRow): LoggedRequest {
  return {
    id: row.id,
    at: row.at,
    route: row.route,
    subject: row.subject,
    target: row.target,
    status: row.status,
    latencyMs: row.latency_ms,
    promptTokens: row.prompt_tokens,
    completionTokens: row.completion_tokens,
    replica: row.replica,
  };
}

/**
 * A page of request_log for a checked filter and page, newest first: the primary key is walked from the newest row
 * and the scan stops at `limit` matches. `placeholder` as in totalsQuery.
 */
export function requestPageQuery(
  filter: RequestLogFilter,
  page: { limit: number; before?: number },
  placeholder: (name: string) => string,
): { sql: string; params: Record<string, string | number> } {
  const params: Record<string, string | number> = {};
  const conditions: string[] = [];
  const add = (condition: (value: string) => string, name: string, value: string | number | undefined) => {
    if (value === undefined) return;
    params[name] = value;
    conditions.push(condition(placeholder(name)));
  };
  for (const column of ['route', 'subject', 'target', 'status'] as const) {
    add((v) => `${column} = ${v}`, column, filter[column]);
  }
  add((v) => `at >= ${v}`, 'since', filter.since);
  add((v) => `at < ${v}`, 'until', filter.until);
  add((v) => `id < ${v}`, 'before', page.before);
  params.limit = page.limit;
  const where = conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`;
  return {
    sql: `SELECT ${REQUEST_COLUMNS} FROM request_log${where} ORDER BY id DESC LIMIT ${placeholder('limit')}`,
    params,
  };
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export const CREDENTIAL_COLUMNS = 'kind, principal, upstream, issuer, sealed, updated_at, expires_at';

export interface CredentialRow {
  kind: string;
  principal: string;
  upstream: string;
  issuer: string;
  sealed: string;
  updated_at: number;
  expires_at: number | null;
}

export function toCredential(row: CredentialRow): CredentialRecord {
  return {
    kind: row.kind as CredentialKind,
    principal: row.principal,
    upstream: row.upstream,
    issuer: row.issuer,
    sealed: row.sealed,
    updatedAt: row.updated_at,
    expiresAt: row.expires_at ?? undefined,
  };
}

export const credentialValues = (r: CredentialRecord): (string | number | null)[] => [
  r.kind,
  r.principal,
  r.upstream,
  r.issuer,
  r.sealed,
  r.updatedAt,
  r.expiresAt ?? null,
];

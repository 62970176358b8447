// API keys: `mcx_<id>_<secret>`. The id is public (it names the key in lists, logs and usage); only a SHA-256 of
// the 256-bit secret is stored, and the presented secret's hash is compared in constant time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, KeyLimits, KeyScopes, KeyStore } from '../../store/store.js';

const KEY_PATTERN = /^mcx_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export interface GeneratedKey {
  id: string;
  /** The whole key, shown once. */
  token: string;
  secretHash: string;
}

export function generateKey(): GeneratedKey {
  const id = randomBytes(8).readBigUInt64BE().toString(36).padStart(13, '0').slice(-12);
  const secret = randomBytes(32).toString('base64url');
  return { id, token: `mcx_${id}_${secret}`, secretHash: hashSecret(secret) };
}

export function parseKey(token: string): { id: string; secret: string } | undefined {
  const match = KEY_PATTERN.exec(token);
  return match ? { id: match[1]!, secret: match[2]! } : undefined;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/**
 * Who is asking: a key's holder, the holder of an access token from a trusted issuer, an MCP server's own identity,
 * or anyone (keyless development mode).
 */
export interface Principal {
  kind: 'key' | 'user' | 'server' | 'anonymous';
  /**
   * The key id, `<issuer name>:<subject>`, `server:<key>`, or `anonymous`: the subject of usage records and limit
   * buckets.
   */
  id: string;
  name: string;
  scopes: KeyScopes;
  limits: KeyLimits;
  /** The OAuth scopes an access token granted (its holder's only). */
  grants?: ReadonlySet<string> | undefined;
}

export const ANONYMOUS: Principal = Object.freeze({
  kind: 'anonymous',
  id: 'anonymous',
  name: 'anonymous',
  scopes: {},
  limits: {},
});

export type AuthFailure =
  | 'missing'
  | 'malformed'
  | 'unknown'
  | 'revoked'
  | 'expired'
  /** An access token that does not verify (OAuth). */
  | 'invalid_token'
  /** An access token without a scope its issuer requires (OAuth). */
  | 'insufficient_scope'
  /** An access token in the query string, which is never accepted. */
  | 'query_token'
  /** The issuer's keys could not be fetched: the token could not be checked. */
  | 'unavailable';

export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; reason: AuthFailure; message?: string | undefined; scopes?: readonly string[] | undefined };

export interface Authenticator {
  /** Checks an `Authorization: Bearer …` header (or a bare key, as `x-api-key` carries it). */
  authenticate(credential: string | undefined): Promise<AuthResult>;
  /** Drops a cached key at once (after a revocation in this process). */
  forget(id: string): void;
}

/**
 * Keys are cached for `cacheTtlMs` after a store read, so the request path rarely touches the store; a key
 * revoked by another replica stops working within that time. Ids that name no key are cached too (a flood of
 * made-up keys does not reach the store), and the cache holds `maxEntries` ids at most, dropping the one read
 * longest ago, so that made-up ids cannot grow it without bound.
 */
export function createAuthenticator(
  keys: KeyStore,
  options: { cacheTtlMs?: number; maxEntries?: number; now?: () => number } = {},
): Authenticator {
  const ttl = options.cacheTtlMs ?? 5_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { record: ApiKeyRecord | undefined; hash: Buffer | undefined; at: number }>();

  async function lookup(id: string) {
    const cached = cache.get(id);
    const time = now();
    if (cached && time - cached.at < ttl) return cached;
    const record = await keys.get(id);
    const entry = { record, hash: record ? Buffer.from(record.secretHash, 'hex') : undefined, at: time };
    // Map order is insertion order: re-inserting puts this id last, and the first one is the oldest read.
    cache.delete(id);
    cache.set(id, entry);
    if (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
    return entry;
  }

  return {
    async authenticate(credential) {
      if (credential === undefined || credential === '') return { ok: false, reason: 'missing' };
      // The scheme is case-insensitive (RFC 9110): `bearer` and `BEARER` are Bearer too.
      const token = /^bearer\s/i.test(credential) ? credential.slice(7).trim() : credential.trim();
      const parsed = parseKey(token);
      if (!parsed) return { ok: false, reason: 'malformed' };
      const { record, hash } = await lookup(parsed.id);
      const presented = Buffer.from(hashSecret(parsed.secret), 'hex');
      if (!record || !hash || hash.length !== presented.length || !timingSafeEqual(hash, presented)) {
        return { ok: false, reason: 'unknown' };
      }
      if (record.revokedAt !== null) return { ok: false, reason: 'revoked' };
      if (record.expiresAt !== null && record.expiresAt <= now()) return { ok: false, reason: 'expired' };
      return {
        ok: true,
        principal: { kind: 'key', id: record.id, name: record.name, scopes: record.scopes, limits: record.limits },
      };
    },
    forget(id) {
      cache.delete(id);
    },
  };
}

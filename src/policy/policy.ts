// The policies every request passes, composed once: who is asking (API keys, access tokens of trusted OAuth
// issuers, or anyone in keyless development mode), what they may reach (scopes), how fast (rate limits) and what
// they used (usage accounting).
import type { IncomingMessage } from 'node:http';
import type { LimitStore, Store } from '../store/store.js';
import { subscribeForGood, type Coordination, type Leases } from '../store/coordination.js';
import { createAuthenticator, ANONYMOUS } from './auth/keys.js';
import type { AuthResult, Authenticator } from './auth/keys.js';
import { createKeyService } from './auth/key-service.js';
import type { KeyService } from './auth/key-service.js';
import type { OAuthVerifier } from './auth/oauth.js';
import { createRateLimiter } from './limits/rate-limiter.js';
import type { RateLimiter } from './limits/rate-limiter.js';
import { createUsageRecorder } from './usage-recorder.js';
import type { UsageRecorder } from './usage-recorder.js';

export type AuthMode = 'none' | 'keys';

export interface Policy {
  readonly mode: AuthMode;
  readonly store: Store;
  readonly authenticator: Authenticator;
  /** Access tokens of trusted issuers, when `auth.oauth` is configured. */
  readonly oauth: OAuthVerifier | undefined;
  readonly limiter: RateLimiter;
  readonly usage: UsageRecorder;
  readonly keys: KeyService;
  /**
   * The request's principal: its key (`Authorization: Bearer`, or `x-api-key`), the holder of its access token
   * (`Authorization: Bearer`, with OAuth), or anyone in keyless mode. A credential in the query string is refused.
   */
  authenticate(req: IncomingMessage): Promise<AuthResult>;
  close(): Promise<void>;
}

/** Where a revoked key's id is announced to every process of the deployment. */
const REVOKED_TOPIC = 'keys:revoked';

const OK_ANONYMOUS: AuthResult = Object.freeze({ ok: true, principal: ANONYMOUS });
const QUERY_TOKEN: AuthResult = Object.freeze({ ok: false, reason: 'query_token' });

/** Whether a URL's query carries a credential (`access_token`, as RFC 6750 section 2.3 would have it, or `api_key`). */
function inQuery(url: string | undefined): boolean {
  const at = url?.indexOf('?') ?? -1;
  if (at === -1) return false;
  const query = new URLSearchParams(url!.slice(at + 1));
  return query.has('access_token') || query.has('api_key');
}

/** The token of an `Authorization: Bearer …` value (the scheme is case-insensitive, RFC 9110). */
function bearerToken(credential: string): string | undefined {
  return /^bearer\s/i.test(credential) ? credential.slice(7).trim() : undefined;
}

export function createPolicy(
  store: Store,
  options: {
    mode: AuthMode;
    models: readonly string[];
    servers: readonly string[];
    /** Where rate-limit counters live (Redis, the store, or this process: the composition root decides). */
    limits: LimitStore;
    /** Where requests in progress hold their leases (likewise). */
    leases: Leases;
    /** What the processes of one deployment share: revocations are announced on it. */
    coordination: Coordination;
    /** How long a request's concurrency slot outlives its last renewal (the limiter's default when not given). */
    leaseTtlMs?: number;
    /** How long a key read from the store is trusted (the authenticator's default when not given). */
    keyCacheMs?: number;
    oauth?: OAuthVerifier;
  },
): Policy {
  const authenticator = createAuthenticator(
    store.keys,
    options.keyCacheMs === undefined ? {} : { cacheTtlMs: options.keyCacheMs },
  );
  const usage = createUsageRecorder(store.usage);
  const { coordination } = options;
  // A key revoked by another process is refused here as soon as the message arrives, not when the cache expires.
  const listening = subscribeForGood(coordination, REVOKED_TOPIC, (id) => authenticator.forget(id));
  const limiter = createRateLimiter(options.limits, { leases: options.leases, leaseTtlMs: options.leaseTtlMs });
  return {
    mode: options.mode,
    store,
    authenticator,
    limiter,
    usage,
    keys: createKeyService(store.keys, options, authenticator, (id) => coordination.publish(REVOKED_TOPIC, id)),
    oauth: options.oauth,
    authenticate(req) {
      if (options.mode === 'none') return Promise.resolve(OK_ANONYMOUS);
      if (inQuery(req.url)) return Promise.resolve(QUERY_TOKEN);
      const header = req.headers.authorization ?? req.headers['x-api-key'];
      const credential = Array.isArray(header) ? header[0] : header;
      const oauth = options.oauth;
      if (oauth && credential !== undefined && req.headers.authorization !== undefined) {
        const token = bearerToken(credential);
        // An API key is `mcx_…`; any other bearer token is an access token.
        if (token !== undefined && !token.startsWith('mcx_')) return oauth.verify(token);
      }
      return authenticator.authenticate(credential);
    },
    async close() {
      await listening();
      await limiter.close();
      await usage.close();
    },
  };
}

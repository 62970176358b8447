// mcplex as an OAuth 2.1 resource server (the MCP authorization specification): access tokens from configured
// trusted issuers, JWTs verified with jose against each issuer's JWKS (fetched from its metadata or configured,
// cached, fetched again when a token names a key it does not hold), their issuer, audience (mcplex's canonical
// URLs), expiry and not-before checked, their scopes held against what the issuer requires. A verified token
// becomes a principal of its own (`<issuer name>:<subject>`), never an API key, and is never sent on upstream.
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { httpsOrLoopback } from '../../config/schema.js';
import type { KeyLimits } from '../../store/store.js';
import type { Principal } from './keys.js';

export interface OAuthIssuerConfig {
  /** The issuer identifier, exactly as tokens carry it in `iss`. */
  issuer: string;
  /** A short name: the first part of the principals' ids (`<name>:<sub>`). Default: the issuer's host. */
  name?: string | undefined;
  /** Where the signing keys are; default: the `jwks_uri` of the issuer's metadata (RFC 8414, else OIDC). */
  jwksUri?: string | undefined;
  /** Accepted `aud` values; default: mcplex's resource URLs (`<resource>/mcp`, `<resource>/v1`, `<resource>`). */
  audience?: readonly string[] | undefined;
  /** Scopes every token of this issuer must carry. */
  requiredScopes?: readonly string[] | undefined;
  /** The claim that names the user (default `sub`), and the one shown as their name (default: the same). */
  subjectClaim?: string | undefined;
  nameClaim?: string | undefined;
  /** A scope that makes the token's holder an administrator (/admin, /metrics). */
  adminScope?: string | undefined;
  /** Limits of every principal of this issuer, as an API key's. */
  limits?: KeyLimits | undefined;
  /** Signature algorithms accepted (default: RS256, PS256, ES256, EdDSA and their larger forms). */
  algorithms?: readonly string[] | undefined;
  /**
   * Opaque (non-JWT) tokens of this issuer are checked by token introspection (RFC 7662), as this client; the
   * endpoint defaults to the metadata's `introspection_endpoint`.
   */
  introspection?: { endpoint?: string | undefined; clientId: string; clientSecret: string } | undefined;
}

export interface OAuthConfig {
  /** mcplex's canonical base URL (`https://gateway.example.com`): what tokens are issued for. */
  resource: string;
  issuers: readonly OAuthIssuerConfig[];
  /** Scopes named in the protected-resource metadata. Default: every scope the issuers require. */
  scopesSupported?: readonly string[] | undefined;
  /** Leeway for `exp` and `nbf`, in seconds (default 30). */
  clockToleranceSec?: number | undefined;
}

export type OAuthFailure =
  | { ok: false; reason: 'invalid_token' | 'unavailable'; message: string }
  | { ok: false; reason: 'insufficient_scope'; message: string; scopes: string[] };

export type OAuthResult = { ok: true; principal: Principal; scopes: ReadonlySet<string> } | OAuthFailure;

export interface OAuthVerifier {
  readonly config: OAuthConfig;
  /** Verifies a bearer token that is not an API key. */
  verify(token: string): Promise<OAuthResult>;
  /** The RFC 9728 metadata of one of mcplex's resources (`/mcp` or `/v1`, else the base URL). */
  metadata(path: '/mcp' | '/v1' | ''): Record<string, unknown>;
  /** Where that metadata is served: the well-known URL with the resource's path (RFC 9728 section 3.1). */
  metadataUrl(path: '/mcp' | '/v1' | ''): string;
  /** Scopes to ask for in a challenge. */
  readonly challengeScopes: readonly string[];
}

const DEFAULT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** Verified tokens kept, at most (each until its expiry): a client sends the same token for a while. */
const MAX_CACHED_TOKENS = 4096;
/** The longest token looked at: a JWT of a few claims is well under this. */
const MAX_TOKEN_LENGTH = 8192;
/** How long discovery and JWKS requests may take. */
const FETCH_TIMEOUT_MS = 5000;

/** The metadata URLs of an issuer, in the order RFC 8414 section 3.1 and OIDC Discovery give them. */
function metadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
    `${url.origin}/.well-known/openid-configuration${path}`,
    `${url.origin}${path}/.well-known/openid-configuration`,
  ];
}

async function fetchJson(url: string): Promise<unknown> {
  const response = await fetch(url, {
    headers: { accept: 'application/json' },
    redirect: 'error',
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response.json();
}

/** An issuer's metadata, whose `issuer` must be the issuer itself (RFC 8414 section 3.3). */
async function discoverMetadata(issuer: string): Promise<Record<string, unknown>> {
  const failures: string[] = [];
  for (const url of metadataUrls(issuer)) {
    let metadata: Record<string, unknown>;
    try {
      metadata = (await fetchJson(url)) as Record<string, unknown>;
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
      continue;
    }
    if (metadata.issuer !== issuer) {
      throw new Error(`the metadata at ${url} names issuer ${JSON.stringify(metadata.issuer)}, not ${issuer}`);
    }
    return metadata;
  }
  throw new Error(`no metadata for issuer ${issuer}: ${failures.join('; ')}`);
}

/** A URL of an issuer's metadata: HTTPS (HTTP on loopback), else an error naming the field. */
function metadataUrl(metadata: Record<string, unknown>, field: string, issuer: string): string {
  const value = metadata[field];
  if (typeof value !== 'string' || !httpsOrLoopback(value)) throw new Error(`${issuer} has no usable ${field}`);
  return value;
}

/** The issuer's `jwks_uri` from its metadata. */
export async function discoverJwksUri(issuer: string): Promise<string> {
  return metadataUrl(await discoverMetadata(issuer), 'jwks_uri', issuer);
}

/** The scopes a token grants: `scope` (space-separated, RFC 9068) or `scp` (a list, as some issuers send). */
function grantedScopes(payload: JWTPayload): Set<string> {
  const scope = payload.scope;
  if (typeof scope === 'string') return new Set(scope.split(' ').filter((s) => s !== ''));
  const scp = payload.scp;
  if (Array.isArray(scp)) return new Set(scp.filter((s): s is string => typeof s === 'string'));
  if (typeof scp === 'string') return new Set(scp.split(' ').filter((s) => s !== ''));
  return new Set();
}

/** A principal id of bounded length: long subjects are named by a digest. */
function principalId(name: string, subject: string): string {
  const safe = /^[\w.@:|+-]{1,64}$/.test(subject)
    ? subject
    : `~${createHash('sha256').update(subject).digest('base64url').slice(0, 22)}`;
  return `${name}:${safe}`;
}

interface Issuer {
  config: OAuthIssuerConfig;
  name: string;
  audience: string[];
  keys: JWTVerifyGetKey | undefined;
  loading: Promise<JWTVerifyGetKey> | undefined;
  introspectionEndpoint: string | undefined;
  /** The issuer's metadata, fetched once for its keys and its introspection endpoint alike (again after a failure). */
  metadata: Promise<Record<string, unknown>> | undefined;
}

export function createOAuthVerifier(
  config: OAuthConfig,
  options: {
    /** The shortest time between two fetches of a key set (30 s): unknown key ids cannot make it more often. */
    jwksCooldownMs?: number;
  } = {},
): OAuthVerifier {
  const resource = config.resource.replace(/\/+$/, '');
  const tolerance = config.clockToleranceSec ?? 30;
  const issuers = new Map<string, Issuer>();
  for (const issuer of config.issuers) {
    issuers.set(issuer.issuer, {
      config: issuer,
      name: issuer.name ?? new URL(issuer.issuer).host,
      audience: [...(issuer.audience ?? [`${resource}/mcp`, `${resource}/v1`, resource])],
      keys: undefined,
      loading: undefined,
      introspectionEndpoint: issuer.introspection?.endpoint,
      metadata: undefined,
    });
  }
  const challengeScopes = [...new Set(config.issuers.flatMap((i) => i.requiredScopes ?? []))];
  const scopesSupported = [...(config.scopesSupported ?? challengeScopes)];
  const cache = new Map<string, { result: OAuthResult; until: number }>();
  const introspecting = config.issuers.some((issuer) => issuer.introspection !== undefined);

  function metadataOf(issuer: Issuer): Promise<Record<string, unknown>> {
    issuer.metadata ??= discoverMetadata(issuer.config.issuer).catch((error: unknown) => {
      issuer.metadata = undefined;
      throw error;
    });
    return issuer.metadata;
  }

  /** The issuer's key set, set up once (discovery on first use; a failed discovery is tried again next time). */
  function keysOf(issuer: Issuer): Promise<JWTVerifyGetKey> {
    if (issuer.keys) return Promise.resolve(issuer.keys);
    issuer.loading ??= (async () => {
      const uri = issuer.config.jwksUri ?? metadataUrl(await metadataOf(issuer), 'jwks_uri', issuer.config.issuer);
      issuer.keys = createRemoteJWKSet(new URL(uri), {
        timeoutDuration: FETCH_TIMEOUT_MS,
        // A token signed with a key not yet seen fetches the set again, at most once per cooldown.
        cooldownDuration: options.jwksCooldownMs ?? 30_000,
        cacheMaxAge: 10 * 60_000,
      });
      return issuer.keys;
    })().finally(() => (issuer.loading = undefined));
    return issuer.loading;
  }

  const invalid = (message: string): OAuthFailure => ({ ok: false, reason: 'invalid_token', message });

  /** Checks the claims of a verified token (signature or introspection) against the issuer's rules. */
  function accept(issuer: Issuer, payload: JWTPayload): { result: OAuthResult; until: number } {
    const subjectClaim = issuer.config.subjectClaim ?? 'sub';
    // A client's own token (client credentials) may name no user: its subject is then the client (RFC 9068).
    const subject = payload[subjectClaim] ?? (subjectClaim === 'sub' ? payload.client_id : undefined);
    if (typeof subject !== 'string' || subject === '') {
      return { result: invalid(`the access token has no "${subjectClaim}" claim`), until: 0 };
    }
    const scopes = grantedScopes(payload);
    const missing = (issuer.config.requiredScopes ?? []).filter((s) => !scopes.has(s));
    const until = (payload.exp ?? 0) * 1000;
    if (missing.length > 0) {
      return {
        result: {
          ok: false,
          reason: 'insufficient_scope',
          message: `the access token lacks the scope ${missing.join(', ')}`,
          scopes: [...(issuer.config.requiredScopes ?? [])],
        },
        until,
      };
    }
    const shown = issuer.config.nameClaim === undefined ? subject : payload[issuer.config.nameClaim];
    const principal: Principal = {
      kind: 'user',
      id: principalId(issuer.name, subject),
      name: typeof shown === 'string' && shown !== '' ? shown.slice(0, 256) : subject.slice(0, 256),
      scopes: issuer.config.adminScope !== undefined && scopes.has(issuer.config.adminScope) ? { admin: true } : {},
      limits: { ...issuer.config.limits },
      grants: scopes,
    };
    return { result: { ok: true, principal, scopes }, until };
  }

  /**
   * An opaque token, asked of the issuers that introspect (RFC 7662) in turn: active, for this resource, from that
   * issuer, not expired.
   */
  async function introspect(token: string): Promise<{ result: OAuthResult; until: number }> {
    for (const issuer of issuers.values()) {
      const client = issuer.config.introspection;
      if (!client) continue;
      let answer: JWTPayload & { active?: unknown };
      try {
        issuer.introspectionEndpoint ??= metadataUrl(
          await metadataOf(issuer),
          'introspection_endpoint',
          issuer.config.issuer,
        );
        const response = await fetch(issuer.introspectionEndpoint, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
            authorization: `Basic ${Buffer.from(
              `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`,
            ).toString('base64')}`,
          },
          body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
          redirect: 'error',
          signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        answer = (await response.json()) as typeof answer;
      } catch {
        const message = `the access token could not be checked with ${issuer.config.issuer}`;
        return { result: { ok: false, reason: 'unavailable', message }, until: 0 };
      }
      if (answer.active !== true) continue;
      if (answer.iss !== undefined && answer.iss !== issuer.config.issuer) continue;
      const audiences = Array.isArray(answer.aud) ? answer.aud : answer.aud === undefined ? [] : [answer.aud];
      if (!audiences.some((a) => issuer.audience.includes(a))) {
        return { result: invalid('the access token is not for this resource (audience)'), until: 0 };
      }
      const now = Date.now() / 1000;
      if (typeof answer.exp !== 'number' || answer.exp + tolerance < now) {
        return { result: invalid('the access token has expired'), until: 0 };
      }
      if (typeof answer.nbf === 'number' && answer.nbf - tolerance > now) {
        return { result: invalid('the access token is not valid yet'), until: 0 };
      }
      return accept(issuer, answer);
    }
    return { result: invalid('the access token is neither an API key nor a JWT, nor known to an issuer'), until: 0 };
  }

  async function verifyUncached(token: string): Promise<{ result: OAuthResult; until: number }> {
    let claims: JWTPayload;
    try {
      claims = decodeJwt(token);
    } catch {
      if (introspecting) return introspect(token);
      return { result: invalid('the access token is neither an API key nor a JWT'), until: 0 };
    }
    const issuer = typeof claims.iss === 'string' ? issuers.get(claims.iss) : undefined;
    if (!issuer) return { result: invalid('the access token is not from a trusted issuer'), until: 0 };
    let payload: JWTPayload;
    try {
      const keys = await keysOf(issuer);
      ({ payload } = await jwtVerify(token, keys, {
        issuer: issuer.config.issuer,
        audience: issuer.audience,
        algorithms: [...(issuer.config.algorithms ?? DEFAULT_ALGORITHMS)],
        clockTolerance: tolerance,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      if (!(error instanceof joseErrors.JOSEError) || error instanceof joseErrors.JWKSTimeout) {
        // The issuer's keys could not be had: the token may be fine, so no challenge to sign in again.
        const message = `the signing keys of ${issuer.config.issuer} could not be fetched`;
        return { result: { ok: false, reason: 'unavailable', message }, until: 0 };
      }
      return { result: invalid(describeFailure(error)), until: 0 };
    }
    return accept(issuer, payload);
  }

  return {
    config,
    challengeScopes,
    async verify(token) {
      if (token.length > MAX_TOKEN_LENGTH) return invalid('the access token is too long');
      const now = Date.now();
      const cached = cache.get(token);
      if (cached && cached.until > now) return cached.result;
      if (cached) cache.delete(token);
      const verified = await verifyUncached(token);
      // Only what holds until the token expires is kept: a verified token, or one verified but short of scope.
      if (verified.until > now) {
        if (cache.size >= MAX_CACHED_TOKENS) cache.delete(cache.keys().next().value!);
        cache.set(token, verified);
      }
      return verified.result;
    },
    metadata(path) {
      return {
        resource: `${resource}${path}`,
        authorization_servers: config.issuers.map((i) => i.issuer),
        bearer_methods_supported: ['header'],
        ...(scopesSupported.length > 0 ? { scopes_supported: scopesSupported } : {}),
        resource_name: 'mcplex',
      };
    },
    metadataUrl(path) {
      return `${resource}/.well-known/oauth-protected-resource${path}`;
    },
  };
}

/** What went wrong with a token, for the client (no key material, no claims' values). */
function describeFailure(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'the access token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return 'the access token is not for this resource (audience)';
    if (error.claim === 'nbf') return 'the access token is not valid yet';
    if (error.claim === 'iss') return 'the access token is not from a trusted issuer';
    return `the access token's "${error.claim}" claim is not valid`;
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'the access token signature is not valid';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'the access token is signed with an unknown key';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'the access token is signed with an algorithm not allowed';
  return 'the access token is not valid';
}

// mcplex as an OAuth client of upstream MCP servers, per principal: each principal signs in to an upstream for
// itself, and its calls there carry its own token only. The protocol work (protected-resource and authorization
// server discovery with the issuer check, client registration or a client ID metadata document, PKCE, the
// `resource` parameter, the callback's `iss` check, refresh) is the MCP SDK's auth(); what is mcplex's is where
// things live: tokens, registrations and sign-ins in progress are sealed (vault.ts) in the store, keyed by
// principal, upstream and issuer, so that any replica can use or finish them; what an upstream names is fetched
// through the guarded fetch (guarded-fetch.ts).
import { createHash, randomBytes } from 'node:crypto';
import { auth, extractWWWAuthenticateParams } from '@modelcontextprotocol/client';
import type {
  OAuthClientInformationContext,
  OAuthClientMetadata,
  OAuthClientProvider,
  OAuthDiscoveryState,
  StoredOAuthClientInformation,
  StoredOAuthTokens,
} from '@modelcontextprotocol/client';
import type { CredentialKey, CredentialStore } from '../../store/store.js';
import type { Leases } from '../../store/coordination.js';
import { guardedFetch } from './guarded-fetch.js';
import type { FetchPolicy, GuardedFetch } from './guarded-fetch.js';
import type { Vault } from './vault.js';

/** An upstream server whose calls need each principal's own OAuth token. */
export interface OAuthUpstream {
  /** Its key in the configuration. */
  name: string;
  /** Its MCP endpoint: the protected resource. */
  url: string;
  /** A client registered with its authorization server in advance; else a metadata document or registration. */
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  /** An HTTPS URL of mcplex's client ID metadata document, where the authorization server accepts one. */
  clientMetadataUrl?: string | undefined;
  /** Scopes to ask for; unset, the SDK's choice (the challenge's, else what the resource supports). */
  scopes?: readonly string[] | undefined;
}

export interface UpstreamOAuthOptions {
  store: CredentialStore;
  vault: Vault;
  /** Where the authorization server sends the browser back: mcplex's `/oauth/callback`. */
  callbackUrl: string;
  /** For what upstreams name; each upstream's own host is added to it (the configuration names that one). */
  fetchPolicy: FetchPolicy;
  /** How long a sign-in may take, from its start to the callback. */
  flowTtlMs: number;
  /** Leases every process on the store shares: a token is refreshed by one of them at a time. */
  leases?: Leases;
  now?: () => number;
}

/** A sign-in begun: where to send the principal's browser, and until when it may come back. */
export interface SignIn {
  authorizationUrl: URL;
  /** The sign-in's state: the callback names it. */
  state: string;
  expiresAt: number;
}

/** A principal's connection to an upstream, as listed (nothing secret). */
export interface UpstreamConnection {
  principal: string;
  upstream: string;
  issuer: string;
  scope: string | undefined;
  /** When the access token expires (epoch ms); undefined: not said. */
  expiresAt: number | undefined;
  refreshable: boolean;
  updatedAt: number;
}

export class SignInError extends Error {
  override readonly name = 'SignInError';
  constructor(
    readonly code: 'unknown_state' | 'authorization_denied' | 'not_configured' | 'failed',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface UpstreamOAuth {
  /**
   * The principal's access token for the upstream, refreshed first when it has expired (one refresh at a time per
   * token); undefined when the principal has to sign in (never signed in, or its grant was revoked).
   */
  accessToken(principal: string, upstream: string): Promise<string | undefined>;
  /** The token was refused by the upstream (401): refresh it, or forget it; the new token, if any. */
  refused(principal: string, upstream: string, token: string): Promise<string | undefined>;
  /**
   * A link for the principal to sign in to the upstream: mcplex's own sign-in page, found by a one-use ticket that
   * expires with the sign-in's time.
   */
  ticket(
    principal: string,
    upstream: string,
    scope?: string,
    client?: string,
  ): Promise<{ id: string; expiresAt: number }>;
  /** Who the ticket is for, without using it (the page that asks for consent shows it). */
  peekTicket(
    id: string,
  ): Promise<{ principal: string; upstream: string; scopes: readonly string[]; client?: string } | undefined>;
  /** Uses the ticket; undefined when it is unknown, used or expired. */
  redeemTicket(id: string): Promise<{ principal: string; upstream: string; scope?: string } | undefined>;
  /**
   * Starts a sign-in of the principal to the upstream; with `browser`, the callback must come with the same value
   * (a cookie of the browser that started it); `scope` asks for more than the upstream's usual scope (step-up).
   */
  begin(principal: string, upstream: string, browser?: string, scope?: string): Promise<SignIn>;
  /** The authorization server's answer at the callback: the principal is signed in, or SignInError. */
  complete(
    answer: {
      state?: string | undefined;
      code?: string | undefined;
      iss?: string | undefined;
      error?: string | undefined;
    },
    browser?: string,
  ): Promise<{ principal: string; upstream: string }>;
  connections(principal?: string): Promise<UpstreamConnection[]>;
  /** The principal that signed in to the upstream last, if any (nothing sealed is opened for it). */
  lastSignedIn(upstream: string): Promise<string | undefined>;
  /** Forgets the principal's tokens for the upstream; how many there were. */
  revoke(principal: string, upstream: string): Promise<number>;
}

/** Tokens as kept: the SDK's, and when they were obtained (their expiry is relative). */
interface KeptTokens {
  tokens: StoredOAuthTokens;
  obtainedAt: number;
}

/** A sign-in in progress as kept (sealed) until its callback. */
interface KeptFlow {
  principal: string;
  upstream: string;
  codeVerifier: string;
  discovery: OAuthDiscoveryState | undefined;
  /** The hash of the browser's value the callback must come with, when the sign-in was started from a browser. */
  browser?: string | undefined;
}

/** A token this close to its expiry is refreshed before use. */
const EXPIRY_MARGIN_MS = 30_000;
/** How long a refresh may hold its lease, and how long another process waits for its token. */
const REFRESH_WAIT_MS = 15_000;
const REFRESH_POLL_MS = 50;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const flowKey = (state: string): CredentialKey => ({
  kind: 'flow',
  principal: '',
  upstream: '',
  issuer: sha256(state),
});
const ticketKey = (id: string): CredentialKey => ({
  kind: 'flow',
  principal: '',
  upstream: '',
  issuer: `ticket:${sha256(id)}`,
});

const expiresAt = (kept: KeptTokens) =>
  kept.tokens.expires_in === undefined ? undefined : kept.obtainedAt + kept.tokens.expires_in * 1000;

export function createUpstreamOAuth(upstreams: readonly OAuthUpstream[], options: UpstreamOAuthOptions): UpstreamOAuth {
  const now = options.now ?? Date.now;
  const byName = new Map(upstreams.map((u) => [u.name, u]));
  const { store, vault } = options;
  const fetches = new Map<string, GuardedFetch>();
  /** The guarded fetch for one upstream: its own (configured) host is allowed as it is. */
  const fetchFor = (upstream: OAuthUpstream) => {
    let fetch = fetches.get(upstream.name);
    if (!fetch) {
      const host = new URL(upstream.url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
      const policy = options.fetchPolicy;
      fetch = guardedFetch({
        ...policy,
        allowPrivate: [...policy.allowPrivate, host],
        insecureHosts:
          new URL(upstream.url).protocol === 'http:' ? [...policy.insecureHosts, host] : policy.insecureHosts,
      });
      fetches.set(upstream.name, fetch);
    }
    return fetch;
  };
  const upstreamOf = (name: string) => {
    const upstream = byName.get(name);
    if (!upstream) throw new SignInError('not_configured', `"${name}" is not an upstream that signs in with OAuth`);
    return upstream;
  };

  /** The principal's newest tokens for the upstream, whatever their issuer. */
  async function kept(
    principal: string,
    upstream: string,
  ): Promise<{ key: CredentialKey; kept: KeptTokens } | undefined> {
    const records = (await store.list('tokens', principal, now())).filter((r) => r.upstream === upstream);
    const newest = records.sort((a, b) => b.updatedAt - a.updatedAt)[0];
    if (!newest) return undefined;
    return { key: newest, kept: vault.open(newest, newest.sealed) as KeptTokens };
  }

  /** The SDK's view of one principal's credentials for one upstream (and of a sign-in, when one is under way). */
  function provider(
    principal: string,
    upstream: OAuthUpstream,
    flow?: KeptFlow & { state: string },
  ): OAuthClientProvider {
    const tokensKey = (issuer: string): CredentialKey => ({
      kind: 'tokens',
      principal,
      upstream: upstream.name,
      issuer,
    });
    const clientKey = (issuer: string): CredentialKey => ({
      kind: 'client',
      principal: '',
      upstream: upstream.name,
      issuer,
    });
    let authorizationUrl: URL | undefined;
    const metadata: OAuthClientMetadata = {
      client_name: 'mcplex',
      redirect_uris: [options.callbackUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: upstream.clientSecret === undefined ? 'none' : 'client_secret_basic',
      ...(upstream.scopes === undefined ? {} : { scope: upstream.scopes.join(' ') }),
    };
    const result: OAuthClientProvider & { authorizationUrl(): URL | undefined } = {
      get redirectUrl() {
        return options.callbackUrl;
      },
      ...(upstream.clientMetadataUrl === undefined ? {} : { clientMetadataUrl: upstream.clientMetadataUrl }),
      get clientMetadata() {
        return metadata;
      },
      state: () => flow?.state ?? randomBytes(32).toString('base64url'),
      async clientInformation(ctx?: OAuthClientInformationContext) {
        if (upstream.clientId !== undefined) {
          return {
            client_id: upstream.clientId,
            ...(upstream.clientSecret === undefined ? {} : { client_secret: upstream.clientSecret }),
          };
        }
        if (ctx === undefined) return undefined;
        const record = await store.get(clientKey(ctx.issuer), now());
        return record && (vault.open(record, record.sealed) as StoredOAuthClientInformation);
      },
      async saveClientInformation(information, ctx) {
        if (ctx === undefined) return;
        const key = clientKey(ctx.issuer);
        await store.put({ ...key, sealed: vault.seal(key, information), updatedAt: now(), expiresAt: undefined });
      },
      async tokens(ctx?: OAuthClientInformationContext) {
        if (ctx !== undefined) {
          const record = await store.get(tokensKey(ctx.issuer), now());
          return record && (vault.open(record, record.sealed) as KeptTokens).tokens;
        }
        return (await kept(principal, upstream.name))?.kept.tokens;
      },
      async saveTokens(tokens, ctx) {
        const key = tokensKey(ctx?.issuer ?? tokens.issuer ?? new URL(upstream.url).origin);
        const value: KeptTokens = { tokens, obtainedAt: now() };
        await store.put({ ...key, sealed: vault.seal(key, value), updatedAt: now(), expiresAt: undefined });
      },
      redirectToAuthorization(url) {
        authorizationUrl = url;
      },
      saveCodeVerifier(verifier) {
        if (flow) flow.codeVerifier = verifier;
      },
      codeVerifier() {
        if (!flow?.codeVerifier) throw new SignInError('unknown_state', 'no sign-in is under way');
        return flow.codeVerifier;
      },
      saveDiscoveryState(state) {
        // PKCE with S256 or nothing: an authorization server that does not say it supports it is refused.
        const methods = state.authorizationServerMetadata?.code_challenge_methods_supported;
        if (state.authorizationServerMetadata !== undefined && !methods?.includes('S256')) {
          throw new SignInError(
            'failed',
            `the authorization server of "${upstream.name}" does not advertise PKCE with S256, which mcplex requires`,
          );
        }
        if (flow) flow.discovery = state;
      },
      discoveryState: () => flow?.discovery,
      async invalidateCredentials(scope) {
        if (scope === 'all' || scope === 'tokens') {
          for (const record of (await store.list('tokens', principal, now())).filter(
            (r) => r.upstream === upstream.name,
          )) {
            await store.delete(record);
          }
        }
        if (scope === 'all' || scope === 'client') {
          for (const record of (await store.list('client', '', now())).filter((r) => r.upstream === upstream.name)) {
            await store.delete(record);
          }
        }
      },
      authorizationUrl: () => authorizationUrl,
    };
    return result;
  }

  /**
   * The upstream's challenge to a request without a token: where its protected-resource metadata is when that is
   * not at a well-known place, and the scope it asks for (both optional in a 401's WWW-Authenticate).
   */
  async function challengeOf(upstream: OAuthUpstream): Promise<{ resourceMetadataUrl?: URL; scope?: string }> {
    try {
      const response = await fetchFor(upstream)(upstream.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'ping' }),
      });
      if (response.status !== 401) return {};
      const { resourceMetadataUrl, scope } = extractWWWAuthenticateParams(response);
      return {
        ...(resourceMetadataUrl === undefined ? {} : { resourceMetadataUrl }),
        ...(scope === undefined ? {} : { scope }),
      };
    } catch {
      // Discovery at the well-known places is what is left.
      return {};
    }
  }

  /** Refreshes in flight in this process, one per principal and upstream. */
  const refreshing = new Map<string, Promise<string | undefined>>();
  /** A stored token that is not `refused` and not about to expire: what a refresh somewhere else left. */
  const usable = (found: { kept: KeptTokens } | undefined, refused: string | undefined) => {
    if (!found || found.kept.tokens.access_token === refused) return undefined;
    const expiry = expiresAt(found.kept);
    return expiry === undefined || expiry - EXPIRY_MARGIN_MS > now() ? found.kept.tokens.access_token : undefined;
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /**
   * Refreshes the principal's tokens for the upstream: one refresh at a time per principal and upstream, in this
   * process (one promise) and, with `leases`, across the processes that share the store (a lease of one; the others
   * wait for the token it stores). `refused` is a token the upstream refused, which a refresh must replace.
   */
  function refresh(principal: string, upstream: OAuthUpstream, refused?: string): Promise<string | undefined> {
    const id = JSON.stringify([principal, upstream.name]);
    let pending = refreshing.get(id);
    if (!pending) {
      pending = (async () => {
        const leaseKey = `upstream-oauth-refresh:${sha256(id)}`;
        const deadline = now() + REFRESH_WAIT_MS;
        for (;;) {
          const lease = options.leases ? await options.leases.acquire(leaseKey, 1, REFRESH_WAIT_MS) : undefined;
          if (lease || !options.leases) {
            try {
              // Another process may have refreshed while this one waited for the lease.
              const done = usable(await kept(principal, upstream.name), refused);
              if (done !== undefined) return done;
              // With tokens that have a refresh token, auth() refreshes them; without, or when the grant is gone
              // (invalid_grant: it forgets the tokens), it asks for a sign-in, which is this principal's to start.
              const outcome = await auth(provider(principal, upstream), {
                serverUrl: upstream.url,
                fetchFn: fetchFor(upstream),
              });
              if (outcome !== 'AUTHORIZED') return undefined;
              return (await kept(principal, upstream.name))?.kept.tokens.access_token;
            } finally {
              await lease?.release();
            }
          }
          // Another process refreshes: its token, once stored.
          await sleep(REFRESH_POLL_MS);
          const done = usable(await kept(principal, upstream.name), refused);
          if (done !== undefined) return done;
          if (now() > deadline) return undefined;
        }
      })().finally(() => refreshing.delete(id));
      refreshing.set(id, pending);
    }
    return pending;
  }

  return {
    async accessToken(principal, name) {
      const upstream = upstreamOf(name);
      const found = await kept(principal, name);
      if (!found) return undefined;
      const expiry = expiresAt(found.kept);
      if (expiry === undefined || expiry - EXPIRY_MARGIN_MS > now()) return found.kept.tokens.access_token;
      if (found.kept.tokens.refresh_token === undefined) return undefined;
      return refresh(principal, upstream);
    },

    async refused(principal, name, token) {
      const upstream = upstreamOf(name);
      const found = await kept(principal, name);
      // Another call refreshed it meanwhile: the new one.
      if (found && found.kept.tokens.access_token !== token) return found.kept.tokens.access_token;
      if (!found?.kept.tokens.refresh_token) {
        if (found) await store.delete(found.key);
        return undefined;
      }
      return refresh(principal, upstream, token);
    },

    async ticket(principal, name, scope, client) {
      upstreamOf(name);
      const id = randomBytes(32).toString('base64url');
      const key = ticketKey(id);
      const expiresAt = now() + options.flowTtlMs;
      await store.put({
        ...key,
        sealed: vault.seal(key, {
          principal,
          upstream: name,
          ...(scope === undefined ? {} : { scope }),
          // What a client calls itself is shown on a page: a bounded piece of it.
          ...(client === undefined ? {} : { client: client.slice(0, 100) }),
        }),
        updatedAt: now(),
        expiresAt,
      });
      return { id, expiresAt };
    },

    async peekTicket(id) {
      const key = ticketKey(id);
      const record = await store.get(key, now());
      if (!record) return undefined;
      const ticket = vault.open(key, record.sealed) as {
        principal: string;
        upstream: string;
        scope?: string;
        client?: string;
      };
      const scopes = ticket.scope?.split(' ') ?? byName.get(ticket.upstream)?.scopes ?? [];
      return {
        principal: ticket.principal,
        upstream: ticket.upstream,
        scopes,
        ...(ticket.client === undefined ? {} : { client: ticket.client }),
      };
    },

    async redeemTicket(id) {
      const key = ticketKey(id);
      const record = await store.take(key, now());
      return record && (vault.open(key, record.sealed) as { principal: string; upstream: string; scope?: string });
    },

    async begin(principal, name, browser, stepUp) {
      const upstream = upstreamOf(name);
      const challenge = await challengeOf(upstream);
      const scope = stepUp ?? upstream.scopes?.join(' ') ?? challenge.scope;
      const state = randomBytes(32).toString('base64url');
      const flow: KeptFlow & { state: string } = {
        state,
        principal,
        upstream: name,
        codeVerifier: '',
        discovery: undefined,
        ...(browser === undefined ? {} : { browser: sha256(browser) }),
      };
      const sdkProvider = provider(principal, upstream, flow) as OAuthClientProvider & {
        authorizationUrl(): URL | undefined;
      };
      // A sign-in always asks the authorization server (a principal signing in again wants a new grant).
      await auth(
        { ...sdkProvider, tokens: () => undefined },
        {
          serverUrl: upstream.url,
          fetchFn: fetchFor(upstream),
          ...(scope === undefined ? {} : { scope }),
          ...(challenge.resourceMetadataUrl === undefined
            ? {}
            : { resourceMetadataUrl: challenge.resourceMetadataUrl }),
        },
      );
      const authorizationUrl = sdkProvider.authorizationUrl();
      if (!authorizationUrl) throw new SignInError('failed', `"${name}" gave no authorization URL`);
      const key = flowKey(state);
      const expires = now() + options.flowTtlMs;
      const { state: _state, ...keptFlow } = flow;
      await store.put({ ...key, sealed: vault.seal(key, keptFlow), updatedAt: now(), expiresAt: expires });
      return { authorizationUrl, state, expiresAt: expires };
    },

    async complete(answer, browser) {
      if (typeof answer.state !== 'string' || answer.state === '') {
        throw new SignInError('unknown_state', 'the answer names no sign-in (no state)');
      }
      // Taken, not read: a state is redeemed once, on whichever replica the browser comes back to.
      const key = flowKey(answer.state);
      const record = await store.take(key, now());
      if (!record) throw new SignInError('unknown_state', 'this sign-in is unknown, used already or expired');
      const flow = vault.open(key, record.sealed) as KeptFlow;
      // A sign-in started in a browser ends in that browser: a link passed to someone else does not finish there.
      if (flow.browser !== undefined && (browser === undefined || sha256(browser) !== flow.browser)) {
        throw new SignInError('unknown_state', 'this sign-in was started in another browser');
      }
      if (answer.error !== undefined) {
        throw new SignInError(
          'authorization_denied',
          `the authorization server refused: ${answer.error.slice(0, 200)}`,
        );
      }
      if (typeof answer.code !== 'string' || answer.code === '') {
        throw new SignInError('failed', 'the answer carries no authorization code');
      }
      const upstream = upstreamOf(flow.upstream);
      const outcome = await auth(provider(flow.principal, upstream, { ...flow, state: answer.state }), {
        serverUrl: upstream.url,
        authorizationCode: answer.code,
        ...(answer.iss === undefined ? {} : { iss: answer.iss }),
        fetchFn: fetchFor(upstream),
      });
      if (outcome !== 'AUTHORIZED') throw new SignInError('failed', 'the authorization code was not exchanged');
      return { principal: flow.principal, upstream: flow.upstream };
    },

    async connections(principal) {
      const records = await store.list('tokens', principal, now());
      return records.map((record) => {
        const value = vault.open(record, record.sealed) as KeptTokens;
        return {
          principal: record.principal,
          upstream: record.upstream,
          issuer: record.issuer,
          scope: value.tokens.scope,
          expiresAt: expiresAt(value),
          refreshable: value.tokens.refresh_token !== undefined,
          updatedAt: record.updatedAt,
        };
      });
    },

    async lastSignedIn(upstream) {
      const records = (await store.list('tokens', undefined, now())).filter((r) => r.upstream === upstream);
      return records.sort((a, b) => b.updatedAt - a.updatedAt)[0]?.principal;
    },

    revoke: (principal, upstream) => store.deleteConnection(principal, upstream),
  };
}

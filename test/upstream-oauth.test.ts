// mcplex's OAuth client towards upstream MCP servers, per principal, against a real authorization server
// (oidc-provider: authorization code with PKCE, resource indicators, dynamic registration, refresh tokens) and an
// MCP server that accepts only its tokens for itself. The browser's part (login and consent) is scripted HTTP.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { Store } from '../src/store/store.js';
import { SignInError, createUpstreamOAuth } from '../src/policy/upstream-oauth/upstream-oauth.js';
import type { UpstreamOAuth } from '../src/policy/upstream-oauth/upstream-oauth.js';
import { VaultError, createVault } from '../src/policy/upstream-oauth/vault.js';
import { startProtectedMcp } from './fixtures/oauth-mcp-server.js';
import type { ProtectedMcp } from './fixtures/oauth-mcp-server.js';
import { signIn, startAuthorizationServer } from './support/oidc.js';
import type { AuthorizationServer } from './support/oidc.js';
import { tempDir } from './support/harness.js';

const CALLBACK = 'http://127.0.0.1:1/oauth/callback';
const dir = tempDir('mcplex-upstream-oauth-');
const dbPath = join(dir.path, 'mcplex.db');
const key = randomBytes(32);

let as: AuthorizationServer;
let hosted: ProtectedMcp;
let store: Store;
let clock = 0;
let oauth: UpstreamOAuth;

beforeAll(async () => {
  as = await startAuthorizationServer({ scopes: ['tools:call'] });
  hosted = await startProtectedMcp({ issuer: as.issuer, jwksUri: as.jwksUri, scopes: ['tools:call'] });
  store = openSqliteStore(dbPath);
  oauth = createUpstreamOAuth([{ name: 'hosted', url: hosted.url }], {
    store: store.credentials,
    vault: createVault(key),
    callbackUrl: CALLBACK,
    // The authorization server is on this machine: allowed here, as a development host would be configured.
    fetchPolicy: { allowPrivate: ['127.0.0.1'], insecureHosts: ['127.0.0.1'], timeoutMs: 5000, maxBytes: 1 << 20 },
    flowTtlMs: 600_000,
    now: () => Date.now() + clock,
  });
}, 30_000);

afterAll(async () => {
  await store?.close();
  await hosted?.close();
  await as?.close();
  dir.remove();
});

/** Signs `login` in as `principal` the whole way: begin, the browser's part, the callback. */
async function signInAs(principal: string, login: string): Promise<void> {
  const started = await oauth.begin(principal, 'hosted');
  const back = await signIn(started.authorizationUrl, login, CALLBACK);
  const answer = Object.fromEntries(back.searchParams) as Record<string, string>;
  expect(await oauth.complete(answer)).toEqual({ principal, upstream: 'hosted' });
}

async function whoami(token: string): Promise<string> {
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(hosted.url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  try {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    return (result.content as { text: string }[])[0]!.text;
  } finally {
    await client.close();
  }
}

describe('per-principal OAuth to an upstream MCP server', () => {
  it('signs a principal in: registration, PKCE S256, the resource parameter, a token whose audience is the upstream', async () => {
    expect(await oauth.accessToken('user:alice', 'hosted')).toBeUndefined();
    const started = await oauth.begin('user:alice', 'hosted');
    const url = started.authorizationUrl;
    expect(url.origin).toBe(as.issuer);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get('resource')).toBe(hosted.url);
    expect(url.searchParams.get('redirect_uri')).toBe(CALLBACK);
    expect(url.searchParams.get('state')).toBe(started.state);
    // Dynamic registration happened, and its result is kept (sealed) for every principal.
    expect(await store.credentials.list('client', '', Date.now())).toHaveLength(1);

    const back = await signIn(url, 'alice', CALLBACK);
    expect(back.searchParams.get('iss')).toBe(as.issuer);
    const answer = Object.fromEntries(back.searchParams) as Record<string, string>;
    expect(await oauth.complete(answer)).toEqual({ principal: 'user:alice', upstream: 'hosted' });
    const token = await oauth.accessToken('user:alice', 'hosted');
    expect(token).toBeDefined();
    expect(await whoami(token!)).toBe(`alice for ${hosted.url}`);

    // The state was used: the same answer again is refused, and changes nothing.
    await expect(oauth.complete(answer)).rejects.toMatchObject({ code: 'unknown_state' });
    expect(await oauth.accessToken('user:alice', 'hosted')).toBe(token);
    const [connection] = await oauth.connections('user:alice');
    expect(connection).toMatchObject({
      principal: 'user:alice',
      upstream: 'hosted',
      issuer: as.issuer,
      refreshable: true,
    });
  });

  it('keeps principals apart: another principal has no token, and signs in to one of its own', async () => {
    expect(await oauth.accessToken('user:bob', 'hosted')).toBeUndefined();
    await signInAs('user:bob', 'bob');
    const bob = await oauth.accessToken('user:bob', 'hosted');
    const alice = await oauth.accessToken('user:alice', 'hosted');
    expect(bob).not.toBe(alice);
    expect(await whoami(bob!)).toBe(`bob for ${hosted.url}`);
    expect(await whoami(alice!)).toBe(`alice for ${hosted.url}`);
  });

  it('keeps tokens sealed: the database holds no token, and another key does not open them', async () => {
    const token = (await oauth.accessToken('user:alice', 'hosted'))!;
    const raw = new Database(dbPath, { readonly: true });
    const rows = raw
      .prepare<[], { kind: string; principal: string; sealed: string }>(
        'SELECT kind, principal, sealed FROM upstream_credentials',
      )
      .all();
    raw.close();
    expect(
      rows
        .filter((r) => r.kind === 'tokens')
        .map((r) => r.principal)
        .sort(),
    ).toEqual(['user:alice', 'user:bob']);
    const everything = rows.map((r) => r.sealed).join('\n');
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(token.split('.')[1]!);
    const record = (await store.credentials.list('tokens', 'user:alice', Date.now()))[0]!;
    expect(() => createVault(randomBytes(32)).open(record, record.sealed)).toThrow(VaultError);
    expect(() => createVault(key).open({ ...record, principal: 'user:bob' }, record.sealed)).toThrow(VaultError);
  });

  it('refreshes an expired token once for 20 calls at the same time, and every call gets the new one', async () => {
    const before = (await oauth.accessToken('user:alice', 'hosted'))!;
    const refreshes = as.refreshes;
    clock = 3_600_000;
    try {
      const tokens = await Promise.all(Array.from({ length: 20 }, () => oauth.accessToken('user:alice', 'hosted')));
      expect(as.refreshes - refreshes).toBe(1);
      expect(new Set(tokens).size).toBe(1);
      expect(tokens[0]).not.toBe(before);
      expect(await whoami(tokens[0]!)).toBe(`alice for ${hosted.url}`);
    } finally {
      clock = 0;
    }
  });

  it('refreshes once across two processes on the same store (a lease of one), each of them taking the new token', async () => {
    const second = openSqliteStore(dbPath);
    const replica = (on: Store) =>
      createUpstreamOAuth([{ name: 'hosted', url: hosted.url }], {
        store: on.credentials,
        vault: createVault(key),
        callbackUrl: CALLBACK,
        fetchPolicy: { allowPrivate: ['127.0.0.1'], insecureHosts: ['127.0.0.1'], timeoutMs: 5000, maxBytes: 1 << 20 },
        flowTtlMs: 600_000,
        leases: on.leases,
        now: () => Date.now() + clock,
      });
    const [a, b] = [replica(store), replica(second)];
    const refreshes = as.refreshes;
    clock = 2 * 3_600_000;
    try {
      const tokens = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).accessToken('user:alice', 'hosted')),
      );
      expect(as.refreshes - refreshes).toBe(1);
      expect(new Set(tokens).size).toBe(1);
      expect(await whoami(tokens[0]!)).toBe(`alice for ${hosted.url}`);
    } finally {
      clock = 0;
      await second.close();
    }
  });

  it('turns a grant the authorization server no longer honours into "needs sign-in", not an error', async () => {
    const record = (await store.credentials.list('tokens', 'user:bob', Date.now()))[0]!;
    const vault = createVault(key);
    const kept = vault.open(record, record.sealed) as { tokens: Record<string, unknown>; obtainedAt: number };
    const broken = { ...kept, tokens: { ...kept.tokens, refresh_token: 'revoked-at-the-server' } };
    await store.credentials.put({ ...record, sealed: vault.seal(record, broken) });
    clock = 3_600_000;
    try {
      expect(await oauth.accessToken('user:bob', 'hosted')).toBeUndefined();
      expect(await oauth.connections('user:bob')).toEqual([]);
    } finally {
      clock = 0;
    }
    // Bob signs in again and is back.
    await signInAs('user:bob', 'bob');
    expect(await whoami((await oauth.accessToken('user:bob', 'hosted'))!)).toBe(`bob for ${hosted.url}`);
  });

  it('refuses a denied or unknown sign-in, and an upstream that is not configured for it', async () => {
    const started = await oauth.begin('user:carol', 'hosted');
    await expect(oauth.complete({ state: started.state, error: 'access_denied' })).rejects.toMatchObject({
      code: 'authorization_denied',
    });
    // Used by the refusal: the state cannot be tried again.
    await expect(oauth.complete({ state: started.state, code: 'x' })).rejects.toMatchObject({ code: 'unknown_state' });
    await expect(oauth.complete({ state: 'made-up', code: 'x' })).rejects.toBeInstanceOf(SignInError);
    await expect(oauth.complete({})).rejects.toMatchObject({ code: 'unknown_state' });
    await expect(oauth.begin('user:carol', 'nope')).rejects.toMatchObject({ code: 'not_configured' });
    expect(await oauth.accessToken('user:carol', 'hosted')).toBeUndefined();
  });

  it('refuses an authorization server that does not advertise PKCE S256, and one at an internal address', async () => {
    // A bare resource and authorization server (a fault injected: the metadata is what is under test).
    let base = '';
    let authorizationServer = '';
    const fake = createServer((req, res) => {
      const json = (body: unknown) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (req.url?.startsWith('/.well-known/oauth-protected-resource')) {
        json({ resource: `${base}/mcp`, authorization_servers: [authorizationServer] });
      } else if (req.url?.startsWith('/.well-known/oauth-authorization-server')) {
        json({
          issuer: authorizationServer,
          authorization_endpoint: `${authorizationServer}/authorize`,
          token_endpoint: `${authorizationServer}/token`,
          response_types_supported: ['code'],
        });
      } else res.writeHead(404).end();
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    const port = (fake.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    try {
      const options = {
        store: store.credentials,
        vault: createVault(key),
        callbackUrl: CALLBACK,
        flowTtlMs: 60_000,
      };
      authorizationServer = base;
      const weak = createUpstreamOAuth([{ name: 'weak', url: `${base}/mcp`, clientId: 'pre' }], {
        ...options,
        fetchPolicy: { allowPrivate: [], insecureHosts: [], timeoutMs: 5000, maxBytes: 1 << 16 },
      });
      await expect(weak.begin('user:alice', 'weak')).rejects.toThrow(/does not advertise PKCE with S256/);
      // The upstream's own host is the configuration's; an authorization server it names elsewhere is not.
      authorizationServer = `http://localhost:${port}`;
      const internal = createUpstreamOAuth([{ name: 'internal', url: `${base}/mcp`, clientId: 'pre' }], {
        ...options,
        fetchPolicy: { allowPrivate: [], insecureHosts: ['localhost'], timeoutMs: 5000, maxBytes: 1 << 16 },
      });
      await expect(internal.begin('user:alice', 'internal')).rejects.toThrow(/localhost refused: .* internal address/);
    } finally {
      fake.closeAllConnections();
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });

  it('revokes a connection: the principal needs to sign in again, the others keep theirs', async () => {
    expect(await oauth.revoke('user:alice', 'hosted')).toBe(1);
    expect(await oauth.accessToken('user:alice', 'hosted')).toBeUndefined();
    expect(await oauth.accessToken('user:bob', 'hosted')).toBeDefined();
  });
});

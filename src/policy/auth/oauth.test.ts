import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOAuthVerifier, discoverJwksUri } from './oauth.js';
import type { OAuthVerifier } from './oauth.js';

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

/** A local issuer: RFC 8414 metadata and a JWKS whose keys the test swaps (rotation), and what was fetched. */
interface LocalIssuer {
  issuer: string;
  server: Server;
  jwks: { keys: JWK[] };
  fetched: string[];
  metadataIssuer?: string;
}

async function startIssuer(): Promise<LocalIssuer> {
  const state = { jwks: { keys: [] as JWK[] }, fetched: [] as string[] } as LocalIssuer;
  state.server = createServer((req, res) => {
    state.fetched.push(req.url ?? '');
    if (req.url === '/.well-known/oauth-authorization-server/tenant') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: state.metadataIssuer ?? state.issuer, jwks_uri: `${state.issuer}/jwks` }));
    } else if (req.url === '/tenant/jwks') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(state.jwks));
    } else res.writeHead(404).end();
  });
  state.server.listen(0, '127.0.0.1');
  await once(state.server, 'listening');
  state.issuer = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}/tenant`;
  return state;
}

const RESOURCE = 'https://gateway.example.com';

let idp: LocalIssuer;
let key: Key;
let verifier: OAuthVerifier;

async function addKey(kid: string): Promise<Key> {
  const pair = await generateKeyPair('RS256');
  idp.jwks.keys.push({ ...(await exportJWK(pair.publicKey)), kid, alg: 'RS256', use: 'sig' });
  return pair.privateKey;
}

function token(
  claims: Record<string, unknown>,
  options: { key?: Key; kid?: string; exp?: number | string; nbf?: number | string } = {},
): Promise<string> {
  let jwt = new SignJWT({ scope: 'mcp:use', ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? 'k1', typ: 'at+jwt' })
    .setIssuer((claims.iss as string | undefined) ?? idp.issuer)
    .setSubject((claims.sub as string | undefined) ?? 'alice')
    .setAudience((claims.aud as string | undefined) ?? `${RESOURCE}/mcp`)
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '5m');
  if (options.nbf !== undefined) jwt = jwt.setNotBefore(options.nbf);
  return jwt.sign(options.key ?? key);
}

beforeAll(async () => {
  idp = await startIssuer();
  key = await addKey('k1');
  verifier = createOAuthVerifier(
    {
      resource: RESOURCE,
      issuers: [{ issuer: idp.issuer, name: 'corp', requiredScopes: ['mcp:use'], adminScope: 'mcp:admin' }],
    },
    { jwksCooldownMs: 0 },
  );
});
afterAll(() => new Promise<void>((resolve) => idp.server.close(() => resolve())));

describe('createOAuthVerifier', () => {
  it('accepts a valid token as a principal of its own, for /mcp, /v1 or the base URL', async () => {
    for (const aud of [`${RESOURCE}/mcp`, `${RESOURCE}/v1`, RESOURCE]) {
      const result = await verifier.verify(await token({ aud, email: 'a@example.com' }));
      expect(result).toMatchObject({ ok: true, principal: { kind: 'user', id: 'corp:alice', name: 'alice' } });
    }
    const admin = await verifier.verify(await token({ sub: 'root', scope: 'mcp:use mcp:admin' }));
    expect(admin).toMatchObject({ ok: true, principal: { id: 'corp:root', scopes: { admin: true } } });
    // The JWKS came from the issuer's metadata, fetched once for all of these.
    expect(idp.fetched.filter((u) => u.includes('oauth-authorization-server'))).toHaveLength(1);
  });

  it('refuses a wrong audience, issuer, an expired, not-yet-valid or badly signed token', async () => {
    const cases: [string, Promise<string>, RegExp][] = [
      ['audience', token({ aud: 'https://other.example.com/mcp' }), /audience/],
      ['issuer', token({ iss: 'https://evil.example.com' }), /trusted issuer/],
      ['expired', token({}, { exp: Math.floor(Date.now() / 1000) - 120 }), /expired/],
      ['not yet', token({}, { nbf: Math.floor(Date.now() / 1000) + 600 }), /not valid yet/],
      ['signature', token({}, { key: (await generateKeyPair('RS256')).privateKey }), /signature/],
      ['not a JWT', Promise.resolve('opaque-token-value'), /neither an API key nor a JWT/],
    ];
    for (const [what, pending, message] of cases) {
      const result = await verifier.verify(await pending);
      expect(result, what).toMatchObject({ ok: false, reason: 'invalid_token' });
      expect(result.ok === false && result.message, what).toMatch(message);
    }
  });

  it('refuses a token without the required scope, naming every scope needed', async () => {
    const result = await verifier.verify(await token({ scope: 'profile' }));
    expect(result).toMatchObject({ ok: false, reason: 'insufficient_scope', scopes: ['mcp:use'] });
    // scp as a list counts too.
    expect(await verifier.verify(await token({ scope: undefined, scp: ['mcp:use'] }))).toMatchObject({ ok: true });
  });

  it('follows a key rotation: a token with a new key id fetches the key set again', async () => {
    const rotated = await addKey('k2');
    const before = idp.fetched.filter((u) => u === '/tenant/jwks').length;
    const result = await verifier.verify(await token({ sub: 'bob' }, { key: rotated, kid: 'k2' }));
    expect(result).toMatchObject({ ok: true, principal: { id: 'corp:bob' } });
    expect(idp.fetched.filter((u) => u === '/tenant/jwks').length).toBe(before + 1);
  });

  it('gives long or unusual subjects an id of bounded length', async () => {
    const result = await verifier.verify(await token({ sub: `user with spaces ${'x'.repeat(300)}` }));
    expect(result.ok && result.principal.id).toMatch(/^corp:~[\w-]{22}$/);
  });

  it('says "unavailable", not "invalid", when the issuer cannot be reached', async () => {
    const down = createOAuthVerifier({
      resource: RESOURCE,
      issuers: [{ issuer: idp.issuer, jwksUri: 'http://127.0.0.1:9/jwks' }],
    });
    expect(await down.verify(await token({}))).toMatchObject({ ok: false, reason: 'unavailable' });
  });

  it('serves RFC 9728 metadata for each resource, at the path-aware well-known URL', () => {
    expect(verifier.metadata('/mcp')).toEqual({
      resource: `${RESOURCE}/mcp`,
      authorization_servers: [idp.issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp:use'],
      resource_name: 'mcplex',
    });
    expect(verifier.metadata('').resource).toBe(RESOURCE);
    expect(verifier.metadataUrl('/mcp')).toBe(`${RESOURCE}/.well-known/oauth-protected-resource/mcp`);
  });
});

describe('discoverJwksUri', () => {
  it('refuses metadata that names another issuer', async () => {
    idp.metadataIssuer = 'https://someone-else.example.com';
    try {
      await expect(discoverJwksUri(idp.issuer)).rejects.toThrow(/names issuer/);
    } finally {
      idp.metadataIssuer = undefined;
    }
    expect(await discoverJwksUri(idp.issuer)).toBe(`${idp.issuer}/jwks`);
  });
});

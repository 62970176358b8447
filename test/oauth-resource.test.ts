// mcplex as an OAuth resource server, end to end: a built mcplex trusts two local issuers, a real authorization
// server (oidc-provider: client credentials with a resource indicator, JWT access tokens) and a bare one (RFC 8414
// metadata and a JWKS served here, tokens signed with jose, for the cases a real server will not issue), fronts a Streamable HTTP fixture through a proxy that records what
// reaches it, and a mock LLM. Real clients: the MCP SDK client (its own discovery of the protected-resource
// metadata from the 401 challenge) and the openai SDK. API keys keep working beside tokens.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Client,
  StreamableHTTPClientTransport,
  checkResourceAllowed,
  discoverOAuthProtectedResourceMetadata,
  extractWWWAuthenticateParams,
} from '@modelcontextprotocol/client';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { startFixtureHttp } from './fixtures/fixture-server.js';
import type { FixtureHandle } from './fixtures/fixture-server.js';
import { fixtureStdio, listeningUrl, spawnMcplex, tempDir, waitFor, writeConfig } from './support/harness.js';
import type { SpawnedMcplex } from './support/harness.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function freePort(): Promise<number> {
  const probe = createServer();
  const port = await listen(probe);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

let dir: ReturnType<typeof tempDir>;
let authServer: Server;
let authIssuer: string;
let idp: Server;
let issuer: string;
let signingKey: Key;
let fixture: FixtureHandle;
let proxy: Server;
const upstreamHeaders: IncomingHttpHeaders[] = [];
let mock: MockLlm;
let mcplex: SpawnedMcplex;
let base: string;
let apiKey: string;

function token(claims: Record<string, unknown> = {}, options: { key?: Key; exp?: number } = {}): Promise<string> {
  return new SignJWT({ scope: 'mcp:use', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' })
    .setIssuer((claims.iss as string | undefined) ?? issuer)
    .setSubject('alice')
    .setAudience((claims.aud as string | undefined) ?? `${base}/mcp`)
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '5m')
    .sign(options.key ?? signingKey);
}

/** An access token from the real authorization server, for `resource`, by the client-credentials grant. */
async function issuedToken(resource: string, scope = 'mcp:use'): Promise<string> {
  const response = await fetch(`${authIssuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from('svc:svc-secret').toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
  });
  const body = (await response.json()) as { access_token?: string; error?: string };
  if (!body.access_token) throw new Error(`no token: ${JSON.stringify(body)}`);
  return body.access_token;
}

async function post(path: string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }),
  });
}

beforeAll(async () => {
  dir = tempDir('mcplex-oauth-');
  const pair = await generateKeyPair('ES256');
  signingKey = pair.privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  idp = createServer((req, res) => {
    if (req.url === '/.well-known/oauth-authorization-server') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks`, authorization_endpoint: `${issuer}/authorize` }));
    } else if (req.url === '/jwks') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    } else res.writeHead(404).end();
  });
  issuer = `http://127.0.0.1:${await listen(idp)}`;

  fixture = await startFixtureHttp();
  const target = new URL(fixture.url);
  proxy = createServer((req, res) => {
    upstreamHeaders.push(req.headers);
    const forward = httpRequest(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  const proxyPort = await listen(proxy);
  mock = await startMockLlm();

  const authPort = await freePort();
  authIssuer = `http://127.0.0.1:${authPort}`;
  const providerKey = (await generateKeyPair('ES256', { extractable: true })).privateKey;
  const provider = new Provider(authIssuer, {
    clients: [
      {
        client_id: 'svc',
        client_secret: 'svc-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        id_token_signed_response_alg: 'ES256',
      },
    ],
    jwks: { keys: [{ ...(await exportJWK(providerKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' }] },
    scopes: ['mcp:use', 'math:write'],
    ttl: { ClientCredentials: 300 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: () => true,
        // Whatever resource is asked for, a token for it (mcplex must refuse the ones that are not its own): a JWT,
        // but an opaque token for /v1, which mcplex checks by introspection.
        getResourceServerInfo: (_ctx: unknown, resource: string) => ({
          scope: 'mcp:use math:write',
          audience: resource,
          ...(resource.endsWith('/v1')
            ? { accessTokenFormat: 'opaque' as const }
            : { accessTokenFormat: 'jwt' as const, jwt: { sign: { alg: 'ES256' as const } } }),
        }),
      },
    },
  });
  authServer = provider.listen(authPort, '127.0.0.1');
  await once(authServer, 'listening');

  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const config = writeConfig(dir.path, {
    server: { port },
    store: `sqlite:${join(dir.path, 'mcplex.db')}`,
    auth: {
      mode: 'keys',
      oauth: {
        resource: base,
        issuers: [
          { issuer, name: 'corp', requiredScopes: ['mcp:use'] },
          {
            issuer: authIssuer,
            name: 'idp',
            requiredScopes: ['mcp:use'],
            introspection: { clientId: 'svc', clientSecret: 'svc-secret' },
          },
        ],
        serverScopes: { st: ['mcp:st'] },
        toolScopes: { 'up__a?d': ['math:write'] },
      },
    },
    mcpServers: {
      up: { url: `http://127.0.0.1:${proxyPort}${target.pathname}` },
      st: fixtureStdio(),
    },
    llm: {
      models: {
        'mock-chat': {
          deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, apiKey: 'x', model: 'mock-chat' }],
        },
      },
    },
  });
  const out = execFileSync(
    process.execPath,
    [join(ROOT, 'bin', 'mcplex.js'), 'keys', 'create', '--name', 'ci', '--admin', '-c', config],
    { cwd: ROOT, encoding: 'utf8' },
  );
  apiKey = /mcx_\S+/.exec(out)![0];
  mcplex = spawnMcplex(['serve', '--config', config]);
  await listeningUrl(mcplex);
  // Both servers' tools listed (for an API key, which no OAuth scope concerns).
  await waitFor(async () => {
    const response = await fetch(`${base}/readyz`, { headers: { authorization: `Bearer ${apiKey}` } });
    const body = (await response.json()) as { servers?: { state: string }[] };
    return body.servers?.length === 2 && body.servers.every((s) => s.state === 'ready');
  }, 'both servers ready');
}, 60_000);

afterAll(async () => {
  await mcplex?.stop();
  await mock?.close();
  await fixture?.close();
  for (const server of [proxy, idp, authServer]) await new Promise<void>((resolve) => server?.close(() => resolve()));
  dir?.remove();
});

describe('mcplex as an OAuth resource server', () => {
  it('challenges a request without credentials with the protected-resource metadata, which a client validates', async () => {
    const response = await post('/mcp', {});
    expect(response.status).toBe(401);
    const params = extractWWWAuthenticateParams(response);
    expect(params.resourceMetadataUrl?.href).toBe(`${base}/.well-known/oauth-protected-resource/mcp`);
    expect(params.scope).toBe('mcp:use');
    expect(params.error).toBeUndefined();
    // The SDK's own discovery: fetched from the challenge's URL and checked against its schema.
    const metadata = await discoverOAuthProtectedResourceMetadata(`${base}/mcp`, {
      resourceMetadataUrl: params.resourceMetadataUrl!,
    });
    expect(metadata).toMatchObject({
      resource: `${base}/mcp`,
      authorization_servers: [issuer, authIssuer],
      scopes_supported: ['mcp:use'],
      bearer_methods_supported: ['header'],
    });
    expect(checkResourceAllowed({ requestedResource: `${base}/mcp`, configuredResource: metadata.resource })).toBe(
      true,
    );
    // The root document (what a client tries after the path-aware one) names the base URL, and /v1 has its own.
    const root = await discoverOAuthProtectedResourceMetadata(base);
    expect(root.resource).toBe(base);
    const v1 = (await (await fetch(`${base}/.well-known/oauth-protected-resource/v1`)).json()) as { resource: string };
    expect(v1.resource).toBe(`${base}/v1`);
    expect((await fetch(`${base}/.well-known/oauth-protected-resource/other`)).status).toBe(404);
  });

  it('serves a valid token through the MCP SDK client, and never sends it upstream', async () => {
    const bearer = await token();
    const client = new Client({ name: 'oauth-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${bearer}` } },
      }),
    );
    const tools = await client.listTools();
    expect(tools.tools.some((t) => t.name === 'up__echo')).toBe(true);
    const result = await client.callTool({ name: 'up__echo', arguments: { message: 'through oauth' } });
    expect(JSON.stringify(result.content)).toContain('through oauth');
    await client.close();
    expect(upstreamHeaders.length).toBeGreaterThan(0);
    for (const headers of upstreamHeaders) {
      expect(headers.authorization).toBeUndefined();
      expect(JSON.stringify(headers)).not.toContain(bearer);
    }
  });

  it('serves a token from a real authorization server for its resource, and refuses one for another', async () => {
    const connect = async (bearer: string) => {
      const client = new Client({ name: 'oidc-client', version: '1.0.0' });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
          requestInit: { headers: { authorization: `Bearer ${bearer}` } },
        }),
      );
      return client;
    };
    const full = await connect(await issuedToken(`${base}/mcp`, 'mcp:use math:write'));
    const result = await full.callTool({ name: 'up__add', arguments: { a: 20, b: 22 } });
    expect(JSON.stringify(result.content)).toContain('42');
    await full.close();
    // A token granted less: the SDK client reads the 403 challenge and names the scopes to ask for.
    const narrow = await connect(await issuedToken(`${base}/mcp`, 'mcp:use'));
    await expect(narrow.callTool({ name: 'up__add', arguments: { a: 1, b: 1 } })).rejects.toThrow(
      /Insufficient scope: required "mcp:use math:write"/,
    );
    await narrow.close();
    // The same server, asked for a token for someone else's resource: its audience is not mcplex's.
    const refused = await post('/mcp', {
      authorization: `Bearer ${await issuedToken('https://elsewhere.example.com/mcp')}`,
    });
    expect(refused.status).toBe(401);
    expect(extractWWWAuthenticateParams(refused).error).toBe('invalid_token');
  });

  it('checks an opaque token by introspection at its issuer', async () => {
    const opaque = await issuedToken(`${base}/v1`);
    expect(opaque.split('.')).toHaveLength(1);
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: opaque });
    const chat = await client.chat.completions.create({
      model: 'mock-chat',
      messages: [{ role: 'user', content: 'hello' }],
    });
    expect(chat.choices[0]?.message.content).toBeTruthy();
    // One the issuer does not know (introspection says inactive) is refused with a challenge.
    const unknown = await fetch(`${base}/v1/models`, { headers: { authorization: 'Bearer made-up-opaque-token' } });
    expect(unknown.status).toBe(401);
    expect(extractWWWAuthenticateParams(unknown).error).toBe('invalid_token');
  });

  it('refuses a wrong audience, a wrong issuer, an expired token and a bad signature with invalid_token', async () => {
    const other = (await generateKeyPair('ES256')).privateKey;
    const cases: [string, string][] = [
      ['audience', await token({ aud: 'https://elsewhere.example.com/mcp' })],
      ['issuer', await token({ iss: 'https://evil.example.com' })],
      ['expired', await token({}, { exp: Math.floor(Date.now() / 1000) - 300 })],
      ['signature', await token({}, { key: other })],
    ];
    for (const [what, bearer] of cases) {
      const response = await post('/mcp', { authorization: `Bearer ${bearer}` });
      expect(response.status, what).toBe(401);
      const params = extractWWWAuthenticateParams(response);
      expect(params.error, what).toBe('invalid_token');
      expect(params.resourceMetadataUrl?.href, what).toBe(`${base}/.well-known/oauth-protected-resource/mcp`);
    }
  });

  it('refuses a token without the required scope with 403 insufficient_scope, naming the scope', async () => {
    const response = await post('/mcp', { authorization: `Bearer ${await token({ scope: 'profile' })}` });
    expect(response.status).toBe(403);
    const params = extractWWWAuthenticateParams(response);
    expect(params.error).toBe('insufficient_scope');
    expect(params.scope).toBe('mcp:use');
  });

  it('refuses a call to a server or tool that needs more scopes with 403, naming all it needs, in both eras', async () => {
    const connect = async (scope: string, era: 'legacy' | 'modern') => {
      const client = new Client(
        { name: 'scoped', version: '1.0.0' },
        { versionNegotiation: { mode: era === 'legacy' ? 'legacy' : 'auto' } },
      );
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
          requestInit: { headers: { authorization: `Bearer ${await token({ scope })}` } },
        }),
      );
      return client;
    };
    for (const era of ['legacy', 'modern'] as const) {
      const basic = await connect('mcp:use', era);
      // Listed for every principal the issuer lets in: the scope is asked for when the call is made.
      const names = (await basic.listTools()).tools.map((t) => t.name);
      expect(names, era).toEqual(expect.arrayContaining(['up__echo', 'up__add', 'st__echo']));
      expect(await basic.callTool({ name: 'up__echo', arguments: { message: 'plain' } }), era).toMatchObject({
        content: [{ text: 'plain' }],
      });
      await expect(basic.callTool({ name: 'up__add', arguments: { a: 1, b: 2 } }), era).rejects.toThrow();
      await expect(basic.callTool({ name: 'st__echo', arguments: { message: 'x' } }), era).rejects.toThrow();
      await basic.close();
      const granted = await connect('mcp:use math:write mcp:st', era);
      expect(
        JSON.stringify((await granted.callTool({ name: 'up__add', arguments: { a: 1, b: 2 } })).content),
      ).toContain('3');
      expect(await granted.callTool({ name: 'st__echo', arguments: { message: 'st' } }), era).toMatchObject({
        content: [{ text: 'st' }],
      });
      await granted.close();
    }
    // The answer itself, as a client sees it on the wire: 403 and the scopes a new token must carry.
    const call = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
        authorization: `Bearer ${await token()}`,
      },
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'up__add', arguments: { a: 1, b: 2 } } },
        { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'st__echo', arguments: { message: 'x' } } },
      ]),
    });
    expect(call.status).toBe(403);
    const params = extractWWWAuthenticateParams(call);
    expect(params.error).toBe('insufficient_scope');
    expect(new Set(params.scope?.split(' '))).toEqual(new Set(['mcp:use', 'math:write', 'mcp:st']));
    // An API key is not held to OAuth scopes.
    const keyed = new Client({ name: 'keyed', version: '1.0.0' });
    await keyed.connect(
      new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${apiKey}` } },
      }),
    );
    expect(JSON.stringify((await keyed.callTool({ name: 'up__add', arguments: { a: 2, b: 2 } })).content)).toContain(
      '4',
    );
    await keyed.close();
  });

  it('holds a tool-running chat on /v1 to the same scopes: tools it lacks are not offered, and never run', async () => {
    const chat = async (calls: { name: string; arguments: Record<string, unknown> }[]) => {
      mock.enqueue({ kind: 'tool_calls', calls }, { kind: 'report_tool_results' });
      const first = mock.requests.length;
      const response = await fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await token({ aud: `${base}/v1` })}` },
        body: JSON.stringify({ model: 'mock-chat', messages: [{ role: 'user', content: 'go' }], mcp: {} }),
      });
      expect(response.status).toBe(200);
      const body = mock.requests[first]?.body as { tools?: { function: { name: string } }[] } | undefined;
      const answer = (await response.json()) as {
        choices: { finish_reason: string; message: { content: string | null } }[];
        mcp: { steps: unknown[] };
      };
      return { offered: (body?.tools ?? []).map((t) => t.function.name), answer };
    };
    const allowed = await chat([{ name: 'up__echo', arguments: { message: 'allowed' } }]);
    expect(allowed.offered).toContain('up__echo');
    expect(allowed.offered).not.toContain('up__add');
    expect(allowed.offered.filter((name) => name.startsWith('st__'))).toEqual([]);
    expect(allowed.answer.choices[0]!.message.content).toContain('allowed');
    // A model that names the tool anyway gets it handed back to the client, unrun.
    const sums = mock.requests.length;
    const refused = await chat([{ name: 'up__add', arguments: { a: 1, b: 2 } }]);
    expect(refused.answer.choices[0]!.finish_reason).toBe('tool_calls');
    expect(refused.answer.mcp.steps).toEqual([]);
    // One model call, its tool call not run: the script's second step was never asked for.
    expect(mock.requests.length - sums).toBe(1);
    expect(mock.queued).toBe(1);
    mock.clearQueue();
  });

  it('never takes a credential from the query string, even beside a valid header', async () => {
    const bearer = await token();
    for (const path of [`/mcp?access_token=${bearer}`, `/v1/chat/completions?access_token=${bearer}`]) {
      const response = await post(path, { authorization: `Bearer ${bearer}` });
      expect(response.status, path).toBe(400);
      expect(extractWWWAuthenticateParams(response).error, path).toBe('invalid_request');
    }
  });

  it('serves /v1 to the openai SDK with a token, challenges a bad one, and keeps API keys working', async () => {
    const withToken = new OpenAI({ baseURL: `${base}/v1`, apiKey: await token({ aud: `${base}/v1` }) });
    const chat = await withToken.chat.completions.create({
      model: 'mock-chat',
      messages: [{ role: 'user', content: 'hello' }],
    });
    expect(chat.choices[0]?.message.content).toBeTruthy();
    const withKey = new OpenAI({ baseURL: `${base}/v1`, apiKey });
    expect((await withKey.models.list()).data.some((m) => m.id === 'mock-chat')).toBe(true);

    const bad = await fetch(`${base}/v1/models`, { headers: { authorization: 'Bearer not.a.token' } });
    expect(bad.status).toBe(401);
    const params = extractWWWAuthenticateParams(bad);
    expect(params.resourceMetadataUrl?.href).toBe(`${base}/.well-known/oauth-protected-resource/v1`);
    expect(params.error).toBe('invalid_token');
    // An API key on /mcp too.
    expect((await post('/mcp', { authorization: `Bearer ${apiKey}` })).status).toBe(200);
  });
});

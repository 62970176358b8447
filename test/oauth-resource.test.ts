// mcplex as an OAuth resource server, end to end: a built mcplex trusts a local issuer (RFC 8414 metadata and a
// JWKS served here, tokens signed with jose), fronts a Streamable HTTP fixture through a proxy that records what
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
import { allReady, listeningUrl, spawnMcplex, tempDir, writeConfig } from './support/harness.js';
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

  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const config = writeConfig(dir.path, {
    server: { port },
    store: `sqlite:${join(dir.path, 'mcplex.db')}`,
    auth: {
      mode: 'keys',
      oauth: { resource: base, issuers: [{ issuer, name: 'corp', requiredScopes: ['mcp:use'] }] },
    },
    mcpServers: { up: { url: `http://127.0.0.1:${proxyPort}${target.pathname}` } },
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
  await allReady(base).catch(() => undefined);
}, 60_000);

afterAll(async () => {
  await mcplex?.stop();
  await mock?.close();
  await fixture?.close();
  for (const server of [proxy, idp]) await new Promise<void>((resolve) => server?.close(() => resolve()));
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
      authorization_servers: [issuer],
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

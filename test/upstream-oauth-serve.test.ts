// Per-principal upstream OAuth through a built, serving mcplex: two API-key principals, an upstream MCP server that
// accepts only its authorization server's tokens for itself (oidc-provider), and the MCP SDK client. A principal
// that has not signed in gets a URL elicitation (-32042) naming mcplex's sign-in page; following it (the consent
// page, its CSRF-checked form, the authorization server's login and consent, the callback: scripted HTTP, cookies
// kept as a browser keeps them) signs it in, and the retried call runs with its own token. The other principal is
// still asked to sign in.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, ProtocolError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { startProtectedMcp } from './fixtures/oauth-mcp-server.js';
import type { ProtectedMcp } from './fixtures/oauth-mcp-server.js';
import { ROOT, freePort, listeningUrl, spawnMcplex, tempDir, waitFor, writeConfig } from './support/harness.js';
import type { SpawnedMcplex } from './support/harness.js';
import { signIn, startAuthorizationServer } from './support/oidc.js';
import type { AuthorizationServer } from './support/oidc.js';

const dir = tempDir('mcplex-upstream-oauth-serve-');
let as: AuthorizationServer;
let hosted: ProtectedMcp;
let mcplex: SpawnedMcplex;
let base = '';
const keys: Record<string, string> = {};
let configPath = '';

beforeAll(async () => {
  as = await startAuthorizationServer({ scopes: ['tools:call'] });
  hosted = await startProtectedMcp({ issuer: as.issuer, jwksUri: as.jwksUri, scopes: ['tools:call'] });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const config = writeConfig(dir.path, {
    server: { port },
    store: `sqlite:${join(dir.path, 'mcplex.db')}`,
    auth: {
      mode: 'keys',
      upstreamOAuth: {
        credentialKey: randomBytes(32).toString('base64'),
        publicUrl: base,
        // The authorization server runs on this machine, as a development one would.
        allowPrivateHosts: ['127.0.0.1'],
        insecureHosts: ['127.0.0.1'],
      },
    },
    mcpServers: { hosted: { url: hosted.url, auth: { type: 'oauth' } } },
  });
  configPath = config;
  for (const name of ['alice', 'bob', 'carol', 'ops']) {
    const out = execFileSync(
      process.execPath,
      [
        join(ROOT, 'bin', 'mcplex.js'),
        'keys',
        'create',
        '--name',
        name,
        ...(name === 'ops' ? ['--admin'] : []),
        '-c',
        config,
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    keys[name] = /mcx_\S+/.exec(out)![0];
  }
  mcplex = spawnMcplex(['serve', '--config', config]);
  await listeningUrl(mcplex);
}, 60_000);

afterAll(async () => {
  await mcplex?.stop();
  await hosted?.close();
  await as?.close();
  dir.remove();
});

async function connect(name: string): Promise<Client> {
  const client = new Client(
    { name: `client-of-${name}`, version: '1.0.0' },
    { versionNegotiation: { mode: 'legacy' } },
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${keys[name]}` } },
    }),
  );
  return client;
}

/** The call's URL elicitation: the error -32042 and the link it carries. */
async function signInLink(client: Client, tool: string): Promise<string> {
  const error = await client.callTool({ name: tool, arguments: {} }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProtocolError);
  expect((error as ProtocolError).code).toBe(-32042);
  const { elicitations } = (error as ProtocolError).data as { elicitations: { mode: string; url: string }[] };
  const [elicitation] = elicitations;
  expect(elicitation).toMatchObject({ mode: 'url' });
  return elicitation!.url;
}

/**
 * A browser following a sign-in link: the consent page, its form (with the page's cookie and token, from mcplex's
 * own origin), the authorization server's login and consent as `login`, and the callback with the cookie the
 * consent set.
 */
async function follow(link: string, login: string) {
  const pageResponse = await fetch(link);
  expect(pageResponse.status).toBe(200);
  const page = await pageResponse.text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
  const cookies = (response: Response) =>
    response.headers
      .getSetCookie()
      .map((c) => c.split(';')[0]!)
      .filter((c) => !c.endsWith('='))
      .join('; ');
  const consented = await fetch(link, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookies(pageResponse), origin: base },
    body: new URLSearchParams({ csrf }),
  });
  expect(consented.status).toBe(303);
  const authorizationUrl = new URL(consented.headers.get('location')!);
  const back = await signIn(authorizationUrl, login, `${base}/oauth/callback`);
  const done = await fetch(back, { headers: { cookie: cookies(consented) } });
  return { page, headers: pageResponse.headers, authorizationUrl, done };
}

describe('per-principal upstream OAuth, served', () => {
  it('offers sign_in while nobody has signed in; the link signs the caller in; its calls carry its own token', async () => {
    const alice = await connect('alice');
    try {
      expect((await alice.listTools()).tools.map((t) => t.name)).toEqual(['hosted__sign_in']);
      const link = await signInLink(alice, 'hosted__sign_in');
      expect(link).toMatch(new RegExp(`^${base}/oauth/sign-in/[A-Za-z0-9_-]{43}$`));

      // Without the consent page's CSRF cookie its form is refused.
      const csrf = /name="csrf" value="([^"]+)"/.exec(await (await fetch(link)).text())![1]!;
      const forged = await fetch(link, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf }),
      });
      expect(forged.status).toBe(403);
      const { page, headers, authorizationUrl, done } = await follow(link, 'alice');
      expect(headers.get('x-frame-options')).toBe('DENY');
      // The page names the client that asked (as it calls itself), the principal and the server.
      expect(page).toContain('client-of-alice');
      expect(page).toContain('hosted');
      expect(authorizationUrl.origin).toBe(as.issuer);
      expect(authorizationUrl.searchParams.get('resource')).toBe(hosted.url);
      expect(done.status).toBe(200);
      expect(await done.text()).toContain('Signed in to hosted');
      // The link was used: opening it again shows that it expired.
      expect((await fetch(link)).status).toBe(404);

      // Alice's sign-in lists the server's own tools; her call runs with her token, for this upstream.
      await waitFor(
        async () => (await alice.listTools()).tools.some((t) => t.name === 'hosted__whoami'),
        "the upstream's tools",
      );
      const result = await alice.callTool({ name: 'hosted__whoami', arguments: {} });
      expect((result.content as { text: string }[])[0]!.text).toBe(`alice for ${hosted.url}`);
      expect(hosted.calls.at(-1)).toMatchObject({ subject: 'alice', audience: hosted.url });
    } finally {
      await alice.close();
    }
  });

  it("does not lend one principal's token to another: bob is asked to sign in, and his retried call runs as him", async () => {
    const bob = await connect('bob');
    try {
      const before = hosted.calls.length;
      const link = await signInLink(bob, 'hosted__whoami');
      expect(link).toMatch(/\/oauth\/sign-in\//);
      // The tool did not run for bob, with anyone's token.
      expect(hosted.calls.length).toBe(before);
      // Bob follows his own link; his retried call runs with his token, for this upstream.
      expect((await follow(link, 'bob')).done.status).toBe(200);
      const result = await bob.callTool({ name: 'hosted__whoami', arguments: {} });
      expect((result.content as { text: string }[])[0]!.text).toBe(`bob for ${hosted.url}`);
      expect(hosted.calls.at(-1)).toMatchObject({ subject: 'bob', audience: hosted.url });
    } finally {
      await bob.close();
    }
  });

  // With a progress token the call takes the SDK server's path; without, mcplex's fast path.
  it.each([
    ['fast path', {}],
    ['SDK path', { progressToken: 'p1' }],
  ])('asks a 2026-07-28 caller with an input-required URL request instead of -32042 (%s)', async (_, extra) => {
    const response = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${keys.carol}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'hosted__whoami',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: {
          name: 'hosted__whoami',
          arguments: {},
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientInfo': { name: 'modern', version: '1.0.0' },
            'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } },
            ...extra,
          },
        },
      }),
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    const body = JSON.parse(
      text.startsWith('{')
        ? text
        : text
            .split('\n')
            .find((line) => line.startsWith('data: {'))!
            .slice(6),
    ) as {
      error?: unknown;
      result?: {
        resultType?: string;
        inputRequests?: Record<string, { method: string; params: { mode: string; url: string } }>;
      };
    };
    expect(body.error).toBeUndefined();
    expect(body.result?.resultType).toBe('input_required');
    const [request] = Object.values(body.result?.inputRequests ?? {});
    expect(request).toMatchObject({ method: 'elicitation/create', params: { mode: 'url' } });
    expect(request!.params.url).toMatch(new RegExp(`^${base}/oauth/sign-in/[A-Za-z0-9_-]{43}$`));
  });

  it('lists and revokes connections from /admin and the CLI: a revoked principal is asked to sign in again', async () => {
    const admin = { authorization: `Bearer ${keys.ops}` };
    expect(
      (await fetch(`${base}/admin/connections`, { headers: { authorization: `Bearer ${keys.bob}` } })).status,
    ).toBe(403);
    const listed = (await (await fetch(`${base}/admin/connections`, { headers: admin })).json()) as {
      data: { principal: string; upstream: string; issuer: string; refreshable: boolean }[];
    };
    // A key's principal is its id, the part of the key between mcx_ and the secret.
    const idOf = (name: string) => /^mcx_([^_]+)_/.exec(keys[name]!)![1]!;
    expect(listed.data.map((c) => c.principal).sort()).toEqual([idOf('alice'), idOf('bob')].sort());
    const alice = listed.data.find((c) => c.principal === idOf('alice'));
    expect(alice).toMatchObject({ upstream: 'hosted', issuer: as.issuer, refreshable: true });
    expect(JSON.stringify(listed)).not.toMatch(/access_token|refresh_token|eyJ/);
    const cli = JSON.parse(
      execFileSync(
        process.execPath,
        [
          join(ROOT, 'bin', 'mcplex.js'),
          'connections',
          'list',
          '--principal',
          idOf('alice'),
          '--json',
          '-c',
          configPath,
        ],
        { cwd: ROOT, encoding: 'utf8' },
      ),
    ) as { principal: string; upstream: string }[];
    expect(cli).toEqual([expect.objectContaining({ principal: idOf('alice'), upstream: 'hosted' })]);

    const revoke = `${base}/admin/connections/hosted?principal=${encodeURIComponent(alice!.principal)}`;
    expect((await fetch(revoke, { method: 'DELETE', headers: admin })).status).toBe(200);
    expect((await fetch(revoke, { method: 'DELETE', headers: admin })).status).toBe(404);
    const client = await connect('alice');
    const bob = await connect('bob');
    try {
      await signInLink(client, 'hosted__whoami');
      // Bob's sign-in is his own, and stays.
      const result = await bob.callTool({ name: 'hosted__whoami', arguments: {} });
      expect((result.content as { text: string }[])[0]!.text).toBe(`bob for ${hosted.url}`);
    } finally {
      await client.close();
      await bob.close();
    }
  });

  it('refuses a callback without the browser that started the sign-in, and a made-up link', async () => {
    const made = await fetch(`${base}/oauth/sign-in/${'A'.repeat(43)}`);
    expect(made.status).toBe(404);
    const callback = await fetch(`${base}/oauth/callback?state=made-up&code=x`);
    expect(callback.status).toBe(400);
    expect(await callback.text()).toContain('Signing in failed');
  });
});

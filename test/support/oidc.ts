// A real OAuth 2.1 authorization server for tests (oidc-provider, panva): the authorization code flow with PKCE,
// refresh tokens, resource indicators (JWT access tokens whose audience is the resource asked for), dynamic client
// registration and its development login and consent pages, which signIn() walks like a browser would.
import { once } from 'node:events';
import type { Server } from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import { freePort } from './harness.js';

export interface AuthorizationServer {
  issuer: string;
  jwksUri: string;
  /** Refresh-token grants answered, successful or not. */
  readonly refreshes: number;
  close(): Promise<void>;
}

export interface AuthorizationServerOptions {
  /** Access tokens' lifetime, seconds (default 300). */
  accessTokenTtl?: number;
  /** Clients registered in advance (else only dynamic registration). */
  clients?: { client_id: string; redirect_uris: string[] }[];
  scopes?: string[];
}

export async function startAuthorizationServer(options: AuthorizationServerOptions = {}): Promise<AuthorizationServer> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const key = (await generateKeyPair('ES256', { extractable: true })).privateKey;
  // RS256 too: what a registering client gets for its ID tokens unless it asks otherwise.
  const rsa = (await generateKeyPair('RS256', { extractable: true })).privateKey;
  const scopes = options.scopes ?? ['tools:call'];
  const provider = new Provider(issuer, {
    clients: (options.clients ?? []).map((c) => ({
      ...c,
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    })),
    jwks: {
      keys: [
        { ...(await exportJWK(key)), kid: 'as-1', alg: 'ES256', use: 'sig' },
        { ...(await exportJWK(rsa)), kid: 'as-2', alg: 'RS256', use: 'sig' },
      ],
    },
    scopes: ['openid', 'offline_access', ...scopes],
    ttl: { AccessToken: options.accessTokenTtl ?? 300 },
    findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub }) }),
    issueRefreshToken: () => true,
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: () => true,
        defaultResource: () => undefined as unknown as string,
        getResourceServerInfo: (_ctx: unknown, resource: string) => ({
          scope: scopes.join(' '),
          audience: resource,
          accessTokenFormat: 'jwt' as const,
          jwt: { sign: { alg: 'ES256' as const } },
        }),
      },
    },
  });
  let refreshes = 0;
  provider.on('grant.success', (ctx: { oidc?: { params?: { grant_type?: unknown } } }) => {
    if (ctx.oidc?.params?.grant_type === 'refresh_token') refreshes++;
  });
  provider.on('grant.error', (ctx: { oidc?: { params?: { grant_type?: unknown } } }) => {
    if (ctx.oidc?.params?.grant_type === 'refresh_token') refreshes++;
  });
  const server: Server = provider.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    get refreshes() {
      return refreshes;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Follows an authorization URL as a browser would, through the development login (as `login`) and consent pages,
 * and returns the URL the authorization server sends the browser back to (not followed).
 */
export async function signIn(authorizationUrl: string | URL, login: string, callbackPrefix: string): Promise<URL> {
  const cookies = new Map<string, string>();
  const keep = (response: Response) => {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair!.indexOf('=');
      cookies.set(pair!.slice(0, at).trim(), pair!.slice(at + 1));
    }
  };
  const cookie = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  let url = new URL(authorizationUrl);
  let body: URLSearchParams | undefined;
  for (let step = 0; step < 20; step++) {
    if (url.href.startsWith(callbackPrefix)) return url;
    const response = await fetch(url, {
      method: body ? 'POST' : 'GET',
      redirect: 'manual',
      headers: { cookie: cookie(), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      ...(body ? { body } : {}),
    });
    keep(response);
    body = undefined;
    const location = response.headers.get('location');
    if (location !== null) {
      await response.arrayBuffer();
      url = new URL(location, url);
      continue;
    }
    const html = await response.text();
    const action = /<form[^>]*action="([^"]+)"/i.exec(html)?.[1];
    if (response.status !== 200 || action === undefined) {
      throw new Error(`sign-in stopped at ${url.href} (${response.status}): ${html.slice(0, 300)}`);
    }
    body = new URLSearchParams();
    for (const input of html.matchAll(/<input[^>]*>/gi)) {
      const name = /name="([^"]+)"/.exec(input[0])?.[1];
      if (name === undefined) continue;
      const value = /value="([^"]*)"/.exec(input[0])?.[1] ?? '';
      body.set(name, name === 'login' ? login : name === 'password' ? 'any' : value);
    }
    url = new URL(action.replace(/&amp;/g, '&'), url);
  }
  throw new Error('sign-in took more than 20 steps');
}

// mcplex's own sign-in pages for upstreams that sign each principal in: GET /oauth/sign-in/<ticket> shows who asks
// for what (the principal, the upstream, the scopes) and asks for consent; its form (POST, with a CSRF token that
// must match a cookie of this page) uses the one-use ticket, starts the OAuth sign-in bound to this browser (a
// cookie the callback must bring back) and sends the browser to the upstream's authorization server; GET
// /oauth/callback finishes it. Pages are plain HTML that no other site may frame, with no referrer sent on.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log/logger.js';
import { readBody } from '../wire/body.js';
import { SignInError } from '../policy/upstream-oauth/upstream-oauth.js';
import type { UpstreamOAuth } from '../policy/upstream-oauth/upstream-oauth.js';

export interface SignInPagesOptions {
  oauth: UpstreamOAuth;
  /** mcplex's base URL as browsers reach it. */
  publicUrl: string;
  /** A principal finished signing in to an upstream. */
  onSignedIn(upstream: string, principal: string): void;
  logger: Logger;
}

const CSRF_COOKIE = 'mcplex_signin_csrf';
const BROWSER_COOKIE = 'mcplex_signin';
const MAX_FORM_BYTES = 4096;
const TICKET = /^\/oauth\/sign-in\/([A-Za-z0-9_-]{43})$/;

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function page(res: ServerResponse, status: number, title: string, body: string, cookies: string[] = []): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
    ...(cookies.length > 0 ? { 'set-cookie': cookies } : {}),
  });
  res.end(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>` +
      '<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.5}' +
      'button{font-size:1rem;padding:.5rem 1.25rem}code{background:#eee;padding:0 .25rem}</style></head>' +
      `<body><h1>${escape(title)}</h1>${body}</body></html>`,
  );
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** The consent form's fields; undefined for anything else (another type, or more than a form could be). */
async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return undefined;
  const body = await readBody(req, MAX_FORM_BYTES).catch(() => undefined);
  return body && new URLSearchParams(body.toString('utf8'));
}

export interface SignInPages {
  /** Serves the request when it is one of the sign-in pages; false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean>;
}

export function createSignInPages(options: SignInPagesOptions): SignInPages {
  const { oauth, logger } = options;
  const origin = new URL(options.publicUrl).origin;
  const secure = origin.startsWith('https:') ? '; Secure' : '';
  const cookie = (name: string, value: string, maxAgeSec: number, sameSite: 'Strict' | 'Lax') =>
    `${name}=${value}; Path=/oauth; HttpOnly; SameSite=${sameSite}; Max-Age=${maxAgeSec}${secure}`;

  async function consentPage(res: ServerResponse, ticket: string): Promise<void> {
    const found = await oauth.peekTicket(ticket);
    if (!found) {
      return page(res, 404, 'This sign-in link has expired', '<p>Call the tool again to get a new link.</p>');
    }
    const csrf = randomBytes(32).toString('base64url');
    const scopes =
      found.scopes.length > 0
        ? `<p>Scopes asked for: ${found.scopes.map((s) => `<code>${escape(s)}</code>`).join(' ')}</p>`
        : '';
    page(
      res,
      200,
      `Sign in to ${found.upstream}`,
      `<p>${found.client === undefined ? 'A client of mcplex' : `The client <strong>${escape(found.client)}</strong>`} ` +
        `acting as <code>${escape(found.principal)}</code> wants to use the MCP server ` +
        `<code>${escape(found.upstream)}</code> with your account there.</p>${scopes}` +
        '<p>Continue, and you are sent to its sign-in page; what you allow there is what mcplex may do for ' +
        'this principal, and nobody else.</p>' +
        `<form method="post"><input type="hidden" name="csrf" value="${csrf}"><button type="submit">Continue</button></form>`,
      [cookie(CSRF_COOKIE, csrf, 600, 'Strict')],
    );
  }

  async function consent(req: IncomingMessage, res: ServerResponse, ticket: string): Promise<void> {
    const sentOrigin = req.headers.origin;
    const form = await readForm(req);
    const expected = cookieOf(req, CSRF_COOKIE);
    const given = form?.get('csrf') ?? '';
    if ((sentOrigin !== undefined && sentOrigin !== origin) || expected === undefined || !same(expected, given)) {
      return page(res, 403, 'This request was not sent from the sign-in page', '<p>Open the sign-in link again.</p>');
    }
    const found = await oauth.redeemTicket(ticket);
    if (!found) {
      return page(res, 404, 'This sign-in link has expired', '<p>Call the tool again to get a new link.</p>');
    }
    const browser = randomBytes(32).toString('base64url');
    let started;
    try {
      started = await oauth.begin(found.principal, found.upstream, browser, found.scope);
    } catch (error) {
      logger.warn({ err: error, server: found.upstream }, 'starting an upstream sign-in failed');
      const message = error instanceof SignInError ? error.message : 'the server could not be reached';
      return page(res, 502, `Signing in to ${found.upstream} failed`, `<p>${escape(message)}</p>`);
    }
    const maxAge = Math.max(1, Math.round((started.expiresAt - Date.now()) / 1000));
    res.writeHead(303, {
      location: started.authorizationUrl.href,
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'set-cookie': [cookie(BROWSER_COOKIE, browser, maxAge, 'Lax'), cookie(CSRF_COOKIE, '', 0, 'Strict')],
    });
    res.end();
  }

  async function callback(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const value = (name: string) => query.get(name) ?? undefined;
    try {
      const done = await oauth.complete(
        { state: value('state'), code: value('code'), iss: value('iss'), error: value('error') },
        cookieOf(req, BROWSER_COOKIE),
      );
      options.onSignedIn(done.upstream, done.principal);
      page(
        res,
        200,
        `Signed in to ${done.upstream}`,
        '<p>You can close this page and go back to your client: call the tool again.</p>',
        [cookie(BROWSER_COOKIE, '', 0, 'Lax')],
      );
    } catch (error) {
      if (!(error instanceof SignInError)) logger.warn({ err: error }, 'an upstream sign-in failed at its callback');
      const message = error instanceof SignInError ? error.message : 'the authorization server could not be reached';
      page(res, 400, 'Signing in failed', `<p>${escape(message)}</p><p>Call the tool again to start over.</p>`);
    }
  }

  return {
    async handle(req, res, path) {
      const ticket = TICKET.exec(path)?.[1];
      if (ticket !== undefined && req.method === 'GET') await consentPage(res, ticket);
      else if (ticket !== undefined && req.method === 'POST') await consent(req, res, ticket);
      else if (path === '/oauth/callback' && req.method === 'GET') await callback(req, res);
      else return false;
      return true;
    },
  };
}

// How a refused credential is answered over HTTP: the status and the `WWW-Authenticate` challenge (RFC 6750, and
// with OAuth configured the MCP authorization specification's: the protected-resource metadata's URL, RFC 9728, and
// the scopes to ask for).
import type { ServerResponse } from 'node:http';
import { sendJsonRpcError } from '../../wire/json.js';
import type { AuthFailure, AuthResult } from './keys.js';
import type { OAuthVerifier } from './oauth.js';

export interface AuthAnswer {
  status: 400 | 401 | 403 | 503;
  /** The `WWW-Authenticate` value; undefined for a 503. */
  challenge: string | undefined;
  message: string;
}

const MESSAGES: Record<AuthFailure, string> = {
  missing: 'an API key or access token is required (Authorization: Bearer …)',
  malformed: 'the credential is not an API key',
  unknown: 'API key unknown',
  revoked: 'API key revoked',
  expired: 'API key expired',
  invalid_token: 'the access token is not valid',
  insufficient_scope: 'the access token lacks a required scope',
  query_token: 'credentials are accepted only in the Authorization header, never in the query string',
  unavailable: 'the access token could not be checked now',
};

/** A quoted-string of RFC 9110 (our own texts only, but escaped all the same). */
const quoted = (value: string) => `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

/** The answer to a failed authentication of a request for `resource` (`/mcp` or `/v1`). */
export function authAnswer(
  auth: Extract<AuthResult, { ok: false }>,
  resource: '/mcp' | '/v1',
  oauth: OAuthVerifier | undefined,
): AuthAnswer {
  const message = auth.message ?? MESSAGES[auth.reason];
  if (auth.reason === 'unavailable') return { status: 503, challenge: undefined, message };
  const status = auth.reason === 'query_token' ? 400 : auth.reason === 'insufficient_scope' ? 403 : 401;
  const error =
    auth.reason === 'query_token'
      ? 'invalid_request'
      : auth.reason === 'insufficient_scope'
        ? 'insufficient_scope'
        : auth.reason === 'missing'
          ? undefined
          : 'invalid_token';
  if (!oauth) {
    // API keys only: the challenge as it always was.
    return { status, challenge: `Bearer realm="mcplex", error="${error ?? 'invalid_request'}"`, message };
  }
  const parts = [`resource_metadata=${quoted(oauth.metadataUrl(resource))}`];
  const scopes = auth.reason === 'insufficient_scope' ? (auth.scopes ?? []) : oauth.challengeScopes;
  if (scopes.length > 0) parts.push(`scope=${quoted(scopes.join(' '))}`);
  // A request without credentials gets no error code (RFC 6750 section 3.1).
  if (error !== undefined) parts.push(`error=${quoted(error)}`, `error_description=${quoted(message)}`);
  return { status, challenge: `Bearer ${parts.join(', ')}`, message };
}

/**
 * Refuses an /mcp request whose calls need more scopes than its token has: 403 insufficient_scope, the challenge
 * naming the issuer's scopes and the calls' own, all of which a new token must carry.
 */
export function refuseMcpScope(res: ServerResponse, oauth: OAuthVerifier, needed: readonly string[]): void {
  const scopes = [...new Set([...oauth.challengeScopes, ...needed])];
  const message = `this call needs the scope ${needed.join(', ')}`;
  const answer = authAnswer({ ok: false, reason: 'insufficient_scope', scopes, message }, '/mcp', oauth);
  if (answer.challenge !== undefined) res.setHeader('www-authenticate', answer.challenge);
  sendJsonRpcError(res, answer.status, { code: -32001, message: answer.message });
}

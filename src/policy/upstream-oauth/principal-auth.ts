// What an upstream that signs each principal in asks of mcplex's OAuth client (the shape of the PrincipalAuth of
// mcp/upstream/principal-clients.ts, which a policy does not import): a principal's token, a refresh when it is refused, the principal whose token
// lists the catalog, and, for a principal that has not signed in, the URL elicitation (-32042) that links to
// mcplex's sign-in page.
import { UrlElicitationRequiredError } from '@modelcontextprotocol/server';
import type { UpstreamOAuth } from './upstream-oauth.js';

export function principalAuthFor(oauth: UpstreamOAuth, upstream: string, publicUrl: string) {
  const base = publicUrl.replace(/\/+$/, '');
  return {
    token: (principal: string) => oauth.accessToken(principal, upstream),
    refused: (principal: string, token: string) => oauth.refused(principal, upstream, token),
    lister: (): Promise<string | undefined> => oauth.lastSignedIn(upstream),
    async signInRequired(principal: string, needed?: string, client?: string): Promise<Error> {
      // A step-up asks for what the principal was granted and what the upstream asks for now, together.
      const granted =
        needed === undefined
          ? []
          : (await oauth.connections(principal))
              .filter((c) => c.upstream === upstream)
              .flatMap((c) => c.scope?.split(' ') ?? []);
      const scope =
        needed === undefined ? undefined : [...new Set([...granted, ...needed.split(' ')])].filter(Boolean).join(' ');
      const ticket = await oauth.ticket(principal, upstream, scope, client);
      const message =
        scope === undefined
          ? `Sign in to "${upstream}" to use its tools; then call the tool again.`
          : `"${upstream}" needs more permissions for this (${scope}): sign in again; then call the tool again.`;
      return new UrlElicitationRequiredError(
        [{ mode: 'url', elicitationId: ticket.id.slice(0, 16), url: `${base}/oauth/sign-in/${ticket.id}`, message }],
        message,
      );
    },
  };
}

// The connections of an upstream whose calls carry each principal's own OAuth token: one MCP client per principal
// that has called it lately (at most MAX_CLIENTS, the least recently used closed first, each closed after an idle
// time), its token asked for before every request, so a refresh is picked up and no principal's request ever
// carries another's token.
import { Client } from '@modelcontextprotocol/client';
import type { AuthProvider } from '@modelcontextprotocol/client';
import type { ServerConfig } from '../../config/schema.js';
import { createUpstreamTransport } from './transport.js';

/** Each principal's token for one upstream (policy/upstream-oauth provides it). */
export interface PrincipalAuth {
  /** The principal's token, or undefined: it has to sign in first. */
  token(principal: string): Promise<string | undefined>;
  /** The upstream refused `token` (401): a refreshed one, or undefined. */
  refused(principal: string, token: string): Promise<string | undefined>;
  /** A principal whose token lists the server's tools (the one that signed in last), or undefined. */
  lister(): Promise<string | undefined>;
  /**
   * The error a principal that has to sign in gets: it carries the link to mcplex's sign-in page; `scope` when the
   * upstream asked for more than the principal's token grants (step-up).
   */
  signInRequired(principal: string, scope?: string, client?: string): Promise<Error>;
}

/** The transport's view of one principal's token: asked for before every request. */
export function principalAuthProvider(auth: PrincipalAuth, principal: () => Promise<string | undefined>): AuthProvider {
  let last: { principal: string; token: string } | undefined;
  return {
    async token() {
      const who = await principal();
      if (who === undefined) return undefined;
      const token = await auth.token(who);
      last = token === undefined ? undefined : { principal: who, token };
      return token;
    },
    async onUnauthorized() {
      if (last) await auth.refused(last.principal, last.token);
    },
  };
}

const MAX_CLIENTS = 256;
const IDLE_MS = 10 * 60_000;

interface Held {
  client: Promise<Client>;
  timer: NodeJS.Timeout;
}

export class PrincipalClients {
  private readonly held = new Map<string, Held>();

  constructor(
    private readonly config: ServerConfig,
    private readonly auth: PrincipalAuth,
    private readonly clientInfo: { name: string; version: string },
  ) {}

  /** The principal's connected client; the sign-in error (for the calling `client`) when it has no token. */
  async get(principal: string, client?: string): Promise<Client> {
    if ((await this.auth.token(principal)) === undefined) {
      throw await this.auth.signInRequired(principal, undefined, client);
    }
    const found = this.held.get(principal);
    if (found) {
      // Most recently used last: the Map's order is the eviction order.
      this.held.delete(principal);
      this.held.set(principal, found);
      found.timer.refresh();
      return found.client;
    }
    while (this.held.size >= MAX_CLIENTS) this.drop(this.held.keys().next().value!);
    const connected = (async () => {
      const sdk = new Client(this.clientInfo, { versionNegotiation: { mode: 'auto' } });
      const { transport } = createUpstreamTransport(
        this.config,
        principalAuthProvider(this.auth, async () => principal),
      );
      await sdk.connect(transport);
      return sdk;
    })();
    const timer = setTimeout(() => this.drop(principal), IDLE_MS);
    timer.unref();
    this.held.set(principal, { client: connected, timer });
    // A client that failed to connect is not kept: the next call tries again.
    connected.catch(() => this.drop(principal));
    return connected;
  }

  /** The sign-in error for a principal whose token the upstream found short of `scope` (403 insufficient_scope). */
  stepUp(principal: string, scope: string | undefined, client?: string): Promise<Error> {
    this.drop(principal);
    return this.auth.signInRequired(principal, scope, client);
  }

  /** Closes the principal's client (its tokens were revoked, or it went idle). */
  drop(principal: string): void {
    const found = this.held.get(principal);
    if (!found) return;
    this.held.delete(principal);
    clearTimeout(found.timer);
    found.client.then((c) => c.close()).catch(() => {});
  }

  async close(): Promise<void> {
    for (const principal of [...this.held.keys()]) this.drop(principal);
  }
}

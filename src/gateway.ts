// The MCP side of mcplex that every front end shares: the upstream connections, the merged catalog,
// and the factory of aggregated server instances.
import type { Server } from '@modelcontextprotocol/server';
import type { Config } from './config/schema.js';
import type { Logger } from './log/logger.js';
import { createInputRounds } from './mcp/bridge/input-rounds.js';
import { Catalog } from './mcp/catalog/catalog.js';
import { createSubscriptions } from './mcp/downstream/subscriptions.js';
import type { Subscriptions } from './mcp/downstream/subscriptions.js';
import { createAggregateServer } from './mcp/downstream/aggregate-server.js';
import type { SessionSubscriptions } from './mcp/downstream/aggregate-server.js';
import { Upstream } from './mcp/upstream/upstream.js';
import type { UpstreamStatus } from './mcp/upstream/upstream.js';
import type { PrincipalAuth } from './mcp/upstream/principal-clients.js';
import { VERSION } from './version.js';
import type { Principal } from './policy/auth/keys.js';
import { ANONYMOUS } from './policy/auth/keys.js';
import type { AdmitCall, McpCallGuard } from './policy/limits/mcp-call-limits.js';
import type { PubSub } from './store/coordination.js';

export interface Gateway {
  readonly upstreams: readonly Upstream[];
  readonly catalog: Catalog;
  /** Resource subscriptions by URI, shared by every downstream client. */
  readonly subscriptions: Subscriptions;
  /**
   * A fresh aggregated server instance (one per request over HTTP, per stdio connection); a request of a 2025-11-25
   * session passes the session's subscriptions.
   */
  createServer(era: 'legacy' | 'modern', principal?: Principal, session?: SessionSubscriptions): Server;
  /** Starts every enabled upstream in the background. */
  start(): void;
  /** Resolves when every upstream's first connection attempt has settled. */
  whenSettled(): Promise<void>;
  status(): { settled: boolean; servers: UpstreamStatus[] };
  /** Admits `principal`'s calls that reach an upstream (under its key's and the servers' limits), when limited. */
  admitFor(principal: Principal): AdmitCall | undefined;
  close(): Promise<void>;
}

export interface GatewayOptions {
  /** The shared LLM's answer to a server's sampling request, or undefined to ask the calling client. */
  sample?: (serverKey: string, params: unknown) => Promise<unknown> | undefined;
  /** Whether `sample` answers the server's sampling requests (its policy is "gateway"). */
  samples?: (serverKey: string) => boolean;
  /** This process's name among the replicas, and how it reaches the others (input-required rounds). */
  replica?: string;
  pubsub?: PubSub;
  /** The limits and the accounting of calls that reach an upstream. */
  calls?: McpCallGuard;
  /** For a server that signs each principal in (`auth.type: "oauth"`): each principal's own token. */
  principalAuth?: (serverKey: string) => PrincipalAuth | undefined;
}

export function createGateway(config: Config, logger: Logger, options: GatewayOptions = {}): Gateway {
  // Upstreams report changes to the catalog, which is built from the upstreams: the holder breaks the cycle.
  const holder: { catalog?: Catalog; subscriptions?: Subscriptions } = {};
  const upstreams = Object.entries(config.mcpServers).map(([key, serverConfig]) => {
    const principalAuth = options.principalAuth?.(key);
    return new Upstream(key, serverConfig, {
      logger,
      clientInfo: { name: 'mcplex', version: VERSION },
      onChange: (_upstream, announced) => holder.catalog?.rebuild(announced),
      onResourceUpdated: (upstream, uri) => holder.subscriptions?.updated(upstream, uri),
      ...(options.sample ? { sample: (upstream, params) => options.sample!(upstream.key, params) } : {}),
      ...(options.samples ? { samples: (upstream) => options.samples!(upstream.key) } : {}),
      ...(principalAuth ? { principalAuth } : {}),
    });
  });
  const merged = new Catalog(upstreams);
  const { key, previousKey, ttlMs } = config.server.requestState;
  const rounds = createInputRounds({
    ttlMs,
    ...(options.replica === undefined ? {} : { replica: options.replica }),
    ...(options.pubsub ? { pubsub: options.pubsub } : {}),
    ...(key === undefined ? {} : { key }),
    ...(previousKey === undefined ? {} : { previousKey }),
  });
  const subscriptions = createSubscriptions(merged);
  holder.subscriptions = subscriptions;
  holder.catalog = merged;
  const { calls } = options;
  const admitFor = (principal: Principal): AdmitCall | undefined =>
    calls ? (call) => calls.admit(principal, call) : undefined;
  let settled = false;
  const settledPromise = Promise.all(upstreams.map((u) => u.whenSettled())).then(() => {
    settled = true;
  });

  return {
    upstreams,
    catalog: merged,
    subscriptions,
    createServer: (_era, principal, session) => {
      const admit = admitFor(principal ?? ANONYMOUS);
      return createAggregateServer(merged, {
        ...(principal ? { scopes: principal.scopes, principal: principal.id } : {}),
        ...(admit ? { admit } : {}),
        ...(session ? { session } : {}),
        name: 'mcplex',
        version: VERSION,
        pageSize: config.server.pageSize,
        rounds,
        // 2026-07-28 clients subscribe through subscriptions/listen, which the HTTP endpoint feeds; a server
        // instance for them only needs to declare resources.subscribe so that the listen stream honours URIs.
        subscriptions,
        maxSubscriptions: config.server.maxSubscriptions,
      });
    },
    admitFor,
    start() {
      for (const upstream of upstreams) upstream.start();
    },
    whenSettled: () => settledPromise,
    status: () => ({ settled, servers: upstreams.map((u) => u.status()) }),
    async close() {
      rounds.close();
      await Promise.allSettled(upstreams.map((u) => u.close()));
    },
  };
}

// Composition root: config → upstream connections → aggregated server → HTTP listener or stdio.
import { once } from 'node:events';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Server as HttpServer, ServerResponse } from 'node:http';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import type { Server } from '@modelcontextprotocol/server';
import { DEFAULT_STORE } from './config/schema.js';
import type { Config } from './config/schema.js';
import type { Logger } from './log/logger.js';
import { McplexError, errorMessage } from './errors.js';
import { openStore } from './store/open-store.js';
import { createUpstreamOAuth } from './policy/upstream-oauth/upstream-oauth.js';
import type { UpstreamOAuth } from './policy/upstream-oauth/upstream-oauth.js';
import { createVault, parseVaultKey } from './policy/upstream-oauth/vault.js';
import { principalAuthFor } from './policy/upstream-oauth/principal-auth.js';
import { createSignInPages } from './http/sign-in-pages.js';
import { redactUrl } from './store/redact-url.js';
import type { CacheStore, LimitStore, Store } from './store/store.js';
import type { Coordination, Leases } from './store/coordination.js';
import { reserveAhead } from './store/reserved-limits.js';
import { poolLeases } from './store/pooled-leases.js';
import { createFallbacks } from './store/fallback.js';
import type { SharedStateHealth } from './store/fallback.js';
import type { RedisState } from './store/redis/redis-state.js';
import { createMemoryStore } from './store/memory/memory-store.js';
import { createLocalCoordination } from './store/memory/local-coordination.js';
import { createMemorySessions } from './store/memory/memory-sessions.js';
import type { SessionBounds, SessionDirectory } from './store/sessions.js';
import { createMemoryReplicas, startHeartbeat } from './store/replicas.js';
import type { ReplicaInfo, ReplicaRegistry } from './store/replicas.js';
import { createPolicy } from './policy/policy.js';
import { createOAuthVerifier } from './policy/auth/oauth.js';
import { refuseMcpScope } from './policy/auth/challenge.js';
import { scopeRequirements } from './policy/auth/required-scopes.js';
import { createSamplingBridge, serverIdentities } from './mcp/bridge/sampling.js';
import type { Policy } from './policy/policy.js';
import { createRequestLog } from './policy/request-log.js';
import type { RequestLog } from './policy/request-log.js';
import { ANONYMOUS } from './policy/auth/keys.js';
import type { Principal } from './policy/auth/keys.js';
import { createGateway } from './gateway.js';
import { createMcpCallLimits } from './policy/limits/mcp-call-limits.js';
import type { McpCall, McpCallGuard, McpCallOutcome } from './policy/limits/mcp-call-limits.js';
import type { Gateway } from './gateway.js';
import { createHttpServer } from './http/server.js';
import { createMcpHttpEndpoint } from './mcp/downstream/http-endpoint.js';
import { checkInboundParams } from './mcp/downstream/request-params.js';
import { createLlmCore } from './llm/core.js';
import type { LlmCore } from './llm/core.js';
import { createV1Api } from './http/v1/v1-api.js';
import { createAgent } from './agent/agent.js';
import { createTextEmbedder, createToolSelector, loadBundledEmbeddingModel } from './agent/tool-selection/index.js';
import { children, createMetrics } from './metrics.js';
import { VERSION } from './version.js';
import { isLoopbackHost } from './wire/loopback.js';
import type { Metrics } from './metrics.js';
import { startTracing } from './telemetry/tracing.js';

/** Without API keys, anything but loopback would expose every configured server and model to the network. */
export function assertListenAllowed(host: string, authMode: 'none' | 'keys' = 'none'): void {
  if (authMode !== 'keys' && !isLoopbackHost(host)) {
    throw new McplexError(
      'LISTEN_REFUSED',
      `refusing to listen on ${host}: without API keys mcplex only listens on loopback (127.0.0.1, ::1, ` +
        `localhost). Set "auth": {"mode": "keys"} and create keys with \`mcplex keys create\` to serve a network.`,
    );
  }
}

/** The configured store, or `fallback` when the configuration names none (the front end's own choice). */
export async function openConfiguredStore(config: Config, fallback = DEFAULT_STORE): Promise<Store> {
  const url = config.store ?? fallback;
  try {
    return await openStore(url);
  } catch (error) {
    throw new McplexError('STORE_FAILED', `cannot open the store ${redactUrl(url)}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/**
 * Where each piece of the limits' state lives, decided once: with `redis` configured, in Redis (falling back as
 * `redis.onError` says while it is away); without it, in the store (shared by every process on it), or in this
 * process with `limits.counters: "process"`.
 */
export interface SharedState {
  /** Messages between the processes of the deployment (revocations, cache fills). */
  coordination: Coordination;
  /** Per-key rpm/tpm counters. */
  limits: LimitStore;
  /** Per-key requests in progress. */
  leases: Leases;
  /** A deployment's own rpm/tpm budgets: counted in this process while Redis is away, whatever `onError` says. */
  deploymentBudgets: LimitStore;
  /** A deployment's slots across replicas (Redis only; without it each process counts its own in flight). */
  deploymentLeases?: Leases;
  /** The cache every replica shares (Redis only). */
  cache?: CacheStore;
  health?: () => SharedStateHealth;
  /** True when the state is shared by replicas beyond the store (Redis). */
  readonly replicated: boolean;
  /** Where 2025-11-25 MCP sessions live: this process, or Redis for every replica. */
  sessions(bounds: SessionBounds): SessionDirectory;
  /** Which replicas are alive: this process alone, or every one that beats in Redis. */
  replicas: ReplicaRegistry;
  close(): Promise<void>;
}

export async function openSharedState(
  config: Config,
  store: Store,
  logger: Logger,
  metrics?: Metrics,
): Promise<SharedState> {
  const local = createLocalCoordination();
  const redisConfig = config.redis;
  if (!redisConfig) {
    const inProcess = config.limits.counters === 'process';
    const limits = inProcess ? createMemoryStore().limits : store.limits;
    return {
      coordination: local,
      limits,
      leases: inProcess ? local : store.leases,
      deploymentBudgets: limits,
      replicated: false,
      sessions: (bounds) => createMemorySessions(bounds),
      replicas: createMemoryReplicas(),
      close: () => local.close(),
    };
  }
  let redis: RedisState;
  try {
    // ioredis is loaded only when Redis is configured.
    const { openRedisState } = await import('./store/redis/redis-state.js');
    // A Redis that cannot be reached yet is an outage like any other: the replica starts, falling back as
    // configured, and the connections keep trying.
    redis = await openRedisState(redisConfig.url, {
      prefix: redisConfig.prefix,
      commandTimeoutMs: redisConfig.commandTimeoutMs,
      requireConnection: false,
    });
  } catch (error) {
    await local.close();
    throw new McplexError('STORE_FAILED', `cannot use Redis: ${errorMessage(error)}`, { cause: error });
  }
  const downAtStart = redis.down();
  metrics?.sharedStateUp.set(downAtStart === undefined ? 1 : 0);
  if (downAtStart !== undefined) {
    const fallback = redisConfig.onError === 'local' ? 'counted in this process' : 'refused (503)';
    logger.warn({ err: downAtStart }, `Redis cannot be reached yet: limited requests are ${fallback} until it can`);
  }
  const fallbacks = createFallbacks({
    mode: redisConfig.onError,
    localShare: redisConfig.localShare,
    ...(downAtStart === undefined ? {} : { unavailableAtStart: downAtStart }),
    localLimits: createMemoryStore().limits,
    localLeases: local,
    onChange(health) {
      metrics?.sharedStateUp.set(health.state === 'ready' ? 1 : 0);
      if (health.state === 'ready') logger.info('Redis is reachable again: limits are shared again');
      else {
        const fallback = redisConfig.onError === 'local' ? 'counted in this process' : 'refused (503)';
        logger.warn({ err: health.lastError }, `Redis is unavailable: limited requests are ${fallback}`);
      }
    },
  });
  // Large limits are counted ahead (a round trip now and then, not one per request); `countAheadFrom: false` asks
  // Redis every time.
  const { countAheadFrom } = redisConfig;
  const ahead = (limits: LimitStore) =>
    countAheadFrom === false
      ? { limits, close: () => Promise.resolve() }
      : reserveAhead(limits, { minLimit: countAheadFrom });
  const keyLimits = ahead(fallbacks.limits(redis.limits));
  const deploymentBudgets = ahead(fallbacks.limits(redis.limits, 'local'));
  // Likewise the slots of large concurrency limits (a deployment's 256): one released is kept a moment for the
  // next request here.
  const keyLeases = poolLeases(fallbacks.leases(redis.coordination));
  const deploymentLeases = poolLeases(fallbacks.leases(redis.coordination, 'local'));
  const held = [keyLimits, deploymentBudgets, keyLeases, deploymentLeases];
  return {
    coordination: redis.coordination,
    limits: keyLimits.limits,
    leases: keyLeases.leases,
    deploymentLeases: deploymentLeases.leases,
    deploymentBudgets: deploymentBudgets.limits,
    cache: redis.cache,
    health: fallbacks.health,
    replicated: true,
    sessions: (bounds) => redis.sessions(bounds),
    replicas: redis.replicas,
    close: async () => {
      // What is held ahead goes back before the connection closes.
      await Promise.all(held.map((h) => h.close()));
      await Promise.all([redis.close(), local.close()]);
    },
  };
}

/** The policy stages for this configuration, on an open store and the deployment's shared state. */
export function policyFor(config: Config, store: Store, shared: SharedState): Policy {
  const models = Object.entries(config.llm.models).flatMap(([name, model]) => [name, ...model.aliases]);
  return createPolicy(store, {
    mode: config.auth.mode,
    models,
    servers: Object.keys(config.mcpServers),
    limits: shared.limits,
    leases: shared.leases,
    coordination: shared.coordination,
    leaseTtlMs: config.limits.leaseTtlMs,
    keyCacheMs: config.auth.keyCacheMs,
    ...(config.auth.oauth ? { oauth: createOAuthVerifier(config.auth.oauth) } : {}),
  });
}

export interface RunningServer {
  gateway: Gateway;
  policy: Policy;
  llm: LlmCore;
  metrics: Metrics;
  http: HttpServer;
  url: string;
  close(): Promise<void>;
}

/**
 * What both front ends share: the store and policies, the upstream connections with their catalog, and the shared
 * LLM, which answers the upstreams' sampling requests (the bridge) and, over HTTP, the /v1 API.
 */
interface Core {
  /** This process's name among the replicas (`cluster.name`, else the host's name and the process id). */
  replica: string;
  store: Store;
  shared: SharedState;
  policy: Policy;
  gateway: Gateway;
  llm: LlmCore;
  calls: McpCallGuard;
  /** The bounded log of recent requests in the store, for the console. */
  requestLog: RequestLog;
  /** Each principal's sign-in to upstreams with `auth.type: "oauth"`, when there are any. */
  upstreamOAuth: UpstreamOAuth | undefined;
  close(): Promise<void>;
}

/** mcplex's OAuth client towards the upstreams that sign each principal in, when the configuration has any. */
function upstreamOAuthFor(config: Config, store: Store): UpstreamOAuth | undefined {
  const settings = config.auth.upstreamOAuth;
  const upstreams = Object.entries(config.mcpServers).flatMap(([name, server]) =>
    server.transport === 'streamable-http' && server.auth
      ? [
          {
            name,
            url: server.url,
            clientId: server.auth.clientId,
            clientSecret: server.auth.clientSecret,
            clientMetadataUrl: server.auth.clientMetadataUrl,
            scopes: server.auth.scopes,
          },
        ]
      : [],
  );
  if (!settings || upstreams.length === 0) return undefined;
  const name = 'auth.upstreamOAuth.credentialKey';
  const vault = createVault(
    parseVaultKey(settings.credentialKey, name),
    settings.previousCredentialKeys.map((key) => parseVaultKey(key, 'auth.upstreamOAuth.previousCredentialKeys')),
  );
  return createUpstreamOAuth(upstreams, {
    store: store.credentials,
    vault,
    callbackUrl: `${settings.publicUrl.replace(/\/+$/, '')}/oauth/callback`,
    fetchPolicy: {
      allowPrivate: settings.allowPrivateHosts.map((h) => h.toLowerCase()),
      insecureHosts: settings.insecureHosts.map((h) => h.toLowerCase()),
      timeoutMs: settings.timeoutMs,
      maxBytes: 1 << 20,
    },
    flowTtlMs: settings.signInTtlMs,
    // The store's own leases: every replica on the store refreshes a token one at a time with the others.
    leases: store.leases,
  });
}

async function composeCore(config: Config, logger: Logger, metrics: Metrics): Promise<Core> {
  // In dependency order: the store and policies, the shared LLM, the sampling bridge on it, then the upstreams,
  // whose sampling requests the bridge answers.
  const store = await openConfiguredStore(config);
  let shared: SharedState;
  try {
    shared = await openSharedState(config, store, logger, metrics);
  } catch (error) {
    await store.close();
    throw error;
  }
  const policy = policyFor(config, store, shared);
  const replica = config.cluster.name ?? defaultReplicaName();
  const requestLog = createRequestLog(store.requests, { replica });
  const llm = createLlmCore(config.llm, {
    requestLog,
    logger,
    metrics,
    policy,
    sharedCache: shared.cache,
    // Only leases every replica shares add anything to the in-flight count each process keeps for itself.
    leases: shared.deploymentLeases,
    leaseTtlMs: config.limits.leaseTtlMs,
    budgets: shared.deploymentBudgets,
    ...(shared.replicated ? { coordination: shared.coordination } : {}),
  });
  const identities = serverIdentities(config.mcpServers, Object.keys(config.llm.models).length > 0);
  const bridge = createSamplingBridge({
    ...identities,
    complete: (principal, request) => llm.complete(principal, request),
    models: (principal) => llm.modelsFor(principal),
  });
  const calls = createMcpCallLimits({
    limiter: policy.limiter,
    usage: policy.usage,
    servers: Object.fromEntries(Object.entries(config.mcpServers).map(([key, server]) => [key, server.limits])),
    observe: observeMcpCalls(metrics, requestLog),
  });
  const upstreamOAuth = upstreamOAuthFor(config, store);
  const publicUrl = config.auth.upstreamOAuth?.publicUrl;
  const gateway = createGateway(config, logger, {
    calls,
    ...(upstreamOAuth && publicUrl
      ? {
          principalAuth: (key: string) => {
            const server = config.mcpServers[key];
            return server?.transport === 'streamable-http' && server.auth
              ? principalAuthFor(upstreamOAuth, key, publicUrl)
              : undefined;
          },
        }
      : {}),
    sample: (key, params) => bridge.answer(key, params),
    samples: (key) => identities.policies.get(key)?.mode === 'gateway',
    replica,
    pubsub: shared.coordination,
  });
  return {
    replica,
    store,
    shared,
    policy,
    gateway,
    llm,
    calls,
    requestLog,
    upstreamOAuth,
    async close() {
      await Promise.all([gateway.close(), llm.close()]);
      await Promise.all([policy.close(), requestLog.close()]);
      await Promise.all([store.close(), shared.close()]);
    },
  };
}

/**
 * The metrics of each MCP call (their label sets looked up once each rather than on every call) and its line in the
 * recent-requests log.
 */
function observeMcpCalls(
  metrics: Metrics,
  requestLog: RequestLog,
): (call: McpCall, outcome: McpCallOutcome, upstreamMs: number | undefined, principal: Principal) => void {
  const counter = children((server, method, tool, outcome) =>
    metrics.mcpCalls.labels({ server, method, tool, outcome }),
  );
  const timer = children((server, method) => metrics.mcpUpstreamSeconds.labels({ server, method }));
  return (call, outcome, upstreamMs, principal) => {
    requestLog.add({
      at: Date.now(),
      route: 'mcp',
      subject: principal === ANONYMOUS ? null : principal.id,
      target: `${call.server}/${call.name}`,
      status: outcome,
      latencyMs: upstreamMs ?? 0,
      promptTokens: 0,
      completionTokens: 0,
    });
    // Tool names come from the catalog (an unknown one is refused before): a bounded label.
    const tool = call.method === 'tools/call' ? call.name : '';
    counter(call.server, call.method, tool, outcome).inc();
    if (upstreamMs !== undefined) timer(call.server, call.method).observe(upstreamMs / 1000);
  };
}

/**
 * Resolves when every upstream has had its first connection attempt, or after `waitMs`: a server that takes longer
 * to start must not keep the others' tools from clients for long.
 */
function firstAttempts(gateway: Gateway, waitMs: number): Promise<void> {
  return Promise.race([gateway.whenSettled(), new Promise<void>((resolve) => setTimeout(resolve, waitMs).unref())]);
}

/** A replica's name when the configuration gives none: the host's name and the process id, as the name allows. */
function defaultReplicaName(): string {
  const host = hostname()
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .slice(0, 48);
  return `${host || 'mcplex'}-${process.pid}`;
}

export async function startHttp(config: Config, logger: Logger): Promise<RunningServer> {
  assertListenAllowed(config.server.host, config.auth.mode);
  const metrics = createMetrics();
  const core = await composeCore(config, logger, metrics);
  const { store, shared, policy, gateway, llm, replica, requestLog } = core;
  const tracing = await startTracing(
    config.telemetry?.traces,
    { version: VERSION, instance: replica },
    process.env,
    (message) => logger.warn(message),
  );
  if (config.auth.mode === 'none') {
    logger.warn(
      'keyless development mode: anyone who can reach this loopback address may use /mcp and /v1 ' +
        '(set "auth": {"mode": "keys"} and create keys with `mcplex keys create` to require API keys)',
    );
  }
  const startedAt = Date.now();
  let draining = false;
  // Filled in below: the endpoint is built before the heartbeat that reports on it.
  let inUse = () => 0;
  const info = (): ReplicaInfo => ({
    name: replica,
    version: VERSION,
    pid: process.pid,
    startedAt,
    beatAt: Date.now(),
    sessionsInUse: inUse(),
    upstreams: gateway.status().servers.map((s) => ({ key: s.name, state: s.state, tools: s.tools })),
    draining,
  });
  const heartbeat = startHeartbeat(shared.replicas, info, config.cluster.heartbeatMs, (error) =>
    logger.debug({ err: errorMessage(error) }, 'the replica heartbeat failed'),
  );
  const oauth = policy.oauth;
  const requirements = oauth && scopeRequirements(config.auth.oauth?.serverScopes, config.auth.oauth?.toolScopes);
  const scopes = oauth &&
    requirements && {
      requirements,
      refuse: (res: ServerResponse, needed: readonly string[]) => refuseMcpScope(res, oauth, needed),
    };
  const mcp = createMcpHttpEndpoint({
    createServer: (era, principal, session) => gateway.createServer(era, principal, session),
    catalog: gateway.catalog,
    subscriptions: gateway.subscriptions,
    maxSubscriptions: config.server.maxSubscriptions,
    sessions: config.server.sessions,
    directory: shared.sessions(config.server.sessions),
    replica,
    pubsub: shared.coordination,
    alive: heartbeat.alive,
    admitFor: (principal) => gateway.admitFor(principal),
    ...(scopes ? { scopes } : {}),
    logger,
  });
  inUse = () => mcp.sessionsInUse();
  metrics.watchMcp({
    upstreams: () => gateway.status().servers,
    sessions: () => mcp.sessionCount(),
    sessionsInUse: () => mcp.sessionsInUse(),
  });
  const unsubscribe = gateway.catalog.onChange((_view, changes) => mcp.notifyListChanged(changes));
  const idleMs = config.agent.embeddingsIdleMs;
  const embedder = config.agent.embeddings
    ? createTextEmbedder({ cache: store.cache, loadModel: () => loadBundledEmbeddingModel({ idleMs }) })
    : undefined;
  const selector = createToolSelector({
    ...(embedder ? { embedder } : {}),
    threshold: config.agent.selectionThreshold,
    topK: config.agent.topK,
    logger,
  });
  // With agent.warmEmbeddings, a large catalog is embedded in the background (on the model's worker thread) when it
  // changes, so the first chat that needs tool selection does not wait for hundreds of tool texts; without, the
  // model is not loaded until a chat needs it (its vectors are kept in the store's cache meanwhile).
  const stopEmbedding = config.agent.warmEmbeddings
    ? gateway.catalog.onChange(() => void selector.warm(gateway.catalog.view.tools))
    : () => {};
  const agent = createAgent({
    llm,
    catalog: gateway.catalog,
    servers: Object.keys(config.mcpServers),
    selector,
    calls: core.calls,
    scopes: requirements,
  });
  const upstreamOAuth = core.upstreamOAuth;
  const signIn =
    upstreamOAuth && config.auth.upstreamOAuth
      ? createSignInPages({
          oauth: upstreamOAuth,
          publicUrl: config.auth.upstreamOAuth.publicUrl,
          logger,
          onSignedIn: (upstream, principal) => {
            logger.info({ server: upstream, principal }, `${upstream}: ${principal} signed in`);
            gateway.upstreams.find((u) => u.key === upstream)?.signedIn(principal);
          },
        })
      : undefined;
  const http = createHttpServer({
    ...config.server,
    logger,
    mcp,
    replica,
    ...(signIn ? { signIn } : {}),
    ...(upstreamOAuth
      ? {
          connections: {
            list: (principal?: string) => upstreamOAuth.connections(principal),
            async revoke(principal: string, upstream: string) {
              const revoked = await upstreamOAuth.revoke(principal, upstream);
              gateway.upstreams.find((u) => u.key === upstream)?.signedIn(principal);
              return revoked;
            },
          },
        }
      : {}),
    cluster: async () => ({ object: 'list', replica, data: await heartbeat.replicas() }),
    servers: {
      list: () => gateway.status().servers,
      async restart(name) {
        const upstream = gateway.upstreams.find((u) => u.key === name);
        if (!upstream) return 'unknown';
        return (await upstream.restart()) ? 'restarted' : 'refused';
      },
    },
    requests: requestLog,
    usageSeries: (filter) => policy.usage.series(filter),
    mcpReady: () => firstAttempts(gateway, config.server.startupWaitMs),
    llm: createV1Api({
      core: llm,
      agent: agent.run,
      policy,
      logger,
      metrics,
      maxBodyBytes: config.server.maxBodyBytes,
    }),
    metrics,
    policy,
    readiness: async () => {
      const { settled, servers } = gateway.status();
      const [sessions, replayBufferBytes] = await Promise.all([
        mcp.sessionCount().catch(() => undefined),
        mcp.replayBytes().catch(() => undefined),
      ]);
      const sharedState = shared.health?.();
      const storeHealth = store.health?.();
      return {
        ready: settled,
        body: {
          ready: settled,
          sessions,
          replayBufferBytes,
          servers,
          // Redis away is a degraded state, not an unready one: limits fall back as configured.
          ...(sharedState ? { sharedState } : {}),
          ...(storeHealth ? { store: storeHealth } : {}),
        },
      };
    },
  });
  gateway.start();
  http.listen(config.server.port, config.server.host);
  try {
    await once(http, 'listening');
  } catch (error) {
    // The port is taken, say: nothing started so far may outlive the failure (upstream children included).
    unsubscribe();
    stopEmbedding();
    await heartbeat.stop();
    await mcp.close();
    await core.close();
    await tracing?.shutdown();
    throw error;
  }
  const address = http.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  const models = Object.keys(config.llm.models);
  const shown = models.length > 5 ? `${models.slice(0, 5).join(', ')}, …` : models.join(', ');
  const v1 = models.length === 0 ? 'no models configured' : `models: ${shown}`;
  logger.info(
    { url: `${url}/mcp`, v1: `${url}/v1`, models: models.length },
    `listening on ${url}/mcp (MCP), ${url}/v1 (OpenAI-compatible; ${v1}), ${url}/readyz (readiness)` +
      (http.console ? `, ${url}/ui/ (console)` : ''),
  );

  let closing: Promise<void> | undefined;
  return {
    gateway,
    policy,
    llm,
    metrics,
    http,
    url,
    close() {
      closing ??= (async () => {
        unsubscribe();
        stopEmbedding();
        draining = true;
        const drained = await http.drain(config.server.drainMs);
        await heartbeat.stop();
        if (!drained) logger.warn({ drainMs: config.server.drainMs }, 'requests still in progress were cut');
        await mcp.close();
        http.closeAllConnections();
        await core.close();
        await tracing?.shutdown();
      })();
      return closing;
    },
  };
}

export interface RunningStdio {
  gateway: Gateway;
  close(): Promise<void>;
}

/**
 * Serves the aggregated server on this process's stdin/stdout (for desktop clients). The shared LLM answers the
 * upstreams' sampling requests as over HTTP (usage under each server's identity in the store); there is no /v1.
 */
export async function startStdio(config: Config, logger: Logger): Promise<RunningStdio> {
  // Nothing serves /metrics here: no default metrics, whose event-loop monitor would only cost a timer. A desktop
  // client starts us in a folder of its choosing (often read-only): the default store, a file in the working
  // folder, is not opened there; usage is kept only in a store the configuration names, and only with models.
  const keepsUsage = Object.keys(config.llm.models).length > 0 && config.store !== undefined;
  const core = await composeCore(
    keepsUsage ? config : { ...config, store: 'memory:' },
    logger,
    createMetrics({ defaultMetrics: false }),
  );
  const { gateway } = core;
  const tracing = await startTracing(
    config.telemetry?.traces,
    { version: VERSION, instance: core.replica },
    process.env,
    (message) => logger.warn(message),
  );
  const servers = new Set<Server>();
  const unsubscribe = gateway.catalog.onChange((_view, changes) => {
    for (const server of servers) {
      if (changes.tools) void server.sendToolListChanged().catch(() => {});
      if (changes.resources) void server.sendResourceListChanged().catch(() => {});
      if (changes.prompts) void server.sendPromptListChanged().catch(() => {});
    }
  });
  gateway.start();
  // A desktop client lists once, at start: its first requests wait for the servers (within startupWaitMs).
  await firstAttempts(gateway, config.server.startupWaitMs);
  const handle = serveStdio(({ era }) => {
    const server = gateway.createServer(era);
    checkInboundParams(server, era);
    servers.add(server);
    const previous = server.onclose;
    server.onclose = () => {
      servers.delete(server);
      previous?.();
    };
    return server;
  });
  let closing: Promise<void> | undefined;
  return {
    gateway,
    close() {
      closing ??= (async () => {
        unsubscribe();
        await handle.close();
        await core.close();
        await tracing?.shutdown();
      })();
      return closing;
    },
  };
}

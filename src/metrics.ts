// Prometheus metrics (prom-client) for GET /metrics: one registry per process, created with the app so that
// tests can run several instances side by side.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly llmRequests: Counter<'route' | 'model' | 'deployment' | 'status'>;
  readonly llmUpstreamSeconds: Histogram<'route' | 'model' | 'deployment'>;
  readonly llmOverheadSeconds: Histogram<'route'>;
  readonly llmTokens: Counter<'model' | 'deployment' | 'direction'>;
  readonly llmRetries: Counter<'model' | 'deployment' | 'reason'>;
  readonly llmBreakerState: Gauge<'deployment'>;
  readonly sharedStateUp: Gauge;
  /** Calls that reached an upstream (or were refused on the way): ok, error (the tool's own), failed, refused. */
  readonly mcpCalls: Counter<'server' | 'method' | 'tool' | 'outcome'>;
  readonly mcpUpstreamSeconds: Histogram<'server' | 'method'>;
  readonly mcpRequestSeconds: Histogram<'method'>;
  readonly mcpOverheadSeconds: Histogram<'method'>;
  /** Where the upstreams' states and the sessions are read when /metrics is scraped. */
  watchMcp(source: McpMetricsSource): void;
}

export interface McpMetricsSource {
  upstreams(): readonly { name: string; state: string; restarts: number }[];
  /** 2025-11-25 sessions in the directory (every replica's, with Redis). */
  sessions(): Promise<number>;
  /** Sessions with a stream open or a request in progress on this replica. */
  sessionsInUse(): number;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) {
    // The event-loop delay monitor samples on a timer. prom-client's default of 10 ms wakes an idle process
    // 100 times a second, which costs CPU and perturbs request latency on a small host; 100 ms still catches
    // every stall long enough to matter for a proxy.
    collectDefaultMetrics({ register: registry, prefix: 'mcplex_', eventLoopMonitoringPrecision: 100 });
  }
  const registers = [registry];
  let source: McpMetricsSource | undefined;
  new Gauge({
    name: 'mcplex_mcp_upstream_up',
    help: 'Each MCP server: 1 while its connection is ready, else 0',
    labelNames: ['server'],
    registers,
    collect() {
      this.reset();
      for (const u of source?.upstreams() ?? []) this.set({ server: u.name }, u.state === 'ready' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'mcplex_mcp_upstream_restarts',
    help: 'Each MCP server: reconnections since mcplex started',
    labelNames: ['server'],
    registers,
    collect() {
      this.reset();
      for (const u of source?.upstreams() ?? []) this.set({ server: u.name }, u.restarts);
    },
  });
  new Gauge({
    name: 'mcplex_mcp_sessions',
    help: '2025-11-25 MCP sessions open (every replica, when they share Redis)',
    registers,
    async collect() {
      if (source) this.set(await source.sessions().catch(() => 0));
    },
  });
  new Gauge({
    name: 'mcplex_mcp_sessions_in_use',
    help: 'MCP sessions with a stream open or a request in progress on this replica',
    registers,
    collect() {
      if (source) this.set(source.sessionsInUse());
    },
  });
  return {
    watchMcp(given) {
      source = given;
    },
    mcpCalls: new Counter({
      name: 'mcplex_mcp_calls_total',
      help:
        'MCP calls that reach an upstream (tools/call, resources/read, prompts/get) by server, method, tool (tools/call ' +
        "only) and outcome: ok, error (the tool's own error result), failed (an error answer), refused (a limit)",
      labelNames: ['server', 'method', 'tool', 'outcome'],
      registers,
    }),
    mcpUpstreamSeconds: new Histogram({
      name: 'mcplex_mcp_upstream_seconds',
      help: 'Time an MCP call spent at its upstream (sent to answered)',
      labelNames: ['server', 'method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    mcpRequestSeconds: new Histogram({
      name: 'mcplex_mcp_request_seconds',
      help: 'Time an /mcp request took in all (arrival to answer; streams to their end), by JSON-RPC method',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    mcpOverheadSeconds: new Histogram({
      name: 'mcplex_mcp_overhead_seconds',
      help:
        'Time mcplex adds to a plain tools/call on /mcp (the fast path, both eras): the whole request minus the ' +
        'time at the upstream',
      labelNames: ['method'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    }),
    registry,
    llmRequests: new Counter({
      name: 'mcplex_llm_requests_total',
      help:
        'LLM requests by route (chat, embeddings: clients of /v1, a tool-running chat once with deployment "agent"; ' +
        "agent: that chat's model calls; sampling: MCP servers' requests), public model, deployment and HTTP status",
      labelNames: ['route', 'model', 'deployment', 'status'],
      registers,
    }),
    llmUpstreamSeconds: new Histogram({
      name: 'mcplex_llm_upstream_seconds',
      help: 'Time spent waiting for the LLM backend (request sent to response complete)',
      labelNames: ['route', 'model', 'deployment'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    llmOverheadSeconds: new Histogram({
      name: 'mcplex_llm_overhead_seconds',
      help: 'Time mcplex adds to a /v1 request (total minus upstream time)',
      labelNames: ['route'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    }),
    llmTokens: new Counter({
      name: 'mcplex_llm_tokens_total',
      help: 'Tokens by public model, deployment and direction (in = prompt, out = completion)',
      labelNames: ['model', 'deployment', 'direction'],
      registers,
    }),
    llmRetries: new Counter({
      name: 'mcplex_llm_retries_total',
      help: 'Attempts retried, by public model, the deployment that failed and why',
      labelNames: ['model', 'deployment', 'reason'],
      registers,
    }),
    llmBreakerState: new Gauge({
      name: 'mcplex_llm_breaker_state',
      help: 'Circuit breaker per deployment: 0 closed, 1 half-open, 2 open',
      labelNames: ['deployment'],
      registers,
    }),
    sharedStateUp: new Gauge({
      name: 'mcplex_shared_state_up',
      help: 'The shared fast state (Redis) is reachable: 1, or 0 while limits fall back as configured',
      registers,
    }),
  };
}

/**
 * A labelled metric's children by label values, each looked up once: prom-client hashes the label set on every
 * `labels()` call, which a hot path should not pay per request. The label values must come from a bounded set.
 */
export function children<T>(make: (...values: string[]) => T): (...values: string[]) => T {
  const made = new Map<string, T>();
  return (...values) => {
    const key = values.join('\0');
    let child = made.get(key);
    if (child === undefined) made.set(key, (child = make(...values)));
    return child;
  };
}

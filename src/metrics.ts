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
  return {
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

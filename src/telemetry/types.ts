// What tracing offers the rest of mcplex (tracing.ts) and what its OpenTelemetry implementation (otel.ts) provides:
// the interface between them, kept apart so that neither imports the other's module.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The `telemetry.traces` section of the configuration (config/schema.ts), as this module needs it. */
export interface TracesConfig {
  /** OTLP/HTTP base URL (`/v1/traces` is added) or the full traces URL. */
  endpoint?: string | undefined;
  headers?: Readonly<Record<string, string>> | undefined;
  serviceName?: string | undefined;
  sampleRatio?: number | undefined;
  captureContent?: boolean | undefined;
}

/** What the tracer is started with: the configuration section with the environment's values filled in. */
export interface TracingSettings {
  /** The full traces URL; undefined: the exporter's own (OTEL_EXPORTER_OTLP_*, else localhost:4318). */
  url: string | undefined;
  headers: Readonly<Record<string, string>>;
  serviceName: string;
  serviceVersion: string;
  /** This replica's name (`service.instance.id`). */
  instance: string;
  /** Root spans sampled at this ratio (a parent's decision is followed); undefined: OTEL_TRACES_SAMPLER decides. */
  sampleRatio: number | undefined;
  /** Prompts, completions, tool arguments and results on spans. */
  captureContent: boolean;
  /** Told when exports start failing (once until one succeeds again) and when spans are dropped. */
  onError?: ((message: string) => void) | undefined;
}

/** Where an upstream MCP server is, for the attributes of its call spans. */
export interface UpstreamTarget {
  /** The server's key in the configuration. */
  server: string;
  transport: 'stdio' | 'streamable-http' | 'sse';
  url?: string | undefined;
}

/** One attempt at an LLM backend. */
export interface AttemptInfo {
  operation: 'chat' | 'embeddings';
  /** The backend's model name. */
  model: string;
  provider: string;
  deployment: string;
  /** 1 for the first attempt of the request, counting on through retries and fallbacks. */
  attempt: number;
  baseUrl: string;
}

/** How an attempt ended, for its span (and the usage of the request it belongs to). */
export interface AttemptResult {
  status?: number | undefined;
  /** Why it failed (`timeout`, `connect`, `503`, …); undefined when it answered. */
  errorType?: string | undefined;
  responseModel?: string | undefined;
  inputTokens?: number | undefined;
  outputTokens?: number | undefined;
  /** The answer's text, kept only when content is captured. */
  output?: string | undefined;
}

/**
 * Where work belongs in a trace: a request's SERVER span (and what it gathers). Opaque outside otel.ts; it travels
 * explicitly with the work (a request's fields, call options), not in an async context.
 */
export type TraceParent = object;

/** Header values as a node request has them, or as the SDK hands them to a handler (web Headers). */
export type HeaderSource =
  Readonly<Record<string, string | string[] | undefined>> | { get(name: string): string | null } | undefined;

export interface Tracing {
  readonly captureContent: boolean;
  /**
   * A SERVER span around one POST /mcp (parent: the request's `traceparent`, else its `_meta.traceparent`). Inside
   * `run`, the request's `traceparent` header names this span, so that the SDK's handlers find it
   * (parentFromHeaders); the fast path finds it by the response (parentOf).
   */
  mcpRequest(
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    started: number,
    run: () => Promise<void>,
  ): Promise<void>;
  /** The request a response belongs to, while its span is open. */
  parentOf(res: ServerResponse): TraceParent | undefined;
  /** The /mcp request whose headers these are (as an SDK handler sees them), while its span is open. */
  parentFromHeaders(headers: HeaderSource): TraceParent | undefined;
  /** That /mcp request is answered with a JSON-RPC error. */
  mcpRequestFailed(parent: TraceParent | undefined, error: unknown): void;
  /** A SERVER span around one /v1 chat or embeddings request (parent: its `traceparent`). */
  llmRequest(
    req: IncomingMessage,
    res: ServerResponse,
    operation: 'chat' | 'embeddings',
    started: number,
    run: () => Promise<void>,
  ): Promise<void>;
  /** The /v1 request's body, once read: its model (and its messages when content is captured). */
  llmRequestBody(parent: TraceParent | undefined, body: Record<string, unknown>): void;
  /**
   * A CLIENT span around one call to an upstream MCP server; `call` gets `params` with the span's trace context
   * in `_meta.traceparent` (and `tracestate`).
   */
  mcpCall<P extends { _meta?: Record<string, unknown> | undefined }, R>(
    parent: TraceParent | undefined,
    target: UpstreamTarget,
    method: 'tools/call' | 'resources/read' | 'prompts/get',
    name: string,
    params: P,
    call: (params: P) => Promise<R>,
  ): Promise<R>;
  /**
   * A CLIENT span around one LLM backend attempt: `run` gets the headers that carry its trace context (`traceparent`,
   * `tracestate`); `describe` says how it ended.
   */
  llmAttempt<T>(
    parent: TraceParent | undefined,
    info: AttemptInfo,
    run: (headers: Record<string, string>) => Promise<T>,
    describe: (outcome: T) => AttemptResult,
  ): Promise<T>;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

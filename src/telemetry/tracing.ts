// Tracing, opt-in: OpenTelemetry spans for /mcp and /v1 requests, each upstream MCP call and each LLM backend
// attempt, exported over OTLP/HTTP. Off (the default), none of it is loaded and a hot path pays one call of
// currentTracing() that returns undefined; on, otel.ts (imported here only then) implements the interface of types.ts.
import type { Tracing, TracesConfig, TracingSettings } from './types.js';

export type {
  AttemptInfo,
  AttemptResult,
  HeaderSource,
  TraceParent,
  Tracing,
  TracesConfig,
  TracingSettings,
  UpstreamTarget,
} from './types.js';

let active: Tracing | undefined;

/** The tracer when tracing is on, else undefined: the one check a hot path makes. */
export function currentTracing(): Tracing | undefined {
  return active;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);

/** The traces URL of an OTLP base URL (OTEL_EXPORTER_OTLP_ENDPOINT style), or the URL as is when it has a path. */
export function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  if (url.pathname === '/' || url.pathname === '') return `${url.origin}/v1/traces`;
  return url.pathname.endsWith('/v1/traces') ? url.href : `${url.href.replace(/\/$/, '')}/v1/traces`;
}

/**
 * Whether tracing is on, and with what: a `telemetry.traces` section turns it on, and so does
 * OTEL_TRACES_EXPORTER=otlp; OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off whatever the file
 * says. The section's fields win; the environment fills in the rest (the exporter reads OTEL_EXPORTER_OTLP_*
 * itself).
 */
export function tracingSettings(
  config: TracesConfig | undefined,
  identity: { version: string; instance: string },
  env: NodeJS.ProcessEnv = process.env,
): TracingSettings | undefined {
  if (TRUE.has((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase())) return undefined;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '');
  if (exporters.includes('none')) return undefined;
  if (config === undefined && !exporters.includes('otlp')) return undefined;
  const name = config?.serviceName ?? env.OTEL_SERVICE_NAME?.trim();
  return {
    url: config?.endpoint === undefined ? undefined : tracesUrl(config.endpoint),
    headers: config?.headers ?? {},
    serviceName: name === undefined || name === '' ? 'mcplex' : name,
    serviceVersion: identity.version,
    instance: identity.instance,
    sampleRatio: config?.sampleRatio,
    captureContent: config?.captureContent ?? false,
  };
}

/**
 * Starts tracing when the configuration or the environment asks for it (its implementation is loaded only then), and makes it
 * the process's tracer; undefined when tracing stays off. `shutdown` of the result turns it off again.
 */
export async function startTracing(
  config: TracesConfig | undefined,
  identity: { version: string; instance: string },
  env: NodeJS.ProcessEnv = process.env,
  onError?: (message: string) => void,
): Promise<Tracing | undefined> {
  const settings = tracingSettings(config, identity, env);
  if (!settings) return undefined;
  await active?.shutdown();
  const { createOtelTracing } = await import('./otel.js');
  const tracing = createOtelTracing({ ...settings, onError }, env);
  active = tracing;
  return {
    ...tracing,
    async shutdown() {
      if (active === tracing) active = undefined;
      await tracing.shutdown();
    },
  };
}

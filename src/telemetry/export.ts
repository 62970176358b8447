// Spans leave the process over OTLP/HTTP, protobuf-encoded by default (http/json when asked for). A finished span
// is encoded at once, on the thread that ended it, straight into the batch being filled (otlp-encoding.ts): bytes
// outside the JavaScript heap, so nothing of a span outlives the young generation and nothing is copied or parsed
// again later. A full batch (or one OTEL_BSP_SCHEDULE_DELAY old) is sent by OpenTelemetry's OTLP/HTTP export
// delegate: URL, headers, compression and timeout from the options and OTEL_EXPORTER_OTLP_*, retries with backoff.
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { otlpEncoding } from './otlp-encoding.js';
import type { Batch, OtlpProtocol, ResourceAttributes } from './otlp-encoding.js';
import type { SpanRecord } from './spans.js';

export interface ExportOptions {
  /** The full traces URL; undefined: the exporter's own (OTEL_EXPORTER_OTLP_*, else localhost:4318). */
  url: string | undefined;
  headers: Readonly<Record<string, string>>;
  /** The resource's attributes (service.name, …), beside OTEL_RESOURCE_ATTRIBUTES' and the SDK's own. */
  resource: Readonly<Record<string, string>>;
  /** The instrumentation scope's version. */
  version: string;
  /** The encoding; undefined: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, else protobuf. */
  protocol?: OtlpProtocol | undefined;
  /** Where the OTEL_BSP_* and protocol settings are read. */
  env?: NodeJS.ProcessEnv;
  /** Told of the first failed export after a success (and of spans dropped meanwhile). */
  onError?: (message: string) => void;
}

export interface SpanExport {
  add(span: SpanRecord): void;
  /** Spans dropped because the exporter fell behind (the queue was full). */
  readonly dropped: number;
  /** Sends what is queued and waits for the exports under way (at most `timeoutMs`), then stops. */
  shutdown(timeoutMs: number): Promise<void>;
}

/** Bytes a new batch starts with room for; it grows by doubling. */
const BATCH_BYTES = 64 * 1024;
/** Exports under way at once, at most: a collector that is slow gets a backlog here, bounded by the queue size. */
const MAX_EXPORTS = 2;

/** A whole number from the environment within [min, max], else the fallback. */
function envInt(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const value = Number(env[name]);
  return Number.isInteger(value) && value >= min && value <= max ? value : fallback;
}

/**
 * The protocol the environment names (the traces' own variable first); gRPC, which this exporter does not speak,
 * and anything unknown are `unsupported` (protobuf over HTTP is used instead).
 */
function envProtocol(env: NodeJS.ProcessEnv): { protocol: OtlpProtocol; unsupported?: string } {
  const named = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? '').trim();
  if (named === '' || named === 'http/protobuf') return { protocol: 'http/protobuf' };
  if (named === 'http/json') return { protocol: 'http/json' };
  return { protocol: 'http/protobuf', unsupported: named };
}

/**
 * The batching export, tuned as the SDK's batch processor is: OTEL_BSP_SCHEDULE_DELAY (default 5000 ms),
 * OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512) and OTEL_BSP_MAX_QUEUE_SIZE (2048 spans not yet sent, past which new spans
 * are dropped and counted).
 */
export function startSpanExport(options: ExportOptions): SpanExport {
  const env = options.env ?? process.env;
  const delayMs = envInt(env, 'OTEL_BSP_SCHEDULE_DELAY', 5000, 0, 3_600_000);
  const maxQueue = envInt(env, 'OTEL_BSP_MAX_QUEUE_SIZE', 2048, 1, 1_000_000);
  const batchSize = Math.min(maxQueue, envInt(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512, 1, 1_000_000));

  const named = options.protocol === undefined ? envProtocol(env) : { protocol: options.protocol };
  if (named.unsupported !== undefined) {
    options.onError?.(`OTLP protocol ${named.unsupported} is not supported: spans are sent as http/protobuf`);
  }
  const resource = defaultResource()
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(resourceFromAttributes(options.resource));
  const encoding = otlpEncoding(named.protocol, resource.attributes as ResourceAttributes, options.version);

  const delegate = createOtlpHttpExportDelegate(
    convertLegacyHttpOptions(
      { ...(options.url === undefined ? {} : { url: options.url }), headers: { ...options.headers } },
      'TRACES',
      'v1/traces',
      { 'Content-Type': encoding.contentType },
    ),
    {
      serializeRequest: (batch: Batch) => batch.bytes.subarray(batch.start, batch.pos),
      deserializeResponse: () => ({}),
    },
    'otlp_http_span_exporter',
    { name: 'span', countItems: (batch: Batch) => batch.spans },
    // The exporter's own metrics: none (mcplex's are in /metrics).
    undefined,
  );

  let filling = encoding.open(BATCH_BYTES);
  const ready: Batch[] = [];
  /** Spans added and not yet sent (or failed). */
  let queued = 0;
  let exporting = 0;
  let dropped = 0;
  let reportedDropped = 0;
  let failing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let onIdle: (() => void) | undefined;

  const report = () => {
    if (dropped > reportedDropped) {
      options.onError?.(`${dropped - reportedDropped} spans were dropped: the trace collector did not keep up`);
      reportedDropped = dropped;
    }
  };
  const pump = () => {
    while (exporting < MAX_EXPORTS && ready.length > 0) {
      const batch = ready.shift()!;
      exporting++;
      delegate.export(batch, (result) => {
        exporting--;
        queued -= batch.spans;
        if (result.code === 0) {
          failing = false;
          report();
        } else if (!failing) {
          // Once until an export succeeds again: a collector that is away is one warning, not one per batch.
          const error = result.error as { message?: unknown } | undefined;
          options.onError?.(`exporting spans failed: ${String(error?.message ?? error ?? 'failed')}`);
          failing = true;
        }
        pump();
        if (exporting === 0 && ready.length === 0) onIdle?.();
      });
    }
  };
  /** Ends the batch being filled and queues it for sending. */
  const seal = () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (filling.spans === 0) return;
    const batch = filling;
    encoding.close(batch);
    ready.push(batch);
    // The next batch starts as large as this one grew (most batches are alike).
    filling = encoding.open(Math.min(batch.bytes.length, 16 * BATCH_BYTES));
    pump();
  };

  return {
    add(span) {
      if (stopped) return;
      if (queued >= maxQueue) {
        dropped++;
        return;
      }
      queued++;
      encoding.append(filling, span);
      if (filling.spans >= batchSize) seal();
      else if (timer === undefined) {
        timer = setTimeout(seal, delayMs);
        timer.unref();
      }
    },
    get dropped() {
      return dropped;
    },
    async shutdown(timeoutMs) {
      if (stopped) return;
      seal();
      stopped = true;
      let deadline: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => (deadline = setTimeout(resolve, timeoutMs)));
      try {
        if (exporting > 0 || ready.length > 0) {
          await Promise.race([new Promise<void>((resolve) => (onIdle = resolve)), expired]);
        }
        await Promise.race([delegate.shutdown().catch(() => {}), expired]);
      } finally {
        clearTimeout(deadline);
      }
    },
  };
}

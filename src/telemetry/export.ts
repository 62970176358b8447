// Spans leave the process from a worker thread: the request's thread only queues finished records and hands them
// over as one JSON string within a few milliseconds; the worker batches them, encodes each batch as OTLP/JSON and
// sends it with OpenTelemetry's OTLP/HTTP export delegate (the OTEL_EXPORTER_OTLP_* variables, retries and timeouts
// are its). Encoding and sending, most of what a span costs, thus run beside the requests, not between them.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { SpanRecord } from './spans.js';

export interface ExportOptions {
  /** The full traces URL; undefined: the exporter's own (OTEL_EXPORTER_OTLP_*, else localhost:4318). */
  url: string | undefined;
  headers: Readonly<Record<string, string>>;
  /** The resource's attributes (service.name, …), beside OTEL_RESOURCE_ATTRIBUTES' and the SDK's own. */
  resource: Readonly<Record<string, string>>;
  /** The instrumentation scope's version. */
  version: string;
  env?: NodeJS.ProcessEnv;
  /** Told of the first failed export after a success (and of spans dropped meanwhile). */
  onError?: (message: string) => void;
}

export interface SpanExport {
  add(span: SpanRecord): void;
  /** Spans dropped because the exporter fell behind (the queue was full). */
  readonly dropped: number;
  /** Sends what is queued, waits for the exports under way (at most `timeoutMs`), and stops the worker. */
  shutdown(timeoutMs: number): Promise<void>;
}

/**
 * The worker: keeps the records of each `{spans}` message (a JSON array) and exports them in batches as the SDK's
 * batch processor would (at `batchSize` spans, or `delayMs` after the first; at most `maxQueue` kept, the rest
 * dropped and counted). A batch is encoded here, straight from the records, as OTLP/JSON (ids in hex, times as
 * decimal nanoseconds, kinds and status codes as OTLP's numbers); sending it is OpenTelemetry's OTLP/HTTP export
 * delegate's work (URL, headers, compression and timeout from the options and OTEL_EXPORTER_OTLP_*, retries with
 * backoff, a bounded number of requests at a time). It answers every message with `{ack, dropped}` and every
 * export with `{exported}` or `{error}`; `{shutdown: true}` exports what it holds, shuts the delegate down and
 * answers `{closed: true}`.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { OTLPExporterBase } = require(workerData.exporterBase);
const { convertLegacyHttpOptions, createOtlpHttpExportDelegate } = require(workerData.exporterHttp);
const { defaultResource, detectResources, envDetector, resourceFromAttributes } = require(workerData.resources);
const { batchSize, delayMs, maxQueue } = workerData;

const value = (v) =>
  typeof v === 'string'
    ? '{"stringValue":' + JSON.stringify(v) + '}'
    : typeof v === 'boolean'
      ? '{"boolValue":' + v + '}'
      : Number.isInteger(v)
        ? '{"intValue":' + v + '}'
        : '{"doubleValue":' + (Number.isFinite(v) ? v : JSON.stringify(String(v))) + '}';
function attributes(object) {
  let out = '';
  for (const key in object) {
    const v = object[key];
    if (v === undefined || v === null) continue;
    out += (out === '' ? '' : ',') + '{"key":' + JSON.stringify(key) + ',"value":' + value(v) + '}';
  }
  return '[' + out + ']';
}
const resource = defaultResource()
  .merge(detectResources({ detectors: [envDetector] }))
  .merge(resourceFromAttributes(workerData.resource));
const scope = '{"name":"mcplex","version":' + JSON.stringify(workerData.version) + '}';
const head = '{"resourceSpans":[{"resource":{"attributes":' + attributes(resource.attributes) + '},"scopeSpans":[{"scope":' + scope + ',"spans":[';
const tail = ']}]}]}';
/** Epoch milliseconds (fractional) as decimal nanoseconds: past 2^53, so as text. */
function nanos(ms) {
  const whole = Math.floor(ms);
  const rest = Math.min(999999, Math.round((ms - whole) * 1e6));
  return '"' + whole + String(rest).padStart(6, '0') + '"';
}
/** OTLP's flags: the sampled trace flag, and whether the parent is remote (0x100 known, 0x200 remote). */
const flags = (r) => 0x101 | (r.parentId && r.remoteParent ? 0x200 : 0);
function span(r) {
  return (
    '{"traceId":"' + r.traceId + '","spanId":"' + r.spanId + '"' +
    (r.parentId ? ',"parentSpanId":"' + r.parentId + '"' : '') +
    (typeof r.traceState === 'string' ? ',"traceState":' + JSON.stringify(r.traceState) : '') +
    ',"name":' + JSON.stringify(r.name) + ',"kind":' + (r.kind + 1) +
    ',"startTimeUnixNano":' + nanos(r.start) + ',"endTimeUnixNano":' + nanos(r.end) +
    ',"attributes":' + attributes(r.attributes) +
    ',"status":{"code":' + r.status + (typeof r.message === 'string' ? ',"message":' + JSON.stringify(r.message) : '') + '}' +
    ',"flags":' + flags(r) + '}'
  );
}
const serializer = {
  serializeRequest(records) {
    let body = head;
    for (let i = 0; i < records.length; i++) body += (i === 0 ? '' : ',') + span(records[i]);
    return Buffer.from(body + tail, 'utf8');
  },
  deserializeResponse: () => ({}),
};
const exporter = new OTLPExporterBase(
  createOtlpHttpExportDelegate(
    convertLegacyHttpOptions(workerData.options, 'TRACES', 'v1/traces', { 'Content-Type': 'application/json' }),
    serializer,
    'otlp_http_span_exporter',
    { name: 'span', countItems: (records) => records.length },
  ),
);

let queue = [];
let exporting = 0;
let timer;
let dropped = 0;
let closing;
const exported = () => {
  exporting--;
  if (queue.length >= batchSize || (closing && queue.length > 0)) exportBatch();
  if (closing && exporting === 0 && queue.length === 0) closing();
};
function exportBatch() {
  if (timer !== undefined) {
    clearTimeout(timer);
    timer = undefined;
  }
  const batch = queue.length <= batchSize ? queue : queue.slice(0, batchSize);
  queue = batch === queue ? [] : queue.slice(batchSize);
  exporting++;
  exporter.export(batch, (result) => {
    parentPort.postMessage(
      result.code === 0 ? { exported: true } : { error: String(result.error?.message ?? result.error ?? 'failed') },
    );
    exported();
  });
  if (queue.length > 0) timer ??= setTimeout(exportBatch, delayMs);
}
parentPort.on('message', (message) => {
  if (message.shutdown) {
    const closed = () => {
      closing = undefined;
      exporter.shutdown().catch(() => {}).finally(() => parentPort.postMessage({ closed: true }));
    };
    if (exporting === 0 && queue.length === 0) closed();
    else {
      closing = closed;
      if (queue.length > 0) exportBatch();
    }
    return;
  }
  try {
    for (const record of JSON.parse(message.spans)) {
      if (queue.length >= maxQueue) dropped++;
      else queue.push(record);
    }
  } catch (error) {
    parentPort.postMessage({ error: String(error) });
  }
  parentPort.postMessage({ ack: true, dropped });
  dropped = 0;
  // Two exports at a time at most: a collector that is slow gets a backlog here, bounded by maxQueue.
  if (queue.length >= batchSize && exporting < 2) exportBatch();
  else if (queue.length > 0) timer ??= setTimeout(exportBatch, delayMs);
});
`;

/** A whole number from the environment within [min, max], else the fallback. */
function envInt(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const value = Number(env[name]);
  return Number.isInteger(value) && value >= min && value <= max ? value : fallback;
}

/**
 * Spans are handed to the worker within this many milliseconds of ending, or at once when this many are waiting:
 * short-lived, they die young on this thread's heap instead of being promoted and costing a major collection.
 */
const HANDOFF_MS = 10;
const HANDOFF_SPANS = 64;
/** Handoffs the worker has not acknowledged, at most; past that (a worker that is stuck), spans are dropped. */
const MAX_UNACKED = 64;

/**
 * The batching export, tuned as the SDK's batch processor is (OTEL_BSP_SCHEDULE_DELAY, default 5000 ms;
 * OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 512; OTEL_BSP_MAX_QUEUE_SIZE, 2048, past which new spans are dropped and
 * counted), the batches kept and exported by the worker.
 */
export function startSpanExport(options: ExportOptions): SpanExport {
  const env = options.env ?? process.env;
  const maxQueue = envInt(env, 'OTEL_BSP_MAX_QUEUE_SIZE', 2048, 1, 1_000_000);
  const require = createRequire(import.meta.url);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    env,
    workerData: {
      exporterBase: require.resolve('@opentelemetry/otlp-exporter-base'),
      exporterHttp: require.resolve('@opentelemetry/otlp-exporter-base/node-http'),
      resources: require.resolve('@opentelemetry/resources'),
      options: { ...(options.url === undefined ? {} : { url: options.url }), headers: { ...options.headers } },
      resource: { ...options.resource },
      version: options.version,
      delayMs: envInt(env, 'OTEL_BSP_SCHEDULE_DELAY', 5000, 0, 3_600_000),
      maxQueue,
      batchSize: Math.min(maxQueue, envInt(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512, 1, 1_000_000)),
    },
  });
  let queue: SpanRecord[] = [];
  let unacked = 0;
  let dropped = 0;
  let reportedDropped = 0;
  let failing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let onIdle: (() => void) | undefined;
  let onClosed: (() => void) | undefined;

  const handoff = () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (queue.length === 0 || stopped) return;
    unacked++;
    worker.postMessage({ spans: JSON.stringify(queue) });
    queue = [];
  };
  const report = () => {
    if (dropped > reportedDropped) {
      options.onError?.(`${dropped - reportedDropped} spans were dropped: the trace collector did not keep up`);
      reportedDropped = dropped;
    }
  };
  worker.on(
    'message',
    (message: { ack?: boolean; dropped?: number; exported?: boolean; error?: string; closed?: boolean }) => {
      if (message.closed) onClosed?.();
      else if (message.error !== undefined) {
        // Once until an export succeeds again: a collector that is away is one warning, not one per batch.
        if (!failing) options.onError?.(`exporting spans failed: ${message.error}`);
        failing = true;
      } else if (message.exported) {
        failing = false;
        report();
      } else if (message.ack) {
        unacked--;
        dropped += message.dropped ?? 0;
        if (unacked === 0) onIdle?.();
      }
    },
  );
  worker.on('error', (error) => {
    options.onError?.(`the span export worker failed: ${error.message}`);
    stopped = true;
    queue = [];
    onIdle?.();
    onClosed?.();
  });
  // Never what keeps the process alive (shutdown() waits for the last exports when the process stops); after the
  // listeners, since adding a 'message' listener refs the worker again.
  worker.unref();

  return {
    add(span) {
      if (stopped) return;
      if (unacked >= MAX_UNACKED) {
        dropped++;
        return;
      }
      queue.push(span);
      if (queue.length >= HANDOFF_SPANS) handoff();
      else if (timer === undefined) {
        timer = setTimeout(handoff, HANDOFF_MS);
        timer.unref();
      }
    },
    get dropped() {
      return dropped;
    },
    async shutdown(timeoutMs) {
      if (stopped) return;
      let deadline: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => (deadline = setTimeout(resolve, timeoutMs)));
      worker.ref();
      try {
        handoff();
        if (unacked > 0) await Promise.race([new Promise<void>((resolve) => (onIdle = resolve)), expired]);
        const closed = new Promise<void>((resolve) => (onClosed = resolve));
        worker.postMessage({ shutdown: true });
        stopped = true;
        await Promise.race([closed, expired]);
      } finally {
        clearTimeout(deadline);
        stopped = true;
        await worker.terminate();
      }
    },
  };
}

// Spans as plain records, made on the request's own thread at the cost of a few property writes: W3C trace context
// read and written, new ids from a pool of random bytes, the sampling decision of the OpenTelemetry samplers. What
// a span becomes on the wire (OTLP) is the exporter's work (export.ts, otlp-encoding.ts).
import { randomFillSync } from 'node:crypto';

export type AttributeValue = string | number | boolean;
export type Attributes = Record<string, AttributeValue>;

/** OpenTelemetry's SpanKind numbers (the API's, not OTLP's, which add one). */
export const SERVER = 1;
export const CLIENT = 2;
/** OpenTelemetry's SpanStatusCode numbers. */
export const STATUS_UNSET = 0;
export const STATUS_ERROR = 2;

/** Where a span sits in its trace: what travels in `traceparent` and `tracestate`. */
export interface SpanContext {
  traceId: string;
  spanId: string;
  sampled: boolean;
  /** The caller's `tracestate`, passed on unchanged. */
  traceState: string | undefined;
}

/** One span, recorded when its trace is sampled (else only its context exists, for what it calls). */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  /** The parent's span id; undefined for a root. */
  parentId: string | undefined;
  /** The parent came from another process (a `traceparent`). */
  remoteParent: boolean;
  traceState: string | undefined;
  name: string;
  kind: number;
  /** Start and end, epoch milliseconds (fractional). */
  start: number;
  end: number;
  attributes: Attributes;
  status: number;
  message: string | undefined;
}

const ID_POOL = 8192;
const pool = Buffer.allocUnsafe(ID_POOL);
let poolAt = ID_POOL;

/** `bytes` random bytes as lowercase hex, from a pool refilled by the system's CSPRNG. */
function randomHex(bytes: number): string {
  if (poolAt + bytes > ID_POOL) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const hex = pool.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return hex;
}

const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

export function newTraceId(): string {
  let id = randomHex(16);
  while (id === ZERO_TRACE) id = randomHex(16);
  return id;
}

export function newSpanId(): string {
  let id = randomHex(8);
  while (id === ZERO_SPAN) id = randomHex(8);
  return id;
}

/** version-traceid-parentid-flags, each lowercase hex of fixed width: one pass over 55 characters. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** The longest `tracestate` passed on (the W3C limit is 32 members; 512 characters is what it asks to keep). */
const MAX_TRACESTATE = 512;

/**
 * The caller's context from a `traceparent` (and `tracestate`) value, W3C Trace Context level 1: version ff and
 * all-zero ids are invalid; a later version may append fields after a dash, which are ignored. Undefined when
 * absent or invalid (the request then starts a trace of its own).
 */
export function parseTraceparent(value: unknown, state: unknown): SpanContext | undefined {
  const header = Array.isArray(value) ? (value[0] as unknown) : value;
  if (typeof header !== 'string' || header.length < 55) return undefined;
  const head = header.length === 55 ? header : header.slice(0, 55);
  const match = TRACEPARENT.exec(head);
  if (!match) return undefined;
  const [, version, traceId, spanId, flags] = match as unknown as [string, string, string, string, string];
  if (version === 'ff' || (version === '00' && header.length !== 55) || (header.length > 55 && header[55] !== '-')) {
    return undefined;
  }
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  const stateHeader = Array.isArray(state) ? state.join(',') : state;
  const traceState =
    typeof stateHeader === 'string' && stateHeader !== '' && stateHeader.length <= MAX_TRACESTATE
      ? stateHeader
      : undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1, traceState };
}

export function formatTraceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.sampled ? '01' : '00'}`;
}

/** Writes the context's `traceparent` (and `tracestate`) into a carrier: headers or an MCP `_meta`. */
export function injectContext(context: SpanContext, carrier: Record<string, unknown>): void {
  carrier.traceparent = formatTraceparent(context);
  if (context.traceState !== undefined) carrier.tracestate = context.traceState;
}

/** Which new traces are recorded: the OpenTelemetry samplers, by name (OTEL_TRACES_SAMPLER's values). */
export interface Sampler {
  /** Whether a span with this parent (undefined: a root) in trace `traceId` is recorded. */
  sample(parent: SpanContext | undefined, traceId: string): boolean;
}

/**
 * The TraceIdRatioBased decision: the trace id's 32-bit words folded by XOR and compared with the ratio, the same
 * for the same trace on every service that samples this way.
 */
function ratioSampled(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (!(ratio > 0)) return false;
  let accumulation = 0;
  for (let i = 0; i < traceId.length / 8; i++) {
    accumulation = (accumulation ^ parseInt(traceId.slice(i * 8, i * 8 + 8), 16)) >>> 0;
  }
  return accumulation < Math.floor(ratio * 0xffffffff);
}

/**
 * A ratio for new traces; a parent's decision is followed (ParentBased(TraceIdRatioBased)): what
 * `telemetry.traces.sampleRatio` asks for.
 */
export function parentBasedRatio(ratio: number): Sampler {
  return { sample: (parent, traceId) => (parent ? parent.sampled : ratioSampled(traceId, ratio)) };
}

const clampRatio = (arg: string | undefined): number => {
  const ratio = arg === undefined || arg.trim() === '' ? 1 : Number(arg);
  return Number.isFinite(ratio) ? Math.min(1, Math.max(0, ratio)) : 1;
};

/**
 * The sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name (always_on, always_off, traceidratio and their
 * parentbased_ forms); unset or unknown, parentbased_always_on, as the SDK does.
 */
export function samplerFromEnv(env: NodeJS.ProcessEnv): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? '').trim().toLowerCase();
  const ratio = clampRatio(env.OTEL_TRACES_SAMPLER_ARG);
  switch (name) {
    case 'always_on':
      return { sample: () => true };
    case 'always_off':
      return { sample: () => false };
    case 'traceidratio':
      return { sample: (_parent, traceId) => ratioSampled(traceId, ratio) };
    case 'parentbased_always_off':
      return { sample: (parent) => parent?.sampled ?? false };
    case 'parentbased_traceidratio':
      return parentBasedRatio(ratio);
    default:
      return parentBasedRatio(1);
  }
}

/** Epoch milliseconds now, to the microsecond. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

/**
 * A new span under `parent` (a remote caller's context, a local span, or nothing: a root). Sampled or not, it gets
 * ids (so that what it calls can be told where it belongs); `recorded` says whether it will be exported.
 */
export function startSpan(
  sampler: Sampler,
  parent: SpanContext | undefined,
  remoteParent: boolean,
  name: string,
  kind: number,
  attributes: Attributes,
  start: number,
): { context: SpanContext; record: SpanRecord | undefined } {
  const traceId = parent?.traceId ?? newTraceId();
  const sampled = remoteParent || parent === undefined ? sampler.sample(parent, traceId) : parent.sampled;
  const context: SpanContext = { traceId, spanId: newSpanId(), sampled, traceState: parent?.traceState };
  if (!sampled) return { context, record: undefined };
  return {
    context,
    record: {
      traceId,
      spanId: context.spanId,
      parentId: parent?.spanId,
      remoteParent,
      traceState: context.traceState,
      name,
      kind,
      start,
      end: start,
      attributes,
      status: STATUS_UNSET,
      message: undefined,
    },
  };
}

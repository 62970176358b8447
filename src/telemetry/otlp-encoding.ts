// The two OTLP/HTTP encodings of a batch of spans, written straight from span records into one growing buffer:
// binary protobuf (http/protobuf, OTLP's default) and JSON (http/json). Both are the OTLP trace schema
// (opentelemetry/proto/trace/v1/trace.proto inside collector/trace/v1/trace_service.proto's request): one
// ResourceSpans, one ScopeSpans, the batch's spans.
import type { SpanRecord } from './spans.js';

type Value = string | number | boolean | undefined | null;
export type ResourceAttributes = Readonly<Record<string, Value>>;

/** A request body being filled: `bytes[start, pos)` once finished. */
export interface Batch {
  bytes: Buffer;
  start: number;
  pos: number;
  spans: number;
}

export interface OtlpEncoding {
  readonly contentType: string;
  /** A new, empty batch with room for `capacity` bytes. */
  open(capacity: number): Batch;
  append(batch: Batch, span: SpanRecord): void;
  /** Ends the batch: what is sent. */
  close(batch: Batch): Uint8Array;
}

/** Makes room for `more` bytes after `batch.pos`. */
function reserve(batch: Batch, more: number): void {
  const needed = batch.pos + more;
  if (needed <= batch.bytes.length) return;
  const grown = Buffer.allocUnsafe(Math.max(needed, batch.bytes.length * 2));
  batch.bytes.copy(grown, 0, 0, batch.pos);
  batch.bytes = grown;
}

/** Epoch milliseconds (fractional) as whole seconds and nanoseconds within them. */
function secondsAndNanos(ms: number): [number, number] {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6))];
}

// ---- protobuf ----------------------------------------------------------------------------------------------------

const LEN = 2;
const VARINT = 0;
const I64 = 1;
const tag = (field: number, wire: number) => (field << 3) | wire;

const varintSize = (n: number) => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

/** Writes `n` (a whole number in [0, 2^53)) as a varint at `at`; returns the position after it. */
function putVarint(bytes: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    bytes[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  bytes[at++] = n;
  return at;
}

/** A negative int64 as a varint: its two's complement, ten bytes. */
function putNegativeVarint(bytes: Buffer, at: number, n: number): number {
  let value = BigInt.asUintN(64, BigInt(n));
  for (let i = 0; i < 9; i++) {
    bytes[at++] = Number(value & 0x7fn) | 0x80;
    value >>= 7n;
  }
  bytes[at++] = Number(value);
  return at;
}

/** The most bytes `text` takes as a length-delimited UTF-8 field (its tag, length and at most three bytes a unit). */
const stringBound = (text: string) => 6 + text.length * 3;

/**
 * Writes a length-delimited UTF-8 string (its tag first); ASCII, the common case, byte by byte, anything else by
 * the runtime's encoder.
 */
function putString(batch: Batch, fieldTag: number, text: string): void {
  const bytes = batch.bytes;
  bytes[batch.pos++] = fieldTag;
  const length = text.length;
  if (length < 0x80) {
    let at = batch.pos + 1;
    let ascii = true;
    for (let i = 0; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) {
        ascii = false;
        break;
      }
      bytes[at++] = code;
    }
    if (ascii) {
      bytes[batch.pos] = length;
      batch.pos = at;
      return;
    }
  }
  const size = Buffer.byteLength(text, 'utf8');
  batch.pos = putVarint(bytes, batch.pos, size);
  batch.pos += bytes.write(text, batch.pos, size, 'utf8');
}

/** Lowercase hex (what span records hold) as bytes, with its tag and length. */
function putHexId(batch: Batch, fieldTag: number, hex: string): void {
  const bytes = batch.bytes;
  let at = batch.pos;
  bytes[at++] = fieldTag;
  bytes[at++] = hex.length / 2;
  for (let i = 0; i < hex.length; i += 2) {
    const high = hex.charCodeAt(i);
    const low = hex.charCodeAt(i + 1);
    bytes[at++] = ((high < 0x3a ? high - 0x30 : high - 0x57) << 4) | (low < 0x3a ? low - 0x30 : low - 0x57);
  }
  batch.pos = at;
}

/** Epoch milliseconds as fixed64 nanoseconds, exactly, without BigInt: seconds split in 16-bit halves. */
function putNanos(batch: Batch, fieldTag: number, ms: number): void {
  const [seconds, nanos] = secondsAndNanos(ms);
  const high16 = Math.floor(seconds / 0x10000);
  const low16 = seconds % 0x10000;
  // nanoseconds = low16 * 1e9 + nanos + high16 * 1e9 * 2^16; both products are exact doubles.
  const a = low16 * 1e9 + nanos;
  const b = high16 * 1e9;
  let low = (a % 0x100000000) + (b % 0x10000) * 0x10000;
  let high = Math.floor(a / 0x100000000) + Math.floor(b / 0x10000);
  if (low >= 0x100000000) {
    low -= 0x100000000;
    high += 1;
  }
  const bytes = batch.bytes;
  bytes[batch.pos++] = fieldTag;
  batch.pos = bytes.writeUInt32LE(low, batch.pos);
  batch.pos = bytes.writeUInt32LE(high, batch.pos);
}

/** Starts a length-delimited field whose length is not known yet: `room` bytes are kept for it. */
function beginMessage(batch: Batch, fieldTag: number, room: number): number {
  batch.bytes[batch.pos++] = fieldTag;
  const at = batch.pos;
  batch.pos += room;
  return at;
}

/** Writes the length of the field begun at `at`, moving its content when the length took other than `room` bytes. */
function endMessage(batch: Batch, at: number, room: number): void {
  const length = batch.pos - at - room;
  const size = varintSize(length);
  if (size !== room) {
    batch.bytes.copyWithin(at + size, at + room, batch.pos);
    batch.pos += size - room;
  }
  putVarint(batch.bytes, at, length);
}

const ANY_STRING = tag(1, LEN);
const ANY_BOOL = tag(2, VARINT);
const ANY_INT = tag(3, VARINT);
const ANY_DOUBLE = tag(4, I64);

/** `KeyValue.key` of each attribute name seen, encoded once (names come from the code: a few dozen). */
const protoKeys = new Map<string, Buffer>();
const MAX_KEYS = 1024;
function protoKey(key: string): Buffer {
  let bytes = protoKeys.get(key);
  if (bytes === undefined) {
    const batch: Batch = { bytes: Buffer.allocUnsafe(stringBound(key)), start: 0, pos: 0, spans: 0 };
    putString(batch, tag(1, LEN), key);
    bytes = Buffer.from(batch.bytes.subarray(0, batch.pos));
    if (protoKeys.size < MAX_KEYS) protoKeys.set(key, bytes);
  }
  return bytes;
}

/** The most bytes the attributes take. */
function attributesBound(attributes: ResourceAttributes): number {
  let bound = 0;
  for (const key in attributes) {
    const v = attributes[key];
    bound += 16 + key.length * 3 + (typeof v === 'string' ? stringBound(v) : 11);
  }
  return bound;
}

/** Each attribute as a `KeyValue` in field `fieldTag`. */
function putAttributes(batch: Batch, fieldTag: number, attributes: ResourceAttributes): void {
  for (const key in attributes) {
    const v = attributes[key];
    if (v === undefined || v === null) continue;
    const keyValue = beginMessage(batch, fieldTag, 1);
    const keyBytes = protoKey(key);
    batch.bytes.set(keyBytes, batch.pos);
    batch.pos += keyBytes.length;
    const anyValue = beginMessage(batch, tag(2, LEN), 1);
    const bytes = batch.bytes;
    if (typeof v === 'string') putString(batch, ANY_STRING, v);
    else if (typeof v === 'boolean') {
      bytes[batch.pos++] = ANY_BOOL;
      bytes[batch.pos++] = v ? 1 : 0;
    } else if (Number.isSafeInteger(v)) {
      bytes[batch.pos++] = ANY_INT;
      batch.pos = v >= 0 ? putVarint(bytes, batch.pos, v) : putNegativeVarint(bytes, batch.pos, v);
    } else {
      bytes[batch.pos++] = ANY_DOUBLE;
      batch.pos = bytes.writeDoubleLE(v, batch.pos);
    }
    endMessage(batch, anyValue, 1);
    endMessage(batch, keyValue, 1);
  }
}

// Span's fields.
const SPAN = tag(2, LEN);
const TRACE_ID = tag(1, LEN);
const SPAN_ID = tag(2, LEN);
const TRACE_STATE = tag(3, LEN);
const PARENT_SPAN_ID = tag(4, LEN);
const NAME = tag(5, LEN);
const KIND = tag(6, VARINT);
const START = tag(7, I64);
const END = tag(8, I64);
const ATTRIBUTES = tag(9, LEN);
const STATUS = tag(15, LEN);
const STATUS_MESSAGE = tag(2, LEN);
const STATUS_CODE = tag(3, VARINT);
// Field 16, fixed32 (wire type 5): a two-byte tag.
const FLAGS = [0x85, 0x01] as const;

/** OTLP's span flags: the sampled trace flag, and whether the parent is remote (0x100 known, 0x200 remote). */
const spanFlags = (r: SpanRecord) => 0x101 | (r.parentId !== undefined && r.remoteParent ? 0x200 : 0);

function protobuf(resource: ResourceAttributes, version: string): OtlpEncoding {
  // ResourceSpans.resource and ScopeSpans.scope, the same in every batch.
  const fixed = (write: (batch: Batch) => void) => {
    const batch: Batch = { bytes: Buffer.allocUnsafe(1024), start: 0, pos: 0, spans: 0 };
    reserve(batch, 64 + attributesBound(resource) + stringBound(version));
    write(batch);
    return Buffer.from(batch.bytes.subarray(0, batch.pos));
  };
  const resourceField = fixed((batch) => {
    const at = beginMessage(batch, tag(1, LEN), 2);
    putAttributes(batch, tag(1, LEN), resource);
    endMessage(batch, at, 2);
  });
  const scopeField = fixed((batch) => {
    const at = beginMessage(batch, tag(1, LEN), 2);
    putString(batch, tag(1, LEN), 'mcplex');
    putString(batch, tag(2, LEN), version);
    endMessage(batch, at, 2);
  });
  // The request's head, written when the batch is closed: its two lengths depend on the spans.
  const headRoom = 1 + 5 + resourceField.length + 1 + 5 + scopeField.length;
  return {
    contentType: 'application/x-protobuf',
    open(capacity) {
      const batch: Batch = { bytes: Buffer.allocUnsafe(Math.max(capacity, 2 * headRoom)), start: 0, pos: 0, spans: 0 };
      batch.pos = headRoom;
      return batch;
    },
    append(batch, r) {
      reserve(
        batch,
        96 +
          stringBound(r.name) +
          (r.traceState === undefined ? 0 : stringBound(r.traceState)) +
          (r.message === undefined ? 0 : stringBound(r.message)) +
          attributesBound(r.attributes),
      );
      const span = beginMessage(batch, SPAN, 2);
      putHexId(batch, TRACE_ID, r.traceId);
      putHexId(batch, SPAN_ID, r.spanId);
      if (r.traceState !== undefined) putString(batch, TRACE_STATE, r.traceState);
      if (r.parentId !== undefined) putHexId(batch, PARENT_SPAN_ID, r.parentId);
      putString(batch, NAME, r.name);
      const bytes = batch.bytes;
      bytes[batch.pos++] = KIND;
      bytes[batch.pos++] = r.kind + 1;
      putNanos(batch, START, r.start);
      putNanos(batch, END, r.end);
      putAttributes(batch, ATTRIBUTES, r.attributes);
      const status = beginMessage(batch, STATUS, 1);
      if (r.message !== undefined) putString(batch, STATUS_MESSAGE, r.message);
      bytes[batch.pos++] = STATUS_CODE;
      bytes[batch.pos++] = r.status;
      endMessage(batch, status, 1);
      bytes[batch.pos++] = FLAGS[0];
      bytes[batch.pos++] = FLAGS[1];
      batch.pos = batch.bytes.writeUInt32LE(spanFlags(r), batch.pos);
      endMessage(batch, span, 2);
      batch.spans++;
    },
    close(batch) {
      // Backwards from the first span: ScopeSpans' scope and length, then ResourceSpans' resource and length.
      const bytes = batch.bytes;
      const scopeSpans = scopeField.length + (batch.pos - headRoom);
      const resourceSpans = resourceField.length + 1 + varintSize(scopeSpans) + scopeSpans;
      let at = headRoom - scopeField.length;
      scopeField.copy(bytes, at);
      at -= varintSize(scopeSpans);
      putVarint(bytes, at, scopeSpans);
      bytes[--at] = tag(2, LEN);
      at -= resourceField.length;
      resourceField.copy(bytes, at);
      at -= varintSize(resourceSpans);
      putVarint(bytes, at, resourceSpans);
      bytes[--at] = tag(1, LEN);
      batch.start = at;
      return bytes.subarray(at, batch.pos);
    },
  };
}

// ---- JSON --------------------------------------------------------------------------------------------------------

/** OTLP/JSON's AnyValue of an attribute's value. */
function anyValue(v: string | number | boolean): string {
  if (typeof v === 'string') return `{"stringValue":${JSON.stringify(v)}}`;
  if (typeof v === 'boolean') return `{"boolValue":${v}}`;
  if (Number.isInteger(v)) return `{"intValue":${v}}`;
  return `{"doubleValue":${Number.isFinite(v) ? v : JSON.stringify(String(v))}}`;
}

/** `{"key":…,"value":` of each attribute name seen, escaped once. */
const jsonKeys = new Map<string, string>();
function jsonKey(key: string): string {
  let prefix = jsonKeys.get(key);
  if (prefix === undefined) {
    prefix = `{"key":${JSON.stringify(key)},"value":`;
    if (jsonKeys.size < MAX_KEYS) jsonKeys.set(key, prefix);
  }
  return prefix;
}

function jsonAttributes(object: ResourceAttributes): string {
  let out = '';
  for (const key in object) {
    const v = object[key];
    if (v === undefined || v === null) continue;
    out += `${out === '' ? '' : ','}${jsonKey(key)}${anyValue(v)}}`;
  }
  return `[${out}]`;
}

/** Epoch milliseconds as decimal nanoseconds: past 2^53, so as text. */
function jsonNanos(ms: number): string {
  const [seconds, nanos] = secondsAndNanos(ms);
  return `"${seconds}${String(nanos).padStart(9, '0')}"`;
}

/** One span as OTLP/JSON: ids in hex, times in decimal nanoseconds, kinds and status codes as OTLP's numbers. */
export function jsonSpan(r: SpanRecord): string {
  return (
    `{"traceId":"${r.traceId}","spanId":"${r.spanId}"` +
    (r.parentId !== undefined ? `,"parentSpanId":"${r.parentId}"` : '') +
    (r.traceState !== undefined ? `,"traceState":${JSON.stringify(r.traceState)}` : '') +
    `,"name":${JSON.stringify(r.name)},"kind":${r.kind + 1}` +
    `,"startTimeUnixNano":${jsonNanos(r.start)},"endTimeUnixNano":${jsonNanos(r.end)}` +
    `,"attributes":${jsonAttributes(r.attributes)}` +
    `,"status":{"code":${r.status}${r.message !== undefined ? `,"message":${JSON.stringify(r.message)}` : ''}}` +
    `,"flags":${spanFlags(r)}}`
  );
}

function json(resource: ResourceAttributes, version: string): OtlpEncoding {
  const head = Buffer.from(
    `{"resourceSpans":[{"resource":{"attributes":${jsonAttributes(resource)}},` +
      `"scopeSpans":[{"scope":{"name":"mcplex","version":${JSON.stringify(version)}},"spans":[`,
  );
  const tail = Buffer.from(']}]}]}');
  const write = (batch: Batch, text: string) => {
    reserve(batch, text.length * 3 + tail.length);
    batch.pos += batch.bytes.write(text, batch.pos, 'utf8');
  };
  return {
    contentType: 'application/json',
    open(capacity) {
      const batch: Batch = {
        bytes: Buffer.allocUnsafe(Math.max(capacity, 2 * head.length)),
        start: 0,
        pos: 0,
        spans: 0,
      };
      batch.pos = head.copy(batch.bytes, 0);
      return batch;
    },
    append(batch, r) {
      write(batch, batch.spans === 0 ? jsonSpan(r) : `,${jsonSpan(r)}`);
      batch.spans++;
    },
    close(batch) {
      reserve(batch, tail.length);
      batch.pos += tail.copy(batch.bytes, batch.pos);
      return batch.bytes.subarray(batch.start, batch.pos);
    },
  };
}

export type OtlpProtocol = 'http/protobuf' | 'http/json';

export function otlpEncoding(protocol: OtlpProtocol, resource: ResourceAttributes, version: string): OtlpEncoding {
  return protocol === 'http/json' ? json(resource, version) : protobuf(resource, version);
}

// OTLP trace export requests decoded for tests, whatever their encoding: protobuf by protobufjs against the OTLP
// trace schema (the fields of opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto that spans
// use), JSON by JSON.parse. Both come out in OTLP/JSON's shape (ids in hex, times as decimal strings), so a test
// reads them alike.
import protobuf from 'protobufjs';
import { SERVER, newSpanId, newTraceId } from '../../src/telemetry/spans.js';
import type { SpanRecord } from '../../src/telemetry/spans.js';

const SCHEMA = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5;
  int32 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9; uint32 dropped_attributes_count = 10; Status status = 15; fixed32 flags = 16;
}
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; }
}
`;

const Request = protobuf.parse(SCHEMA).root.lookupType('otlp.ExportTraceServiceRequest');

export interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; boolValue?: boolean; intValue?: number | string; doubleValue?: number };
}
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpAttribute[];
  status: { code?: number; message?: string };
  flags?: number;
}
export interface OtlpBody {
  resourceSpans: {
    resource: { attributes: OtlpAttribute[] };
    scopeSpans: { scope: { name: string; version?: string }; spans: OtlpSpan[] }[];
  }[];
}

/** A request body as OTLP/JSON's shape: protobuf when the content type says so, else JSON. */
export function decodeOtlp(body: Buffer, contentType: string | undefined): OtlpBody {
  if (!/protobuf/i.test(contentType ?? '')) return JSON.parse(body.toString('utf8')) as OtlpBody;
  const message = Request.decode(body);
  // protobufjs' JSON form is proto3's: bytes in base64, 64-bit integers as strings, empty fields left out.
  const object = Request.toObject(message, { longs: String, bytes: String, defaults: false, oneofs: false }) as {
    resourceSpans?: {
      resource?: { attributes?: OtlpAttribute[] };
      scopeSpans?: { scope?: { name: string; version?: string }; spans?: Record<string, unknown>[] }[];
    }[];
  };
  const hex = (base64: unknown) => (typeof base64 === 'string' ? Buffer.from(base64, 'base64').toString('hex') : '');
  return {
    resourceSpans: (object.resourceSpans ?? []).map((r) => ({
      resource: { attributes: r.resource?.attributes ?? [] },
      scopeSpans: (r.scopeSpans ?? []).map((s) => ({
        scope: s.scope ?? { name: '' },
        spans: (s.spans ?? []).map((span) => {
          const decoded: OtlpSpan = {
            traceId: hex(span.traceId),
            spanId: hex(span.spanId),
            name: String(span.name ?? ''),
            kind: Number(span.kind ?? 0),
            startTimeUnixNano: String(span.startTimeUnixNano ?? '0'),
            endTimeUnixNano: String(span.endTimeUnixNano ?? '0'),
            attributes: (span.attributes as OtlpAttribute[] | undefined) ?? [],
            status: (span.status as OtlpSpan['status'] | undefined) ?? {},
          };
          if (span.parentSpanId !== undefined) decoded.parentSpanId = hex(span.parentSpanId);
          if (span.traceState !== undefined) decoded.traceState = String(span.traceState);
          if (span.flags !== undefined) decoded.flags = Number(span.flags);
          return decoded;
        }),
      })),
    })),
  };
}

export const spansOf = (bodies: OtlpBody[]): OtlpSpan[] =>
  bodies.flatMap((b) => b.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)));

/** An attribute's value as a plain value (OTLP/JSON writes int64 as a number or a decimal string). */
export function attributeValue(attribute: OtlpAttribute): string | number | boolean | undefined {
  const v = attribute.value;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  return v.doubleValue;
}

/** A finished span record of a sampled root SERVER span, with `fields` of the test's own. */
export function spanRecord(fields: Partial<SpanRecord>): SpanRecord {
  return {
    traceId: newTraceId(),
    spanId: newSpanId(),
    parentId: undefined,
    remoteParent: false,
    traceState: undefined,
    name: 'span',
    kind: SERVER,
    start: 1_700_000_000_123.456,
    end: 1_700_000_000_125.5,
    attributes: {},
    status: 0,
    message: undefined,
    ...fields,
  };
}

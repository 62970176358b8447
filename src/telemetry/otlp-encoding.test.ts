import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { attributeValue, decodeOtlp, spanRecord, spansOf } from '../../test/support/otlp.js';
import type { OtlpBody } from '../../test/support/otlp.js';
import { otlpEncoding } from './otlp-encoding.js';
import type { OtlpProtocol } from './otlp-encoding.js';
import { CLIENT, STATUS_ERROR, newSpanId } from './spans.js';
import type { Attributes, SpanRecord } from './spans.js';

const record = spanRecord;

const PROTOCOLS: OtlpProtocol[] = ['http/protobuf', 'http/json'];

/** The records encoded as one request and decoded again (protobuf by protobufjs, JSON by JSON.parse). */
function roundTrip(protocol: OtlpProtocol, records: SpanRecord[], capacity = 64): OtlpBody {
  const encoding = otlpEncoding(protocol, { 'service.name': 'mcplex-test', 'host.count': 2 }, '1.2.3');
  const batch = encoding.open(capacity);
  for (const r of records) encoding.append(batch, r);
  expect(batch.spans).toBe(records.length);
  return decodeOtlp(Buffer.from(encoding.close(batch)), encoding.contentType);
}

/** Epoch milliseconds as exact nanoseconds, the reference for the encoders' arithmetic. */
const nanos = (ms: number) => {
  const seconds = Math.floor(ms / 1000);
  return BigInt(seconds) * 1_000_000_000n + BigInt(Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6)));
};

describe.each(PROTOCOLS)('the %s encoding', (protocol) => {
  it('carries every field of a span, the resource and the scope', () => {
    const root = record({ name: 'chat mock', traceState: 'k=v,a=b', attributes: { 'gen_ai.request.model': 'mock' } });
    const child = record({
      traceId: root.traceId,
      parentId: root.spanId,
      name: 'tools/call échö 工具',
      kind: CLIENT,
      attributes: {
        'mcplex.llm.attempt': 1,
        big: 2 ** 40 + 7,
        negative: -5,
        ok: false,
        yes: true,
        ratio: 0.5,
        unicode: 'π ≈ 3.14159 🥧',
        empty: '',
      },
      status: STATUS_ERROR,
      message: 'boom: ✗',
    });
    const remote = record({ parentId: newSpanId(), remoteParent: true });
    const body = roundTrip(protocol, [root, child, remote]);
    const resource = Object.fromEntries(
      body.resourceSpans[0]!.resource.attributes.map((a) => [a.key, attributeValue(a)]),
    );
    expect(resource).toEqual({ 'service.name': 'mcplex-test', 'host.count': 2 });
    expect(body.resourceSpans[0]!.scopeSpans[0]!.scope).toMatchObject({ name: 'mcplex', version: '1.2.3' });
    const spans = spansOf([body]);
    expect(spans.map((s) => s.spanId)).toEqual([root.spanId, child.spanId, remote.spanId]);
    const [sentRoot, sentChild, sentRemote] = spans as [(typeof spans)[0], (typeof spans)[0], (typeof spans)[0]];
    expect(sentRoot).toMatchObject({ traceId: root.traceId, name: 'chat mock', kind: 2, traceState: 'k=v,a=b' });
    expect(sentRoot.parentSpanId ?? '').toBe('');
    expect(BigInt(sentRoot.startTimeUnixNano)).toBe(nanos(root.start));
    expect(BigInt(sentRoot.endTimeUnixNano)).toBe(nanos(root.end));
    expect(sentChild).toMatchObject({
      traceId: root.traceId,
      parentSpanId: root.spanId,
      name: 'tools/call échö 工具',
      kind: 3,
      status: { code: 2, message: 'boom: ✗' },
    });
    expect(Object.fromEntries(sentChild.attributes.map((a) => [a.key, attributeValue(a)]))).toEqual(child.attributes);
    // OTLP's flags: sampled, and whether the parent is remote (0x100: known; 0x200: remote).
    expect(sentRemote.flags).toBe(0x301);
    expect(sentChild.flags).toBe(0x101);
    expect(sentRoot.flags).toBe(0x101);
  });

  it('keeps long values whole (lengths of several bytes) and grows the batch past its first capacity', () => {
    const long = 'x'.repeat(20_000);
    const wide = 'ü'.repeat(300);
    const records = Array.from({ length: 300 }, (_, i) =>
      record({ name: `span ${i}`, attributes: { i, content: i % 100 === 0 ? long : wide } }),
    );
    const spans = spansOf([roundTrip(protocol, records, 16)]);
    expect(spans).toHaveLength(300);
    spans.forEach((span, i) => {
      expect(span.name).toBe(`span ${i}`);
      const attributes = Object.fromEntries(span.attributes.map((a) => [a.key, attributeValue(a)]));
      expect(attributes).toEqual({ i, content: i % 100 === 0 ? long : wide });
    });
  });

  it('encodes any attributes and times as the decoder reads them back', () => {
    const value = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 200 }),
      fc.string({ minLength: 100, maxLength: 300 }),
      fc.boolean(),
      fc.maxSafeInteger(),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
    );
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ minLength: 1, maxLength: 40 }), value, { maxKeys: 12 }),
        fc.double({ min: 0, max: 4_000_000_000_000, noNaN: true }),
        (attributes: Attributes, start) => {
          const r = record({ attributes, start, end: start + 1.5 });
          const [span] = spansOf([roundTrip(protocol, [r])]);
          const decoded = Object.fromEntries(span!.attributes.map((a) => [a.key, attributeValue(a)]));
          expect(decoded).toEqual(Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, v])));
          expect(BigInt(span!.startTimeUnixNano)).toBe(nanos(start));
        },
      ),
      { numRuns: 300 },
    );
  });
});

import { describe, expect, it } from 'vitest';
import {
  CLIENT,
  SERVER,
  formatTraceparent,
  injectContext,
  newSpanId,
  newTraceId,
  parentBasedRatio,
  parseTraceparent,
  samplerFromEnv,
  startSpan,
} from './spans.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('parseTraceparent', () => {
  it('reads a level-1 traceparent and passes tracestate on unchanged', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      sampled: true,
      traceState: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
    });
    expect(parseTraceparent([`00-${TRACE}-${SPAN}-00`], ['a=1', 'b=2'])).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      sampled: false,
      traceState: 'a=1,b=2',
    });
    // Only the sampled bit of the flags counts.
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-03`, undefined)?.sampled).toBe(true);
  });

  it('accepts a later version with more fields, and refuses what is not a valid context', () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-future`, undefined)?.traceId).toBe(TRACE);
    for (const bad of [
      undefined,
      '',
      `ff-${TRACE}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-01-extra`,
      `01-${TRACE}-${SPAN}-01x`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}`,
      `00_${TRACE}_${SPAN}_01`,
      42,
    ]) {
      expect(parseTraceparent(bad, undefined), String(bad)).toBeUndefined();
    }
  });

  it('drops a tracestate past 512 characters, keeping the context', () => {
    const context = parseTraceparent(`00-${TRACE}-${SPAN}-01`, `a=${'x'.repeat(600)}`);
    expect(context?.traceId).toBe(TRACE);
    expect(context?.traceState).toBeUndefined();
  });

  it('reads back what formatTraceparent and injectContext write', () => {
    const context = { traceId: newTraceId(), spanId: newSpanId(), sampled: true, traceState: 'k=v' };
    const carrier: Record<string, unknown> = {};
    injectContext(context, carrier);
    expect(carrier).toEqual({ traceparent: formatTraceparent(context), tracestate: 'k=v' });
    expect(parseTraceparent(carrier.traceparent, carrier.tracestate)).toEqual(context);
  });
});

describe('ids', () => {
  it('are lowercase hex of the W3C widths and do not repeat', () => {
    const traces = new Set(Array.from({ length: 2000 }, () => newTraceId()));
    const spans = new Set(Array.from({ length: 2000 }, () => newSpanId()));
    expect(traces.size).toBe(2000);
    expect(spans.size).toBe(2000);
    for (const id of traces) expect(id).toMatch(/^[0-9a-f]{32}$/);
    for (const id of spans) expect(id).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('samplers', () => {
  const remote = (sampled: boolean) => ({ traceId: TRACE, spanId: SPAN, sampled, traceState: undefined });
  const share = (sample: (traceId: string) => boolean) => {
    let kept = 0;
    for (let i = 0; i < 4000; i++) if (sample(newTraceId())) kept++;
    return kept / 4000;
  };

  it('keeps about the ratio of new traces, the same decision for the same trace id, and follows a parent', () => {
    const sampler = parentBasedRatio(0.25);
    expect(share((id) => sampler.sample(undefined, id))).toBeGreaterThan(0.2);
    expect(share((id) => sampler.sample(undefined, id))).toBeLessThan(0.3);
    const id = newTraceId();
    expect(new Set(Array.from({ length: 10 }, () => sampler.sample(undefined, id))).size).toBe(1);
    expect(sampler.sample(remote(true), TRACE)).toBe(true);
    expect(parentBasedRatio(0).sample(remote(true), TRACE)).toBe(true);
    expect(parentBasedRatio(1).sample(remote(false), TRACE)).toBe(false);
    expect(share((t) => parentBasedRatio(0).sample(undefined, t))).toBe(0);
    expect(share((t) => parentBasedRatio(1).sample(undefined, t))).toBe(1);
  });

  it('are chosen by OTEL_TRACES_SAMPLER and its argument, parentbased_always_on by default', () => {
    expect(samplerFromEnv({}).sample(undefined, TRACE)).toBe(true);
    expect(samplerFromEnv({}).sample(remote(false), TRACE)).toBe(false);
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'nonsense' }).sample(undefined, TRACE)).toBe(true);
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'always_off' }).sample(remote(true), TRACE)).toBe(false);
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'always_on' }).sample(remote(false), TRACE)).toBe(true);
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }).sample(undefined, TRACE)).toBe(false);
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }).sample(remote(true), TRACE)).toBe(true);
    const ratio = samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' });
    expect(share((id) => ratio.sample(undefined, id))).toBeLessThan(0.15);
    // traceidratio ignores the parent; parentbased_traceidratio follows it.
    expect(share((id) => ratio.sample(remote(true), id))).toBeLessThan(0.15);
    const based = samplerFromEnv({ OTEL_TRACES_SAMPLER: 'PARENTBASED_TRACEIDRATIO', OTEL_TRACES_SAMPLER_ARG: '0' });
    expect(based.sample(remote(true), TRACE)).toBe(true);
    expect(based.sample(undefined, TRACE)).toBe(false);
    // A bad argument means the whole ratio, as the SDK reads it.
    const bad = samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'lots' });
    expect(bad.sample(undefined, TRACE)).toBe(true);
  });
});

describe('startSpan', () => {
  it('continues a remote parent, records only sampled spans, and gives unsampled ones a context to pass on', () => {
    const always = parentBasedRatio(1);
    const caller = { traceId: TRACE, spanId: SPAN, sampled: true, traceState: 's=1' };
    const server = startSpan(always, caller, true, 'chat', SERVER, { a: 1 }, 1000);
    expect(server.context).toMatchObject({ traceId: TRACE, sampled: true, traceState: 's=1' });
    expect(server.context.spanId).not.toBe(SPAN);
    expect(server.record).toMatchObject({ parentId: SPAN, remoteParent: true, name: 'chat', kind: SERVER });
    const child = startSpan(always, server.context, false, 'call', CLIENT, {}, 1001);
    expect(child.record).toMatchObject({ traceId: TRACE, parentId: server.context.spanId, remoteParent: false });

    const unsampled = startSpan(always, { ...caller, sampled: false }, true, 'chat', SERVER, {}, 1000);
    expect(unsampled.record).toBeUndefined();
    expect(unsampled.context).toMatchObject({ traceId: TRACE, sampled: false });
    const root = startSpan(parentBasedRatio(0), undefined, false, 'chat', SERVER, {}, 1000);
    expect(root.record).toBeUndefined();
    expect(root.context.traceId).toMatch(/^[0-9a-f]{32}$/);
  });
});

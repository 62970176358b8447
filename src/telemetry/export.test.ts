import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startSpanExport } from './export.js';
import { CLIENT, SERVER, STATUS_ERROR, newSpanId, newTraceId } from './spans.js';
import type { SpanRecord } from './spans.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: Record<string, unknown> }[];
  status: { code?: number; message?: string };
  flags?: number;
}
interface OtlpBody {
  resourceSpans: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeSpans: { scope: { name: string; version?: string }; spans: OtlpSpan[] }[];
  }[];
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function receiver(status = 200): Promise<{ url: string; bodies: OtlpBody[] }> {
  const bodies: OtlpBody[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (status === 200) bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpBody);
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, bodies };
}

/** An export to `url` with `env`, its warnings collected in `errors`. */
function exportTo(url: string, env: NodeJS.ProcessEnv, errors: string[]) {
  return startSpanExport({
    url,
    headers: {},
    resource: { 'service.name': 'x' },
    version: '1',
    env,
    onError: (message) => errors.push(message),
  });
}

const spansOf = (bodies: OtlpBody[]) =>
  bodies.flatMap((b) => b.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)));

function span(fields: Partial<SpanRecord>): SpanRecord {
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

describe('startSpanExport', () => {
  it('exports the records as OTLP/HTTP JSON through the worker, with the resource, and flushes on shutdown', async () => {
    const { url, bodies } = await receiver();
    const errors: string[] = [];
    const exporter = startSpanExport({
      url,
      headers: { 'x-team': 'a' },
      resource: { 'service.name': 'mcplex-test', 'service.instance.id': 'r1' },
      version: '9.9.9',
      env: { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test' },
      onError: (message) => errors.push(message),
    });
    const root = span({ name: 'chat mock', traceState: 'k=v', attributes: { 'gen_ai.request.model': 'mock', n: 3 } });
    const child = span({
      traceId: root.traceId,
      parentId: root.spanId,
      remoteParent: false,
      name: 'chat mock',
      kind: CLIENT,
      attributes: { 'mcplex.llm.attempt': 1, ok: false, ratio: 0.5 },
      status: STATUS_ERROR,
      message: 'boom',
    });
    const remote = span({ parentId: newSpanId(), remoteParent: true });
    exporter.add(root);
    exporter.add(child);
    exporter.add(remote);
    await exporter.shutdown(3000);
    expect(errors).toEqual([]);
    const spans = spansOf(bodies);
    expect(spans).toHaveLength(3);
    const resource = Object.fromEntries(
      bodies[0]!.resourceSpans[0]!.resource.attributes.map((a) => [a.key, a.value.stringValue]),
    );
    expect(resource).toMatchObject({
      'service.name': 'mcplex-test',
      'service.instance.id': 'r1',
      'deployment.environment.name': 'test',
    });
    expect(bodies[0]!.resourceSpans[0]!.scopeSpans[0]!.scope).toMatchObject({ name: 'mcplex', version: '9.9.9' });
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const sentRoot = byId.get(root.spanId)!;
    expect(sentRoot).toMatchObject({ traceId: root.traceId, name: 'chat mock', kind: 2, traceState: 'k=v' });
    expect(sentRoot.parentSpanId ?? '').toBe('');
    // Epoch milliseconds as a double are good to a fraction of a microsecond.
    const off = (nanos: string, expected: bigint) => Math.abs(Number(BigInt(nanos) - expected));
    expect(off(sentRoot.startTimeUnixNano, 1_700_000_000_123_456_000n)).toBeLessThan(1000);
    expect(off(sentRoot.endTimeUnixNano, 1_700_000_000_125_500_000n)).toBeLessThan(1000);
    const sentChild = byId.get(child.spanId)!;
    expect(sentChild).toMatchObject({ parentSpanId: root.spanId, kind: 3, status: { code: 2, message: 'boom' } });
    expect(Object.fromEntries(sentChild.attributes.map((a) => [a.key, a.value]))).toEqual({
      'mcplex.llm.attempt': { intValue: 1 },
      ok: { boolValue: false },
      ratio: { doubleValue: 0.5 },
    });
    // OTLP's flags say whether the parent is remote (0x100: known; 0x200: remote).
    expect(byId.get(remote.spanId)!.flags! & 0x300).toBe(0x300);
    expect(sentChild.flags! & 0x300).toBe(0x100);
  });

  it('tells once that exports fail while the collector refuses them, and keeps the process serving', async () => {
    const { url } = await receiver(400);
    const errors: string[] = [];
    const exporter = exportTo(url, { OTEL_BSP_SCHEDULE_DELAY: '0', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '1' }, errors);
    for (let i = 0; i < 3; i++) exporter.add(span({}));
    await exporter.shutdown(5000);
    expect(errors.length).toBe(1);
    expect(errors[0]).toMatch(/^exporting spans failed: /);
  });

  it('drops what the worker cannot take, accounts for every span, and says how many it dropped', async () => {
    const { url, bodies } = await receiver();
    const errors: string[] = [];
    const exporter = exportTo(url, { OTEL_BSP_MAX_QUEUE_SIZE: '100' }, errors);
    // One burst on this thread: the worker acknowledges nothing until it is over.
    for (let i = 0; i < 10_000; i++) exporter.add(span({}));
    expect(exporter.dropped).toBeGreaterThan(0);
    await exporter.shutdown(5000);
    const sent = spansOf(bodies).length;
    expect(sent).toBeGreaterThan(0);
    expect(exporter.dropped + sent).toBe(10_000);
    expect(errors.some((e) => /spans were dropped/.test(e))).toBe(true);
  });
});

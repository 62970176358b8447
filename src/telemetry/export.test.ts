import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { attributeValue, decodeOtlp, spanRecord, spansOf } from '../../test/support/otlp.js';
import type { OtlpBody } from '../../test/support/otlp.js';
import { startSpanExport } from './export.js';
import { CLIENT, STATUS_ERROR, newSpanId } from './spans.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function receiver(status = 200): Promise<{ url: string; bodies: OtlpBody[]; types: string[] }> {
  const bodies: OtlpBody[] = [];
  const types: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      types.push(String(req.headers['content-type']));
      if (status === 200) bodies.push(decodeOtlp(Buffer.concat(chunks), req.headers['content-type']));
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, bodies, types };
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

const span = spanRecord;

describe('startSpanExport', () => {
  it.each([
    ['protobuf by default', {}, 'application/x-protobuf'],
    ['JSON when OTEL_EXPORTER_OTLP_PROTOCOL says so', { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, 'application/json'],
    ['JSON when the traces protocol says so', { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' }, 'application/json'],
  ])('exports the records as OTLP/HTTP, %s, with the resource, and flushes on shutdown', async (_, env, type) => {
    const { url, bodies, types } = await receiver();
    const errors: string[] = [];
    // The SDK's resource detection reads the process's own environment.
    const saved = process.env.OTEL_RESOURCE_ATTRIBUTES;
    process.env.OTEL_RESOURCE_ATTRIBUTES = 'deployment.environment.name=test';
    closers.push(async () => {
      if (saved === undefined) delete process.env.OTEL_RESOURCE_ATTRIBUTES;
      else process.env.OTEL_RESOURCE_ATTRIBUTES = saved;
    });
    const exporter = startSpanExport({
      url,
      headers: { 'x-team': 'a' },
      resource: { 'service.name': 'mcplex-test', 'service.instance.id': 'r1' },
      version: '9.9.9',
      env,
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
    expect(types).toEqual([type]);
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
    expect(Object.fromEntries(sentChild.attributes.map((a) => [a.key, attributeValue(a)]))).toEqual({
      'mcplex.llm.attempt': 1,
      ok: false,
      ratio: 0.5,
    });
    // OTLP's flags say whether the parent is remote (0x100: known; 0x200: remote).
    expect(byId.get(remote.spanId)!.flags! & 0x300).toBe(0x300);
    expect(sentChild.flags! & 0x300).toBe(0x100);
  });

  it('says that it does not speak gRPC and sends protobuf over HTTP instead', async () => {
    const { url, bodies, types } = await receiver();
    const errors: string[] = [];
    const exporter = exportTo(url, { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, errors);
    exporter.add(span({}));
    await exporter.shutdown(3000);
    expect(errors).toEqual(['OTLP protocol grpc is not supported: spans are sent as http/protobuf']);
    expect(types).toEqual(['application/x-protobuf']);
    expect(spansOf(bodies)).toHaveLength(1);
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

  it('drops what the queue cannot take, accounts for every span, and says how many it dropped', async () => {
    const { url, bodies } = await receiver();
    const errors: string[] = [];
    const exporter = exportTo(url, { OTEL_BSP_MAX_QUEUE_SIZE: '100' }, errors);
    // One burst on this thread: no export can end before it is over.
    for (let i = 0; i < 10_000; i++) exporter.add(span({}));
    expect(exporter.dropped).toBeGreaterThan(0);
    await exporter.shutdown(5000);
    const sent = spansOf(bodies).length;
    expect(sent).toBeGreaterThan(0);
    expect(exporter.dropped + sent).toBe(10_000);
    expect(errors.some((e) => /spans were dropped/.test(e))).toBe(true);
  });
});

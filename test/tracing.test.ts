// OpenTelemetry tracing end to end: a built mcplex exports its spans over OTLP/HTTP (protobuf, the default) to a
// receiver in this process; two fixture upstreams (Streamable HTTP, on the fast path, and stdio, on the SDK client) read the
// `_meta.traceparent` of their calls and report spans of their own to the same receiver. A tool-running chat
// gives one trace: the /v1 SERVER span, the LLM attempts (a retry among them) and the MCP calls under it, the
// upstreams' spans under the MCP calls. With tracing off nothing is exported and no trace context goes upstream.
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/client';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { startFixtureHttp } from './fixtures/fixture-server.js';
import type { FixtureHandle } from './fixtures/fixture-server.js';
import {
  allReady,
  connectHttp,
  fixtureStdio,
  listeningUrl,
  spawnMcplex,
  tempDir,
  waitFor,
  writeConfig,
} from './support/harness.js';
import type { SpawnedMcplex } from './support/harness.js';
import { attributeValue, decodeOtlp } from './support/otlp.js';
import type { OtlpAttribute } from './support/otlp.js';

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  /** OTLP's SpanKind: 2 server, 3 client. */
  kind: number;
  attributes: Record<string, unknown>;
  /** OTLP's status code: 2 is an error. */
  status: number;
  start: bigint;
}

const attributesOf = (list: OtlpAttribute[] | undefined) =>
  Object.fromEntries((list ?? []).map((a) => [a.key, attributeValue(a)]));

/** An OTLP/HTTP traces receiver for both encodings: mcplex sends protobuf, the fixture upstreams JSON. */
async function startReceiver(): Promise<{
  url: string;
  spans: ReceivedSpan[];
  bodies: string[];
  types: Set<string>;
  server: Server;
}> {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const types = new Set<string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      types.add(String(req.headers['content-type']));
      const bytes = Buffer.concat(chunks);
      // Protobuf carries strings as their UTF-8 bytes too: what a test looks for in the text is there either way.
      bodies.push(bytes.toString('utf8'));
      const body = decodeOtlp(bytes, req.headers['content-type']);
      for (const resource of body.resourceSpans) {
        const service = String(attributesOf(resource.resource.attributes)['service.name']);
        for (const scope of resource.scopeSpans) {
          for (const span of scope.spans) {
            spans.push({
              service,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId || undefined,
              name: span.name,
              kind: span.kind,
              attributes: attributesOf(span.attributes),
              status: span.status?.code ?? 0,
              start: BigInt(span.startTimeUnixNano),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, spans, bodies, types, server };
}

type Receiver = Awaited<ReturnType<typeof startReceiver>>;

const dir = tempDir('mcplex-tracing-');
let mock: MockLlm;
let traced: Receiver;
let untraced: Receiver;
let fixture: FixtureHandle;
const processes: SpawnedMcplex[] = [];

/** A served mcplex with the two fixture upstreams and the mock model `m`. */
async function serve(name: string, receiver: Receiver, extra: Record<string, unknown>, env: NodeJS.ProcessEnv) {
  const config = writeConfig(
    dir.path,
    {
      server: { port: 0 },
      store: 'memory:',
      mcpServers: {
        web: { url: fixture.url },
        local: fixtureStdio('--name', `${name}-stdio`, '--trace-to', `${receiver.url}/v1/traces`),
      },
      llm: { models: { m: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } } },
      agent: { embeddings: false },
      ...extra,
    },
    `${name}.json`,
  );
  const mcplex = spawnMcplex(['serve', '--config', config], { env });
  processes.push(mcplex);
  const url = await listeningUrl(mcplex).catch((error: unknown) => {
    throw new Error(`${String(error)}; mcplex said: ${mcplex.stderr()}`);
  });
  await allReady(url);
  return { mcplex, url };
}

/** A tool-running chat in which the model calls both upstreams' `traced` tool, after one failed attempt. */
async function chat(url: string, headers: Record<string, string> = {}) {
  mock.enqueue(
    { kind: 'error', status: 503, message: 'busy' },
    {
      kind: 'tool_calls',
      calls: [
        { name: 'web__traced', arguments: {} },
        { name: 'local__traced', arguments: {} },
      ],
    },
    { kind: 'report_tool_results' },
  );
  const first = mock.requests.length;
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'secret prompt' }], mcp: {} }),
  });
  expect(response.status).toBe(200);
  const answer = (await response.json()) as { choices: { message: { content: string } }[] };
  return { text: answer.choices[0]!.message.content, requests: mock.requests.slice(first) };
}

beforeAll(async () => {
  [mock, traced, untraced] = await Promise.all([
    startMockLlm({ name: 'tracing-mock' }),
    startReceiver(),
    startReceiver(),
  ]);
  fixture = await startFixtureHttp({ name: 'traced-http', traceTo: `${traced.url}/v1/traces` });
});

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await fixture?.close();
  await mock?.close();
  for (const receiver of [traced, untraced]) receiver?.server.close();
  dir.remove();
});

describe('tracing on', () => {
  let url: string;
  beforeAll(async () => {
    const telemetry = { traces: { endpoint: traced.url, serviceName: 'mcplex-traced' } };
    // Exported within a tenth of a second rather than the default five.
    ({ url } = await serve('on', traced, { telemetry }, { OTEL_BSP_SCHEDULE_DELAY: '100' }));
  });

  it('continues the caller’s trace through a tool-running chat: LLM attempts, MCP calls and the upstreams’ spans', async () => {
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const { text, requests } = await chat(url, { traceparent: `00-${callerTrace}-${callerSpan}-01` });
    // The upstreams received a trace context in `_meta` (and answered with it).
    expect(text.match(/traceparent: 00-[0-9a-f]{32}-[0-9a-f]{16}-01/g)).toHaveLength(2);

    const inTrace = () => traced.spans.filter((s) => s.traceId === callerTrace);
    const spans = await waitFor(() => {
      const found = inTrace();
      return found.filter((s) => s.service.startsWith('on-stdio') || s.service === 'traced-http').length === 2 &&
        found.some((s) => s.kind === 2 && s.service === 'mcplex-traced')
        ? found
        : undefined;
    }, 'the spans of the chat');
    // mcplex's own spans in OTLP's default encoding; the fixture upstreams send JSON.
    expect([...traced.types].sort()).toEqual(['application/json', 'application/x-protobuf']);

    const server = spans.find((s) => s.service === 'mcplex-traced' && s.kind === 2)!;
    expect(server.name).toBe('chat m');
    expect(server.parentSpanId).toBe(callerSpan);
    expect(server.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'm',
      'gen_ai.response.model': 'backend',
      'http.response.status_code': 200,
    });
    expect(server.attributes['gen_ai.usage.input_tokens']).toBeGreaterThan(0);
    expect(server.attributes['gen_ai.usage.output_tokens']).toBeGreaterThan(0);

    // Three attempts, each a child of the request: the chat's first model call failed once (a retry), its second
    // answered at once. Each carried its own traceparent to the backend.
    const attempts = spans
      .filter((s) => s.kind === 3 && s.attributes['gen_ai.operation.name'] === 'chat')
      .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    expect(attempts.map((a) => [a.name, a.parentSpanId, a.attributes['mcplex.llm.attempt']])).toEqual([
      ['chat backend', server.spanId, 1],
      ['chat backend', server.spanId, 2],
      ['chat backend', server.spanId, 1],
    ]);
    expect(attempts[0]!.attributes).toMatchObject({ 'http.response.status_code': 503, 'error.type': '503' });
    expect(attempts[0]!.status).toBe(2);
    expect(attempts[1]!.attributes).toMatchObject({
      'http.response.status_code': 200,
      'mcplex.llm.deployment': 'm#0',
      'server.address': '127.0.0.1',
      'gen_ai.provider.name': 'openai',
    });
    expect(requests.map((r) => r.headers.traceparent)).toEqual(attempts.map((a) => `00-${callerTrace}-${a.spanId}-01`));

    // One MCP call span per upstream under the request, and each upstream's own span under that call.
    const calls = spans.filter((s) => s.kind === 3 && s.attributes['mcp.method.name'] === 'tools/call');
    expect(calls.map((c) => [c.name, c.parentSpanId, c.attributes['mcplex.mcp.server']]).sort()).toEqual([
      ['tools/call traced', server.spanId, 'local'],
      ['tools/call traced', server.spanId, 'web'],
    ]);
    const web = calls.find((c) => c.attributes['mcplex.mcp.server'] === 'web')!;
    const local = calls.find((c) => c.attributes['mcplex.mcp.server'] === 'local')!;
    expect(web.attributes).toMatchObject({ 'gen_ai.tool.name': 'traced', 'network.protocol.name': 'http' });
    expect(local.attributes['network.transport']).toBe('pipe');
    expect(spans.find((s) => s.service === 'traced-http')!.parentSpanId).toBe(web.spanId);
    expect(spans.find((s) => s.service === 'on-stdio')!.parentSpanId).toBe(local.spanId);

    // No content on any span unless captureContent is set.
    const keys = spans.flatMap((s) => Object.keys(s.attributes));
    expect(keys.filter((k) => k.startsWith('gen_ai.input') || k.startsWith('gen_ai.tool.call'))).toEqual([]);
    expect(traced.bodies.join('\n')).not.toContain('secret prompt');
  });

  it('gives an /mcp tools/call a SERVER span with the MCP attributes, its upstream call under it', async () => {
    let client: Client | undefined;
    try {
      client = await connectHttp(`${url}/mcp`, 'legacy');
      const result = await client.callTool({ name: 'web__traced', arguments: {} });
      expect(JSON.stringify(result.content)).toContain('traceparent: 00-');
      const failed = await client.callTool({ name: 'no_such_tool', arguments: {} }).catch((error: unknown) => error);
      expect(failed).toBeTruthy();
      // Not a tool call: the SDK server answers it, and finds the request's span by its headers.
      const prompt = await client.getPrompt({ name: 'web__greet', arguments: { name: 'alice' } });
      expect(JSON.stringify(prompt.messages)).toContain('Hello, alice!');
    } finally {
      await client?.close();
    }
    const server = await waitFor(
      () => traced.spans.find((s) => s.kind === 2 && s.name === 'tools/call web__traced'),
      'the tools/call span',
    );
    expect(server.attributes).toMatchObject({
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'web__traced',
      'network.protocol.name': 'http',
      'http.response.status_code': 200,
    });
    expect(server.attributes['jsonrpc.request.id']).toBeDefined();
    expect(String(server.attributes['mcp.session.id'])).not.toBe('');
    const call = await waitFor(
      () => traced.spans.find((s) => s.kind === 3 && s.parentSpanId === server.spanId),
      'the upstream call span',
    );
    expect(call.attributes['mcplex.mcp.server']).toBe('web');
    expect(traced.spans.find((s) => s.service === 'traced-http' && s.parentSpanId === call.spanId)).toBeDefined();
    const refused = await waitFor(
      () => traced.spans.find((s) => s.kind === 2 && s.name === 'tools/call no_such_tool'),
      'the failed call span',
    );
    expect(refused.status).toBe(2);
    expect(refused.attributes['error.type']).toBeDefined();
    const get = await waitFor(
      () => traced.spans.find((s) => s.kind === 2 && s.name === 'prompts/get web__greet'),
      'the prompts/get span',
    );
    expect(get.attributes['gen_ai.prompt.name']).toBe('web__greet');
    const upstreamGet = await waitFor(
      () => traced.spans.find((s) => s.kind === 3 && s.parentSpanId === get.spanId),
      'the upstream prompts/get span',
    );
    expect(upstreamGet.name).toBe('prompts/get greet');
  });
});

describe('tracing off', () => {
  it('exports nothing and sends no trace context upstream, even with an OTLP endpoint in the environment', async () => {
    const { mcplex, url } = await serve('off', untraced, {}, { OTEL_EXPORTER_OTLP_ENDPOINT: untraced.url });
    const { text, requests } = await chat(url, {
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01',
    });
    // Both upstreams saw no `_meta.traceparent`, and the model's requests carried none of mcplex's.
    expect(text.match(/traceparent: none/g)).toHaveLength(2);
    expect(requests.map((r) => r.headers.traceparent)).toEqual([undefined, undefined, undefined]);
    // A clean stop flushes whatever a tracer would have buffered: nothing reached the receiver.
    expect(await mcplex.stop()).toBe(0);
    expect(untraced.spans).toEqual([]);
  });
});

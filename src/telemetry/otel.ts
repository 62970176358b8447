// The OpenTelemetry implementation of Tracing (types.ts), loaded only when tracing is on: a tracer provider whose
// spans go to an OTLP/HTTP collector in batches, W3C trace context read from requests and written to upstream
// calls. A span's parent travels explicitly (a TraceParent in the work's own fields): no context manager, since
// AsyncLocalStorage on Node 20 puts a hook on every promise of the process. Attribute names follow the
// OpenTelemetry semantic conventions for MCP, GenAI and HTTP; mcplex's own are under `mcplex.`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import type { AttemptResult, TraceParent, Tracing, TracingSettings, UpstreamTarget } from './types.js';

/** How long a shutdown waits for the last export. */
const SHUTDOWN_MS = 3000;

/** Captured content is cut to this many characters per attribute. */
const MAX_CONTENT = 16_384;

/** What a /v1 or /mcp SERVER span gathers from the work below it before it ends: the TraceParent of its work. */
interface RequestRecord {
  span: Span;
  /** The span's context: the parent of the work done for the request. */
  ctx: Context;
  kind: 'mcp' | 'llm';
  operation: string;
  inputTokens: number;
  outputTokens: number;
  usage: boolean;
  responseModel: string | undefined;
  errorType: string | undefined;
}

type Getter = { get(carrier: unknown, key: string): string | undefined; keys(carrier: unknown): string[] };
/** A response's open request, kept on the response itself: cheaper than a WeakMap entry per request. */
const OPEN = Symbol('mcplex trace');
type Traced = ServerResponse & { [OPEN]?: RequestRecord | undefined };

const getter: Getter = {
  get(carrier, key) {
    const value = (carrier as Record<string, unknown>)[key];
    if (typeof value === 'string') return value;
    return Array.isArray(value) && typeof value[0] === 'string' ? value[0] : undefined;
  },
  keys: (carrier) => Object.keys(carrier as object),
};
const setter = {
  set(carrier: Record<string, unknown>, key: string, value: string) {
    carrier[key] = value;
  },
};

const content = (value: unknown): string => {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
  return text.length > MAX_CONTENT ? `${text.slice(0, MAX_CONTENT)}…` : text;
};

/** The error.type of a failure: a stable code when it has one (McplexError, JSON-RPC), else its class. */
function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' || typeof code === 'number') return String(code);
  return error instanceof Error ? error.name : 'error';
}

function portOf(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

export function createOtelTracing(settings: TracingSettings): Tracing {
  const propagator = new W3CTraceContextPropagator();
  const exporter = new OTLPTraceExporter({
    ...(settings.url === undefined ? {} : { url: settings.url }),
    headers: { ...settings.headers },
  });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': settings.serviceName,
      'service.version': settings.serviceVersion,
      'service.instance.id': settings.instance,
    }),
    ...(settings.sampleRatio === undefined
      ? {}
      : { sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRatio) }) }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer: Tracer = provider.getTracer('mcplex', settings.serviceVersion);
  const { captureContent } = settings;

  const startTime = (started: number) => performance.timeOrigin + started;

  /** Open /mcp requests by the `traceparent` their handlers see (by their response: the OPEN property). */
  const byTraceparent = new Map<string, RequestRecord>();
  const record = (parent: TraceParent | undefined) => parent as RequestRecord | undefined;
  const parentContext = (parent: TraceParent | undefined) => record(parent)?.ctx ?? ROOT_CONTEXT;

  /** Runs `run` as the SERVER span of a request, ended when the response is closed. */
  function serve(
    res: ServerResponse,
    parent: Context,
    name: string,
    started: number,
    fields: Omit<RequestRecord, 'span' | 'ctx'>,
    attributes: Attributes,
    run: () => Promise<void>,
    headers?: IncomingMessage['headers'],
  ): Promise<void> {
    const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes, startTime: startTime(started) }, parent);
    const full: RequestRecord = { ...fields, span, ctx: trace.setSpan(parent, span) };
    (res as Traced)[OPEN] = full;
    let traceparent: string | undefined;
    if (headers) {
      // The SDK's handlers see the request's headers, not its response: the header now names this span.
      const carrier: Record<string, string> = {};
      propagator.inject(full.ctx, carrier, setter);
      traceparent = carrier.traceparent;
      if (traceparent !== undefined) {
        headers.traceparent = traceparent;
        if (carrier.tracestate !== undefined) headers.tracestate = carrier.tracestate;
        byTraceparent.set(traceparent, full);
      }
    }
    res.once('close', () => {
      (res as Traced)[OPEN] = undefined;
      if (traceparent !== undefined) byTraceparent.delete(traceparent);
      const status = res.headersSent ? res.statusCode : 0;
      if (status > 0) span.setAttribute('http.response.status_code', status);
      if (full.usage) {
        span.setAttribute('gen_ai.usage.input_tokens', full.inputTokens);
        span.setAttribute('gen_ai.usage.output_tokens', full.outputTokens);
      }
      if (full.responseModel !== undefined) span.setAttribute('gen_ai.response.model', full.responseModel);
      const failed = full.errorType ?? (status >= 500 ? String(status) : !res.writableFinished ? 'aborted' : undefined);
      if (failed !== undefined) {
        span.setAttribute('error.type', failed);
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    });
    return run();
  }

  const upstreamAttributes = new Map<string, Attributes>();
  function targetAttributes(target: UpstreamTarget): Attributes {
    let attributes = upstreamAttributes.get(target.server);
    if (!attributes) {
      attributes = { 'mcplex.mcp.server': target.server };
      if (target.transport === 'stdio') attributes['network.transport'] = 'pipe';
      else if (target.url !== undefined) {
        const url = new URL(target.url);
        attributes['network.transport'] = 'tcp';
        attributes['network.protocol.name'] = 'http';
        attributes['server.address'] = url.hostname;
        attributes['server.port'] = portOf(url);
      }
      upstreamAttributes.set(target.server, attributes);
    }
    return attributes;
  }

  /** Backends' addresses by base URL, parsed once each. */
  const backends = new Map<string, { address: string; port: number }>();

  return {
    captureContent,

    mcpRequest(req, res, body, started, run) {
      const message = (Array.isArray(body) ? undefined : body) as
        { id?: unknown; method?: unknown; params?: { name?: unknown; uri?: unknown; _meta?: unknown } } | undefined;
      const method = typeof message?.method === 'string' ? message.method : undefined;
      const attributes: Attributes = { 'network.protocol.name': 'http', 'network.protocol.version': req.httpVersion };
      let name = Array.isArray(body) ? 'batch' : (method ?? 'response');
      if (method !== undefined) attributes['mcp.method.name'] = method;
      const params = message?.params;
      if (typeof params?.name === 'string') {
        if (method === 'tools/call') {
          attributes['gen_ai.tool.name'] = params.name;
          attributes['gen_ai.operation.name'] = 'execute_tool';
          name = `${method} ${params.name}`;
        } else if (method === 'prompts/get') {
          attributes['gen_ai.prompt.name'] = params.name;
          name = `${method} ${params.name}`;
        }
      }
      if (method === 'resources/read' && typeof params?.uri === 'string') attributes['mcp.resource.uri'] = params.uri;
      if (typeof message?.id === 'string' || typeof message?.id === 'number') {
        attributes['jsonrpc.request.id'] = String(message.id);
      }
      const session = req.headers['mcp-session-id'];
      if (typeof session === 'string') attributes['mcp.session.id'] = session;
      const version = req.headers['mcp-protocol-version'];
      if (typeof version === 'string') attributes['mcp.protocol.version'] = version;
      if (captureContent && method === 'tools/call') {
        attributes['gen_ai.tool.call.arguments'] = content(
          (params as { arguments?: unknown } | undefined)?.arguments ?? {},
        );
      }
      // The HTTP header first; MCP also carries the context in the request's `_meta`.
      const meta = params?._meta;
      const carrier =
        req.headers.traceparent === undefined && typeof meta === 'object' && meta !== null ? meta : req.headers;
      const parent = propagator.extract(ROOT_CONTEXT, carrier, getter);
      const fields = {
        kind: 'mcp' as const,
        operation: method ?? name,
        inputTokens: 0,
        outputTokens: 0,
        usage: false,
        responseModel: undefined,
        errorType: undefined,
      };
      return serve(res, parent, name, started, fields, attributes, run, req.headers);
    },

    parentOf: (res) => (res as Traced)[OPEN],

    parentFromHeaders(headers) {
      if (headers === undefined) return undefined;
      const value =
        typeof headers.get === 'function'
          ? (headers as { get(name: string): string | null }).get('traceparent')
          : (headers as Record<string, unknown>).traceparent;
      return typeof value === 'string' ? byTraceparent.get(value) : undefined;
    },

    mcpRequestFailed(parent, error) {
      const open = record(parent);
      if (open?.kind !== 'mcp' || open.errorType !== undefined) return;
      open.errorType = errorType(error);
      const code = (error as { code?: unknown } | null)?.code;
      if (typeof code === 'number') open.span.setAttribute('rpc.response.status_code', String(code));
    },

    llmRequest(req, res, operation, started, run) {
      const parent = propagator.extract(ROOT_CONTEXT, req.headers, getter);
      const attributes: Attributes = {
        'gen_ai.operation.name': operation,
        'http.request.method': req.method ?? 'POST',
        'url.path': (req.url ?? '').split('?', 1)[0] ?? '',
        'network.protocol.name': 'http',
      };
      const fields = {
        kind: 'llm' as const,
        operation,
        inputTokens: 0,
        outputTokens: 0,
        usage: false,
        responseModel: undefined,
        errorType: undefined,
      };
      return serve(res, parent, operation, started, fields, attributes, run);
    },

    llmRequestBody(parent, body) {
      const record = parent as RequestRecord | undefined;
      if (record?.kind !== 'llm') return;
      const model = typeof body.model === 'string' ? body.model : undefined;
      if (model !== undefined) {
        record.span.updateName(`${record.operation} ${model}`);
        record.span.setAttribute('gen_ai.request.model', model);
      }
      if (body.stream === true) record.span.setAttribute('mcplex.llm.stream', true);
      if (body.mcp !== undefined && body.mcp !== null) record.span.setAttribute('mcplex.agent', true);
      if (captureContent) {
        const input = record.operation === 'chat' ? body.messages : body.input;
        if (input !== undefined) record.span.setAttribute('gen_ai.input.messages', content(input));
      }
    },

    async mcpCall(parent, target, method, name, params, call) {
      const attributes: Attributes = { ...targetAttributes(target), 'mcp.method.name': method };
      if (method === 'tools/call') {
        attributes['gen_ai.tool.name'] = name;
        attributes['gen_ai.operation.name'] = 'execute_tool';
      } else if (method === 'prompts/get') attributes['gen_ai.prompt.name'] = name;
      else attributes['mcp.resource.uri'] = name;
      if (captureContent && method === 'tools/call') {
        attributes['gen_ai.tool.call.arguments'] = content((params as { arguments?: unknown }).arguments ?? {});
      }
      const span = tracer.startSpan(
        method === 'resources/read' ? method : `${method} ${name}`,
        { kind: SpanKind.CLIENT, attributes },
        parentContext(parent),
      );
      const carrier: Record<string, unknown> = {};
      propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
      const traced = { ...params, _meta: { ...params._meta, ...carrier } };
      try {
        const result = await call(traced);
        if ((result as { isError?: unknown }).isError === true) {
          span.setAttribute('error.type', 'tool_error');
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
        if (captureContent && method === 'tools/call') {
          span.setAttribute('gen_ai.tool.call.result', content((result as { content?: unknown }).content ?? []));
        }
        return result;
      } catch (error) {
        span.setAttribute('error.type', errorType(error));
        const code = (error as { code?: unknown } | null)?.code;
        if (typeof code === 'number') span.setAttribute('rpc.response.status_code', String(code));
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        throw error;
      } finally {
        span.end();
      }
    },

    async llmAttempt(parent, info, run, describe) {
      let server = backends.get(info.baseUrl);
      if (!server) {
        const url = new URL(info.baseUrl);
        server = { address: url.hostname, port: portOf(url) };
        if (backends.size < 1024) backends.set(info.baseUrl, server);
      }
      const span = tracer.startSpan(
        `${info.operation} ${info.model}`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'gen_ai.operation.name': info.operation,
            'gen_ai.request.model': info.model,
            'gen_ai.provider.name': info.provider,
            'server.address': server.address,
            'server.port': server.port,
            'mcplex.llm.deployment': info.deployment,
            'mcplex.llm.attempt': info.attempt,
          },
        },
        parentContext(parent),
      );
      const headers: Record<string, string> = {};
      propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, setter);
      let outcome: Awaited<ReturnType<typeof run>>;
      try {
        outcome = await run(headers);
      } catch (error) {
        span.setAttribute('error.type', errorType(error));
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
        throw error;
      }
      const result: AttemptResult = describe(outcome);
      if (result.status !== undefined) span.setAttribute('http.response.status_code', result.status);
      if (result.responseModel !== undefined) span.setAttribute('gen_ai.response.model', result.responseModel);
      if (result.inputTokens !== undefined) span.setAttribute('gen_ai.usage.input_tokens', result.inputTokens);
      if (result.outputTokens !== undefined) span.setAttribute('gen_ai.usage.output_tokens', result.outputTokens);
      if (captureContent && result.output !== undefined) {
        span.setAttribute('gen_ai.output.messages', content(result.output));
      }
      if (result.errorType !== undefined) {
        span.setAttribute('error.type', result.errorType);
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
      // The request's totals: every answered attempt of it (a tool-running chat makes several).
      const record = parent as RequestRecord | undefined;
      if (record?.kind === 'llm' && result.errorType === undefined) {
        if (result.inputTokens !== undefined || result.outputTokens !== undefined) record.usage = true;
        record.inputTokens += result.inputTokens ?? 0;
        record.outputTokens += result.outputTokens ?? 0;
        if (result.responseModel !== undefined) record.responseModel = result.responseModel;
      }
      return outcome;
    },

    async shutdown() {
      // A collector that is away must not hold up the exit: what is buffered gets a moment, then is dropped.
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_MS).unref()));
      await Promise.race([provider.shutdown().catch(() => {}), deadline]);
      clearTimeout(timer);
    },
  };
}

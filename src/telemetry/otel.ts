// The OpenTelemetry implementation of Tracing (types.ts), loaded only when tracing is on. Spans are plain records
// (spans.ts) made on the request's thread, each encoded as it ends into a batch that OpenTelemetry's OTLP/HTTP
// export delegate sends (export.ts). W3C trace context is read from requests and written to upstream calls. A span's
// parent travels explicitly (a TraceParent in the work's own fields): no context manager, since AsyncLocalStorage
// on Node 20 puts a hook on every promise of the process. Attribute names follow the OpenTelemetry semantic
// conventions for MCP, GenAI and HTTP; mcplex's own are under `mcplex.`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startSpanExport } from './export.js';
import {
  CLIENT,
  SERVER,
  STATUS_ERROR,
  epochMs,
  injectContext,
  formatTraceparent,
  parentBasedRatio,
  parseTraceparent,
  samplerFromEnv,
  startSpan,
} from './spans.js';
import type { Attributes, AttributeValue, SpanContext, SpanRecord } from './spans.js';
import type { AttemptResult, TraceParent, Tracing, TracingSettings, UpstreamTarget } from './types.js';

/** How long a shutdown waits for the last export. */
const SHUTDOWN_MS = 3000;

/** Captured content is cut to this many characters per attribute. */
const MAX_CONTENT = 16_384;

/** What a /v1 or /mcp SERVER span gathers from the work below it before it ends: the TraceParent of its work. */
interface RequestRecord {
  /** The span, when its trace is sampled. */
  span: SpanRecord | undefined;
  /** The span's context: the parent of the work done for the request. */
  context: SpanContext;
  kind: 'mcp' | 'llm';
  operation: string;
  inputTokens: number;
  outputTokens: number;
  usage: boolean;
  responseModel: string | undefined;
  errorType: string | undefined;
}

const content = (value: unknown): string => {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
  return text.length > MAX_CONTENT ? `${text.slice(0, MAX_CONTENT)}…` : text;
};

/** Sets an attribute of a recorded span; nothing for a span that is not. */
function set(span: SpanRecord | undefined, key: string, value: AttributeValue): void {
  if (span) span.attributes[key] = value;
}

/** Marks a recorded span failed. */
function fail(span: SpanRecord | undefined, type: string, message?: string): void {
  if (!span) return;
  span.attributes['error.type'] = type;
  span.status = STATUS_ERROR;
  if (message !== undefined) span.message = message;
}

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

export function createOtelTracing(settings: TracingSettings, env: NodeJS.ProcessEnv = process.env): Tracing {
  const sampler = settings.sampleRatio === undefined ? samplerFromEnv(env) : parentBasedRatio(settings.sampleRatio);
  const spans = startSpanExport({
    url: settings.url,
    headers: settings.headers,
    resource: {
      'service.name': settings.serviceName,
      'service.version': settings.serviceVersion,
      'service.instance.id': settings.instance,
    },
    version: settings.serviceVersion,
    env,
    ...(settings.onError ? { onError: settings.onError } : {}),
  });
  const { captureContent } = settings;
  const finish = (span: SpanRecord | undefined) => {
    if (!span) return;
    span.end = epochMs();
    spans.add(span);
  };

  /** Open /mcp requests by the `traceparent` their handlers see (by their response: `byResponse`). */
  const byTraceparent = new Map<string, RequestRecord>();
  /**
   * Open requests by their response. Not a property of the response: a new property on node's ServerResponse
   * objects changes their shape and slows every function of node's HTTP server that handles them.
   */
  const byResponse = new WeakMap<ServerResponse, RequestRecord>();
  const record = (parent: TraceParent | undefined) => parent as RequestRecord | undefined;

  /** A CLIENT span under a request (or a root, without one), and the context that names it to the callee. */
  const client = (parent: TraceParent | undefined, name: string, attributes: Attributes) => {
    const request = record(parent);
    return startSpan(sampler, request?.context, false, name, CLIENT, attributes, epochMs());
  };

  /** Runs `run` as the SERVER span of a request, ended when the response is closed. */
  function serve(
    res: ServerResponse,
    caller: SpanContext | undefined,
    name: string,
    started: number,
    kind: RequestRecord['kind'],
    operation: string,
    attributes: Attributes,
    run: () => Promise<void>,
    headers?: IncomingMessage['headers'],
  ): Promise<void> {
    const { context, record: span } = startSpan(
      sampler,
      caller,
      caller !== undefined,
      name,
      SERVER,
      attributes,
      performance.timeOrigin + started,
    );
    // A literal of one shape (a spread would make a slow dictionary object of it).
    const full: RequestRecord = {
      span,
      context,
      kind,
      operation,
      inputTokens: 0,
      outputTokens: 0,
      usage: false,
      responseModel: undefined,
      errorType: undefined,
    };
    byResponse.set(res, full);
    let traceparent: string | undefined;
    if (headers) {
      // The SDK's handlers see the request's headers, not its response: the header now names this span.
      traceparent = formatTraceparent(context);
      headers.traceparent = traceparent;
      if (context.traceState !== undefined) headers.tracestate = context.traceState;
      byTraceparent.set(traceparent, full);
    }
    res.once('close', () => {
      byResponse.delete(res);
      if (traceparent !== undefined) byTraceparent.delete(traceparent);
      if (!span) return;
      const status = res.headersSent ? res.statusCode : 0;
      if (status > 0) span.attributes['http.response.status_code'] = status;
      if (full.usage) {
        span.attributes['gen_ai.usage.input_tokens'] = full.inputTokens;
        span.attributes['gen_ai.usage.output_tokens'] = full.outputTokens;
      }
      if (full.responseModel !== undefined) span.attributes['gen_ai.response.model'] = full.responseModel;
      const failed = full.errorType ?? (status >= 500 ? String(status) : !res.writableFinished ? 'aborted' : undefined);
      if (failed !== undefined) fail(span, failed);
      finish(span);
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
      const meta = params?._meta as { traceparent?: unknown; tracestate?: unknown } | null | undefined;
      const caller =
        req.headers.traceparent === undefined && typeof meta === 'object' && meta !== null
          ? parseTraceparent(meta.traceparent, meta.tracestate)
          : parseTraceparent(req.headers.traceparent, req.headers.tracestate);
      return serve(res, caller, name, started, 'mcp', method ?? name, attributes, run, req.headers);
    },

    parentOf: (res) => byResponse.get(res),

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
      if (typeof code === 'number') set(open.span, 'rpc.response.status_code', String(code));
    },

    llmRequest(req, res, operation, started, run) {
      const caller = parseTraceparent(req.headers.traceparent, req.headers.tracestate);
      const attributes: Attributes = {
        'gen_ai.operation.name': operation,
        'http.request.method': req.method ?? 'POST',
        'url.path': (req.url ?? '').split('?', 1)[0] ?? '',
        'network.protocol.name': 'http',
      };
      return serve(res, caller, operation, started, 'llm', operation, attributes, run);
    },

    llmRequestBody(parent, body) {
      const open = record(parent);
      if (open?.kind !== 'llm' || !open.span) return;
      const span = open.span;
      const model = typeof body.model === 'string' ? body.model : undefined;
      if (model !== undefined) {
        span.name = `${open.operation} ${model}`;
        span.attributes['gen_ai.request.model'] = model;
      }
      if (body.stream === true) span.attributes['mcplex.llm.stream'] = true;
      if (body.mcp !== undefined && body.mcp !== null) span.attributes['mcplex.agent'] = true;
      if (captureContent) {
        const input = open.operation === 'chat' ? body.messages : body.input;
        if (input !== undefined) span.attributes['gen_ai.input.messages'] = content(input);
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
      const { context, record: span } = client(
        parent,
        method === 'resources/read' ? method : `${method} ${name}`,
        attributes,
      );
      const meta: Record<string, unknown> = { ...params._meta };
      injectContext(context, meta);
      try {
        const result = await call({ ...params, _meta: meta });
        if ((result as { isError?: unknown }).isError === true) fail(span, 'tool_error');
        if (captureContent && method === 'tools/call') {
          set(span, 'gen_ai.tool.call.result', content((result as { content?: unknown }).content ?? []));
        }
        return result;
      } catch (error) {
        const code = (error as { code?: unknown } | null)?.code;
        if (typeof code === 'number') set(span, 'rpc.response.status_code', String(code));
        fail(span, errorType(error), error instanceof Error ? error.message : String(error));
        throw error;
      } finally {
        finish(span);
      }
    },

    async llmAttempt(parent, info, run, describe) {
      let server = backends.get(info.baseUrl);
      if (!server) {
        const url = new URL(info.baseUrl);
        server = { address: url.hostname, port: portOf(url) };
        if (backends.size < 1024) backends.set(info.baseUrl, server);
      }
      const { context, record: span } = client(parent, `${info.operation} ${info.model}`, {
        'gen_ai.operation.name': info.operation,
        'gen_ai.request.model': info.model,
        'gen_ai.provider.name': info.provider,
        'server.address': server.address,
        'server.port': server.port,
        'mcplex.llm.deployment': info.deployment,
        'mcplex.llm.attempt': info.attempt,
      });
      const headers: Record<string, string> = {};
      injectContext(context, headers);
      let outcome: Awaited<ReturnType<typeof run>>;
      try {
        outcome = await run(headers);
      } catch (error) {
        fail(span, errorType(error));
        finish(span);
        throw error;
      }
      const result: AttemptResult = describe(outcome);
      if (span) {
        const attributes = span.attributes;
        if (result.status !== undefined) attributes['http.response.status_code'] = result.status;
        if (result.responseModel !== undefined) attributes['gen_ai.response.model'] = result.responseModel;
        if (result.inputTokens !== undefined) attributes['gen_ai.usage.input_tokens'] = result.inputTokens;
        if (result.outputTokens !== undefined) attributes['gen_ai.usage.output_tokens'] = result.outputTokens;
        if (captureContent && result.output !== undefined) {
          attributes['gen_ai.output.messages'] = content(result.output);
        }
        if (result.errorType !== undefined) fail(span, result.errorType);
        finish(span);
      }
      // The request's totals: every answered attempt of it (a tool-running chat makes several).
      const open = record(parent);
      if (open?.kind === 'llm' && result.errorType === undefined) {
        if (result.inputTokens !== undefined || result.outputTokens !== undefined) open.usage = true;
        open.inputTokens += result.inputTokens ?? 0;
        open.outputTokens += result.outputTokens ?? 0;
        if (result.responseModel !== undefined) open.responseModel = result.responseModel;
      }
      return outcome;
    },

    // A collector that is away must not hold up the exit: what is buffered gets a moment, then is dropped.
    shutdown: () => spans.shutdown(SHUTDOWN_MS),
  };
}

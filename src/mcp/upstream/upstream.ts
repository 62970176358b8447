// One long-lived connection to one configured MCP server: connect (era negotiated), list its catalog,
// watch for list changes, reconnect with backoff when it drops, and forward calls with timeouts.
import {
  Client,
  CLIENT_CAPABILITIES_META_KEY,
  LOG_LEVEL_META_KEY,
  ProtocolError,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  isInputRequiredResult,
} from '@modelcontextprotocol/client';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type {
  CallToolRequest,
  CallToolResult,
  CompleteRequest,
  CompleteResult,
  GetPromptRequest,
  GetPromptResult,
  PriorDiscovery,
  Progress,
  Prompt,
  ReadResourceRequest,
  ReadResourceResult,
  Resource,
  ResourceTemplateType as ResourceTemplate,
  Tool,
  VersionNegotiationOptions,
  ClientCapabilities,
  McpSubscription,
  LoggingLevel,
} from '@modelcontextprotocol/client';
import type { Logger } from '../../log/logger.js';
import type { ServerConfig } from '../../config/schema.js';
import { McplexError, errorMessage } from '../../errors.js';
import { backoffDelay } from '../../backoff.js';
import { createHttpForwarder, ForwardTimeout } from './http-forwarder.js';
import type { ForwardSession, HttpForwarder } from './http-forwarder.js';
import { createUpstreamTransport } from './transport.js';
import type { TransportFactory, UpstreamTransport } from './transport.js';

export type UpstreamState = 'connecting' | 'ready' | 'failed' | 'restarting' | 'disabled' | 'closed';

/** Which lists differ: what an upstream announces (list_changed), and what the merged catalog publishes. */
export interface ListChanges {
  tools: boolean;
  resources: boolean;
  prompts: boolean;
}

export interface UpstreamCatalog {
  readonly tools: readonly Tool[];
  readonly resources: readonly Resource[];
  readonly resourceTemplates: readonly ResourceTemplate[];
  readonly prompts: readonly Prompt[];
}

export interface UpstreamStatus {
  name: string;
  transport: ServerConfig['transport'];
  state: UpstreamState;
  era: 'legacy' | 'modern' | null;
  protocolVersion: string | null;
  tools: number;
  resources: number;
  prompts: number;
  restarts: number;
  lastError: string | null;
  pid: number | null;
}

/** The downstream client of one call, for the requests the upstream server sends back during that call. */
export interface DownstreamRelay {
  /** What that client declared it can do; requests it cannot answer get a clear error instead. */
  capabilities: ClientCapabilities | undefined;
  /**
   * Sends a request to that client, in the context of its call. `key` is the name a 2026-07-28 server gave the
   * question in its input-required result, kept where the client's era has names for questions.
   */
  request(method: string, params: unknown, key?: string): Promise<unknown>;
  /** Passes a log message the server sent during the call (the client's level decides whether it goes out). */
  log?(params: LogMessage): void;
}

export interface LogMessage {
  level: LoggingLevel;
  data?: unknown;
  logger?: string;
}

export interface CallOptions {
  signal?: AbortSignal;
  onprogress?: (progress: Progress) => void;
  relay?: DownstreamRelay;
  /**
   * Answers a 2026-07-28 client sent without being asked (no requestState): a 2026-07-28 server gets them with
   * its first round and may use them, as it would directly.
   */
  inputResponses?: Record<string, unknown>;
  /**
   * Called when the server closes its response stream mid-call to be polled for the answer later (SEP-1699), so
   * that the caller's own stream can do the same.
   */
  onpause?: () => void;
  /** `Mcp-Param-*` headers to pass on to a 2026-07-28 HTTP server (those the client sent and mcplex does not know). */
  headers?: Record<string, string>;
}

export interface UpstreamOptions {
  logger: Logger;
  clientInfo: { name: string; version: string };
  /** Called whenever state or catalog changes. */
  onChange: (upstream: Upstream, announced?: Partial<ListChanges>) => void;
  /** Called when the server reports that a subscribed resource changed. */
  onResourceUpdated?: (upstream: Upstream, uri: string) => void;
  /**
   * Answers the server's sampling requests itself (the shared LLM), or returns undefined to put them to the
   * client of the call as any other server request.
   */
  sample?: (upstream: Upstream, params: unknown) => Promise<unknown> | undefined;
  /** Whether `sample` answers this server's sampling (so clients that cannot sample still offer it). */
  samples?: (upstream: Upstream) => boolean;
  /**
   * Builds the transport of each connection attempt; by default the one the configuration names (a stdio child,
   * Streamable HTTP, SSE). Tests hand in an in-memory pair so that no process or socket is needed.
   */
  transport?: TransportFactory;
}

/** The SDK client, with the modern-era request envelope readable for the fast path. */
class UpstreamClient extends Client {
  private envelopeCache: Readonly<Record<string, unknown>> | undefined;

  /** Fixed for the life of the connection, so built once rather than on every fast-path call. */
  envelope(): Readonly<Record<string, unknown>> | undefined {
    this.envelopeCache ??= this._outboundMetaEnvelope();
    return this.envelopeCache;
  }
}

/** Tool names the fast path can put in an `Mcp-Name` header as they are. */
const PLAIN_NAME = /^[A-Za-z0-9._/-]{1,128}$/;

/** Input-required rounds one request may take before mcplex stops asking on a server's behalf. */
const MAX_INPUT_ROUNDS = 16;

/** A connection that lasted this long resets the reconnect backoff when it drops. */
const STABLE_AFTER_MS = 10_000;

const EMPTY_CATALOG: UpstreamCatalog = Object.freeze({ tools: [], resources: [], resourceTemplates: [], prompts: [] });

export class Upstream {
  readonly key: string;
  readonly config: ServerConfig;
  private readonly logger: Logger;
  private readonly options: UpstreamOptions;
  private state: UpstreamState = 'connecting';
  private client: UpstreamClient | undefined;
  private readonly forwarder: HttpForwarder | undefined;
  /** Resource subscriptions held on this server, by URI, with how many downstream subscribers want each. */
  private readonly subscribed = new Map<string, number>();
  /** 2026-07-28 servers have no resources/subscribe: one subscriptions/listen stream per subscribed URI. */
  private readonly listens = new Map<string, McpSubscription>();
  /** Downstream clients of the calls in flight, newest last: who answers what the server asks meanwhile. */
  private readonly relays: DownstreamRelay[] = [];
  /** Tools the fast path may call: plain names and no `x-mcp-header` argument mapping. */
  private fastTools = new Set<string>();
  private connection: UpstreamTransport | undefined;
  private catalogValue: UpstreamCatalog = EMPTY_CATALOG;
  private prior: PriorDiscovery | undefined;
  private attempt = 0;
  private restarts = 0;
  private lastError: string | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private connecting: Promise<void> | undefined;
  private firstSettled: Promise<void>;
  private settleFirst!: () => void;
  private generation = 0;
  /** A transparent re-initialisation after an expired session, awaited by requests that arrive meanwhile. */
  private reinitializing: Promise<void> | undefined;
  private readySince = 0;
  private refreshSeq = 0;
  /** Aborts the connection attempt in progress (on close). */
  private attemptAbort = new AbortController();

  constructor(key: string, config: ServerConfig, options: UpstreamOptions) {
    this.key = key;
    this.config = config;
    this.options = options;
    this.logger = options.logger.child({ server: key });
    this.firstSettled = new Promise((resolve) => (this.settleFirst = resolve));
    if (config.disabled) {
      this.state = 'disabled';
      this.settleFirst();
    }
    // The fast path posts to the configured URL itself, so it only stands in for the transport it was built for.
    if (config.transport === 'streamable-http' && options.transport === undefined) {
      this.forwarder = createHttpForwarder({
        url: config.url,
        headers: config.headers,
        answerServerRequest: (method, params) => this.answerServerRequest(method, params),
      });
    }
  }

  get catalog(): UpstreamCatalog {
    return this.catalogValue;
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  /** Starts connecting in the background; never throws. */
  start(): void {
    if (this.state === 'disabled' || this.closing) return;
    void this.connect();
  }

  /** Resolves once the first connection attempt has succeeded or failed. */
  whenSettled(): Promise<void> {
    return this.firstSettled;
  }

  status(): UpstreamStatus {
    return {
      name: this.key,
      transport: this.config.transport,
      state: this.state,
      era: this.client?.getProtocolEra() ?? null,
      protocolVersion: this.client?.getNegotiatedProtocolVersion() ?? null,
      tools: this.catalogValue.tools.length,
      resources: this.catalogValue.resources.length + this.catalogValue.resourceTemplates.length,
      prompts: this.catalogValue.prompts.length,
      restarts: this.restarts,
      lastError: this.lastError,
      pid: this.connection?.pid?.() ?? null,
    };
  }

  private connect(): Promise<void> {
    this.connecting ??= this.doConnect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async doConnect(): Promise<void> {
    if (this.closing) return;
    const generation = ++this.generation;
    const startup = this.config.timeouts.startup;
    const connection = (this.options.transport ?? createUpstreamTransport)(this.config);
    connection.onStderr?.((line) => this.logger.debug({ stderr: line }, 'upstream stderr'));
    const client = this.createClient();
    this.connection = connection;
    this.client = client;
    this.logger.info({ transport: this.config.transport }, `${this.key}: connecting (${this.config.transport})`);
    try {
      this.attemptAbort = new AbortController();
      const signal = AbortSignal.any([AbortSignal.timeout(startup), this.attemptAbort.signal]);
      await client.connect(connection.transport, {
        timeout: startup,
        signal,
        ...(this.prior === undefined ? {} : { prior: this.prior }),
      });
      const discover = client.getDiscoverResult();
      this.prior = discover ? { kind: 'modern', discover } : { kind: 'legacy' };
      this.setCatalog(await this.fetchCatalog(client, startup));
      if (this.closing || generation !== this.generation) {
        await this.dispose(client);
        return;
      }
      client.onclose = () => this.handleDisconnect(generation, 'connection closed');
      // A new connection (after a restart or an expired session) starts with no subscriptions on the server.
      this.listens.clear();
      for (const uri of this.subscribed.keys()) {
        await this.subscribeOn(client, uri).catch((error: unknown) => {
          this.logger.warn({ uri, err: errorMessage(error) }, 'could not renew a resource subscription');
        });
      }
      this.state = 'ready';
      this.readySince = Date.now();
      this.lastError = null;
      const era = client.getProtocolEra();
      const tools = this.catalogValue.tools.length;
      this.logger.info({ era, tools, pid: connection.pid?.() }, `${this.key}: ready with ${tools} tools (${era} era)`);
    } catch (error) {
      this.lastError = describeConnectError(error, startup, this.closing);
      this.logger.warn({ err: this.lastError }, `${this.key}: failed: ${this.lastError}`);
      this.catalogValue = EMPTY_CATALOG;
      this.state = 'failed';
      // A server that changed (upgraded, replaced) must be probed afresh next time.
      this.prior = undefined;
      await this.dispose(client);
      this.scheduleReconnect();
    } finally {
      this.settleFirst();
      if (!this.closing) this.options.onChange(this);
    }
  }

  private createClient(): UpstreamClient {
    const client = new UpstreamClient(this.options.clientInfo, {
      capabilities: {
        sampling: { tools: {} },
        elicitation: { form: {}, url: {} },
        roots: { listChanged: true },
      },
      // The SDK walks list pages for us; allow long catalogs rather than its default of 64 pages.
      listMaxPages: 1000,
      versionNegotiation: this.versionNegotiation(),
      // Input-required rounds are run by `inputRounds`, which knows whose call each one belongs to.
      inputRequired: { autoFulfill: false },
      listChanged: {
        tools: { autoRefresh: false, onChanged: () => void this.refresh({ tools: true }) },
        resources: { autoRefresh: false, onChanged: () => void this.refresh({ resources: true }) },
        prompts: { autoRefresh: false, onChanged: () => void this.refresh({ prompts: true }) },
      },
    });
    // A log message on this connection belongs to the call in flight; with several in flight nothing says
    // whose it is, and it is dropped rather than shown to a client it may not belong to. (Messages on an HTTP
    // response stream are routed precisely by the fast path.)
    client.setNotificationHandler('notifications/message', (notification) => {
      if (this.relays.length === 1) this.relays[0]!.log?.(notification.params as LogMessage);
    });
    client.setNotificationHandler('notifications/resources/updated', (notification) => {
      this.options.onResourceUpdated?.(this, notification.params.uri);
    });
    client.setRequestHandler(
      'roots/list',
      async (request) => this.answerServerRequest('roots/list', request.params) as never,
    );
    client.setRequestHandler(
      'sampling/createMessage',
      async (request) => this.answerServerRequest('sampling/createMessage', request.params) as never,
    );
    client.setRequestHandler(
      'elicitation/create',
      async (request) => this.answerServerRequest('elicitation/create', request.params) as never,
    );
    return client;
  }

  private versionNegotiation(): VersionNegotiationOptions {
    switch (this.config.protocol) {
      case 'legacy':
        return { mode: 'legacy' };
      case 'modern':
        return { mode: { pin: '2026-07-28' } };
      case 'auto':
        return { mode: 'auto', probe: { timeoutMs: Math.min(this.config.timeouts.startup, 5000) } };
    }
  }

  /**
   * Answers what the server asks of its client (roots, sampling, elicitation) by asking the downstream client
   * of the call in flight: the one the request came with when the transport tells (HTTP response streams), else
   * the newest call on this server. With no call in flight there is nobody to ask, and the request is refused
   * with a clear error.
   */
  private async answerServerRequest(
    method: string,
    params: unknown,
    relay?: DownstreamRelay,
    key?: string,
  ): Promise<unknown> {
    if (method === 'sampling/createMessage') {
      const answered = this.options.sample?.(this, params);
      if (answered !== undefined) return answered;
    }
    const target = relay ?? this.relays.at(-1);
    if (!target) {
      // Roots belong to a client; with none in the conversation there are none to give. An error (rather than
      // an empty list) lets servers that cache roots ask again during a call, where a client can answer.
      throw new ProtocolError(-32603, `server "${this.key}" asked for ${method} outside of a client request`);
    }
    const missing = missingCapability(method, params, target.capabilities);
    if (missing !== undefined) {
      throw new ProtocolError(-32601, `the client calling server "${this.key}" does not support ${missing}`);
    }
    return target.request(method, params, key);
  }

  /**
   * A request that a 2026-07-28 server may answer with input-required results: mcplex runs the rounds itself,
   * putting each question to the client of this very call under the key the server gave it, and retries with
   * the answers and the server's requestState echoed exactly, on a new request each time.
   */
  private async inputRounds<P extends object, R>(
    params: P,
    { relay, inputResponses }: CallOptions,
    send: (params: P) => Promise<R>,
  ): Promise<R> {
    const unasked = inputResponses && this.client?.getProtocolEra() === 'modern' ? { inputResponses } : {};
    let current = { ...params, ...unasked };
    for (let round = 1; ; round++) {
      const result = await send(current);
      if (!isInputRequiredResult(result)) return result;
      if (round >= MAX_INPUT_ROUNDS) {
        throw new McplexError(
          'UPSTREAM_ERROR',
          `server "${this.key}" asked for input ${round} times in one request`,
          {},
        );
      }
      const answers: Record<string, unknown> = {};
      await Promise.all(
        Object.entries(result.inputRequests ?? {}).map(async ([key, question]) => {
          answers[key] = await this.answerServerRequest(question.method, question.params, relay, key);
        }),
      );
      const { inputResponses: _asked, requestState: _state, ...rest } = params as Record<string, unknown>;
      const state = result.requestState === undefined ? {} : { requestState: result.requestState };
      current = { ...rest, inputResponses: answers, ...state } as P;
    }
  }

  /**
   * The client capabilities a 2026-07-28 server is told for a call: what the downstream client can answer, plus
   * sampling when mcplex answers this server's sampling itself (the shared LLM). Undefined without a caller.
   */
  private declaredFor(relay: DownstreamRelay | undefined): ClientCapabilities | undefined {
    if (!relay) return undefined;
    const capabilities = relayedCapabilities(relay.capabilities);
    return this.options.samples?.(this) ? { ...capabilities, sampling: { tools: {} } } : capabilities;
  }

  /** Runs `work` with the caller's relay registered as the one to ask. */
  private async withRelay<T>(relay: DownstreamRelay | undefined, work: () => Promise<T>): Promise<T> {
    if (!relay) return work();
    this.relays.push(relay);
    try {
      return await work();
    } finally {
      this.relays.splice(this.relays.lastIndexOf(relay), 1);
    }
  }

  private async fetchCatalog(client: Client, timeout: number): Promise<UpstreamCatalog> {
    const caps = client.getServerCapabilities() ?? {};
    const options = { timeout, cacheMode: 'bypass' as const };
    const [tools, resources, resourceTemplates, prompts] = await Promise.all([
      caps.tools ? client.listTools(undefined, options).then((r) => r.tools) : [],
      caps.resources ? client.listResources(undefined, options).then((r) => r.resources) : [],
      caps.resources ? client.listResourceTemplates(undefined, options).then((r) => r.resourceTemplates) : [],
      caps.prompts ? client.listPrompts(undefined, options).then((r) => r.prompts) : [],
    ]);
    return Object.freeze({ tools, resources, resourceTemplates, prompts });
  }

  private setCatalog(catalog: UpstreamCatalog): void {
    this.catalogValue = catalog;
    this.fastTools = new Set(
      catalog.tools
        .filter((tool) => PLAIN_NAME.test(tool.name) && !JSON.stringify(tool.inputSchema).includes('x-mcp-header'))
        .map((tool) => tool.name),
    );
  }

  /** Re-reads the catalog after a list-changed notification; a failure keeps the previous view. */
  async refresh(announced: Partial<ListChanges> = {}): Promise<void> {
    const client = this.client;
    if (!client || this.state !== 'ready') return;
    const seq = ++this.refreshSeq;
    try {
      const catalog = await this.fetchCatalog(client, this.config.timeouts.startup);
      // A later refresh (or a reconnect) has the newer view.
      if (seq !== this.refreshSeq || client !== this.client) return;
      this.setCatalog(catalog);
      this.options.onChange(this, announced);
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'catalog refresh failed');
    }
  }

  private handleDisconnect(generation: number, reason: string): void {
    if (this.closing || generation !== this.generation) return;
    this.logger.warn({ reason }, `${this.key}: disconnected (${reason})`);
    this.lastError = reason;
    this.state = 'restarting';
    this.catalogValue = EMPTY_CATALOG;
    this.client = undefined;
    this.connection = undefined;
    this.prior = undefined;
    // Backoff starts over only for a server that stayed up a while; a crash loop keeps backing off.
    if (Date.now() - this.readySince >= STABLE_AFTER_MS) this.attempt = 0;
    this.options.onChange(this);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closing) return;
    const delay = backoffDelay(this.attempt++, this.config.restart);
    this.logger.info({ delayMs: delay }, `${this.key}: reconnecting in ${delay} ms`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.restarts++;
      if (this.state !== 'failed') this.state = 'restarting';
      void this.connect();
    }, delay);
    this.retryTimer.unref();
  }

  private async dispose(client: Client | undefined): Promise<void> {
    if (!client) return;
    client.onclose = undefined;
    await client.close().catch(() => {});
  }

  private requireClient(): UpstreamClient {
    if (this.state !== 'ready' || !this.client) {
      throw new McplexError('UPSTREAM_UNAVAILABLE', `server "${this.key}" is ${this.state}`);
    }
    return this.client;
  }

  /**
   * Runs a request against the live client. An expired Streamable HTTP session (404) is re-initialised once,
   * transparently; protocol errors from the server pass through as they are.
   */
  private async withClient<T>(run: (client: UpstreamClient) => Promise<T>): Promise<T> {
    if (this.reinitializing) await this.reinitializing;
    const client = this.requireClient();
    try {
      return await run(client);
    } catch (error) {
      if (!isSessionExpired(error) || this.closing) throw mapUpstreamError(this.key, error);
      await this.reinitialize(client);
      return await run(this.requireClient()).catch((retryError: unknown) => {
        throw mapUpstreamError(this.key, retryError);
      });
    }
  }

  /** Replaces a client whose session expired; concurrent callers share one re-initialisation. */
  private reinitialize(failed: UpstreamClient): Promise<void> {
    if (this.client !== failed) return this.reinitializing ?? Promise.resolve();
    this.reinitializing ??= (async () => {
      this.logger.info(`${this.key}: upstream session expired; re-initialising`);
      // The old client's close must not count as a disconnect.
      this.generation++;
      await this.dispose(failed);
      await this.connect();
    })().finally(() => (this.reinitializing = undefined));
    return this.reinitializing;
  }

  private requestOptions(options: CallOptions) {
    const modern = this.client?.getProtocolEra() === 'modern';
    return {
      ...(modern && options.headers ? { headers: options.headers } : {}),
      // Handed back to `inputRounds` rather than failing the request (no effect on 2025-era servers).
      allowInputRequired: true,
      timeout: this.config.timeouts.call,
      resetTimeoutOnProgress: true,
      // Always ask for progress so that a long call that reports progress is not cut off by the timeout.
      onprogress: options.onprogress ?? (() => {}),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    };
  }

  callTool(params: CallToolRequest['params'], options: CallOptions = {}): Promise<CallToolResult> {
    return this.withRelay(options.relay, () =>
      this.inputRounds(params, options, async (round) => {
        if (options.onprogress === undefined) {
          const fast = await this.fastCall('tools/call', round, round.name, options);
          if (fast !== undefined) return fast as CallToolResult;
        }
        return this.withClient((client) =>
          client.callTool(modernMeta(client, round, this.declaredFor(options.relay)), {
            ...this.requestOptions(options),
            ...this.toolDefinition(round.name),
          }),
        );
      }),
    );
  }

  /**
   * The listed definition of a tool, for the SDK to mirror its `x-mcp-header` arguments into `Mcp-Param-*`
   * headers (2026-07-28). The catalog is listed with the SDK's cache bypassed, so without it the SDK has no
   * definition and sends none. The output schema is left out: results pass through unvalidated, as before.
   */
  private toolDefinition(name: string): { toolDefinition?: Tool } {
    const tool = this.catalogValue.tools.find((candidate) => candidate.name === name);
    if (tool === undefined) return {};
    const { outputSchema: _outputSchema, ...definition } = tool;
    return { toolDefinition: definition };
  }

  /** What the fast path needs from the live SDK session, or undefined when there is none to use. */
  private forwardSession(): ForwardSession | undefined {
    const client = this.client;
    const era = client?.getProtocolEra();
    const protocolVersion = client?.getNegotiatedProtocolVersion();
    if (!client || this.state !== 'ready' || era === undefined || protocolVersion === undefined) return undefined;
    const sessionId = (this.connection?.transport as StreamableHTTPClientTransport | undefined)?.sessionId;
    if (era === 'legacy' && sessionId === undefined) return undefined;
    return { era, protocolVersion, sessionId, envelope: era === 'modern' ? client.envelope() : undefined };
  }

  /**
   * One request over the pooled HTTP fast path. Returns undefined when the SDK client path must take over
   * (not an HTTP upstream, an expired session, a transport failure before the request was sent).
   */
  private async fastCall(
    method: string,
    params: Record<string, unknown>,
    name: string,
    { signal, relay, onpause, headers }: CallOptions,
  ): Promise<Record<string, unknown> | undefined> {
    const session = this.forwarder && this.fastTools.has(name) ? this.forwardSession() : undefined;
    if (!session) return undefined;
    let outcome;
    try {
      outcome = await this.forwarder!.call(method, params, {
        session,
        ...(signal ? { signal } : {}),
        // The call timeout starts again on every progress report.
        timeoutMs: this.config.timeouts.call,
        name,
        // Requests on this call's response stream belong to this call's client.
        answer: (requestMethod, requestParams) => this.answerServerRequest(requestMethod, requestParams, relay),
        onLog: (message) => relay?.log?.(message as LogMessage),
        ...(relay ? { capabilities: this.declaredFor(relay) as Record<string, unknown> } : {}),
        ...(onpause ? { onPause: onpause } : {}),
        ...(headers && session.era === 'modern' ? { headers } : {}),
      });
    } catch (error) {
      if (error instanceof ForwardTimeout) {
        throw new McplexError('UPSTREAM_TIMEOUT', `server "${this.key}" did not answer in time`);
      }
      if (signal?.aborted) throw error;
      // The request may have run: trying again through the SDK client could run a tool twice.
      throw new McplexError('UPSTREAM_ERROR', `server "${this.key}" failed: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    if (outcome.kind === 'result') return outcome.result;
    if (outcome.kind === 'error')
      throw new ProtocolError(outcome.error.code, outcome.error.message, outcome.error.data);
    this.logger.debug({ reason: outcome.reason }, 'fast path declined; using the SDK client');
    return undefined;
  }

  readResource(params: ReadResourceRequest['params'], options: CallOptions = {}): Promise<ReadResourceResult> {
    return this.withRelay(options.relay, () =>
      this.inputRounds(params, options, (round) =>
        this.withClient((client) =>
          client.readResource(modernMeta(client, round, this.declaredFor(options.relay)), {
            ...this.requestOptions(options),
            cacheMode: 'bypass',
          }),
        ),
      ),
    );
  }

  getPrompt(params: GetPromptRequest['params'], options: CallOptions = {}): Promise<GetPromptResult> {
    return this.withRelay(options.relay, () =>
      this.inputRounds(params, options, (round) =>
        this.withClient((client) =>
          client.getPrompt(modernMeta(client, round, this.declaredFor(options.relay)), this.requestOptions(options)),
        ),
      ),
    );
  }

  complete(params: CompleteRequest['params'], options: CallOptions = {}): Promise<CompleteResult> {
    return this.withClient((client) => client.complete(params, this.requestOptions(options)));
  }

  /** Subscribes to a resource on the server, once however many downstream clients ask for it. */
  async subscribe(uri: string): Promise<void> {
    const count = this.subscribed.get(uri) ?? 0;
    this.subscribed.set(uri, count + 1);
    if (count > 0) return;
    try {
      await this.withClient((client) => this.subscribeOn(client, uri));
    } catch (error) {
      this.subscribed.delete(uri);
      throw error;
    }
  }

  private async subscribeOn(client: UpstreamClient, uri: string): Promise<void> {
    if (client.getProtocolEra() === 'modern') {
      this.listens.set(uri, await client.listen({ resourceSubscriptions: [uri] }));
      return;
    }
    await client.subscribeResource({ uri }, { timeout: this.config.timeouts.call });
  }

  async unsubscribe(uri: string): Promise<void> {
    const count = this.subscribed.get(uri) ?? 0;
    if (count > 1) {
      this.subscribed.set(uri, count - 1);
      return;
    }
    this.subscribed.delete(uri);
    const listen = this.listens.get(uri);
    if (listen) {
      this.listens.delete(uri);
      await listen.close();
    } else if (count === 1 && this.state === 'ready') {
      await this.withClient((client) => client.unsubscribeResource({ uri }, { timeout: this.config.timeouts.call }));
    }
  }

  /** Stops reconnecting and closes the connection (stdio children: stdin closed, then SIGTERM, then SIGKILL). */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retryTimer);
    this.attemptAbort.abort(new Error('mcplex is shutting down'));
    const client = this.client;
    const connection = this.connection;
    this.client = undefined;
    this.connection = undefined;
    this.state = 'closed';
    this.catalogValue = EMPTY_CATALOG;
    // Closing the transport as well ends a connection attempt still in progress (the client only owns the
    // transport once connected), so shutdown never waits for a startup timeout and no child outlives it.
    await Promise.all([this.dispose(client), connection?.transport.close().catch(() => {})]);
    await this.connecting?.catch(() => {});
    await this.forwarder?.close().catch(() => {});
  }
}

/**
 * What a 2026-07-28 server learns per request about the client: the capabilities of the downstream client behind
 * the call (so that the server asks only what that client can answer; a legacy server only sees mcplex's, once),
 * and a log level: such a server sends log messages only for requests that name one, so mcplex asks for all of
 * them and applies each downstream client's own level when it passes them on.
 */
function modernMeta<T extends { _meta?: Record<string, unknown> }>(
  client: Client,
  params: T,
  declared?: ClientCapabilities,
): T {
  if (client.getProtocolEra() !== 'modern') return params;
  const capabilities = declared ? { [CLIENT_CAPABILITIES_META_KEY]: declared } : {};
  return { ...params, _meta: { ...params._meta, [LOG_LEVEL_META_KEY]: 'debug', ...capabilities } };
}

/** The part of a downstream client's capabilities that mcplex can put to it on an upstream's behalf. */
export function relayedCapabilities(capabilities: ClientCapabilities | undefined): ClientCapabilities {
  const { sampling, elicitation, roots } = capabilities ?? {};
  return {
    ...(sampling === undefined ? {} : { sampling }),
    ...(elicitation === undefined ? {} : { elicitation }),
    ...(roots === undefined ? {} : { roots }),
  };
}

/** The capability a client needs to answer `method`, when it lacks it. */
function missingCapability(method: string, params: unknown, capabilities: ClientCapabilities | undefined) {
  const p = (params ?? {}) as { mode?: unknown; tools?: unknown };
  switch (method) {
    case 'roots/list':
      return capabilities?.roots ? undefined : 'roots';
    case 'sampling/createMessage':
      if (!capabilities?.sampling) return 'sampling';
      return p.tools !== undefined && !capabilities.sampling.tools ? 'sampling with tools' : undefined;
    case 'elicitation/create': {
      const elicitation = capabilities?.elicitation as { form?: unknown; url?: unknown } | undefined;
      if (!elicitation) return 'elicitation';
      // A client that declares elicitation without modes supports form mode (the 2025-06-18 shape).
      if (p.mode === 'url') return elicitation.url ? undefined : 'URL-mode elicitation';
      return elicitation.form || !elicitation.url ? undefined : 'form-mode elicitation';
    }
    default:
      return method;
  }
}

function isSessionExpired(error: unknown): boolean {
  return error instanceof SdkHttpError && error.status === 404;
}

function describeConnectError(error: unknown, startup: number, closing: boolean): string {
  if (closing) return 'closed while connecting';
  if (error instanceof SdkError && error.code === SdkErrorCode.RequestTimeout) {
    return `no answer within the startup timeout (${startup} ms)`;
  }
  if (error instanceof Error && error.name === 'TimeoutError') {
    return `no answer within the startup timeout (${startup} ms)`;
  }
  const code = (error as { code?: unknown }).code;
  if (code === 'ENOENT') return `command not found: ${errorMessage(error)}`;
  return errorMessage(error);
}

/** Protocol errors pass through unchanged; local failures become McplexErrors with a stable code. */
function mapUpstreamError(key: string, error: unknown): unknown {
  if (error instanceof ProtocolError || error instanceof McplexError) return error;
  if (error instanceof SdkError && error.code === SdkErrorCode.RequestTimeout) {
    return new McplexError('UPSTREAM_TIMEOUT', `server "${key}" did not answer in time`, { cause: error });
  }
  if (error instanceof SdkError && error.code === SdkErrorCode.ConnectionClosed) {
    return new McplexError('UPSTREAM_UNAVAILABLE', `server "${key}" closed the connection`, {
      cause: error,
    });
  }
  if (error instanceof Error && error.name === 'AbortError') return error;
  return new McplexError('UPSTREAM_ERROR', `server "${key}" failed: ${errorMessage(error)}`, {
    cause: error,
  });
}

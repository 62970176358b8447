// One long-lived connection to one configured MCP server, as the rest of mcplex sees it: its catalog (listed on
// connect, re-read on list changes), calls forwarded with timeouts, and the parts below composed.
import {
  CLIENT_CAPABILITIES_META_KEY,
  InsufficientScopeError,
  LOG_LEVEL_META_KEY,
  ProtocolError,
} from '@modelcontextprotocol/client';
import type {
  CallToolRequest,
  CallToolResult,
  Client,
  ClientCapabilities,
  CompleteRequest,
  CompleteResult,
  GetPromptRequest,
  GetPromptResult,
  Progress,
  Prompt,
  ReadResourceRequest,
  ReadResourceResult,
  Resource,
  ResourceTemplateType as ResourceTemplate,
  Tool,
} from '@modelcontextprotocol/client';
import type { Logger } from '../../log/logger.js';
import type { ServerConfig } from '../../config/schema.js';
import { McplexError, errorMessage } from '../../errors.js';
import { runInputRounds } from './client-input-rounds.js';
import { UpstreamConnection } from './connection.js';
import type { UpstreamClient, UpstreamState } from './connection.js';
import { createHttpForwarder, ForwardTimeout } from './http-forwarder.js';
import type { ForwardSession, HttpForwarder } from './http-forwarder.js';
import { Relays } from './relays.js';
import type { DownstreamRelay, LogMessage } from './relays.js';
import { ResourceSubscriptions } from './resource-subscriptions.js';
import { createToolFilter } from '../../wire/glob.js';
import type { ToolFilter } from '../../wire/glob.js';
import { createUpstreamTransport } from './transport.js';
import type { TransportFactory } from './transport.js';
import { PrincipalClients, principalAuthProvider } from './principal-clients.js';
import type { PrincipalAuth } from './principal-clients.js';
import { currentTracing } from '../../telemetry/tracing.js';
import type { TraceParent, UpstreamTarget } from '../../telemetry/tracing.js';

export type { DownstreamRelay, LogMessage } from './relays.js';
export type { UpstreamState } from './connection.js';

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
  /** The request this call is made for, when it is traced: its span is the parent of the call's. */
  trace?: TraceParent;
  /** Who calls (a principal id): a server that signs each principal in is called with that principal's token. */
  principal?: string;
  /** The name the calling client gives itself, for the page that asks its user to sign in. */
  client?: string;
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
  /**
   * For a server with `auth.type: "oauth"`: each principal's own token. Its catalog is listed with the token of
   * the principal that signed in last, and only its tools are offered; every call runs with the caller's token.
   */
  principalAuth?: PrincipalAuth;
}

/** Tool names the fast path can put in an `Mcp-Name` header as they are. */
const PLAIN_NAME = /^[A-Za-z0-9._/-]{1,128}$/;

const EMPTY_CATALOG: UpstreamCatalog = Object.freeze({ tools: [], resources: [], resourceTemplates: [], prompts: [] });

/** The name of the one tool a server offers while nobody has signed in to it. */
export const SIGN_IN_TOOL = 'sign_in';
const SIGN_IN_CATALOG: UpstreamCatalog = Object.freeze({
  ...EMPTY_CATALOG,
  tools: [
    {
      name: SIGN_IN_TOOL,
      description: 'Sign in to this server with your own account; its tools are listed once someone has.',
      inputSchema: { type: 'object' as const, properties: {} },
    },
  ],
});

export class Upstream {
  readonly key: string;
  readonly config: ServerConfig;
  /** Whether a tool of this server is exposed to clients (`tools.allow` and `tools.deny`). */
  readonly exposes: ToolFilter;
  private readonly logger: Logger;
  private readonly options: UpstreamOptions;
  private readonly connection: UpstreamConnection;
  private readonly relays: Relays;
  private readonly subscriptions: ResourceSubscriptions;
  private readonly forwarder: HttpForwarder | undefined;
  /** Per-principal connections, for a server that signs each principal in. */
  private readonly principals: PrincipalClients | undefined;
  /** Tools the fast path may call: plain names and no `x-mcp-header` argument mapping. */
  private fastTools = new Set<string>();
  private catalogValue: UpstreamCatalog = EMPTY_CATALOG;
  private refreshSeq = 0;

  constructor(key: string, config: ServerConfig, options: UpstreamOptions) {
    this.key = key;
    this.config = config;
    this.exposes = createToolFilter(config.tools);
    this.options = options;
    this.logger = options.logger.child({ server: key });
    this.relays = new Relays({
      serverKey: key,
      ...(options.sample ? { sample: (params) => options.sample!(this, params) } : {}),
      ...(options.samples ? { samples: () => options.samples!(this) } : {}),
    });
    const signsIn =
      config.transport === 'streamable-http' && config.auth !== undefined ? options.principalAuth : undefined;
    if (signsIn) this.principals = new PrincipalClients(config, signsIn, options.clientInfo);
    // The catalog of a server that signs each principal in is listed with the token of one that has.
    const transport: TransportFactory | undefined = signsIn
      ? (server) =>
          createUpstreamTransport(
            server,
            principalAuthProvider(signsIn, () => signsIn.lister()),
          )
      : options.transport;
    this.connection = new UpstreamConnection({
      key,
      config,
      logger: this.logger,
      clientInfo: options.clientInfo,
      ...(transport ? { transport } : {}),
      hooks: {
        prepare: (client) => this.prepareClient(client),
        listChanged: (list) => void this.refresh({ [list]: true }),
        connected: async (client) => this.setCatalog(await this.fetchCatalog(client, config.timeouts.startup)),
        ready: async () => {
          const client = this.connection.client;
          const era = client?.getProtocolEra();
          const tools = this.exposedToolCount();
          const hidden = this.catalogValue.tools.length - tools;
          const pid = this.connection.pid();
          const note = hidden > 0 ? `; ${hidden} more hidden by tools.allow/deny` : '';
          this.logger.info({ era, tools, hidden, pid }, `${key}: ready with ${tools} tools (${era} era${note})`);
          await this.subscriptions.renew();
        },
        down: () => (this.catalogValue = EMPTY_CATALOG),
        changed: () => this.options.onChange(this),
      },
    });
    this.subscriptions = new ResourceSubscriptions(
      {
        current: () => (this.connection.state === 'ready' ? this.connection.client : undefined),
        run: (work) => this.connection.withClient(work),
        timeoutMs: config.timeouts.call,
      },
      this.logger,
    );
    // The fast path posts to the configured URL itself, so it only stands in for the transport it was built for;
    // it has no principal's token.
    if (config.transport === 'streamable-http' && options.transport === undefined && !signsIn) {
      this.forwarder = createHttpForwarder({
        url: config.url,
        headers: config.headers,
        answerServerRequest: (method, params) => this.relays.answer(method, params),
      });
    }
  }

  get catalog(): UpstreamCatalog {
    return this.awaitsSignIn ? SIGN_IN_CATALOG : this.catalogValue;
  }

  /**
   * A server that signs each principal in, which nobody has signed in to yet (its tools can only be listed with
   * someone's token): it offers one tool, `sign_in`, whose call gives the caller the sign-in link.
   */
  get awaitsSignIn(): boolean {
    return this.principals !== undefined && !this.isReady && this.connection.state !== 'disabled';
  }

  get isReady(): boolean {
    return this.connection.state === 'ready';
  }

  /** Starts connecting in the background; never throws. */
  start(): void {
    this.connection.start();
  }

  /** Resolves once the first connection attempt has succeeded or failed. */
  whenSettled(): Promise<void> {
    return this.connection.whenSettled();
  }

  /** Connects afresh (a stdio child is started again); false when the server is disabled or unavailable. */
  restart(): Promise<boolean> {
    return this.connection.restart();
  }

  status(): UpstreamStatus {
    const client = this.connection.client;
    return {
      name: this.key,
      transport: this.config.transport,
      state: this.connection.state,
      era: client?.getProtocolEra() ?? null,
      protocolVersion: client?.getNegotiatedProtocolVersion() ?? null,
      tools: this.exposedToolCount(),
      resources: this.catalogValue.resources.length + this.catalogValue.resourceTemplates.length,
      prompts: this.catalogValue.prompts.length,
      restarts: this.connection.restarts,
      lastError: this.connection.lastError,
      pid: this.connection.pid() ?? null,
    };
  }

  /** The server's tools that clients see: those `tools.allow` and `tools.deny` leave. */
  private exposedToolCount(): number {
    let count = 0;
    for (const tool of this.catalogValue.tools) if (this.exposes(tool.name)) count++;
    return count;
  }

  /** Handlers for what the server sends on a new client's connection. */
  private prepareClient(client: UpstreamClient): void {
    client.setNotificationHandler('notifications/message', (notification) => {
      this.relays.log(notification.params as LogMessage);
    });
    client.setNotificationHandler('notifications/resources/updated', (notification) => {
      this.options.onResourceUpdated?.(this, notification.params.uri);
    });
    for (const method of ['roots/list', 'sampling/createMessage', 'elicitation/create'] as const) {
      client.setRequestHandler(method, async (request) => this.relays.answer(method, request.params) as never);
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

  private setCatalog(listed: UpstreamCatalog): void {
    // Resources and prompts of a server that signs principals in may be the lister's own: only tools are offered.
    const catalog = this.principals ? Object.freeze({ ...EMPTY_CATALOG, tools: listed.tools }) : listed;
    this.catalogValue = catalog;
    this.fastTools = new Set(
      catalog.tools
        .filter((tool) => PLAIN_NAME.test(tool.name) && !JSON.stringify(tool.inputSchema).includes('x-mcp-header'))
        .map((tool) => tool.name),
    );
  }

  /** Re-reads the catalog after a list-changed notification; a failure keeps the previous view. */
  async refresh(announced: Partial<ListChanges> = {}): Promise<void> {
    const client = this.connection.client;
    if (!client || !this.isReady) return;
    const seq = ++this.refreshSeq;
    try {
      const catalog = await this.fetchCatalog(client, this.config.timeouts.startup);
      // A later refresh (or a reconnect) has the newer view.
      if (seq !== this.refreshSeq || client !== this.connection.client) return;
      this.setCatalog(catalog);
      this.options.onChange(this, announced);
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'catalog refresh failed');
    }
  }

  /** A request a 2026-07-28 server may answer with input-required rounds, run for the caller of `options`. */
  private inputRounds<P extends object, R>(
    params: P,
    { relay, inputResponses }: CallOptions,
    send: (params: P) => Promise<R>,
  ): Promise<R> {
    return runInputRounds(
      params,
      {
        serverKey: this.key,
        modern: this.connection.client?.getProtocolEra() === 'modern',
        relay,
        inputResponses,
        answer: (method, questionParams, asked, key) => this.relays.answer(method, questionParams, asked, key),
      },
      send,
    );
  }

  private requestOptions(options: CallOptions) {
    const modern = this.connection.client?.getProtocolEra() === 'modern';
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

  /** Where this server is, for the spans of its calls. */
  private get target(): UpstreamTarget {
    const { config } = this;
    return {
      server: this.key,
      transport: config.transport,
      url: config.transport === 'stdio' ? undefined : config.url,
    };
  }

  callTool(params: CallToolRequest['params'], options: CallOptions = {}): Promise<CallToolResult> {
    const tracing = currentTracing();
    if (tracing) {
      return tracing.mcpCall(options.trace, this.target, 'tools/call', params.name, params, (traced) =>
        this.callToolUntraced(traced, options),
      );
    }
    return this.callToolUntraced(params, options);
  }

  private callToolUntraced(params: CallToolRequest['params'], options: CallOptions): Promise<CallToolResult> {
    const principals = this.principals;
    if (principals) {
      return this.relays.run(options.relay, async () => {
        if (options.principal === undefined) {
          throw new McplexError('BAD_REQUEST', `server "${this.key}" is called with each caller's own sign-in`);
        }
        if (this.awaitsSignIn && params.name === SIGN_IN_TOOL) {
          // Signed in already (else get() throws the sign-in link): the catalog is listed with this token now.
          await principals.get(options.principal, options.client);
          this.signedIn(options.principal);
          return { content: [{ type: 'text', text: `Signed in to "${this.key}"; its tools are being listed.` }] };
        }
        const principal = options.principal;
        try {
          const client = await principals.get(principal, options.client);
          return (await client.callTool(modernMeta(client, params, this.relays.declaredFor(options.relay)), {
            ...this.requestOptions(options),
            ...this.toolDefinition(params.name),
          })) as CallToolResult;
        } catch (error) {
          // A token short of what the call needs: the principal signs in again for the wider scope (step-up).
          if (error instanceof InsufficientScopeError) {
            throw await principals.stepUp(principal, error.requiredScope, options.client);
          }
          throw error;
        }
      });
    }
    return this.relays.run(options.relay, () =>
      this.inputRounds(params, options, async (round) => {
        if (options.onprogress === undefined) {
          const fast = await this.fastCall('tools/call', round, round.name, options);
          if (fast !== undefined) return fast as CallToolResult;
        }
        return this.connection.withClient((client) =>
          client.callTool(modernMeta(client, round, this.relays.declaredFor(options.relay)), {
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
    const client = this.connection.client;
    const era = client?.getProtocolEra();
    const protocolVersion = client?.getNegotiatedProtocolVersion();
    if (!client || !this.isReady || era === undefined || protocolVersion === undefined) return undefined;
    const sessionId = this.connection.transport?.sessionId;
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
        answer: (requestMethod, requestParams) => this.relays.answer(requestMethod, requestParams, relay),
        onLog: (message) => relay?.log?.(message as LogMessage),
        ...(relay ? { capabilities: this.relays.declaredFor(relay) as Record<string, unknown> } : {}),
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
    const tracing = currentTracing();
    if (tracing) {
      return tracing.mcpCall(options.trace, this.target, 'resources/read', params.uri, params, (traced) =>
        this.readResourceUntraced(traced, options),
      );
    }
    return this.readResourceUntraced(params, options);
  }

  private readResourceUntraced(
    params: ReadResourceRequest['params'],
    options: CallOptions,
  ): Promise<ReadResourceResult> {
    return this.relays.run(options.relay, () =>
      this.inputRounds(params, options, (round) =>
        this.connection.withClient((client) =>
          client.readResource(modernMeta(client, round, this.relays.declaredFor(options.relay)), {
            ...this.requestOptions(options),
            cacheMode: 'bypass',
          }),
        ),
      ),
    );
  }

  getPrompt(params: GetPromptRequest['params'], options: CallOptions = {}): Promise<GetPromptResult> {
    const tracing = currentTracing();
    if (tracing) {
      return tracing.mcpCall(options.trace, this.target, 'prompts/get', params.name, params, (traced) =>
        this.getPromptUntraced(traced, options),
      );
    }
    return this.getPromptUntraced(params, options);
  }

  private getPromptUntraced(params: GetPromptRequest['params'], options: CallOptions): Promise<GetPromptResult> {
    return this.relays.run(options.relay, () =>
      this.inputRounds(params, options, (round) =>
        this.connection.withClient((client) =>
          client.getPrompt(
            modernMeta(client, round, this.relays.declaredFor(options.relay)),
            this.requestOptions(options),
          ),
        ),
      ),
    );
  }

  complete(params: CompleteRequest['params'], options: CallOptions = {}): Promise<CompleteResult> {
    return this.connection.withClient((client) => client.complete(params, this.requestOptions(options)));
  }

  /** Adds a holder of a resource subscription; the server is subscribed once however many hold it. */
  subscribe(uri: string): Promise<void> {
    return this.subscriptions.subscribe(uri);
  }

  /** Removes a holder; the last one unsubscribes the server. */
  unsubscribe(uri: string): Promise<void> {
    return this.subscriptions.unsubscribe(uri);
  }

  /** How many holders want `uri` subscribed on this server. */
  subscriptionHolders(uri: string): number {
    return this.subscriptions.holders(uri);
  }

  /** Stops reconnecting and closes the connection (stdio children: stdin closed, then SIGTERM, then SIGKILL). */
  /** A principal signed in (or out): its connection is made again; the catalog is listed again if it had none. */
  signedIn(principal: string): void {
    this.principals?.drop(principal);
    if (this.principals && !this.isReady) void this.connection.restart();
  }

  async close(): Promise<void> {
    await this.connection.close();
    await this.principals?.close();
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

// The lifecycle of one upstream connection: connect (era negotiated or pinned), reconnect with backoff when it
// drops, re-initialise an expired session once, and close (ending an attempt in progress as well).
import { Client, ProtocolError, SdkError, SdkErrorCode, SdkHttpError } from '@modelcontextprotocol/client';
import type { PriorDiscovery, Transport, VersionNegotiationOptions } from '@modelcontextprotocol/client';
import type { Logger } from '../../log/logger.js';
import type { ServerConfig } from '../../config/schema.js';
import { McplexError, errorMessage } from '../../errors.js';
import { backoffDelay } from '../../backoff.js';
import { createUpstreamTransport } from './transport.js';
import type { TransportFactory, UpstreamTransport } from './transport.js';

export type UpstreamState = 'connecting' | 'ready' | 'failed' | 'restarting' | 'disabled' | 'closed';

/** The SDK client, with the modern-era request envelope readable for the fast path. */
export class UpstreamClient extends Client {
  private envelopeCache: Readonly<Record<string, unknown>> | undefined;

  /** Fixed for the life of the connection, so built once rather than on every fast-path call. */
  envelope(): Readonly<Record<string, unknown>> | undefined {
    this.envelopeCache ??= this._outboundMetaEnvelope();
    return this.envelopeCache;
  }
}

/** What the upstream does at each step of a connection. */
export interface ConnectionHooks {
  /** Sets up a new client before it connects: the handlers for what the server sends. */
  prepare(client: UpstreamClient): void;
  /** The server announced that one of its lists changed. */
  listChanged(list: 'tools' | 'resources' | 'prompts'): void;
  /** Once connected, before the connection counts as ready (the catalog is read here); throwing fails it. */
  connected(client: UpstreamClient): Promise<void>;
  /** Once ready (subscriptions are renewed here). */
  ready(): Promise<void>;
  /** The connection failed, dropped or closed: what the server offered is gone. */
  down(): void;
  /** The state changed (not called once closing). */
  changed(): void;
}

export interface ConnectionOptions {
  key: string;
  config: ServerConfig;
  logger: Logger;
  clientInfo: { name: string; version: string };
  transport?: TransportFactory;
  hooks: ConnectionHooks;
}

/** A connection that lasted this long resets the reconnect backoff when it drops. */
const STABLE_AFTER_MS = 10_000;

export class UpstreamConnection {
  private stateValue: UpstreamState = 'connecting';
  private clientValue: UpstreamClient | undefined;
  private transportValue: UpstreamTransport | undefined;
  private prior: PriorDiscovery | undefined;
  private attempt = 0;
  private restartCount = 0;
  private lastErrorValue: string | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private connecting: Promise<void> | undefined;
  private readonly firstSettled: Promise<void>;
  private settleFirst!: () => void;
  private generation = 0;
  /** A transparent re-initialisation after an expired session, awaited by requests that arrive meanwhile. */
  private reinitializing: Promise<void> | undefined;
  private readySince = 0;
  /** Aborts the connection attempt in progress (on close). */
  private attemptAbort = new AbortController();

  constructor(private readonly options: ConnectionOptions) {
    this.firstSettled = new Promise((resolve) => (this.settleFirst = resolve));
    if (options.config.disabled) {
      this.stateValue = 'disabled';
      this.settleFirst();
    } else if (options.config.unavailable !== undefined) {
      this.stateValue = 'failed';
      this.lastErrorValue = options.config.unavailable;
      this.settleFirst();
    }
  }

  get state(): UpstreamState {
    return this.stateValue;
  }

  /** The client of the current connection attempt or connection, if any. */
  get client(): UpstreamClient | undefined {
    return this.clientValue;
  }

  /** The SDK transport of the current connection, if any. */
  get transport(): Transport | undefined {
    return this.transportValue?.transport;
  }

  get restarts(): number {
    return this.restartCount;
  }

  get lastError(): string | null {
    return this.lastErrorValue;
  }

  pid(): number | undefined {
    return this.transportValue?.pid?.();
  }

  /** Starts connecting in the background; never throws. */
  start(): void {
    if (this.stateValue === 'disabled' || this.closing) return;
    const { unavailable } = this.options.config;
    if (unavailable !== undefined) {
      this.options.logger.warn({ reason: unavailable }, `${this.options.key}: not started: ${unavailable}`);
      return;
    }
    void this.connect();
  }

  /** Resolves once the first connection attempt has succeeded or failed. */
  whenSettled(): Promise<void> {
    return this.firstSettled;
  }

  /**
   * Runs a request against the live client. An expired Streamable HTTP session (404) is re-initialised once,
   * transparently; protocol errors from the server pass through as they are.
   */
  async withClient<T>(run: (client: UpstreamClient) => Promise<T>): Promise<T> {
    if (this.reinitializing) await this.reinitializing;
    const client = this.requireClient();
    try {
      return await run(client);
    } catch (error) {
      if (!isSessionExpired(error) || this.closing) throw mapUpstreamError(this.options.key, error);
      await this.reinitialize(client);
      return await run(this.requireClient()).catch((retryError: unknown) => {
        throw mapUpstreamError(this.options.key, retryError);
      });
    }
  }

  /**
   * Drops the connection (a stdio child is stopped) and connects afresh at once, whatever state it was in; false
   * for a server that is disabled, unavailable or closing. Resolves when the new attempt has ended.
   */
  async restart(): Promise<boolean> {
    if (this.closing || this.stateValue === 'disabled' || this.options.config.unavailable !== undefined) return false;
    const { key, logger, hooks } = this.options;
    logger.info(`${key}: restarting on request`);
    clearTimeout(this.retryTimer);
    // Whatever is in flight belongs to the old generation: its outcome is discarded.
    this.generation++;
    this.attemptAbort.abort(new Error('restarted on request'));
    await this.connecting?.catch(() => {});
    clearTimeout(this.retryTimer);
    const client = this.clientValue;
    const connection = this.transportValue;
    this.clientValue = undefined;
    this.transportValue = undefined;
    this.prior = undefined;
    this.stateValue = 'restarting';
    this.restartCount++;
    this.attempt = 0;
    hooks.down();
    hooks.changed();
    await Promise.all([this.dispose(client), connection?.transport.close().catch(() => {})]);
    if (this.closing) return false;
    await this.connect();
    return true;
  }

  /** Stops reconnecting and closes the connection (stdio children: stdin closed, then SIGTERM, then SIGKILL). */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retryTimer);
    this.attemptAbort.abort(new Error('mcplex is shutting down'));
    const client = this.clientValue;
    const connection = this.transportValue;
    this.clientValue = undefined;
    this.transportValue = undefined;
    this.stateValue = 'closed';
    this.options.hooks.down();
    // Closing the transport as well ends a connection attempt still in progress (the client only owns the
    // transport once connected), so shutdown never waits for a startup timeout and no child outlives it.
    await Promise.all([this.dispose(client), connection?.transport.close().catch(() => {})]);
    await this.connecting?.catch(() => {});
  }

  private connect(): Promise<void> {
    this.connecting ??= this.doConnect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async doConnect(): Promise<void> {
    if (this.closing) return;
    const { key, config, logger, hooks } = this.options;
    const generation = ++this.generation;
    const startup = config.timeouts.startup;
    const connection = (this.options.transport ?? createUpstreamTransport)(config);
    // The child's last words, for the reason its start failed (a wrong path says "Cannot find module …" there).
    const stderr: string[] = [];
    connection.onStderr?.((line) => {
      logger.debug({ stderr: line }, 'upstream stderr');
      // Indented lines are stack frames and the details of an error object: its message line says more.
      if (line.trim().length < 3 || /^\s/.test(line)) return;
      stderr.push(line.length > STDERR_LINE_CHARS ? `${line.slice(0, STDERR_LINE_CHARS)}…` : line);
      if (stderr.length > STDERR_LINES) stderr.shift();
    });
    const client = this.createClient();
    this.transportValue = connection;
    this.clientValue = client;
    logger.info({ transport: config.transport }, `${key}: connecting (${config.transport})`);
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
      await hooks.connected(client);
      if (this.closing || generation !== this.generation) {
        await this.dispose(client);
        return;
      }
      client.onclose = () => this.handleDisconnect(generation, 'connection closed');
      this.stateValue = 'ready';
      this.readySince = Date.now();
      this.lastErrorValue = null;
      await hooks.ready();
    } catch (error) {
      // An attempt a restart replaced: the restart connects on its own.
      if (generation !== this.generation && !this.closing) {
        await this.dispose(client);
        return;
      }
      // A child that dies at once writes its stderr just before it closes: let those lines arrive.
      if (connection.onStderr && stderr.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      this.lastErrorValue = describeConnectError(error, startup, this.closing, config, stderr);
      logger.warn({ err: this.lastErrorValue }, `${key}: failed: ${this.lastErrorValue}`);
      hooks.down();
      this.stateValue = 'failed';
      // A server that changed (upgraded, replaced) must be probed afresh next time.
      this.prior = undefined;
      await this.dispose(client);
      this.scheduleReconnect();
    } finally {
      this.settleFirst();
      if (!this.closing) hooks.changed();
    }
  }

  private createClient(): UpstreamClient {
    const { hooks } = this.options;
    const client = new UpstreamClient(this.options.clientInfo, {
      capabilities: {
        sampling: { tools: {} },
        elicitation: { form: {}, url: {} },
        roots: { listChanged: true },
      },
      // The SDK walks list pages for us; allow long catalogs rather than its default of 64 pages.
      listMaxPages: 1000,
      versionNegotiation: this.versionNegotiation(),
      // Input-required rounds are run by `runInputRounds`, which knows whose call each one belongs to.
      inputRequired: { autoFulfill: false },
      listChanged: {
        tools: { autoRefresh: false, onChanged: () => hooks.listChanged('tools') },
        resources: { autoRefresh: false, onChanged: () => hooks.listChanged('resources') },
        prompts: { autoRefresh: false, onChanged: () => hooks.listChanged('prompts') },
      },
    });
    hooks.prepare(client);
    return client;
  }

  private versionNegotiation(): VersionNegotiationOptions {
    const { config } = this.options;
    switch (config.protocol) {
      case 'legacy':
        return { mode: 'legacy' };
      case 'modern':
        return { mode: { pin: '2026-07-28' } };
      case 'auto':
        return { mode: 'auto', probe: { timeoutMs: Math.min(config.timeouts.startup, 5000) } };
    }
  }

  private handleDisconnect(generation: number, reason: string): void {
    if (this.closing || generation !== this.generation) return;
    const { key, logger, hooks } = this.options;
    logger.warn({ reason }, `${key}: disconnected (${reason})`);
    this.lastErrorValue = reason;
    this.stateValue = 'restarting';
    hooks.down();
    this.clientValue = undefined;
    this.transportValue = undefined;
    this.prior = undefined;
    // Backoff starts over only for a server that stayed up a while; a crash loop keeps backing off.
    if (Date.now() - this.readySince >= STABLE_AFTER_MS) this.attempt = 0;
    hooks.changed();
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closing) return;
    const delay = backoffDelay(this.attempt++, this.options.config.restart);
    this.options.logger.info({ delayMs: delay }, `${this.options.key}: reconnecting in ${delay} ms`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.restartCount++;
      if (this.stateValue !== 'failed') this.stateValue = 'restarting';
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
    if (this.stateValue !== 'ready' || !this.clientValue) {
      throw new McplexError('UPSTREAM_UNAVAILABLE', `server "${this.options.key}" is ${this.stateValue}`);
    }
    return this.clientValue;
  }

  /** Replaces a client whose session expired; concurrent callers share one re-initialisation. */
  private reinitialize(failed: UpstreamClient): Promise<void> {
    if (this.clientValue !== failed) return this.reinitializing ?? Promise.resolve();
    this.reinitializing ??= (async () => {
      this.options.logger.info(`${this.options.key}: upstream session expired; re-initialising`);
      // The old client's close must not count as a disconnect.
      this.generation++;
      await this.dispose(failed);
      await this.connect();
    })().finally(() => (this.reinitializing = undefined));
    return this.reinitializing;
  }
}

function isSessionExpired(error: unknown): boolean {
  return error instanceof SdkHttpError && error.status === 404;
}

/** Lines of a child's stderr kept for the reason its start failed (the last ones that are not indented). */
const STDERR_LINES = 5;
const STDERR_LINE_CHARS = 300;

/**
 * Why a connection attempt failed, as an operator needs it: the error and its causes (a refused connection's
 * `ECONNREFUSED`, not only `fetch failed`), the server's URL without credentials or query, and the last lines the
 * child wrote to stderr.
 */
function describeConnectError(
  error: unknown,
  startup: number,
  closing: boolean,
  config: ServerConfig,
  stderr: readonly string[],
): string {
  if (closing) return 'closed while connecting';
  const where = config.transport === 'stdio' ? '' : ` (${safeUrl(config.url)})`;
  const said = stderr.length > 0 ? `; its stderr: ${stderr.join(' | ')}` : '';
  if (error instanceof SdkError && error.code === SdkErrorCode.RequestTimeout) {
    return `no answer within the startup timeout (${startup} ms)${where}${said}`;
  }
  if (error instanceof Error && error.name === 'TimeoutError') {
    return `no answer within the startup timeout (${startup} ms)${where}${said}`;
  }
  const code = (error as { code?: unknown }).code;
  if (code === 'ENOENT') return `command not found: ${errorMessage(error)}`;
  // Some errors quote the URL whole, credentials and query included (fetch refuses a URL with credentials so).
  const causes =
    config.transport === 'stdio' ? withCauses(error) : withCauses(error).split(config.url).join(safeUrl(config.url));
  // A child that wrote why it stopped says more than how the protocol noticed: its words come first.
  if (config.transport === 'stdio' && stderr.length > 0) {
    return `the server stopped during start-up, saying: ${stderr.join(' | ')} (${causes})`;
  }
  return `${causes}${where}${said}`;
}

/** An error's message followed by those of its causes that add something (at most four levels). */
function withCauses(error: unknown): string {
  const parts: string[] = [errorMessage(error)];
  let cause = (error as { cause?: unknown } | null)?.cause;
  for (let depth = 0; cause !== undefined && cause !== null && depth < 4; depth++) {
    const message = errorMessage(cause);
    if (message !== '' && !parts.some((part) => part.includes(message))) parts.push(message);
    cause = (cause as { cause?: unknown }).cause;
  }
  return parts.join(': ');
}

/** A server URL fit for logs: its origin and path, without credentials or query. */
function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return 'an invalid URL';
  }
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

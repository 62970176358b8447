// The admin API under /admin, for admin keys only (and, in keyless loopback mode, for anyone on this host): keys
// (list, create, revoke), usage totals and series, the recent-requests log, the MCP servers (live, restart) and the
// replicas. It is also what the web console under /ui/ reads. Errors are OpenAI-shaped JSON like the rest of the
// HTTP API.
import type { UpstreamConnection } from '../policy/upstream-oauth/upstream-oauth.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { markOpenEnded } from '../wire/open-ended.js';
import { isLoopbackHost } from '../wire/loopback.js';
import type { LoggedRequest, RequestLogFilter, UsageBucket, UsageSeriesFilter } from '../store/store.js';
import { parseMoment } from '../wire/when.js';
import type { UpstreamStatus } from '../mcp/upstream/upstream.js';
import { McplexError } from '../errors.js';
import type { Policy } from '../policy/policy.js';
import type { CreateKeyInput } from '../policy/auth/key-service.js';
import { readBody } from '../wire/body.js';
import { assertJsonContentType, parseJsonObject, requestQuery, sendJson } from '../wire/json.js';
import { openAiError, toOpenAiError, unauthorized } from '../llm/openai-errors.js';

function fail(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, openAiError(status, message));
}

const strings = (value: unknown, field: string): string[] | undefined => {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new McplexError('KEY_INVALID', `${field} must be an array of strings`);
  }
  return value as string[];
};

const count = (value: unknown, field: string): number | undefined => {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw new McplexError('KEY_INVALID', `${field} must be a number`);
  return value;
};

/** A path segment percent-decoded; bad encoding is the client's mistake (400), not a failure of mcplex. */
function decodedSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new McplexError('BAD_REQUEST', `the path segment "${segment}" is not valid percent-encoding`, {});
  }
}

function createInput(body: Record<string, unknown>): CreateKeyInput {
  if (typeof body.name !== 'string') throw new McplexError('KEY_INVALID', 'name must be a string');
  const expires = body.expiresAt;
  if (expires !== undefined && expires !== null && typeof expires !== 'number' && typeof expires !== 'string') {
    throw new McplexError('KEY_INVALID', 'expiresAt must be a timestamp or an ISO date');
  }
  const expiresAt = typeof expires === 'string' ? Date.parse(expires) : expires;
  if (typeof expiresAt === 'number' && Number.isNaN(expiresAt)) {
    throw new McplexError('KEY_INVALID', 'expiresAt is not a valid date');
  }
  const input: CreateKeyInput = { name: body.name };
  const models = strings(body.models, 'models');
  const servers = strings(body.servers, 'servers');
  const tools = strings(body.tools, 'tools');
  if (models) input.models = models;
  if (servers) input.servers = servers;
  if (tools) input.tools = tools;
  if (body.admin !== undefined && body.admin !== null && typeof body.admin !== 'boolean') {
    throw new McplexError('KEY_INVALID', 'admin must be true or false');
  }
  if (body.admin === true) input.admin = true;
  const rpm = count(body.rpm, 'rpm');
  const tpm = count(body.tpm, 'tpm');
  const maxConcurrent = count(body.maxConcurrent, 'maxConcurrent');
  if (rpm !== undefined) input.rpm = rpm;
  if (tpm !== undefined) input.tpm = tpm;
  if (maxConcurrent !== undefined) input.maxConcurrent = maxConcurrent;
  if (expiresAt !== undefined) input.expiresAt = expiresAt as number | null;
  return input;
}

/** A `since`/`until` of the usage report: 30d, 12h, 90m ago, an ISO date or epoch milliseconds; else 400. */
function moment(param: string, value: string): number {
  const at = parseMoment(value, 'ago');
  if (at === undefined) {
    throw new McplexError('BAD_REQUEST', `'${param}' must be like 30d, 12h, 90m (ago), an ISO date or epoch ms`, {
      data: { param },
    });
  }
  return at;
}

/** The MCP servers as the admin API shows and restarts them (this replica's connections). */
export interface AdminServers {
  list(): UpstreamStatus[];
  /** Connects afresh and resolves when the new attempt has ended. */
  restart(name: string): Promise<'restarted' | 'unknown' | 'refused'>;
}

export interface AdminOptions {
  policy: Policy;
  maxBodyBytes: number;
  /** This replica's name. */
  replica?: string | undefined;
  /** The live replicas, for GET /admin/cluster. */
  cluster?: (() => Promise<unknown>) | undefined;
  servers?: AdminServers | undefined;
  /** The recent-requests log, for GET /admin/requests. */
  requests?: { page(filter: RequestLogFilter, page: { limit: number; before?: number }): Promise<LoggedRequest[]> };
  /** Usage per time bucket, for GET /admin/usage/series. */
  usageSeries?: (filter: UsageSeriesFilter) => Promise<UsageBucket[]>;
  /** Principals' sign-ins to upstreams with auth.type "oauth", for /admin/connections. */
  connections?: AdminConnections | undefined;
}

export interface AdminConnections {
  /** Principals' sign-ins to upstreams as listed: nothing secret. */
  list(principal?: string): Promise<UpstreamConnection[]>;
  /** Forgets the principal's tokens for the upstream; how many there were. */
  revoke(principal: string, upstream: string): Promise<number>;
}

/** How often an event stream of the servers looks for a change, and how often it sends a keep-alive comment. */
const SERVER_EVENTS_POLL_MS = 500;
const KEEPALIVE_MS = 15_000;
/** How often a stream checks that its key still holds (revoked, expired: the stream ends). */
const REAUTH_MS = 5_000;
/** Open event streams at once (each a timer and a socket; a console tab holds one), in all and per key. */
const MAX_EVENT_STREAMS = 64;
const MAX_EVENT_STREAMS_PER_KEY = 8;
const eventStreams = new Map<string, number>();
let eventStreamsInAll = 0;

/**
 * Streams the servers' status as server-sent events: the whole list at once and again whenever it changes, for as
 * long as the key that opened it is still an admin key.
 */
function serverEvents(
  req: IncomingMessage,
  res: ServerResponse,
  servers: AdminServers,
  holder: string,
  stillAdmin: () => Promise<boolean>,
): void {
  const held = eventStreams.get(holder) ?? 0;
  if (eventStreamsInAll >= MAX_EVENT_STREAMS || held >= MAX_EVENT_STREAMS_PER_KEY) {
    fail(res, 429, `too many open event streams (${MAX_EVENT_STREAMS_PER_KEY} per key, ${MAX_EVENT_STREAMS} in all)`);
    return;
  }
  eventStreams.set(holder, held + 1);
  eventStreamsInAll += 1;
  // Open for as long as the console is: a drain does not wait for it.
  markOpenEnded(res);
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    // nginx would otherwise hold the events in its buffer.
    'x-accel-buffering': 'no',
  });
  let last = '';
  const send = () => {
    if (res.writableEnded) return;
    const body = JSON.stringify({ object: 'list', data: servers.list() });
    if (body === last) return;
    last = body;
    res.write(`event: servers\ndata: ${body}\n\n`);
  };
  send();
  const poll = setInterval(send, SERVER_EVENTS_POLL_MS);
  const keepAlive = setInterval(() => {
    if (!res.writableEnded) res.write(': keep-alive\n\n');
  }, KEEPALIVE_MS);
  const reauth = setInterval(() => {
    void stillAdmin().then(
      (ok) => ok || res.end(),
      () => res.end(),
    );
  }, REAUTH_MS);
  let ended = false;
  const stop = () => {
    if (ended) return;
    ended = true;
    clearInterval(poll);
    clearInterval(keepAlive);
    clearInterval(reauth);
    eventStreamsInAll -= 1;
    const left = (eventStreams.get(holder) ?? 1) - 1;
    if (left > 0) eventStreams.set(holder, left);
    else eventStreams.delete(holder);
  };
  // A drain ends the response: nothing is written after that, whenever the socket finally closes.
  res.once('finish', stop);
  res.once('close', stop);
  req.once('close', () => res.end());
}

/** Whether a request comes straight from this host: a loopback peer, and no proxy's forwarding headers. */
function fromThisHost(req: IncomingMessage): boolean {
  const peer = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  return (
    isLoopbackHost(peer) &&
    req.headers['x-forwarded-for'] === undefined &&
    req.headers.forwarded === undefined &&
    req.headers['x-real-ip'] === undefined
  );
}

/** The largest bucket of a usage series: a year and a day. */
const MAX_BUCKET_MS = 366 * 86_400_000;

/** A bucket size: milliseconds, or a number with s, m, h or d. */
function bucketMs(value: string | null): number {
  if (value === null) return 60_000;
  const match = /^(\d{1,12})(ms|s|m|h|d)?$/.exec(value);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match?.[2] ?? 'ms'] ?? 1;
  const ms = match ? Number(match[1]) * unit : NaN;
  if (!(ms >= 1000 && ms <= MAX_BUCKET_MS)) {
    throw new McplexError('BAD_REQUEST', "'bucket' must be from a second to 366 days, like 60000, 60s, 5m or 1h", {
      data: { param: 'bucket' },
    });
  }
  return ms;
}

/** A whole number within [min, max], or the default when absent; else 400 naming the parameter. */
function wholeParam(query: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  const n = /^\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) {
    throw new McplexError('BAD_REQUEST', `'${name}' must be a whole number from ${min} to ${max}`, {
      data: { param: name },
    });
  }
  return n;
}

/** The string filters of the requests log: each at most 256 characters. */
function textParams<K extends string>(query: URLSearchParams, names: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const name of names) {
    const value = query.get(name);
    if (value === null || value === '') continue;
    if (value.length > 256) {
      throw new McplexError('BAD_REQUEST', `'${name}' is longer than 256 characters`, { data: { param: name } });
    }
    out[name] = value;
  }
  return out;
}

const MAX_SERIES_BUCKETS = 2000;

export async function handleAdmin(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  options: AdminOptions,
): Promise<void> {
  const { policy, maxBodyBytes, cluster, servers } = options;
  let key: { id: string; name: string } | null = null;
  if (policy.mode === 'none') {
    // Keyless mode listens on loopback only, where anyone on this host may use the admin API; not through a
    // proxy that would bring others in. There are no keys to manage.
    if (!fromThisHost(req)) {
      fail(res, 403, 'without API keys the admin API answers requests from this host only, not through a proxy');
      return;
    }
    if (path === '/admin/keys' || path.startsWith('/admin/keys/')) {
      fail(res, 403, 'API keys need "auth": {"mode": "keys"}; use the mcplex keys command meanwhile');
      return;
    }
  } else {
    const auth = await policy.authenticate(req);
    if (!auth.ok) {
      sendJson(res, 401, unauthorized(auth.reason));
      return;
    }
    if (!auth.principal.scopes.admin) {
      fail(res, 403, 'this API key is not an admin key');
      return;
    }
    key = { id: auth.principal.id, name: auth.principal.name };
  }
  const stillAdmin = async () => {
    if (policy.mode === 'none') return true;
    const auth = await policy.authenticate(req);
    return auth.ok && auth.principal.scopes.admin === true;
  };
  try {
    const query = requestQuery(req);
    if (path === '/admin/whoami' && req.method === 'GET') {
      sendJson(res, 200, { mode: policy.mode, replica: options.replica ?? null, key });
    } else if (path === '/admin/keys' && req.method === 'GET') {
      sendJson(res, 200, { object: 'list', data: await policy.keys.list() });
    } else if (path === '/admin/keys' && req.method === 'POST') {
      assertJsonContentType(req);
      const body = parseJsonObject(await readBody(req, maxBodyBytes));
      const { token, key: created } = await policy.keys.create(createInput(body as Record<string, unknown>));
      sendJson(res, 201, { ...created, key: token });
    } else if (path.startsWith('/admin/keys/') && req.method === 'DELETE') {
      const id = decodedSegment(path.slice('/admin/keys/'.length));
      if (await policy.keys.revoke(id)) sendJson(res, 200, { id, revoked: true });
      else fail(res, 404, `no active key with id "${id}"`);
    } else if (path === '/admin/usage' && req.method === 'GET') {
      const since = query.get('since');
      const until = query.get('until');
      const subject = query.get('subject');
      const model = query.get('model');
      const totals = await policy.usage.totals({
        ...(subject ? { subject } : {}),
        ...(model ? { model } : {}),
        ...(since === null ? {} : { since: moment('since', since) }),
        ...(until === null ? {} : { until: moment('until', until) }),
      });
      sendJson(res, 200, { object: 'list', data: totals });
    } else if (path === '/admin/usage/series' && req.method === 'GET' && options.usageSeries) {
      const bucket = bucketMs(query.get('bucket'));
      // Without an end, the range ends with the bucket now in progress, so that usage flushed a moment after this
      // request arrived (usage is written once a second) is in it.
      const until =
        query.get('until') === null
          ? (Math.floor(Date.now() / bucket) + 1) * bucket
          : moment('until', query.get('until') ?? '');
      const since = moment('since', query.get('since') ?? '1h');
      if (until <= since) throw new McplexError('BAD_REQUEST', "'since' must be before 'until'", {});
      if ((until - since) / bucket > MAX_SERIES_BUCKETS) {
        throw new McplexError(
          'BAD_REQUEST',
          `the range holds more than ${MAX_SERIES_BUCKETS} buckets: use larger ones`,
          {
            data: { param: 'bucket' },
          },
        );
      }
      const { subject, model } = textParams(query, ['subject', 'model'] as const);
      const data = await options.usageSeries({
        since,
        until,
        bucketMs: bucket,
        ...(subject ? { subject } : {}),
        ...(model ? { model } : {}),
      });
      sendJson(res, 200, { object: 'list', bucketMs: bucket, since, until, data });
    } else if (path === '/admin/requests' && req.method === 'GET' && options.requests) {
      const filter: RequestLogFilter = textParams(query, ['route', 'subject', 'target', 'status'] as const);
      const since = query.get('since');
      const until = query.get('until');
      if (since !== null) filter.since = moment('since', since);
      if (until !== null) filter.until = moment('until', until);
      const limit = wholeParam(query, 'limit', 1, 500) ?? 50;
      const before = wholeParam(query, 'before', 1, Number.MAX_SAFE_INTEGER);
      const data = await options.requests.page(filter, { limit, ...(before === undefined ? {} : { before }) });
      const last = data[data.length - 1];
      sendJson(res, 200, { object: 'list', data, next: data.length === limit && last ? last.id : null });
    } else if (path === '/admin/connections' && req.method === 'GET' && options.connections) {
      const { principal } = textParams(query, ['principal'] as const);
      sendJson(res, 200, { object: 'list', data: await options.connections.list(principal) });
    } else if (path.startsWith('/admin/connections/') && req.method === 'DELETE' && options.connections) {
      const upstream = decodedSegment(path.slice('/admin/connections/'.length));
      const { principal } = textParams(query, ['principal'] as const);
      if (!principal) throw new McplexError('BAD_REQUEST', "'principal' is required", { data: { param: 'principal' } });
      const revoked = await options.connections.revoke(principal, upstream);
      if (revoked > 0) sendJson(res, 200, { principal, upstream, revoked: true });
      else fail(res, 404, `"${principal}" has no connection to "${upstream}"`);
    } else if (path === '/admin/cluster' && req.method === 'GET' && cluster) {
      sendJson(res, 200, await cluster());
    } else if (path === '/admin/servers' && req.method === 'GET' && servers) {
      sendJson(res, 200, { object: 'list', data: servers.list() });
    } else if (path === '/admin/servers/events' && req.method === 'GET' && servers) {
      serverEvents(req, res, servers, key?.id ?? 'anonymous', stillAdmin);
    } else if (/^\/admin\/servers\/[^/]+\/restart$/.test(path) && req.method === 'POST' && servers) {
      const name = decodedSegment(path.slice('/admin/servers/'.length, -'/restart'.length));
      const outcome = await servers.restart(name);
      if (outcome === 'unknown') fail(res, 404, `no MCP server "${name}"`);
      else if (outcome === 'refused') fail(res, 409, `MCP server "${name}" is disabled or cannot start`);
      else
        sendJson(
          res,
          200,
          servers.list().find((s) => s.name === name),
        );
    } else {
      fail(res, 404, `no admin route for ${req.method} ${path}`);
    }
  } catch (error) {
    if (!(error instanceof McplexError)) throw error;
    const { status, body } = toOpenAiError(error);
    sendJson(res, status, body);
  }
}

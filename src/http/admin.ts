// The admin API under /admin, for admin keys only: keys (list, create, revoke) and usage. Errors are OpenAI-shaped
// JSON like the rest of the HTTP API.
import type { IncomingMessage, ServerResponse } from 'node:http';
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

export async function handleAdmin(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  policy: Policy,
  maxBodyBytes: number,
  cluster?: () => Promise<unknown>,
  servers?: AdminServers,
): Promise<void> {
  if (policy.mode !== 'keys') {
    fail(res, 403, 'the admin API needs "auth": {"mode": "keys"}; use the mcplex keys command meanwhile');
    return;
  }
  const auth = await policy.authenticate(req);
  if (!auth.ok) {
    sendJson(res, 401, unauthorized(auth.reason));
    return;
  }
  if (!auth.principal.scopes.admin) {
    fail(res, 403, 'this API key is not an admin key');
    return;
  }
  try {
    const query = requestQuery(req);
    if (path === '/admin/keys' && req.method === 'GET') {
      sendJson(res, 200, { object: 'list', data: await policy.keys.list() });
    } else if (path === '/admin/keys' && req.method === 'POST') {
      assertJsonContentType(req);
      const body = parseJsonObject(await readBody(req, maxBodyBytes));
      const { token, key } = await policy.keys.create(createInput(body as Record<string, unknown>));
      sendJson(res, 201, { ...key, key: token });
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
    } else if (path === '/admin/cluster' && req.method === 'GET' && cluster) {
      sendJson(res, 200, await cluster());
    } else if (path === '/admin/servers' && req.method === 'GET' && servers) {
      sendJson(res, 200, { object: 'list', data: servers.list() });
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

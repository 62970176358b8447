// Server-side conversations on /v1/conversations (OpenAI's Conversations API, simplified to chat messages): each
// belongs to the principal that created it, and grows only by atomic appends that may name the version they expect.
// withConversation is the same thing for the chat path: history in, the turn and its reply appended in one go.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { McplexError } from '../../errors.js';
import { readBody } from '../../wire/body.js';
import { assertJsonContentType, parseJsonObject, requestQuery, sendJson } from '../../wire/json.js';
import type { Principal } from '../../policy/auth/keys.js';
import {
  CONVERSATION_ROLES,
  StoreError,
  type ConversationItem,
  type ConversationRecord,
  type ConversationStore,
} from '../../store/store.js';
import { openAiError, toOpenAiError } from '../../llm/openai-errors.js';
import type { ChatMessage } from '../../llm/types.js';

const PREFIX = '/v1/conversations';
const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 100;
/** OpenAI's bounds on metadata. */
const MAX_METADATA_PAIRS = 16;
const MAX_METADATA_KEY = 64;
const MAX_METADATA_VALUE = 512;
/** The page size withConversation reads history in. */
const HISTORY_PAGE = 1000;
/** How often withConversation re-reads a history that kept changing under it before it gives up. */
const HISTORY_READS = 5;
const ROLES: ReadonlySet<string> = new Set(CONVERSATION_ROLES);

/**
 * Serves a request under /v1/conversations for an authenticated principal; false when the path is not one of
 * these routes (the caller goes on routing it). Errors are answered here, as OpenAI error JSON.
 */
export async function handleConversations(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  principal: Principal,
  store: ConversationStore,
  maxBodyBytes: number,
): Promise<boolean> {
  if (path !== PREFIX && !path.startsWith(`${PREFIX}/`)) return false;
  const method = req.method ?? 'GET';
  try {
    const query = requestQuery(req);
    const [id, sub, ...rest] = path === PREFIX ? [] : path.slice(PREFIX.length + 1).split('/');
    if (id === undefined) {
      if (method === 'POST') await create(req, res, principal, store, maxBodyBytes);
      else if (method === 'GET') await list(res, query, principal, store);
      else notAllowed(res, method, path, 'GET, POST');
    } else if (id === '' || rest.length > 0 || (sub !== undefined && sub !== 'items')) {
      sendJson(res, 404, openAiError(404, `Unknown request URL: ${method} ${path}`, 'invalid_request_error'));
    } else if (sub === undefined) {
      const conversationId = decode(id);
      if (method === 'GET') sendJson(res, 200, conversationJson(await owned(store, principal, conversationId)));
      else if (method === 'DELETE') await remove(res, principal, store, conversationId);
      else notAllowed(res, method, path, 'GET, DELETE');
    } else {
      const conversationId = decode(id);
      if (method === 'POST') await addItems(req, res, principal, store, conversationId, maxBodyBytes);
      else if (method === 'GET') await listItems(res, query, principal, store, conversationId);
      else notAllowed(res, method, path, 'GET, POST');
    }
  } catch (error) {
    if (!(error instanceof McplexError)) throw error;
    if (error.code === 'BODY_TOO_LARGE') res.setHeader('connection', 'close');
    sendJson(res, error.status, errorBody(error));
  }
  return true;
}

export interface ConversationTurn {
  /** The stored messages, oldest first. */
  history: ChatMessage[];
  /** The history followed by the new messages: what the model should be sent. */
  messages: ChatMessage[];
  /** The version the history was read at, which `commit` expects. */
  version: number;
  /**
   * Appends the new messages and then `assistantMessages` in one append expecting `version`, and returns the new
   * version. Throws McplexError CONVERSATION_CONFLICT (409) when someone else appended since the history was read,
   * NOT_FOUND (404) when the conversation was deleted meanwhile.
   */
  commit(assistantMessages: ChatMessage[]): Promise<number>;
}

/**
 * Reads a conversation of `principal` for a chat turn. `newMessages` are the request's messages (checked like
 * items; 400 otherwise). With `expectedVersion` (the client's `conversation_version`), a conversation already past
 * it fails at once with 409 instead of after the model has answered. An unknown conversation, or one of someone
 * else, is McplexError NOT_FOUND (404).
 */
export async function withConversation(
  store: ConversationStore,
  principal: Principal,
  conversationId: string,
  newMessages: ChatMessage[],
  options: { expectedVersion?: number } = {},
): Promise<ConversationTurn> {
  const turn = messages(newMessages, 'messages');
  if (turn.length === 0) bad('messages', "'messages' must not be empty");
  const { expectedVersion } = options;
  if (expectedVersion !== undefined && !isWholeNumber(expectedVersion)) {
    bad('conversation_version', "'conversation_version' must be a whole number ≥ 0");
  }
  for (let read = 0; read < HISTORY_READS; read += 1) {
    const before = await owned(store, principal, conversationId, 'conversation');
    if (expectedVersion !== undefined && before.version !== expectedVersion) {
      throw conflict(conversationId, before.version, expectedVersion);
    }
    const items: ConversationItem[] = [];
    for (;;) {
      const after = items.at(-1)?.seq ?? 0;
      const page = await store.items(conversationId, { limit: HISTORY_PAGE, after, order: 'asc' });
      items.push(...page);
      if (page.length < HISTORY_PAGE) break;
    }
    // Versions only grow, so an unchanged version means no append landed while the pages were read.
    if ((await store.get(conversationId))?.version !== before.version) continue;
    const history = items.map((item) => item.message as ChatMessage);
    const version = before.version;
    return {
      history,
      messages: [...history, ...turn],
      version,
      async commit(assistantMessages) {
        try {
          return (await store.append(conversationId, [...turn, ...assistantMessages], version)).version;
        } catch (error) {
          throw fromStore(error, conversationId, version);
        }
      },
    };
  }
  throw new McplexError('CONVERSATION_CONFLICT', `conversation "${conversationId}" kept changing while it was read`, {
    data: { code: 'conversation_version_conflict', param: 'conversation' },
  });
}

async function create(
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
  store: ConversationStore,
  maxBodyBytes: number,
): Promise<void> {
  const body = await readJson(req, maxBodyBytes, true);
  only(body, ['metadata', 'items']);
  const metadata = body.metadata === undefined || body.metadata === null ? {} : parseMetadata(body.metadata);
  const items = body.items === undefined || body.items === null ? [] : messages(body.items, 'items');
  // Everything is checked before the conversation exists, so bad input leaves nothing behind.
  let record = await store.create(principal.id, metadata);
  if (items.length > 0) {
    const { version } = await store.append(record.id, items, 0);
    record = { ...record, version };
  }
  sendJson(res, 200, conversationJson(record));
}

async function list(
  res: ServerResponse,
  query: URLSearchParams,
  principal: Principal,
  store: ConversationStore,
): Promise<void> {
  const limit = parseLimit(query);
  const after = query.get('after') ?? undefined;
  // One more than asked says whether there is another page.
  const page = await store.list(principal.id, { limit: limit + 1, ...(after === undefined ? {} : { after }) });
  sendJson(res, 200, listJson(page.slice(0, limit).map(conversationJson), page.length > limit));
}

async function remove(
  res: ServerResponse,
  principal: Principal,
  store: ConversationStore,
  conversationId: string,
): Promise<void> {
  await owned(store, principal, conversationId);
  if (!(await store.delete(conversationId))) throw notFound(conversationId);
  sendJson(res, 200, { id: conversationId, object: 'conversation.deleted', deleted: true });
}

async function addItems(
  req: IncomingMessage,
  res: ServerResponse,
  principal: Principal,
  store: ConversationStore,
  conversationId: string,
  maxBodyBytes: number,
): Promise<void> {
  const body = await readJson(req, maxBodyBytes, false);
  only(body, ['items', 'expected_version']);
  if (body.items === undefined) bad('items', "'items' is required");
  const items = messages(body.items, 'items');
  if (items.length === 0) bad('items', "'items' must not be empty");
  const expected = body.expected_version;
  if (expected !== undefined && expected !== null && !isWholeNumber(expected)) {
    bad('expected_version', "'expected_version' must be a whole number ≥ 0");
  }
  // The owner never changes, so checking it before the append cannot let another principal's append through.
  await owned(store, principal, conversationId);
  const expectedVersion = typeof expected === 'number' ? expected : undefined;
  try {
    const { version, items: added } = await store.append(conversationId, items, expectedVersion);
    sendJson(res, 200, { ...listJson(added.map(itemJson), false), version });
  } catch (error) {
    throw fromStore(error, conversationId, expectedVersion);
  }
}

async function listItems(
  res: ServerResponse,
  query: URLSearchParams,
  principal: Principal,
  store: ConversationStore,
  conversationId: string,
): Promise<void> {
  const limit = parseLimit(query);
  const order = query.get('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') bad('order', "'order' must be 'asc' or 'desc'");
  await owned(store, principal, conversationId);
  // `after` is an item id, as in OpenAI's API, or an item's seq.
  const cursor = query.get('after');
  let after: number | undefined;
  if (cursor !== null) {
    if (/^\d{1,15}$/.test(cursor)) after = Number(cursor);
    else {
      const item = await store.item(conversationId, cursor);
      if (item === undefined) bad('after', `no item "${cursor}" in this conversation`);
      after = item.seq;
    }
  }
  const page = await store.items(conversationId, {
    limit: limit + 1,
    order,
    ...(after === undefined ? {} : { after }),
  });
  sendJson(res, 200, listJson(page.slice(0, limit).map(itemJson), page.length > limit));
}

/** The conversation, if it is the principal's; someone else's is as unknown as one that does not exist. */
async function owned(
  store: ConversationStore,
  principal: Principal,
  conversationId: string,
  param?: string,
): Promise<ConversationRecord> {
  const record = await store.get(conversationId);
  if (record === undefined || record.owner !== principal.id) throw notFound(conversationId, param);
  return record;
}

/** The chat messages in `value`, checked the way OpenAI checks them; 400 naming the first field that is wrong. */
function messages(value: unknown, param: string): ChatMessage[] {
  if (!Array.isArray(value)) bad(param, `'${param}' must be an array of messages`);
  return value.map((message: unknown, index) => {
    const at = `${param}[${index}]`;
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      bad(at, `'${at}' must be a message object`);
    }
    const m = message as Record<string, unknown>;
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) {
      bad(`${at}.role`, `'${at}.role' must be one of ${CONVERSATION_ROLES.map((r) => `'${r}'`).join(', ')}`);
    }
    const content = m.content;
    if (content !== undefined && content !== null && typeof content !== 'string' && !Array.isArray(content)) {
      bad(`${at}.content`, `'${at}.content' must be a string or an array of content parts`);
    }
    if (Array.isArray(content) && !content.every((part) => typeof part === 'object' && part !== null)) {
      bad(`${at}.content`, `'${at}.content' parts must be objects`);
    }
    if (m.role === 'assistant') {
      if (m.tool_calls !== undefined && !Array.isArray(m.tool_calls)) {
        bad(`${at}.tool_calls`, `'${at}.tool_calls' must be an array`);
      }
      if ((content === undefined || content === null) && m.tool_calls === undefined) {
        bad(`${at}.content`, `'${at}' needs content or tool_calls`);
      }
    } else if (content === undefined || content === null) {
      bad(`${at}.content`, `'${at}.content' is required`);
    }
    if (m.role === 'tool' && typeof m.tool_call_id !== 'string') {
      bad(`${at}.tool_call_id`, `'${at}.tool_call_id' is required for a tool message`);
    }
    if (m.name !== undefined && typeof m.name !== 'string') bad(`${at}.name`, `'${at}.name' must be a string`);
    return m as ChatMessage;
  });
}

function parseMetadata(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    bad('metadata', "'metadata' must be an object of strings");
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_METADATA_PAIRS) bad('metadata', `'metadata' may hold at most ${MAX_METADATA_PAIRS} pairs`);
  for (const [key, entry] of entries) {
    if (key.length > MAX_METADATA_KEY) bad('metadata', `metadata keys may be at most ${MAX_METADATA_KEY} characters`);
    if (typeof entry !== 'string') bad(`metadata.${key}`, `'metadata.${key}' must be a string`);
    if (entry.length > MAX_METADATA_VALUE) {
      bad(`metadata.${key}`, `metadata values may be at most ${MAX_METADATA_VALUE} characters`);
    }
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

function parseLimit(query: URLSearchParams): number {
  const raw = query.get('limit');
  if (raw === null) return DEFAULT_LIMIT;
  const limit = /^\d{1,4}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(limit >= 1 && limit <= MAX_LIMIT)) bad('limit', `'limit' must be a whole number from 1 to ${MAX_LIMIT}`);
  return limit;
}

async function readJson(
  req: IncomingMessage,
  maxBodyBytes: number,
  emptyIsObject: boolean,
): Promise<Record<string, unknown>> {
  const raw = (await readBody(req, maxBodyBytes)).toString('utf8');
  if (emptyIsObject && raw.trim() === '') return {};
  assertJsonContentType(req);
  return parseJsonObject(raw);
}

/** Unknown fields are refused, as OpenAI does, so that a misspelt `expected_version` cannot be silently ignored. */
function only(body: Record<string, unknown>, fields: readonly string[]): void {
  for (const field of Object.keys(body)) {
    if (!fields.includes(field)) bad(field, `Unrecognized request argument supplied: ${field}`);
  }
}

function conversationJson(record: ConversationRecord) {
  return {
    id: record.id,
    object: 'conversation',
    created_at: Math.floor(record.createdAt / 1000),
    metadata: record.metadata,
    version: record.version,
  };
}

function itemJson(item: ConversationItem) {
  return {
    id: item.id,
    object: 'conversation.item',
    type: 'message',
    seq: item.seq,
    role: item.role,
    message: item.message,
    created_at: Math.floor(item.createdAt / 1000),
  };
}

function listJson<T extends { id: string }>(data: T[], hasMore: boolean) {
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: hasMore };
}

function fromStore(error: unknown, conversationId: string, expectedVersion: number | undefined): unknown {
  if (!(error instanceof StoreError)) return error;
  if (error.code === 'NOT_FOUND') return notFound(conversationId);
  if (error.code === 'CONFLICT') {
    return new McplexError(
      'CONVERSATION_CONFLICT',
      `conversation "${conversationId}" has changed since version ${expectedVersion}; read it again and retry`,
      { cause: error, data: { code: 'conversation_version_conflict' } },
    );
  }
  return error;
}

function conflict(conversationId: string, version: number, expected: number): McplexError {
  return new McplexError(
    'CONVERSATION_CONFLICT',
    `conversation "${conversationId}" is at version ${version}, not ${expected}`,
    { data: { code: 'conversation_version_conflict', param: 'conversation_version' } },
  );
}

function notFound(conversationId: string, param?: string): McplexError {
  return new McplexError('NOT_FOUND', `No conversation found with id '${conversationId}'.`, {
    data: { code: 'conversation_not_found', ...(param === undefined ? {} : { param }) },
  });
}

function bad(param: string, message: string): never {
  throw new McplexError('LLM_BAD_REQUEST', message, { data: { param } });
}

function isWholeNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A path segment as sent; a malformed escape cannot name any conversation. */
function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function errorBody(error: McplexError) {
  return toOpenAiError(error).body;
}

function notAllowed(res: ServerResponse, method: string, path: string, allow: string): void {
  sendJson(res, 405, openAiError(405, `Method ${method} is not allowed on ${path}`, 'invalid_request_error'), {
    allow,
  });
}

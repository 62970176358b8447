// The response cache of /v1: answers kept in the CacheStore under a request's cache key, replayed to later askers,
// as JSON or as an SSE stream whichever way the answer was first delivered (a chat.completion converts both ways).
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { CacheEntry, CacheStore } from '../../store/store.js';
import { createSseParser } from '../../wire/sse.js';

/** The response header that tells the client what the cache did: `hit`, and (set by the gateway) `miss`/`bypass`. */
export const CACHE_HEADER = 'x-mcplex-cache';

export interface ResponseCacheOptions {
  /** How long an answer may be served after it was saved. */
  ttlMs: number;
  /** Milliseconds since the epoch (tests pass a fake clock). */
  now?: () => number;
  /** Larger answers are not kept (default 4 MiB). */
  maxEntryBytes?: number;
  /** A failing store degrades to misses; this hears about it (for a log line or a metric). */
  onError?: (error: unknown, operation: 'lookup' | 'save') => void;
}

export interface ResponseCache {
  /** The saved answer, or undefined when there is none, it expired, or the store failed. */
  lookup(key: string): Promise<CacheEntry | undefined>;
  /**
   * Keeps an answer: the body exactly as sent (a JSON document, or the whole SSE text). A stream that did not end
   * with `data: [DONE]` (it broke, or carried an in-band error) and a body over `maxEntryBytes` are not kept;
   * nor are store failures reported other than through `onError`. Save only successful (200) answers.
   */
  save(key: string, body: string, kind: 'json' | 'sse'): Promise<void>;
}

export function createResponseCache(store: CacheStore, options: ResponseCacheOptions): ResponseCache {
  const now = options.now ?? Date.now;
  const maxEntryBytes = options.maxEntryBytes ?? 4 * 1024 * 1024;
  const { ttlMs, onError } = options;
  return {
    async lookup(key) {
      try {
        return await store.get(key, now());
      } catch (error) {
        onError?.(error, 'lookup');
        return undefined;
      }
    },
    async save(key, body, kind) {
      if (ttlMs <= 0) return;
      // A UTF-8 byte is at least one UTF-16 unit and at most three: only measure when it could matter.
      if (body.length > maxEntryBytes || (body.length * 3 > maxEntryBytes && Buffer.byteLength(body) > maxEntryBytes)) {
        return;
      }
      if (kind === 'sse' && !completeStream(body)) return;
      const createdAt = now();
      try {
        await store.set(key, { body, kind, createdAt, expiresAt: createdAt + ttlMs });
      } catch (error) {
        onError?.(error, 'save');
      }
    },
  };
}

/** A usage chunk in a saved stream (compact or spaced JSON). */
const USAGE_CHUNK = /"usage":\s*\{/;

function completeStream(text: string): boolean {
  const trimmed = text.trimEnd();
  const line = trimmed.slice(trimmed.lastIndexOf('\n') + 1);
  return line === 'data: [DONE]' || line === 'data:[DONE]';
}

/**
 * Answers a plain (non-streamed) request from a saved entry, converting a saved stream to its chat.completion.
 * False, with nothing written, when the entry cannot be converted (treat it as a miss).
 */
export function replayJson(res: ServerResponse, entry: CacheEntry, headers: OutgoingHttpHeaders = {}): boolean {
  let body: string;
  try {
    body = entry.kind === 'json' ? entry.body : fromSse(entry.body);
  } catch {
    return false;
  }
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    ...headers,
    [CACHE_HEADER]: 'hit',
  });
  res.end(body);
  return true;
}

/**
 * Answers a streamed chat request from a saved entry, as one write. `includeUsage` is the request's
 * `stream_options.include_usage`: the usage chunk is sent only when asked for, as OpenAI does (a saved stream
 * without one cannot grow one). False, with nothing written, when the entry cannot be converted.
 */
export function replaySse(
  res: ServerResponse,
  entry: CacheEntry,
  headers: OutgoingHttpHeaders = {},
  includeUsage = false,
): boolean {
  let body: string;
  try {
    if (entry.kind === 'json') body = toSse(entry.body, { includeUsage });
    else if (!includeUsage && USAGE_CHUNK.test(entry.body)) body = toSse(fromSse(entry.body), { includeUsage });
    else body = entry.body;
  } catch {
    return false;
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    ...headers,
    [CACHE_HEADER]: 'hit',
  });
  res.end(body);
  return true;
}

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export interface ToSseOptions {
  /**
   * Add the final usage chunk (`choices: []`) and `"usage": null` on the others, as OpenAI does under
   * `stream_options.include_usage`. Default: true when the completion has usage.
   */
  includeUsage?: boolean;
}

/**
 * The OpenAI SSE stream equivalent to a chat.completion: per choice a role chunk, the content, other message
 * fields (refusal, …), one chunk per tool call (whole arguments) and a finish chunk; then the usage chunk and
 * `data: [DONE]`. Top-level fields other than object/choices/usage (system_fingerprint, service_tier, …) ride on
 * every chunk. Throws on a body that is not a chat.completion.
 */
export function toSse(chatCompletionJson: string, options: ToSseOptions = {}): string {
  const completion: unknown = JSON.parse(chatCompletionJson);
  if (!isRecord(completion) || !Array.isArray(completion.choices)) {
    throw new TypeError('not a chat.completion: no choices');
  }
  const { id, object: _object, created, model, choices, usage, ...others } = completion;
  const includeUsage = (options.includeUsage ?? true) && isRecord(usage);
  // Every chunk shares the envelope: serialise it once, splice each chunk's choices in.
  const envelope = JSON.stringify({ id, object: 'chat.completion.chunk', created, model, ...others });
  const head = `data: ${envelope.slice(0, -1)}${envelope === '{}' ? '' : ','}"choices":[`;
  const tail = includeUsage ? '],"usage":null}\n\n' : ']}\n\n';
  let out = '';
  for (const choice of choices as unknown[]) {
    if (!isRecord(choice)) throw new TypeError('not a chat.completion: a choice is not an object');
    const index = choice.index ?? 0;
    const hasLogprobs = 'logprobs' in choice;
    const chunk = (delta: Json, logprobs: unknown = null, finish: unknown = null) => {
      const part: Json = { index, delta };
      if (hasLogprobs) part.logprobs = logprobs;
      part.finish_reason = finish;
      out += head + JSON.stringify(part) + tail;
    };
    const message = isRecord(choice.message) ? choice.message : {};
    const { role, content, tool_calls: toolCalls, ...extras } = message;
    const first: Json = { role: role ?? 'assistant', content: typeof content === 'string' ? '' : null };
    const later: Json[] = [];
    for (const [name, value] of Object.entries(extras)) {
      if (value === null) first[name] = null;
      else if (value !== undefined) later.push({ [name]: value });
    }
    chunk(first);
    // Logprobs belong with the tokens they describe: the content chunk, else the finish chunk.
    let logprobs = hasLogprobs ? choice.logprobs : null;
    if (typeof content === 'string' && content !== '') {
      chunk({ content }, logprobs);
      logprobs = null;
    }
    for (const delta of later) chunk(delta);
    if (Array.isArray(toolCalls)) {
      toolCalls.forEach((call: unknown, callIndex) => {
        chunk({ tool_calls: [{ index: callIndex, ...(isRecord(call) ? call : {}) }] });
      });
    }
    chunk({}, logprobs, choice.finish_reason ?? null);
  }
  if (includeUsage) out += `${head}],"usage":${JSON.stringify(usage)}}\n\n`;
  return `${out}data: [DONE]\n\n`;
}

interface ChoiceState {
  index: number;
  role: unknown;
  content: string | null;
  extras: Json;
  toolCalls: Json[];
  finishReason: unknown;
  hasLogprobs: boolean;
  logprobs: unknown;
}

/**
 * The chat.completion equivalent to an OpenAI SSE stream: deltas joined per choice (content and other string
 * fields concatenated, tool-call arguments concatenated by call index), the last finish_reason, the usage chunk's
 * usage (absent when the stream had none). Throws on a stream that carries an error or no chunks.
 */
export function fromSse(sseText: string): string {
  const parser = createSseParser();
  const choices = new Map<number, ChoiceState>();
  const envelope: Json = {};
  let usage: unknown;
  let chunks = 0;
  for (const event of parser.push(`${sseText}\n\n`)) {
    if (event.data === '[DONE]') continue;
    const chunk: unknown = JSON.parse(event.data);
    if (!isRecord(chunk)) throw new TypeError('not a chat.completion.chunk');
    if (chunk.error !== undefined) throw new Error('the stream carries an error');
    chunks++;
    for (const [name, value] of Object.entries(chunk)) {
      if (name === 'choices' || name === 'object') continue;
      if (name === 'usage') {
        if (value !== null && value !== undefined) usage = value;
      } else if (value !== null || envelope[name] === undefined) envelope[name] = value;
    }
    if (!Array.isArray(chunk.choices)) continue;
    for (const part of chunk.choices as unknown[]) {
      if (!isRecord(part)) continue;
      const index = typeof part.index === 'number' ? part.index : 0;
      let state = choices.get(index);
      if (state === undefined) {
        state = {
          index,
          role: 'assistant',
          content: null,
          extras: {},
          toolCalls: [],
          finishReason: null,
          hasLogprobs: false,
          logprobs: null,
        };
        choices.set(index, state);
      }
      if ('logprobs' in part) {
        state.hasLogprobs = true;
        state.logprobs = mergeLogprobs(state.logprobs, part.logprobs);
      }
      if (part.finish_reason !== null && part.finish_reason !== undefined) state.finishReason = part.finish_reason;
      if (isRecord(part.delta)) applyDelta(state, part.delta);
    }
  }
  if (chunks === 0) throw new TypeError('the stream has no chunks');
  const { id, created, model, ...others } = envelope;
  const completion: Json = {
    id,
    object: 'chat.completion',
    created,
    model,
    choices: [...choices.values()]
      .sort((a, b) => a.index - b.index)
      .map((state) => {
        const message: Json = { role: state.role, content: state.content, ...state.extras };
        if (state.toolCalls.length > 0) message.tool_calls = state.toolCalls;
        const choice: Json = { index: state.index, message };
        if (state.hasLogprobs) choice.logprobs = state.logprobs;
        choice.finish_reason = state.finishReason;
        return choice;
      }),
  };
  if (usage !== undefined) completion.usage = usage;
  return JSON.stringify(Object.assign(completion, others));
}

function applyDelta(state: ChoiceState, delta: Json): void {
  for (const [name, value] of Object.entries(delta)) {
    if (name === 'role') {
      if (value !== null && value !== undefined) state.role = value;
    } else if (name === 'content') {
      if (typeof value === 'string') state.content = (state.content ?? '') + value;
    } else if (name === 'tool_calls') {
      if (Array.isArray(value)) for (const call of value as unknown[]) if (isRecord(call)) applyToolCall(state, call);
    } else if (value !== undefined) {
      const current = state.extras[name];
      state.extras[name] = typeof value === 'string' && typeof current === 'string' ? current + value : value;
    }
  }
}

function applyToolCall(state: ChoiceState, delta: Json): void {
  const { index, function: fn, ...rest } = delta;
  const at = typeof index === 'number' ? index : state.toolCalls.length;
  let call = state.toolCalls[at];
  if (call === undefined) {
    call = { ...rest, function: { name: '', arguments: '' } };
    state.toolCalls[at] = call;
  } else {
    for (const [name, value] of Object.entries(rest)) if (value !== undefined && value !== null) call[name] = value;
  }
  if (!isRecord(fn)) return;
  const target = call.function as Json;
  for (const [name, value] of Object.entries(fn)) {
    if (name === 'arguments') {
      if (typeof value === 'string') target.arguments = String(target.arguments ?? '') + value;
    } else if (name === 'name') {
      // The name comes whole in the call's first delta; some backends repeat it.
      if (typeof value === 'string' && value !== '' && target.name === '') target.name = value;
    } else if (value !== undefined) target[name] = value;
  }
}

/** Streamed logprobs describe each chunk's tokens: join their arrays (`content`, `refusal`) in order. */
function mergeLogprobs(current: unknown, next: unknown): unknown {
  if (next === null || next === undefined) return current;
  if (!isRecord(next)) return next;
  if (!isRecord(current)) {
    const copy: Json = {};
    for (const [name, value] of Object.entries(next)) copy[name] = Array.isArray(value) ? [...value] : value;
    return copy;
  }
  for (const [name, value] of Object.entries(next)) {
    const existing = current[name];
    if (Array.isArray(existing) && Array.isArray(value)) existing.push(...(value as unknown[]));
    else if (value !== null && value !== undefined) current[name] = Array.isArray(value) ? [...value] : value;
  }
  return current;
}

// Translation between the OpenAI Chat Completions API (what mcplex speaks on /v1) and the Anthropic Messages API:
// requests, responses, SSE streams and errors. Pure functions plus one small stateful stream translator; no I/O.
//
// Choices worth knowing:
// - Anthropic has no JSON mode, so `response_format` json_object / json_schema append an instruction to the system
//   prompt asking for JSON only (with the schema, when one is given). The answer is not validated.
// - System and developer messages, wherever they appear, are hoisted into the top-level `system`, in order.
// - Consecutive messages of one role are merged (Anthropic wants alternating turns); tool results move to the front
//   of their user turn, because Anthropic wants them right after the assistant turn that asked for them.
// - Tool call ids are reduced to the characters Anthropic accepts ([A-Za-z0-9_-]), the same way on both sides.
// - `cache_control` on a text or image part is passed through, so clients can use Anthropic prompt caching.
// - Dropped without error: seed, n = 1, stream_options, logprobs, penalties, logit_bias, OpenAI `metadata`,
//   tool `strict`, image `detail`, message `name`.

import { randomUUID } from 'node:crypto';
import { McplexError } from '../../errors.js';
import type {
  ChatCompletion,
  ChatCompletionChoice,
  ChatCompletionChunk,
  ChatCompletionRequest,
  FinishReason,
  OpenAiErrorBody,
  ToolCall,
  ToolCallDelta,
  Usage,
} from '../types.js';

const ANTHROPIC_VERSION = '2023-06-01';

export interface AnthropicOptions {
  /** The Anthropic model to call. */
  model: string;
  /** max_tokens when the client sets none */
  defaultMaxTokens: number;
}

export interface AnthropicMessagesRequest {
  model: string;
  max_tokens: number;
  messages: unknown[];
  system?: string | unknown[];
  stream?: boolean;
  temperature?: number;
  top_p?: number;
  stop_sequences?: string[];
  tools?: unknown[];
  tool_choice?: unknown;
  metadata?: { user_id?: string };
  [key: string]: unknown;
}

type Block = Record<string, unknown>;

interface Turn {
  role: 'user' | 'assistant';
  content: Block[];
}

/** Which message a content array belongs to decides which part types it may hold. */
type PartContext = 'system' | 'user' | 'assistant' | 'tool';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function badRequest(message: string, param: string | null): McplexError {
  return new McplexError('LLM_BAD_REQUEST', message, { data: { param } });
}

/** OpenAI chat request → Anthropic Messages request body. Throws McplexError('LLM_BAD_REQUEST') (status 400, with
 * `data.param`) for what cannot be translated. */
export function toAnthropicRequest(
  request: ChatCompletionRequest,
  options: AnthropicOptions,
): AnthropicMessagesRequest {
  if (typeof request.n === 'number' && request.n > 1) {
    throw badRequest('n > 1 is not supported by Anthropic models', 'n');
  }
  if (!Array.isArray(request.messages)) throw badRequest('messages must be an array', 'messages');

  const system: Block[] = [];
  let systemAsBlocks = false;
  const turns: Turn[] = [];
  const append = (role: Turn['role'], blocks: Block[]): void => {
    if (blocks.length === 0) return;
    const last = turns.at(-1);
    if (last?.role === role) last.content.push(...blocks);
    else turns.push({ role, content: blocks });
  };

  request.messages.forEach((message: unknown, i) => {
    const param = `messages[${i}]`;
    if (!isRecord(message)) throw badRequest(`${param} must be an object`, param);
    switch (message.role) {
      case 'system':
      case 'developer':
        if (Array.isArray(message.content)) systemAsBlocks = true;
        system.push(...contentBlocks(message.content, `${param}.content`, 'system'));
        return;
      case 'user':
        append('user', contentBlocks(message.content, `${param}.content`, 'user'));
        return;
      case 'assistant':
        append('assistant', [
          ...contentBlocks(message.content, `${param}.content`, 'assistant'),
          ...toolUseBlocks(message.tool_calls, param),
        ]);
        return;
      case 'tool':
        append('user', [toolResultBlock(message, param)]);
        return;
      default:
        throw badRequest(`${param}.role ${JSON.stringify(message.role)} is not supported`, `${param}.role`);
    }
  });

  const body: AnthropicMessagesRequest = {
    model: options.model,
    max_tokens: maxTokens(request, options),
    messages: turns.map(toAnthropicMessage),
  };

  const instruction = jsonInstruction(request.response_format);
  if (instruction !== undefined) system.push({ type: 'text', text: instruction });
  if (system.length > 0) {
    body.system = systemAsBlocks ? system : system.map((block) => block.text).join('\n\n');
  }

  if (typeof request.stream === 'boolean') body.stream = request.stream;
  if (typeof request.temperature === 'number') body.temperature = Math.min(1, Math.max(0, request.temperature));
  if (typeof request.top_p === 'number') body.top_p = request.top_p;
  // Not OpenAI, but a common extension of OpenAI-compatible servers, and native to Anthropic.
  if (typeof request.top_k === 'number') body.top_k = request.top_k;
  const stop = stopSequences(request.stop);
  if (stop.length > 0) body.stop_sequences = stop;
  if (typeof request.user === 'string' && request.user !== '') body.metadata = { user_id: request.user };

  const tools = toAnthropicTools(request.tools);
  if (tools.length > 0) {
    body.tools = tools;
    const choice = toAnthropicToolChoice(request.tool_choice, request.parallel_tool_calls);
    if (choice !== undefined) body.tool_choice = choice;
  }
  return body;
}

function toAnthropicMessage(turn: Turn): { role: Turn['role']; content: string | Block[] } {
  let content = turn.content;
  if (turn.role === 'user') {
    content = [
      ...content.filter((block) => block.type === 'tool_result'),
      ...content.filter((block) => block.type !== 'tool_result'),
    ];
  }
  const only = content[0];
  if (content.length === 1 && only?.type === 'text' && Object.keys(only).length === 2) {
    return { role: turn.role, content: only.text as string };
  }
  return { role: turn.role, content };
}

function contentBlocks(content: unknown, param: string, context: PartContext): Block[] {
  if (content === undefined || content === null) return [];
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw badRequest(`${param} must be a string or an array of content parts`, param);
  return content.flatMap((part: unknown, j) => partBlocks(part, `${param}[${j}]`, context));
}

function partBlocks(part: unknown, param: string, context: PartContext): Block[] {
  if (!isRecord(part)) throw badRequest(`${param} must be a content part object`, param);
  const type = part.type;
  if (type === 'text' || (type === 'refusal' && context === 'assistant')) {
    const text = type === 'text' ? part.text : part.refusal;
    if (typeof text !== 'string') throw badRequest(`${param}.${String(type)} must be a string`, `${param}.${type}`);
    return text === '' ? [] : [withCacheControl({ type: 'text', text }, part)];
  }
  if (type === 'image_url' && (context === 'user' || context === 'tool')) {
    return [withCacheControl(imageBlock(part.image_url, `${param}.image_url`), part)];
  }
  throw badRequest(
    `content part type ${JSON.stringify(type)} is not supported in ${context} messages for Anthropic models`,
    `${param}.type`,
  );
}

function withCacheControl(block: Block, part: Record<string, unknown>): Block {
  return part.cache_control === undefined ? block : { ...block, cache_control: part.cache_control };
}

function imageBlock(image: unknown, param: string): Block {
  const url = isRecord(image) ? image.url : undefined;
  if (typeof url !== 'string') throw badRequest(`${param}.url must be a string`, `${param}.url`);
  if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
  if (!/^data:/i.test(url)) {
    throw badRequest(`${param}.url must be a data: URL or an http(s) URL`, `${param}.url`);
  }
  const comma = url.indexOf(',');
  const [mediaType = '', ...parameters] = (comma < 0 ? '' : url.slice(5, comma)).split(';');
  const data = comma < 0 ? '' : url.slice(comma + 1);
  if (!mediaType.includes('/') || !parameters.some((p) => p.toLowerCase() === 'base64') || data === '') {
    throw badRequest(`${param}.url must be a base64 data URL (data:<media type>;base64,<data>)`, `${param}.url`);
  }
  return { type: 'image', source: { type: 'base64', media_type: mediaType.toLowerCase(), data } };
}

/** Anthropic accepts only [A-Za-z0-9_-] in tool_use ids; other OpenAI-compatible backends are less strict. */
function toolUseId(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '_');
}

function toolUseBlocks(toolCalls: unknown, param: string): Block[] {
  if (toolCalls === undefined || toolCalls === null) return [];
  if (!Array.isArray(toolCalls)) throw badRequest(`${param}.tool_calls must be an array`, `${param}.tool_calls`);
  return toolCalls.map((call: unknown, j) => {
    const at = `${param}.tool_calls[${j}]`;
    if (!isRecord(call) || !isRecord(call.function)) throw badRequest(`${at} must be a function tool call`, at);
    if (call.type !== undefined && call.type !== 'function') {
      throw badRequest(`${at}.type ${JSON.stringify(call.type)} is not supported`, `${at}.type`);
    }
    if (typeof call.id !== 'string' || call.id === '') throw badRequest(`${at}.id must be a string`, `${at}.id`);
    const name = call.function.name;
    if (typeof name !== 'string' || name === '') {
      throw badRequest(`${at}.function.name must be a string`, `${at}.function.name`);
    }
    const input = toolInput(call.function.arguments, `${at}.function.arguments`);
    return { type: 'tool_use', id: toolUseId(call.id), name, input };
  });
}

function toolInput(args: unknown, param: string): Record<string, unknown> {
  // Some clients send no arguments (or an object) for a tool that takes none; both are harmless to accept.
  if (args === undefined || args === null || (typeof args === 'string' && args.trim() === '')) return {};
  let value: unknown = args;
  if (typeof args === 'string') {
    try {
      value = JSON.parse(args);
    } catch {
      throw badRequest(`${param} is not valid JSON`, param);
    }
  }
  if (!isRecord(value)) throw badRequest(`${param} must be a JSON object`, param);
  return value;
}

function toolResultBlock(message: Record<string, unknown>, param: string): Block {
  const id = message.tool_call_id;
  if (typeof id !== 'string' || id === '') {
    throw badRequest(`${param}.tool_call_id must be a string`, `${param}.tool_call_id`);
  }
  const block: Block = { type: 'tool_result', tool_use_id: toolUseId(id) };
  if (typeof message.content === 'string') {
    if (message.content !== '') block.content = message.content;
  } else {
    const blocks = contentBlocks(message.content, `${param}.content`, 'tool');
    if (blocks.length > 0) block.content = blocks;
  }
  return block;
}

function maxTokens(request: ChatCompletionRequest, options: AnthropicOptions): number {
  const param = request.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  const value = request.max_completion_tokens ?? request.max_tokens ?? options.defaultMaxTokens;
  if (!Number.isInteger(value) || value < 1) throw badRequest(`${param} must be a positive integer`, param);
  return value;
}

function stopSequences(stop: unknown): string[] {
  if (stop === undefined || stop === null) return [];
  const list: unknown[] = typeof stop === 'string' ? [stop] : Array.isArray(stop) ? stop : [stop];
  if (!list.every((s): s is string => typeof s === 'string')) {
    throw badRequest('stop must be a string or an array of strings', 'stop');
  }
  return list.filter((s) => s !== '');
}

function jsonInstruction(format: unknown): string | undefined {
  if (format === undefined || format === null) return undefined;
  const type = isRecord(format) ? format.type : undefined;
  const only = 'Respond only with valid JSON: no prose, no explanations and no Markdown code fences.';
  if (type === 'text') return undefined;
  if (type === 'json_object') return `${only} The JSON value must be an object.`;
  if (type === 'json_schema') {
    const spec = isRecord(format) && isRecord(format.json_schema) ? format.json_schema : {};
    if (spec.schema === undefined) return only;
    return `${only} The JSON value must conform to this JSON Schema:\n${JSON.stringify(spec.schema)}`;
  }
  throw badRequest(`response_format.type ${JSON.stringify(type)} is not supported`, 'response_format.type');
}

function toAnthropicTools(tools: unknown): Block[] {
  if (tools === undefined || tools === null) return [];
  if (!Array.isArray(tools)) throw badRequest('tools must be an array', 'tools');
  return tools.map((tool: unknown, k) => {
    const param = `tools[${k}]`;
    if (!isRecord(tool) || tool.type !== 'function') {
      throw badRequest(`${param}.type must be "function" for Anthropic models`, `${param}.type`);
    }
    const fn = isRecord(tool.function) ? tool.function : {};
    if (typeof fn.name !== 'string' || fn.name === '') {
      throw badRequest(`${param}.function.name must be a string`, `${param}.function.name`);
    }
    if (fn.parameters !== undefined && fn.parameters !== null && !isRecord(fn.parameters)) {
      throw badRequest(`${param}.function.parameters must be a JSON Schema object`, `${param}.function.parameters`);
    }
    const out: Block = { name: fn.name };
    if (typeof fn.description === 'string' && fn.description !== '') out.description = fn.description;
    // Anthropic requires an object schema at the root; OpenAI lets a tool without arguments omit it.
    out.input_schema = fn.parameters ? { type: 'object', ...fn.parameters } : { type: 'object', properties: {} };
    return out;
  });
}

function toAnthropicToolChoice(choice: unknown, parallel: unknown): Block | undefined {
  let out: Block | undefined;
  if (choice === undefined || choice === null) out = parallel === false ? { type: 'auto' } : undefined;
  else if (choice === 'auto') out = { type: 'auto' };
  else if (choice === 'required') out = { type: 'any' };
  else if (choice === 'none') out = { type: 'none' };
  else if (isRecord(choice) && choice.type === 'function' && isRecord(choice.function)) {
    const name = choice.function.name;
    if (typeof name !== 'string' || name === '') {
      throw badRequest('tool_choice.function.name must be a string', 'tool_choice.function.name');
    }
    out = { type: 'tool', name };
  } else {
    throw badRequest('tool_choice is not supported for Anthropic models', 'tool_choice');
  }
  if (out !== undefined && parallel === false && out.type !== 'none') out.disable_parallel_tool_use = true;
  return out;
}

// ---- responses ----

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function completionId(messageId: unknown): string {
  if (typeof messageId === 'string' && messageId !== '') return `chatcmpl-${messageId}`;
  return `chatcmpl-${randomUUID().replaceAll('-', '')}`;
}

function toFinishReason(stopReason: unknown): FinishReason | null {
  switch (stopReason) {
    case undefined:
    case null:
      return null;
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      // end_turn, stop_sequence, pause_turn and reasons Anthropic may add later.
      return 'stop';
  }
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function toUsage(usage: unknown): Usage | undefined {
  if (!isRecord(usage)) return undefined;
  const cached = usage.cache_read_input_tokens;
  const prompt = count(usage.input_tokens) + count(cached) + count(usage.cache_creation_input_tokens);
  const completion = count(usage.output_tokens);
  const out: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  if (typeof cached === 'number') out.prompt_tokens_details = { cached_tokens: cached };
  return out;
}

/** Anthropic message response → OpenAI chat.completion, reporting `model` as the client's public model name. Throws
 * McplexError('UPSTREAM_ERROR', status 502) when the response is not a message. */
export function fromAnthropicResponse(response: unknown, publicModel: string, id?: string): ChatCompletion {
  if (!isRecord(response) || !Array.isArray(response.content)) {
    throw new McplexError('UPSTREAM_ERROR', 'Anthropic returned a response that is not a message');
  }
  const texts: string[] = [];
  const toolCalls: ToolCall[] = [];
  for (const block of response.content as unknown[]) {
    if (!isRecord(block)) continue;
    if (block.type === 'text' && typeof block.text === 'string') texts.push(block.text);
    else if (block.type === 'tool_use') {
      toolCalls.push({
        id: String(block.id),
        type: 'function',
        function: { name: String(block.name), arguments: JSON.stringify(block.input ?? {}) },
      });
    }
    // thinking, redacted_thinking and server tool blocks have no OpenAI counterpart.
  }
  const message: ChatCompletionChoice['message'] = {
    role: 'assistant',
    content: texts.length > 0 ? texts.join('') : null,
  };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  const completion: ChatCompletion = {
    id: id ?? completionId(response.id),
    object: 'chat.completion',
    created: nowSeconds(),
    model: publicModel,
    choices: [{ index: 0, message, finish_reason: toFinishReason(response.stop_reason) ?? 'stop', logprobs: null }],
  };
  const usage = toUsage(response.usage);
  if (usage !== undefined) completion.usage = usage;
  return completion;
}

// ---- streams ----

/** An `error` event inside an Anthropic stream, already mapped to the OpenAI error to report. */
export class AnthropicStreamError extends Error {
  readonly body: OpenAiErrorBody;
  readonly status: number;

  constructor(status: number, body: OpenAiErrorBody) {
    super(body.error.message);
    this.name = 'AnthropicStreamError';
    this.status = status;
    this.body = body;
  }
}

/** Stateful translator of Anthropic SSE events into OpenAI chunks. */
export interface AnthropicStreamTranslator {
  /** Translates one event (`event` is the SSE event name; when empty, `data.type` is used). Throws
   * AnthropicStreamError for an `error` event. Returns no chunks once `message_stop` has been seen. */
  push(event: string, data: unknown): ChatCompletionChunk[];
  /** Usage so far (final after `message_delta`); undefined before `message_start`. */
  readonly usage: Usage | undefined;
  /** True once `message_stop` has been seen. */
  readonly done: boolean;
}

export function createAnthropicStreamTranslator(
  publicModel: string,
  options: { includeUsage: boolean; id?: string; created?: number },
): AnthropicStreamTranslator {
  let id = options.id;
  const created = options.created ?? nowSeconds();
  let rawUsage: Record<string, unknown> = {};
  let usage: Usage | undefined;
  let done = false;
  /** Anthropic content block index → OpenAI tool call index. */
  const toolIndexes = new Map<number, number>();

  const chunk = (
    choices: ChatCompletionChunk['choices'],
    extra: Partial<ChatCompletionChunk> = {},
  ): ChatCompletionChunk => {
    id ??= completionId(undefined);
    const out: ChatCompletionChunk = { id, object: 'chat.completion.chunk', created, model: publicModel, choices };
    // OpenAI sends `usage: null` on every chunk but the last when the client asked for usage.
    if (options.includeUsage) out.usage = null;
    return { ...out, ...extra };
  };
  const delta = (d: ChatCompletionChunk['choices'][number]['delta'], finish: FinishReason | null = null) =>
    chunk([{ index: 0, delta: d, finish_reason: finish, logprobs: null }]);
  const recordUsage = (fields: unknown): void => {
    if (!isRecord(fields)) return;
    // message_delta repeats only the counters it updates (and may send nulls); keep the others from message_start.
    for (const [key, value] of Object.entries(fields)) if (typeof value === 'number') rawUsage[key] = value;
    usage = toUsage(rawUsage);
  };

  const push = (event: string, data: unknown): ChatCompletionChunk[] => {
    if (done) return [];
    const d = isRecord(data) ? data : {};
    const type = event || (typeof d.type === 'string' ? d.type : '');
    switch (type) {
      case 'message_start': {
        const message = isRecord(d.message) ? d.message : {};
        id ??= completionId(message.id);
        rawUsage = {};
        recordUsage(message.usage ?? {});
        return [delta({ role: 'assistant', content: '' })];
      }
      case 'content_block_start': {
        const block = isRecord(d.content_block) ? d.content_block : {};
        if (block.type === 'tool_use' && typeof d.index === 'number') {
          const index = toolIndexes.size;
          toolIndexes.set(d.index, index);
          const call: ToolCallDelta = {
            index,
            id: String(block.id),
            type: 'function',
            function: { name: String(block.name), arguments: '' },
          };
          return [delta({ tool_calls: [call] })];
        }
        if (block.type === 'text' && typeof block.text === 'string' && block.text !== '') {
          return [delta({ content: block.text })];
        }
        return [];
      }
      case 'content_block_delta': {
        const change = isRecord(d.delta) ? d.delta : {};
        if (change.type === 'text_delta' && typeof change.text === 'string' && change.text !== '') {
          return [delta({ content: change.text })];
        }
        if (change.type === 'input_json_delta' && typeof change.partial_json === 'string') {
          const index = typeof d.index === 'number' ? toolIndexes.get(d.index) : undefined;
          if (index === undefined || change.partial_json === '') return [];
          return [delta({ tool_calls: [{ index, function: { arguments: change.partial_json } }] })];
        }
        // thinking_delta, signature_delta, citations_delta: no OpenAI counterpart.
        return [];
      }
      case 'message_delta': {
        recordUsage(d.usage);
        const finish = toFinishReason(isRecord(d.delta) ? d.delta.stop_reason : undefined);
        return finish === null ? [] : [delta({}, finish)];
      }
      case 'message_stop': {
        done = true;
        if (!options.includeUsage) return [];
        const final = usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
        return [chunk([], { usage: final })];
      }
      case 'error': {
        const mapped = fromAnthropicError(500, d);
        throw new AnthropicStreamError(mapped.status, mapped.body);
      }
      default:
        // ping, content_block_stop, and event types Anthropic may add later.
        return [];
    }
  };

  return {
    push,
    get usage() {
      return usage;
    },
    get done() {
      return done;
    },
  };
}

// ---- errors ----

interface ErrorMapping {
  status: number;
  type: string;
  code: string | null;
}

const ERROR_TYPES: Record<string, ErrorMapping> = {
  invalid_request_error: { status: 400, type: 'invalid_request_error', code: null },
  authentication_error: { status: 401, type: 'authentication_error', code: null },
  billing_error: { status: 402, type: 'insufficient_quota', code: 'insufficient_quota' },
  permission_error: { status: 403, type: 'permission_error', code: null },
  not_found_error: { status: 404, type: 'not_found_error', code: null },
  request_too_large: { status: 413, type: 'invalid_request_error', code: null },
  rate_limit_error: { status: 429, type: 'requests', code: 'rate_limit_exceeded' },
  api_error: { status: 500, type: 'server_error', code: null },
  overloaded_error: { status: 503, type: 'server_error', code: null },
  timeout_error: { status: 504, type: 'server_error', code: null },
};

/** Anthropic's error type for an HTTP status, as its API names them. */
const STATUS_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

/** The `error.type` Anthropic sends with an HTTP status (for statuses it does not list, by class). */
export function anthropicErrorType(status: number): string {
  return STATUS_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

function errorMapping(status: number, anthropicType: unknown): ErrorMapping {
  const known = typeof anthropicType === 'string' ? ERROR_TYPES[anthropicType] : undefined;
  if (known !== undefined) {
    // Anthropic also uses invalid_request_error for 4xx statuses it does not list; keep those statuses.
    const keep = anthropicType === 'invalid_request_error' && status >= 400 && status < 500;
    return keep ? { ...known, status } : known;
  }
  const byStatus = ERROR_TYPES[STATUS_TYPES[status] ?? ''];
  if (byStatus !== undefined) return byStatus;
  if (status >= 400 && status < 500) return { status, type: 'invalid_request_error', code: null };
  if (status >= 500 && status < 600) return { status, type: 'server_error', code: null };
  return { status: 502, type: 'server_error', code: null };
}

/** Anthropic error (status + body) → OpenAI error body and the status to answer with. The body may be the parsed
 * JSON, its text, or anything else a proxy in between sent. */
export function fromAnthropicError(status: number, body: unknown): { status: number; body: OpenAiErrorBody } {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = body;
    }
  }
  const error = isRecord(parsed) && isRecord(parsed.error) ? parsed.error : {};
  const mapping = errorMapping(status, error.type);
  let message = typeof error.message === 'string' && error.message !== '' ? error.message : undefined;
  if (message === undefined && typeof parsed === 'string' && parsed.trim() !== '')
    message = parsed.trim().slice(0, 500);
  message ??= `Anthropic API error (HTTP ${status})`;
  let code = mapping.code;
  // OpenAI clients trim their history on this code; Anthropic only says it in the message.
  if (mapping.type === 'invalid_request_error' && /prompt is too long/i.test(message)) code = 'context_length_exceeded';
  return { status: mapping.status, body: { error: { message, type: mapping.type, param: null, code } } };
}

/** Extra headers an Anthropic request needs. */
export function anthropicHeaders(apiKey: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'anthropic-version': ANTHROPIC_VERSION,
  };
  if (apiKey !== undefined && apiKey !== '') headers['x-api-key'] = apiKey;
  return headers;
}

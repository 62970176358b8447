// The OpenAI side of the mock LLM: reads chat and embedding requests, renders completions (whole or as SSE
// chunks), embeddings, the model list and errors in OpenAI's shapes (the types of ../types.ts).
import type {
  ChatCompletion,
  ChatCompletionChoice,
  ChatCompletionChunk,
  EmbeddingResponse,
  FinishReason,
  OpenAiErrorBody,
  ToolCallDelta,
  Usage,
} from '../types.js';
import { completionChars, estimateTokens, isRecord, splitPieces, sseData } from './script.js';
import type { ChatInput, Completion, InvalidRequest, ReplyPlan } from './script.js';

export function readChatRequest(body: unknown): ChatInput | InvalidRequest {
  if (!isRecord(body)) return { invalid: 'the request body must be a JSON object', param: null };
  const { model, messages, n, stream, stream_options: streamOptions } = body;
  if (typeof model !== 'string' || model === '')
    return { invalid: 'you must provide a model parameter', param: 'model' };
  if (!Array.isArray(messages) || messages.length === 0) {
    return { invalid: "'messages' must be a non-empty array", param: 'messages' };
  }
  if (n !== undefined && n !== null && (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 128)) {
    return { invalid: "'n' must be an integer between 1 and 128", param: 'n' };
  }
  const maxTokens = body['max_completion_tokens'] ?? body['max_tokens'];
  if (maxTokens !== undefined && maxTokens !== null && (!Number.isInteger(maxTokens) || (maxTokens as number) < 1)) {
    return { invalid: "'max_tokens' must be a positive integer", param: 'max_tokens' };
  }
  let promptChars = 0;
  let lastUserText = '';
  let toolResults: string[] = [];
  for (const message of messages) {
    if (!isRecord(message)) return { invalid: 'each message must be an object', param: 'messages' };
    const text = contentText(message['content']);
    promptChars += text.length;
    if (message['role'] === 'user') lastUserText = text;
    if (message['role'] === 'assistant') toolResults = [];
    if (message['role'] === 'tool') toolResults.push(text);
    if (Array.isArray(message['tool_calls'])) {
      for (const call of message['tool_calls']) {
        if (isRecord(call) && isRecord(call['function'])) {
          const fn = call['function'];
          promptChars += String(fn['name'] ?? '').length + String(fn['arguments'] ?? '').length;
        }
      }
    }
  }
  return {
    model,
    stream: stream === true,
    includeUsage: stream === true && isRecord(streamOptions) && streamOptions['include_usage'] === true,
    n: typeof n === 'number' ? n : 1,
    maxTokens: typeof maxTokens === 'number' ? maxTokens : undefined,
    lastUserText,
    toolResults,
    toolNames: ((body['tools'] as unknown[] | undefined) ?? [])
      .map((t) => (isRecord(t) && isRecord(t['function']) ? String(t['function']['name']) : ''))
      .filter(Boolean),
    afterTools: toolResults.length > 0,
    promptChars,
  };
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const texts: string[] = [];
  for (const part of content) {
    if (isRecord(part) && part['type'] === 'text' && typeof part['text'] === 'string') texts.push(part['text']);
  }
  return texts.join('\n');
}

function finishReason(completion: Completion): FinishReason {
  if (completion.kind === 'tool_calls') return 'tool_calls';
  return completion.truncated ? 'length' : 'stop';
}

function usage(plan: ReplyPlan): Usage {
  let completion = 0;
  for (const choice of plan.choices) completion += estimateTokens(completionChars(choice));
  const prompt = plan.promptTokens;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export function chatCompletionBody(plan: ReplyPlan): string {
  const choices: ChatCompletionChoice[] = plan.choices.map((completion, index) => ({
    index,
    message:
      completion.kind === 'text'
        ? { role: 'assistant', content: completion.text, refusal: null }
        : {
            role: 'assistant',
            content: null,
            tool_calls: completion.calls.map((call) => ({
              id: call.id,
              type: 'function',
              function: { name: call.name, arguments: call.arguments },
            })),
            refusal: null,
          },
    logprobs: null,
    finish_reason: finishReason(completion),
  }));
  const body: ChatCompletion = {
    id: plan.id,
    object: 'chat.completion',
    created: plan.created,
    model: plan.model,
    choices,
    usage: usage(plan),
    system_fingerprint: plan.fingerprint,
  };
  return JSON.stringify(body);
}

type ChunkChoice = ChatCompletionChunk['choices'][number];

/**
 * The SSE events of a streamed completion, grouped by content chunk: group k carries the k-th content delta of
 * every choice, the first group also the role deltas, the last also the finish deltas, the usage chunk and [DONE].
 * Delays and disconnects happen between groups.
 */
export function chatCompletionGroups(plan: ReplyPlan): string[] {
  // Every chunk shares its envelope; only the choice differs, so the envelope is serialised once.
  const head = `{"id":${JSON.stringify(plan.id)},"object":"chat.completion.chunk","created":${plan.created},"model":${JSON.stringify(plan.model)},"system_fingerprint":${JSON.stringify(plan.fingerprint)},"choices":[`;
  const tail = plan.includeUsage ? '],"usage":null}' : ']}';
  const chunk = (choice: ChunkChoice) => sseData(`${head}${JSON.stringify(choice)}${tail}`);

  const perChoice = plan.choices.map((completion, index) => choiceGroups(completion, index, plan.chunks, chunk));
  const count = Math.max(...perChoice.map((groups) => groups.length));
  const groups: string[] = [];
  for (let k = 0; k < count; k++) groups.push(perChoice.map((choiceGroups) => choiceGroups[k] ?? '').join(''));

  let end = '';
  plan.choices.forEach((completion, index) => {
    end += chunk({ index, delta: {}, logprobs: null, finish_reason: finishReason(completion) });
  });
  if (plan.includeUsage) {
    const last: ChatCompletionChunk = {
      id: plan.id,
      object: 'chat.completion.chunk',
      created: plan.created,
      model: plan.model,
      system_fingerprint: plan.fingerprint,
      choices: [],
      usage: usage(plan),
    };
    end += sseData(JSON.stringify(last));
  }
  end += 'data: [DONE]\n\n';
  groups[groups.length - 1] += end;
  return groups;
}

function choiceGroups(
  completion: Completion,
  index: number,
  chunks: number,
  chunk: (choice: ChunkChoice) => string,
): string[] {
  const delta = (delta: ChunkChoice['delta']) => chunk({ index, delta, logprobs: null, finish_reason: null });
  if (completion.kind === 'text') {
    const role = delta({ role: 'assistant', content: '', refusal: null });
    const pieces = splitPieces(completion.text, chunks);
    if (pieces.length === 0) return [role];
    return pieces.map((piece, k) => (k === 0 ? role : '') + delta({ content: piece }));
  }
  const groups: string[] = [];
  let prefix = delta({ role: 'assistant', content: null, refusal: null });
  completion.calls.forEach((call, callIndex) => {
    const start: ToolCallDelta = {
      index: callIndex,
      id: call.id,
      type: 'function',
      function: { name: call.name, arguments: '' },
    };
    prefix += delta({ tool_calls: [start] });
    for (const piece of splitPieces(call.arguments, chunks)) {
      groups.push(prefix + delta({ tool_calls: [{ index: callIndex, function: { arguments: piece } }] }));
      prefix = '';
    }
  });
  if (prefix !== '') groups.push(prefix);
  return groups;
}

// --- embeddings ---

export interface EmbeddingInput {
  model: string;
  /** Each input as a string key for the hash (token arrays as their JSON). */
  inputs: string[];
  promptTokens: number;
  dimensions: number;
  base64: boolean;
}

export function readEmbeddingRequest(body: unknown): EmbeddingInput | InvalidRequest {
  if (!isRecord(body)) return { invalid: 'the request body must be a JSON object', param: null };
  const { model, input, dimensions = 8, encoding_format: format } = body;
  if (typeof model !== 'string' || model === '')
    return { invalid: 'you must provide a model parameter', param: 'model' };
  if (!Number.isInteger(dimensions) || (dimensions as number) < 1 || (dimensions as number) > 4096) {
    return { invalid: "'dimensions' must be an integer between 1 and 4096", param: 'dimensions' };
  }
  if (format !== undefined && format !== 'float' && format !== 'base64') {
    return { invalid: "'encoding_format' must be 'float' or 'base64'", param: 'encoding_format' };
  }
  // A string or one token array is a single input; any other array is a list of inputs.
  let items: unknown[] = [];
  if (typeof input === 'string' || (Array.isArray(input) && typeof input[0] === 'number')) items = [input];
  else if (Array.isArray(input)) items = input;
  if (items.length === 0) return { invalid: "'input' must be a non-empty string or array", param: 'input' };
  const inputs: string[] = [];
  let promptTokens = 0;
  for (const item of items) {
    if (typeof item === 'string' && item !== '') {
      inputs.push(item);
      promptTokens += estimateTokens(item.length);
    } else if (Array.isArray(item) && item.length > 0 && item.every((token) => Number.isInteger(token))) {
      inputs.push(JSON.stringify(item));
      promptTokens += item.length;
    } else {
      return { invalid: "'input' must hold non-empty strings or arrays of token ids", param: 'input' };
    }
  }
  return { model, inputs, promptTokens, dimensions: dimensions as number, base64: format === 'base64' };
}

export function embeddingsBody(request: EmbeddingInput): string {
  const body: EmbeddingResponse = {
    object: 'list',
    data: request.inputs.map((input, index) => {
      const vector = embeddingVector(input, request.dimensions);
      return {
        object: 'embedding',
        index,
        embedding: request.base64
          ? Buffer.from(Float32Array.from(vector).buffer).toString('base64')
          : Array.from(vector),
      };
    }),
    model: request.model,
    usage: { prompt_tokens: request.promptTokens, total_tokens: request.promptTokens },
  };
  return JSON.stringify(body);
}

/** A unit vector that depends only on the text and the dimension count: FNV-1a seeds a small PRNG (mulberry32). */
export function embeddingVector(text: string, dimensions: number): Float64Array {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  let seed = hash >>> 0;
  const vector = new Float64Array(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const value = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
    vector[i] = value;
    norm += value * value;
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < dimensions; i++) vector[i] = vector[i]! / norm;
  return vector;
}

// --- models and errors ---

export function modelsBody(models: readonly string[], created: number): string {
  return JSON.stringify({
    object: 'list',
    data: models.map((id) => ({ id, object: 'model', created, owned_by: 'mock' })),
  });
}

const ERROR_TYPES: Record<number, { type: string; code: string | null }> = {
  400: { type: 'invalid_request_error', code: null },
  401: { type: 'invalid_request_error', code: 'invalid_api_key' },
  403: { type: 'invalid_request_error', code: 'unsupported_country_region_territory' },
  404: { type: 'invalid_request_error', code: 'not_found' },
  429: { type: 'requests', code: 'rate_limit_exceeded' },
};

export function openAiErrorBody(status: number, message: string, param: string | null = null): string {
  const known = ERROR_TYPES[status];
  const type = known?.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
  const body: OpenAiErrorBody = { error: { message, type, param, code: known?.code ?? null } };
  return JSON.stringify(body);
}

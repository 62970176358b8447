// The Anthropic side of the mock LLM: reads Messages API requests, renders the message object or its exact SSE
// event sequence (message_start … message_stop), the model list and errors in Anthropic's shapes.
import { anthropicErrorType } from '../providers/anthropic.js';
import { completionChars, estimateTokens, isRecord, splitPieces, sseEvent } from './script.js';
import type { ChatInput, Completion, InvalidRequest, ReplyPlan } from './script.js';

type StopReason = 'end_turn' | 'tool_use' | 'max_tokens';

type ContentBlock =
  { type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };

export interface AnthropicMessage {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: ContentBlock[];
  /** Null only in message_start; message_delta carries the reason. */
  stop_reason: StopReason | null;
  stop_sequence: null;
  usage: { input_tokens: number; output_tokens: number };
}

export function readMessagesRequest(body: unknown): ChatInput | InvalidRequest {
  if (!isRecord(body)) return { invalid: 'the request body must be a JSON object', param: null };
  const { model, messages, max_tokens: maxTokens, stream, system } = body;
  if (typeof model !== 'string' || model === '') return { invalid: 'model: Field required', param: 'model' };
  if (!Array.isArray(messages) || messages.length === 0) {
    return { invalid: 'messages: at least one message is required', param: 'messages' };
  }
  if (maxTokens === undefined) return { invalid: 'max_tokens: Field required', param: 'max_tokens' };
  if (!Number.isInteger(maxTokens) || (maxTokens as number) < 1) {
    return { invalid: 'max_tokens: must be a positive integer', param: 'max_tokens' };
  }
  let promptChars = blocksText(system).length;
  let lastUserText = '';
  let toolResults: string[] = [];
  for (const message of messages) {
    if (!isRecord(message)) return { invalid: 'messages: each message must be an object', param: 'messages' };
    const content = message['content'];
    promptChars += blocksText(content).length;
    if (message['role'] === 'assistant') toolResults = [];
    if (Array.isArray(content)) {
      for (const block of content) {
        if (isRecord(block) && block['type'] === 'tool_use') promptChars += JSON.stringify(block['input'] ?? {}).length;
        if (isRecord(block) && block['type'] === 'tool_result') {
          promptChars += blocksText(block['content']).length;
          toolResults.push(blocksText(block['content']));
        }
      }
    }
    // A user turn holding only tool results is not what the user said; the default reply echoes the last words.
    if (message['role'] === 'user' && hasText(content)) lastUserText = blocksText(content);
  }
  return {
    model,
    stream: stream === true,
    includeUsage: false,
    n: 1,
    maxTokens: maxTokens as number,
    lastUserText,
    toolResults,
    toolNames: ((body['tools'] as unknown[] | undefined) ?? [])
      .map((t) => (isRecord(t) ? String(t['name'] ?? '') : ''))
      .filter(Boolean),
    afterTools: toolResults.length > 0,
    promptChars,
  };
}

function hasText(content: unknown): boolean {
  if (typeof content === 'string') return true;
  return Array.isArray(content) && content.some((block) => isRecord(block) && block['type'] === 'text');
}

function blocksText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const texts: string[] = [];
  for (const block of content) {
    if (isRecord(block) && block['type'] === 'text' && typeof block['text'] === 'string') texts.push(block['text']);
  }
  return texts.join('\n');
}

function stopReason(completion: Completion): StopReason {
  if (completion.kind === 'tool_calls') return 'tool_use';
  return completion.truncated ? 'max_tokens' : 'end_turn';
}

function contentBlocks(completion: Completion): ContentBlock[] {
  if (completion.kind === 'text') return [{ type: 'text', text: completion.text }];
  return completion.calls.map((call) => ({ type: 'tool_use', id: call.id, name: call.name, input: call.input }));
}

function only(plan: ReplyPlan): Completion {
  const completion = plan.choices[0];
  if (completion === undefined) throw new TypeError('an Anthropic reply has exactly one completion');
  return completion;
}

export function messageBody(plan: ReplyPlan): string {
  const completion = only(plan);
  const message: AnthropicMessage = {
    id: plan.id,
    type: 'message',
    role: 'assistant',
    model: plan.model,
    content: contentBlocks(completion),
    stop_reason: stopReason(completion),
    stop_sequence: null,
    usage: { input_tokens: plan.promptTokens, output_tokens: estimateTokens(completionChars(completion)) },
  };
  return JSON.stringify(message);
}

/**
 * The SSE events of a streamed message, grouped by content chunk: message_start, then per content block
 * content_block_start, its deltas (text_delta or input_json_delta) and content_block_stop, then message_delta and
 * message_stop; a ping follows the first content_block_start. Delays and disconnects happen between groups.
 */
export function messageGroups(plan: ReplyPlan): string[] {
  const completion = only(plan);
  const event = (type: string, data: Record<string, unknown>) => sseEvent(type, JSON.stringify({ type, ...data }));
  const start: AnthropicMessage = {
    id: plan.id,
    type: 'message',
    role: 'assistant',
    model: plan.model,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: plan.promptTokens, output_tokens: 1 },
  };
  let prefix = event('message_start', { message: start });
  const groups: string[] = [];
  contentBlocks(completion).forEach((block, index) => {
    let pieces: string[];
    let emptyBlock: ContentBlock;
    let delta: (piece: string) => Record<string, unknown>;
    if (block.type === 'text') {
      pieces = splitPieces(block.text, plan.chunks);
      emptyBlock = { type: 'text', text: '' };
      delta = (text) => ({ type: 'text_delta', text });
    } else {
      pieces = splitPieces(JSON.stringify(block.input), plan.chunks);
      emptyBlock = { ...block, input: {} };
      delta = (json) => ({ type: 'input_json_delta', partial_json: json });
    }
    prefix += event('content_block_start', { index, content_block: emptyBlock });
    if (index === 0) prefix += event('ping', {});
    for (const piece of pieces) {
      groups.push(prefix + event('content_block_delta', { index, delta: delta(piece) }));
      prefix = '';
    }
    const stop = event('content_block_stop', { index });
    if (prefix !== '') prefix += stop;
    else groups[groups.length - 1] += stop;
  });
  const end =
    event('message_delta', {
      delta: { stop_reason: stopReason(completion), stop_sequence: null },
      usage: { output_tokens: estimateTokens(completionChars(completion)) },
    }) + event('message_stop', {});
  if (prefix !== '' || groups.length === 0) groups.push(prefix + end);
  else groups[groups.length - 1] += end;
  return groups;
}

export function anthropicModelsBody(models: readonly string[]): string {
  const createdAt = new Date(0).toISOString();
  return JSON.stringify({
    data: models.map((id) => ({ type: 'model', id, display_name: `${id} (mock)`, created_at: createdAt })),
    has_more: false,
    first_id: models[0] ?? null,
    last_id: models[models.length - 1] ?? null,
  });
}

export function anthropicErrorBody(status: number, message: string): string {
  return JSON.stringify({ type: 'error', error: { type: anthropicErrorType(status), message } });
}

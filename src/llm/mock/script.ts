// What a mock LLM answers: the script steps tests enqueue, and the planned completion that both wire formats
// (OpenAI, Anthropic) render, with the small text helpers they share.
import { randomBytes } from 'node:crypto';

export interface MockToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

/** One scripted answer; each chat request (not embeddings, not the model list) takes the next one. */
export type MockStep =
  | { kind: 'text'; text: string }
  | { kind: 'tool_calls'; calls: MockToolCall[] }
  /** Answers `status` with an error body in the API's own shape, plus `headers` (e.g. `retry-after`). */
  | { kind: 'error'; status: number; message?: string; headers?: Record<string, string> }
  /**
   * Destroys the connection: before any byte when `afterChunks` is 0 or absent; otherwise after that many content
   * chunks of a streamed reply (with the framing events around them), or after half of a non-streamed body.
   */
  | { kind: 'disconnect'; afterChunks?: number }
  /** Never answers; the request ends when the client goes away or the mock closes. */
  | { kind: 'hang' }
  /** Answers with the tool results it was given since its last turn: `tool results: <r1> | <r2>`. */
  | { kind: 'report_tool_results' };

/** What one choice of a reply says, independent of the wire format. */
export type Completion =
  | { kind: 'text'; text: string; truncated: boolean }
  | { kind: 'tool_calls'; calls: { id: string; name: string; arguments: string; input: Record<string, unknown> }[] };

/** What the mock reads from a chat request, whichever API it came in. */
export interface ChatInput {
  model: string;
  stream: boolean;
  /** OpenAI `stream_options.include_usage`. */
  includeUsage: boolean;
  /** Number of choices (OpenAI `n`; always 1 for Anthropic). */
  n: number;
  maxTokens: number | undefined;
  /** Text of the last user message, echoed by the default reply. */
  lastUserText: string;
  /** Tool results since the model's last turn, reported by a `report_tool_results` step. */
  toolResults: string[];
  /** Names of the tools the request offers. */
  toolNames: string[];
  /** The conversation ends with tool results (the model's turn after running tools). */
  afterTools: boolean;
  /** Characters of conversation text, for the prompt token estimate. */
  promptChars: number;
}

/** A request the API would refuse, with the offending parameter. */
export interface InvalidRequest {
  invalid: string;
  param: string | null;
}

/** Everything needed to render one reply in either wire format. */
export interface ReplyPlan {
  id: string;
  created: number;
  model: string;
  fingerprint: string;
  choices: Completion[];
  promptTokens: number;
  includeUsage: boolean;
  chunks: number;
}

/** A rough token count (four characters a token): usage numbers that grow with the text, nothing more. */
export function estimateTokens(chars: number): number {
  return Math.ceil(chars / 4);
}

export function completionChars(completion: Completion): number {
  if (completion.kind === 'text') return completion.text.length;
  let chars = 0;
  for (const call of completion.calls) chars += call.name.length + call.arguments.length;
  return chars;
}

/** The text reply, cut to `maxTokens` when the estimate exceeds it (finish reason `length` / `max_tokens`). */
export function textCompletion(text: string, maxTokens: number | undefined): Completion {
  if (maxTokens === undefined || estimateTokens(text.length) <= maxTokens)
    return { kind: 'text', text, truncated: false };
  return { kind: 'text', text: text.slice(0, safeCut(text, maxTokens * 4)), truncated: true };
}

export function toolCallsCompletion(calls: MockToolCall[], idPrefix: 'call_' | 'toolu_'): Completion {
  return {
    kind: 'tool_calls',
    calls: calls.map((call) => ({
      id: `${idPrefix}${randomBytes(12).toString('base64url')}`,
      name: call.name,
      arguments: JSON.stringify(call.arguments),
      input: call.arguments,
    })),
  };
}

/** Splits `text` into at most `count` non-empty pieces of nearly equal length, never inside a surrogate pair. */
export function splitPieces(text: string, count: number): string[] {
  if (text.length === 0) return [];
  const n = Math.max(1, Math.min(count, text.length));
  if (n === 1) return [text];
  const pieces: string[] = [];
  let start = 0;
  for (let i = 1; i <= n; i++) {
    const end = i === n ? text.length : safeCut(text, Math.round((text.length * i) / n));
    if (end > start) {
      pieces.push(text.slice(start, end));
      start = end;
    }
  }
  return pieces;
}

/** Moves a cut that would fall between the halves of a surrogate pair to after the pair. */
function safeCut(text: string, index: number): number {
  if (index <= 0 || index >= text.length) return Math.max(0, Math.min(index, text.length));
  const code = text.charCodeAt(index);
  return code >= 0xdc00 && code <= 0xdfff ? index + 1 : index;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Server-sent event framing; OpenAI sends bare `data:` lines, Anthropic names each event. */
export function sseData(json: string): string {
  return `data: ${json}\n\n`;
}

export function sseEvent(event: string, json: string): string {
  return `event: ${event}\ndata: ${json}\n\n`;
}

// Token usage read out of an LLM answer, plain or streamed, without parsing what passes through untouched.
import { safeJson } from '../wire/json.js';
import type { Usage } from './types.js';

function usageOf(value: unknown): Usage | undefined {
  const usage = (value as { usage?: Usage } | null)?.usage;
  return usage && typeof usage.prompt_tokens === 'number' ? usage : undefined;
}

/**
 * The `usage` object of a chat completion or embeddings answer, read without parsing the whole answer: it is the
 * last top-level field in practice, and the answer itself passes through untouched.
 */
export function usageIn(text: string): Usage | undefined {
  const at = text.lastIndexOf('"usage"');
  if (at < 0) return undefined;
  const start = text.indexOf('{', at);
  if (start < 0) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123) depth++;
    else if (c === 125 && --depth === 0) return usageOf({ usage: safeJson(text.slice(start, i + 1)) });
  }
  return undefined;
}

/** The usage of an OpenAI stream: the `usage` of the last data line that has one. */
export function usageFromStream(text: string): Usage | undefined {
  if (text === '') return undefined;
  let usage: Usage | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: {') || !line.includes('"usage"')) continue;
    usage = usageOf(safeJson(line.slice(6))) ?? usage;
  }
  return usage;
}

// The text that tools are ranked against: the recent user and assistant turns of a chat, newest last.

export interface QueryMessage {
  role: string;
  content?: unknown;
}

export interface ConversationQueryOptions {
  /** How many of the latest user/assistant messages count. Default 6. */
  maxMessages?: number;
  /** Longer text keeps its end, where the newest turn is. Default 2000. */
  maxChars?: number;
}

export function conversationQuery(messages: readonly QueryMessage[], options: ConversationQueryOptions = {}): string {
  const maxMessages = options.maxMessages ?? 6;
  const maxChars = options.maxChars ?? 2000;
  const texts: string[] = [];
  // Tool results and system prompts say little about what the user wants next, and can be long.
  for (let i = messages.length - 1; i >= 0 && texts.length < maxMessages; i--) {
    const message = messages[i];
    if (message === undefined || (message.role !== 'user' && message.role !== 'assistant')) continue;
    const text = textOf(message.content).trim();
    if (text !== '') texts.push(text);
  }
  const joined = texts.reverse().join('\n');
  return joined.length > maxChars ? joined.slice(joined.length - maxChars) : joined;
}

/** A string, or the `text` parts of an OpenAI content array; anything else has no text. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const parts: string[] = [];
  for (const part of content as unknown[]) {
    if (typeof part === 'object' && part !== null && 'text' in part && typeof part.text === 'string') {
      parts.push(part.text);
    }
  }
  return parts.join(' ');
}

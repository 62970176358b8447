import { describe, expect, it } from 'vitest';
import { conversationQuery } from './conversation-query.js';

describe('conversationQuery', () => {
  it('joins the text of the latest user and assistant messages, oldest first, leaving out system and tool', () => {
    const query = conversationQuery([
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Plan my trip to Oslo.' },
      { role: 'assistant', content: null, tool_calls: [] } as { role: string; content: null },
      { role: 'tool', content: '{"flights": []}' },
      { role: 'assistant', content: [{ type: 'text', text: 'No flights found.' }] },
      { role: 'user', content: [{ type: 'text', text: 'What about the weather' }, { type: 'image_url' }] },
    ]);
    expect(query).toBe('Plan my trip to Oslo.\nNo flights found.\nWhat about the weather');
  });

  it('keeps only the last maxMessages, and the end of text longer than maxChars', () => {
    const messages = ['one', 'two', 'three'].map((content) => ({ role: 'user', content }));
    expect(conversationQuery(messages, { maxMessages: 2 })).toBe('two\nthree');
    expect(conversationQuery(messages, { maxChars: 7 })).toBe('o\nthree');
    expect(conversationQuery([])).toBe('');
  });
});

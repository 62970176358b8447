import { describe, expect, it } from 'vitest';
import { usageIn } from './usage.js';

describe('usageIn', () => {
  it('reads the usage object of an answer without parsing the rest', () => {
    const answer = JSON.stringify({
      id: 'x',
      choices: [{ message: { content: 'a "usage": {"prompt_tokens": 99} inside text' } }],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, prompt_tokens_details: { cached_tokens: 1 } },
    });
    expect(usageIn(answer)).toEqual({
      prompt_tokens: 3,
      completion_tokens: 4,
      total_tokens: 7,
      prompt_tokens_details: { cached_tokens: 1 },
    });
  });

  it('returns undefined without usage or for a broken body', () => {
    expect(usageIn('{"choices": []}')).toBeUndefined();
    expect(usageIn('{"usage": {"prompt_tokens": 1')).toBeUndefined();
  });
});

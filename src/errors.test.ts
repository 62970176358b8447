import { describe, expect, it } from 'vitest';
import { ERRORS, McplexError } from './errors.js';
import { toOpenAiError } from './llm/openai-errors.js';

describe('the error registry', () => {
  it('gives every code one status, and the OpenAI type that status implies', () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      const error = new McplexError(code as keyof typeof ERRORS, 'x');
      expect(error.status, code).toBe(spec.status);
      expect(toOpenAiError(error).body.error.type, code).toBe(spec.openai);
      if (spec.status >= 500) expect(spec.openai, code).toBe('server_error');
    }
  });

  it("passes a backend's failure on with the backend's status and error", () => {
    const error = new McplexError('LLM_FAILED', 'slow down', {
      upstreamStatus: 429,
      data: { error: { message: 'slow down', type: 'rate_limit_error', param: null, code: 'rate_limited' } },
    });
    expect(toOpenAiError(error)).toEqual({
      status: 429,
      body: { error: { message: 'slow down', type: 'rate_limit_error', param: null, code: 'rate_limited' } },
    });
  });

  it('hides the message of an unexpected failure', () => {
    expect(toOpenAiError(new Error('secret internals'))).toEqual({
      status: 500,
      body: { error: { message: 'internal error', type: 'server_error', param: null, code: null } },
    });
  });
});

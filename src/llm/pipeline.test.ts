import { describe, expect, it } from 'vitest';
import { ANONYMOUS } from '../policy/auth/keys.js';
import { compose } from './pipeline.js';
import type { LlmContext, Stage } from './pipeline.js';
import { bufferSink } from './sink.js';

function context(): LlmContext {
  return {
    route: 'chat',
    body: { model: 'm', messages: [{ role: 'user', content: 'hi' }] },
    principal: ANONYMOUS,
    requested: 'm',
    requestId: 't-1',
    started: 0,
    sink: bufferSink(),
    setHeader: () => {},
  };
}

describe('compose', () => {
  it('runs each stage before the next and its after-part once the later stages are done', async () => {
    const seen: string[] = [];
    const stage =
      (name: string): Stage =>
      async (_ctx, next) => {
        seen.push(`${name} in`);
        await next();
        seen.push(`${name} out`);
      };
    await compose([stage('a'), stage('b'), stage('c')])(context());
    expect(seen).toEqual(['a in', 'b in', 'c in', 'c out', 'b out', 'a out']);
  });

  it('stops at a stage that answers without calling next', async () => {
    const seen: string[] = [];
    const answers: Stage = async (ctx) => {
      seen.push('answers');
      ctx.usage = { prompt_tokens: 1, completion_tokens: 0, total_tokens: 1 };
    };
    const never: Stage = async () => void seen.push('never');
    const ctx = context();
    await compose([answers, never])(ctx);
    expect(seen).toEqual(['answers']);
    expect(ctx.usage?.prompt_tokens).toBe(1);
  });

  it('hands a later stage the sink an earlier one put in place, and still settles when a later stage throws', async () => {
    const replaced = bufferSink();
    const settled: string[] = [];
    const settle: Stage = async (_ctx, next) => {
      try {
        await next();
      } finally {
        settled.push('released');
      }
    };
    const swap: Stage = async (ctx, next) => {
      ctx.sink = replaced;
      await next();
    };
    const fails: Stage = async (ctx) => {
      expect(ctx.sink).toBe(replaced);
      throw new Error('backend gone');
    };
    await expect(compose([settle, swap, fails])(context())).rejects.toThrow('backend gone');
    expect(settled).toEqual(['released']);
  });
});

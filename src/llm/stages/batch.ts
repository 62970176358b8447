// Embeddings of plain text inputs join a micro-batch for their model: one routed request carries the inputs of
// every caller in the window, and each caller's answer is assembled from its share.
import { errorMessage } from '../../errors.js';
import { createEmbeddingBatcher } from '../batching/embedding-batcher.js';
import { bufferedError, openAiError } from '../openai-errors.js';
import type { Stage } from '../pipeline.js';
import type { Router } from '../router.js';
import { bufferSink, sinkJson } from '../sink.js';
import type { OpenAiErrorBody } from '../types.js';

export interface BatchStageOptions {
  windowMs: number;
  maxInputs: number;
  router: Router;
}

export interface BatchStage {
  stage: Stage;
  /** Sends what waits in the current windows now. */
  flush(): void;
}

export function createBatchStage(options: BatchStageOptions): BatchStage {
  const { router } = options;
  const batcher = createEmbeddingBatcher({
    windowMs: options.windowMs,
    maxInputs: options.maxInputs,
    send: async (model, inputs, extra) => {
      // One routed request for the whole batch, answered into a buffer and split among the callers.
      const sink = bufferSink();
      await router.routeRequest({
        route: 'embeddings',
        body: { ...extra, model, input: inputs },
        sink,
        started: performance.now(),
        requestId: 'batch',
        requested: model,
        primary: router.routes.get(model)!,
      });
      const text = sink.text();
      if (sink.status !== 200) throw new BatchFailure(sink.status ?? 502, bufferedError(text));
      const answer = JSON.parse(text) as {
        data: { index: number; embedding: number[] | string }[];
        usage?: { prompt_tokens?: number };
      };
      const vectors = new Array<number[] | string>(inputs.length);
      for (const item of answer.data) vectors[item.index] = item.embedding;
      return { vectors, promptTokens: answer.usage?.prompt_tokens ?? 0 };
    },
  });

  const stage: Stage = async (ctx, next) => {
    if (ctx.route !== 'embeddings' || !batchable(ctx.body) || !ctx.primary) return next();
    const { model: _model, input, ...extra } = ctx.body;
    const inputs = typeof input === 'string' ? [input] : (input as string[]);
    const model = ctx.primary.name;
    try {
      const parts = await Promise.all(inputs.map((text) => batcher.embed(model, text, extra)));
      const promptTokens = parts.reduce((n, p) => n + p.promptTokens, 0);
      ctx.usage = { prompt_tokens: promptTokens, completion_tokens: 0, total_tokens: promptTokens };
      sinkJson(ctx.sink, 200, {
        object: 'list',
        data: parts.map((p, index) => ({ object: 'embedding', index, embedding: p.vector })),
        model: ctx.requested,
        usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
      });
    } catch (error) {
      const failure = error instanceof BatchFailure ? error : undefined;
      sinkJson(ctx.sink, failure?.status ?? 502, failure?.body ?? openAiError(502, errorMessage(error)));
    }
  };
  return { stage, flush: () => batcher.flush() };
}

/** A batch's upstream error, handed to every caller in the batch. */
class BatchFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: OpenAiErrorBody,
  ) {
    super(body.error.message);
  }
}

/** Plain text inputs can be batched; token arrays go on their own. */
function batchable(body: Record<string, unknown>): boolean {
  const input = body.input;
  return (
    typeof input === 'string' || (Array.isArray(input) && input.length > 0 && input.every((i) => typeof i === 'string'))
  );
}

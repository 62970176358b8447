// The gate every LLM request passes before anything answers it, and what is owed afterwards: the model exists and
// is in the caller's scope and its limits admit the request; once the answer is done the admission is released
// and the usage recorded, whatever happened in between.
import type { Metrics } from '../../metrics.js';
import { ANONYMOUS } from '../../policy/auth/keys.js';
import type { Principal } from '../../policy/auth/keys.js';
import { scopeCheck } from '../../policy/auth/scopes.js';
import { estimateTokens } from '../../policy/limits/rate-limiter.js';
import type { Admission } from '../../policy/limits/rate-limiter.js';
import type { Policy } from '../../policy/policy.js';
import { openAiError } from '../openai-errors.js';
import type { Stage } from '../pipeline.js';
import { OVERHEAD_HEADER, overheadSince } from '../overhead.js';
import { metricRouteOf } from '../router.js';
import type { MetricRoute, ModelRoute } from '../router.js';
import { sinkJson } from '../sink.js';
import type { OpenAiErrorBody, Usage } from '../types.js';
import type { RequestLogEntry } from '../../store/store.js';
import { McplexError } from '../../errors.js';
import type { LlmContext } from '../pipeline.js';

/** Where each request's outcome is noted for the recent-requests log (buffered: adding never waits). */
export interface RequestNotes {
  add(entry: Omit<RequestLogEntry, 'replica'>): void;
}

export interface GateStageOptions {
  /** Configured models by every public name, aliases included. */
  byName: ReadonlyMap<string, ModelRoute>;
  metrics: Metrics;
  /** Keys, scopes, limits and usage; without it every request is anonymous and unlimited. */
  policy?: Policy | undefined;
  requestLog?: RequestNotes | undefined;
}

type Admitted = Extract<Admission, { ok: true }>;

/** Why a request may not go ahead, as the OpenAI error to answer with. */
interface Refusal {
  status: number;
  body: OpenAiErrorBody;
  headers: Record<string, string>;
}

export function createGateStage(options: GateStageOptions): Stage {
  const { byName, metrics, policy, requestLog } = options;

  /**
   * Notes the request in the log with the status the client got: the one sent once headers went out, 499 when
   * the client left first, else the failure's (`thrown`) or the sink's (an internal caller).
   */
  function note(ctx: LlmContext, label: MetricRoute, thrown: number | undefined, usage: Usage | undefined): void {
    const res = ctx.http?.res;
    const status = res?.headersSent
      ? res.statusCode
      : ctx.sink.gone
        ? 499
        : (thrown ?? ('status' in ctx.sink ? (ctx.sink.status as number | undefined) : undefined) ?? 200);
    requestLog?.add({
      at: Date.now(),
      route: label,
      subject: ctx.principal === ANONYMOUS ? null : ctx.principal.id,
      target: ctx.requested,
      status: String(status),
      latencyMs: performance.now() - ctx.started,
      promptTokens: usage?.prompt_tokens ?? 0,
      completionTokens: usage?.completion_tokens ?? 0,
    });
  }

  /** Returns the model's route and the admission to release when the answer is done, or why not. */
  async function admit(
    label: MetricRoute,
    body: Record<string, unknown>,
    requested: string,
    principal: Principal,
  ): Promise<{ primary: ModelRoute; admission: Admitted | undefined } | Refusal> {
    const primary = byName.get(requested);
    const refuse = (status: number, error: OpenAiErrorBody, headers: Record<string, string> = {}): Refusal => {
      // A name no model has is the caller's text: as a label it would add a metric series per made-up name.
      const model = primary ? requested : '';
      metrics.llmRequests.inc({ route: label, model, deployment: '', status: String(status) });
      return { status, body: error, headers };
    };
    if (!primary) {
      const message = `The model \`${requested}\` does not exist`;
      return refuse(404, openAiError(404, message, 'invalid_request_error', 'model_not_found', 'model'));
    }
    if (!scopeCheck(principal.scopes).model(requested, primary.name)) {
      const message = `${principal.kind === 'server' ? `MCP server "${principal.name}"` : 'this API key'} may not use model "${requested}"`;
      return refuse(403, openAiError(403, message, 'permission_error', 'model_not_allowed', 'model'));
    }
    const { rpm, tpm, maxConcurrent } = principal.limits;
    const admission =
      policy && (rpm !== undefined || tpm !== undefined || maxConcurrent !== undefined)
        ? await policy.limiter.admit(principal, tpm !== undefined ? estimateTokens(body) : 0)
        : undefined;
    if (admission && !admission.ok) {
      const code = admission.limit === 'concurrency' ? 'concurrency_limit_exceeded' : 'rate_limit_exceeded';
      return refuse(429, openAiError(429, admission.message, admission.limit, code), admission.headers);
    }
    return { primary, admission };
  }

  /** Releases the admission and adds the usage to the principal's account. */
  function settle(principal: Principal, requested: string, admission: Admitted | undefined, usage: Usage | undefined) {
    admission?.release(usage ? usage.prompt_tokens + (usage.completion_tokens ?? 0) : undefined);
    if (policy && principal !== ANONYMOUS) {
      policy.usage.add(principal.id, requested, usage?.prompt_tokens ?? 0, usage?.completion_tokens ?? 0);
    }
  }

  return async (ctx, next) => {
    const label = metricRouteOf(ctx);
    const passed = await admit(label, ctx.body, ctx.requested, ctx.principal);
    if ('status' in passed) {
      for (const [name, value] of Object.entries(passed.headers)) ctx.setHeader(name, value);
      ctx.setHeader(OVERHEAD_HEADER, overheadSince(ctx.started));
      sinkJson(ctx.sink, passed.status, passed.body);
      if (requestLog) note(ctx, label, passed.status, undefined);
      return;
    }
    const { primary, admission } = passed;
    if (admission) for (const [name, value] of Object.entries(admission.headers)) ctx.setHeader(name, value);
    ctx.primary = primary;
    // A failure thrown here is answered later (by the /v1 front, or the caller inside mcplex): its status is noted.
    let thrown: number | undefined;
    try {
      await next();
    } catch (error) {
      thrown = error instanceof McplexError ? error.status : 500;
      throw error;
    } finally {
      settle(ctx.principal, ctx.requested, admission, ctx.usage);
      if (requestLog) note(ctx, label, thrown, ctx.usage);
    }
  };
}

// The policies every LLM request passes before it is routed, and what is owed after it: the model exists and is in
// the caller's scope and its limits admit the request; afterwards the admission is released and the usage recorded.
import type { Metrics } from '../metrics.js';
import { ANONYMOUS } from '../policy/auth/keys.js';
import type { Principal } from '../policy/auth/keys.js';
import { scopeCheck } from '../policy/auth/scopes.js';
import { estimateTokens } from '../policy/limits/rate-limiter.js';
import type { Admission } from '../policy/limits/rate-limiter.js';
import type { Policy } from '../policy/policy.js';
import { openAiError } from './openai-errors.js';
import type { ModelRoute, Route } from './router.js';
import type { OpenAiErrorBody, Usage } from './types.js';

/** Why a request may not go ahead, as the OpenAI error to answer with. */
export interface Refusal {
  status: number;
  body: OpenAiErrorBody;
  headers: Record<string, string>;
}

export type Admitted = Extract<Admission, { ok: true }>;

/** A request that may go ahead: its model's route, and the admission to release when the answer is done. */
export interface Passed {
  primary: ModelRoute;
  admission: Admitted | undefined;
}

export interface PolicyGate {
  gate(route: Route, body: Record<string, unknown>, principal: Principal): Promise<Passed | Refusal>;
  settle(principal: Principal, requested: string, admission: Admitted | undefined, usage: Usage | undefined): void;
}

export interface PolicyGateOptions {
  /** Configured models by every public name, aliases included. */
  byName: ReadonlyMap<string, ModelRoute>;
  metrics: Metrics;
  /** Keys, scopes, limits and usage; without it every request is anonymous and unlimited. */
  policy?: Policy;
}

export function createPolicyGate(options: PolicyGateOptions): PolicyGate {
  const { byName, metrics } = options;
  /**
   * The policy gate of a validated request: its model exists and is in the principal's scope, and its limits
   * admit it. Returns the model's route and the admission to release when the answer is done.
   */
  async function gate(route: Route, body: Record<string, unknown>, principal: Principal): Promise<Passed | Refusal> {
    const requested = body.model as string;
    const primary = byName.get(requested);
    const refuse = (status: number, error: OpenAiErrorBody, headers: Record<string, string> = {}): Refusal => {
      // A name no model has is the caller's text: as a label it would add a metric series per made-up name.
      metrics.llmRequests.inc({ route, model: primary ? requested : '', deployment: '', status: String(status) });
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
      options.policy && (rpm !== undefined || tpm !== undefined || maxConcurrent !== undefined)
        ? await options.policy.limiter.admit(principal, tpm !== undefined ? estimateTokens(body) : 0)
        : undefined;
    if (admission && !admission.ok) {
      const code = admission.limit === 'concurrency' ? 'concurrency_limit_exceeded' : 'rate_limit_exceeded';
      return refuse(429, openAiError(429, admission.message, admission.limit, code), admission.headers);
    }
    return { primary, admission };
  }

  /** Releases the admission and adds the usage to the principal's account. */
  function settle(
    principal: Principal,
    requested: string,
    admission: Admitted | undefined,
    usage: Usage | undefined,
  ): void {
    admission?.release(usage ? usage.prompt_tokens + (usage.completion_tokens ?? 0) : undefined);
    if (options.policy && principal !== ANONYMOUS) {
      options.policy.usage.add(principal.id, requested, usage?.prompt_tokens ?? 0, usage?.completion_tokens ?? 0);
    }
  }

  return { gate, settle };
}

// OpenAI's error shape for every /v1 answer mcplex makes itself, and the translation of a backend's error into it.
import { ERRORS, McplexError, errorMessage } from '../errors.js';
import { safeJson } from '../wire/json.js';
import type { AuthFailure } from '../policy/auth/keys.js';
import type { OpenAiErrorBody } from './types.js';

export function openAiError(status: number, message: string, type?: string, code?: string | null, param?: string) {
  const kind =
    type ??
    (status === 401
      ? 'authentication_error'
      : status === 403
        ? 'permission_error'
        : status === 404
          ? 'not_found_error'
          : status === 429
            ? 'rate_limit_error'
            : status >= 500
              ? 'server_error'
              : 'invalid_request_error');
  return { error: { message, type: kind, param: param ?? null, code: code ?? null } } satisfies OpenAiErrorBody;
}

/**
 * Any error as OpenAI's error JSON and the status to answer with, in one place for /v1 and /admin: a backend's own
 * error as it came (LLM_FAILED), a McplexError by the registry (its status, type, `code` and `param` data), and
 * anything else as `fallback` (500: a failure of mcplex) with its message hidden unless `fallback` is a 502.
 */
export function toOpenAiError(error: unknown, fallback = 500): { status: number; body: OpenAiErrorBody } {
  if (!(error instanceof McplexError)) {
    return { status: fallback, body: openAiError(fallback, fallback === 502 ? errorMessage(error) : 'internal error') };
  }
  const passed = error.data?.error as OpenAiErrorBody['error'] | undefined;
  if (error.code === 'LLM_FAILED' && passed) return { status: error.status, body: { error: passed } };
  const field = (name: string) => (typeof error.data?.[name] === 'string' ? (error.data[name] as string) : undefined);
  return {
    status: error.status,
    body: openAiError(error.status, error.message, ERRORS[error.code].openai, field('code') ?? null, field('param')),
  };
}

/** The error in a failed answer mcplex buffered from its own router (which always writes OpenAI's error shape). */
export function bufferedError(text: string): OpenAiErrorBody {
  const parsed = safeJson(text) as OpenAiErrorBody | undefined;
  return parsed?.error ? parsed : openAiError(502, text || 'no answer');
}

/** A backend's error answer as OpenAI's error shape (its own message when it sent one). */
export function asOpenAiError(status: number, text: string): OpenAiErrorBody {
  try {
    const parsed = JSON.parse(text) as Partial<OpenAiErrorBody>;
    if (parsed.error && typeof parsed.error.message === 'string') {
      return openAiError(
        status,
        parsed.error.message,
        parsed.error.type,
        parsed.error.code,
        parsed.error.param ?? undefined,
      );
    }
  } catch {
    // Not JSON: the text itself is the best message there is.
  }
  return openAiError(status, text.slice(0, 500) || `the backend answered HTTP ${status}`);
}

/** An LLM request refused or failed, for callers inside mcplex; `data.error` is the OpenAI error body. */
export function llmFailure(status: number, body: OpenAiErrorBody): McplexError {
  return new McplexError('LLM_FAILED', body.error.message, { upstreamStatus: status, data: { error: body.error } });
}

/** OpenAI's answer to a missing or wrong key. */
export function unauthorized(reason: AuthFailure): OpenAiErrorBody {
  const message =
    reason === 'missing'
      ? 'You did not provide an API key. Send it as "Authorization: Bearer <key>".'
      : reason === 'revoked'
        ? 'This API key has been revoked.'
        : reason === 'expired'
          ? 'This API key has expired.'
          : 'Incorrect API key provided.';
  return openAiError(401, message, 'invalid_request_error', 'invalid_api_key');
}

/** The message of a stream that broke after it began. */
export function streamFailure(error: unknown): string {
  return `the backend stream broke: ${errorMessage(error)}`;
}

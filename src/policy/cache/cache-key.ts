// Which /v1 requests the response cache may answer, and the key of their answer: a SHA-256 over the request with
// its keys sorted and the fields that do not change the answer dropped, so that equal questions meet.
import { hash } from 'node:crypto';

export type CacheRoute = 'chat' | 'embeddings';

/**
 * Top-level fields that change how an answer is delivered, billed or attributed, never what it says:
 * - `stream`, `stream_options`: a stream and a plain answer share a key (the cache converts between them);
 * - `user`, `safety_identifier`, `metadata`: who asks, for abuse tracking and dashboards;
 * - `store`: whether OpenAI keeps the completion for distillation/evals;
 * - `service_tier`: latency and price class (a hit echoes the tier of the answer that was cached);
 * - `prompt_cache_key`, `prompt_cache_retention`: routing hints for the provider's own prompt cache.
 * Everything else (model, messages, tools, temperature, seed, n, logprobs, response_format, …) is kept, unknown
 * fields included: a field we do not know might change the answer.
 */
export const IGNORED_FIELDS: ReadonlySet<string> = new Set([
  'stream',
  'stream_options',
  'user',
  'safety_identifier',
  'metadata',
  'store',
  'service_tier',
  'prompt_cache_key',
  'prompt_cache_retention',
]);

/**
 * The cache key of a request: SHA-256 hex of the namespace, the route and the normalised body (keys sorted at
 * every depth, `IGNORED_FIELDS` dropped). The namespace separates whoever must not share answers (an API key or
 * tenant id; '' for one shared cache). Top-level fields that are null count as absent (OpenAI reads null as "the
 * default"). The body's `model` is taken as given: pass the resolved model name if aliases should share entries.
 */
export function cacheKey(route: CacheRoute, body: Record<string, unknown>, namespace: string): string {
  let text = `${canonical(namespace)}${route}{`;
  for (const name of Object.keys(body).sort()) {
    const value = body[name];
    if (value === undefined || value === null || IGNORED_FIELDS.has(name)) continue;
    text += canonical(name) + canonical(value);
  }
  return hash('sha256', `${text}}`, 'hex');
}

/**
 * The normalised request as hashed: not JSON but a prefix code (a type letter, strings with their length in front,
 * object keys sorted), which says the same and is unambiguous, without escaping every string again the way
 * JSON.stringify does: on a 100 KB conversation that makes the key more than twice as fast. Strings with lone
 * surrogates (which UTF-8 cannot carry apart) are written as JSON.
 */
function canonical(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return wellFormed(value) ? `s${value.length}:${value}` : `j${JSON.stringify(value)}`;
    case 'number':
      return `n${value};`;
    case 'boolean':
      return value ? 't' : 'f';
    case 'object': {
      if (value === null) return 'z';
      if (Array.isArray(value)) {
        let text = '[';
        for (const item of value as unknown[]) text += canonical(item);
        return `${text}]`;
      }
      const record = value as Record<string, unknown>;
      let text = '{';
      for (const name of Object.keys(record).sort()) {
        const item = record[name];
        if (item !== undefined) text += canonical(name) + canonical(item);
      }
      return `${text}}`;
    }
    default:
      // undefined (in an array) and what JSON cannot hold: as JSON.stringify would write them, null.
      return 'z';
  }
}

/** `String.prototype.isWellFormed` (Node 20; not in the ES2023 lib this project compiles against). */
function wellFormed(text: string): boolean {
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed();
}

export type Cacheability = 'yes' | 'no' | 'bypass';

/**
 * Whether the cache may answer (and then keep the answer of) a request:
 * - `bypass`: the client asked for a fresh answer (`x-mcplex-cache: bypass`, or `cache-control: no-cache` /
 *   `no-store`): neither read nor write, and say so in the response;
 * - `yes`: `x-mcplex-cache: force`, every embeddings request, and chat requests whose answer is deterministic:
 *   `temperature: 0`, or a `seed` with a single choice (n > 1 at a temperature above 0, OpenAI's default being 1,
 *   asks for different answers);
 * - `no`: anything else.
 * `x-mcplex-cache` wins over `cache-control`. The route comes from the body (`messages` means chat) unless given.
 */
export function cacheable(
  body: Record<string, unknown>,
  headers: { [name: string]: string | string[] | undefined },
  route: CacheRoute = Array.isArray(body.messages) ? 'chat' : 'embeddings',
): Cacheability {
  const mode = headerTokens(headers['x-mcplex-cache']);
  if (mode.includes('bypass')) return 'bypass';
  if (mode.includes('force')) return 'yes';
  const control = headerTokens(headers['cache-control']);
  if (control.includes('no-cache') || control.includes('no-store')) return 'bypass';
  if (route === 'embeddings') return 'yes';
  const { temperature, seed, n } = body;
  if (temperature === 0) return 'yes';
  const choices = typeof n === 'number' ? n : 1;
  if (typeof seed === 'number' && choices <= 1) return 'yes';
  return 'no';
}

/** The comma-separated tokens of a header, lower-cased, without parameters' whitespace. */
function headerTokens(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text === '') return [];
  return text
    .toLowerCase()
    .split(',')
    .map((token) => token.trim());
}

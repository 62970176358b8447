// The `llm` section: public model names, each served by one or more deployments (a provider, a base URL, a key
// and the backend's own model name), plus aliases, fallbacks and the router's retry and breaker settings.
import * as z from 'zod';

export const PROVIDERS = ['openai', 'anthropic'] as const;
export const STRATEGIES = ['weighted', 'least-in-flight', 'latency'] as const;

const ms = (what: string) =>
  z.number().int(`${what} must be a whole number of milliseconds`).positive(`${what} must be > 0`);

/** A model's name or alias: usage reports name MCP tool calls `mcp:<server>/<tool>`, so no model may. */
const modelName = z
  .string()
  .min(1)
  .refine((name) => !name.startsWith('mcp:'), 'names starting with "mcp:" are kept for MCP tool calls in usage');

const deploymentSchema = z.strictObject({
  provider: z.enum(PROVIDERS),
  /** Where the API lives, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1; defaults per provider. */
  baseUrl: z.url({ protocol: /^https?$/, error: 'must be a valid http:// or https:// URL' }).optional(),
  apiKey: z.string().optional(),
  /** The backend's own model name. */
  model: z.string().min(1, 'model must not be empty'),
  weight: z.number().positive('weight must be > 0').default(1),
  maxConcurrent: z.number().int('maxConcurrent must be an integer').positive('maxConcurrent must be > 0').default(256),
  /**
   * The backend's own budgets, per minute, for every replica together (counted in Redis when configured, else in
   * the store): a deployment over one is passed over like a busy one; when all are, the client gets 429.
   */
  rpm: z.number().int('rpm must be an integer').positive('rpm must be > 0').optional(),
  tpm: z.number().int('tpm must be an integer').positive('tpm must be > 0').optional(),
  headers: z.record(z.string(), z.string()).default({}),
  timeouts: z
    .strictObject({
      connect: ms('connect').default(5_000),
      /** Until the response starts (non-streaming) or its first chunk arrives (streaming). */
      firstToken: ms('firstToken').default(60_000),
      total: ms('total').default(600_000),
    })
    .prefault({}),
  /** Anthropic requires max_tokens; this one applies when the client sets none. */
  defaultMaxTokens: z.number().int().positive().default(4096),
});

const modelSchema = z.strictObject({
  deployments: z.array(deploymentSchema).min(1, 'a model needs at least one deployment'),
  strategy: z.enum(STRATEGIES).default('latency'),
  aliases: z.array(modelName).default([]),
  /** Other public model names to try, in order, when every deployment of this one failed. */
  fallbacks: z.array(z.string().min(1)).default([]),
});

export const llmSchema = z
  .strictObject({
    models: z.record(modelName, modelSchema).default({}),
    retries: z
      .strictObject({
        /** Further attempts after the first, across deployments, while nothing has reached the client. */
        attempts: z.number().int().min(0, 'attempts must be >= 0').default(2),
        initialDelayMs: z.number().int().min(0).default(50),
        maxDelayMs: z.number().int().min(0).default(2_000),
        /** A longer retry-after than this is not waited for: the error goes to the client. */
        maxRetryAfterMs: z.number().int().min(0).default(10_000),
      })
      .prefault({}),
    breaker: z
      .strictObject({
        /** Consecutive failures that open a deployment's circuit. */
        failures: z.number().int().positive().default(5),
        /** How long an open circuit stays open before one probe request is let through. */
        cooldownMs: z.number().int().positive().default(30_000),
      })
      .prefault({}),
    /** Silence on a started stream after which a keep-alive comment is sent. */
    keepAliveMs: z.number().int().positive().default(15_000),
    cache: z
      .strictObject({
        /** Deterministic requests (temperature 0 or a seed; any with `x-mcplex-cache: force`) are answered once. */
        enabled: z.boolean().default(true),
        ttlMs: z.number().int().positive().default(300_000),
        /**
         * `memory`: an LRU bounded by `maxBytes` in this process; `store`: the configured store; `redis`: the
         * configured Redis (shared by every replica on it).
         */
        store: z.enum(['memory', 'store', 'redis']).default('memory'),
        maxBytes: z
          .number()
          .int()
          .positive()
          .default(64 * 1024 * 1024),
        /** One cache for all keys instead of one per key. */
        shared: z.boolean().default(false),
      })
      .prefault({}),
    batching: z
      .strictObject({
        /** Single embedding requests arriving within this window go upstream as one; 0 turns batching off. */
        windowMs: z.number().int().min(0).default(2),
        /** A batch goes as soon as it has this many inputs; larger ones are split. */
        maxInputs: z.number().int().positive().default(64),
      })
      .prefault({}),
  })
  .superRefine((llm, ctx) => {
    const names = new Map<string, string>();
    for (const [name, model] of Object.entries(llm.models)) {
      for (const alias of [name, ...model.aliases]) {
        const owner = names.get(alias);
        if (owner !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['models', name],
            message: `model name "${alias}" is already used by "${owner}"`,
          });
        } else names.set(alias, name);
      }
    }
    for (const [name, model] of Object.entries(llm.models)) {
      model.fallbacks.forEach((fallback, i) => {
        if (!names.has(fallback)) {
          ctx.addIssue({
            code: 'custom',
            path: ['models', name, 'fallbacks', i],
            message: `unknown fallback model "${fallback}"`,
          });
        }
      });
    }
  });

export type LlmConfig = z.infer<typeof llmSchema>;
export type ModelConfig = LlmConfig['models'][string];
export type DeploymentConfig = ModelConfig['deployments'][number];

export const DEFAULT_BASE_URL: Record<DeploymentConfig['provider'], string> = {
  openai: 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com/v1',
};

// The mcplex configuration schema: one zod schema with defaults, strict objects everywhere,
// and a normalised server shape (`transport` discriminant) for downstream code.
import * as z from 'zod';
import { llmSchema } from './llm-schema.js';

/** Server keys and tool-name prefixes: they end up in tool names, so keep them short and plain. */
export const SERVER_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const UNPREFIXED_OR_KEY = /^$|^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const SERVER_KEY_RULE = 'must be 1-32 letters, digits, "_" or "-", starting with a letter or digit';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Run a refinement whenever the value is an object, even if some of its fields failed (so every problem is reported). */
const whenObject = { when: (payload: { value: unknown }) => isRecord(payload.value) };

/** An OAuth issuer's URLs: HTTPS, or HTTP on a loopback host (development). */
/** A 32-byte key as 64 hex digits or as base64 / base64url (vault.ts reads it). */
const VAULT_KEY = /^(?:[0-9a-fA-F]{64}|[A-Za-z0-9+/_-]{43}=?)$/;

export function httpsOrLoopback(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol === 'https:') return true;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return url.protocol === 'http:' && (host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host));
}

/** An OAuth scope (RFC 6749 section 3.3: printable ASCII but space, `"` and `\`). */
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/, 'not a valid OAuth scope');

const ms = (what: string) =>
  z.number().int(`${what} must be a whole number of milliseconds`).positive(`${what} must be > 0`);

/** The same bounds as every other list of tool patterns (mcp/catalog/glob.ts), which config/ does not import. */
const toolPattern = z
  .string()
  .min(1, 'tool pattern must not be empty')
  .max(256, 'tool pattern is longer than 256 characters')
  .regex(/^[^[\]{}]+$/, {
    error: (issue) => `invalid tool pattern "${String(issue.input)}": only "*" and "?" wildcards are supported`,
  });

const toolPatterns = z.array(toolPattern).max(256, 'at most 256 tool patterns');

const stringMap = z.record(z.string(), z.string());

const serverInputSchema = z
  .strictObject({
    type: z.enum(['stdio', 'streamable-http', 'http', 'sse']).optional(),
    // stdio
    command: z.string().min(1, 'command must not be empty').optional(),
    args: z.array(z.string()).optional(),
    env: stringMap.optional(),
    cwd: z.string().min(1, 'cwd must not be empty').optional(),
    // remote
    url: z.url({ protocol: /^https?$/, error: 'must be a valid http:// or https:// URL' }).optional(),
    headers: stringMap.optional(),
    /**
     * Each principal signs in to this server with OAuth and its calls carry its own token (auth.upstreamOAuth
     * holds the sealing key and mcplex's public URL). A client registered in advance, or a client ID metadata
     * document, or (neither) dynamic registration.
     */
    auth: z
      .strictObject({
        type: z.literal('oauth'),
        clientId: z.string().min(1).optional(),
        clientSecret: z.string().min(1).optional(),
        clientMetadataUrl: z.url({ protocol: /^https$/, error: 'must be an https:// URL' }).optional(),
        scopes: z
          .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope token'))
          .max(64)
          .optional(),
      })
      .optional(),
    // mcplex extras
    // "" exposes the server's names and resource URIs as they are (at most one server can have it).
    prefix: z
      .string()
      .regex(UNPREFIXED_OR_KEY, {
        error: (issue) => `invalid prefix "${String(issue.input)}": ${SERVER_KEY_RULE}, or "" for none`,
      })
      .optional(),
    tools: z.strictObject({ allow: toolPatterns.optional(), deny: toolPatterns.optional() }).prefault({}),
    timeouts: z
      .strictObject({ startup: ms('startup').default(30_000), call: ms('call').default(300_000) })
      .prefault({}),
    disabled: z.boolean().default(false),
    /** Calls that reach this server (tools/call, resources/read, prompts/get), from every caller together. */
    limits: z
      .strictObject({
        rpm: z.number().int('rpm must be an integer').positive('rpm must be > 0').optional(),
        maxConcurrent: z
          .number()
          .int('maxConcurrent must be an integer')
          .positive('maxConcurrent must be > 0')
          .optional(),
      })
      .optional(),
    /** Protocol era to speak upstream: negotiated ("auto"), or pinned for servers whose probe misbehaves. */
    protocol: z.enum(['auto', 'legacy', 'modern']).default('auto'),
    restart: z
      .strictObject({ initialDelay: ms('initialDelay').default(500), maxDelay: ms('maxDelay').default(30_000) })
      .superRefine((restart, ctx) => {
        if (restart.initialDelay > restart.maxDelay) {
          ctx.addIssue({ code: 'custom', path: ['initialDelay'], message: 'initialDelay must not exceed maxDelay' });
        }
      })
      .prefault({}),
    /** What the server's own sampling requests get: the shared LLM, the calling client, or a refusal. */
    sampling: z
      .strictObject({
        mode: z.enum(['gateway', 'client', 'deny']).optional(),
        models: z.array(z.string().min(1)).optional(),
        defaultModel: z.string().min(1).optional(),
        maxTokens: z.number().int().positive('maxTokens must be > 0').optional(),
        rpm: z.number().int().positive('rpm must be > 0').optional(),
        tpm: z.number().int().positive('tpm must be > 0').optional(),
        maxConcurrent: z.number().int().positive('maxConcurrent must be > 0').optional(),
      })
      .optional(),
  })
  .superRefine((server, ctx) => {
    const has = (key: string) => (server as Record<string, unknown>)[key] !== undefined;
    const hasCommand = has('command');
    const hasUrl = has('url');
    if (hasCommand && hasUrl) {
      ctx.addIssue({
        code: 'custom',
        message: 'has both "command" and "url"; a server is either stdio ("command") or remote ("url")',
      });
      return;
    }
    if (!hasCommand && !hasUrl) {
      ctx.addIssue({ code: 'custom', message: 'needs either "command" (stdio server) or "url" (remote server)' });
      return;
    }
    const type = server.type;
    if (hasCommand && type !== undefined && type !== 'stdio') {
      ctx.addIssue({ code: 'custom', path: ['type'], message: `type "${type}" needs "url", not "command"` });
    }
    if (hasUrl && type === 'stdio') {
      ctx.addIssue({ code: 'custom', path: ['type'], message: 'type "stdio" needs "command", not "url"' });
    }
    const misplaced = hasCommand ? (['headers', 'auth'] as const) : (['args', 'env', 'cwd'] as const);
    for (const key of misplaced) {
      if (has(key)) {
        const kind = hasCommand ? 'remote ("url")' : 'stdio ("command")';
        ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" only applies to ${kind} servers` });
      }
    }
    if (server.auth !== undefined && hasUrl) {
      if (type === 'sse') {
        ctx.addIssue({ code: 'custom', path: ['auth'], message: 'OAuth sign-in needs a Streamable HTTP server' });
      }
      if (Object.keys(server.headers ?? {}).some((h) => h.toLowerCase() === 'authorization')) {
        ctx.addIssue({
          code: 'custom',
          path: ['headers'],
          message: 'an Authorization header and auth.type "oauth" exclude each other: each principal signs in',
        });
      }
      if (server.auth.clientSecret !== undefined && server.auth.clientId === undefined) {
        ctx.addIssue({ code: 'custom', path: ['auth', 'clientSecret'], message: 'clientSecret needs clientId' });
      }
    }
  }, whenObject);

type ServerInput = z.output<typeof serverInputSchema>;

/** Fields every server has after parsing, whatever its transport. */
export interface CommonServerConfig {
  /** Tool and prompt name prefix; defaults to the server key; "" exposes names and resource URIs unchanged. */
  prefix: string;
  tools: { allow?: string[]; deny?: string[] };
  timeouts: { startup: number; call: number };
  disabled: boolean;
  /** Why the server cannot start (a variable its settings name is not set); set by the loader, not the file. */
  unavailable?: string;
  limits?: { rpm?: number; maxConcurrent?: number };
  protocol: 'auto' | 'legacy' | 'modern';
  restart: { initialDelay: number; maxDelay: number };
  sampling?: {
    mode?: 'gateway' | 'client' | 'deny';
    models?: string[];
    defaultModel?: string;
    maxTokens?: number;
    rpm?: number;
    tpm?: number;
    maxConcurrent?: number;
  };
}

export interface StdioServerConfig extends CommonServerConfig {
  transport: 'stdio';
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
}

export interface UpstreamOAuthConfig {
  type: 'oauth';
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  clientMetadataUrl?: string | undefined;
  scopes?: string[] | undefined;
}

export interface RemoteServerConfig extends CommonServerConfig {
  transport: 'streamable-http' | 'sse';
  url: string;
  headers: Record<string, string>;
  /** Each principal signs in to this server (OAuth) and calls it with its own token. */
  auth?: UpstreamOAuthConfig;
}

export type ServerConfig = StdioServerConfig | RemoteServerConfig;
export type ServerTransport = ServerConfig['transport'];

function toServerConfig(key: string, input: ServerInput): ServerConfig {
  const common: CommonServerConfig = {
    prefix: input.prefix ?? key,
    tools: input.tools,
    timeouts: input.timeouts,
    disabled: input.disabled,
    protocol: input.protocol,
    restart: input.restart,
    ...(input.sampling ? { sampling: input.sampling } : {}),
    ...(input.limits ? { limits: input.limits } : {}),
  };
  if (input.command !== undefined) {
    return {
      transport: 'stdio',
      command: input.command,
      args: input.args ?? [],
      env: input.env ?? {},
      ...(input.cwd !== undefined ? { cwd: input.cwd } : {}),
      ...common,
    };
  }
  if (input.url === undefined) throw new Error(`server "${key}" has neither command nor url`); // unreachable: refined above
  return {
    transport: input.type === 'sse' ? 'sse' : 'streamable-http',
    url: input.url,
    headers: input.headers ?? {},
    ...(input.auth ? { auth: input.auth } : {}),
    ...common,
  };
}

const mcpServersSchema = z
  .record(z.string(), serverInputSchema)
  .superRefine((servers, ctx) => {
    const prefixOwner = new Map<string, string>();
    for (const [key, server] of Object.entries(servers)) {
      if (!SERVER_KEY_PATTERN.test(key)) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `invalid server key "${key}": ${SERVER_KEY_RULE} (it becomes the tool name prefix; set "prefix" if you need a different one)`,
        });
        continue;
      }
      const explicit = isRecord(server) && typeof server.prefix === 'string' ? server.prefix : undefined;
      const prefix = explicit ?? key;
      const owner = prefixOwner.get(prefix);
      if (owner === undefined) prefixOwner.set(prefix, key);
      else {
        const path = explicit === undefined ? [key] : [key, 'prefix'];
        const message =
          prefix === ''
            ? `only one server can be unprefixed (prefix ""), and "${owner}" already is`
            : `prefix "${prefix}" is already used by server "${owner}"`;
        ctx.addIssue({ code: 'custom', path, message });
      }
    }
  }, whenObject)
  .transform((servers): Record<string, ServerConfig> => {
    const result: Record<string, ServerConfig> = {};
    for (const [key, server] of Object.entries(servers)) result[key] = toServerConfig(key, server);
    return result;
  });

/**
 * The store of `mcplex serve` (and the keys and usage commands) when the configuration names none: a SQLite file
 * in the working folder. `mcplex stdio` keeps its state in memory instead; each front end picks its own.
 */
export const DEFAULT_STORE = 'sqlite:./mcplex.db';

const count = (what: string) => z.number().int(`${what} must be a whole number`).positive(`${what} must be > 0`);

/** 2025-11-25 sessions on /mcp: how many, for how long, and what each keeps to resume a dropped stream. */
const sessionsSchema = z.strictObject({
  max: count('max').default(10_000),
  /** One API key (or everyone, in keyless mode) holds at most this many. */
  maxPerPrincipal: count('maxPerPrincipal').default(1000),
  idleMs: ms('idleMs').default(30 * 60_000),
  /** 2026-07-28 `subscriptions/listen` streams one API key may hold open at once. */
  maxListensPerPrincipal: count('maxListensPerPrincipal').default(100),
  /** When a cap is reached, sessions idle (no request, no open stream) for longer than this are closed. */
  pressureIdleMs: ms('pressureIdleMs').default(60_000),
  /** Last-Event-ID replay: newest events per session, their size per session and for all sessions together. */
  replayEvents: count('replayEvents').default(200),
  replayBytes: count('replayBytes').default(1_048_576),
  replayTotalBytes: count('replayTotalBytes').default(67_108_864),
});

const httpServerSchema = z.strictObject({
  host: z.string().min(1, 'host must not be empty').default('127.0.0.1'),
  port: z
    .number()
    .int('port must be an integer')
    .min(0, 'port must be 0-65535')
    .max(65_535, 'port must be 0-65535')
    .default(7070),
  maxBodyBytes: z
    .number()
    .int('maxBodyBytes must be an integer')
    .positive('maxBodyBytes must be > 0')
    .default(4_194_304),
  allowedOrigins: z.array(z.string()).default([]),
  allowedHosts: z.array(z.string()).default([]),
  /**
   * With API keys, a bearer token (besides an admin key) for GET /metrics and the details of GET /readyz, for a
   * scraper that should hold no API key.
   */
  metricsToken: z.string().min(16, 'metricsToken must have at least 16 characters').optional(),
  /** Items per page in merged tools/resources/prompts lists. */
  pageSize: z.number().int('pageSize must be an integer').positive('pageSize must be > 0').default(500),
  /** On SIGTERM, how long requests in progress may run on before they are cut (new connections are refused). */
  drainMs: z.number().int('drainMs must be an integer').min(0, 'drainMs must be >= 0').default(10_000),
  /**
   * Resource subscriptions one client may hold: a 2025-era session or stdio connection, or one 2026-07-28 listen
   * request. Each may cost a subscription on the upstream; a template matches any number of URIs.
   */
  maxSubscriptions: z
    .number()
    .int('maxSubscriptions must be an integer')
    .positive('maxSubscriptions must be > 0')
    .default(1000),
  sessions: sessionsSchema.prefault({}),
  /** A slow client holds a socket for at most this long without sending its headers or its whole request. */
  timeouts: z
    .strictObject({
      headersMs: ms('headersMs').default(10_000),
      requestMs: ms('requestMs').default(30_000),
      /** An idle keep-alive connection (no request in progress) is closed after this long. */
      keepAliveMs: ms('keepAliveMs').default(5000),
    })
    .superRefine((t, ctx) => {
      if (t.headersMs > t.requestMs) {
        ctx.addIssue({ code: 'custom', path: ['headersMs'], message: 'headersMs must not exceed requestMs' });
      }
    })
    .prefault({}),
  /**
   * The HMAC key that protects 2026-07-28 `requestState` (at least 32 characters, from the environment: `${VAR}`),
   * the same on every replica; `previousKey` is still accepted while a new key rolls out. Without a key, each
   * process picks a random one, and an input-required round can only be resumed on the process that began it.
   */
  requestState: z
    .strictObject({
      key: z.string().min(32, 'key must be at least 32 characters').optional(),
      previousKey: z.string().min(32, 'previousKey must be at least 32 characters').optional(),
      ttlMs: ms('ttlMs').default(600_000),
    })
    .prefault({}),
  /**
   * After a start, how long the first MCP requests (over HTTP or stdio) wait for every server's first connection
   * attempt, so that a client that lists once sees the whole catalog. 0: they do not wait.
   */
  startupWaitMs: z.number().int('startupWaitMs must be an integer').min(0, 'startupWaitMs must be >= 0').default(5000),
  maxConnections: count('maxConnections').default(10_000),
  /** Off by default: behind a load balancer every client has the balancer's address. */
  maxConnectionsPerAddress: count('maxConnectionsPerAddress').optional(),
});

export const configSchema = z
  .strictObject({
    /** Where editors find the configuration's JSON Schema (schema/mcplex.schema.json); mcplex ignores it. */
    $schema: z.string().optional(),
    mcpServers: mcpServersSchema.prefault({}),
    server: httpServerSchema.prefault({}),
    llm: llmSchema.prefault({}),
    /**
     * Where keys, usage, the cache and limit counters live: `sqlite:<path>`, `postgres://…` (or `postgresql://`,
     * `?schema=` naming the schema) or `memory:` (nothing kept).
     */
    store: z
      .string()
      .regex(/^(memory:|sqlite:.+|postgres(ql)?:\/\/.+)$/, {
        error: 'store must be "memory:", "sqlite:<path>" or "postgres://user@host:5432/database"',
      })
      .optional(),
    /** This process among the replicas of a deployment (they find each other through Redis). */
    cluster: z
      .strictObject({
        /**
         * Its name in the `x-mcplex-replica` header and the cluster view: unique among the live replicas, letters,
         * digits, `.`, `_` and `-`. Default: host name and process id.
         */
        name: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'cluster.name must be 1-64 letters, digits, ".", "_" or "-"' })
          .optional(),
        /** How often a replica says it is alive; one silent for three beats counts as gone. */
        heartbeatMs: ms('heartbeatMs').default(1000),
      })
      .prefault({}),
    /**
     * Redis for the fast state replicas share: rate-limit counters, requests in progress (leases), the response
     * cache (`llm.cache.store: "redis"`) and messages between replicas. A URL, or the object with its options.
     */
    redis: z
      .preprocess(
        (value) => (typeof value === 'string' ? { url: value } : value),
        z.strictObject({
          url: z.string().regex(/^rediss?:\/\/.+/, { error: 'redis.url must start with redis:// or rediss://' }),
          /** Put before every key and channel, so that deployments (and test runs) can share one Redis. */
          prefix: z.string().min(1).max(64).default('mcplex:'),
          /**
           * While Redis is away: `local` counts limits in this process alone (each replica granting `localShare` of
           * every key's limits), `refuse` answers limited requests with 503. The cache is bypassed either way.
           */
          onError: z.enum(['local', 'refuse']).default('local'),
          localShare: z.number().gt(0).max(1).default(1),
          /** How long a Redis command may take before it counts as failed. */
          commandTimeoutMs: z.number().int().positive().default(500),
          /**
           * Limits of at least this many units per period are counted ahead: a replica takes up to 1 % of one
           * from Redis at a time and admits from what it holds (never more than the limit in all; unused units go
           * back after a second). Smaller limits go to Redis on every request. `false`: every limit does.
           */
          countAheadFrom: z.union([z.number().int().positive(), z.literal(false)]).default(1000),
        }),
      )
      .optional(),
    auth: z
      .strictObject({
        /** `keys`: every /mcp, /v1 and /admin request needs an API key. `none`: keyless, loopback only. */
        mode: z.enum(['none', 'keys']).default('none'),
        /**
         * How long a key read from the store is trusted before it is read again. A revocation reaches the other
         * processes at once through Redis when it is configured, else within this time.
         */
        keyCacheMs: z.number().int().min(0).default(5000),
        /**
         * mcplex as an OAuth resource server (the MCP authorization specification): access tokens of these issuers
         * are accepted beside API keys on /mcp and /v1 (and, with the admin scope, /admin). Needs mode "keys".
         */
        oauth: z
          .strictObject({
            /** mcplex's canonical base URL, as clients reach it: tokens must be issued for `<resource>/mcp` etc. */
            resource: z.url({ protocol: /^https?$/ }).refine((u) => !/[?#]/.test(u), 'no query or fragment'),
            issuers: z
              .array(
                z.strictObject({
                  issuer: z.url({ protocol: /^https?$/ }),
                  name: z
                    .string()
                    .regex(/^[a-z0-9][a-z0-9._-]{0,31}$/, 'lowercase letters, digits, ".", "_", "-"')
                    .optional(),
                  jwksUri: z.url({ protocol: /^https?$/ }).optional(),
                  audience: z.array(z.string().min(1)).min(1).optional(),
                  requiredScopes: z.array(scopeToken).optional(),
                  subjectClaim: z.string().min(1).default('sub'),
                  nameClaim: z.string().min(1).optional(),
                  adminScope: z.string().min(1).optional(),
                  limits: z
                    .strictObject({
                      rpm: z.number().int().positive().optional(),
                      tpm: z.number().int().positive().optional(),
                      maxConcurrent: z.number().int().positive().optional(),
                    })
                    .optional(),
                  algorithms: z.array(z.string().min(1)).min(1).optional(),
                  /** Opaque tokens checked by introspection (RFC 7662), as this client (`${VAR}` for the secret). */
                  introspection: z
                    .strictObject({
                      endpoint: z.url({ protocol: /^https?$/ }).optional(),
                      clientId: z.string().min(1),
                      clientSecret: z.string().min(1),
                    })
                    .optional(),
                }),
              )
              .min(1),
            scopesSupported: z.array(scopeToken).optional(),
            /** Scopes a token needs, beyond its issuer's, to call a server's tools, read its resources, get its prompts. */
            serverScopes: z.record(z.string(), z.array(scopeToken).min(1)).optional(),
            /** Scopes a token needs to call the tools these exposed names or patterns (`*`, `?`) match. */
            toolScopes: z.record(toolPattern, z.array(scopeToken).min(1)).optional(),
            clockToleranceSec: z.number().int().min(0).max(300).default(30),
          })
          .optional(),
        /** What servers with `auth.type: "oauth"` need: each principal signs in to them, through mcplex. */
        upstreamOAuth: z
          .strictObject({
            /** Seals the tokens in the store: 32 random bytes as base64 or hex (`${VAR}`); there is no default. */
            credentialKey: z.string().min(1),
            /** Earlier keys, to open what they sealed while new tokens are sealed under credentialKey. */
            previousCredentialKeys: z.array(z.string().min(1)).max(8).default([]),
            /** mcplex's base URL as browsers reach it: the consent page and `/oauth/callback` are under it. */
            publicUrl: z.url({ protocol: /^https?$/ }).refine((u) => !/[?#]/.test(u), 'no query or fragment'),
            /** Hosts an upstream's metadata may name at private or loopback addresses (internal servers). */
            allowPrivateHosts: z.array(z.string().min(1)).default([]),
            /** Hosts an upstream's metadata may name over plain http (development authorization servers). */
            insecureHosts: z.array(z.string().min(1)).default([]),
            /** Each discovery, registration and token request, at most. */
            timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
            /** How long a sign-in may take, from the link to the callback. */
            signInTtlMs: z.number().int().min(10_000).max(3_600_000).default(600_000),
          })
          .optional(),
      })
      .prefault({})
      .superRefine((auth, ctx) => {
        if (auth.upstreamOAuth) {
          for (const [i, text] of [
            auth.upstreamOAuth.credentialKey,
            ...auth.upstreamOAuth.previousCredentialKeys,
          ].entries()) {
            if (!VAULT_KEY.test(text.trim())) {
              ctx.addIssue({
                code: 'custom',
                path: ['upstreamOAuth', ...(i === 0 ? ['credentialKey'] : ['previousCredentialKeys', i - 1])],
                message: 'must be 32 random bytes as base64 or 64 hex digits (openssl rand -base64 32)',
              });
            }
          }
          if (!httpsOrLoopback(auth.upstreamOAuth.publicUrl)) {
            ctx.addIssue({
              code: 'custom',
              path: ['upstreamOAuth', 'publicUrl'],
              message: 'must be https (http only on a loopback host)',
            });
          }
        }
        if (!auth.oauth) return;
        if (auth.mode !== 'keys') {
          ctx.addIssue({ code: 'custom', path: ['mode'], message: 'auth.oauth needs mode "keys"' });
        }
        const names = new Set<string>();
        auth.oauth.issuers.forEach((issuer, i) => {
          const urls = [
            [['issuer'], issuer.issuer],
            [['jwksUri'], issuer.jwksUri],
            [['introspection', 'endpoint'], issuer.introspection?.endpoint],
          ] as const;
          for (const [field, url] of urls) {
            if (url !== undefined && !httpsOrLoopback(url)) {
              ctx.addIssue({
                code: 'custom',
                path: ['oauth', 'issuers', i, ...field],
                message: 'must be https (http only on a loopback host)',
              });
            }
          }
          const name = issuer.name ?? new URL(issuer.issuer).host;
          if (names.has(name)) {
            ctx.addIssue({ code: 'custom', path: ['oauth', 'issuers', i, 'name'], message: `name "${name}" repeats` });
          }
          names.add(name);
        });
      }),
    /**
     * Where the per-key rpm/tpm counters and requests in progress live without `redis`: `store` (every process on
     * the store shares one budget per key) or `process` (each process counts alone: N processes grant N times the
     * limit).
     */
    limits: z
      .strictObject({
        counters: z.enum(['store', 'process']).default('store'),
        /**
         * How long a request's concurrency slot outlives its holder's last renewal (a running request renews it every
         * third of this): the time a replica that died mid-request keeps its slots.
         */
        leaseTtlMs: z.number().int().min(300).default(30_000),
      })
      .prefault({}),
    /** The tool-running chat (`mcp` on /v1/chat/completions). */
    agent: z
      .strictObject({
        /** A request offering more MCP tools than this gets only the `topK` most relevant. */
        selectionThreshold: z.number().int().min(0).default(40),
        topK: z.number().int().positive().default(20),
        /** Rank tools by text embeddings (an offline model, loaded on first use); `false`: lexical ranking only. */
        embeddings: z.boolean().default(true),
        /**
         * Load the model at start-up and embed the catalog whenever it changes, so that the first tool-running chat
         * does not wait; off, nothing of it is loaded until a chat needs it.
         */
        warmEmbeddings: z.boolean().default(false),
        /** The model's worker stops after this long without a call (its memory given back); 0: never. */
        embeddingsIdleMs: z.number().int().min(0).default(600_000),
      })
      .prefault({}),
    logLevel: z.enum(LOG_LEVELS).default('info'),
    /**
     * OpenTelemetry. `traces` turns tracing on (as does OTEL_TRACES_EXPORTER=otlp without it): spans of /mcp and
     * /v1 requests, upstream MCP calls and LLM attempts, sent over OTLP/HTTP (protobuf; JSON with
     * OTEL_EXPORTER_OTLP_PROTOCOL=http/json). OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off;
     * OTEL_EXPORTER_OTLP_* and OTEL_TRACES_SAMPLER fill in what is unset.
     */
    telemetry: z
      .strictObject({
        traces: z
          .strictObject({
            /** The collector's OTLP/HTTP base URL (`/v1/traces` is added) or its full traces URL. */
            endpoint: z
              .string()
              .regex(/^https?:\/\/.+/, { error: 'telemetry.traces.endpoint must be an http:// or https:// URL' })
              .optional(),
            /** Sent with every export (an API key: `${VAR}`); OTEL_EXPORTER_OTLP_HEADERS adds to them. */
            headers: z.record(z.string(), z.string()).optional(),
            /** `service.name` of the spans; default OTEL_SERVICE_NAME, else "mcplex". */
            serviceName: z.string().min(1).optional(),
            /** Share of new traces kept (0..1); a caller's sampled flag is followed. Default: OTEL_TRACES_SAMPLER. */
            sampleRatio: z.number().min(0).max(1).optional(),
            /** Prompts, completions, tool arguments and results on spans; off, spans carry none of them. */
            captureContent: z.boolean().default(false),
          })
          .optional(),
      })
      .optional(),
  })
  .superRefine((config, ctx) => {
    for (const [key, server] of Object.entries(config.mcpServers)) {
      if ('auth' in server && server.auth !== undefined && config.auth.upstreamOAuth === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['mcpServers', key, 'auth'],
          message: "needs auth.upstreamOAuth (the key that seals tokens, and mcplex's public URL)",
        });
      }
    }
    for (const server of Object.keys(config.auth.oauth?.serverScopes ?? {})) {
      if (!(server in config.mcpServers)) {
        ctx.addIssue({
          code: 'custom',
          path: ['auth', 'oauth', 'serverScopes', server],
          message: `unknown server "${server}"`,
        });
      }
    }
    if (config.llm.cache.store === 'redis' && config.redis === undefined) {
      ctx.addIssue({ code: 'custom', path: ['llm', 'cache', 'store'], message: 'cache.store "redis" needs redis' });
    }
    // Sampling policies name models of the llm section.
    const models = new Set(Object.entries(config.llm.models).flatMap(([name, m]) => [name, ...m.aliases]));
    for (const [key, server] of Object.entries(config.mcpServers)) {
      const sampling = server.sampling;
      if (!sampling) continue;
      const path = ['mcpServers', key, 'sampling'];
      if (sampling.mode === 'gateway' && models.size === 0) {
        ctx.addIssue({ code: 'custom', path: [...path, 'mode'], message: 'mode "gateway" needs llm.models' });
      }
      sampling.models?.forEach((model, i) => {
        if (!models.has(model)) {
          ctx.addIssue({ code: 'custom', path: [...path, 'models', i], message: `unknown model "${model}"` });
        }
      });
      if (sampling.defaultModel !== undefined && !models.has(sampling.defaultModel)) {
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'defaultModel'],
          message: `unknown model "${sampling.defaultModel}"`,
        });
      }
    }
  });

export type Config = z.infer<typeof configSchema>;
export type HttpServerConfig = Config['server'];
export type LogLevel = Config['logLevel'];
/** What a config file may contain before defaults are applied. */
export type ConfigInput = z.input<typeof configSchema>;

/** Keys a server entry accepts (used by the desktop-config importer). */
export const SERVER_KEYS: readonly string[] = Object.keys(serverInputSchema.shape);

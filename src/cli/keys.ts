// `mcplex keys create | list | revoke` and `mcplex usage`: key management and usage reports on the configured
// store, from the command line (the admin API offers the same over HTTP).
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { UnsetVariables } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { parseMoment } from '../wire/when.js';
import { examples } from './help.js';
import { openConfiguredStore, openSharedState, policyFor } from '../main.js';
import type { SharedState } from '../main.js';
import { createLogger } from '../log/logger.js';
import type { CreateKeyInput } from '../policy/auth/key-service.js';
import type { Policy } from '../policy/policy.js';

/** `30d`, `12h`, `90m`, or an ISO date: the moment a key stops working. */
export function parseExpiry(value: string, now = Date.now()): number {
  const moment = parseMoment(value, 'ahead', now);
  if (moment === undefined) throw new InvalidArgumentError('expected 30d, 12h, 90m or an ISO date');
  return moment;
}

const list = (value: string) =>
  value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a whole number above 0');
  return n;
}

async function withPolicy<T>(
  load: (path: string, unset?: UnsetVariables) => Promise<Config>,
  configPath: string,
  fail: (message: string) => never,
  run: (policy: Policy) => Promise<T>,
  /** Tell the running replicas through Redis (a revocation); other commands need only the store. */
  announce = false,
): Promise<T> {
  // Keys and usage live in the store: a server's or a model's unset variable is no reason to refuse.
  const config = await load(configPath, 'store');
  let store;
  try {
    store = await openConfiguredStore(config);
  } catch (error) {
    fail(errorMessage(error));
  }
  const storeOnly: Config = { ...config, redis: undefined };
  // Without Redis (or while it is away) the replicas notice a revocation within their key cache's lifetime.
  let shared: SharedState;
  try {
    shared = await openSharedState(announce ? config : storeOnly, store, createLogger('warn'));
  } catch (error) {
    process.stderr.write(`warning: ${errorMessage(error)}; running replicas are not told of changes at once\n`);
    shared = await openSharedState(storeOnly, store, createLogger('warn'));
  }
  const policy = policyFor(config, store, shared);
  try {
    return await run(policy);
  } catch (error) {
    return fail(errorMessage(error));
  } finally {
    await policy.close();
    await Promise.all([store.close(), shared.close()]);
  }
}

export function registerKeyCommands(
  program: Command,
  load: (path: string, unset?: UnsetVariables) => Promise<Config>,
  fail: (message: string) => never,
): void {
  const keys = program.command('keys').description('create, list and revoke API keys (stored as hashes only)');

  keys
    .command('create')
    .description('create an API key and print it once')
    .requiredOption('--name <name>', 'a name for the key (unique)')
    .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
    .option('--models <names>', 'comma-separated model names the key may use (default: all)', list)
    .option('--servers <keys>', 'comma-separated MCP server keys the key may use (default: all)', list)
    .option('--tools <patterns>', 'comma-separated exposed tool names or globs the key may call (default: all)', list)
    .option('--admin', 'the key may use the admin API')
    .option('--rpm <n>', 'requests per minute', positive)
    .option('--tpm <n>', 'tokens per minute', positive)
    .option('--max-concurrent <n>', 'requests in progress at once', positive)
    .option('--expires <when>', 'expiry: 30d, 12h, 90m or an ISO date', (v) => parseExpiry(v))
    .addHelpText(
      'after',
      examples([
        'mcplex keys create --name ci --models gpt --rpm 60 --expires 30d',
        "mcplex keys create --name github-only --servers github --tools 'github__get_*'",
        'mcplex keys create --name ops --admin',
      ]),
    )
    .action(async (options: Omit<CreateKeyInput, 'expiresAt'> & { config: string; expires?: number }) => {
      // Commander sets only the options given, so the rest is the service's input as it stands.
      const { config, expires, ...input } = options;
      const { token, key } = await withPolicy(load, config, fail, (policy) =>
        policy.keys.create({ ...input, ...(expires !== undefined ? { expiresAt: expires } : {}) }),
      );
      process.stderr.write(`mcplex: created key ${key.id} ("${key.name}"); it is shown only this once:\n`);
      process.stdout.write(`${token}\n`);
    });

  keys
    .command('list')
    .description('list API keys (never their secrets)')
    .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
    .option('--json', 'print JSON')
    .action(async (options: { config: string; json?: boolean }) => {
      const all = await withPolicy(load, options.config, fail, (policy) => policy.keys.list());
      if (options.json) {
        process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
        return;
      }
      for (const key of all) {
        const state =
          key.revokedAt !== null
            ? 'revoked'
            : key.expiresAt !== null && key.expiresAt <= Date.now()
              ? 'expired'
              : 'active';
        process.stdout.write(
          `${key.id}  ${state.padEnd(7)}  ${key.name}  scopes=${JSON.stringify(key.scopes)} limits=${JSON.stringify(key.limits)}\n`,
        );
      }
    });

  keys
    .command('revoke')
    .description('revoke an API key by id')
    .argument('<id>', 'the key id (the part after mcx_)')
    .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
    .action(async (id: string, options: { config: string }) => {
      const done = await withPolicy(load, options.config, fail, (policy) => policy.keys.revoke(id), true);
      if (!done) fail(`no active key with id "${id}"`);
      process.stderr.write(`mcplex: revoked key ${id}\n`);
    });

  program
    .command('usage')
    .description('requests and tokens per key (or MCP server) and model; MCP tool calls as mcp:<server>/<tool>')
    .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
    .option('--key <id>', 'only this key id (or server:<key>)')
    .option('--model <name>', 'only this model (or mcp:<server>/<tool>)')
    .option('--since <when>', 'only usage since: 30d, 12h, 90m ago, or an ISO date', (v) => {
      const moment = parseMoment(v, 'ago');
      if (moment === undefined) throw new InvalidArgumentError('expected 30d, 12h, 90m or an ISO date');
      return moment;
    })
    .option('--json', 'print JSON')
    .action(async (options: { config: string; key?: string; model?: string; since?: number; json?: boolean }) => {
      const totals = await withPolicy(load, options.config, fail, (policy) =>
        policy.usage.totals({
          ...(options.key ? { subject: options.key } : {}),
          ...(options.model ? { model: options.model } : {}),
          ...(options.since !== undefined ? { since: options.since } : {}),
        }),
      );
      if (options.json) {
        process.stdout.write(`${JSON.stringify(totals, null, 2)}\n`);
        return;
      }
      process.stdout.write('subject  model  requests  prompt_tokens  completion_tokens\n');
      for (const t of totals) {
        process.stdout.write(`${t.subject}  ${t.model}  ${t.requests}  ${t.promptTokens}  ${t.completionTokens}\n`);
      }
    });
}

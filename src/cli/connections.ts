// `mcplex connections list | revoke`: principals' sign-ins to upstream servers with auth.type "oauth", on the
// configured store (the admin API offers the same over HTTP). Only what is not secret is read: the sealed tokens
// are neither opened nor printed, so the sealing key is not needed.
import type { Command } from 'commander';
import type { UnsetVariables } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { openConfiguredStore } from '../main.js';
import type { Store } from '../store/store.js';
import { examples } from './help.js';

async function withStore<T>(
  load: (path: string, unset?: UnsetVariables) => Promise<Config>,
  configPath: string,
  fail: (message: string) => never,
  run: (store: Store) => Promise<T>,
): Promise<T> {
  const config = await load(configPath, 'store');
  let store: Store;
  try {
    store = await openConfiguredStore(config);
  } catch (error) {
    return fail(errorMessage(error));
  }
  try {
    return await run(store);
  } catch (error) {
    return fail(errorMessage(error));
  } finally {
    await store.close();
  }
}

export function registerConnectionCommands(
  program: Command,
  load: (path: string, unset?: UnsetVariables) => Promise<Config>,
  fail: (message: string) => never,
): void {
  const connections = program
    .command('connections')
    .description('list and revoke principals\' sign-ins to upstream servers (auth.type "oauth")');

  connections
    .command('list')
    .description('list the sign-ins, of one principal or of everyone (never their tokens)')
    .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
    .option('--principal <id>', 'only this principal (key:<id>, or <issuer name>:<subject>)')
    .option('--json', 'print JSON')
    .action(async (options: { config: string; principal?: string; json?: boolean }) => {
      const records = await withStore(load, options.config, fail, (store) =>
        store.credentials.list('tokens', options.principal, Date.now()),
      );
      const rows = records.map((r) => ({
        principal: r.principal,
        upstream: r.upstream,
        issuer: r.issuer,
        updatedAt: new Date(r.updatedAt).toISOString(),
      }));
      if (options.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      for (const row of rows)
        process.stdout.write(`${row.principal}  ${row.upstream}  ${row.issuer}  ${row.updatedAt}\n`);
    });

  connections
    .command('revoke')
    .description("forget a principal's tokens for an upstream server: it signs in again on its next call")
    .requiredOption('--principal <id>', 'the principal')
    .requiredOption('--server <key>', 'the upstream server')
    .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
    .addHelpText('after', examples(['mcplex connections revoke --principal key:3f2a9c --server linear']))
    .action(async (options: { config: string; principal: string; server: string }) => {
      const revoked = await withStore(load, options.config, fail, (store) =>
        store.credentials.deleteConnection(options.principal, options.server),
      );
      if (revoked === 0) fail(`"${options.principal}" has no connection to "${options.server}"`);
      process.stderr.write(`mcplex: revoked the connection of ${options.principal} to ${options.server}\n`);
    });
}

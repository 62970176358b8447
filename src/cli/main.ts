// The `mcplex` command: serve (HTTP), stdio (for desktop clients), import (desktop-client config → mcplex) and
// mock-llm (a scriptable MOCK LLM for tests and benchmarks).
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../config/load-config.js';
import type { UnsetVariables } from '../config/load-config.js';
import { importDesktopConfig } from '../config/import-desktop.js';
import { configJsonSchema } from '../config/json-schema.js';
import { DEFAULT_STORE } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { startMockLlm } from '../llm/mock/mock-llm.js';
import type { MockLlmBehaviour } from '../llm/mock/mock-llm.js';
import { createLogger } from '../log/logger.js';
import type { Logger } from '../log/logger.js';
import { openConfiguredStore, startHttp, startStdio } from '../main.js';
import { redactUrl } from '../store/redact-url.js';
import { registerKeyCommands } from './keys.js';
import { registerClusterCommands } from './cluster.js';
import { VERSION } from '../version.js';

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError('expected a port number between 0 and 65535');
  }
  return port;
}

function parseNonNegative(value: string): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number < 0) {
    throw new InvalidArgumentError('expected a number >= 0');
  }
  return number;
}

function parseRate(value: string): number {
  const rate = Number(value);
  if (value.trim() === '' || !(rate >= 0 && rate <= 1))
    throw new InvalidArgumentError('expected a number between 0 and 1');
  return rate;
}

function parsePositiveInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError('expected an integer >= 1');
  return number;
}

/** Prints a clear message and exits non-zero; used for every start-up failure. */
function fail(message: string): never {
  process.stderr.write(`mcplex: ${message}\n`);
  process.exit(1);
}

/** Reads the configuration; `unset` says which unset variables the command can live with (see UnsetVariables). */
async function load(path: string, unset: UnsetVariables = 'servers'): Promise<Config> {
  try {
    return await loadConfig(path, process.env, { unsetVariables: unset });
  } catch (error) {
    fail(errorMessage(error));
  }
}

/** On SIGTERM or SIGINT: `close`, then exit; after `drainMs` plus 10 s for closing the upstreams, exit anyway. */
function onShutdown(logger: Logger, close: () => Promise<void>, drainMs = 0): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), drainMs + 10_000);
    force.unref();
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const program = new Command().name('mcplex').description('Many MCP servers behind one endpoint.').version(VERSION);

program
  .command('serve')
  .description('serve the aggregated MCP endpoint over HTTP at /mcp')
  .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
  .option('--host <host>', 'address to listen on (overrides server.host)')
  .option('-p, --port <port>', 'port to listen on (overrides server.port)', parsePort)
  .option('--name <name>', "this replica's name among the replicas (overrides cluster.name)")
  .action(async (options: { config: string; host?: string; port?: number; name?: string }) => {
    const loaded = await load(options.config);
    if (options.name !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(options.name)) {
      fail('--name must be 1-64 letters, digits, ".", "_" or "-"');
    }
    const config: Config = {
      ...loaded,
      ...(options.name === undefined ? {} : { cluster: { ...loaded.cluster, name: options.name } }),
      server: {
        ...loaded.server,
        ...(options.host === undefined ? {} : { host: options.host }),
        ...(options.port === undefined ? {} : { port: options.port }),
      },
    };
    const logger = createLogger(config.logLevel);
    try {
      const running = await startHttp(config, logger);
      onShutdown(logger, running.close, config.server.drainMs);
    } catch (error) {
      fail(errorMessage(error));
    }
  });

registerKeyCommands(program, load, fail);
registerClusterCommands(program, load, fail);

program
  .command('migrate')
  .description("bring the configured store's schema up to date and exit (serve does the same when it starts)")
  .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
  .action(async (options: { config: string }) => {
    const config = await load(options.config, 'store');
    const store = await openConfiguredStore(config).catch((error: unknown) => fail(errorMessage(error)));
    process.stdout.write(
      `${redactUrl(config.store ?? DEFAULT_STORE)}: schema version ${store.schemaVersion}, up to date\n`,
    );
    await store.close();
  });

program
  .command('stdio')
  .description('serve the aggregated MCP server on stdin/stdout (for desktop MCP clients)')
  .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
  .action(async (options: { config: string }) => {
    const config = await load(options.config);
    const logger = createLogger(config.logLevel);
    const running = await startStdio(config, logger).catch((error: unknown) => fail(errorMessage(error)));
    onShutdown(logger, running.close);
    process.stdin.on('end', () => void running.close().then(() => process.exit(0)));
  });

program
  .command('import')
  .description("print an mcplex configuration equivalent to a desktop client's MCP configuration")
  .argument('<file>', 'desktop client configuration (Claude Desktop, Cursor, VS Code)')
  .action(async (file: string) => {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      fail(`cannot read ${file}: ${errorMessage(error)}`);
    }
    try {
      const { config, warnings } = importDesktopConfig(raw);
      for (const warning of warnings) process.stderr.write(`mcplex: warning: ${warning}\n`);
      process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    } catch (error) {
      fail(errorMessage(error));
    }
  });

program
  .command('config-schema')
  .description("print the configuration's JSON Schema (what schema/mcplex.schema.json holds), for editors")
  .action(() => {
    process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  });

program
  .command('mock-llm')
  .description(
    'run a MOCK LLM (not a real model) with the OpenAI and Anthropic APIs, for tests and benchmarks; loopback only',
  )
  .option('-p, --port <port>', 'port to listen on (0 picks a free one)', parsePort, 8000)
  .option('--host <host>', 'loopback address to listen on', '127.0.0.1')
  .option('--latency-ms <ms>', 'delay before each response starts', parseNonNegative, 0)
  .option('--jitter-ms <ms>', 'random extra delay of 0 to N ms', parseNonNegative, 0)
  .option('--failure-rate <x>', 'share of requests answered with a 500 error (0..1)', parseRate, 0)
  .option('--chunks <n>', 'content chunks per streamed reply', parsePositiveInteger, 4)
  .option('--chunk-delay-ms <ms>', 'delay between streamed chunks', parseNonNegative, 0)
  .option('--auto-tools', 'call an offered tool, then report its result (a scripted demo model)', false)
  .action(
    // Every option has a default: what commander hands over is the mock's behaviour plus where it listens.
    async (options: MockLlmBehaviour & { port: number; host: string }) => {
      // Not recording: a long-running server would keep every request in memory.
      const mock = await startMockLlm({ ...options, record: false }).catch((error: unknown) =>
        fail(errorMessage(error)),
      );
      process.stderr.write(
        `MOCK LLM (not a real model) listening on ${mock.url} — OpenAI: /v1/chat/completions, /v1/embeddings, ` +
          `/v1/models; Anthropic: /v1/messages\n`,
      );
      process.stdout.write(`LISTENING ${mock.url}\n`);
      onShutdown(createLogger('info'), () => mock.close());
    },
  );

program.parseAsync(process.argv).catch((error: unknown) => fail(errorMessage(error)));

// The `mcplex` command: serve (HTTP), stdio (for desktop clients), import (desktop-client config → mcplex) and
// mock-llm (a scriptable MOCK LLM for tests and benchmarks).
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError } from '../config/errors.js';
import { loadConfig } from '../config/load-config.js';
import type { UnsetVariables } from '../config/load-config.js';
import { importDesktopConfig } from '../config/import-desktop.js';
import { configJsonSchema } from '../config/json-schema.js';
import { configSkeleton, configSkeletonYaml, unsetVariableWarnings } from '../config/skeleton.js';
import { DEFAULT_STORE, LOG_LEVELS } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { startMockLlm } from '../llm/mock/mock-llm.js';
import type { MockLlmBehaviour } from '../llm/mock/mock-llm.js';
import { createLogger, defaultLogFormat, prettyDestination } from '../log/logger.js';
import type { LogFormat, Logger } from '../log/logger.js';
import { openConfiguredStore, startHttp, startStdio } from '../main.js';
import { redactUrl } from '../store/redact-url.js';
import { examples } from './help.js';
import { registerKeyCommands } from './keys.js';
import { registerConnectionCommands } from './connections.js';
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

function parseLogLevel(value: string): string {
  if (!(LOG_LEVELS as readonly string[]).includes(value))
    throw new InvalidArgumentError(`expected one of ${LOG_LEVELS.join(', ')}`);
  return value;
}

function parseLogFormat(value: string): LogFormat {
  if (value !== 'json' && value !== 'pretty') throw new InvalidArgumentError('expected json or pretty');
  return value;
}

interface LogOptions {
  logLevel?: string;
  logFormat?: LogFormat;
}

/** The process's logger: the flags over the configuration's level; pretty lines on a terminal, else JSON. */
function loggerFor(config: Config, options: LogOptions): Logger {
  const level = options.logLevel ?? config.logLevel;
  const format = options.logFormat ?? defaultLogFormat();
  return createLogger(level, format === 'pretty' ? prettyDestination() : undefined);
}

const withLogOptions = (command: Command): Command =>
  command
    .option('--log-level <level>', `log level (overrides logLevel): ${LOG_LEVELS.join(', ')}`, parseLogLevel)
    .option('--log-format <format>', 'json, or pretty (the default when stderr is a terminal)', parseLogFormat);

/** Prints a clear message and exits non-zero; used for every start-up failure. */
function fail(message: string): never {
  process.stderr.write(`mcplex: ${message}\n`);
  process.exit(1);
}

const NO_CONFIG_HINT = [
  'To make one:',
  '  mcplex import ~/.config/Claude/claude_desktop_config.json > mcplex.json   (from a desktop client)',
  '  cp examples/mcplex.json mcplex.json                                      (the example: three servers)',
  'or name another file with --config. The README lists every setting; mcplex config-schema prints its JSON Schema.',
].join('\n');

/** Reads the configuration; `unset` says which unset variables the command can live with (see UnsetVariables). */
async function load(path: string, unset: UnsetVariables = 'servers'): Promise<Config> {
  try {
    return await loadConfig(path, process.env, { unsetVariables: unset });
  } catch (error) {
    const missing = error instanceof ConfigError && error.problems.some((p) => p.message === 'file not found');
    fail(missing ? `${errorMessage(error)}\n${NO_CONFIG_HINT}` : errorMessage(error));
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

const program = new Command()
  .name('mcplex')
  .description('Many MCP servers behind one endpoint, and one shared LLM behind /v1.')
  .version(VERSION)
  .addHelpText(
    'after',
    examples([
      'mcplex import ~/.config/Claude/claude_desktop_config.json > mcplex.json',
      'mcplex serve --config mcplex.json',
      'mcplex serve --log-level debug --log-format pretty',
      'mcplex stdio --config mcplex.json',
      'mcplex keys create --name laptop --rpm 60',
      'mcplex usage --since 7d',
    ]),
  );

withLogOptions(program.command('serve'))
  .description('serve the aggregated MCP endpoint over HTTP at /mcp')
  .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
  .option('--host <host>', 'address to listen on (overrides server.host)')
  .option('-p, --port <port>', 'port to listen on (overrides server.port)', parsePort)
  .option('--name <name>', "this replica's name among the replicas (overrides cluster.name)")
  .addHelpText(
    'after',
    examples([
      'mcplex serve                          # ./mcplex.json on 127.0.0.1:7070',
      'mcplex serve -c prod.yaml --host 0.0.0.0 --port 8080   # beyond loopback: needs auth.mode "keys"',
      'mcplex serve --port 0 --log-format json',
    ]),
  )
  .action(async (options: { config: string; host?: string; port?: number; name?: string } & LogOptions) => {
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
    const logger = loggerFor(config, options);
    try {
      const running = await startHttp(config, logger);
      onShutdown(logger, running.close, config.server.drainMs);
    } catch (error) {
      fail(errorMessage(error));
    }
  });

registerKeyCommands(program, load, fail);
registerConnectionCommands(program, load, fail);
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

withLogOptions(program.command('stdio'))
  .description('serve the aggregated MCP server on stdin/stdout (for desktop MCP clients)')
  .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
  .action(async (options: { config: string } & LogOptions) => {
    const config = await load(options.config);
    const logger = loggerFor(config, options);
    const running = await startStdio(config, logger).catch((error: unknown) => fail(errorMessage(error)));
    onShutdown(logger, running.close);
    process.stdin.on('end', () => void running.close().then(() => process.exit(0)));
  });

program
  .command('import')
  .description("print a complete mcplex configuration around a desktop client's MCP servers")
  .argument('<file>', 'desktop client configuration (Claude Desktop, Cursor, VS Code)')
  .option('--yaml', 'print YAML with each section explained (JSON otherwise)')
  .action(async (file: string, options: { yaml?: boolean }) => {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      fail(`cannot read ${file}: ${errorMessage(error)}`);
    }
    try {
      const { config, warnings } = importDesktopConfig(raw);
      warnings.push(...unsetVariableWarnings(config.mcpServers));
      for (const warning of warnings) process.stderr.write(`mcplex: warning: ${warning}\n`);
      process.stdout.write(
        options.yaml
          ? configSkeletonYaml(config.mcpServers)
          : `${JSON.stringify(configSkeleton(config.mcpServers), null, 2)}\n`,
      );
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

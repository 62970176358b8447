// Structured logs (pino) on stderr, so that stdout stays free for the MCP stdio transport. Warnings and errors
// that repeat are rate-limited per message (repeat-limit.ts), so that a flood of requests is not a flood of lines.
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';
import { PinoPretty } from 'pino-pretty';
import { createRepeatLimit } from './repeat-limit.js';

export type { Logger };

/** Lines of one message written per window before the rest are only counted. */
const REPEATS_PER_WINDOW = 5;
const REPEAT_WINDOW_MS = 10_000;
const SUMMARY = 'repeated log lines were left out';
const WARN = 40;
const FATAL = 60;

/** The message of a pino call: its first string argument after an optional object. */
function messageOf(args: unknown[]): string {
  const first = args[0];
  if (typeof first === 'string') return first;
  return typeof args[1] === 'string' ? args[1] : '';
}

/** Fields that tell one source of a message from another (which server, which backend), never a request id. */
const SOURCE_FIELDS = ['server', 'deployment', 'model', 'uri', 'status', 'reason', 'path'] as const;

/** What makes two lines "the same": the message, the logger's own bindings and the source fields of the line. */
function repeatKey(message: string, bindings: Record<string, unknown>, args: unknown[]): string {
  const fields = typeof args[0] === 'object' && args[0] !== null ? (args[0] as Record<string, unknown>) : {};
  const source = SOURCE_FIELDS.map((field) => fields[field] ?? bindings[field] ?? '');
  return JSON.stringify([message, bindings.name ?? '', ...source]);
}

export type LogFormat = 'json' | 'pretty';

/** JSON lines for machines, unless stderr is a terminal: a person reads those. */
export const defaultLogFormat = (): LogFormat => (process.stderr.isTTY ? 'pretty' : 'json');

/** Human-readable lines on stderr (pino's own pretty printer, in this thread): time, level, message, fields. */
export function prettyDestination(colorize = process.stderr.isTTY === true): DestinationStream {
  return PinoPretty({
    destination: 2,
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,name',
    singleLine: true,
    sync: false,
  });
}

export function createLogger(level: string = 'info', destination?: DestinationStream): Logger {
  const repeats = createRepeatLimit({ windowMs: REPEAT_WINDOW_MS, perWindow: REPEATS_PER_WINDOW });
  const logger = pino(
    {
      level,
      base: { name: 'mcplex' },
      redact: {
        paths: [
          '*.headers.authorization',
          '*.headers.Authorization',
          '*.headers["x-api-key"]',
          '*.apiKey',
          '*.env',
          'headers.authorization',
        ],
        censor: '[redacted]',
      },
      hooks: {
        logMethod(args, method, lineLevel) {
          const message = messageOf(args);
          if (lineLevel < WARN || lineLevel >= FATAL || message === SUMMARY) return method.apply(this, args);
          const key = repeatKey(message, this.bindings(), args);
          const { write, suppressed } = repeats.admit(key, lineLevel);
          if (suppressed > 0) method.apply(this, [{ suppressed, of: key }, SUMMARY] as unknown as typeof args);
          if (write) method.apply(this, args);
        },
      },
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
  // Lines left out in a window that no later line of the same message closes are reported all the same.
  const flush = setInterval(() => {
    for (const { key, suppressed, level: at } of repeats.due()) {
      const write = at >= 50 ? logger.error.bind(logger) : logger.warn.bind(logger);
      write({ suppressed, of: key }, SUMMARY);
    }
  }, REPEAT_WINDOW_MS);
  flush.unref();
  return logger;
}

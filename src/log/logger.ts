// Structured logs (pino) on stderr, so that stdout stays free for the MCP stdio transport. Warnings and errors
// that repeat are rate-limited per message (repeat-limit.ts), so that a flood of requests is not a flood of lines.
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';
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
          const { write, suppressed } = repeats.admit(message);
          if (suppressed > 0) method.apply(this, [{ suppressed, message }, SUMMARY] as unknown as typeof args);
          if (write) method.apply(this, args);
        },
      },
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
  // Lines left out in a window that no later line of the same message closes are reported all the same.
  const flush = setInterval(() => {
    for (const { key, suppressed } of repeats.due()) logger.warn({ suppressed, message: key }, SUMMARY);
  }, REPEAT_WINDOW_MS);
  flush.unref();
  return logger;
}

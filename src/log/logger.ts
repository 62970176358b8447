// Structured logs (pino) on stderr, so that stdout stays free for the MCP stdio transport.
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = 'info'): Logger {
  return pino(
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
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

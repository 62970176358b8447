// Builds the SDK client transport for one configured upstream server: a stdio child process, Streamable HTTP or legacy SSE.
import { SSEClientTransport, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { Transport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import type { ServerConfig } from '../../config/schema.js';

export interface UpstreamTransport {
  transport: Transport;
  /** The child process id for stdio servers, once started. */
  pid(): number | undefined;
  /** Lines the child writes to stderr (stdio only). */
  onStderr(listener: (line: string) => void): void;
}

/**
 * The SDK probes the era of a plain StdioClientTransport in a second, short-lived child process; a subclass is
 * probed in place on the one child. That keeps one process per server, and closing the transport really ends
 * the connection attempt (a sibling probe outlives close() by up to its timeout).
 */
class InPlaceStdioClientTransport extends StdioClientTransport {}

export function createUpstreamTransport(config: ServerConfig): UpstreamTransport {
  switch (config.transport) {
    case 'stdio': {
      const transport = new InPlaceStdioClientTransport({
        command: config.command,
        args: [...config.args],
        env: { ...config.env },
        ...(config.cwd === undefined ? {} : { cwd: config.cwd }),
        stderr: 'pipe',
      });
      return {
        transport,
        pid: () => transport.pid ?? undefined,
        onStderr(listener) {
          let buffered = '';
          transport.stderr?.on('data', (chunk: Buffer) => {
            buffered += chunk.toString('utf8');
            let newline: number;
            while ((newline = buffered.indexOf('\n')) >= 0) {
              listener(buffered.slice(0, newline));
              buffered = buffered.slice(newline + 1);
            }
            // A child that never ends its lines must not grow this buffer without bound.
            if (buffered.length > 8192) {
              listener(buffered);
              buffered = '';
            }
          });
        },
      };
    }
    case 'streamable-http': {
      const transport = new StreamableHTTPClientTransport(new URL(config.url), {
        requestInit: { headers: { ...config.headers } },
      });
      return { transport, pid: () => undefined, onStderr: () => {} };
    }
    case 'sse': {
      const transport = new SSEClientTransport(new URL(config.url), {
        requestInit: { headers: { ...config.headers } },
      });
      return { transport, pid: () => undefined, onStderr: () => {} };
    }
  }
}

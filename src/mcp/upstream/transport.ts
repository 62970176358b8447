// Builds the SDK client transport for one configured upstream server: a stdio child process, Streamable HTTP or legacy SSE.
import { setMaxListeners } from 'node:events';
import { SSEClientTransport, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { AuthProvider, FetchLike, Transport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import type { ServerConfig } from '../../config/schema.js';

export interface UpstreamTransport {
  transport: Transport;
  /** The child process id for stdio servers, once started. */
  pid?(): number | undefined;
  /** Lines the child writes to stderr (stdio only). */
  onStderr?(listener: (line: string) => void): void;
}

/** Builds a fresh transport for each connection attempt to one server. */
export type TransportFactory = (config: ServerConfig) => UpstreamTransport;

/**
 * The SDK probes the era of a plain StdioClientTransport in a second, short-lived child process; a subclass is
 * probed in place on the one child. That keeps one process per server, and closing the transport really ends
 * the connection attempt (a sibling probe outlives close() by up to its timeout).
 */
class InPlaceStdioClientTransport extends StdioClientTransport {}

const marked = new WeakSet<AbortSignal>();

/**
 * fetch for the SDK's HTTP transports. They hand the same connection-wide AbortSignal to every request, and Node's
 * fetch keeps a listener on it per request until that request is garbage-collected: a few thousand requests
 * between two collections would print "MaxListenersExceededWarning: Possible EventTarget memory leak" on every
 * request. The listeners are released all the same, so the warning threshold is lifted for that signal only.
 */
export const upstreamFetch: FetchLike = (url, init) => {
  const signal = init?.signal;
  if (signal && !marked.has(signal)) {
    marked.add(signal);
    setMaxListeners(0, signal);
  }
  return fetch(url, init);
};

/** The transport the configuration names; `authProvider` gives a Streamable HTTP one a token per request. */
export const createUpstreamTransport = (config: ServerConfig, authProvider?: AuthProvider): UpstreamTransport => {
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
        fetch: upstreamFetch,
        ...(authProvider ? { authProvider } : {}),
      });
      return { transport };
    }
    case 'sse': {
      const transport = new SSEClientTransport(new URL(config.url), {
        requestInit: { headers: { ...config.headers } },
        fetch: upstreamFetch,
      });
      return { transport };
    }
  }
};

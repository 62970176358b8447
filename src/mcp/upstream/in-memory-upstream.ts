// An upstream connected to an SDK server in the same process over the SDK's linked in-memory pair, so that tests
// of the upstream and of what sits on it need no child process or socket. Not part of the build.
import { InMemoryTransport } from '@modelcontextprotocol/client';
import type { Transport } from '@modelcontextprotocol/client';
import { McpServer } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { parseConfig } from '../../config/load-config.js';
import { createLogger } from '../../log/logger.js';
import { Upstream } from './upstream.js';
import type { UpstreamOptions } from './upstream.js';

export interface InMemoryUpstream {
  upstream: Upstream;
  /** The server end of each connection attempt, newest last: closing one drops that connection. */
  serverSides: Transport[];
}

/**
 * An upstream named `key` whose every connection attempt reaches a fresh `build()` server. The server is served
 * with `serveStdio`, which picks the era from the opening message on any transport, as a real stdio server does.
 */
export function inMemoryUpstream(
  build: () => McpServer,
  { protocol = 'auto', key = 'up', ...options }: Partial<UpstreamOptions> & { protocol?: string; key?: string } = {},
): InMemoryUpstream {
  const server = { command: 'in-memory', protocol, restart: { initialDelay: 1, maxDelay: 5 } };
  const config = parseConfig({ mcpServers: { [key]: server } }, {}).mcpServers[key]!;
  const serverSides: Transport[] = [];
  const upstream = new Upstream(key, config, {
    logger: createLogger('silent'),
    clientInfo: { name: 'mcplex-test', version: '1' },
    onChange: () => {},
    transport: () => {
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      serverSides.push(serverSide);
      serveStdio(build, { transport: serverSide });
      return { transport: clientSide };
    },
    ...options,
  });
  return { upstream, serverSides };
}

/**
 * A 2025-era server whose subscriptions a test can watch (`held`, the URIs subscribed now; `asked`, every
 * subscribe and unsubscribe in the order it arrived) and hold up: each resources/subscribe waits for `answer()`.
 */
export function slowSubscribeServer() {
  const held = new Set<string>();
  const asked: string[] = [];
  let gates: Array<() => void> = [];
  const build = () => {
    const server = new McpServer({ name: 'slow', version: '1' }, { capabilities: { resources: { subscribe: true } } });
    server.registerResource('one', 'x://1', {}, (uri) => ({ contents: [{ uri: uri.href, text: 'one' }] }));
    server.server.setRequestHandler('resources/subscribe', async (request) => {
      asked.push(`subscribe ${request.params.uri}`);
      await new Promise<void>((resolve) => gates.push(resolve));
      held.add(request.params.uri);
      return {};
    });
    server.server.setRequestHandler('resources/unsubscribe', (request) => {
      asked.push(`unsubscribe ${request.params.uri}`);
      held.delete(request.params.uri);
      return {};
    });
    return server;
  };
  /** Lets every subscribe waiting so far finish. */
  const answer = () => {
    for (const resolve of gates) resolve();
    gates = [];
  };
  return { build, held, asked, answer };
}

// Slow and greedy clients: headers or bodies that never finish are cut after the configured timeouts, idle
// keep-alive connections are closed, and open connections are capped in all and (when configured) per address.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/log/logger.js';
import { startHttp } from '../src/main.js';
import type { RunningServer } from '../src/main.js';
import { startMcplex, waitFor } from './support/harness.js';

let mcplex: RunningServer;
let port: number;

beforeAll(async () => {
  mcplex = await startMcplex({ server: { timeouts: { headersMs: 300, requestMs: 600, keepAliveMs: 200 } } });
  port = Number(new URL(mcplex.url).port);
});
afterAll(async () => {
  await mcplex?.close();
});

/** A raw connection that records what the server sends and resolves `closed` when the server ends it. */
function rawConnection(
  toPort: number,
  localAddress = '127.0.0.1',
): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: toPort, localAddress });
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('error', () => {});
    socket.once('connect', () => resolve({ socket, received: () => text, closed }));
    socket.once('error', reject);
  });
}

describe('timeouts', () => {
  it('cuts a client whose headers never finish (regression: Node held it for about a minute)', async () => {
    const { socket, received, closed } = await rawConnection(port);
    socket.write('POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n');
    await closed;
    expect(received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('cuts a client whose body never finishes (regression: Node held it for about five minutes)', async () => {
    const { socket, received, closed } = await rawConnection(port);
    socket.write(
      'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"json',
    );
    await closed;
    expect(received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes an idle keep-alive connection after keepAliveMs', async () => {
    const { socket, received, closed } = await rawConnection(port);
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await closed;
    expect(received()).toMatch(/^HTTP\/1\.1 200/);
  });
});

describe('connection caps', () => {
  let capped: RunningServer;
  let cappedPort: number;
  beforeAll(async () => {
    capped = await startMcplex({ server: { maxConnections: 3, maxConnectionsPerAddress: 2 } });
    cappedPort = Number(new URL(capped.url).port);
  });
  afterAll(async () => {
    await capped?.close();
  });

  const healthz = async (connection: Awaited<ReturnType<typeof rawConnection>>) => {
    connection.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    for (let i = 0; i < 100 && connection.received() === ''; i++) await new Promise((r) => setTimeout(r, 20));
    return connection.received();
  };

  it('refuses connections past the cap per address and in all with a 503, and admits again once one closes', async () => {
    const first = await rawConnection(cappedPort, '127.0.0.1');
    const second = await rawConnection(cappedPort, '127.0.0.1');
    expect(await healthz(first)).toMatch(/^HTTP\/1\.1 200/);
    const third = await rawConnection(cappedPort, '127.0.0.1');
    await third.closed;
    expect(third.received()).toMatch(/^HTTP\/1\.1 503[\s\S]*from this address \(2\)/);
    // Another address still gets in, up to the total.
    const other = await rawConnection(cappedPort, '127.0.0.2');
    expect(await healthz(other)).toMatch(/^HTTP\/1\.1 200/);
    const fourth = await rawConnection(cappedPort, '127.0.0.3');
    await fourth.closed;
    expect(fourth.received()).toMatch(/^HTTP\/1\.1 503[\s\S]*too many open connections \(3\)/);
    second.socket.destroy();
    await second.closed;
    const again = await rawConnection(cappedPort, '127.0.0.3');
    expect(await healthz(again)).toMatch(/^HTTP\/1\.1 200/);
    for (const c of [first, other, again]) c.socket.destroy();
  });
});

describe('client aborts in the log', () => {
  // Each aborted request once wrote an error line: a connection flood wrote 30,000 of them.
  it('regression: are debug lines, not errors', async () => {
    const lines: { level: number; msg: string }[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n'))
          if (line) lines.push(JSON.parse(line) as (typeof lines)[number]);
        done();
      },
    });
    const config = parseConfig({ store: 'memory:', server: { port: 0 }, agent: { embeddings: false } });
    const logged = await startHttp(config, createLogger('debug', stream));
    try {
      const target = Number(new URL(logged.url).port);
      for (const path of ['/mcp', '/v1/chat/completions']) {
        for (let i = 0; i < 10; i++) {
          const { socket, closed } = await rawConnection(target);
          socket.write(
            `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"partial":`,
          );
          await new Promise((resolve) => setTimeout(resolve, 10));
          socket.destroy();
          await closed;
        }
      }
      await waitFor(() => lines.filter((l) => l.msg === 'client went away').length >= 20, 'the abort lines');
      expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    } finally {
      await logged.close();
    }
  });
});

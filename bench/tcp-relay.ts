// A raw TCP relay: every client connection gets its own connection to the target, and bytes are piped both ways
// without being parsed. The benchmark runs it beside mcplex and the plain HTTP proxy to show what the extra hop
// alone costs (socket reads, writes and wake-ups), apart from any HTTP machinery. It is not part of mcplex.
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

const target = new URL(process.argv[2] ?? '');
const server = createServer((client) => {
  client.setNoDelay(true);
  const upstream = connect(Number(target.port), target.hostname);
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`LISTENING http://127.0.0.1:${(server.address() as AddressInfo).port}${target.pathname}\n`);
});

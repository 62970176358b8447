import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
const [url, tool, era] = process.argv.slice(2);
const c = new Client(
  { name: 'b', version: '1' },
  { versionNegotiation: era === 'modern' ? { mode: { pin: '2026-07-28' } } : { mode: 'legacy' } },
);
await c.connect(new StreamableHTTPClientTransport(new URL(url!)));
const l: number[] = [];
for (let i = 0; i < 1500; i++) {
  const t = performance.now();
  await c.callTool({ name: tool!, arguments: { message: 'x' } });
  if (i > 300) l.push(performance.now() - t);
}
l.sort((a, b) => a - b);
console.log(era, tool, 'client p50', l[l.length >> 1]!.toFixed(3));
await c.close();
process.exit(0);

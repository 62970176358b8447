import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FetchRefused, guardedFetch, internalAddress } from './guarded-fetch.js';
import type { FetchPolicy } from './guarded-fetch.js';

let server: Server;
let port: number;
beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/metadata') res.writeHead(200, { 'content-type': 'application/json' }).end('{"issuer":"x"}');
    else if (req.url === '/big') res.writeHead(200).end('x'.repeat(10_000));
    else if (req.url === '/slow') setTimeout(() => res.writeHead(200).end('late'), 2_000);
    else if (req.url?.startsWith('/to?')) {
      res.writeHead(302, { location: new URL(req.url, 'http://x').searchParams.get('u')! }).end();
    } else res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const policy = (overrides: Partial<FetchPolicy> = {}): FetchPolicy => ({
  allowPrivate: ['127.0.0.1', 'localhost'],
  insecureHosts: ['127.0.0.1', 'localhost'],
  timeoutMs: 500,
  maxBytes: 1024,
  ...overrides,
});

describe('the guarded fetch for what upstreams name', () => {
  it('fetches from a configured development host', async () => {
    const response = await guardedFetch(policy())(`http://127.0.0.1:${port}/metadata`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ issuer: 'x' });
    const byName = await guardedFetch(policy())(`http://localhost:${port}/metadata`);
    expect(byName.status).toBe(200);
  });

  it('refuses plain http to a host that is not a configured development host', async () => {
    const fetch = guardedFetch(policy({ insecureHosts: [] }));
    await expect(fetch(`http://127.0.0.1:${port}/metadata`)).rejects.toThrow(FetchRefused);
    await expect(fetch(`http://127.0.0.1:${port}/metadata`)).rejects.toThrow(/is not https/);
    await expect(fetch('ftp://example.com/x')).rejects.toThrow(/is not https/);
  });

  it('refuses loopback and private addresses, literal or resolved, unless the host is allowed', async () => {
    const fetch = guardedFetch(policy({ allowPrivate: [], insecureHosts: ['127.0.0.1', 'localhost', '[::1]', '::1'] }));
    await expect(fetch(`http://127.0.0.1:${port}/metadata`)).rejects.toThrow(/127\.0\.0\.1 is an internal address/);
    await expect(fetch(`http://[::1]:${port}/metadata`)).rejects.toThrow(/::1 is an internal address/);
    // A name is checked by what it resolves to, where the connection is made.
    await expect(fetch(`http://localhost:${port}/metadata`)).rejects.toThrow(/localhost refused: .* internal address/);
    await expect(fetch('https://169.254.169.254/latest/meta-data')).rejects.toThrow(FetchRefused);
  });

  it('checks every redirect hop again, and follows none for a POST', async () => {
    const fetch = guardedFetch(policy({ allowPrivate: ['127.0.0.1'], insecureHosts: ['127.0.0.1', 'localhost'] }));
    const ok = await fetch(`http://127.0.0.1:${port}/to?u=${encodeURIComponent('/metadata')}`);
    expect(await ok.json()).toEqual({ issuer: 'x' });
    const toInternal = `http://127.0.0.1:${port}/to?u=${encodeURIComponent(`http://localhost:${port}/metadata`)}`;
    await expect(fetch(toInternal)).rejects.toThrow(/localhost refused/);
    const toHttp = `http://127.0.0.1:${port}/to?u=${encodeURIComponent('http://example.com/')}`;
    await expect(fetch(toHttp)).rejects.toThrow(/is not https/);
    const posted = await fetch(`http://127.0.0.1:${port}/to?u=${encodeURIComponent('/metadata')}`, { method: 'POST' });
    expect(posted.status).toBe(302);
  });

  it('gives up at the deadline and refuses an answer bigger than the bound', async () => {
    const fetch = guardedFetch(policy());
    await expect(fetch(`http://127.0.0.1:${port}/slow`)).rejects.toThrow(/abort|timeout/i);
    await expect(fetch(`http://127.0.0.1:${port}/big`)).rejects.toThrow(/more than 1024 bytes/);
  });

  it('names internal addresses of both families, an IPv4 address written as IPv6 among them', () => {
    for (const address of ['10.1.2.3', '172.20.0.1', '192.168.1.1', '127.0.0.1', '0.0.0.0', '169.254.169.254']) {
      expect(internalAddress(address)).toMatch(/internal/);
    }
    for (const address of ['::1', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1', '::ffff:127.0.0.1']) {
      expect(internalAddress(address)).toMatch(/internal/);
    }
    for (const address of ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946', '::ffff:93.184.216.34']) {
      expect(internalAddress(address)).toBeUndefined();
    }
  });
});

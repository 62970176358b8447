// The fetch mcplex's upstream OAuth client uses for what an upstream names (its protected-resource metadata, the
// authorization server's metadata, registration and token endpoints): HTTPS only, except for configured development
// hosts; no private, loopback, link-local or otherwise internal address unless its host is configured (the address
// is checked where the connection is made, so a name that resolves elsewhere later gains nothing); a deadline for
// the whole exchange; a bounded answer; redirects followed only for GET and HEAD, each hop checked again.
import { lookup as dnsLookup } from 'node:dns';
import type { LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';

export interface FetchPolicy {
  /** Hosts (names or addresses, lowercase) that may be reached at private or loopback addresses. */
  allowPrivate: readonly string[];
  /** Hosts that may be reached over plain http (development authorization servers). */
  insecureHosts: readonly string[];
  /** The whole exchange, connection to last byte. */
  timeoutMs: number;
  /** The largest answer read; a bigger one fails. */
  maxBytes: number;
}

export class FetchRefused extends Error {
  override readonly name = 'FetchRefused';
}

export type GuardedFetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** Addresses no upstream-named URL may reach unless its host is allowed. */
const INTERNAL = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  INTERNAL.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
  ['2002::', 16],
] as const) {
  INTERNAL.addSubnet(network, prefix, 'ipv6');
}

/** Why `address` may not be reached, or undefined when it may. */
export function internalAddress(address: string): string | undefined {
  const family = isIP(address);
  if (family === 0) return `${address} is not an address`;
  // An IPv4 address written as IPv6 (::ffff:10.0.0.1) is that IPv4 address.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped !== undefined) return internalAddress(mapped);
  return INTERNAL.check(address, family === 4 ? 'ipv4' : 'ipv6') ? `${address} is an internal address` : undefined;
}

const hostOf = (url: URL) => url.hostname.replace(/^\[|\]$/g, '').toLowerCase();

/** FetchRefused unless the URL's scheme and (literal) address are allowed. */
function checkUrl(url: URL, policy: FetchPolicy): void {
  const host = hostOf(url);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.insecureHosts.includes(host))) {
    throw new FetchRefused(`${url.origin} is not https (only configured development hosts may use http)`);
  }
  if (url.username !== '' || url.password !== '') throw new FetchRefused(`${url.origin}: credentials in a URL`);
  if (isIP(host) !== 0 && !policy.allowPrivate.includes(host)) {
    const why = internalAddress(host);
    if (why !== undefined) throw new FetchRefused(`${url.origin} refused: ${why}`);
  }
}

const REDIRECTS = 3;

/** A fetch that keeps to `policy` (see the top of this file). */
export function guardedFetch(policy: FetchPolicy): GuardedFetch {
  const dispatcher = new Agent({
    connect: {
      // Every address a name resolves to is checked where the connection is made.
      lookup(hostname, options, callback) {
        dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
          if (error) return callback(error, '', 0);
          const allowed = policy.allowPrivate.includes(hostname.toLowerCase());
          const refused = allowed ? undefined : addresses.map((a) => internalAddress(a.address)).find(Boolean);
          if (refused !== undefined) {
            return callback(new FetchRefused(`${hostname} refused: ${refused}`), '', 0);
          }
          if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
          const first = addresses[0]!;
          callback(null, first.address, first.family);
        });
      },
    },
  });
  return async (input, init = {}) => {
    let url = new URL(String(input));
    const signal = init.signal
      ? AbortSignal.any([init.signal, AbortSignal.timeout(policy.timeoutMs)])
      : AbortSignal.timeout(policy.timeoutMs);
    const method = (init.method ?? 'GET').toUpperCase();
    for (let hop = 0; ; hop++) {
      checkUrl(url, policy);
      let response: Awaited<ReturnType<typeof undiciFetch>>;
      try {
        response = await undiciFetch(url, {
          ...(init as Parameters<typeof undiciFetch>[1]),
          signal,
          redirect: 'manual',
          dispatcher,
        });
      } catch (error) {
        const cause = (error as { cause?: unknown }).cause;
        if (cause instanceof FetchRefused) throw cause;
        throw error;
      }
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location !== null) {
        if ((method === 'GET' || method === 'HEAD') && hop < REDIRECTS) {
          await response.body?.cancel();
          url = new URL(location, url);
          continue;
        }
      }
      const body = await readBounded(response, policy.maxBytes, url);
      return new Response(body, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
    }
  };
}

/** The whole body, or FetchRefused once it passes `maxBytes`. */
async function readBounded(
  response: Awaited<ReturnType<typeof undiciFetch>>,
  maxBytes: number,
  url: URL,
): Promise<Buffer | null> {
  if (response.body === null) return null;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    if (size > maxBytes) {
      await response.body.cancel().catch(() => {});
      throw new FetchRefused(`${url.origin} answered with more than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

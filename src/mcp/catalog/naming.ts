// Exposed names for tools and prompts: `<prefix>__<name>` (the bare name for an unprefixed server), always
// matching ^[a-zA-Z0-9_-]{1,64}$, deterministic (same inputs, same names, whatever the order servers became
// ready) and never dropping an entry.
import { createHash } from 'node:crypto';

export const MAX_NAME_LENGTH = 64;
export const NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;
const SEPARATOR = '__';
const HASH_LENGTH = 8;

export interface NameRequest {
  serverKey: string;
  /** "" for a server whose names are exposed without a prefix. */
  prefix: string;
  name: string;
}

/** `<prefix>__<name>`, or the name alone for an unprefixed server. */
function joined(request: NameRequest): string {
  return request.prefix === '' ? request.name : `${request.prefix}${SEPARATOR}${request.name}`;
}

export function shortHash(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, HASH_LENGTH);
}

function sanitize(value: string): string {
  return value.replace(/[^a-zA-Z0-9_-]/g, '_');
}

/** `<head>_<hash>` cut to fit the limit; the hash identifies the original server and name. */
function hashed(candidate: string, request: NameRequest): string {
  const hash = shortHash(request.serverKey, request.name);
  const head = candidate.slice(0, MAX_NAME_LENGTH - HASH_LENGTH - 1);
  return `${head}_${hash}`;
}

/** The name one entry asks for before collisions are considered. */
export function preferredName(request: NameRequest): string {
  const plain = joined(request);
  const clean = sanitize(plain);
  if (clean.length <= MAX_NAME_LENGTH && clean === plain) return clean;
  // Shortened or rewritten names carry a hash of the original so that two long names sharing a head stay apart.
  return clean.length <= MAX_NAME_LENGTH ? clean : hashed(clean, request);
}

/**
 * Assign a unique exposed name to every request. Entries whose preferred name is taken by another entry
 * get a hashed name; who keeps the plain name is decided by a stable order (exact names first, then by
 * server key and original name), so the outcome never depends on arrival order.
 */
export function assignNames(requests: readonly NameRequest[]): Map<NameRequest, string> {
  const byPreferred = new Map<string, NameRequest[]>();
  for (const request of requests) {
    const name = preferredName(request);
    const group = byPreferred.get(name);
    if (group) group.push(request);
    else byPreferred.set(name, [request]);
  }
  const result = new Map<NameRequest, string>();
  const taken = new Set<string>();
  for (const [name, group] of byPreferred) {
    if (group.length === 1) {
      result.set(group[0]!, name);
      taken.add(name);
    }
  }
  for (const [name, group] of byPreferred) {
    if (group.length === 1) continue;
    group.sort(compareForPlainName(name));
    group.forEach((request, index) => {
      let assigned = index === 0 ? name : hashed(sanitize(joined(request)), request);
      // A hashed name could in theory meet another entry's name; lengthen the hash input until it is free.
      for (let salt = 1; taken.has(assigned); salt++) {
        assigned = `${assigned.slice(0, MAX_NAME_LENGTH - HASH_LENGTH - 1)}_${shortHash(request.serverKey, request.name, String(salt))}`;
      }
      taken.add(assigned);
      result.set(request, assigned);
    });
  }
  return result;
}

function compareForPlainName(name: string) {
  return (a: NameRequest, b: NameRequest): number => {
    const exactA = joined(a) === name ? 0 : 1;
    const exactB = joined(b) === name ? 0 : 1;
    if (exactA !== exactB) return exactA - exactB;
    if (a.serverKey !== b.serverKey) return a.serverKey < b.serverKey ? -1 : 1;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  };
}

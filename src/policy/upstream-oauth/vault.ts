// Upstream credentials are sealed before they reach the store: AES-256-GCM under a key from the configuration (there
// is no default key), with the credential's own store key (kind, principal, upstream, issuer) as additional
// authenticated data, so that a sealed value copied to another principal's row, or changed at all, does not open.
// Old keys can be kept for opening while new values are sealed under the current one (key rotation).
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { CredentialKey } from '../../store/store.js';

export interface Vault {
  /** `value` (JSON) sealed for the credential `key`. */
  seal(key: CredentialKey, value: unknown): string;
  /** The value sealed for `key`; VaultError when it was sealed for another key, under an unknown key, or altered. */
  open(key: CredentialKey, sealed: string): unknown;
}

export class VaultError extends Error {
  override readonly name = 'VaultError';
}

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * A 32-byte key written as base64 (or base64url) or as 64 hex digits; TypeError for anything else, without the
 * value in the message.
 */
export function parseVaultKey(text: string, name: string): Buffer {
  const trimmed = text.trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, 'hex')
    : /^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)
      ? Buffer.from(trimmed, 'base64')
      : undefined;
  if (bytes?.length !== 32) {
    throw new TypeError(`${name} must be 32 random bytes, as base64 or 64 hex digits (openssl rand -base64 32)`);
  }
  return bytes;
}

interface DerivedKey {
  id: string;
  key: Buffer;
}

/** The sealing key derived from a configured one (HKDF-SHA256), and its id: what a sealed value names. */
function derive(secret: Buffer): DerivedKey {
  const key = Buffer.from(hkdfSync('sha256', secret, 'mcplex', 'upstream credentials v1', 32));
  return { id: createHash('sha256').update(key).digest('hex').slice(0, 12), key };
}

const aad = (key: CredentialKey) =>
  Buffer.from(JSON.stringify(['mcplex credential', key.kind, key.principal, key.upstream, key.issuer]));

/** A vault sealing with `current` and opening with it or any of `previous`. */
export function createVault(current: Buffer, previous: readonly Buffer[] = []): Vault {
  const sealing = derive(current);
  const opening = new Map<string, Buffer>([sealing, ...previous.map(derive)].map((k) => [k.id, k.key]));
  return {
    seal(key, value) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', sealing.key, iv);
      cipher.setAAD(aad(key));
      const body = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
      return `${VERSION}.${sealing.id}.${Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')}`;
    },
    open(key, sealed) {
      const [version, id, payload, extra] = sealed.split('.');
      if (version !== VERSION || id === undefined || payload === undefined || extra !== undefined) {
        throw new VaultError('not a sealed credential');
      }
      const secret = opening.get(id);
      if (secret === undefined) throw new VaultError('sealed under a key this configuration does not have');
      const bytes = Buffer.from(payload, 'base64url');
      if (bytes.length < IV_BYTES + TAG_BYTES) throw new VaultError('not a sealed credential');
      const decipher = createDecipheriv('aes-256-gcm', secret, bytes.subarray(0, IV_BYTES));
      decipher.setAAD(aad(key));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      let text: string;
      try {
        text = Buffer.concat([
          decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)),
          decipher.final(),
        ]).toString('utf8');
      } catch {
        throw new VaultError('the sealed credential does not open for this key (altered, or sealed for another)');
      }
      return JSON.parse(text) as unknown;
    },
  };
}

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CredentialKey } from '../../store/store.js';
import { VaultError, createVault, parseVaultKey } from './vault.js';

const key: CredentialKey = {
  kind: 'tokens',
  principal: 'user:alice',
  upstream: 'github',
  issuer: 'https://as.example',
};
const tokens = { access_token: 'gho_secret-access', refresh_token: 'ghr_secret-refresh', expires_in: 3600 };

describe('the credential vault', () => {
  it('opens what it sealed, and the sealed text holds nothing of the secret', () => {
    const vault = createVault(randomBytes(32));
    const sealed = vault.seal(key, tokens);
    expect(vault.open(key, sealed)).toEqual(tokens);
    expect(sealed).not.toContain('secret');
    expect(Buffer.from(sealed.split('.')[2]!, 'base64url').toString('latin1')).not.toContain('secret');
    // A fresh IV every time: the same value seals differently.
    expect(vault.seal(key, tokens)).not.toBe(sealed);
  });

  it('does not open a value moved to another principal, upstream, issuer or kind, nor an altered one', () => {
    const vault = createVault(randomBytes(32));
    const sealed = vault.seal(key, tokens);
    for (const moved of [
      { ...key, principal: 'user:bob' },
      { ...key, upstream: 'linear' },
      { ...key, issuer: 'https://evil.example' },
      { ...key, kind: 'client' as const },
    ]) {
      expect(() => vault.open(moved, sealed)).toThrow(VaultError);
    }
    const [version, id, payload] = sealed.split('.') as [string, string, string];
    const bytes = Buffer.from(payload, 'base64url');
    bytes[14] = bytes[14]! ^ 1;
    expect(() => vault.open(key, `${version}.${id}.${bytes.toString('base64url')}`)).toThrow(VaultError);
    expect(() => vault.open(key, 'v1.abc')).toThrow(VaultError);
    expect(() => vault.open(key, 'plain text')).toThrow(VaultError);
  });

  it('needs the key: another key does not open it; a previous key kept for rotation does', () => {
    const old = randomBytes(32);
    const sealed = createVault(old).seal(key, tokens);
    expect(() => createVault(randomBytes(32)).open(key, sealed)).toThrow(/key this configuration does not have/);
    const rotated = createVault(randomBytes(32), [old]);
    expect(rotated.open(key, sealed)).toEqual(tokens);
    expect(rotated.seal(key, tokens).split('.')[1]).not.toBe(sealed.split('.')[1]);
  });

  it('takes a 32-byte key as base64 or hex and refuses anything else without echoing it', () => {
    const bytes = randomBytes(32);
    expect(parseVaultKey(bytes.toString('base64'), 'k')).toEqual(bytes);
    expect(parseVaultKey(bytes.toString('base64url'), 'k')).toEqual(bytes);
    expect(parseVaultKey(bytes.toString('hex'), 'k')).toEqual(bytes);
    for (const bad of ['', 'changeme', randomBytes(16).toString('base64'), randomBytes(31).toString('hex')]) {
      expect(() => parseVaultKey(bad, 'auth.upstreamOAuth.credentialKey')).toThrow(
        /^auth\.upstreamOAuth\.credentialKey must be 32 random bytes/,
      );
    }
    try {
      parseVaultKey('not-a-key-but-a-secret', 'k');
    } catch (error) {
      expect(String(error)).not.toContain('not-a-key-but-a-secret');
    }
  });
});

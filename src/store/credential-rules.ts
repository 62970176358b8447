// What every store checks of a credential, and the order its lists come in: the same rules in each.
import { CREDENTIAL_KINDS } from './store.js';
import type { CredentialKey, CredentialRecord } from './store.js';

/** The longest principal id, upstream key, issuer or state id a credential is stored under. */
const MAX_KEY_PART = 2048;

/** TypeError for a key that no caller of the store should make. */
export function checkCredentialKey(key: CredentialKey): void {
  if (!(CREDENTIAL_KINDS as readonly string[]).includes(key.kind)) throw new TypeError(`unknown credential kind`);
  for (const part of [key.principal, key.upstream, key.issuer]) {
    if (typeof part !== 'string' || part.length > MAX_KEY_PART) {
      throw new TypeError('a credential key part must be a string of at most 2048 characters');
    }
  }
  // A sign-in in progress is found by its state alone (principal and upstream are inside its sealed value).
  if ((key.upstream === '' && key.kind !== 'flow') || key.issuer === '') {
    throw new TypeError('a credential needs an upstream and an issuer');
  }
}

export function checkCredentialRecord(record: CredentialRecord): void {
  checkCredentialKey(record);
  if (typeof record.sealed !== 'string' || record.sealed === '') throw new TypeError('a credential must be sealed');
}

/** Whether the record is past its deadline at `now`. */
export const credentialExpired = (record: Pick<CredentialRecord, 'expiresAt'>, now: number): boolean =>
  record.expiresAt !== undefined && record.expiresAt <= now;

/** By upstream, then issuer, then principal: how lists are ordered. */
export function compareCredentials(a: CredentialKey, b: CredentialKey): number {
  if (a.upstream !== b.upstream) return a.upstream < b.upstream ? -1 : 1;
  if (a.issuer !== b.issuer) return a.issuer < b.issuer ? -1 : 1;
  if (a.principal !== b.principal) return a.principal < b.principal ? -1 : 1;
  return 0;
}

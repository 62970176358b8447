import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../store/memory/memory-store.js';
import type { KeyStore } from '../../store/store.js';
import { createAuthenticator, generateKey } from './keys.js';

/** The memory key store, counting reads by id. */
function countingKeys(): KeyStore & { reads: string[] } {
  const keys = createMemoryStore().keys;
  const reads: string[] = [];
  return {
    reads,
    create: (record) => keys.create(record),
    get: (id) => (reads.push(id), keys.get(id)),
    list: () => keys.list(),
    revoke: (id, at) => keys.revoke(id, at),
  };
}

const madeUp = (id: string) => `Bearer mcx_${id.padStart(12, '0')}_${'A'.repeat(43)}`;

describe('createAuthenticator', () => {
  it('accepts a real key and refuses a made-up one, reading the store once per id within the cache time', async () => {
    const keys = countingKeys();
    const key = generateKey();
    await keys.create({
      id: key.id,
      name: 'real',
      secretHash: key.secretHash,
      scopes: {},
      limits: {},
      createdAt: 0,
      expiresAt: null,
      revokedAt: null,
    });
    const auth = createAuthenticator(keys);
    expect(await auth.authenticate(`Bearer ${key.token}`)).toMatchObject({ ok: true, principal: { id: key.id } });
    expect(await auth.authenticate(madeUp('nosuchkey'))).toEqual({ ok: false, reason: 'unknown' });
    await auth.authenticate(`Bearer ${key.token}`);
    await auth.authenticate(madeUp('nosuchkey'));
    expect(keys.reads).toHaveLength(2);
  });

  it('holds at most maxEntries ids, dropping the one read longest ago (made-up ids cannot grow it)', async () => {
    const keys = countingKeys();
    const auth = createAuthenticator(keys, { maxEntries: 3 });
    for (const id of ['a', 'b', 'c', 'd']) await auth.authenticate(madeUp(id));
    expect(keys.reads).toHaveLength(4);
    await auth.authenticate(madeUp('d'));
    expect(keys.reads).toHaveLength(4);
    // "a" was dropped to make room for "d": it is read again.
    await auth.authenticate(madeUp('a'));
    expect(keys.reads).toHaveLength(5);
  });
});

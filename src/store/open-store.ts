// Opens the Store named by a URL from the configuration. The SQLite driver is a native module, so it is loaded only
// when a sqlite: URL asks for it.

import { createMemoryStore } from './memory/memory-store.js';
import { StoreError, type Store } from './store.js';

const ACCEPTED =
  'accepted forms: "memory:", "sqlite:<path>" (for example "sqlite:./data/mcplex.db"), "sqlite::memory:"';

/** `memory:` → the in-process store; `sqlite:<path>` → a SQLite file (`sqlite::memory:` for an in-memory database). */
export async function openStore(url: string): Promise<Store> {
  if (url === 'memory:') return createMemoryStore();
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path === '') throw new StoreError('OPEN_FAILED', `store URL "${url}" names no database file; ${ACCEPTED}`);
    if (path.startsWith('//')) {
      throw new StoreError('OPEN_FAILED', `store URL "${url}": write the path directly after "sqlite:"; ${ACCEPTED}`);
    }
    const driver = await import('./sqlite/sqlite-store.js').catch((error: unknown) => {
      throw new StoreError(
        'OPEN_FAILED',
        `cannot load the SQLite driver (better-sqlite3) for ${path}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    });
    return driver.openSqliteStore(path);
  }
  throw new StoreError('OPEN_FAILED', `unsupported store URL "${url}"; ${ACCEPTED}`);
}

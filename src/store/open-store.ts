// Opens the Store named by a URL from the configuration. The drivers (better-sqlite3, a native module, and pg) are
// loaded only when a URL asks for them.

import { createMemoryStore } from './memory/memory-store.js';
import { redactUrl } from './redact-url.js';
import { StoreError, type Store } from './store.js';

const ACCEPTED =
  'accepted forms: "memory:", "sqlite:<path>" (for example "sqlite:./data/mcplex.db"), "sqlite::memory:", ' +
  '"postgres://user@host:5432/db" (or postgresql://; "?schema=name" picks the schema)';

/**
 * `memory:` → the in-process store; `sqlite:<path>` → a SQLite file (`sqlite::memory:` for an in-memory database);
 * `postgres://…` or `postgresql://…` → PostgreSQL, in the schema named by `?schema=` (else `public`).
 */
export async function openStore(url: string): Promise<Store> {
  if (url === 'memory:') return createMemoryStore();
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return openPostgres(url);
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

async function openPostgres(url: string): Promise<Store> {
  const driver = await import('./postgres/postgres-store.js').catch((error: unknown) => {
    throw new StoreError(
      'OPEN_FAILED',
      `cannot load the PostgreSQL driver (pg): ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  });
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreError('OPEN_FAILED', `store URL "${redactUrl(url)}" is not a valid URL; ${ACCEPTED}`);
  }
  const schema = parsed.searchParams.get('schema') ?? undefined;
  parsed.searchParams.delete('schema');
  return driver.openPostgresStore(parsed.toString(), schema === undefined ? {} : { schema });
}

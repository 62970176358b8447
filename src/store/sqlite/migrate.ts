// Brings a SQLite database up to the newest schema this code knows, one migration per transaction, and refuses a
// database written by a newer mcplex rather than guessing at its tables.

import type BetterSqlite3 from 'better-sqlite3';
import { StoreError } from '../store.js';
import type { Migration } from './migrations.js';

/**
 * Applies every migration newer than the database's, in order, each in its own IMMEDIATE transaction together with
 * its schema_version row; a failed migration leaves the database as it was before that migration.
 * Two processes opening a fresh file at once are safe: each migration re-reads the version under the write lock.
 * Throws StoreError MIGRATION_FAILED, naming `path`.
 */
export function migrate(db: BetterSqlite3.Database, migrations: readonly Migration[], path: string): number {
  checkOrder(migrations);
  const latest = migrations.at(-1)?.version ?? 0;
  try {
    db.exec(
      'CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)',
    );
  } catch (error) {
    throw failed(`cannot create the schema_version table in ${path}`, error);
  }
  const currentVersion = db.prepare<[], { version: number | null }>(
    'SELECT max(version) AS version FROM schema_version',
  );
  const record = db.prepare<[number, string, number]>(
    'INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)',
  );
  const current = (): number => currentVersion.get()?.version ?? 0;

  const tooNew = (version: number): StoreError =>
    new StoreError(
      'MIGRATION_FAILED',
      `the SQLite database at ${path} has schema version ${version}, newer than this mcplex knows (${latest}); ` +
        'upgrade mcplex or point it at another database',
    );

  const found = current();
  if (found > latest) throw tooNew(found);

  for (const migration of migrations) {
    const apply = db.transaction(() => {
      const version = current();
      if (version > latest) throw tooNew(version);
      if (version >= migration.version) return;
      db.exec(migration.sql);
      record.run(migration.version, migration.description, Date.now());
    });
    try {
      apply.immediate();
    } catch (error) {
      if (error instanceof StoreError) throw error;
      throw failed(`migration ${migration.version} (${migration.description}) of ${path} failed`, error);
    }
  }
  return current();
}

function checkOrder(migrations: readonly Migration[]): void {
  let previous = 0;
  for (const { version } of migrations) {
    if (!Number.isInteger(version) || version <= previous) {
      throw new StoreError('MIGRATION_FAILED', `migration versions must be increasing integers from 1; got ${version}`);
    }
    previous = version;
  }
}

function failed(message: string, cause: unknown): StoreError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new StoreError('MIGRATION_FAILED', `${message}: ${detail}`, { cause });
}

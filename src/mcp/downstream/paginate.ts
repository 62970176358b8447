// Opaque cursors over the merged lists: a cursor encodes the offset and the catalog version it came from.
import { McplexError } from '../../errors.js';

export interface Page<T> {
  items: readonly T[];
  nextCursor?: string;
}

export function encodeCursor(offset: number, version: number): string {
  return Buffer.from(JSON.stringify({ o: offset, v: version })).toString('base64url');
}

export function decodeCursor(cursor: string): { offset: number; version: number } {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null) {
      const { o, v } = parsed as { o?: unknown; v?: unknown };
      if (Number.isSafeInteger(o) && (o as number) >= 0 && Number.isSafeInteger(v)) {
        return { offset: o as number, version: v as number };
      }
    }
  } catch {
    // fall through to the error below
  }
  throw new McplexError('INVALID_CURSOR', `invalid cursor "${cursor}"`);
}

/**
 * One page of a list. A cursor from an older catalog version still pages by offset: the list may have
 * changed in between, which clients learn from list-changed notifications.
 */
export function paginate<T>(
  items: readonly T[],
  cursor: string | undefined,
  pageSize: number,
  version: number,
): Page<T> {
  const offset = cursor === undefined ? 0 : decodeCursor(cursor).offset;
  const end = offset + pageSize;
  const page = items.slice(offset, end);
  return end < items.length ? { items: page, nextCursor: encodeCursor(end, version) } : { items: page };
}

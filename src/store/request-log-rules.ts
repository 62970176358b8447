// What every RequestLogStore agrees on: the checks an append or a page request must pass before anything is read or
// written, and which entries a filter matches, so that bad arguments and filters behave alike in every store.

import type { LoggedRequest, RequestLogFilter } from './store.js';

/** The most entries one page may hold: a console page, not an export. */
export const MAX_REQUEST_PAGE = 500;

export function checkKeep(keep: number): void {
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keep must be a whole number ≥ 1, got ${keep}`);
}

export function checkRequestPage(filter: RequestLogFilter, page: { limit: number; before?: number }): void {
  if (!Number.isInteger(page.limit) || page.limit < 1 || page.limit > MAX_REQUEST_PAGE) {
    throw new RangeError(`limit must be a whole number from 1 to ${MAX_REQUEST_PAGE}, got ${page.limit}`);
  }
  if (page.before !== undefined && !Number.isSafeInteger(page.before)) {
    throw new RangeError(`before must be an entry id (a whole number), got ${page.before}`);
  }
  for (const bound of ['since', 'until'] as const) {
    const value = filter[bound];
    if (value !== undefined && !Number.isFinite(value)) {
      throw new RangeError(`${bound} must be a finite time, got ${value}`);
    }
  }
}

export function matchesRequest(entry: LoggedRequest, filter: RequestLogFilter): boolean {
  return (
    (filter.route === undefined || entry.route === filter.route) &&
    (filter.subject === undefined || entry.subject === filter.subject) &&
    (filter.target === undefined || entry.target === filter.target) &&
    (filter.status === undefined || entry.status === filter.status) &&
    (filter.since === undefined || entry.at >= filter.since) &&
    (filter.until === undefined || entry.at < filter.until)
  );
}

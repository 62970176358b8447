// One ordering for usage totals, shared by every store so that they agree on non-ASCII names too (SQLite's BINARY
// collation orders UTF-8 bytes, JavaScript orders UTF-16 code units; they differ above U+FFFF).

import type { UsageBucket, UsageTotal } from './store.js';

/** Sorts in place by subject, then model, comparing UTF-16 code units; returns the same array. */
export function sortUsageTotals(totals: UsageTotal[]): UsageTotal[] {
  return totals.sort(byName);
}

/** Sorts in place by bucket start, then subject, then model; returns the same array. */
export function sortUsageBuckets(buckets: UsageBucket[]): UsageBucket[] {
  return buckets.sort((a, b) => a.at - b.at || byName(a, b));
}

function byName(a: UsageTotal, b: UsageTotal): number {
  return compare(a.subject, b.subject) || compare(a.model, b.model);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

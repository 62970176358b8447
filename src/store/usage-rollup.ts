// Usage totals that stay fast over millions of rows, for every SQL store: each write also adds to an hourly rollup
// (subject, model, hour), in the same transaction, and a report sums the rollup over the whole hours of its range
// plus the raw rows of the partial hours at either end, so totals stay exact to the millisecond.
import type { UsageEntry, UsageFilter } from './store.js';

export const HOUR_MS = 3_600_000;

/** The start of the hour `at` falls in (milliseconds since the epoch). */
export function hourOf(at: number): number {
  return Math.floor(at / HOUR_MS) * HOUR_MS;
}

export interface HourTotal {
  subject: string;
  model: string;
  hour: number;
  requests: number;
  promptTokens: number;
  completionTokens: number;
}

/** A batch of entries summed per subject, model and hour: what the rollup gains from it. */
export function rollUp(entries: readonly UsageEntry[]): HourTotal[] {
  const sums = new Map<string, HourTotal>();
  for (const entry of entries) {
    const hour = hourOf(entry.at);
    const group = JSON.stringify([entry.subject, entry.model, hour]);
    const sum = sums.get(group);
    if (sum) {
      sum.requests += entry.requests;
      sum.promptTokens += entry.promptTokens;
      sum.completionTokens += entry.completionTokens;
    } else {
      sums.set(group, {
        subject: entry.subject,
        model: entry.model,
        hour,
        requests: entry.requests,
        promptTokens: entry.promptTokens,
        completionTokens: entry.completionTokens,
      });
    }
  }
  return [...sums.values()];
}

export interface TotalsQuery {
  /** SELECT subject, model, requests, prompt_tokens, completion_tokens, grouped by subject and model. */
  sql: string;
  /** The values of the query's parameters, by name. */
  params: Record<string, string | number>;
}

/**
 * The totals query for `filter` over the tables `usage` and `usage_hourly`. `placeholder(name)` writes a parameter
 * in the SQL dialect (`@name` for SQLite, `$n` for PostgreSQL); `sum` wraps each sum (a cast, where needed).
 */
export function totalsQuery(
  filter: UsageFilter,
  placeholder: (name: string) => string,
  sum: (expression: string) => string = (e) => e,
): TotalsQuery {
  const params: Record<string, string | number> = {};
  const p = (name: string, value: string | number): string => {
    params[name] = value;
    return placeholder(name);
  };
  const keys: string[] = [];
  if (filter.subject !== undefined) keys.push(`subject = ${p('subject', filter.subject)}`);
  if (filter.model !== undefined) keys.push(`model = ${p('model', filter.model)}`);
  const columns = 'subject, model, requests, prompt_tokens, completion_tokens';
  const select = (table: string, conditions: string[]) =>
    `SELECT ${columns} FROM ${table}${conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`}`;
  // Whole hours inside [since, until): from the rollup; what lies outside them, from the raw rows.
  const first = filter.since === undefined ? -Infinity : Math.ceil(filter.since / HOUR_MS) * HOUR_MS;
  const end = filter.until === undefined ? Infinity : hourOf(filter.until);
  const parts: string[] = [];
  if (first < end) {
    const hours = [...keys];
    if (Number.isFinite(first)) hours.push(`hour >= ${p('first', first)}`);
    if (Number.isFinite(end)) hours.push(`hour < ${p('end', end)}`);
    parts.push(select('usage_hourly', hours));
    if (filter.since !== undefined && filter.since < first) {
      parts.push(select('usage', [...keys, `at >= ${p('since', filter.since)}`, `at < ${p('first', first)}`]));
    }
    if (filter.until !== undefined && end < filter.until) {
      parts.push(select('usage', [...keys, `at >= ${p('end', end)}`, `at < ${p('until', filter.until)}`]));
    }
  } else {
    // The range lies within one hour (or is empty): raw rows only.
    const raw = [...keys];
    if (filter.since !== undefined) raw.push(`at >= ${p('since', filter.since)}`);
    if (filter.until !== undefined) raw.push(`at < ${p('until', filter.until)}`);
    parts.push(select('usage', raw));
  }
  const sql =
    `SELECT subject, model, ${sum('sum(requests)')} AS requests, ${sum('sum(prompt_tokens)')} AS prompt_tokens, ` +
    `${sum('sum(completion_tokens)')} AS completion_tokens FROM (${parts.join(' UNION ALL ')}) AS picked ` +
    'GROUP BY subject, model';
  return { sql, params };
}

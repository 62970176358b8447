// Usage totals that stay fast over millions of rows, for every SQL store: each write also adds to an hourly rollup
// (subject, model, hour), in the same transaction, and a report sums the rollup over the whole hours of its range
// plus the raw rows of the partial hours at either end, so totals (and series in buckets of whole hours) stay exact to
// the millisecond.
import type { UsageEntry, UsageFilter, UsageSeriesFilter } from './store.js';

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

/** Most buckets one series may span, so that a report's size (and its cost) stays bounded. */
export const MAX_SERIES_BUCKETS = 2000;

/** Throws RangeError for a series that no store should run, before anything is read. */
export function checkSeriesFilter(filter: UsageSeriesFilter): void {
  const { since, until, bucketMs } = filter;
  if (!Number.isInteger(bucketMs) || bucketMs < 1000) {
    throw new RangeError(`bucketMs must be a whole number of milliseconds ≥ 1000, got ${bucketMs}`);
  }
  if (!Number.isFinite(since) || !Number.isFinite(until)) {
    throw new RangeError(`since and until must be finite times, got ${since} and ${until}`);
  }
  if ((until - since) / bucketMs > MAX_SERIES_BUCKETS) {
    throw new RangeError(
      `a series may span at most ${MAX_SERIES_BUCKETS} buckets; ${until - since} ms in buckets of ${bucketMs} ms is more`,
    );
  }
}

/** The start of the bucket of `bucketMs` that `at` falls in: floor, also for times before the epoch. */
export function bucketOf(at: number, bucketMs: number): number {
  return at - (((at % bucketMs) + bucketMs) % bucketMs);
}

/** Writes one parameter, recording its value. */
type Param = (name: string, value: string | number) => string;

/** One SELECT of the part of a table a report reads; `time` is the table's time column (`at` or `hour`). */
type Select = (table: 'usage' | 'usage_hourly', time: string, conditions: string[]) => string;

/**
 * The SELECTs whose rows, taken together, are exactly the usage in `filter`'s range: whole hours inside
 * [since, until) from the rollup when `useHours`, and what lies outside them from the raw rows.
 */
function rangeParts(filter: UsageFilter, p: Param, select: Select, useHours: boolean): string[] {
  const keys: string[] = [];
  if (filter.subject !== undefined) keys.push(`subject = ${p('subject', filter.subject)}`);
  if (filter.model !== undefined) keys.push(`model = ${p('model', filter.model)}`);
  const first = filter.since === undefined ? -Infinity : Math.ceil(filter.since / HOUR_MS) * HOUR_MS;
  const end = filter.until === undefined ? Infinity : hourOf(filter.until);
  if (!useHours || first >= end) {
    // The range lies within one hour (or is empty), or the caller needs finer than hours: raw rows only.
    const raw = [...keys];
    if (filter.since !== undefined) raw.push(`at >= ${p('since', filter.since)}`);
    if (filter.until !== undefined) raw.push(`at < ${p('until', filter.until)}`);
    return [select('usage', 'at', raw)];
  }
  const hours = [...keys];
  if (Number.isFinite(first)) hours.push(`hour >= ${p('first', first)}`);
  if (Number.isFinite(end)) hours.push(`hour < ${p('end', end)}`);
  const parts = [select('usage_hourly', 'hour', hours)];
  if (filter.since !== undefined && filter.since < first) {
    parts.push(select('usage', 'at', [...keys, `at >= ${p('since', filter.since)}`, `at < ${p('first', first)}`]));
  }
  if (filter.until !== undefined && end < filter.until) {
    parts.push(select('usage', 'at', [...keys, `at >= ${p('end', end)}`, `at < ${p('until', filter.until)}`]));
  }
  return parts;
}

function parameters(placeholder: (name: string) => string): { params: Record<string, string | number>; p: Param } {
  const params: Record<string, string | number> = {};
  return {
    params,
    p: (name, value) => {
      params[name] = value;
      return placeholder(name);
    },
  };
}

const where = (conditions: string[]) => (conditions.length === 0 ? '' : ` WHERE ${conditions.join(' AND ')}`);

/**
 * The totals query for `filter` over the tables `usage` and `usage_hourly`. `placeholder(name)` writes a parameter
 * in the SQL dialect (`@name` for SQLite, `$n` for PostgreSQL); `sum` wraps each sum (a cast, where needed).
 */
export function totalsQuery(
  filter: UsageFilter,
  placeholder: (name: string) => string,
  sum: (expression: string) => string = (e) => e,
): TotalsQuery {
  const { params, p } = parameters(placeholder);
  const columns = 'subject, model, requests, prompt_tokens, completion_tokens';
  const parts = rangeParts(
    filter,
    p,
    (table, _time, conditions) => `SELECT ${columns} FROM ${table}${where(conditions)}`,
    true,
  );
  const sql =
    `SELECT subject, model, ${sum('sum(requests)')} AS requests, ${sum('sum(prompt_tokens)')} AS prompt_tokens, ` +
    `${sum('sum(completion_tokens)')} AS completion_tokens FROM (${parts.join(' UNION ALL ')}) AS picked ` +
    'GROUP BY subject, model';
  return { sql, params };
}

/**
 * The series query (SELECT at, subject, model, requests, prompt_tokens, completion_tokens, one row per bucket,
 * subject and model) for a filter that passed checkSeriesFilter, in the same terms as totalsQuery.
 * Buckets that are whole hours also start on whole hours, so each takes the rollup's hours whole and only the partial
 * hours at the ends of the range come from the raw rows: a month by day reads about 720 rollup rows per subject
 * and model instead of every raw row. Finer buckets (or ones that do not divide into hours) group the raw rows.
 */
export function seriesQuery(
  filter: UsageSeriesFilter,
  placeholder: (name: string) => string,
  sum: (expression: string) => string = (e) => e,
): TotalsQuery {
  const { params, p } = parameters(placeholder);
  const bucket = p('bucket', filter.bucketMs);
  // bucketOf in SQL: `%` truncates toward zero in both dialects, so the double modulo floors before the epoch too.
  const start = (time: string) => `${time} - ((${time} % ${bucket}) + ${bucket}) % ${bucket}`;
  const parts = rangeParts(
    filter,
    p,
    (table, time, conditions) =>
      `SELECT ${start(time)} AS at, subject, model, requests, prompt_tokens, completion_tokens FROM ${table}${where(conditions)}`,
    filter.bucketMs % HOUR_MS === 0,
  );
  const sql =
    `SELECT at, subject, model, ${sum('sum(requests)')} AS requests, ${sum('sum(prompt_tokens)')} AS prompt_tokens, ` +
    `${sum('sum(completion_tokens)')} AS completion_tokens FROM (${parts.join(' UNION ALL ')}) AS picked ` +
    'GROUP BY at, subject, model';
  return { sql, params };
}

// Moments as people write them on the command line and in query strings: `30d`, `12h`, `90m` (from now, ahead or
// ago), an ISO date, or milliseconds since the epoch. One parser for the CLI and the admin API, so they agree.

const UNITS = { d: 86_400_000, h: 3_600_000, m: 60_000 } as const;

/**
 * The moment `value` names, `relative` amounts counted `ago` or `ahead` of `now`; undefined when it is none of
 * the forms above.
 */
export function parseMoment(value: string, relative: 'ago' | 'ahead', now = Date.now()): number | undefined {
  const amount = /^(\d{1,9})([dhm])$/.exec(value);
  if (amount) {
    const span = Number(amount[1]) * UNITS[amount[2] as keyof typeof UNITS];
    return relative === 'ago' ? now - span : now + span;
  }
  if (/^\d{1,16}$/.test(value)) return Number(value);
  // Date.parse takes many shapes; only those that start like a date are asked.
  if (!/^\d{4}-\d{2}-\d{2}/.test(value)) return undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : date;
}

// Recent requests from the store's bounded log (every replica's): route, key, model or tool, status, latency,
// tokens and replica, filtered and paged on the server.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, duration, when } from '../api.js';
import { useKeyNames } from '../key-names.js';
import type { LoggedRequest } from '../../../src/store/records.js';

const PAGE = 50;
const FILTERS = ['route', 'subject', 'target', 'status'] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;

export function Requests() {
  const keyNames = useKeyNames();
  const [filters, setFilters] = useState<Filters>({});
  const [applied, setApplied] = useState<Filters>({});
  // The cursors of the pages before this one (newest first), so that "Newer" can go back.
  const [cursors, setCursors] = useState<(number | undefined)[]>([undefined]);
  const [rows, setRows] = useState<LoggedRequest[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  // Bumped by "Newest" and "Filter", which may leave the cursor as it was and must still load afresh.
  const [reload, setReload] = useState(0);
  const before = cursors[cursors.length - 1];

  useEffect(() => {
    const query = new URLSearchParams({ limit: String(PAGE) });
    for (const name of FILTERS) if (applied[name]) query.set(name, applied[name] ?? '');
    if (before !== undefined) query.set('before', String(before));
    let current = true;
    api<{ data: LoggedRequest[] }>(`admin/requests?${query.toString()}`)
      .then((r) => {
        if (!current) return;
        setRows(r.data);
        setProblem(null);
      })
      .catch((error: unknown) => current && setProblem(error instanceof ApiError ? error.message : String(error)));
    return () => {
      current = false;
    };
  }, [applied, before, reload]);

  function apply(event: Event) {
    event.preventDefault();
    // A key may be named as well as given by its id.
    const byName = [...keyNames.entries()].find(([, name]) => name === filters.subject)?.[0];
    setApplied({ ...filters, ...(byName ? { subject: byName } : {}) });
    setCursors([undefined]);
    setReload(reload + 1);
  }

  const last = rows?.[rows.length - 1];
  return (
    <section>
      <h2>Requests</h2>
      <form class="row controls" onSubmit={apply}>
        {FILTERS.map((name) => (
          <label key={name}>
            {name === 'subject' ? 'key (name or id)' : name === 'target' ? 'model or tool' : name}
            <input
              name={name}
              value={filters[name] ?? ''}
              onInput={(e) => setFilters({ ...filters, [name]: e.currentTarget.value })}
            />
          </label>
        ))}
        <button type="submit">Filter</button>
        <button
          type="button"
          class="link"
          onClick={() => {
            setCursors([undefined]);
            setReload(reload + 1);
          }}
        >
          Newest
        </button>
      </form>
      {problem && <p class="error">{problem}</p>}
      {rows && (
        <>
          <table class="requests">
            <thead>
              <tr>
                <th>When</th>
                <th>Route</th>
                <th>Key</th>
                <th>Model or tool</th>
                <th>Status</th>
                <th>Latency</th>
                <th>Tokens (in / out)</th>
                <th>Replica</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.id} data-route={r.route}>
                  <td>{when(r.at)}</td>
                  <td>{r.route}</td>
                  <td title={r.subject ?? ''}>
                    {r.subject === null ? 'anonymous' : (keyNames.get(r.subject) ?? r.subject)}
                  </td>
                  <td>
                    <code>{r.target}</code>
                  </td>
                  <td class={/^(2|ok)/.test(r.status) ? '' : 'bad'}>{r.status}</td>
                  <td>{duration(r.latencyMs)}</td>
                  <td>
                    {r.promptTokens} / {r.completionTokens}
                  </td>
                  <td>{r.replica}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {rows.length === 0 && <p>No requests.</p>}
          <div class="row">
            <button disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
              Newer
            </button>
            <button disabled={rows.length < PAGE || !last} onClick={() => last && setCursors([...cursors, last.id])}>
              Older
            </button>
          </div>
        </>
      )}
    </section>
  );
}

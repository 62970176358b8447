// Requests and tokens over time per key, per model or per MCP server, as a uPlot chart over a chosen time range,
// with the totals of that range below it.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { ApiError, api } from '../api.js';
import { useKeyNames } from '../key-names.js';
import type { UsageBucket } from '../../../src/store/records.js';

type Bucket = UsageBucket;

const RANGES = [
  { label: 'Last hour', since: '1h', spanMs: 3_600_000, bucketMs: 60_000 },
  { label: 'Last 6 hours', since: '6h', spanMs: 6 * 3_600_000, bucketMs: 300_000 },
  { label: 'Last 24 hours', since: '24h', spanMs: 24 * 3_600_000, bucketMs: 3_600_000 },
  { label: 'Last 7 days', since: '7d', spanMs: 7 * 24 * 3_600_000, bucketMs: 2 * 3_600_000 },
] as const;

type GroupBy = 'key' | 'model' | 'server';
type Measure = 'requests' | 'tokens';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#64748b'];
const MCP_PREFIX = 'mcp:';

/** The group an entry belongs to; undefined leaves it out (model calls when grouping by server, and the reverse). */
function groupOf(bucket: Bucket, by: GroupBy): string | undefined {
  const isMcp = bucket.model.startsWith(MCP_PREFIX);
  if (by === 'key') return bucket.subject;
  if (by === 'model') return isMcp ? undefined : bucket.model;
  if (!isMcp) return undefined;
  const rest = bucket.model.slice(MCP_PREFIX.length);
  return rest.split('/', 1)[0];
}

const measureOf = (b: Bucket, m: Measure) => (m === 'requests' ? b.requests : b.promptTokens + b.completionTokens);

/** uPlot's columns: the bucket times (seconds), then one series per group (the 8 largest; the rest as "other"). */
function columns(buckets: Bucket[], by: GroupBy, measure: Measure, since: number, until: number, bucketMs: number) {
  const start = Math.floor(since / bucketMs) * bucketMs;
  const times: number[] = [];
  for (let t = start; t < until; t += bucketMs) times.push(t);
  const totals = new Map<string, number>();
  for (const b of buckets) {
    const group = groupOf(b, by);
    if (group !== undefined) totals.set(group, (totals.get(group) ?? 0) + measureOf(b, measure));
  }
  const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([g]) => g);
  const kept = ranked.slice(0, 8);
  const names = ranked.length > 8 ? [...kept, 'other'] : kept;
  const series = names.map(() => times.map(() => 0));
  for (const b of buckets) {
    const group = groupOf(b, by);
    if (group === undefined) continue;
    const index = kept.includes(group) ? kept.indexOf(group) : names.length - 1;
    const slot = Math.floor((b.at - start) / bucketMs);
    const row = series[index];
    if (row && slot >= 0 && slot < times.length) row[slot] = (row[slot] ?? 0) + measureOf(b, measure);
  }
  return { names, totals, data: [times.map((t) => t / 1000), ...series] as uPlot.AlignedData };
}

function Chart(props: { names: string[]; data: uPlot.AlignedData; measure: Measure }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = `${props.names.join('\0')}|${props.measure}`;
  useEffect(() => {
    if (!box.current) return undefined;
    plot.current = new uPlot(
      {
        width: Math.max(320, box.current.clientWidth),
        height: 280,
        series: [
          {},
          ...props.names.map((name, i) => ({
            label: name,
            stroke: COLORS[i % COLORS.length] ?? '#000',
            width: 2,
            points: { show: false },
          })),
        ],
        axes: [{}, { label: props.measure, size: 60 }],
        scales: { x: { time: true } },
      },
      props.data,
      box.current,
    );
    return () => plot.current?.destroy();
  }, [shape]);
  useEffect(() => plot.current?.setData(props.data), [props.data]);
  return <div ref={box} class="chart" data-testid="usage-chart" />;
}

export function Usage() {
  const keyNames = useKeyNames();
  const [range, setRange] = useState(0);
  const [by, setBy] = useState<GroupBy>('key');
  const [measure, setMeasure] = useState<Measure>('requests');
  const [buckets, setBuckets] = useState<Bucket[] | null>(null);
  const [span, setSpan] = useState({ since: 0, until: 0, bucketMs: 60_000 });
  const [problem, setProblem] = useState<string | null>(null);
  const chosen = RANGES[range] ?? RANGES[0];

  useEffect(() => {
    // A new range starts empty, and an answer for the range before it is not shown.
    setBuckets(null);
    let current = true;
    const load = () => {
      // Aligned to the buckets, so that the first one is whole; the end is the server's (the bucket in progress
      // there), so that usage written a moment ago is in the answer.
      const since = Math.floor((Date.now() - chosen.spanMs) / chosen.bucketMs) * chosen.bucketMs;
      api<{ since: number; until: number; bucketMs: number; data: Bucket[] }>(
        `admin/usage/series?since=${since}&bucket=${chosen.bucketMs}`,
      )
        .then((s) => {
          if (!current) return;
          setSpan({ since: s.since, until: s.until, bucketMs: s.bucketMs });
          setBuckets(s.data);
          setProblem(null);
        })
        .catch((error: unknown) => current && setProblem(error instanceof ApiError ? error.message : String(error)));
    };
    load();
    const timer = setInterval(load, 5000);
    return () => {
      current = false;
      clearInterval(timer);
    };
  }, [range]);

  const named = buckets?.map((b) => ({ ...b, subject: keyNames.get(b.subject) ?? b.subject }));
  const shaped = named && columns(named, by, measure, span.since, span.until, span.bucketMs);
  const total = shaped ? [...shaped.totals.values()].reduce((a, b) => a + b, 0) : 0;
  return (
    <section>
      <h2>Usage</h2>
      <div class="row controls">
        <label>
          Range
          <select name="range" value={range} onChange={(e) => setRange(Number(e.currentTarget.value))}>
            {RANGES.map((r, i) => (
              <option key={r.since} value={i}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Per
          <select name="by" value={by} onChange={(e) => setBy(e.currentTarget.value as GroupBy)}>
            <option value="key">key</option>
            <option value="model">model</option>
            <option value="server">MCP server</option>
          </select>
        </label>
        <label>
          Show
          <select name="measure" value={measure} onChange={(e) => setMeasure(e.currentTarget.value as Measure)}>
            <option value="requests">requests</option>
            <option value="tokens">tokens</option>
          </select>
        </label>
      </div>
      {problem && <p class="error">{problem}</p>}
      {shaped && (
        <>
          <p data-testid="usage-total">
            {total} {measure} in this range
          </p>
          <Chart names={shaped.names} data={shaped.data} measure={measure} />
          <table>
            <thead>
              <tr>
                <th>{by === 'server' ? 'MCP server' : by}</th>
                <th>{measure}</th>
              </tr>
            </thead>
            <tbody>
              {[...shaped.totals.entries()]
                .sort((a, b) => b[1] - a[1])
                .map(([group, n]) => (
                  <tr key={group}>
                    <td>{group}</td>
                    <td>{n}</td>
                  </tr>
                ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

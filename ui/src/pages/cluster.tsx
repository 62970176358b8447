// The replicas that share this mcplex's store, as their heartbeats report them.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, duration, when } from '../api.js';

interface Replica {
  name: string;
  version: string;
  pid: number;
  startedAt: number;
  beatAt: number;
  sessionsInUse: number;
  upstreams: { key: string; state: string; tools: number }[];
  draining: boolean;
}

export function Cluster() {
  const [cluster, setCluster] = useState<{ replica: string; data: Replica[] } | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    const load = () =>
      api<{ replica: string; data: Replica[] }>('admin/cluster')
        .then((c) => {
          setCluster(c);
          setProblem(null);
        })
        .catch((error: unknown) => setProblem(error instanceof ApiError ? error.message : String(error)));
    void load();
    const timer = setInterval(() => void load(), 5000);
    return () => clearInterval(timer);
  }, []);
  return (
    <section>
      <h2>Cluster</h2>
      {problem && <p class="error">{problem}</p>}
      {cluster && (
        <>
          <p>
            {cluster.data.length} replica{cluster.data.length === 1 ? '' : 's'}; this page is served by{' '}
            <code>{cluster.replica}</code>.
          </p>
          <table>
            <thead>
              <tr>
                <th>Replica</th>
                <th>Version</th>
                <th>PID</th>
                <th>Up for</th>
                <th>Last heartbeat</th>
                <th>Sessions in use</th>
                <th>MCP servers ready</th>
                <th>State</th>
              </tr>
            </thead>
            <tbody>
              {cluster.data.map((r) => (
                <tr key={r.name} class={r.name === cluster.replica ? 'self' : ''}>
                  <td>{r.name}</td>
                  <td>{r.version}</td>
                  <td>{r.pid}</td>
                  <td>{duration(Date.now() - r.startedAt)}</td>
                  <td>{when(r.beatAt)}</td>
                  <td>{r.sessionsInUse}</td>
                  <td title={r.upstreams.map((u) => `${u.key}: ${u.state}`).join('\n')}>
                    {r.upstreams.filter((u) => u.state === 'ready').length} / {r.upstreams.length}
                  </td>
                  <td>{r.draining ? 'draining' : 'serving'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

// The MCP servers of this replica, live: their state arrives over a server-sent event stream as it changes.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, followEvents } from '../api.js';

export interface ServerStatus {
  name: string;
  transport: string;
  state: string;
  era: 'legacy' | 'modern' | null;
  protocolVersion: string | null;
  tools: number;
  resources: number;
  prompts: number;
  restarts: number;
  lastError: string | null;
  pid: number | null;
}

export function Servers() {
  const [servers, setServers] = useState<ServerStatus[] | null>(null);
  const [live, setLive] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const [restarting, setRestarting] = useState<string | null>(null);

  useEffect(() => {
    const stop = new AbortController();
    followEvents(
      'admin/servers/events',
      (event, data) => {
        if (event === 'servers') setServers((JSON.parse(data) as { data: ServerStatus[] }).data);
      },
      setLive,
      stop.signal,
    );
    return () => stop.abort();
  }, []);

  async function restart(name: string) {
    setRestarting(name);
    setProblem(null);
    try {
      await api(`admin/servers/${encodeURIComponent(name)}/restart`, { method: 'POST' });
    } catch (error) {
      setProblem(error instanceof ApiError ? error.message : String(error));
    } finally {
      setRestarting(null);
    }
  }

  return (
    <section>
      <h2>
        Servers <span class={live ? 'badge ok' : 'badge'}>{live ? 'live' : 'connecting…'}</span>
      </h2>
      {problem && <p class="error">{problem}</p>}
      {servers === null ? (
        <p>Loading…</p>
      ) : (
        <table class="servers">
          <thead>
            <tr>
              <th>Server</th>
              <th>State</th>
              <th>Era</th>
              <th>Transport</th>
              <th>Tools</th>
              <th>Resources</th>
              <th>Prompts</th>
              <th>Restarts</th>
              <th>Last error</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {servers.map((s) => (
              <tr key={s.name} data-server={s.name}>
                <td>{s.name}</td>
                <td>
                  <span class={`state ${s.state}`} data-state={s.state}>
                    {s.state}
                  </span>
                </td>
                <td title={s.protocolVersion ?? ''}>{s.era ?? '—'}</td>
                <td>{s.transport}</td>
                <td>{s.tools}</td>
                <td>{s.resources}</td>
                <td>{s.prompts}</td>
                <td>{s.restarts}</td>
                <td class="wrap">{s.lastError ?? ''}</td>
                <td>
                  <button disabled={restarting !== null} onClick={() => void restart(s.name)}>
                    {restarting === s.name ? 'Restarting…' : 'Restart'}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

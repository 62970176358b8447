// The console's shell: sign-in with an admin API key (kept in this tab's sessionStorage only), the navigation and
// the hash routes (#/servers, #/tools, …) that keep every page reachable under any sub-path.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ComponentType } from 'preact';
import { ApiError, SIGNED_OUT, api, storeKey, storedKey } from './api.js';
import { Servers } from './pages/servers.js';
import { Tools } from './pages/tools.js';
import { Keys } from './pages/keys.js';
import { Usage } from './pages/usage.js';
import { Requests } from './pages/requests.js';
import { Playground } from './pages/playground.js';
import { Cluster } from './pages/cluster.js';
import './style.css';

export interface Who {
  mode: 'keys' | 'none';
  replica: string | null;
  key: { id: string; name: string } | null;
}

const PAGES: { path: string; title: string; page: ComponentType<{ who: Who }> }[] = [
  { path: 'servers', title: 'Servers', page: Servers },
  { path: 'tools', title: 'Tools', page: Tools },
  { path: 'keys', title: 'Keys', page: Keys },
  { path: 'usage', title: 'Usage', page: Usage },
  { path: 'requests', title: 'Requests', page: Requests },
  { path: 'playground', title: 'Playground', page: Playground },
  { path: 'cluster', title: 'Cluster', page: Cluster },
];

function currentPath(): string {
  const path = location.hash.replace(/^#\/?/, '').split('?', 1)[0] ?? '';
  return PAGES.some((p) => p.path === path) ? path : 'servers';
}

function SignIn(props: { onSignedIn: (who: Who) => void; problem: string | null }) {
  const [key, setKey] = useState('');
  const [problem, setProblem] = useState<string | null>(props.problem);
  const [busy, setBusy] = useState(false);
  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    storeKey(key.trim());
    try {
      props.onSignedIn(await api<Who>('admin/whoami'));
    } catch (error) {
      storeKey(null);
      setProblem(error instanceof ApiError ? error.message : String(error));
    } finally {
      setBusy(false);
    }
  }
  return (
    <main class="signin">
      <h1>mcplex</h1>
      <form onSubmit={submit}>
        <label>
          Admin API key
          <input
            type="password"
            name="key"
            autocomplete="off"
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
            placeholder="mcx_…"
            required
          />
        </label>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {problem && <p class="error">{problem}</p>}
      </form>
      <p class="hint">The key stays in this browser tab and is sent only to this mcplex, in a header.</p>
    </main>
  );
}

function App() {
  const [who, setWho] = useState<Who | null>(null);
  const [checking, setChecking] = useState(true);
  const [problem, setProblem] = useState<string | null>(null);
  const [path, setPath] = useState(currentPath());

  useEffect(() => {
    const onHash = () => setPath(currentPath());
    addEventListener('hashchange', onHash);
    const onSignedOut = () => {
      storeKey(null);
      setWho(null);
      setProblem('mcplex no longer accepts this key (revoked or expired): sign in again');
    };
    addEventListener(SIGNED_OUT, onSignedOut);
    api<Who>('admin/whoami')
      .then(setWho)
      .catch((error: unknown) => {
        if (storedKey()) storeKey(null);
        if (error instanceof ApiError && error.status !== 401) setProblem(error.message);
      })
      .finally(() => setChecking(false));
    return () => {
      removeEventListener('hashchange', onHash);
      removeEventListener(SIGNED_OUT, onSignedOut);
    };
  }, []);

  if (checking) return <p class="loading">Loading…</p>;
  if (!who) return <SignIn onSignedIn={setWho} problem={problem} />;
  const Page = PAGES.find((p) => p.path === path)?.page ?? Servers;
  return (
    <div class="shell">
      <nav>
        <strong>mcplex</strong>
        {PAGES.map((p) => (
          <a key={p.path} href={`#/${p.path}`} class={p.path === path ? 'active' : ''}>
            {p.title}
          </a>
        ))}
        <span class="who">
          {who.mode === 'none' ? 'no keys (loopback)' : (who.key?.name ?? '')}
          {who.replica ? ` · ${who.replica}` : ''}
        </span>
        {who.mode === 'keys' && (
          <button
            class="link"
            onClick={() => {
              storeKey(null);
              setWho(null);
            }}
          >
            Sign out
          </button>
        )}
      </nav>
      <main>
        <Page who={who} />
      </main>
    </div>
  );
}

const mount = document.getElementById('app');
if (mount) render(<App />, mount);

// API keys: the list with scopes, limits and expiry; a form to create one (its secret shown once, here only); revoke.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, when } from '../api.js';
import type { Who } from '../main.js';

interface KeyInfo {
  id: string;
  name: string;
  scopes: { models?: string[]; servers?: string[]; tools?: string[]; admin?: boolean };
  limits: { rpm?: number; tpm?: number; maxConcurrent?: number };
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

const list = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function scopesText(scopes: KeyInfo['scopes']): string {
  const parts = [
    scopes.admin ? 'admin' : '',
    scopes.models ? `models: ${scopes.models.join(', ')}` : '',
    scopes.servers ? `servers: ${scopes.servers.join(', ')}` : '',
    scopes.tools ? `tools: ${scopes.tools.join(', ')}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : 'everything';
}

function limitsText(limits: KeyInfo['limits']): string {
  const parts = [
    limits.rpm !== undefined ? `${limits.rpm} rpm` : '',
    limits.tpm !== undefined ? `${limits.tpm} tpm` : '',
    limits.maxConcurrent !== undefined ? `${limits.maxConcurrent} at once` : '',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : '—';
}

function CreateKey(props: { onCreated: (secret: string, key: KeyInfo) => void }) {
  const [fields, setFields] = useState<Record<string, string>>({});
  const [admin, setAdmin] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const field = (name: string) => fields[name] ?? '';
  const set = (name: string) => (e: { currentTarget: HTMLInputElement }) =>
    setFields({ ...fields, [name]: e.currentTarget.value });

  async function submit(event: Event) {
    event.preventDefault();
    setProblem(null);
    const body: Record<string, unknown> = { name: field('name') };
    for (const axis of ['models', 'servers', 'tools']) if (field(axis)) body[axis] = list(field(axis));
    for (const limit of ['rpm', 'tpm', 'maxConcurrent']) if (field(limit)) body[limit] = Number(field(limit));
    if (field('expiresAt')) body.expiresAt = new Date(field('expiresAt')).toISOString();
    if (admin) body.admin = true;
    try {
      const created = await api<KeyInfo & { key: string }>('admin/keys', { method: 'POST', body });
      const { key: secret, ...key } = created;
      props.onCreated(secret, key);
      setFields({});
      setAdmin(false);
    } catch (error) {
      setProblem(error instanceof ApiError ? error.message : String(error));
    }
  }

  return (
    <form class="grid-form" onSubmit={submit}>
      <label>
        Name *
        <input name="name" required value={field('name')} onInput={set('name')} />
      </label>
      <label>
        Models <small>(comma-separated; empty: all)</small>
        <input name="models" value={field('models')} onInput={set('models')} />
      </label>
      <label>
        MCP servers <small>(empty: all)</small>
        <input name="servers" value={field('servers')} onInput={set('servers')} />
      </label>
      <label>
        Tools <small>(names or globs; empty: all)</small>
        <input name="tools" value={field('tools')} onInput={set('tools')} />
      </label>
      <label>
        Requests per minute
        <input name="rpm" type="number" min="1" value={field('rpm')} onInput={set('rpm')} />
      </label>
      <label>
        Tokens per minute
        <input name="tpm" type="number" min="1" value={field('tpm')} onInput={set('tpm')} />
      </label>
      <label>
        At once
        <input
          name="maxConcurrent"
          type="number"
          min="1"
          value={field('maxConcurrent')}
          onInput={set('maxConcurrent')}
        />
      </label>
      <label>
        Expires
        <input name="expiresAt" type="datetime-local" value={field('expiresAt')} onInput={set('expiresAt')} />
      </label>
      <label class="check">
        <input type="checkbox" name="admin" checked={admin} onChange={(e) => setAdmin(e.currentTarget.checked)} />
        Admin (opens /admin and this console)
      </label>
      <div>
        <button type="submit">Create key</button>
      </div>
      {problem && <p class="error">{problem}</p>}
    </form>
  );
}

export function Keys({ who }: { who: Who }) {
  const [keys, setKeys] = useState<KeyInfo[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);
  const load = () =>
    api<{ data: KeyInfo[] }>('admin/keys')
      .then((k) => setKeys(k.data))
      .catch((error: unknown) => setProblem(error instanceof ApiError ? error.message : String(error)));
  useEffect(() => void load(), []);

  async function revoke(key: KeyInfo) {
    if (!confirm(`Revoke the key "${key.name}"? Requests with it are refused from now on.`)) return;
    try {
      await api(`admin/keys/${encodeURIComponent(key.id)}`, { method: 'DELETE' });
      await load();
    } catch (error) {
      setProblem(error instanceof ApiError ? error.message : String(error));
    }
  }

  if (who.mode === 'none') {
    return (
      <section>
        <h2>Keys</h2>
        <p>
          This mcplex runs without API keys (loopback only). Set <code>"auth": {'{"mode": "keys"}'}</code> to use them.
        </p>
      </section>
    );
  }
  return (
    <section>
      <h2>Keys</h2>
      {problem && <p class="error">{problem}</p>}
      {secret && (
        <div class="secret" data-testid="new-secret">
          <p>
            The secret of <strong>{secret.name}</strong>. It is shown only now: copy it somewhere safe.
          </p>
          <code class="secret-value">{secret.value}</code>
          <div class="row">
            <button onClick={() => void navigator.clipboard?.writeText(secret.value)}>Copy</button>
            <button class="link" onClick={() => setSecret(null)}>
              Done
            </button>
          </div>
        </div>
      )}
      <details open={keys?.length === 0}>
        <summary>New key</summary>
        <CreateKey
          onCreated={(value, key) => {
            setSecret({ name: key.name, value });
            void load();
          }}
        />
      </details>
      {keys && (
        <table class="keys">
          <thead>
            <tr>
              <th>Name</th>
              <th>Id</th>
              <th>Scopes</th>
              <th>Limits</th>
              <th>Created</th>
              <th>Expires</th>
              <th>State</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => {
              const state = k.revokedAt ? 'revoked' : k.expiresAt && k.expiresAt <= Date.now() ? 'expired' : 'active';
              return (
                <tr key={k.id} data-key={k.name}>
                  <td>{k.name}</td>
                  <td>
                    <code>{k.id}</code>
                  </td>
                  <td>{scopesText(k.scopes)}</td>
                  <td>{limitsText(k.limits)}</td>
                  <td>{when(k.createdAt)}</td>
                  <td>{when(k.expiresAt)}</td>
                  <td data-state={state}>{state}</td>
                  <td>{state === 'active' && <button onClick={() => void revoke(k)}>Revoke</button>}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

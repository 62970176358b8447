// A chat with a model of /v1/models, streamed; with MCP servers chosen, it is mcplex's tool-running chat (the `mcp`
// extension) and each round of tool calls is shown as it happens.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api, chatStream, duration } from '../api.js';
import type { ServerStatus } from './servers.js';

interface ToolStep {
  step: number;
  tool_calls: {
    id: string;
    name: string;
    server: string | null;
    arguments: string;
    is_error: boolean;
    output: string;
    duration_ms: number;
  }[];
}

type Turn =
  | { kind: 'user'; text: string }
  | { kind: 'assistant'; text: string; steps: ToolStep[]; usage?: { prompt_tokens: number; completion_tokens: number } }
  | { kind: 'error'; text: string };

interface Chunk {
  choices?: { delta?: { content?: string | null } }[];
  mcp_step?: ToolStep;
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
}

export function Playground() {
  const [models, setModels] = useState<string[]>([]);
  const [servers, setServers] = useState<string[]>([]);
  const [model, setModel] = useState('');
  const [chosen, setChosen] = useState<Set<string>>(new Set());
  const [turns, setTurns] = useState<Turn[]>([]);
  const [input, setInput] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const stop = useRef<AbortController | null>(null);

  useEffect(() => {
    api<{ data: { id: string }[] }>('v1/models')
      .then((m) => {
        setModels(m.data.map((x) => x.id));
        setModel((current) => current || (m.data[0]?.id ?? ''));
      })
      .catch((error: unknown) => setProblem(error instanceof ApiError ? error.message : String(error)));
    api<{ data: ServerStatus[] }>('admin/servers')
      .then((s) => setServers(s.data.map((x) => x.name)))
      .catch(() => {});
    return () => stop.current?.abort();
  }, []);

  async function send(event: Event) {
    event.preventDefault();
    const text = input.trim();
    if (!text || !model) return;
    const history: Turn[] = [...turns, { kind: 'user', text }];
    const answer: Extract<Turn, { kind: 'assistant' }> = { kind: 'assistant', text: '', steps: [] };
    setTurns([...history, answer]);
    setInput('');
    setBusy(true);
    const messages = history.flatMap((t) =>
      t.kind === 'error' ? [] : [{ role: t.kind, content: t.text } as { role: string; content: string }],
    );
    stop.current = new AbortController();
    try {
      await chatStream(
        { model, messages, ...(chosen.size > 0 ? { mcp: { servers: [...chosen] } } : {}) },
        (chunk: Chunk) => {
          const delta = chunk.choices?.[0]?.delta?.content;
          if (delta) answer.text += delta;
          if (chunk.mcp_step) answer.steps = [...answer.steps, chunk.mcp_step];
          if (chunk.usage) answer.usage = chunk.usage;
          setTurns([...history, { ...answer }]);
        },
        stop.current.signal,
      );
    } catch (error) {
      if (!stop.current.signal.aborted) {
        const message = error instanceof ApiError ? error.message : String(error);
        setTurns([...history, { ...answer }, { kind: 'error', text: message }]);
      }
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="playground">
      <h2>Playground</h2>
      {problem && <p class="error">{problem}</p>}
      <div class="row controls">
        <label>
          Model
          <select name="model" value={model} onChange={(e) => setModel(e.currentTarget.value)}>
            {models.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <fieldset>
          <legend>MCP tools of</legend>
          {servers.map((s) => (
            <label key={s} class="check">
              <input
                type="checkbox"
                name={`server-${s}`}
                checked={chosen.has(s)}
                onChange={(e) => {
                  const next = new Set(chosen);
                  if (e.currentTarget.checked) next.add(s);
                  else next.delete(s);
                  setChosen(next);
                }}
              />
              {s}
            </label>
          ))}
        </fieldset>
        <button type="button" class="link" disabled={busy} onClick={() => setTurns([])}>
          New chat
        </button>
      </div>
      <div class="transcript">
        {turns.map((t, i) => {
          if (t.kind === 'user')
            return (
              <div key={i} class="turn user">
                {t.text}
              </div>
            );
          if (t.kind === 'error')
            return (
              <div key={i} class="turn error">
                {t.text}
              </div>
            );
          return (
            <div key={i} class="turn assistant">
              {t.steps.map((step) => (
                <div key={step.step} class="tool-round" data-testid="tool-round">
                  <strong>Tool round {step.step}</strong>
                  {step.tool_calls.map((call) => (
                    <div key={call.id} class={call.is_error ? 'tool-call is-error' : 'tool-call'}>
                      <code>{call.name}</code> <small>{call.server ?? ''}</small>{' '}
                      <small>{duration(call.duration_ms)}</small>
                      <pre class="text">{call.arguments}</pre>
                      <pre class="text output">{call.output}</pre>
                    </div>
                  ))}
                </div>
              ))}
              <div class="answer" data-testid="answer">
                {t.text || (busy && i === turns.length - 1 ? '…' : '')}
              </div>
              {t.usage && (
                <small class="usage">
                  {t.usage.prompt_tokens} prompt + {t.usage.completion_tokens} completion tokens
                </small>
              )}
            </div>
          );
        })}
      </div>
      <form class="row" onSubmit={send}>
        <textarea
          name="message"
          rows={2}
          placeholder="Message"
          value={input}
          onInput={(e) => setInput(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) {
              e.preventDefault();
              (e.currentTarget.form as HTMLFormElement | null)?.requestSubmit();
            }
          }}
        />
        <button type="submit" disabled={busy || !model}>
          Send
        </button>
        {busy && (
          <button type="button" class="link" onClick={() => stop.current?.abort()}>
            Stop
          </button>
        )}
      </form>
    </section>
  );
}

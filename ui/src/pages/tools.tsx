// The merged catalog as MCP clients see it (tools/list on mcplex's own /mcp), searchable, with a "try it" form per
// tool that calls it through /mcp and shows the result as a client would.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, api, mcp } from '../api.js';
import { SchemaForm } from '../schema-form.js';
import type { JsonSchema } from '../schema-form.js';
import { ToolResultView } from '../tool-result.js';
import type { ToolResult } from '../tool-result.js';
import type { ServerStatus } from './servers.js';

interface Tool {
  name: string;
  title?: string;
  description?: string;
  inputSchema: JsonSchema;
  outputSchema?: JsonSchema;
  annotations?: Record<string, unknown>;
}

/** Every page of tools/list. */
async function listTools(): Promise<Tool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 1000; page += 1) {
    const result = await mcp<{ tools: Tool[]; nextCursor?: string }>('tools/list', cursor ? { cursor } : {});
    tools.push(...result.tools);
    cursor = result.nextCursor;
    if (!cursor) break;
  }
  return tools;
}

/** The server whose namespace prefix (`<server>__`) the exposed name carries: the longest that matches. */
function ownerOf(tool: string, servers: readonly string[]): string {
  let owner = '';
  for (const s of servers) if (tool.startsWith(`${s}__`) && s.length > owner.length) owner = s;
  return owner || '—';
}

export function Tools() {
  const [tools, setTools] = useState<Tool[] | null>(null);
  const [servers, setServers] = useState<string[]>([]);
  const [query, setQuery] = useState('');
  const [selected, setSelected] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [result, setResult] = useState<ToolResult | null>(null);
  const [callProblem, setCallProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const calling = useRef<string | null>(null);

  useEffect(() => {
    listTools()
      .then(setTools)
      .catch((error: unknown) => setProblem(error instanceof ApiError ? error.message : String(error)));
    api<{ data: ServerStatus[] }>('admin/servers')
      .then((s) => setServers(s.data.map((x) => x.name)))
      .catch(() => {});
  }, []);

  const shown = useMemo(() => {
    const q = query.trim().toLowerCase();
    const all = tools ?? [];
    return q ? all.filter((t) => `${t.name} ${t.title ?? ''} ${t.description ?? ''}`.toLowerCase().includes(q)) : all;
  }, [tools, query]);
  const tool = tools?.find((t) => t.name === selected);

  async function run(args: Record<string, unknown>) {
    if (!tool) return;
    setBusy(true);
    setResult(null);
    setCallProblem(null);
    const name = tool.name;
    calling.current = name;
    try {
      const answer = await mcp<ToolResult>('tools/call', { name, arguments: args }, name);
      // Shown only under the tool it belongs to: another may have been picked meanwhile.
      if (calling.current === name) setResult(answer);
    } catch (error) {
      if (calling.current === name) setCallProblem(error instanceof ApiError ? error.message : String(error));
    } finally {
      if (calling.current === name) setBusy(false);
    }
  }

  return (
    <section class="split">
      <div class="list">
        <h2>Tools {tools && <small>({tools.length})</small>}</h2>
        <input
          type="search"
          name="search"
          placeholder="Search tools"
          value={query}
          onInput={(e) => setQuery(e.currentTarget.value)}
        />
        {problem && <p class="error">{problem}</p>}
        {tools === null && !problem && <p>Loading…</p>}
        <ul class="tools">
          {shown.map((t) => (
            <li key={t.name}>
              <button
                class={t.name === selected ? 'tool active' : 'tool'}
                data-tool={t.name}
                onClick={() => {
                  setSelected(t.name);
                  setResult(null);
                  setCallProblem(null);
                  setBusy(false);
                  calling.current = null;
                }}
              >
                <code>{t.name}</code>
                <small>{ownerOf(t.name, servers)}</small>
              </button>
            </li>
          ))}
        </ul>
      </div>
      <div class="detail">
        {tool ? (
          <>
            <h3>
              <code>{tool.name}</code>
            </h3>
            <p>
              Server: <strong>{ownerOf(tool.name, servers)}</strong>
              {tool.title ? ` · ${tool.title}` : ''}
            </p>
            {tool.description && <p class="description">{tool.description}</p>}
            <h4>Try it</h4>
            <SchemaForm key={tool.name} schema={tool.inputSchema} busy={busy} onRun={(args) => void run(args)} />
            {callProblem && <p class="error">{callProblem}</p>}
            {result && <ToolResultView result={result} />}
            <details>
              <summary>Input schema</summary>
              <pre class="text">{JSON.stringify(tool.inputSchema, null, 2)}</pre>
            </details>
            {tool.outputSchema && (
              <details>
                <summary>Output schema</summary>
                <pre class="text">{JSON.stringify(tool.outputSchema, null, 2)}</pre>
              </details>
            )}
          </>
        ) : (
          <p class="hint">Pick a tool to see its schema and try it.</p>
        )}
      </div>
    </section>
  );
}

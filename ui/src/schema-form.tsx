// A form for a tool's arguments, generated from its inputSchema: a field per top-level property (text, number,
// checkbox, choice, or JSON for anything structured), or the whole arguments object as JSON.
import { useState } from 'preact/hooks';

export interface JsonSchema {
  type?: string | string[];
  description?: string;
  enum?: unknown[];
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  [keyword: string]: unknown;
}

type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'enum' | 'json';

function kindOf(schema: JsonSchema): Kind {
  if (Array.isArray(schema.enum) && schema.enum.every((v) => typeof v === 'string')) return 'enum';
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  if (type === 'string' || type === 'number' || type === 'integer' || type === 'boolean') return type;
  return 'json';
}

/** The arguments the fields stand for, or the reason they do not make one. */
function argumentsOf(
  properties: Record<string, JsonSchema>,
  required: ReadonlySet<string>,
  values: Record<string, string | boolean>,
): { ok: true; args: Record<string, unknown> } | { ok: false; problem: string } {
  const args: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(properties)) {
    const value = values[name];
    const kind = kindOf(schema);
    if (kind === 'boolean') {
      if (value !== undefined) args[name] = value === true;
      continue;
    }
    if (value === undefined || value === '') {
      if (required.has(name)) return { ok: false, problem: `${name} is required` };
      continue;
    }
    const text = String(value);
    if (kind === 'number' || kind === 'integer') {
      const n = Number(text);
      if (!Number.isFinite(n) || (kind === 'integer' && !Number.isInteger(n))) {
        return { ok: false, problem: `${name} must be ${kind === 'integer' ? 'a whole number' : 'a number'}` };
      }
      args[name] = n;
    } else if (kind === 'json') {
      try {
        args[name] = JSON.parse(text);
      } catch {
        return { ok: false, problem: `${name} must be JSON` };
      }
    } else args[name] = text;
  }
  return { ok: true, args };
}

export function SchemaForm(props: {
  schema: JsonSchema;
  busy: boolean;
  onRun: (args: Record<string, unknown>) => void;
}) {
  const properties = props.schema.properties ?? {};
  const required = new Set(props.schema.required ?? []);
  const [values, setValues] = useState<Record<string, string | boolean>>({});
  const [raw, setRaw] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const set = (name: string, value: string | boolean) => setValues({ ...values, [name]: value });

  function submit(event: Event) {
    event.preventDefault();
    setProblem(null);
    if (raw !== null) {
      try {
        const parsed: unknown = JSON.parse(raw || '{}');
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
          setProblem('the arguments must be a JSON object');
          return;
        }
        props.onRun(parsed as Record<string, unknown>);
      } catch {
        setProblem('the arguments are not valid JSON');
      }
      return;
    }
    const made = argumentsOf(properties, required, values);
    if (made.ok) props.onRun(made.args);
    else setProblem(made.problem);
  }

  function toggleRaw() {
    if (raw !== null) return setRaw(null);
    const made = argumentsOf(properties, new Set(), values);
    setRaw(JSON.stringify(made.ok ? made.args : {}, null, 2));
  }

  return (
    <form class="tool-form" onSubmit={submit}>
      {raw !== null ? (
        <label>
          Arguments (JSON)
          <textarea rows={8} value={raw} onInput={(e) => setRaw(e.currentTarget.value)} />
        </label>
      ) : (
        Object.entries(properties).map(([name, schema]) => {
          const kind = kindOf(schema);
          const label = (
            <span>
              {name}
              {required.has(name) ? ' *' : ''}
              {schema.description && <small> {schema.description}</small>}
            </span>
          );
          const value = values[name];
          if (kind === 'boolean') {
            return (
              <label key={name} class="check">
                <input
                  type="checkbox"
                  name={name}
                  checked={value === true}
                  onChange={(e) => set(name, e.currentTarget.checked)}
                />
                {label}
              </label>
            );
          }
          if (kind === 'enum') {
            return (
              <label key={name}>
                {label}
                <select name={name} value={String(value ?? '')} onChange={(e) => set(name, e.currentTarget.value)}>
                  <option value="">—</option>
                  {(schema.enum as string[]).map((v) => (
                    <option key={v} value={v}>
                      {v}
                    </option>
                  ))}
                </select>
              </label>
            );
          }
          if (kind === 'json') {
            return (
              <label key={name}>
                {label} <small>(JSON)</small>
                <textarea
                  name={name}
                  rows={3}
                  value={String(value ?? '')}
                  onInput={(e) => set(name, e.currentTarget.value)}
                />
              </label>
            );
          }
          const common = {
            name,
            value: String(value ?? ''),
            placeholder: schema.default === undefined ? '' : String(schema.default),
            onInput: (e: { currentTarget: HTMLInputElement }) => set(name, e.currentTarget.value),
          };
          return (
            <label key={name}>
              {label}
              {kind === 'string' ? (
                <input type="text" {...common} />
              ) : (
                <input type="number" step={kind === 'integer' ? 1 : 'any'} {...common} />
              )}
            </label>
          );
        })
      )}
      <div class="row">
        <button type="submit" disabled={props.busy}>
          {props.busy ? 'Running…' : 'Run'}
        </button>
        <button type="button" class="link" onClick={toggleRaw}>
          {raw === null ? 'Edit as JSON' : 'Back to the form'}
        </button>
      </div>
      {problem && <p class="error">{problem}</p>}
    </form>
  );
}

// The tool-running chat: a /v1/chat/completions request with an `mcp` field gets the aggregated MCP tools its key
// may use; mcplex runs the model's tool calls (in parallel), feeds the results back and loops until the model
// answers or `max_steps` rounds of tools have run. Streamed requests get the answer as it is generated and one
// chunk per tool round (`mcp_step`).
import type { ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { CallToolResult, Tool } from '@modelcontextprotocol/client';
import { sendJson } from '../wire/json.js';
import { McplexError, errorMessage } from '../errors.js';
import type { Catalog } from '../mcp/catalog/catalog.js';
import { compileGlobs, globsProblem } from '../wire/glob.js';
import { callRoutedTool } from '../mcp/downstream/aggregate-server.js';
import type { McpCallGuard } from '../policy/limits/mcp-call-limits.js';
import { scopedView } from '../mcp/downstream/scoped-view.js';
import type { Principal } from '../policy/auth/keys.js';
import { scopeCheck } from '../policy/auth/scopes.js';
import type { ScopeRequirements } from '../policy/auth/required-scopes.js';
import type { LlmCore } from '../llm/core.js';
import { toOpenAiError } from '../llm/openai-errors.js';
import { addToolCallDeltas } from '../llm/tool-call-deltas.js';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionRequest,
  ChatMessage,
  FinishReason,
  FunctionTool,
  ToolCall,
  Usage,
} from '../llm/types.js';
import { conversationQuery } from './tool-selection/index.js';
import type { ToolSelector } from './tool-selection/index.js';
import { currentTracing } from '../telemetry/tracing.js';
import type { TraceParent } from '../telemetry/tracing.js';

/** The `mcp` field of a chat request. */
export interface McpOptions {
  /** Server keys whose tools the model may use; `["*"]` (the default) for every server the key may reach. */
  servers: string[];
  /** Exposed tool names or globs to narrow the set further. */
  tools?: string[];
  /** Rounds of tool calls before the model must answer. */
  max_steps: number;
  /** `always`: the model's tool calls go back to the client instead of being run. */
  require_approval: 'never' | 'always';
  /** How many tools at most reach the model when the catalog is large (tool selection). */
  top_k?: number;
}

export interface ToolStep {
  step: number;
  tool_calls: {
    id: string;
    name: string;
    server: string | null;
    arguments: string;
    is_error: boolean;
    /** The result as given to the model (text), cut to 2000 characters here. */
    output: string;
    duration_ms: number;
  }[];
}

const MAX_STEPS_LIMIT = 32;

export function parseMcpOptions(value: unknown, servers: readonly string[]): McpOptions {
  const bad = (message: string, param = 'mcp') => new McplexError('LLM_BAD_REQUEST', message, { data: { param } });
  if (value === true) value = {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw bad('mcp must be an object, e.g. {"servers": ["*"], "max_steps": 8}');
  }
  const input = value as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!['servers', 'tools', 'max_steps', 'require_approval', 'top_k'].includes(key)) {
      throw bad(`unknown field mcp.${key} (known: servers, tools, max_steps, require_approval, top_k)`, `mcp.${key}`);
    }
  }
  const list = (field: string): string[] | undefined => {
    const v = input[field];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s !== '')) {
      throw bad(`mcp.${field} must be an array of strings`, `mcp.${field}`);
    }
    return v as string[];
  };
  const chosen = list('servers') ?? ['*'];
  for (const server of chosen) {
    if (server !== '*' && !servers.includes(server)) {
      throw bad(`unknown MCP server "${server}" in mcp.servers`, 'mcp.servers');
    }
  }
  const steps = input.max_steps ?? 8;
  if (typeof steps !== 'number' || !Number.isInteger(steps) || steps < 1 || steps > MAX_STEPS_LIMIT) {
    throw bad(`mcp.max_steps must be a whole number from 1 to ${MAX_STEPS_LIMIT}`, 'mcp.max_steps');
  }
  const approval = input.require_approval ?? 'never';
  if (approval !== 'never' && approval !== 'always') {
    throw bad('mcp.require_approval must be "never" or "always"', 'mcp.require_approval');
  }
  const topK = input.top_k;
  if (topK !== undefined && (typeof topK !== 'number' || !Number.isInteger(topK) || topK < 1)) {
    throw bad('mcp.top_k must be a whole number above 0', 'mcp.top_k');
  }
  const tools = list('tools');
  const problem = tools && globsProblem(tools);
  if (problem) throw bad(`mcp.tools: ${problem}`, 'mcp.tools');
  return {
    servers: chosen,
    ...(tools ? { tools } : {}),
    max_steps: steps,
    require_approval: approval,
    ...(topK !== undefined ? { top_k: topK as number } : {}),
  };
}

/** A tool result as the text a model reads. */
export function resultText(result: CallToolResult): string {
  const parts: string[] = [];
  for (const content of result.content ?? []) {
    if (content.type === 'text') parts.push(content.text);
    else if (content.type === 'resource' && 'text' in content.resource) parts.push(String(content.resource.text));
    else if (content.type === 'resource_link') parts.push(`[resource ${content.uri}]`);
    else parts.push(`[${content.type}${'mimeType' in content ? ` ${String(content.mimeType)}` : ''}]`);
  }
  if (parts.length === 0 && result.structuredContent !== undefined)
    parts.push(JSON.stringify(result.structuredContent));
  const text = parts.join('\n');
  return result.isError ? `Error: ${text}` : text;
}

/**
 * The stored conversation a run of the tool-running chat belongs to. `commit` appends what the run added (the
 * assistant's tool calls, the tool results and the answer) after the turn's new messages, and returns where the
 * conversation stands; it throws (409) when another turn was appended meanwhile.
 */
export interface AgentTurn {
  commit(added: ChatMessage[]): Promise<{ id: string; version: number }>;
}

/** Runs a chat request that carries the `mcp` extension (the tool-running loop), answering on `res`. */
export type AgentRunner = (
  principal: Principal,
  body: Record<string, unknown>,
  res: ServerResponse,
  /** The stored conversation the request belongs to: the run's messages are appended to it. */
  turn?: AgentTurn,
) => Promise<void>;

export interface AgentOptions {
  /** The LLM core the loop's model calls go through (its gate and router, as any request). */
  llm: Pick<LlmCore, 'complete' | 'completeStream'>;
  catalog: Catalog;
  /** Configured MCP server keys. */
  servers: readonly string[];
  /** Ranks tools when a request would offer more than its threshold. */
  selector?: ToolSelector;
  /** Default `top_k` for the selector. */
  topK?: number;
  /** The servers' limits and the accounting of the tool rounds (the caller's limits apply to its model calls). */
  calls?: McpCallGuard;
  /**
   * OAuth scopes tools need: a token short of them is not offered those tools (a call of a tool not offered goes
   * back to the client, as a tool of its own would, and is never run here).
   */
  scopes?: ScopeRequirements | undefined;
}

interface Offered {
  tools: FunctionTool[];
  /** Exposed name → owning server, for the tools mcplex runs. */
  servers: Map<string, string>;
  method: string;
}

/**
 * An assistant message without the tool calls of a last step, which were neither run nor answered: kept in a
 * conversation they would leave calls without results, which backends refuse on the next turn.
 */
function withoutToolCalls(message: ChatMessage): ChatMessage {
  const { tool_calls: _dropped, ...rest } = message as ChatMessage & { tool_calls?: unknown };
  return rest as ChatMessage;
}

export function createAgent(options: AgentOptions) {
  const { llm, catalog } = options;

  async function offer(principal: Principal, mcp: McpOptions, messages: ChatMessage[]): Promise<Offered> {
    const scope = scopeCheck(principal.scopes);
    const wanted = mcp.servers.includes('*') ? undefined : new Set(mcp.servers);
    const patterns = mcp.tools ? compileGlobs(mcp.tools) : undefined;
    const chosen: { tool: Tool; server: string }[] = [];
    for (const tool of scopedView(catalog, scope).tools) {
      const server = catalog.resolveTool(tool.name).upstream.key;
      if (wanted && !wanted.has(server)) continue;
      if (options.scopes && options.scopes.missing(principal, server, tool.name).length > 0) continue;
      if (patterns && !patterns(tool.name)) continue;
      chosen.push({ tool, server });
    }
    let method = 'all';
    let selected = chosen;
    if (options.selector) {
      const query = conversationQuery(messages);
      const selection = await options.selector.select(
        chosen.map((c) => ({ name: c.tool.name, description: c.tool.description, inputSchema: c.tool.inputSchema })),
        query,
      );
      const limit = mcp.top_k;
      const names = new Set(selection.tools.slice(0, limit ?? selection.tools.length).map((t) => t.name));
      selected = chosen.filter((c) => names.has(c.tool.name));
      method = selection.method;
    }
    return {
      tools: selected.map(({ tool }) => ({
        type: 'function',
        function: {
          name: tool.name,
          ...(tool.description ? { description: tool.description } : {}),
          parameters: tool.inputSchema as Record<string, unknown>,
        },
      })),
      servers: new Map(selected.map(({ tool, server }) => [tool.name, server])),
      method,
    };
  }

  /** Runs one tool call; a failure is a result the model reads, never an error of the request. */
  async function runTool(principal: Principal, call: ToolCall, servers: Map<string, string>, trace?: TraceParent) {
    const started = performance.now();
    let output: string;
    let isError = false;
    try {
      let args: Record<string, unknown>;
      try {
        args = call.function.arguments ? (JSON.parse(call.function.arguments) as Record<string, unknown>) : {};
      } catch {
        throw new Error(`the arguments are not valid JSON: ${call.function.arguments.slice(0, 200)}`);
      }
      const { calls } = options;
      const result = await callRoutedTool(
        catalog,
        { name: call.function.name, arguments: args },
        trace ? { trace } : {},
        undefined,
        scopeCheck(principal.scopes),
        calls ? (routed) => calls.admit(principal, routed, false) : undefined,
      );
      output = resultText(result);
      isError = result.isError === true;
    } catch (error) {
      output = `Error: ${errorMessage(error)}`;
      isError = true;
    }
    return {
      message: { role: 'tool' as const, tool_call_id: call.id, content: output },
      report: {
        id: call.id,
        name: call.function.name,
        server: servers.get(call.function.name) ?? null,
        arguments: call.function.arguments,
        is_error: isError,
        output: output.length > 2000 ? `${output.slice(0, 2000)}…` : output,
        duration_ms: Math.round(performance.now() - started),
      },
    };
  }

  function addUsage(total: Usage, usage: Usage | undefined | null): void {
    if (!usage) return;
    total.prompt_tokens += usage.prompt_tokens;
    total.completion_tokens += usage.completion_tokens ?? 0;
    total.total_tokens += usage.total_tokens ?? usage.prompt_tokens + (usage.completion_tokens ?? 0);
  }

  /** What to do with the model's tool calls: run them, or hand them to the client. */
  function needsClient(calls: ToolCall[], offered: Offered, mcp: McpOptions): boolean {
    return mcp.require_approval === 'always' || calls.some((c) => !offered.servers.has(c.function.name));
  }

  async function run(
    principal: Principal,
    body: Record<string, unknown>,
    res: ServerResponse,
    turn?: AgentTurn,
  ): Promise<void> {
    const mcp = parseMcpOptions(body.mcp, options.servers);
    // The traced /v1 request this chat answers: its model calls and tool calls are children of its span.
    const trace = currentTracing()?.parentOf(res);
    const { mcp: _mcp, stream, stream_options: streamOptions, ...rest } = body;
    const request = rest as unknown as ChatCompletionRequest;
    if (request.n !== undefined && request.n !== null && request.n !== 1) {
      throw new McplexError('LLM_BAD_REQUEST', 'n must be 1 with mcp', { data: { param: 'n' } });
    }
    const messages: ChatMessage[] = [...request.messages];
    /** Where this run's own messages begin: what a conversation appends. */
    const own = messages.length;
    const offered = await offer(principal, mcp, messages);
    const clientTools = (request.tools ?? []).filter((t) => t.type === 'function');
    for (const tool of clientTools) {
      if (offered.servers.has(tool.function.name)) {
        throw new McplexError('LLM_BAD_REQUEST', `tool "${tool.function.name}" is also an MCP tool`, {
          data: { param: 'tools' },
        });
      }
    }
    const tools = [...clientTools, ...offered.tools];
    const extension = { tools_offered: offered.tools.length, selection: offered.method };
    if (stream === true) {
      const includeUsage = (streamOptions as { include_usage?: boolean } | undefined)?.include_usage === true;
      await runStreamed(
        principal,
        request,
        messages,
        tools,
        offered,
        mcp,
        res,
        includeUsage,
        extension,
        turn,
        own,
        trace,
      );
      return;
    }
    const usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    const steps: ToolStep[] = [];
    for (let step = 1; ; step++) {
      const last = step > mcp.max_steps;
      const completion: ChatCompletion = await llm.complete(
        principal,
        {
          ...request,
          messages,
          ...(tools.length > 0 ? { tools, tool_choice: last ? 'none' : (request.tool_choice ?? 'auto') } : {}),
        },
        trace,
      );
      addUsage(usage, completion.usage);
      const message = completion.choices[0]?.message;
      const calls = message?.tool_calls ?? [];
      if (last || calls.length === 0 || needsClient(calls, offered, mcp)) {
        // A conversation keeps the whole exchange; a conflict (409) is the answer instead, nothing appended.
        const reply = message && (last ? withoutToolCalls(message) : message);
        const conversation = turn && (await turn.commit([...messages.slice(own), ...(reply ? [reply] : [])]));
        const answer = {
          ...completion,
          usage,
          mcp: { ...extension, steps },
          ...(conversation ? { conversation } : {}),
        };
        sendJson(
          res,
          200,
          answer,
          conversation ? { 'x-conversation-version': String(conversation.version) } : undefined,
        );
        return;
      }
      messages.push({ role: 'assistant', content: message?.content ?? null, tool_calls: calls });
      const results = await Promise.all(calls.map((call) => runTool(principal, call, offered.servers, trace)));
      messages.push(...results.map((r) => r.message));
      steps.push({ step, tool_calls: results.map((r) => r.report) });
    }
  }

  async function runStreamed(
    principal: Principal,
    request: ChatCompletionRequest,
    messages: ChatMessage[],
    tools: FunctionTool[],
    offered: Offered,
    mcp: McpOptions,
    res: ServerResponse,
    includeUsage: boolean,
    extension: Record<string, unknown>,
    turn: AgentTurn | undefined,
    own: number,
    trace: TraceParent | undefined,
  ): Promise<void> {
    const id = `chatcmpl-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const model = request.model;
    const chunk = (fields: Partial<ChatCompletionChunk>): string =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], ...fields })}\n\n`;
    let started = false;
    const send = (text: string) => {
      if (!started) {
        started = true;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write(chunk({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }));
      }
      if (!res.destroyed) res.write(text);
    };
    const usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    try {
      for (let step = 1; ; step++) {
        const last = step > mcp.max_steps;
        const calls: ToolCall[] = [];
        let content = '';
        let finish: FinishReason | null = null;
        await llm.completeStream(
          principal,
          {
            ...request,
            messages,
            ...(tools.length > 0 ? { tools, tool_choice: last ? 'none' : (request.tool_choice ?? 'auto') } : {}),
          },
          (piece) => {
            addUsage(usage, piece.usage);
            const choice = piece.choices[0];
            if (!choice) return;
            const delta = choice.delta;
            // The answer (and any narration before tool calls) goes out as it is generated.
            if (typeof delta.content === 'string' && delta.content !== '') {
              content += delta.content;
              send(chunk({ choices: [{ index: 0, delta: { content: delta.content }, finish_reason: null }] }));
            }
            addToolCallDeltas(calls, delta.tool_calls);
            if (choice.finish_reason) finish = choice.finish_reason;
          },
          trace,
        );
        const made = calls.filter(Boolean);
        if (last || made.length === 0 || needsClient(made, offered, mcp)) {
          if (made.length > 0 && !last) {
            const deltas = made.map((call, index) => ({ index, ...call }));
            send(chunk({ choices: [{ index: 0, delta: { tool_calls: deltas }, finish_reason: null }] }));
          }
          send(chunk({ choices: [{ index: 0, delta: {}, finish_reason: finish ?? 'stop' }], mcp: extension }));
          if (includeUsage) send(chunk({ usage }));
          if (turn) {
            // The exchange is appended before [DONE]; a last chunk names the conversation's new version.
            const reply: ChatMessage = {
              role: 'assistant',
              content: content || null,
              ...(made.length > 0 ? { tool_calls: made } : {}),
            };
            const kept = last ? withoutToolCalls(reply) : reply;
            send(chunk({ conversation: await turn.commit([...messages.slice(own), kept]) }));
          }
          send('data: [DONE]\n\n');
          res.end();
          return;
        }
        messages.push({ role: 'assistant', content: content || null, tool_calls: made });
        const results = await Promise.all(made.map((call) => runTool(principal, call, offered.servers, trace)));
        messages.push(...results.map((r) => r.message));
        const report: ToolStep = { step, tool_calls: results.map((r) => r.report) };
        send(chunk({ mcp_step: report }));
      }
    } catch (error) {
      if (!started) throw error;
      // The stream began: the failure goes out in band, as an OpenAI error event.
      // A backend's error as it came; mcplex's own (a conversation that moved on: 409) with status and code.
      const { body } = toOpenAiError(error, 502);
      if (!res.destroyed) res.end(`data: ${JSON.stringify(body)}\n\n`);
    }
  }

  const runner: AgentRunner = run;
  return { run: runner };
}

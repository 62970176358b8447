// Sampling answered by the shared LLM: an upstream server's `sampling/createMessage` (pushed in 2025-11-25, an
// input request in 2026-07-28) becomes an OpenAI chat completion under the server's own identity, and the answer
// goes back as a CreateMessageResult. Tools in sampling map onto the model's tool calling.
import { ProtocolError } from '@modelcontextprotocol/client';
import type { CreateMessageRequestParams } from '@modelcontextprotocol/client';
import { McplexError, errorMessage } from '../../errors.js';
import type { ChatCompletion, ChatCompletionRequest, ChatMessage, ContentPart, FunctionTool } from '../../llm/types.js';
import type { Principal } from '../../policy/auth/keys.js';

export interface SamplingPolicy {
  mode: 'gateway' | 'client' | 'deny';
  /** Models the server may use; every configured one when absent. */
  models?: string[];
  defaultModel?: string;
  /** Upper bound on the tokens one request may ask for. */
  maxTokens?: number;
}

type Content = { type: string; [key: string]: unknown };

const asArray = (content: unknown): Content[] =>
  (Array.isArray(content) ? content : content === undefined ? [] : [content]) as Content[];

/**
 * The configured model for a request: the first model hint that is a substring of an allowed model name (the
 * specification's rule for hints), else the policy's default, else the first allowed model.
 */
export function chooseModel(
  preferences: CreateMessageRequestParams['modelPreferences'],
  allowed: readonly string[],
  defaultModel: string | undefined,
): string | undefined {
  for (const hint of preferences?.hints ?? []) {
    const wanted = hint.name?.toLowerCase();
    if (!wanted) continue;
    const match = allowed.find((name) => name.toLowerCase().includes(wanted));
    if (match) return match;
  }
  if (defaultModel && allowed.includes(defaultModel)) return defaultModel;
  return allowed[0];
}

function mediaPart(content: Content): ContentPart | undefined {
  if (content.type === 'text') return { type: 'text', text: String(content.text ?? '') };
  if (content.type === 'image') {
    return { type: 'image_url', image_url: { url: `data:${String(content.mimeType)};base64,${String(content.data)}` } };
  }
  if (content.type === 'audio') {
    const format = String(content.mimeType ?? '').split('/')[1] ?? 'wav';
    return { type: 'input_audio', input_audio: { data: String(content.data), format } };
  }
  return undefined;
}

/** A sampling request as an OpenAI chat request for `model`. */
export function toChatRequest(
  params: CreateMessageRequestParams,
  model: string,
  maxTokens?: number,
): ChatCompletionRequest {
  const messages: ChatMessage[] = [];
  if (params.systemPrompt) messages.push({ role: 'system', content: params.systemPrompt });
  for (const message of params.messages) {
    const contents = asArray(message.content);
    if (message.role === 'assistant') {
      const text = contents.filter((c) => c.type === 'text').map((c) => String(c.text ?? ''));
      const calls = contents
        .filter((c) => c.type === 'tool_use')
        .map((c) => ({
          id: String(c.id),
          type: 'function' as const,
          function: { name: String(c.name), arguments: JSON.stringify(c.input ?? {}) },
        }));
      messages.push({
        role: 'assistant',
        content: text.length > 0 ? text.join('') : null,
        ...(calls.length > 0 ? { tool_calls: calls } : {}),
      });
      continue;
    }
    // A user turn: tool results become tool messages (before the rest of the turn), other content one message.
    const parts: ContentPart[] = [];
    for (const content of contents) {
      if (content.type === 'tool_result') {
        const inner = asArray(content.content)
          .filter((c) => c.type === 'text')
          .map((c) => String(c.text ?? ''))
          .join('\n');
        const flagged = content.isError === true ? `Error: ${inner}` : inner;
        messages.push({ role: 'tool', tool_call_id: String(content.toolUseId), content: flagged });
        continue;
      }
      const part = mediaPart(content);
      if (!part) throw new ProtocolError(-32602, `sampling content of type "${content.type}" is not supported`);
      parts.push(part);
    }
    if (parts.length === 0) continue;
    const onlyText = parts.every((p) => p.type === 'text');
    messages.push({
      role: 'user',
      content: onlyText ? parts.map((p) => (p as { text: string }).text).join('\n') : parts,
    });
  }
  const requested = params.maxTokens;
  const request: ChatCompletionRequest = {
    model,
    messages,
    max_tokens: maxTokens === undefined ? requested : Math.min(requested, maxTokens),
  };
  if (params.temperature !== undefined) request.temperature = params.temperature;
  if (params.stopSequences && params.stopSequences.length > 0) request.stop = params.stopSequences;
  const tools = (params as { tools?: { name: string; description?: string; inputSchema?: unknown }[] }).tools;
  if (tools && tools.length > 0) {
    request.tools = tools.map((tool): FunctionTool => ({
      type: 'function',
      function: {
        name: tool.name,
        ...(tool.description ? { description: tool.description } : {}),
        parameters: (tool.inputSchema as Record<string, unknown> | undefined) ?? { type: 'object', properties: {} },
      },
    }));
    const mode = (params as { toolChoice?: { mode?: string } }).toolChoice?.mode;
    if (mode === 'required' || mode === 'none' || mode === 'auto') request.tool_choice = mode;
  }
  return request;
}

const STOP_REASONS: Record<string, string> = {
  stop: 'endTurn',
  length: 'maxTokens',
  tool_calls: 'toolUse',
  content_filter: 'refusal',
};

/** The model's answer as a CreateMessageResult (`model` names the public model that answered). */
export function toCreateMessageResult(completion: ChatCompletion, model: string): Record<string, unknown> {
  const choice = completion.choices[0];
  if (!choice) throw new McplexError('LLM_FAILED', 'the model returned no answer');
  const calls = choice.message.tool_calls ?? [];
  const text = choice.message.content ?? '';
  let content: unknown;
  if (calls.length > 0) {
    content = [
      ...(text ? [{ type: 'text', text }] : []),
      ...calls.map((call) => {
        let input: unknown;
        try {
          input = JSON.parse(call.function.arguments || '{}');
        } catch {
          input = {};
        }
        return { type: 'tool_use', id: call.id, name: call.function.name, input };
      }),
    ];
  } else {
    content = { type: 'text', text };
  }
  const stopReason = STOP_REASONS[choice.finish_reason ?? 'stop'] ?? 'endTurn';
  return { role: 'assistant', content, model, stopReason };
}

export interface SamplingBridge {
  /**
   * Answers a server's sampling request, or returns undefined when the server's policy hands it to the client.
   * A denied or failed request throws the error to send back to the server.
   */
  answer(serverKey: string, params: unknown): Promise<Record<string, unknown>> | undefined;
}

/**
 * The bridge for every configured server. `complete` runs a chat completion under a principal (the LLM
 * gateway's internal entry); `models` lists the public model names that principal may use.
 */
export function createSamplingBridge(options: {
  policies: ReadonlyMap<string, SamplingPolicy>;
  principals: ReadonlyMap<string, Principal>;
  complete: (principal: Principal, request: ChatCompletionRequest) => Promise<ChatCompletion>;
  models: (principal: Principal) => string[];
}): SamplingBridge {
  return {
    answer(serverKey, raw) {
      const policy = options.policies.get(serverKey);
      if (!policy || policy.mode === 'client') return undefined;
      if (policy.mode === 'deny') {
        return Promise.reject(
          new ProtocolError(-32600, `sampling is not allowed for server "${serverKey}" (sampling.mode is "deny")`),
        );
      }
      const principal = options.principals.get(serverKey)!;
      return (async () => {
        const params = raw as CreateMessageRequestParams;
        if (!Array.isArray(params?.messages) || typeof params.maxTokens !== 'number') {
          throw new ProtocolError(-32602, 'sampling/createMessage needs messages and maxTokens');
        }
        const model = chooseModel(params.modelPreferences, options.models(principal), policy.defaultModel);
        if (!model) throw new ProtocolError(-32603, `no model is available for sampling by server "${serverKey}"`);
        try {
          const completion = await options.complete(principal, toChatRequest(params, model, policy.maxTokens));
          return toCreateMessageResult(completion, model);
        } catch (error) {
          if (error instanceof ProtocolError) throw error;
          // The LLM's refusal (limits, scopes) or failure, told to the server in its own terms.
          throw new ProtocolError(-32603, `sampling through mcplex failed: ${errorMessage(error)}`);
        }
      })();
    },
  };
}

/**
 * Every configured server's sampling policy and identity. The default policy is "gateway" when an LLM is
 * configured, else "client"; the identity (`server:<key>`) carries the server's model scope and limits, so its
 * usage is accounted and limited apart from any API key.
 */
export function serverIdentities(
  servers: Readonly<Record<string, { sampling?: SamplingPolicyInput }>>,
  llmConfigured: boolean,
): { policies: Map<string, SamplingPolicy>; principals: Map<string, Principal> } {
  const policies = new Map<string, SamplingPolicy>();
  const principals = new Map<string, Principal>();
  for (const [key, server] of Object.entries(servers)) {
    const input = server.sampling ?? {};
    policies.set(key, {
      mode: input.mode ?? (llmConfigured ? 'gateway' : 'client'),
      ...(input.models ? { models: input.models } : {}),
      ...(input.defaultModel ? { defaultModel: input.defaultModel } : {}),
      ...(input.maxTokens !== undefined ? { maxTokens: input.maxTokens } : {}),
    });
    principals.set(key, {
      kind: 'server',
      id: `server:${key}`,
      name: key,
      scopes: input.models ? { models: input.models } : {},
      limits: {
        ...(input.rpm !== undefined ? { rpm: input.rpm } : {}),
        ...(input.tpm !== undefined ? { tpm: input.tpm } : {}),
        ...(input.maxConcurrent !== undefined ? { maxConcurrent: input.maxConcurrent } : {}),
      },
    });
  }
  return { policies, principals };
}

export interface SamplingPolicyInput extends Partial<SamplingPolicy> {
  rpm?: number;
  tpm?: number;
  maxConcurrent?: number;
}

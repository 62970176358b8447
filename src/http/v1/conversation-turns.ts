// A chat turn in a stored conversation (/v1/chat/completions naming a `conversation`): its history goes before the
// new messages, and the new messages with the model's answer are appended in one step, guarded by the version read
// (a concurrent turn makes this one a 409). Plain and streamed turns pass the same gate and router as any request.
import type { ServerResponse } from 'node:http';
import { McplexError } from '../../errors.js';
import { safeJson, sendJson } from '../../wire/json.js';
import type { Principal } from '../../policy/auth/keys.js';
import type { ConversationStore } from '../../store/store.js';
import type { AgentRunner } from '../../agent/agent.js';
import type { LlmCore } from '../../llm/core.js';
import { bufferedError, toOpenAiError } from '../../llm/openai-errors.js';
import type { LlmContext } from '../../llm/pipeline.js';
import { bufferSink, responseSink } from '../../llm/sink.js';
import type { Sink } from '../../llm/sink.js';
import { addToolCallDeltas } from '../../llm/tool-call-deltas.js';
import type { ChatCompletion, ChatCompletionChunk, ChatMessage, ToolCall } from '../../llm/types.js';
import { createSseParser } from '../../wire/sse.js';
import { withConversation } from './conversations.js';
import { currentTracing } from '../../telemetry/tracing.js';

/** Text that is nothing but SSE comment lines. */
const SSE_COMMENTS = /^(?::[^\r\n]*(?:\r\n|\n|\r))+(?:\r\n|\n|\r)*$/;

export interface ConversationTurnOptions {
  /** Where conversations live; without a store, a request naming one is refused. */
  conversations: ConversationStore | undefined;
  /** Answers each turn (the gate and the router: a turn's answer always comes from a backend). */
  core: LlmCore;
  /** The tool-running chat, for turns that carry the `mcp` extension. */
  agent: AgentRunner | undefined;
}

/** A chat request that names a conversation, as it reached the /v1 front. */
export interface ConversationRequest {
  body: Record<string, unknown>;
  res: ServerResponse;
  started: number;
  requestId: string;
  principal: Principal;
}

/** Serves chat requests that name a conversation. */
export function createConversationTurns(
  options: ConversationTurnOptions,
): (request: ConversationRequest) => Promise<void> {
  const { core } = options;

  /**
   * A chat turn in a stored conversation: its history goes before the new messages, and the new messages with the
   * model's answer are appended in one step, guarded by the version read (a concurrent turn makes this one a 409).
   */
  async function serveConversation(request: ConversationRequest): Promise<void> {
    const { body, res, principal } = request;
    const store = options.conversations;
    const bad = (message: string, param: string) => new McplexError('LLM_BAD_REQUEST', message, { data: { param } });
    if (!store) throw bad('conversations need a store', 'conversation');
    const { conversation, conversation_version: version, ...rest } = body;
    const id =
      typeof conversation === 'object' && conversation !== null ? (conversation as { id?: unknown }).id : conversation;
    if (typeof id !== 'string') throw bad("'conversation' must be a conversation id", 'conversation');
    if (rest.n !== undefined && rest.n !== null && rest.n !== 1) throw bad('n must be 1 in a conversation', 'n');
    const turn = await withConversation(
      store,
      principal,
      id,
      rest.messages as ChatMessage[],
      version === undefined ? {} : { expectedVersion: version as number },
    );
    if (rest.mcp !== undefined && rest.mcp !== null) {
      // The tool-running chat passes the gate on every model call; the whole exchange is appended at the end.
      const agent = options.agent;
      if (!agent) throw bad('the mcp extension is not available', 'mcp');
      await agent(principal, { ...rest, messages: turn.messages }, res, {
        commit: async (added) => ({ id, version: await turn.commit(added) }),
      });
      return;
    }
    const chat: Record<string, unknown> = { ...rest, messages: turn.messages };
    const trace = currentTracing()?.parentOf(res);
    const context = (sink: Sink): LlmContext => ({
      route: 'chat',
      body: chat,
      principal,
      requested: chat.model as string,
      requestId: request.requestId,
      started: request.started,
      sink,
      setHeader: (name, value) => void res.setHeader(name, value),
      ...(trace ? { trace } : {}),
    });
    if (chat.stream === true) {
      await streamConversationTurn(context, res, turn, id);
      return;
    }
    const sink = bufferSink();
    await core.serveDirect(context(sink));
    const text = sink.text();
    if (sink.status !== 200) {
      sendJson(res, sink.status ?? 502, bufferedError(text));
      return;
    }
    const answer = JSON.parse(text) as ChatCompletion;
    const reply = answer.choices[0]?.message;
    const newVersion = await turn.commit(reply ? [reply as unknown as ChatMessage] : []);
    sendJson(
      res,
      200,
      { ...answer, conversation: { id, version: newVersion } },
      { 'x-conversation-version': String(newVersion) },
    );
  }

  /**
   * A streamed turn of a stored conversation: chunks go to the client as they arrive while the answer is rebuilt
   * from them; the backend's `[DONE]` is held back until the turn is appended, then a last chunk names the new
   * version. A turn that lost the race ends with a 409 error event instead (nothing appended).
   */
  async function streamConversationTurn(
    context: (sink: Sink) => LlmContext,
    res: ServerResponse,
    turn: Awaited<ReturnType<typeof withConversation>>,
    id: string,
  ): Promise<void> {
    const client = responseSink(res);
    const parser = createSseParser();
    let content = '';
    const calls: ToolCall[] = [];
    let chunkId = '';
    let broken = false;
    const sink: Sink = {
      head: (status, headers) => client.head(status, headers),
      write(chunk) {
        const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
        // Comments (the router's keep-alives) go straight on: the client's stream is only ever written whole
        // events, so one can come between any two of them.
        if (!client.started || res.statusCode !== 200 || SSE_COMMENTS.test(text)) {
          client.write(chunk);
          return;
        }
        let out = '';
        for (const event of parser.push(text)) {
          if (event.data === '[DONE]') continue;
          out += `data: ${event.data}\n\n`;
          const piece = safeJson(event.data) as (ChatCompletionChunk & { error?: unknown }) | undefined;
          if (piece?.error !== undefined) broken = true;
          const delta = piece?.choices?.[0]?.delta;
          if (piece?.id) chunkId = piece.id;
          if (typeof delta?.content === 'string') content += delta.content;
          addToolCallDeltas(calls, delta?.tool_calls);
        }
        if (out !== '') client.write(out);
      },
      end(chunk) {
        if (chunk !== undefined) this.write(chunk);
      },
      get started() {
        return client.started;
      },
      get gone() {
        return client.gone;
      },
      onGone: (listener) => client.onGone(listener),
    };
    const ctx = context(sink);
    await core.serveDirect(ctx);
    if (res.writableEnded || res.destroyed) return;
    // An error status, or a stream that broke after it began (its error event already went out): nothing to keep.
    if (res.statusCode !== 200 || broken) {
      res.end();
      return;
    }
    const made = calls.filter(Boolean);
    const reply: ChatMessage = {
      role: 'assistant',
      content: content || null,
      ...(made.length > 0 ? { tool_calls: made } : {}),
    };
    try {
      const version = await turn.commit([reply]);
      const last = {
        id: chunkId,
        object: 'chat.completion.chunk',
        created: Math.floor(Date.now() / 1000),
        model: ctx.requested,
        choices: [],
        conversation: { id, version },
      };
      res.end(`data: ${JSON.stringify(last)}\n\ndata: [DONE]\n\n`);
    } catch (error) {
      res.end(`data: ${JSON.stringify(toOpenAiError(error, 502).body)}\n\n`);
    }
  }

  return serveConversation;
}

// Server-to-client requests during a call (sampling, elicitation, roots, log messages): who answers what an
// upstream server asks while its calls are in flight.
import { ProtocolError } from '@modelcontextprotocol/client';
import type { ClientCapabilities, LoggingLevel } from '@modelcontextprotocol/client';

/** The downstream client of one call, for the requests the upstream server sends back during that call. */
export interface DownstreamRelay {
  /** What that client declared it can do; requests it cannot answer get a clear error instead. */
  capabilities: ClientCapabilities | undefined;
  /**
   * Sends a request to that client, in the context of its call. `key` is the name a 2026-07-28 server gave the
   * question in its input-required result, kept where the client's era has names for questions.
   */
  request(method: string, params: unknown, key?: string): Promise<unknown>;
  /** Passes a log message the server sent during the call (the client's level decides whether it goes out). */
  log?(params: LogMessage): void;
}

export interface LogMessage {
  level: LoggingLevel;
  data?: unknown;
  logger?: string;
}

export interface RelaysOptions {
  /** The server's key, for error messages. */
  serverKey: string;
  /** Answers a sampling request itself (the shared LLM), or returns undefined to put it to the client. */
  sample?: (params: unknown) => Promise<unknown> | undefined;
  /** Whether `sample` answers this server's sampling (so clients that cannot sample still offer it). */
  samples?: () => boolean;
}

/** The relays of one upstream's calls in flight, and the answers to what the server asks meanwhile. */
export class Relays {
  /** Downstream clients of the calls in flight, newest last: who answers what the server asks meanwhile. */
  private readonly inFlight: DownstreamRelay[] = [];

  constructor(private readonly options: RelaysOptions) {}

  /** Runs `work` with the caller's relay registered as the one to ask. */
  async run<T>(relay: DownstreamRelay | undefined, work: () => Promise<T>): Promise<T> {
    if (!relay) return work();
    this.inFlight.push(relay);
    try {
      return await work();
    } finally {
      this.inFlight.splice(this.inFlight.lastIndexOf(relay), 1);
    }
  }

  /**
   * Answers what the server asks of its client (roots, sampling, elicitation) by asking the downstream client
   * of the call in flight: the one the request came with when the transport tells (HTTP response streams, input
   * rounds), else the newest call on this server. With no call in flight there is nobody to ask, and the request
   * is refused with a clear error.
   */
  async answer(method: string, params: unknown, relay?: DownstreamRelay, key?: string): Promise<unknown> {
    const server = this.options.serverKey;
    if (method === 'sampling/createMessage') {
      const answered = this.options.sample?.(params);
      if (answered !== undefined) return answered;
    }
    const target = relay ?? this.inFlight.at(-1);
    if (!target) {
      // Roots belong to a client; with none in the conversation there are none to give. An error (rather than
      // an empty list) lets servers that cache roots ask again during a call, where a client can answer.
      throw new ProtocolError(-32603, `server "${server}" asked for ${method} outside of a client request`);
    }
    const missing = missingCapability(method, params, target.capabilities);
    if (missing !== undefined) {
      throw new ProtocolError(-32601, `the client calling server "${server}" does not support ${missing}`);
    }
    return target.request(method, params, key);
  }

  /**
   * A log message on the connection belongs to the call in flight; with several in flight nothing says whose it
   * is, and it is dropped rather than shown to a client it may not belong to. (Messages on an HTTP response
   * stream are routed precisely by the fast path.)
   */
  log(message: LogMessage): void {
    if (this.inFlight.length === 1) this.inFlight[0]!.log?.(message);
  }

  /**
   * The client capabilities a 2026-07-28 server is told for a call: what the downstream client can answer, plus
   * sampling when mcplex answers this server's sampling itself (the shared LLM). Undefined without a caller.
   */
  declaredFor(relay: DownstreamRelay | undefined): ClientCapabilities | undefined {
    if (!relay) return undefined;
    const capabilities = relayedCapabilities(relay.capabilities);
    return this.options.samples?.() ? { ...capabilities, sampling: { tools: {} } } : capabilities;
  }
}

/** The part of a downstream client's capabilities that mcplex can put to it on an upstream's behalf. */
function relayedCapabilities(capabilities: ClientCapabilities | undefined): ClientCapabilities {
  const { sampling, elicitation, roots } = capabilities ?? {};
  return {
    ...(sampling === undefined ? {} : { sampling }),
    ...(elicitation === undefined ? {} : { elicitation }),
    ...(roots === undefined ? {} : { roots }),
  };
}

/** The capability a client needs to answer `method`, when it lacks it. */
function missingCapability(method: string, params: unknown, capabilities: ClientCapabilities | undefined) {
  const p = (params ?? {}) as { mode?: unknown; tools?: unknown };
  switch (method) {
    case 'roots/list':
      return capabilities?.roots ? undefined : 'roots';
    case 'sampling/createMessage':
      if (!capabilities?.sampling) return 'sampling';
      return p.tools !== undefined && !capabilities.sampling.tools ? 'sampling with tools' : undefined;
    case 'elicitation/create': {
      const elicitation = capabilities?.elicitation as { form?: unknown; url?: unknown } | undefined;
      if (!elicitation) return 'elicitation';
      // A client that declares elicitation without modes supports form mode (the 2025-06-18 shape).
      if (p.mode === 'url') return elicitation.url ? undefined : 'URL-mode elicitation';
      return elicitation.form || !elicitation.url ? undefined : 'form-mode elicitation';
    }
    default:
      return method;
  }
}

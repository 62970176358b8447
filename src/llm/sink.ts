// Where an LLM answer is written: the client's own response, a flight that identical requests share
// (coalescing), or a buffer (an embedding batch, whose answer is split among its callers).
import type { ServerResponse } from 'node:http';
import { jsonAnswer } from '../wire/json.js';
import type { Flight } from './batching/coalescer.js';

export interface Sink {
  head(status: number, headers: Record<string, string>): void;
  write(chunk: string | Buffer): void;
  end(chunk?: string | Buffer): void;
  /** The head went out: the answer can no longer be replaced by another one. */
  readonly started: boolean;
  /** Nobody waits for the answer any more. */
  readonly gone: boolean;
  /** Calls `listener` once when the last listener goes away before the answer ended; returns an unsubscribe. */
  onGone(listener: () => void): () => void;
}

/** A JSON answer into a sink, unless an answer already began there. */
export function sinkJson(sink: Sink, status: number, body: unknown, headers?: Record<string, string>): void {
  if (sink.started) return;
  const answer = jsonAnswer(body, headers);
  sink.head(status, answer.headers);
  sink.end(answer.text);
}

export function responseSink(res: ServerResponse): Sink {
  return {
    head: (status, headers) => void res.writeHead(status, headers),
    write: (chunk) => void res.write(chunk),
    end: (chunk) => void (chunk === undefined ? res.end() : res.end(chunk)),
    get started() {
      return res.headersSent;
    },
    get gone() {
      return res.destroyed && !res.writableFinished;
    },
    onGone(listener) {
      const onClose = () => {
        if (!res.writableFinished) listener();
      };
      res.once('close', onClose);
      return () => res.off('close', onClose);
    },
  };
}

export function flightSink(flight: Flight): Sink {
  return {
    head: (status, headers) => flight.head(status, headers),
    write: (chunk) => flight.write(chunk),
    end(chunk) {
      if (chunk !== undefined) flight.write(chunk);
      flight.end();
    },
    get started() {
      return flight.status !== undefined;
    },
    get gone() {
      return flight.abandoned;
    },
    onGone(listener) {
      const signal = flight.signal;
      if (signal.aborted) {
        listener();
        return () => {};
      }
      signal.addEventListener('abort', listener, { once: true });
      return () => signal.removeEventListener('abort', listener);
    },
  };
}

/** Collects an answer in memory. */
export interface BufferSink extends Sink {
  readonly status: number | undefined;
  text(): string;
}

export function bufferSink(): BufferSink {
  let status: number | undefined;
  const chunks: Buffer[] = [];
  return {
    head(code) {
      status = code;
    },
    write: (chunk) => void chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk),
    end(chunk) {
      if (chunk !== undefined) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    },
    get started() {
      return status !== undefined;
    },
    gone: false,
    onGone: () => () => {},
    get status() {
      return status;
    },
    text: () => Buffer.concat(chunks).toString('utf8'),
  };
}

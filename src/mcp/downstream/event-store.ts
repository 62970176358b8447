// Bounded in-memory replay buffers so that legacy clients can resume a dropped SSE stream with Last-Event-ID: one
// event store per session, all of them under one shared budget, so that neither one session nor many can hold
// an unbounded amount of memory.
import { randomUUID } from 'node:crypto';
import type { EventStore, JSONRPCMessage } from '@modelcontextprotocol/server';

export interface ReplayLimits {
  /** Events one session keeps, newest first. */
  maxEvents: number;
  /** Size one session keeps (JSON text, counted in characters); a bigger event is sent but never kept. */
  maxBytes: number;
  /** Size all sessions together keep; past it the oldest events of any session go first. */
  maxTotalBytes: number;
}

interface StoredEvent {
  id: string;
  streamId: string;
  message: JSONRPCMessage;
  size: number;
  owner: SessionEvents;
}

interface SessionEvents {
  events: StoredEvent[];
  bytes: number;
  /** Ended: whatever is sent now is not kept. */
  closed: boolean;
}

/** A session's event store, which can also say whether an event can still be replayed. */
export interface SessionEventStore extends EventStore {
  has(eventId: string): boolean;
  /** Forgets every event of the session (when it ends). */
  clear(): void;
}

export interface ReplayBuffer {
  forSession(): SessionEventStore;
  /** What all sessions keep now, in the unit of the limits. */
  bytes(): number;
}

export function createReplayBuffer(limits: ReplayLimits): ReplayBuffer {
  // Every kept event of every session in the order stored: the first entry is the oldest anywhere, and it is
  // also the oldest of its own session, so evicting it is a shift of that session's list.
  const all = new Map<string, StoredEvent>();
  let total = 0;

  function forget(session: SessionEvents, event: StoredEvent): void {
    session.bytes -= event.size;
    total -= event.size;
    all.delete(event.id);
  }

  function evictOldestOf(session: SessionEvents): void {
    forget(session, session.events.shift()!);
  }

  return {
    bytes: () => total,
    forSession() {
      const session: SessionEvents = { events: [], bytes: 0, closed: false };
      return {
        async storeEvent(streamId, message) {
          const id = `${streamId}_${randomUUID()}`;
          if (session.closed) return id;
          const size = JSON.stringify(message).length;
          if (size > limits.maxBytes || size > limits.maxTotalBytes) {
            // Too big to keep: it is delivered, and the stream's earlier events are forgotten, so that a resume
            // from before it is refused (the client opens a new stream) rather than silently skipping it.
            session.events = session.events.filter((event) => {
              if (event.streamId !== streamId) return true;
              forget(session, event);
              return false;
            });
            return id;
          }
          const event: StoredEvent = { id, streamId, message, size, owner: session };
          session.events.push(event);
          session.bytes += size;
          total += size;
          all.set(id, event);
          while (session.events.length > limits.maxEvents || session.bytes > limits.maxBytes) evictOldestOf(session);
          while (total > limits.maxTotalBytes) evictOldestOf(all.values().next().value!.owner);
          return id;
        },
        async getStreamIdForEventId(eventId) {
          const event = all.get(eventId);
          return event?.owner === session ? event.streamId : undefined;
        },
        async replayEventsAfter(lastEventId, { send }) {
          const last = all.get(lastEventId);
          if (!last || last.owner !== session) throw new Error(`event ${lastEventId} is unknown or too old to replay`);
          // Copied first: sending may store new events, which must not be replayed now.
          const after = session.events.slice(session.events.indexOf(last) + 1);
          for (const event of after) if (event.streamId === last.streamId) await send(event.id, event.message);
          return last.streamId;
        },
        has: (eventId) => all.get(eventId)?.owner === session,
        clear() {
          session.closed = true;
          for (const event of session.events) all.delete(event.id);
          total -= session.bytes;
          session.events = [];
          session.bytes = 0;
        },
      };
    },
  };
}

// A bounded in-memory event store so that legacy clients can resume a dropped SSE stream with Last-Event-ID.
import { randomUUID } from 'node:crypto';
import type { EventStore, JSONRPCMessage } from '@modelcontextprotocol/server';

interface StoredEvent {
  id: string;
  streamId: string;
  message: JSONRPCMessage;
  size: number;
}

/**
 * Keeps the newest events of one session, at most `maxEvents` and about `maxBytes` of JSON; older ones can no
 * longer be replayed (the client then gets an error and starts a fresh stream).
 */
export function createMemoryEventStore(maxEvents = 200, maxBytes = 1_048_576): EventStore {
  const events: StoredEvent[] = [];
  const byId = new Map<string, StoredEvent>();
  let bytes = 0;
  return {
    async storeEvent(streamId, message) {
      const size = JSON.stringify(message).length;
      const event = { id: `${streamId}_${randomUUID()}`, streamId, message, size };
      events.push(event);
      byId.set(event.id, event);
      bytes += size;
      while (events.length > 1 && (events.length > maxEvents || bytes > maxBytes)) {
        const dropped = events.shift()!;
        byId.delete(dropped.id);
        bytes -= dropped.size;
      }
      return event.id;
    },
    async getStreamIdForEventId(eventId) {
      return byId.get(eventId)?.streamId;
    },
    async replayEventsAfter(lastEventId, { send }) {
      const last = byId.get(lastEventId);
      if (!last) throw new Error(`event ${lastEventId} is unknown or too old to replay`);
      let found = false;
      for (const event of events) {
        if (found && event.streamId === last.streamId) await send(event.id, event.message);
        if (event === last) found = true;
      }
      return last.streamId;
    },
  };
}

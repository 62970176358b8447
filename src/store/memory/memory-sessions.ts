// The session directory in this process (one replica): maps, a log per session, and one ordered index of every
// kept event so that the total bound evicts the oldest event anywhere in constant time.
import type { Unsubscribe } from '../coordination.js';
import type {
  EventAppend,
  NewSession,
  OpenOutcome,
  SessionBounds,
  SessionDirectory,
  SessionEvent,
  SessionRecord,
  SubscribeOutcome,
} from '../sessions.js';

interface KeptEvent extends SessionEvent {
  size: number;
  owner: Entry;
}

interface Entry {
  record: SessionRecord;
  capped: boolean;
  subscriptions: Set<string>;
  events: KeptEvent[];
  bytes: number;
  watchers: Set<() => void>;
}

export function createMemorySessions(bounds: SessionBounds): SessionDirectory {
  const sessions = new Map<string, Entry>();
  /** Every kept event of every session, oldest first (also the oldest of its own session). */
  const index = new Map<string, KeptEvent>();
  let total = 0;
  let sequence = 0;

  const live = (id: string, now: number): Entry | undefined => {
    const entry = sessions.get(id);
    if (entry && entry.record.lastSeen + bounds.idleMs <= now) {
      forget(entry);
      return undefined;
    }
    return entry;
  };

  function drop(event: KeptEvent): void {
    event.owner.bytes -= event.size;
    total -= event.size;
    index.delete(`${event.owner.record.id} ${event.id}`);
  }

  function forget(entry: Entry): void {
    sessions.delete(entry.record.id);
    for (const event of entry.events) drop(event);
    entry.events = [];
  }

  /** Ends the sessions (of `principal`, or anyone's) untouched since `cutoff`; how many. */
  function evictIdle(cutoff: number, principal?: string): number {
    let ended = 0;
    for (const entry of [...sessions.values()]) {
      if ((principal === undefined || entry.record.principal === principal) && entry.record.lastSeen < cutoff) {
        forget(entry);
        ended++;
      }
    }
    return ended;
  }

  function sweep(now: number): void {
    evictIdle(now - bounds.idleMs + 1);
  }

  return {
    async open(session: NewSession, now): Promise<OpenOutcome> {
      sweep(now);
      const capped = session.capped ?? true;
      if (capped) {
        let owned = 0;
        for (const entry of sessions.values())
          if (entry.capped && entry.record.principal === session.principal) owned++;
        if (owned >= bounds.maxPerPrincipal && evictIdle(now - bounds.pressureIdleMs, session.principal) === 0) {
          return 'principal-full';
        }
      }
      if (sessions.size >= bounds.max && evictIdle(now - bounds.pressureIdleMs) === 0) return 'full';
      sessions.set(session.id, {
        record: { id: session.id, principal: session.principal, state: session.state, createdAt: now, lastSeen: now },
        capped,
        subscriptions: new Set(),
        events: [],
        bytes: 0,
        watchers: new Set(),
      });
      return 'opened';
    },
    async touch(id, now) {
      const entry = live(id, now);
      if (!entry) return undefined;
      entry.record.lastSeen = Math.max(entry.record.lastSeen, now);
      return { ...entry.record, state: { ...entry.record.state } };
    },
    async touchAll(ids, now) {
      for (const id of ids) {
        const entry = live(id, now);
        if (entry) entry.record.lastSeen = Math.max(entry.record.lastSeen, now);
      }
    },
    async update(id, patch) {
      const entry = sessions.get(id);
      if (!entry) return false;
      entry.record.state = { ...entry.record.state, ...patch };
      return true;
    },
    async end(id) {
      const entry = sessions.get(id);
      if (!entry) return false;
      forget(entry);
      return true;
    },
    async count(now) {
      sweep(now);
      return sessions.size;
    },
    async subscribe(id, uri, max): Promise<SubscribeOutcome> {
      const entry = sessions.get(id);
      if (!entry) return 'gone';
      if (entry.subscriptions.has(uri)) return 'held';
      if (entry.subscriptions.size >= max) return 'full';
      entry.subscriptions.add(uri);
      return 'added';
    },
    async unsubscribe(id, uri) {
      return sessions.get(id)?.subscriptions.delete(uri) ?? false;
    },
    async subscriptions(id) {
      return [...(sessions.get(id)?.subscriptions ?? [])];
    },
    async append(id, events: readonly EventAppend[]) {
      const entry = sessions.get(id);
      const ids: string[] = [];
      if (!entry) return ids;
      for (const { stream, message, tag } of events) {
        const eventId = String(++sequence);
        ids.push(eventId);
        const size = message.length;
        if (size > bounds.replayBytes || size > bounds.replayTotalBytes) {
          entry.events = entry.events.filter((event) => {
            if (event.stream !== stream) return true;
            drop(event);
            return false;
          });
          continue;
        }
        const event: KeptEvent = { id: eventId, stream, message, size, owner: entry, ...(tag ? { tag } : {}) };
        entry.events.push(event);
        entry.bytes += size;
        total += size;
        index.set(`${id} ${eventId}`, event);
        while (entry.events.length > bounds.replayEvents || entry.bytes > bounds.replayBytes) {
          drop(entry.events.shift()!);
        }
        while (total > bounds.replayTotalBytes) {
          const oldest = index.values().next().value!;
          oldest.owner.events.shift();
          drop(oldest);
        }
      }
      for (const wake of [...entry.watchers]) wake();
      return ids;
    },
    async after(id, eventId) {
      const entry = sessions.get(id);
      const at = entry?.events.findIndex((event) => event.id === eventId) ?? -1;
      if (!entry || at < 0) return undefined;
      const stream = entry.events[at]!.stream;
      const events = entry.events.slice(at + 1).filter((event) => event.stream === stream);
      return { stream, events: events.map(plain) };
    },
    async streamAfter(id, stream, eventId) {
      const entry = sessions.get(id);
      if (!entry) return [];
      const after = eventId === undefined ? 0 : Number(eventId);
      return entry.events.filter((event) => event.stream === stream && Number(event.id) > after).map(plain);
    },
    async watch(id, wake): Promise<Unsubscribe> {
      const entry = sessions.get(id);
      entry?.watchers.add(wake);
      return async () => {
        entry?.watchers.delete(wake);
      };
    },
    async logBytes() {
      return total;
    },
    async close() {},
  };
}

function plain(event: KeptEvent): SessionEvent {
  return { id: event.id, stream: event.stream, message: event.message, ...(event.tag ? { tag: event.tag } : {}) };
}

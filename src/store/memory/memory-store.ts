// A Store kept entirely in this process's Maps: for tests and for a single process that needs nothing to survive a
// restart. The response cache is bounded in bytes and evicts the least recently used entry first; conversations are
// not bounded (they live until deleted, as in SQLite).

import { Buffer } from 'node:buffer';
import {
  checkConversationPage,
  checkExpectedVersion,
  checkItemPage,
  newConversationId,
  newItemId,
  prepareMessages,
} from '../conversation-rules.js';
import { checkKeep, checkRequestPage, matchesRequest } from '../request-log-rules.js';
import {
  checkCredentialKey,
  checkCredentialRecord,
  compareCredentials,
  credentialExpired,
} from '../credential-rules.js';
import { gcraBatchKeys, gcraTakeAll, limitStoreOf, type GcraState, type GcraWrite } from '../gcra.js';
import {
  StoreError,
  type ApiKeyRecord,
  type CacheEntry,
  type CacheStore,
  type ConversationItem,
  type ConversationRecord,
  type ConversationStore,
  type CredentialKey,
  type CredentialRecord,
  type CredentialStore,
  type KeyStore,
  type LimitStore,
  type LoggedRequest,
  type RequestLogStore,
  type Store,
  type UsageBucket,
  type UsageEntry,
  type UsageFilter,
  type UsageStore,
  type UsageTotal,
} from '../store.js';
import { sortUsageBuckets, sortUsageTotals } from '../usage-order.js';
import { bucketOf, checkSeriesFilter } from '../usage-rollup.js';
import { createLocalCoordination } from './local-coordination.js';

export interface MemoryStoreOptions {
  /** Upper bound on the cache, counted as the UTF-8 bytes of every key and body. Default 64 MiB. */
  maxCacheBytes?: number;
  /** The clock leases expire by. Default Date.now. */
  now?: () => number;
}

const DEFAULT_MAX_CACHE_BYTES = 64 * 1024 * 1024;
/** Above this many buckets a write sweeps out the full ones, so idle keys do not pile up. */
const LIMIT_SWEEP_THRESHOLD = 10_000;

export function createMemoryStore(options: MemoryStoreOptions = {}): Store {
  const maxCacheBytes = options.maxCacheBytes ?? DEFAULT_MAX_CACHE_BYTES;
  if (!Number.isFinite(maxCacheBytes) || maxCacheBytes < 0) {
    throw new RangeError(`maxCacheBytes must be a number ≥ 0, got ${maxCacheBytes}`);
  }
  const keys = createKeyStore();
  const usage = createUsageStore();
  const cache = createCacheStore(maxCacheBytes);
  const limits = createLimitStore();
  const conversations = createConversationStore();
  const requests = createRequestLogStore();
  const credentials = createCredentialStore();
  const leases = createLocalCoordination(options.now ? { now: options.now } : {});
  return {
    kind: 'memory',
    leases,
    schemaVersion: 0,
    keys: keys.store,
    usage: usage.store,
    cache: cache.store,
    limits: limits.store,
    conversations: conversations.store,
    requests: requests.store,
    credentials: credentials.store,
    async close() {
      keys.clear();
      usage.clear();
      cache.clear();
      limits.clear();
      conversations.clear();
      requests.clear();
      credentials.clear();
      await leases.close();
    },
  };
}

interface Part<T> {
  store: T;
  clear(): void;
}

function createKeyStore(): Part<KeyStore> {
  const byId = new Map<string, ApiKeyRecord>();
  const idByName = new Map<string, string>();
  return {
    store: {
      async create(record) {
        if (byId.has(record.id)) throw new StoreError('DUPLICATE', `an API key with id "${record.id}" already exists`);
        if (idByName.has(record.name)) {
          throw new StoreError('DUPLICATE', `an API key named "${record.name}" already exists`);
        }
        byId.set(record.id, copyKey(record));
        idByName.set(record.name, record.id);
      },
      async get(id) {
        const record = byId.get(id);
        return record && copyKey(record);
      },
      async list() {
        // Map order is insertion order and sort is stable, so keys created in the same millisecond keep their order.
        return [...byId.values()].sort((a, b) => a.createdAt - b.createdAt).map(copyKey);
      },
      async revoke(id, at) {
        const record = byId.get(id);
        if (record === undefined || record.revokedAt !== null) return false;
        record.revokedAt = at;
        return true;
      },
    },
    clear() {
      byId.clear();
      idByName.clear();
    },
  };
}

/** A copy that shares nothing with the caller's object; scopes and limits go through JSON as they do in SQLite. */
function copyKey(record: ApiKeyRecord): ApiKeyRecord {
  return {
    id: record.id,
    name: record.name,
    secretHash: record.secretHash,
    scopes: JSON.parse(JSON.stringify(record.scopes)) as ApiKeyRecord['scopes'],
    limits: JSON.parse(JSON.stringify(record.limits)) as ApiKeyRecord['limits'],
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    revokedAt: record.revokedAt,
  };
}

function createUsageStore(): Part<UsageStore> {
  // One entry per record call, as in SQLite, so that `since`/`until` stay exact to the millisecond.
  const entries: UsageEntry[] = [];
  return {
    store: {
      async record(entry) {
        entries.push({ ...entry });
      },
      async recordMany(batch) {
        for (const entry of batch) entries.push({ ...entry });
      },
      async totals(filter: UsageFilter = {}) {
        const totals = new Map<string, UsageTotal>();
        for (const entry of entries) {
          if (!matches(entry, filter)) continue;
          // A JSON pair cannot collide the way a joined string could (`a:b` + `c` vs `a` + `b:c`).
          const group = JSON.stringify([entry.subject, entry.model]);
          let total = totals.get(group);
          if (total === undefined) {
            total = { subject: entry.subject, model: entry.model, requests: 0, promptTokens: 0, completionTokens: 0 };
            totals.set(group, total);
          }
          total.requests += entry.requests;
          total.promptTokens += entry.promptTokens;
          total.completionTokens += entry.completionTokens;
        }
        return sortUsageTotals([...totals.values()]);
      },
      async series(filter) {
        checkSeriesFilter(filter);
        const buckets = new Map<string, UsageBucket>();
        for (const entry of entries) {
          if (!matches(entry, filter)) continue;
          const at = bucketOf(entry.at, filter.bucketMs);
          const group = JSON.stringify([at, entry.subject, entry.model]);
          let bucket = buckets.get(group);
          if (bucket === undefined) {
            bucket = {
              at,
              subject: entry.subject,
              model: entry.model,
              requests: 0,
              promptTokens: 0,
              completionTokens: 0,
            };
            buckets.set(group, bucket);
          }
          bucket.requests += entry.requests;
          bucket.promptTokens += entry.promptTokens;
          bucket.completionTokens += entry.completionTokens;
        }
        return sortUsageBuckets([...buckets.values()]);
      },
    },
    clear() {
      entries.length = 0;
    },
  };
}

function matches(entry: UsageEntry, filter: UsageFilter): boolean {
  return (
    (filter.subject === undefined || entry.subject === filter.subject) &&
    (filter.model === undefined || entry.model === filter.model) &&
    (filter.since === undefined || entry.at >= filter.since) &&
    (filter.until === undefined || entry.at < filter.until)
  );
}

function createRequestLogStore(): Part<RequestLogStore> {
  // Oldest first; ids are consecutive, so keeping the newest `keep` is keeping the last `keep`.
  const entries: LoggedRequest[] = [];
  let lastId = 0;
  return {
    store: {
      async appendMany(batch, keep) {
        checkKeep(keep);
        for (const entry of batch) {
          lastId += 1;
          entries.push({ ...entry, id: lastId });
        }
        if (entries.length > keep) entries.splice(0, entries.length - keep);
      },
      async page(filter, page) {
        checkRequestPage(filter, page);
        const found: LoggedRequest[] = [];
        for (let i = entries.length - 1; i >= 0 && found.length < page.limit; i -= 1) {
          const entry = entries[i]!;
          if (page.before !== undefined && entry.id >= page.before) continue;
          if (matchesRequest(entry, filter)) found.push({ ...entry });
        }
        return found;
      },
    },
    clear() {
      entries.length = 0;
      lastId = 0;
    },
  };
}

function createCredentialStore(): Part<CredentialStore> {
  const records = new Map<string, CredentialRecord>();
  const id = (key: CredentialKey) => JSON.stringify([key.kind, key.principal, key.upstream, key.issuer]);
  const live = (key: CredentialKey, now: number) => {
    checkCredentialKey(key);
    const found = records.get(id(key));
    return found && !credentialExpired(found, now) ? found : undefined;
  };
  return {
    store: {
      async put(record) {
        checkCredentialRecord(record);
        records.set(id(record), { ...record });
      },
      async get(key, now) {
        const found = live(key, now);
        return found && { ...found };
      },
      async take(key, now) {
        const found = live(key, now);
        if (found) records.delete(id(key));
        return found;
      },
      async delete(key) {
        checkCredentialKey(key);
        return records.delete(id(key));
      },
      async list(kind, principal, now) {
        return [...records.values()]
          .filter((r) => r.kind === kind && (principal === undefined || r.principal === principal))
          .filter((r) => !credentialExpired(r, now))
          .sort(compareCredentials)
          .map((r) => ({ ...r }));
      },
      async deleteConnection(principal, upstream) {
        let deleted = 0;
        for (const [key, r] of records) {
          if (r.principal === principal && r.upstream === upstream && r.kind !== 'client') {
            records.delete(key);
            deleted += 1;
          }
        }
        return deleted;
      },
      async prune(now) {
        let deleted = 0;
        for (const [key, r] of records) {
          if (credentialExpired(r, now)) {
            records.delete(key);
            deleted += 1;
          }
        }
        return deleted;
      },
    },
    clear() {
      records.clear();
    },
  };
}

interface Cached {
  entry: CacheEntry;
  bytes: number;
}

function createCacheStore(maxBytes: number): Part<CacheStore> {
  // A Map iterates in insertion order; deleting and re-inserting on every use keeps the least recently used first.
  const entries = new Map<string, Cached>();
  let bytes = 0;

  function remove(key: string): void {
    const cached = entries.get(key);
    if (cached === undefined) return;
    entries.delete(key);
    bytes -= cached.bytes;
  }

  return {
    store: {
      async get(key, now) {
        const cached = entries.get(key);
        if (cached === undefined) return undefined;
        if (cached.entry.expiresAt <= now) {
          remove(key);
          return undefined;
        }
        entries.delete(key);
        entries.set(key, cached);
        return { ...cached.entry };
      },
      async set(key, entry) {
        remove(key);
        const size = Buffer.byteLength(key) + Buffer.byteLength(entry.body);
        // An entry that could never fit is not stored at all, rather than emptying the cache to make room for it.
        if (size > maxBytes) return;
        while (bytes + size > maxBytes) {
          const oldest = entries.keys().next();
          if (oldest.done === true) break;
          remove(oldest.value);
        }
        entries.set(key, { entry: { ...entry }, bytes: size });
        bytes += size;
      },
      async delete(key) {
        remove(key);
      },
      async prune(now) {
        let removed = 0;
        for (const [key, cached] of entries) {
          if (cached.entry.expiresAt <= now) {
            remove(key);
            removed += 1;
          }
        }
        return removed;
      },
    },
    clear() {
      entries.clear();
      bytes = 0;
    },
  };
}

interface Bucket {
  state: GcraState;
  /** When the bucket will be full again (the TAT); after it the bucket can be forgotten. */
  fullAt: number;
}

function createLimitStore(): Part<LimitStore> {
  const buckets = new Map<string, Bucket>();
  let sweepAbove = LIMIT_SWEEP_THRESHOLD;

  /** Keeps a live state (undefined: the bucket is full again, and forgotten). */
  function write({ key, state, limit, periodMs }: GcraWrite, now: number): void {
    if (state === undefined) {
      buckets.delete(key);
      return;
    }
    buckets.set(key, { state, fullAt: state.at + (state.units * periodMs) / limit });
    if (buckets.size > sweepAbove) {
      for (const [other, bucket] of buckets) if (bucket.fullAt <= now) buckets.delete(other);
      // When most buckets are still in use, wait for the map to double before sweeping again (amortised O(1)).
      sweepAbove = Math.max(LIMIT_SWEEP_THRESHOLD, buckets.size * 2);
    }
  }

  return {
    // JavaScript runs this to completion before another call starts, which is all the atomicity one process needs.
    store: limitStoreOf(async (batch) => {
      const keys = gcraBatchKeys(batch);
      const { decisions, writes } = gcraTakeAll(new Map(keys.map((key) => [key, buckets.get(key)?.state])), batch);
      for (const written of writes) if (written.changed) write(written, batch.now);
      return decisions;
    }),
    clear() {
      buckets.clear();
      sweepAbove = LIMIT_SWEEP_THRESHOLD;
    },
  };
}

interface Conversation {
  record: ConversationRecord;
  /** Creation order, for ties between conversations created in the same millisecond (SQLite uses the rowid). */
  order: number;
  /** Item `seq` is its index + 1. */
  items: ConversationItem[];
}

function createConversationStore(): Part<ConversationStore> {
  const byId = new Map<string, Conversation>();
  let created = 0;

  /** Newest first: later createdAt, then later creation. */
  const newestFirst = (a: Conversation, b: Conversation): number =>
    b.record.createdAt - a.record.createdAt || b.order - a.order;

  return {
    // Every method runs to completion without awaiting, so an append is atomic among all callers of this process.
    store: {
      async create(owner, metadata) {
        const record: ConversationRecord = {
          id: newConversationId(),
          owner,
          metadata: { ...metadata },
          version: 0,
          createdAt: Date.now(),
        };
        created += 1;
        byId.set(record.id, { record, order: created, items: [] });
        return copyConversation(record);
      },
      async get(id) {
        const conversation = byId.get(id);
        return conversation && copyConversation(conversation.record);
      },
      async list(owner, page) {
        checkConversationPage(page);
        const mine = [...byId.values()].filter((c) => c.record.owner === owner).sort(newestFirst);
        let start = 0;
        if (page.after !== undefined) {
          const cursor = mine.findIndex((c) => c.record.id === page.after);
          if (cursor === -1) return [];
          start = cursor + 1;
        }
        return mine.slice(start, start + page.limit).map((c) => copyConversation(c.record));
      },
      async delete(id) {
        return byId.delete(id);
      },
      async append(id, messages, expectedVersion) {
        checkExpectedVersion(expectedVersion);
        const prepared = prepareMessages(messages);
        const conversation = byId.get(id);
        if (conversation === undefined) throw new StoreError('NOT_FOUND', `no conversation with id "${id}"`);
        const { record, items } = conversation;
        if (expectedVersion !== undefined && expectedVersion !== record.version) {
          throw new StoreError(
            'CONFLICT',
            `conversation "${id}" is at version ${record.version}, not the expected ${expectedVersion}`,
          );
        }
        const now = Date.now();
        const added = prepared.map(({ role, json }, index): ConversationItem => ({
          id: newItemId(),
          conversationId: id,
          seq: items.length + index + 1,
          role,
          message: JSON.parse(json) as Record<string, unknown>,
          createdAt: now,
        }));
        items.push(...added);
        record.version += 1;
        return { version: record.version, items: added.map(copyItem) };
      },
      async items(id, page) {
        checkItemPage(page);
        const items = byId.get(id)?.items ?? [];
        if (page.order === 'asc') {
          const start = Math.min(page.after ?? 0, items.length);
          return items.slice(start, start + page.limit).map(copyItem);
        }
        const end = page.after === undefined ? items.length : Math.min(Math.max(page.after - 1, 0), items.length);
        return items
          .slice(Math.max(0, end - page.limit), end)
          .reverse()
          .map(copyItem);
      },
      async item(id, itemId) {
        const found = byId.get(id)?.items.find((item) => item.id === itemId);
        return found && copyItem(found);
      },
    },
    clear() {
      byId.clear();
      created = 0;
    },
  };
}

function copyConversation(record: ConversationRecord): ConversationRecord {
  return { ...record, metadata: { ...record.metadata } };
}

/** Messages go through JSON as they do in SQLite, so a caller never shares an object with the store. */
function copyItem(item: ConversationItem): ConversationItem {
  return { ...item, message: JSON.parse(JSON.stringify(item.message)) as Record<string, unknown> };
}

// Which replicas of a deployment are alive: each beats (a record that expires unless renewed), so that a replica
// that dies is gone from the list within the ttl without saying so. Others use the list to know whether a call
// they wait for can still be answered, and operators to see the cluster. In one process the list is that process.
export interface ReplicaUpstream {
  key: string;
  state: string;
  tools: number;
}

export interface ReplicaInfo {
  /** Unique among the live replicas; the `x-mcplex-replica` header of its answers. */
  name: string;
  version: string;
  pid: number;
  startedAt: number;
  /** When the record was last renewed (the replica's clock). */
  beatAt: number;
  /** Sessions in use on it now: open streams and requests in progress. */
  sessionsInUse: number;
  upstreams: ReplicaUpstream[];
  /** Stopping: it takes no new requests. */
  draining: boolean;
}

export interface ReplicaRegistry {
  /** Writes (or renews) a replica's record, live for `ttlMs` from now. */
  beat(info: ReplicaInfo, ttlMs: number): Promise<void>;
  /** The live replicas, by name. */
  list(): Promise<ReplicaInfo[]>;
  /** Removes a replica's record at once (a clean shutdown). */
  leave(name: string): Promise<void>;
}

/** The registry of one process: what it beat, until it expires by this process's clock. */
export function createMemoryReplicas(now: () => number = Date.now): ReplicaRegistry {
  const records = new Map<string, { info: ReplicaInfo; until: number }>();
  return {
    async beat(info, ttlMs) {
      records.set(info.name, { info, until: now() + ttlMs });
    },
    async list() {
      const live: ReplicaInfo[] = [];
      for (const [name, record] of records) {
        if (record.until <= now()) records.delete(name);
        else live.push(record.info);
      }
      return live.sort((a, b) => a.name.localeCompare(b.name));
    },
    async leave(name) {
      records.delete(name);
    },
  };
}

export interface Heartbeat {
  /** Whether `name` was alive at the last look (this replica always is). */
  alive(name: string): boolean;
  /** The replicas alive at the last look. */
  replicas(): Promise<ReplicaInfo[]>;
  /** Stops beating and removes this replica's record. */
  stop(): Promise<void>;
}

/**
 * Beats `info()` every `intervalMs` with a ttl of three intervals, and reads the list of live replicas right after,
 * so that `alive` answers without I/O. A failed beat (the registry away) keeps the
 * last list: nobody is declared dead because the registry could not be asked.
 */
export function startHeartbeat(
  registry: ReplicaRegistry,
  info: () => ReplicaInfo,
  intervalMs: number,
  onError: (error: unknown) => void = () => {},
): Heartbeat {
  const self = info().name;
  let live = new Set<string>([self]);
  let stopped = false;
  const ttl = intervalMs * 3;
  const round = async () => {
    try {
      await registry.beat(info(), ttl);
      live = new Set([self, ...(await registry.list()).map((r) => r.name)]);
    } catch (error) {
      onError(error);
    }
  };
  void round();
  const timer = setInterval(() => void round(), intervalMs);
  timer.unref();
  return {
    alive: (name) => live.has(name),
    replicas: () => registry.list(),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await registry.leave(self).catch(onError);
    },
  };
}

// The response cache in front of the backends: a request whose answer depends only on its content (temperature 0,
// a seed, embeddings, or forced by header) is answered from a saved answer when there is one; on a miss, identical
// requests may share the answer in flight (shareKey), and a complete 200 answer is saved for the next ones.
import { errorMessage } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { Metrics } from '../../metrics.js';
import { cacheable, cacheKey } from '../../policy/cache/cache-key.js';
import { CACHE_HEADER, fromSse, replayJson, replaySse } from '../../policy/cache/response-cache.js';
import type { ResponseCache } from '../../policy/cache/response-cache.js';
import type { Lease } from '../../store/coordination.js';
import type { CacheEntry } from '../../store/store.js';
import type { Stage } from '../pipeline.js';
import { metricRouteOf } from '../router.js';
import { OVERHEAD_HEADER, overheadSince } from '../overhead.js';
import type { FillLock } from './fill-lock.js';

export interface CacheStageOptions {
  cache: ResponseCache;
  /**
   * With a cache every replica shares: the lock that lets one replica's request fill an entry while identical ones
   * elsewhere wait for it. `fillsHere(shareKey)` says whether this process already answers that request (its own
   * identical requests then join that flight instead, live).
   */
  fill?: { lock: FillLock; fillsHere(shareKey: string): boolean } | undefined;
  /** One entry for every caller; otherwise entries are kept per principal. */
  shared: boolean;
  logger: Logger;
  metrics: Metrics;
}

export function createCacheStage(options: CacheStageOptions): Stage {
  const { cache, logger, metrics } = options;
  return async (ctx, next) => {
    // Only an HTTP client's request can be answered from the cache: the replay writes the client's response.
    if (!ctx.http || !ctx.primary) return next();
    const { req, res } = ctx.http;
    const mode = cacheable(ctx.body, req.headers, ctx.route);
    if (mode !== 'yes') {
      ctx.setHeader(CACHE_HEADER, mode === 'bypass' ? 'bypass' : 'miss');
      return next();
    }
    const key = cacheKey(ctx.route, { ...ctx.body, model: ctx.primary.name }, options.shared ? '' : ctx.principal.id);
    const stream = ctx.body.stream === true;
    const includeUsage = (ctx.body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    /** Answers from a saved entry and counts it as the cache's answer; false when the entry cannot be replayed. */
    const replay = (entry: CacheEntry | undefined): boolean => {
      if (entry === undefined) return false;
      const headers = { [OVERHEAD_HEADER]: overheadSince(ctx.started) };
      const done = stream ? replaySse(res, entry, headers, includeUsage) : replayJson(res, entry, headers);
      if (done) {
        metrics.llmRequests.inc({
          route: metricRouteOf(ctx),
          model: ctx.requested,
          deployment: 'cache',
          status: '200',
        });
      }
      return done;
    };
    if (replay(await cache.lookup(key))) return;
    // The delivery form is part of what identical requests share: the bytes of a stream and of JSON differ.
    const shareKey = `${key}:${stream ? (includeUsage ? 'sse+u' : 'sse') : 'json'}`;
    let lease: Lease | undefined;
    if (options.fill && !options.fill.fillsHere(shareKey)) {
      const { lock } = options.fill;
      const claimed = await lock.claim(key);
      if (claimed !== 'elsewhere') {
        lease = claimed;
        // Another replica may have saved the answer and let go between the lookup above and this claim: look once
        // more, holding the lock, so that the backend is not asked again for what the cache has.
        if (replay(await cache.lookup(key))) {
          if (lease) await lock.release(key, lease);
          return;
        }
      } else {
        // Another replica is answering it: its answer, once saved, is this one's too.
        const filled = await lock.wait(
          key,
          () => cache.lookup(key),
          () => ctx.sink.gone,
        );
        if (replay(filled)) return;
      }
    }
    try {
      ctx.setHeader(CACHE_HEADER, 'miss');
      ctx.shareKey = shareKey;
      await next();
      const answer = ctx.answer;
      if (answer?.status !== 200) return;
      const text = answer.text();
      try {
        // Entries are kept in the plain JSON form; a streamed request replays them as a stream.
        await cache.save(key, stream ? fromSse(text) : text, 'json');
      } catch (error) {
        logger.debug({ err: errorMessage(error), requestId: ctx.requestId }, 'response not cached');
      }
    } finally {
      // Saved (or not to be): the replicas waiting for it look again.
      if (lease) await options.fill!.lock.release(key, lease);
    }
  };
}

// Identical requests in flight share one backend call: the first (the leader) answers into a flight, and every
// request with the same share key, the leader's own client included, is written from that flight.
import { createCoalescer, createFlight } from '../batching/coalescer.js';
import type { Coalescer } from '../batching/coalescer.js';
import type { Stage } from '../pipeline.js';
import { flightSink } from '../sink.js';

export function createCoalesceStage(coalescer: Coalescer = createCoalescer()): Stage {
  return async (ctx, next) => {
    if (ctx.shareKey === undefined || !ctx.http) return next();
    const { flight, leader } = coalescer.join(ctx.shareKey, createFlight);
    flight.pipe(ctx.http.res);
    if (!leader) {
      await new Promise<void>((resolve) => flight.onDone(resolve));
      return;
    }
    ctx.sink = flightSink(flight);
    try {
      await next();
      if (flight.state === 'open') flight.end();
    } catch (error) {
      flight.fail(error);
      throw error;
    }
    if (flight.state === 'ended' && !flight.abandoned && flight.status !== undefined) {
      const status = flight.status;
      ctx.answer = { status, text: () => flight.text() };
    }
  };
}

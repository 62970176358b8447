// The last stage: the router answers the request from a backend (retries, fallbacks, breakers) into the sink.
import type { Stage } from '../pipeline.js';
import type { RoutedRequest, Router } from '../router.js';

export function createRouteStage(router: Router): Stage {
  return async (ctx) => {
    if (!ctx.primary) throw new Error('the route stage runs after the gate');
    ctx.usage = await router.routeRequest(ctx as RoutedRequest);
  };
}

// The `x-mcplex-overhead-ms` header: what mcplex itself added to a /v1 answer. An answer from a backend counts
// everything but the backend's time (router.ts); one mcplex gives alone (a cache hit, a refusal, the model
// list) counts all of it.
export const OVERHEAD_HEADER = 'x-mcplex-overhead-ms';

/** Milliseconds since `started` (a `performance.now()` reading), as the header carries them. */
export const overheadSince = (started: number): string => (performance.now() - started).toFixed(3);

// The usage recorder's reads: totals and series include what was added before them, written first.
import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../store/memory/memory-store.js';
import { createUsageRecorder } from './usage-recorder.js';

describe('usage recorder', () => {
  it('series writes what has gathered first, then reads it per bucket', async () => {
    const store = createMemoryStore();
    const recorder = createUsageRecorder(store.usage, { flushMs: 60_000 });
    try {
      const before = Date.now();
      recorder.add('k1', 'gpt', 10, 5);
      recorder.add('k1', 'gpt', 1, 1);
      recorder.add('k2', 'claude', 3, 4);
      const hour = 3_600_000;
      const start = Math.floor(before / hour) * hour;
      const series = await recorder.series({ since: start, until: start + 2 * hour, bucketMs: hour });
      // The flush stamps one time for the batch: both pairs land in the same bucket.
      expect(series).toHaveLength(2);
      expect(new Set(series.map((b) => b.at)).size).toBe(1);
      expect(series.map(({ at: _at, ...total }) => total)).toEqual([
        { subject: 'k1', model: 'gpt', requests: 2, promptTokens: 11, completionTokens: 6 },
        { subject: 'k2', model: 'claude', requests: 1, promptTokens: 3, completionTokens: 4 },
      ]);
    } finally {
      await recorder.close();
      await store.close();
    }
  });
});

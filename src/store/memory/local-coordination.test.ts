// The in-process coordination: the shared Coordination contract, then what only it promises.
import { describe, expect, it } from 'vitest';
import { describeCoordinationContract } from '../coordination-contract.js';
import { createLocalCoordination } from './local-coordination.js';

describeCoordinationContract('local', async (now) => createLocalCoordination({ now }));

describe('local coordination', () => {
  it('sweeping out keys whose leases all expired never forgets one still held', async () => {
    let time = 0;
    const coordination = createLocalCoordination({ now: () => time });
    const busy = await coordination.acquire('busy', 1, 60_000);
    for (let i = 0; i < 12_000; i++) await coordination.acquire(`idle-${i}`, 1, 1000);
    time = 2000;
    // Past 10 000 keys an acquire sweeps: the idle keys go, the one still held stays.
    await coordination.acquire('after', 1, 1000);
    expect(await coordination.count('busy')).toBe(1);
    expect(await coordination.acquire('busy', 1, 60_000)).toBeUndefined();
    await busy!.release();
    expect(await coordination.count('busy')).toBe(0);
  });

  it('stops delivering and granting after close', async () => {
    const coordination = createLocalCoordination();
    const got: string[] = [];
    await coordination.subscribe('t', (message) => got.push(message));
    await coordination.close();
    await coordination.publish('t', 'x');
    expect(got).toEqual([]);
    expect(await coordination.acquire('k', 1, 1000)).toBeUndefined();
  });
});

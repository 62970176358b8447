import { describe, expect, it } from 'vitest';
import { PeakEwma, pickDeployment } from './balancer.js';
import type { Candidate } from './balancer.js';
import { createBreaker } from './breaker.js';

function candidate(name: string, options: { weight?: number; inFlight?: number; cost?: number } = {}) {
  return {
    name,
    weight: options.weight ?? 1,
    maxConcurrent: 10,
    inFlight: options.inFlight ?? 0,
    breaker: createBreaker({ failures: 2, cooldownMs: 1000 }),
    cost: () => options.cost ?? 0,
  } satisfies Candidate & { name: string };
}

describe('pickDeployment', () => {
  it('latency: the cheaper of two random candidates wins', () => {
    const fast = candidate('fast', { cost: 5 });
    const slow = candidate('slow', { cost: 50 });
    for (let i = 0; i < 50; i++) expect(pickDeployment([slow, fast], 'latency', new Set())?.name).toBe('fast');
  });

  it('skips excluded, saturated and broken deployments', () => {
    const a = candidate('a');
    const b = candidate('b', { inFlight: 10 });
    const c = candidate('c');
    c.breaker.failure();
    c.breaker.failure();
    expect(pickDeployment([a, b, c], 'weighted', new Set())?.name).toBe('a');
    expect(pickDeployment([a, b, c], 'weighted', new Set([a]))).toBeUndefined();
  });

  it('least-in-flight weighs the load by the weight', () => {
    const big = candidate('big', { weight: 4, inFlight: 3 });
    const small = candidate('small', { weight: 1, inFlight: 1 });
    expect(pickDeployment([small, big], 'least-in-flight', new Set())?.name).toBe('big');
  });
});

describe('PeakEwma', () => {
  it('jumps to a slower observation and decays towards faster ones', () => {
    const ewma = new PeakEwma(1000);
    ewma.observe(100, 0);
    ewma.observe(10, 0);
    expect(ewma.estimate()).toBe(100);
    ewma.observe(10, 5000);
    expect(ewma.estimate()).toBeLessThan(12);
  });
});

describe('the circuit breaker', () => {
  it('opens after consecutive failures, admits one probe after the cool-down, and closes on its success', () => {
    let now = 0;
    const breaker = createBreaker({ failures: 2, cooldownMs: 100 }, () => now);
    breaker.failure();
    expect(breaker.state).toBe('closed');
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.acquire()).toBe(false);
    now = 100;
    expect(breaker.state).toBe('half-open');
    expect(breaker.acquire()).toBe(true);
    expect(breaker.acquire()).toBe(false);
    breaker.success();
    expect(breaker.state).toBe('closed');
  });

  it('opens again when the probe fails', () => {
    let now = 0;
    const breaker = createBreaker({ failures: 3, cooldownMs: 100 }, () => now);
    for (let i = 0; i < 3; i++) breaker.failure();
    now = 150;
    expect(breaker.acquire()).toBe(true);
    breaker.failure();
    expect(breaker.state).toBe('open');
  });
});

import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';
import { createRepeatLimit } from './repeat-limit.js';

describe('createRepeatLimit', () => {
  it('admits a few lines per key and window, counts the rest and reports them once', () => {
    let now = 0;
    const limit = createRepeatLimit({ windowMs: 1000, perWindow: 2, now: () => now });
    const admitted = Array.from({ length: 5 }, () => limit.admit('a').write);
    expect(admitted).toEqual([true, true, false, false, false]);
    expect(limit.admit('b').write).toBe(true);
    expect(limit.due()).toEqual([]);
    now = 1500;
    // The next line of a key whose window ended says how many were left out.
    expect(limit.admit('a')).toEqual({ write: true, suppressed: 3 });
    now = 3000;
    limit.admit('c');
    limit.admit('c');
    limit.admit('c');
    now = 4500;
    expect(limit.due()).toEqual([{ key: 'c', suppressed: 1, level: 0 }]);
    expect(limit.due()).toEqual([]);
  });

  it('remembers a bounded number of keys', () => {
    const limit = createRepeatLimit({ windowMs: 1000, perWindow: 1, maxKeys: 3, now: () => 0 });
    for (const key of ['a', 'b', 'c', 'd']) limit.admit(key);
    // "a" was forgotten: it is admitted again as new.
    expect(limit.admit('a').write).toBe(true);
    expect(limit.admit('d').write).toBe(false);
  });
});

describe('createLogger', () => {
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n'))
          if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    return { lines, stream };
  }

  it('writes a repeated warning a few times per window, and leaves info lines alone', async () => {
    const { lines, stream } = capture();
    const logger = createLogger('info', stream);
    for (let i = 0; i < 100; i++) logger.warn({ i }, 'the backend is down');
    for (let i = 0; i < 100; i++) logger.error(`request ${i} failed`);
    for (let i = 0; i < 20; i++) logger.info('served');
    await new Promise((resolve) => setImmediate(resolve));
    const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
    expect(count('the backend is down')).toBe(5);
    // Distinct messages are distinct keys.
    expect(count('request 0 failed')).toBe(1);
    expect(count('served')).toBe(20);
  });

  it('tells sources apart: the first line of another server or backend is written', async () => {
    const { lines, stream } = capture();
    const logger = createLogger('info', stream);
    for (let i = 0; i < 10; i++) logger.warn({ deployment: 'a', requestId: String(i) }, 'LLM attempt failed');
    logger.warn({ deployment: 'b', requestId: 'x' }, 'LLM attempt failed');
    for (let i = 0; i < 10; i++) logger.child({ server: 'one' }).warn('catalog refresh failed');
    logger.child({ server: 'two' }).warn('catalog refresh failed');
    await new Promise((resolve) => setImmediate(resolve));
    const from = (field: string, value: string) => lines.filter((l) => l[field] === value).length;
    expect(from('deployment', 'a')).toBe(5);
    expect(from('deployment', 'b')).toBe(1);
    expect(from('server', 'one')).toBe(5);
    expect(from('server', 'two')).toBe(1);
  });

  it('keeps secrets out of the lines', async () => {
    const { lines, stream } = capture();
    createLogger('info', stream).info({ headers: { authorization: 'Bearer mcx_secret' } }, 'request');
    await new Promise((resolve) => setImmediate(resolve));
    expect(JSON.stringify(lines)).not.toContain('mcx_secret');
  });
});

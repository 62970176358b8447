// Unit tests for `${VAR}` expansion over a parsed config tree.
import { describe, expect, it } from 'vitest';
import { expandEnv } from './expand-env.js';

describe('expandEnv', () => {
  const env = { HOME: '/home/me', EMPTY: '', TOKEN: 'secret' };

  it('expands variables in every string value, including arrays, but not keys', () => {
    const { value, problems } = expandEnv(
      {
        '${HOME}': 'x',
        a: '${HOME}/data',
        list: ['--token=${TOKEN}', 3, true, null],
        nested: { b: 'pre-${TOKEN}-post' },
      },
      env,
    );
    expect(problems).toEqual([]);
    expect(value).toEqual({
      '${HOME}': 'x',
      a: '/home/me/data',
      list: ['--token=secret', 3, true, null],
      nested: { b: 'pre-secret-post' },
    });
  });

  it('uses the default when the variable is unset or empty', () => {
    const { value, problems } = expandEnv(['${MISSING:-fallback}', '${EMPTY:-fallback}', '${HOME:-x}', '${X:-}'], env);
    expect(problems).toEqual([]);
    expect(value).toEqual(['fallback', 'fallback', '/home/me', '']);
  });

  it('keeps an empty (but set) variable without a default', () => {
    expect(expandEnv('a${EMPTY}b', env).value).toBe('ab');
  });

  it('reports a missing variable at its path and leaves the string as it was', () => {
    const { value, problems } = expandEnv({ servers: { fs: { args: ['ok', '${NOPE}'] } } }, env);
    expect(problems).toEqual([{ path: 'servers.fs.args[1]', message: 'environment variable NOPE is not set' }]);
    expect(value).toEqual({ servers: { fs: { args: ['ok', '${NOPE}'] } } });
  });

  it('turns $${...} into a literal ${...}', () => {
    const { value, problems } = expandEnv('$${HOME} and ${HOME} and $${NOPE:-x}', env);
    expect(problems).toEqual([]);
    expect(value).toBe('${HOME} and /home/me and ${NOPE:-x}');
  });

  it('reports malformed references', () => {
    const { problems } = expandEnv({ a: '${not a name}' }, env);
    expect(problems).toHaveLength(1);
    expect(problems[0]?.path).toBe('a');
    expect(problems[0]?.message).toContain('invalid environment variable reference "${not a name}"');
  });

  it('does not modify its input', () => {
    const input = { a: '${HOME}' };
    expandEnv(input, env);
    expect(input).toEqual({ a: '${HOME}' });
  });

  it('defaults to process.env', () => {
    const name = Object.keys(process.env).find((key) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(key));
    if (name === undefined) return;
    expect(expandEnv(`\${${name}}`).value).toBe(process.env[name]);
  });
});

// Unit tests for ConfigError's message format and path formatting.
import { describe, expect, it } from 'vitest';
import { ConfigError, formatPath } from './errors.js';

describe('formatPath', () => {
  it('joins plain keys with dots, indexes with brackets and quotes odd keys', () => {
    expect(formatPath([])).toBe('');
    expect(formatPath(['mcpServers', 'fs', 'args', 0])).toBe('mcpServers.fs.args[0]');
    expect(formatPath(['mcpServers', 'my server', 'command'])).toBe('mcpServers["my server"].command');
    expect(formatPath(['mcpServers', '1password'])).toBe('mcpServers.1password');
  });
});

describe('ConfigError', () => {
  it('lists every problem on its own line, prefixed by the source', () => {
    const error = new ConfigError(
      'CONFIG_INVALID',
      [
        { path: 'a.b', message: 'first' },
        { path: 'c', message: 'second' },
      ],
      '/etc/mcplex.json',
    );
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('ConfigError');
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.source).toBe('/etc/mcplex.json');
    expect(error.message).toBe('/etc/mcplex.json: invalid configuration\n  a.b: first\n  c: second');
    expect(Object.isFrozen(error.problems)).toBe(true);
  });

  it('omits the path for whole-file problems', () => {
    const error = new ConfigError('CONFIG_READ', [{ path: '', message: 'file not found' }]);
    expect(error.message).toBe('configuration: cannot read configuration\n  file not found');
  });
});

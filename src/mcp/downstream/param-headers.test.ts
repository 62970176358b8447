import { describe, expect, it } from 'vitest';
import type { Tool } from '@modelcontextprotocol/client';
import { checkParamHeaders, decodeParamValue, HEADER_MISMATCH, paramHeaders } from './param-headers.js';

const tool: Tool = {
  name: 'deploy',
  inputSchema: {
    type: 'object',
    properties: {
      region: { type: 'string', 'x-mcp-header': 'Region' },
      replicas: { type: 'integer', 'x-mcp-header': 'Replicas' },
      target: { type: 'object', properties: { env: { type: 'string', 'x-mcp-header': 'Env' } } },
      notes: { type: 'string' },
    },
  },
};

describe('Mcp-Param-* headers', () => {
  it('finds the declarations along properties, nested ones included', () => {
    expect(paramHeaders(tool).map((d) => [d.name, d.path.join('.')])).toEqual([
      ['Region', 'region'],
      ['Replicas', 'replicas'],
      ['Env', 'target.env'],
    ]);
  });

  it('decodes the Base64 sentinel and rejects a malformed payload', () => {
    expect(decodeParamValue('=?base64?SGVsbG8=?=')).toBe('Hello');
    expect(decodeParamValue('=?base64?SGVsbG8?=')).toBeUndefined();
    expect(decodeParamValue('=?base64?SGVs!!!bG8=?=')).toBeUndefined();
    // Without both sentinels the value is literal.
    expect(decodeParamValue('=?base64?SGVsbG8=')).toBe('=?base64?SGVsbG8=');
    expect(decodeParamValue('SGVsbG8=')).toBe('SGVsbG8=');
  });

  it('accepts agreeing headers and arguments the tool does not map', () => {
    const args = { region: 'Hello', replicas: 3, target: { env: 'prod' }, notes: 'x' };
    const headers = { 'mcp-param-region': '=?base64?SGVsbG8=?=', 'mcp-param-replicas': '3.0', 'mcp-param-env': 'prod' };
    expect(checkParamHeaders(paramHeaders(tool), args, headers)).toBeUndefined();
    // An absent or null argument needs no header.
    expect(checkParamHeaders(paramHeaders(tool), { region: null }, {})).toBeUndefined();
  });

  it('rejects a missing, malformed or disagreeing header with -32020', () => {
    const declarations = paramHeaders(tool);
    const missing = checkParamHeaders(declarations, { region: 'eu' }, {});
    expect(missing).toMatchObject({ code: HEADER_MISMATCH, data: { mismatch: { header: 'Mcp-Param-Region' } } });
    expect(missing?.message).toMatch(/Mcp-Param-Region is missing/);
    expect(checkParamHeaders(declarations, { region: 'eu' }, { 'mcp-param-region': '=?base64?ZX?=' })?.message).toMatch(
      /malformed Base64/,
    );
    expect(checkParamHeaders(declarations, { replicas: 3 }, { 'mcp-param-replicas': '4' })?.message).toMatch(
      /is "4" but the argument is 3/,
    );
  });
});

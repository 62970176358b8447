import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { loadConsole } from './console.js';

/** Just enough of a response to see what was written. */
function response() {
  const sent: { status?: number; headers?: Record<string, unknown>; body?: string } = {};
  const res = {
    headersSent: false,
    setHeader() {},
    writeHead(status: number, headers: Record<string, unknown>) {
      sent.status = status;
      sent.headers = headers;
      return res;
    },
    end(body?: Buffer | string) {
      sent.body = body === undefined ? '' : body.toString();
    },
  };
  return { res: res as unknown as ServerResponse, sent };
}

describe('the console files', () => {
  it('says how to build the console when it is not built', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcplex-ui-'));
    try {
      const files = loadConsole(join(dir, 'missing'));
      expect(files.built).toBe(false);
      const { res, sent } = response();
      files.serve('/ui/', res);
      expect(sent.status).toBe(404);
      expect(sent.body).toContain('npm run build');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

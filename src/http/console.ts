// The web console's static files under /ui/, as `npm run build` wrote them to dist/ui: read once into memory (a
// few files of a few kilobytes) and served from that map only, so no path a client sends ever reaches the disk.
// Every reference in the pages is relative, so the console works under any sub-path a reverse proxy adds.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import { sendJson } from '../wire/json.js';

/** Where the build puts the console, from src/http or dist/http alike. */
const BUILT = fileURLToPath(new URL('../../dist/ui/', import.meta.url));

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  ico: 'image/x-icon',
  json: 'application/json',
  map: 'application/json',
};

/**
 * Scripts and styles from this origin only, images and audio of tool results as data: URLs, requests to this
 * origin only; no framing, no forms posted anywhere.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface Asset {
  body: Buffer;
  type: string;
  /** Hashed file names never change content: cached for a year. index.html is checked every time. */
  immutable: boolean;
}

export interface ConsoleFiles {
  /** Answers GET /ui, /ui/ and /ui/<file>. */
  serve(path: string, res: ServerResponse): void;
  readonly built: boolean;
}

function readTree(dir: string, into: Map<string, Asset>, base = dir): void {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) readTree(full, into, base);
    else {
      const rel = relative(base, full).split(sep).join('/');
      const ext = name.slice(name.lastIndexOf('.') + 1);
      into.set(rel, {
        body: readFileSync(full),
        type: TYPES[ext] ?? 'application/octet-stream',
        immutable: rel.startsWith('assets/'),
      });
    }
  }
}

export function loadConsole(dir: string = BUILT): ConsoleFiles {
  const assets = new Map<string, Asset>();
  try {
    readTree(dir, assets);
  } catch {
    // Not built (a checkout without `npm run build`): /ui/ says so instead of failing.
  }
  const built = assets.has('index.html');
  return {
    built,
    serve(path, res) {
      if (path === '/ui') {
        // Relative, so that a proxy's sub-path is kept: /prefix/ui → /prefix/ui/.
        res.writeHead(301, { location: 'ui/', 'content-length': 0 });
        res.end();
        return;
      }
      if (!built) {
        sendJson(res, 404, {
          error: { code: 'NOT_FOUND', message: 'the console is not built: run `npm run build` and start mcplex again' },
        });
        return;
      }
      const name = path === '/ui/' ? 'index.html' : path.slice('/ui/'.length);
      const asset = assets.get(name);
      if (!asset) {
        sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no console file ${path}` } });
        return;
      }
      res.writeHead(200, {
        'content-type': asset.type,
        'content-length': asset.body.length,
        'cache-control': asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'x-frame-options': 'DENY',
      });
      res.end(asset.body);
    },
  };
}

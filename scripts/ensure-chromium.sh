#!/bin/sh
# Installs Debian's Chromium (the browser the console's tests drive with playwright-core) when it is missing.
set -eu
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "mcplex: the browser tests need Chromium; run as root: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

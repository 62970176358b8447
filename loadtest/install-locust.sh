#!/bin/sh
# Installs Locust from Debian's packages (python3-locust) when /usr/bin/locust is missing.
set -eu
[ -x /usr/bin/locust ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "mcplex: needs Locust; run as root: apt-get update && apt-get install -y python3-locust" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-locust >/dev/null

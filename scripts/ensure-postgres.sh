#!/usr/bin/env bash
# The PostgreSQL tests start a private server; this only makes sure its binaries are installed.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
else
  echo "PostgreSQL binaries are missing; install the 'postgresql' package (tests needing it will fail)." >&2
fi

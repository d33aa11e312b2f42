#!/usr/bin/env bash
# Installs the system packages the tests need when they are missing: PostgreSQL (the tests start a
# private server) and Chromium (the drill's HTML report is rendered headless). Needs root for apt-get.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "missing system packages: ${missing[*]} (install them; the tests that need them will fail)" >&2
  fi
fi
# initdb refuses to run as root: as root, tests/pg_server.py runs the private cluster as `postgres`
# (the package creates that user; binaries from elsewhere may not have).
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi

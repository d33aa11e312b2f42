#!/usr/bin/env bash
# Build .venv-qldbshell: AWS's QLDB shell for Python (`qldbshell` 1.2.0 from the package registry, installed
# unchanged), which tests/test_serve_qldbshell.py drives against `ledgerdr serve`.
#
# qldbshell pins amazon.ion 0.5, which imports collections.MutableMapping: removed in Python 3.10, so the shell
# only runs on Python 3.9 or older. This script looks for one on PATH, then among pyenv's versions. When there is
# none, or the install fails, it writes the reason to .venv-qldbshell/UNAVAILABLE and exits 0: the test then
# skips and says why, and the rest of `make test` goes on.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-qldbshell
PACKAGES=(qldbshell==1.2.0)
# QLDB's service models left botocore; these put them back (--no-deps: they pin an old botocore).
MODELS=(botocore-a-la-carte-qldb==1.34.144 botocore-a-la-carte-qldb-session==1.34.144)

unavailable() {
    mkdir -p "$VENV"
    echo "$1" > "$VENV/UNAVAILABLE"
    echo "build-qldbshell-venv: $1 (the qldbshell test will skip)" >&2
    exit 0
}

find_python() {
    local candidate version
    for candidate in python3.9 python3.8 python3.7; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import venv' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(9|8|7)\.[0-9]+$' | sort -rV); do
            candidate="$(pyenv prefix "$version" 2>/dev/null)/bin/python${version%.*}"
            if [ -x "$candidate" ]; then
                echo "$candidate"
                return 0
            fi
        done
    fi
    return 1
}

rm -rf "$VENV"
PY="$(find_python)" || unavailable "no Python 3.9 or older found (qldbshell's amazon.ion 0.5 needs one)"
"$PY" -m venv "$VENV" || unavailable "$PY -m venv failed"
"$VENV/bin/pip" install -q --disable-pip-version-check "${PACKAGES[@]}" \
    || unavailable "pip could not install ${PACKAGES[*]} with $PY"
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "${MODELS[@]}" \
    || unavailable "pip could not install ${MODELS[*]}"
"$VENV/bin/qldbshell" --help >/dev/null 2>&1 || unavailable "qldbshell was installed but does not start"
echo "build-qldbshell-venv: $VENV ready ($("$PY" --version 2>&1), qldbshell 1.2.0)"

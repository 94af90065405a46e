#!/usr/bin/env bash
# The tests that use tools from outside Rust against a real `hookline serve` (built by test.sh):
# schemathesis against /openapi.json, a Standard Webhooks receiver using the official Python
# package, the catalogue's published hook schemas checked against ingest by Python's jsonschema,
# and the dashboard driven by headless Chromium. Installs what they need on first use:
# a Python venv in target/test-venv (PyPI), Debian's chromium (apt), playwright-core (npm) in
# target/test-node.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=target/test-venv
PY_PACKAGES=(schemathesis==4.32.5 standardwebhooks==1.1.0 jsonschema==4.26.0)
if ! "$VENV/bin/python" -c 'import schemathesis, standardwebhooks, jsonschema' 2>/dev/null; then
    echo "== creating $VENV (${PY_PACKAGES[*]})"
    python3 -m venv "$VENV"
    # `python -m pip`, not bin/pip: a venv copied from another checkout keeps bin/pip's shebang
    # pointing at the original, and would install there.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
fi

# A fresh network namespace with only loopback: schemathesis invents webhook URLs and the test
# route sends to them; here nothing can leave the machine.
in_private_net() {
    local unshare=(unshare -n)
    if ! unshare -n true 2>/dev/null; then
        unshare=(unshare -rn)
    fi
    "${unshare[@]}" sh -c 'ip link set lo up && exec "$@"' sh "$@"
}

# Each test under `timeout`: a hang fails the run instead of holding CI. timeout signals the
# whole process group, so the hookline servers the scripts started go with them.
echo "== schemathesis against /openapi.json"
in_private_net timeout 900 "$VENV/bin/python" scripts/ecosystem/run_schemathesis.py

echo "== Standard Webhooks signatures checked by the official standardwebhooks package"
timeout 300 "$VENV/bin/python" scripts/ecosystem/standard_webhooks_receiver.py

echo "== the published hook schemas agree with ingest (Python's jsonschema as the outside validator)"
timeout 300 "$VENV/bin/python" scripts/ecosystem/catalogue_schemas.py

echo "== the dashboard in headless Chromium"
if [ ! -x /usr/bin/chromium ]; then
    echo "== installing Debian's chromium"
    as_root=()
    if [ "$(id -u)" != 0 ]; then as_root=(sudo); fi
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium >/dev/null
fi
NODE_DIR=target/test-node
if ! cmp -s scripts/ecosystem/dashboard/package-lock.json "$NODE_DIR/package-lock.json" \
    || [ ! -d "$NODE_DIR/node_modules/playwright-core" ]; then
    echo "== installing playwright-core into $NODE_DIR (npm ci)"
    mkdir -p "$NODE_DIR"
    cp scripts/ecosystem/dashboard/package.json scripts/ecosystem/dashboard/package-lock.json "$NODE_DIR/"
    (cd "$NODE_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# Loopback only, like schemathesis: the pages must need nothing from other hosts.
in_private_net timeout 300 node scripts/ecosystem/dashboard/dashboard.test.mjs

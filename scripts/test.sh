#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: nothing to install by hand.
# (The README's test command; .ci/run calls it after fmt and clippy.)
set -euo pipefail
cd "$(dirname "$0")/.."

# A throwaway PostgreSQL cluster for the store tests' PostgreSQL variant; removed on exit.
# Fails the run (set -e) when PostgreSQL cannot be started: those tests must fail, never skip.
pg_env=$(./scripts/pg.sh start)
eval "$pg_env"
trap './scripts/pg.sh stop' EXIT

# The cluster fault tests hold a database port's packets back with `tc` (iproute2).
if ! command -v tc >/dev/null 2>&1; then
    echo "test.sh: no tc found; installing iproute2 with apt-get" >&2
    [ "$(id -u)" = 0 ] || { echo "test.sh: tc is not installed and we are not root to install it" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >&2
fi

# Tests that start the real server look for the binary cargo builds beside them.
cargo build --workspace --locked --bins
# The fuzz targets (their own workspace, see RELIABILITY.md "Fuzzing") must keep compiling on
# stable: type-checked here, not linked (libFuzzer needs nightly for that). Their properties run
# as proptests in `cargo test` below.
cargo check --manifest-path fuzz/Cargo.toml --bins --target-dir target/fuzz --quiet
cargo test --workspace --locked --no-fail-fast "$@"
# The same behaviour suite on the shared store (cluster:: already runs on PostgreSQL).
HOOKLINE_ACCEPTANCE_STORE=postgres cargo test -p hookline --locked --test acceptance -- --skip cluster::

# schemathesis, the Standard Webhooks receiver in Python, the dashboard in headless Chromium.
./scripts/ecosystem/run.sh

#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests.
#
#   env=$(scripts/pg.sh start) && eval "$env"   # prints `export HOOKLINE_TEST_DATABASE_URL=...` and `export HOOKLINE_PG_DIR=...`
#   HOOKLINE_PG_DURABLE=1 scripts/pg.sh start  # fsync on (benchmarks); the default turns it off
#   scripts/pg.sh stop              # stops the cluster in $HOOKLINE_PG_DIR and removes the dir
#
# `start` looks for initdb/pg_ctl/postgres on PATH, then under /usr/lib/postgresql/*/bin, and
# installs PostgreSQL with apt-get only when none is found. It fails (non-zero) when the cluster
# cannot be started: CI must fail, never skip, the PostgreSQL half of the store tests.
set -euo pipefail

PG_USER=hookline-pg

die() { echo "pg.sh: $*" >&2; exit 1; }

find_bindir() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    local d
    # Newest version first.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
    return 1
}

# Runs a command as the cluster's owner: postgres refuses to run as root.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

start() {
    local bindir
    if ! bindir=$(find_bindir); then
        echo "pg.sh: no PostgreSQL found; installing it with apt-get" >&2
        [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and we are not root to install it"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
        bindir=$(find_bindir) || die "PostgreSQL installed but initdb/pg_ctl not found"
    fi
    if [ "$(id -u)" = 0 ] && ! id "$PG_USER" >/dev/null 2>&1; then
        useradd -r -M -s /usr/sbin/nologin "$PG_USER" || die "cannot create user $PG_USER"
    fi

    local dir port
    dir=$(mktemp -d /tmp/hookline-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown "$PG_USER" "$dir"
    # A free loopback port: ask the kernel for one (a tiny race with other starters, acceptable for tests).
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null) \
        || port=$(( 20000 + RANDOM % 20000 ))

    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    # fsync off: a throwaway cluster for tests, speed matters and durability does not.
    # HOOKLINE_PG_DURABLE=1 keeps PostgreSQL's durable defaults (for benchmarks).
    local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${HOOKLINE_PG_DURABLE:-0}" = 1 ] && durability=""
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 20 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $durability -c max_connections=300" \
        start >/dev/null 2>&1 \
        || { cat "$dir/server.log" >&2; rm -rf "$dir"; die "PostgreSQL did not start"; }
    local psql="$bindir/psql"
    if [ -x "$psql" ]; then
        as_owner "$psql" -h "$dir" -p "$port" -U postgres -d postgres -qc "CREATE DATABASE hookline" >&2 \
            || die "CREATE DATABASE failed"
    else
        # Without psql the `postgres` database serves; tests create their own databases anyway.
        echo "pg.sh: psql not found; using database postgres" >&2
    fi
    local db=hookline
    [ -x "$psql" ] || db=postgres
    echo "export HOOKLINE_PG_DIR=$dir"
    echo "export HOOKLINE_PG_BINDIR=$bindir"
    echo "export HOOKLINE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$port/$db"
}

stop() {
    local dir=${1:-${HOOKLINE_PG_DIR:-}}
    [ -n "$dir" ] || die "stop: HOOKLINE_PG_DIR is not set (and no dir given)"
    [ -d "$dir/data" ] || die "stop: $dir is not a cluster made by pg.sh start"
    local bindir=${HOOKLINE_PG_BINDIR:-}
    [ -n "$bindir" ] || bindir=$(find_bindir) || die "stop: pg_ctl not found"
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) shift; stop "$@" ;;
    *) echo "usage: $0 start|stop [dir]" >&2; exit 2 ;;
esac

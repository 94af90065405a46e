#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests.
#
#   env=$(scripts/pg.sh start) && eval "$env"   # prints `export HOOKLINE_TEST_DATABASE_URL=...` and `export HOOKLINE_PG_DIR=...`
#   HOOKLINE_PG_DURABLE=1 scripts/pg.sh start  # fsync on (benchmarks); the default turns it off
#   scripts/pg.sh stop              # stops the cluster in $HOOKLINE_PG_DIR and removes the dir
#
# The cluster speaks TLS only over TCP, as a managed database would: `start` makes a CA and a
# server certificate (for 127.0.0.1 and localhost) with openssl in the cluster's dir, runs with
# ssl=on, and its pg_hba.conf has `hostssl` lines only, so a plaintext TCP connection is refused.
# HOOKLINE_TEST_DATABASE_URL verifies the server (`sslmode=verify-full&sslrootcert=<the CA>`);
# HOOKLINE_PG_CA is the CA's file. (The Unix socket in the dir stays plaintext: psql here uses it.)
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
    if ! command -v openssl >/dev/null 2>&1; then
        echo "pg.sh: no openssl found (needed for the cluster's TLS certificates); installing it with apt-get" >&2
        [ "$(id -u)" = 0 ] || die "openssl is not installed and we are not root to install it"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >&2 || die "apt-get install openssl failed"
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

    # A language's collation by default, as most packaged and container clusters have (theirs is
    # usually libc's en_US.UTF-8; ICU's en-US needs no locale installed here): the schema's own
    # collation (byte order, migration 18) must hold against it. PostgreSQL before 15 (no
    # --locale-provider) or without ICU gets C.
    if ! as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 \
            --locale=C.UTF-8 --locale-provider=icu --icu-locale=en-US >"$dir/initdb-icu.log" 2>&1; then
        echo "pg.sh: initdb with ICU's en-US failed (see $dir/initdb-icu.log); the cluster's collation is C" >&2
        rm -rf "${dir:?}/data"
        as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    make_certs "$dir/tls"
    # TCP only with TLS; the Unix socket (psql below, the owner) without.
    cat >"$dir/data/pg_hba.conf" <<'HBA'
local   all all              trust
hostssl all all 127.0.0.1/32 trust
hostssl all all ::1/128      trust
HBA
    local tls="-c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key"
    # fsync off: a throwaway cluster for tests, speed matters and durability does not.
    # HOOKLINE_PG_DURABLE=1 keeps PostgreSQL's durable defaults (for benchmarks).
    local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${HOOKLINE_PG_DURABLE:-0}" = 1 ] && durability=""
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 20 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $durability -c max_connections=300 $tls" \
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
    echo "export HOOKLINE_PG_CA=$dir/tls/ca.crt"
    echo "export HOOKLINE_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$port/$db?sslmode=verify-full&sslrootcert=$dir/tls/ca.crt'"
}

# A CA and a server certificate signed by it (SAN: 127.0.0.1, ::1, localhost) in $1, the key
# readable by the cluster's owner only (postgres refuses a key others can read).
make_certs() {
    local tls=$1
    mkdir -p "$tls"
    (
        cd "$tls"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=hookline test CA" \
            -keyout ca.key -out ca.crt \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
        printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" \
            "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -extfile server.ext -out server.crt
    ) >"$tls.log" 2>&1 || { cat "$tls.log" >&2; die "openssl could not make the test certificates"; }
    chmod 600 "$tls/server.key" "$tls/ca.key"
    chmod 644 "$tls/ca.crt" "$tls/server.crt"
    [ "$(id -u)" = 0 ] && chown -R "$PG_USER" "$tls"
    return 0
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

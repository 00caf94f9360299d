#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, pg_ctl, postgres) exist for the records tests.
# Called by `make test` and .ci/run before pytest; does nothing when they are already there.
# tests/support/pgserver.py finds them on PATH or under /usr/lib/postgresql/*/bin and starts a
# throwaway server per test session (as the `postgres` user when run as root).
set -euo pipefail

have_pg() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then return 0; fi
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null
}

if ! have_pg; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure_postgres: no PostgreSQL binaries and cannot apt-get install them (need root + apt-get)" >&2
        exit 1
    fi
    echo "ensure_postgres: installing Debian's postgresql package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's own cluster is not needed: tests start their own server in a temp dir.
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    if command -v pg_lsclusters >/dev/null 2>&1; then
        pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
            pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
        done
    fi
fi

# PostgreSQL refuses to run as root: the tests run it as `postgres` (the package creates it).
if [ "$(id -u)" -eq 0 ] && ! getent passwd postgres >/dev/null; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi
have_pg && echo "ensure_postgres: ok" >&2

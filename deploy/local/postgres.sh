#!/usr/bin/env bash
# A private PostgreSQL cluster on loopback, from Debian's packages: no Docker needed.
#   deploy/local/postgres.sh start   install the server package if missing, init the
#                                    cluster (once), start it, create the database,
#                                    print DATABASE_URL
#   deploy/local/postgres.sh stop
#   deploy/local/postgres.sh status
# Idempotent: a second `start` finds the running cluster and starts nothing.
# Auth is `trust` on 127.0.0.1 only: this cluster is for development and tests.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
port="${POSTGRES_PORT:-5433}"
database="${POSTGRES_DB:-lifecycle}"
url="postgresql+asyncpg://postgres@127.0.0.1:$port/$database"

# Where the cluster lives: .local/postgres in the checkout, unless the `postgres` user
# cannot reach it there (a checkout under /root, mode 700): then a folder of this
# checkout's own under /var/lib, named by a hash of its path so checkouts do not share.
resolve_home() {
  home="${POSTGRES_HOME_DIR:-$root/.local/postgres}"
  if [[ -z "${POSTGRES_HOME_DIR:-}" && $(id -u) -eq 0 ]] && id postgres >/dev/null 2>&1; then
    mkdir -p "$home"; chown postgres:postgres "$home"
    if ! runuser -u postgres -- test -w "$home" 2>/dev/null; then
      home="/var/lib/lifecycle-postgres/$(printf '%s' "$root" | sha256sum | cut -c1-12)"
    fi
  fi
  data="$home/data-$port"
  logfile="$home/postgres-$port.log"
}

find_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

ensure_server_package() {
  local bindir; bindir=$(find_bindir)
  if [[ -n "$bindir" && -x "$bindir/postgres" ]]; then echo "$bindir"; return 0; fi
  echo "postgres: installing Debian's postgresql package (first run only)" >&2
  if [[ $(id -u) -ne 0 ]]; then echo "postgres: need root to apt-get install postgresql" >&2; exit 1; fi
  # policy-rc.d 101: do not start the distribution's own cluster; we run our own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  rm -f /usr/sbin/policy-rc.d; trap - EXIT
  find_bindir
}

# PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user.
as_owner() {
  # From /: the checkout may be a folder the postgres user cannot enter.
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

answers() { [[ -n "${bindir:-}" ]] && "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2; }

start() {
  bindir=$(ensure_server_package)
  resolve_home
  mkdir -p "$home"
  if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$home"; fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    as_owner "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-instructions >/dev/null
    cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$home'
max_connections = 200
shared_buffers = 256MB
CONF
  fi
  if ! answers; then
    as_owner "$bindir/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start >/dev/null
  else
    echo "postgres: already running on 127.0.0.1:$port" >&2
  fi
  if ! "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
      "select 1 from pg_database where datname = '$database'" | grep -q 1; then
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$database"
  fi
  tune_for_writes
  echo "postgres: log $logfile" >&2
  echo "DATABASE_URL=$url"
}

# The stage engine and the benchmarks write hard. With the default 1 GB max_wal_size a
# checkpoint started every 15-20 s under load: each ends in an fsync that stalls
# commits, and each page's first change after it is logged whole again, which brings
# the next one sooner. Checkpoints bound the time to recover after a crash; they do
# not change what a commit guarantees. Applied on every start (ALTER SYSTEM persists,
# a reload applies), so a cluster made by an older script gets them too.
#
# Shared buffers: timer rounds and the relay touch pages all over the users, history
# and outbox tables. With 256 MB, bench-stage's 1,000,000-timer run (about 2 GB of
# tables) read evicted pages back from the OS cache and had its backends write dirty
# ones out: 14,700-16,400 timers/s. With 4 GB: 17,100-20,600/s. A quarter of the
# machine's memory, from 256 MB to 4 GB, the usual start for a dedicated server. It
# takes a restart, done here once, when the value changes.
tune_for_writes() {
  local buffers_mb; buffers_mb=$(shared_buffers_mb)
  "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -qtA \
    -c "ALTER SYSTEM SET max_wal_size = '4GB'" \
    -c "ALTER SYSTEM SET checkpoint_timeout = '15min'" \
    -c "ALTER SYSTEM SET wal_compression = 'lz4'" \
    -c "ALTER SYSTEM SET shared_buffers = '${buffers_mb}MB'" \
    -c "SELECT pg_reload_conf()" >/dev/null
  local running_mb
  running_mb=$("$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -qtA -c \
    "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
  if [[ "$running_mb" != "$buffers_mb" ]]; then
    echo "postgres: restarting for shared_buffers = ${buffers_mb}MB (was ${running_mb}MB)" >&2
    as_owner "$bindir/pg_ctl" -D "$data" -l "$logfile" -w -t 60 restart -m fast >/dev/null
  fi
}

shared_buffers_mb() {
  local total_kb mb
  total_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  mb=$(( total_kb / 1024 / 4 ))
  (( mb < 256 )) && mb=256
  (( mb > 4096 )) && mb=4096
  echo "$mb"
}

stop() {
  bindir=$(find_bindir)
  resolve_home
  if [[ -z "$bindir" || ! -f "$data/postmaster.pid" ]]; then echo "postgres: not running" >&2; return 0; fi
  as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null && echo "postgres: stopped" >&2
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) bindir=$(find_bindir); answers && echo "DATABASE_URL=$url" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

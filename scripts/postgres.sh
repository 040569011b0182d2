#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL server on 127.0.0.1, for the tests (test.sh) and the
# benchmark (bench/Truestock.Bench, verb postgres):
#
#   scripts/postgres.sh start PORT DATADIR   # a fresh cluster in DATADIR (emptied first), listening on PORT
#   scripts/postgres.sh stop PORT DATADIR    # stops the server of DATADIR, if it runs
#
# start installs PostgreSQL from Debian's packages when it is absent and we are root; otherwise it
# prints the apt-get command to run and exits 2. The server is durable (fsync=on,
# synchronous_commit=on), trusts local connections as user postgres, puts its Unix socket in
# DATADIR and logs to DATADIR/server.log; initdb's output goes to DATADIR.initdb.log. Progress goes
# to stderr; on success start prints nothing on stdout and exits 0.
set -uo pipefail

say() { printf '==> %s\n' "$*" >&2; }
fail() { echo "postgres.sh: $*" >&2; exit 2; }

if [ $# -ne 3 ] || { [ "$1" != start ] && [ "$1" != stop ]; }; then
  echo "usage: $0 start|stop PORT DATADIR" >&2
  exit 2
fi
action=$1
port=$2
data=$(realpath -m -- "$3")
case "$port" in '' | *[!0-9]*) fail "PORT must be a number, not '$port'." ;; esac

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
as_pg() {
  # initdb refuses to run as root, so the server runs as the postgres user when we are root.
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "$action" = stop ]; then
  bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$data/postmaster.pid" ]; then
    say "Stopping PostgreSQL on 127.0.0.1:$port…"
    as_pg "$bin/pg_ctl" -D "$data" stop -m fast >/dev/null 2>&1 || true
  fi
  exit 0
fi

if [ -z "$(pg_bin)" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    fail "postgresql is not installed. Install it (sudo apt-get install -y postgresql) and run again."
  fi
  say "Installing postgresql from Debian's packages (once per machine; a minute or two)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null \
    || fail "apt-get install postgresql failed; see the output above."
fi
bin=$(pg_bin)
[ -n "$bin" ] || fail "postgresql was installed but no /usr/lib/postgresql/*/bin was found."

# A server left running in DATADIR by an earlier, interrupted run would hold the port and the files.
if [ -f "$data/postmaster.pid" ]; then
  as_pg "$bin/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1 || true
fi
rm -rf "$data"
mkdir -p "$data" || fail "cannot create $data."
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$data"
say "Starting PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $data)…"
as_pg "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 >"$data.initdb.log" 2>&1 \
  || { cat "$data.initdb.log" >&2; fail "initdb failed."; }
as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
  -o "-p $port -c listen_addresses=127.0.0.1 -k $data -c max_connections=300 -c fsync=on -c synchronous_commit=on" start >/dev/null \
  || { cat "$data/server.log" >&2; fail "PostgreSQL did not start."; }
say "PostgreSQL is ready on 127.0.0.1:$port."

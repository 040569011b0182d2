#!/usr/bin/env bash
# Runs every test of the solution, on both stores. On a fresh machine it does its own set-up:
# it installs PostgreSQL and RabbitMQ from Debian's packages when absent and starts a throwaway
# server of each on 127.0.0.1 for the tests, then stops them. Results go to artifacts/test-results/*.trx; the last
# line printed is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"

say() { printf '==> %s\n' "$*"; }

if ! command -v dotnet >/dev/null 2>&1; then
  echo "test.sh: the .NET 10 SDK is required; 'dotnet' is not on PATH." >&2
  exit 2
fi

# ---------------------------------------------------------------- PostgreSQL
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
RMQ_BIN=/usr/lib/rabbitmq/bin
missing=()
[ -z "$(pg_bin)" ] && missing+=(postgresql)
[ -x "$RMQ_BIN/rabbitmq-server" ] || missing+=(rabbitmq-server)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: ${missing[*]} not installed. Install (sudo apt-get install -y ${missing[*]}) and run again." >&2
    exit 2
  fi
  say "Installing ${missing[*]} from Debian's packages (once per machine; a minute or two)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null \
    || { echo "test.sh: apt-get install ${missing[*]} failed; see the output above." >&2; exit 2; }
fi
PGBIN=$(pg_bin)
PGPORT=${TRUESTOCK_TEST_PGPORT:-55432}
PGDATA_DIR=${TMPDIR:-/tmp}/truestock-test-pg-$PGPORT
as_pg() {
  # initdb refuses to run as root, so the server runs as the postgres user when we are root.
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# A fresh cluster in PGDATA_DIR, started by the script the benchmark uses too (its progress goes to stderr).
bash scripts/postgres.sh start "$PGPORT" "$PGDATA_DIR" || { echo "test.sh: PostgreSQL did not start." >&2; exit 2; }

# ---------------------------------------------------------------- RabbitMQ
RMQ_PORT=${TRUESTOCK_TEST_RMQPORT:-56720}
RMQ_DIR=${TMPDIR:-/tmp}/truestock-test-rabbitmq-$RMQ_PORT
export RABBITMQ_NODENAME=truestock-test@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$RMQ_PORT \
  RABBITMQ_DIST_PORT=$((RMQ_PORT + 1)) RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia RABBITMQ_LOG_BASE=$RMQ_DIR/log \
  RABBITMQ_PID_FILE=$RMQ_DIR/pid RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins ERL_EPMD_ADDRESS=127.0.0.1
"$RMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 || true
cleanup() {
  "$RMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" stop -m fast >/dev/null 2>&1 || true
}
trap cleanup EXIT
rm -rf "$RMQ_DIR"
mkdir -p "$RMQ_DIR"
echo "[]." > "$RMQ_DIR/enabled_plugins"
say "Starting RabbitMQ on 127.0.0.1:$RMQ_PORT…"
"$RMQ_BIN/rabbitmq-server" -detached >/dev/null 2>&1
rmq_up=0
for _ in $(seq 1 90); do
  if "$RMQ_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" await_startup --timeout 5 >/dev/null 2>&1; then rmq_up=1; break; fi
  sleep 1
done
if [ $rmq_up -ne 1 ]; then
  cat "$RMQ_DIR"/log/*.log 2>/dev/null | tail -30 >&2
  echo "test.sh: RabbitMQ did not start within 90 s." >&2
  exit 2
fi

export TRUESTOCK_TEST_RABBITMQ="amqp://guest:guest@127.0.0.1:$RMQ_PORT/"
export TRUESTOCK_TEST_RABBITMQCTL="$RMQ_BIN/rabbitmqctl"
export TRUESTOCK_TEST_RABBITMQ_NODE="$RABBITMQ_NODENAME"

export TRUESTOCK_TEST_POSTGRES="Host=127.0.0.1;Port=$PGPORT;Username=postgres;Database=postgres"
export TRUESTOCK_TEST_PGBIN="$PGBIN"
export TRUESTOCK_TEST_PGDATA="$PGDATA_DIR"

# ---------------------------------------------------------------- tests
results=artifacts/test-results
rm -rf "$results"
mkdir -p "$results"

say "Restoring and building (Release)…"
dotnet build Truestock.slnx -c Release --nologo -v quiet || { echo "0 passed, 0 failed"; exit 1; }

status=0
say "Running every test on the SQLite store…"
TRUESTOCK_TEST_BACKEND=sqlite dotnet test Truestock.slnx -c Release --no-build --nologo \
  --filter "Category!=Postgres" --logger "trx;LogFilePrefix=sqlite" --results-directory "$results" || status=1

say "Running the storage and HTTP suites on the PostgreSQL store…"
TRUESTOCK_TEST_BACKEND=postgres dotnet test tests/Truestock.Server.Tests -c Release --no-build --nologo \
  --logger "trx;LogFilePrefix=postgres" --results-directory "$results" || status=1

passed=0
failed=0
for f in "$results"/*.trx; do
  [ -f "$f" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$f" | head -1)
  p=$(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$counters")
  x=$(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$counters")
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${x:-0}))
done
echo "$passed passed, $failed failed"
exit $status

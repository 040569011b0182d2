#!/usr/bin/env bash
# Runs every test of the solution. On a fresh machine it does its own set-up: it only needs the
# .NET SDK today (the hub's embedded store is SQLite, which ships inside the NuGet package).
# Results go to artifacts/test-results/*.trx; the last line printed is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "test.sh: the .NET 10 SDK is required (https://dot.net); 'dotnet' is not on PATH." >&2
  exit 2
fi

results=artifacts/test-results
rm -rf "$results"
mkdir -p "$results"

echo "==> Restoring and building (Release)…"
dotnet build Truestock.slnx -c Release --nologo -v quiet || { echo "0 passed, 0 failed"; exit 1; }

echo "==> Running tests…"
dotnet test Truestock.slnx -c Release --no-build --nologo \
  --logger "trx" --results-directory "$results"
status=$?

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

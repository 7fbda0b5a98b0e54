#!/usr/bin/env bash
# Throughput and latency of GET /api/integrations/{publisherId} (three integrations, masked
# credentials, last sync) under 64 concurrent connections, next to a bare axum handler answering
# the same JSON in the same run. Usage: bench/run.sh [seconds]   (default 10)
# PostgreSQL runs too when BENCH_DATABASE_URL (a database the user may write) is set.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p bench

run_one() { # label url token
  wrk -t2 -c64 -d"${secs}s" --latency -H "Authorization: Bearer $3" "$2" > /tmp/wrk.$$.txt
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' /tmp/wrk.$$.txt)
  p50=$(awk '$1=="50%" {print $2}' /tmp/wrk.$$.txt)
  p99=$(awk '$1=="99%" {print $2}' /tmp/wrk.$$.txt)
  printf '| %-22s | %10s | %8s | %8s |\n' "$1" "$rps" "$p50" "$p99"
}

bench_backend() { # extra args for bench-server
  local log=/tmp/bench-server.$$.log
  target/release/bench-server "$@" > "$log" 2>/dev/null &
  local pid=$!
  for _ in $(seq 1 100); do grep -q READY "$log" 2>/dev/null && break; sleep 0.2; done
  local line ours bare token backend
  line=$(grep READY "$log")
  ours=$(sed 's/.*ours=\([^ ]*\).*/\1/' <<<"$line")
  bare=$(sed 's/.*bare=\([^ ]*\).*/\1/' <<<"$line")
  token=$(sed 's/.*token=\([^ ]*\).*/\1/' <<<"$line")
  backend=$(sed 's/.*backend=\([^ ]*\).*/\1/' <<<"$line")
  wrk -t2 -c64 -d2s -H "Authorization: Bearer $token" "$ours" >/dev/null # warm-up
  run_one "sharpsend ($backend)" "$ours" "$token"
  run_one "bare axum (same JSON)" "$bare" "$token"
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
}

echo "| target                 |  req/s     |   p50    |   p99    |"
echo "| ---------------------- | ---------- | -------- | -------- |"
bench_backend
if [ -n "${BENCH_DATABASE_URL:-}" ]; then
  bench_backend --database-url "$BENCH_DATABASE_URL"
fi

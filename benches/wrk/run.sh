#!/usr/bin/env bash
# Measures durable POST /payments against GET /healthz on the same server in
# one run, on loopback only. Needs `wrk` (apt-get install wrk) and a release
# build. Usage: benches/wrk/run.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/common.sh
secs=${1:-15}
conns=${2:-64}
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
admin=tjk_wrkAdmin0123456789abcdefABCDEFGH0fdZy0
./target/release/tijori --listen 127.0.0.1:18181 --data-dir "$dir/data" --admin-key "$admin" \
  --settle-delay-ms 1000 >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
merchant_keys 18181 "$admin" 64 "$dir/keys.txt"
echo "== GET /healthz ($conns connections, ${secs}s)"
wrk -t2 -c"$conns" -d"${secs}s" --latency http://127.0.0.1:18181/healthz | grep -E "Requests/sec|99%|50%"
echo "== POST /api/v1/payments, durable, 64 merchants ($conns connections, ${secs}s)"
TIJORI_KEYS="$dir/keys.txt" wrk -t2 -c"$conns" -d"${secs}s" --latency -s benches/wrk/payments.lua \
  http://127.0.0.1:18181 | grep -E "Requests/sec|99%|50%|Non-2xx|p50"

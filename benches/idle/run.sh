#!/usr/bin/env bash
# Idle CPU against stored history: drives N durable pay-ins into a release
# server (wrk, loopback only), waits until every one is settled, then samples
# the server's CPU (utime + stime from /proc/<pid>/stat) over an idle window.
# An idle server's CPU must stay flat as history grows.
# Needs wrk (apt-get install wrk) and a release build.
# Usage: benches/idle/run.sh [--server-bin PATH] [--payins N] [--idle-secs S]
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/common.sh
bin=./target/release/tijori
payins=100000
idle_secs=30
while [ $# -gt 0 ]; do
  case "$1" in
    --server-bin) bin=$2; shift 2 ;;
    --payins) payins=$2; shift 2 ;;
    --idle-secs) idle_secs=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
port=18191
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
admin=tjk_idleAdmin0123456789abcdefABCDEFG13cKHL
"$bin" --listen 127.0.0.1:$port --data-dir "$dir/data" --admin-key "$admin" \
  --settle-delay-ms 5 >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
merchant_keys $port "$admin" 64 "$dir/keys.txt"
# Load until N pay-ins exist (bounded: at most 10 minutes of wrk).
deadline=$((SECONDS + 600))
while [ "$(metric $port tijori_payins_created_total)" -lt "$payins" ] && [ $SECONDS -lt $deadline ]; do
  TIJORI_KEYS="$dir/keys.txt" wrk -t2 -c64 -d5s -s benches/wrk/payments.lua \
    http://127.0.0.1:$port >/dev/null
done
created=$(metric $port tijori_payins_created_total)
# Wait (bounded) until every pay-in is settled and the webhook work is done.
deadline=$((SECONDS + 300))
while [ "$(metric $port tijori_payins_settled_total)" -lt "$created" ] && [ $SECONDS -lt $deadline ]; do
  sleep 1
done
settled=$(metric $port tijori_payins_settled_total)
sleep 5
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
sleep "$idle_secs"
t1=$(ticks)
python3 - "$created" "$settled" "$t0" "$t1" "$hz" "$idle_secs" <<'PY'
import sys
created, settled, t0, t1, hz, secs = map(int, sys.argv[1:])
cpu = (t1 - t0) / hz
print(f"pay-ins created {created}, settled {settled}")
print(f"idle CPU over {secs} s: {cpu:.2f} s = {100 * cpu / secs:.1f} % of one core")
PY

#!/usr/bin/env bash
# Start-up to ready after kill -9: stores history (N durable pay-ins, settled,
# through wrk on loopback), then kills the server with SIGKILL in the middle
# of a second burst of pay-ins (so the journal has a tail the indexer had not
# applied, and fjall's own journal must be recovered), restarts it on the
# same data dir and times how long until GET /readyz answers 200.
# Needs wrk (apt-get install wrk) and a release build.
# Usage: benches/startup/run.sh [--server-bin PATH] [--payins N]
#          [--fill-durability sync|buffered] [--fill-timeout-secs S]
#          [--rounds K] [--fill-bin PATH] [--work-dir DIR]
# --fill-durability buffered stores the history faster (no fsync per
# commit round; kill -9 loses nothing the OS holds) for large N, e.g.
# --payins 10000000; the killed burst and the restart always run with the
# default `sync` durability. --fill-bin PATH (the `fill-history` example
# of tijori-benches, built with `cargo build --release -p tijori-benches
# --example fill-history`) stores the history in-process instead of over
# HTTP: the same wallet commands, several times faster; with --work-dir DIR
# the store is kept in DIR (not deleted at the end) and a later run with the
# same DIR skips the fill and only measures. --rounds K repeats the killed burst and the
# timed restart K times on the same store (the machine is shared and noisy:
# report the median).
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/common.sh
bin=./target/release/tijori
payins=200000
fill_durability=sync
fill_timeout=900
rounds=1
fill_bin=
work_dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --server-bin) bin=$2; shift 2 ;;
    --payins) payins=$2; shift 2 ;;
    --fill-durability) fill_durability=$2; shift 2 ;;
    --fill-timeout-secs) fill_timeout=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --fill-bin) fill_bin=$2; shift 2 ;;
    --work-dir) work_dir=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
port=18192
pid=
if [ -n "$work_dir" ]; then
  dir=$work_dir
  mkdir -p "$dir"
  trap 'kill -9 $pid 2>/dev/null || true' EXIT
else
  dir=$(mktemp -d)
  trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
fi
admin=tjk_bootAdmin0123456789abcdefABCDEFG3vnUHC
start() {
  "$bin" --listen 127.0.0.1:$port --data-dir "$dir/data" --admin-key "$admin" \
    --settle-delay-ms 5 --durability "${1:-sync}" >>"$dir/out" 2>>"$dir/err" &
  pid=$!
}
ready_ms() {
  python3 - "$port" <<'PY'
import sys, time, urllib.request
port = sys.argv[1]
t0 = time.monotonic()
while time.monotonic() - t0 < 120:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            if r.status == 200:
                print(f"{(time.monotonic() - t0) * 1000:.0f}")
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.005)
print("timeout")
PY
}
if [ -n "$fill_bin" ]; then
  if [ ! -e "$dir/filled" ]; then
    "$fill_bin" --data-dir "$dir/data" --admin-key "$admin" --payins "$payins" >&2
    touch "$dir/filled"
  fi
  start
  first=n/a
  ready_ms >/dev/null
  merchant_keys $port "$admin" 64 "$dir/keys.txt"
  stored=$payins
else
  start "$fill_durability"
  first=$(ready_ms)
  merchant_keys $port "$admin" 64 "$dir/keys.txt"
  deadline=$((SECONDS + fill_timeout))
  while [ "$(metric $port tijori_payins_created_total)" -lt "$payins" ] && [ $SECONDS -lt $deadline ]; do
    TIJORI_KEYS="$dir/keys.txt" wrk -t2 -c64 -d5s -s benches/wrk/payments.lua http://127.0.0.1:$port >/dev/null
  done
  stored=$(metric $port tijori_payins_created_total)
  if [ "$fill_durability" != sync ]; then
    # The history is in; the kill happens under durable (sync) load.
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    start
    ready_ms >/dev/null
  fi
fi
# A second burst, killed in its middle, then the timed restart.
[ "$first" = n/a ] || echo "empty store: ready in ${first} ms"
for round in $(seq 1 "$rounds"); do
  TIJORI_KEYS="$dir/keys.txt" wrk -t2 -c64 -d6s -s benches/wrk/payments.lua http://127.0.0.1:$port >/dev/null &
  wrk_pid=$!
  sleep 3
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  wait "$wrk_pid" 2>/dev/null || true
  du=$(du -sh "$dir/data" | cut -f1)
  : >"$dir/err"
  start
  again=$(ready_ms)
  replayed=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/err" | grep -o 'replayed=[0-9]*' | tail -1 || true)
  echo "round $round: after kill -9 under load, ${stored}+ pay-ins stored (${du} on disk): ready in ${again} ms${replayed:+ (journal records $replayed)}"
done
sed "s/\x1b\[[0-9;]*m//g" "$dir/err" | tail -8 >&2

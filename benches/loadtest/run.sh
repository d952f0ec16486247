#!/usr/bin/env bash
# Starts a release `tijori` on loopback with a fresh data dir (sync
# durability, sandbox settling after 1 s, private webhook URLs allowed for
# the harness's sink), runs `tijori-loadtest` against it with the given
# arguments, then stops the server (SIGTERM, by its pid) and removes the
# data. Exit status: the harness's (0 clean, 1 audit failed, 2 error).
# Usage: benches/loadtest/run.sh --rate 2000 --duration-secs 20 --merchants 64 [...]
# Server flags can be added with TIJORI_SERVER_ARGS="--durability buffered";
# other binaries used with TIJORI_BIN / TIJORI_LOADTEST_BIN (default: the
# release builds in target/release).
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${TIJORI_PORT:-18282}
admin=tjk_loadtestAdmin0123456789abcdefABC1qiksS
dir=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
# shellcheck disable=SC2086
"${TIJORI_BIN:-./target/release/tijori}" --listen "127.0.0.1:$port" --data-dir "$dir/data" --admin-key "$admin" \
  --settle-delay-ms 1000 --webhook-allow-private ${TIJORI_SERVER_ARGS:-} >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$dir/out" || { cat "$dir/err" >&2; exit 2; }
status=0
"${TIJORI_LOADTEST_BIN:-./target/release/tijori-loadtest}" --target "http://127.0.0.1:$port" --admin-key "$admin" \
  --server-settle-delay-ms 1000 "$@" || status=$?
exit $status

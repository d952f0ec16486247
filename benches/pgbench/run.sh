#!/usr/bin/env bash
# The pay-in transaction of benches/pgbench/payin.sql on PostgreSQL, for
# comparison with Tijori's durable POST /payments and `cargo bench -p
# tijori-benches --bench wallet`. Starts a throw-away cluster in a temp dir listening on
# 127.0.0.1:15432 only (synchronous_commit = on, fsync = on, defaults
# otherwise), loads setup.sql, runs pgbench, stops the cluster and removes it.
# Needs PostgreSQL: apt-get install -y postgresql (run as root: the cluster
# runs as the `postgres` user).
# Usage: benches/pgbench/run.sh [seconds=20] [clients=16] [threads=2]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
clients=${2:-16}
threads=${3:-2}
port=15432
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi; }
dir=$(mktemp -d)
chmod 755 "$dir"
chown postgres "$dir" 2>/dev/null || true
cleanup() {
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c synchronous_commit=on -c fsync=on -c max_connections=100" >/dev/null
psql=("$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres)
"${psql[@]}" -f setup.sql
echo "== pgbench: payin.sql, $clients clients, $threads threads, ${secs}s, -M prepared, synchronous_commit=on"
"$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -c "$clients" -j "$threads" \
  -T "$secs" -P 5 -r -f payin.sql postgres
"${psql[@]}" -At -c "select 'payments: ' || count(*) || ', pending sum matches: ' || ((select sum(amount) from payments) = (select sum(pending_payins) from wallets)) from payments"

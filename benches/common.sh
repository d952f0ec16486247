# Shell helpers shared by the benchmark scripts (sourced, not run).

# merchant_keys PORT ADMIN_KEY COUNT FILE: creates COUNT merchants through
# the admin API on 127.0.0.1:PORT (rate limit out of the way, so it is not
# what is measured) and writes their API keys to FILE, one a line.
merchant_keys() {
  local port=$1 admin=$2 count=$3 file=$4 i
  : >"$file"
  for i in $(seq "$count"); do
    curl -s -X POST "127.0.0.1:$port/api/v1/users" -H "X-API-KEY: $admin" \
      -H 'Content-Type: application/json' -d "{\"name\":\"bench merchant $i\",\"role\":\"merchant\",\"rate_limit_per_min\":1000000}" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["api_key"])' >>"$file"
  done
}

# metric PORT NAME: the sum of a Prometheus metric's series (all labels),
# as an integer.
metric() {
  curl -s "127.0.0.1:$1/metrics" |
    awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%d\n", s }'
}

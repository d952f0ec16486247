#!/usr/bin/env bash
# benches/lifecycle/run.sh: what a pay-in costs the server over its whole
# lifecycle, in one run, on loopback only.
#
# What it measures (release build, --durability sync, --settle-delay-ms 50,
# --webhook-allow-private, fresh temp data dir, every merchant's webhook_url
# pointing at a small receiver that answers 200, so webhook work is counted):
#
#  1. Server CPU µs per pay-in, by thread class and in total. CPU is
#     utime+stime from /proc/<pid>/task/*/stat (per thread, grouped by comm:
#     tokio-rt-worker* / tokio-runtime-w* (tokio workers and blocking
#     threads), tijori-commit, fjall* (fjall:worker), the main thread, ...)
#     and /proc/<pid>/stat (the whole process, so threads that exited during
#     the window still count: "exited threads" = process − live threads), in
#     CLK_TCK ticks. Window: a snapshot before `wrk POST /api/v1/payments`
#     starts, and one after every pay-in has settled and its webhook was
#     delivered (from /metrics: payins_settled ≥ payins_created, webhook
#     deliveries ≥ settlements, no storage commit for 0.6 s; bounded wait;
#     then checked with GET /api/v1/payments?status=pending&limit=1 per
#     merchant, outside the window), divided by the pay-ins of the window:
#     max(Δ tijori_payins_created_total, Δ tijori_payins_settled_total) (a
#     request cut off when wrk stops can create a pay-in without being
#     counted as acknowledged). The idle background CPU (connector poll,
#     ledger audit, ...) is measured over 3 idle seconds first and shown
#     beside it; it is not subtracted.
#  2. Server CPU µs per GET /healthz, the same way (window = the wrk run).
#  3. Closed-loop rates (wrk -t2 -cC -dD): durable POST /payments (the Lua
#     script of benches/wrk/payments.lua, unique order ids) and /healthz, and
#     their ratio.
#  4. p99 latency of POST /payments, open loop at half the rate of 3, with
#     coordinated-omission correction: Debian has no wrk2, so the project's
#     harness (tijori-loadtest --mode open --mix payin=1) against a second
#     fresh server with the same flags, its webhook sink on, money audit on.
#  5. Bytes written to disk per pay-in (/proc/<pid>/io write_bytes; also
#     wchar, bytes through write(2)-family calls on any fd, for contrast) and
#     fsyncs per pay-in
#     (tijori_storage_commits_total: one fdatasync per group commit; fjall's
#     own flush/compaction syncs are not in it), over the window of 1.
#  6. PostgreSQL 15: benches/pgbench/run.sh (insert payment + update wallet,
#     synchronous_commit=on, -M prepared, 16 clients), called as is.
#
# Output: a plain-text table on stdout (progress on stderr), and with
# --json FILE the same figures as one JSON object.
#
# Usage: benches/lifecycle/run.sh [--server-bin PATH] [--loadtest-bin PATH]
#          [--duration-secs 15] [--merchants 64] [--connections 64]
#          [--json FILE] [--no-pg] [--settle-timeout-secs 120] [--label TEXT]
# (--label: what the binary is, e.g. its commit; shown and put in the JSON.)
# Needs wrk (installed with apt-get if missing), python3, curl; PostgreSQL
# for 6 (installed with apt-get when missing and run as root, or --no-pg).
# Binaries default to target/release/{tijori,tijori-loadtest}; built with
# `cargo build --release` only if missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)

server_bin=$repo/target/release/tijori
loadtest_bin=
duration=15
merchants=64
conns=64
json_out=
label=
no_pg=0
settle_timeout=120
usage() { sed -n '/^# Usage:/,/^# `cargo build/p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --server-bin) server_bin=$(realpath -m "$2"); shift 2 ;;
    --loadtest-bin) loadtest_bin=$(realpath -m "$2"); shift 2 ;;
    --duration-secs) duration=$2; shift 2 ;;
    --merchants) merchants=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --json) json_out=$(realpath -m "$2"); shift 2 ;;
    --no-pg) no_pg=1; shift ;;
    --label) label=$2; shift 2 ;;
    --settle-timeout-secs) settle_timeout=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
loadtest_bin=${loadtest_bin:-$(dirname "$server_bin")/tijori-loadtest}
cd "$repo"
log() { echo "[lifecycle $(date +%T)] $*" >&2; }

# --- prerequisites -----------------------------------------------------------
if [ ! -x "$server_bin" ]; then
  log "$server_bin missing: cargo build --release -p tijori"
  cargo build --release -p tijori
  [ -x "$server_bin" ] || { echo "still no $server_bin (cargo builds into $repo/target)" >&2; exit 2; }
fi
if [ ! -x "$loadtest_bin" ]; then
  log "$loadtest_bin missing: cargo build --release -p tijori-loadtest"
  cargo build --release -p tijori-loadtest
  [ -x "$loadtest_bin" ] || { echo "still no $loadtest_bin (cargo builds into $repo/target)" >&2; exit 2; }
fi
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get install -y wrk >/dev/null
fi
for tool in python3 curl getconf timeout; do
  command -v $tool >/dev/null || { echo "needs $tool" >&2; exit 2; }
done

dir=$(mktemp -d /tmp/tijori-lifecycle.XXXXXX)
server_pid=
sink_pid=
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=
}
cleanup() {
  stop_server
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the python3 helper: /proc snapshots, metrics, the webhook receiver, report
cat >"$dir/lc.py" <<'PY'
import asyncio, json, os, re, sys, time, urllib.request

def http_get(url, key=None, timeout=5):
    req = urllib.request.Request(url, headers={"X-API-KEY": key} if key else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()

def metrics(port):
    """Prometheus text -> {name: sum over label sets, name{labels}: value}."""
    out = {}
    for line in http_get(f"http://127.0.0.1:{port}/metrics").splitlines():
        if not line or line[0] == "#":
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        out[name] = out.get(name, 0.0) + value
        if labels:
            out[name + labels] = value
    return out

def ticks(stat_text):
    # comm may contain spaces/parens: fields after the last ')'; utime, stime are 14, 15
    rest = stat_text[stat_text.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])

def snapshot(pid, port):
    snap = {"t": time.monotonic(), "threads": {}}
    with open(f"/proc/{pid}/stat") as f:
        snap["process_ticks"] = ticks(f.read())
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
            comm = text[text.index("(") + 1:text.rindex(")")]
            snap["threads"][tid] = [comm, ticks(text)]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass  # exited meanwhile: still in process_ticks
    with open(f"/proc/{pid}/io") as f:
        snap["io"] = {k: int(v) for k, v in (l.split(": ") for l in f.read().splitlines())}
    snap["metrics"] = metrics(port)
    return snap

def thread_class(pid, tid, comm):
    if tid == str(pid):
        return "main (accept loop)"
    if comm.startswith("tokio"):
        return comm + "*"  # tokio-runtime-w / tokio-rt-worker: workers and blocking threads
    if comm.startswith("fjall"):
        return "fjall*"
    return re.sub(r"[-_:#.]?\d+$", "", comm) or comm

def cpu_delta(pid, a, b, hz):
    """CPU seconds between two snapshots, per thread class and in total."""
    classes = {}
    live = 0
    for tid, (comm, t1) in b["threads"].items():
        t0 = a["threads"].get(tid, [comm, 0])[1]  # a thread born in the window counts from 0
        cls = thread_class(pid, tid, comm)
        classes[cls] = classes.get(cls, 0) + (t1 - t0)
        live += t1 - t0
    total = b["process_ticks"] - a["process_ticks"]
    if total != live:
        classes["(exited threads)"] = total - live
    return {k: v / hz for k, v in classes.items()}, total / hz

def thread_counts(pid, snap):
    counts = {}
    for tid, (comm, _) in snap["threads"].items():
        cls = thread_class(pid, tid, comm)
        counts[cls] = counts.get(cls, 0) + 1
    return counts

def sink(portfile):
    """Webhook receiver: 200 with an empty body to every POST, keep-alive;
    GET /count answers the number of POSTs received."""
    count = 0
    async def handle(reader, writer):
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                if length:
                    await reader.readexactly(length)
                if head.startswith(b"GET /count"):
                    body = str(count).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    count += 1
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        with open(portfile + ".tmp", "w") as f:
            f.write(str(server.sockets[0].getsockname()[1]))
        os.rename(portfile + ".tmp", portfile)
        async with server:
            await server.serve_forever()
    asyncio.run(main())

def wait_drained(port, timeout):
    """Polls /metrics every 0.2 s until every pay-in created has settled,
    every settlement's webhook was delivered, and no group commit happened
    for 3 polls. Prints a JSON status line."""
    start = time.monotonic()
    last_commits, quiet = None, 0
    while True:
        try:
            m = metrics(port)
        except OSError:  # a slow answer: try again, still bounded by timeout
            m, last_commits = None, None
        if m is None:
            if time.monotonic() - start > timeout:
                print(json.dumps({"drained": False, "wait_secs": round(time.monotonic() - start, 2),
                                  "error": "/metrics did not answer"}))
                return
            time.sleep(0.2)
            continue
        created = m.get("tijori_payins_created_total", 0)
        settled = m.get("tijori_payins_settled_total", 0)
        delivered = m.get('tijori_webhook_deliveries_total{result="delivered"}', 0)
        commits = m.get("tijori_storage_commits_total", 0)
        quiet = quiet + 1 if commits == last_commits else 0
        last_commits = commits
        done = settled >= created and delivered >= settled and quiet >= 3
        elapsed = time.monotonic() - start
        if done or elapsed > timeout:
            print(json.dumps({"drained": done, "wait_secs": round(elapsed, 2), "created": created,
                              "settled": settled, "webhooks_delivered": delivered}))
            return
        time.sleep(0.2)

def create_merchants(port, admin, n, hook_base):
    """Creates n merchants through the admin API (8 at a time), each with
    its webhook_url on the receiver and a limit the load cannot hit; prints
    their API keys, one a line."""
    from concurrent.futures import ThreadPoolExecutor
    def one(i):
        body = json.dumps({"name": f"lifecycle merchant {i}", "role": "merchant",
                           "rate_limit_per_min": 1000000, "webhook_url": f"{hook_base}{i}"}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/users", data=body, method="POST",
                                     headers={"X-API-KEY": admin, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["data"]["api_key"]
    with ThreadPoolExecutor(8) as pool:
        for key in pool.map(one, range(1, n + 1)):
            print(key)

def pending_via_api(port, keysfile):
    """GET /api/v1/payments?status=pending&limit=1 for every merchant."""
    pending = 0
    for key in open(keysfile).read().split():
        body = json.loads(http_get(f"http://127.0.0.1:{port}/api/v1/payments?status=pending&limit=1", key))
        pending += len(body.get("data") or [])
    print(pending)

def wrk_summary(path):
    text = open(path).read()
    def num(pattern, default=None):
        m = re.search(pattern, text)
        return float(m.group(1)) if m else default
    def lat(pct):
        m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\b" % pct, text, re.M)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)] if m else None
    return {"requests": int(num(r"(\d+) requests in", 0)), "rate": num(r"Requests/sec:\s+([\d.]+)"),
            "non_2xx": int(num(r"Non-2xx or 3xx responses:\s+(\d+)", 0)),
            "socket_errors": sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text)),
            "p50_ms": lat(50), "p99_ms": lat(99)}

def report(d, json_path):
    L = lambda f: json.load(open(os.path.join(d, f)))
    hz = int(open(os.path.join(d, "clk_tck")).read())
    pid = int(open(os.path.join(d, "pid")).read())
    idle0, idle1 = L("idle0.json"), L("idle1.json")
    h0, h1 = L("health0.json"), L("health1.json")
    p0, p1, p2 = L("pay0.json"), L("pay1.json"), L("pay2.json")
    drain = L("drain.json")
    hw, pw = wrk_summary(os.path.join(d, "wrk_health.txt")), wrk_summary(os.path.join(d, "wrk_pay.txt"))
    us = lambda secs, n: round(secs * 1e6 / n, 1) if n else None
    r = lambda x, k=1: None if x is None else round(x, k)

    _, idle_cpu = cpu_delta(pid, idle0, idle1, hz)
    idle_rate = idle_cpu / (idle1["t"] - idle0["t"])  # CPU s per s

    h_classes, h_cpu = cpu_delta(pid, h0, h1, hz)
    h_n = hw["requests"]
    p_classes, p_cpu = cpu_delta(pid, p0, p2, hz)
    _, p_cpu_load = cpu_delta(pid, p0, p1, hz)
    dm = lambda k: p2["metrics"].get(k, 0) - p0["metrics"].get(k, 0)
    # Pay-ins whose lifecycle ran in the window. tijori_payins_created_total
    # counts acknowledged creations; a request still in flight when wrk stops
    # (its connection closed) can be created and settled without being counted
    # there, so take the larger of created and settled.
    created, settled = int(dm("tijori_payins_created_total")), int(dm("tijori_payins_settled_total"))
    n = max(created, settled)
    window = p2["t"] - p0["t"]
    io = lambda k: p2["io"][k] - p0["io"][k]

    classes = sorted(set(p_classes) | set(h_classes) | set(thread_counts(pid, p2)),
                     key=lambda c: (-p_classes.get(c, 0), c))
    out = {
        "server_bin": os.environ.get("LC_SERVER_BIN"), "server_version": os.environ.get("LC_VERSION") or None,
        "built_from": os.environ.get("LC_COMMIT") or None,
        "duration_secs": int(os.environ["LC_DURATION"]), "merchants": int(os.environ["LC_MERCHANTS"]),
        "connections": int(os.environ["LC_CONNS"]), "clk_tck": hz,
        "threads_by_class": thread_counts(pid, p2),
        "machine": {"before": os.environ.get("LC_LOAD_BEFORE"), "after_lifecycle": os.environ.get("LC_LOAD_AFTER"),
                    "disk_dsync_4k_write_us_before": int(os.environ.get("LC_DSYNC_BEFORE") or -1),
                    "disk_dsync_4k_write_us_after_lifecycle": int(os.environ.get("LC_DSYNC_AFTER") or -1)},
        "payin_lifecycle": {
            "payins": n, "payins_created_metric": created, "payins_settled": settled,
            "wrk_answered": pw["requests"],
            "webhooks_delivered": int(dm('tijori_webhook_deliveries_total{result="delivered"}')),
            "webhooks_received_by_sink": int(os.environ.get("LC_SINK_COUNT") or 0),
            "drained": drain["drained"], "settle_wait_secs": drain["wait_secs"],
            "pending_via_api_after": int(os.environ.get("LC_PENDING_API") or -1),
            "window_secs": r(window, 2),
            "cpu_us_per_payin": us(p_cpu, n),
            "cpu_us_per_payin_by_class": {c: us(p_classes.get(c, 0), n) for c in classes},
            "cpu_us_per_payin_during_load": us(p_cpu_load, n),
            "cpu_us_per_payin_after_load": us(p_cpu - p_cpu_load, n),
            "idle_cpu_us_per_sec": r(idle_rate * 1e6),
            "idle_cpu_us_per_payin_in_window": us(idle_rate * window, n),
            "write_bytes_per_payin": r(io("write_bytes") / n) if n else None,
            "cancelled_write_bytes_per_payin": r(io("cancelled_write_bytes") / n) if n else None,
            "wchar_bytes_per_payin": r(io("wchar") / n) if n else None,
            "fsyncs_per_payin": r(dm("tijori_storage_commits_total") / n, 3) if n else None,
            "write_sets_per_payin": r(dm("tijori_storage_write_sets_total") / n, 3) if n else None,
            "write_sets_per_fsync": r(dm("tijori_storage_write_sets_total") / dm("tijori_storage_commits_total"), 1)
                if dm("tijori_storage_commits_total") else None,
        },
        "healthz": {
            "requests": h_n, "window_secs": r(h1["t"] - h0["t"], 2),
            "cpu_us_per_request": us(h_cpu, h_n),
            "cpu_us_per_request_by_class": {c: us(h_classes.get(c, 0), h_n) for c in classes},
        },
        "wrk": {"healthz": hw, "payments": pw,
                "healthz_to_payments_ratio": r(hw["rate"] / pw["rate"], 2) if hw["rate"] and pw["rate"] else None},
        "open_loop": None, "pgbench": None,
    }
    if os.path.exists(os.path.join(d, "open.json")):
        o = L("open.json")
        pay = o["operations"].get("payin", {})
        a = o.get("audit") or {}
        out["open_loop"] = {
            "tool": "tijori-loadtest --mode open --mix payin=1", "target_rate": o["target_rate"],
            "achieved_rate": r(o["achieved_rate"]), "payins": pay.get("count"),
            "errors": sum(pay["errors"].values()) if isinstance(pay.get("errors"), dict) else pay.get("errors"),
            "p50_ms": pay.get("p50_ms"), "p99_ms": pay.get("p99_ms"), "p999_ms": pay.get("p999_ms"),
            "max_ms": pay.get("max_ms"), "uncorrected_p99_ms": o["uncorrected"]["p99_ms"],
            "late": o["late"], "missed": o["missed"], "audit_passed": a.get("passed"),
            "exit_status": int(os.environ.get("LC_OPEN_STATUS") or 0)}
    elif os.environ.get("LC_OPEN_NOTE"):
        out["open_loop"] = {"skipped": os.environ["LC_OPEN_NOTE"]}
    pg = os.path.join(d, "pgbench.txt")
    if os.path.exists(pg):
        text = open(pg).read()
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
        latm = re.search(r"latency average = ([\d.]+) ms", text)
        ok = re.search(r"pending sum matches: (\w+)", text)
        out["pgbench"] = {"tps": r(float(tps.group(1))) if tps else None,
                          "latency_avg_ms": float(latm.group(1)) if latm else None,
                          "check": ok.group(1) if ok else None,
                          "clients": 16, "threads": 2, "secs": int(os.environ["LC_PG_SECS"]),
                          "tijori_payments_rate_to_pg_tps": r(pw["rate"] / float(tps.group(1)), 2) if tps and pw["rate"] else None}
    elif os.environ.get("LC_PG_NOTE"):
        out["pgbench"] = {"skipped": os.environ["LC_PG_NOTE"]}

    # ---- the text table
    P, H = out["payin_lifecycle"], out["healthz"]
    f = lambda x, fmt="{:,.1f}": "n/a" if x is None else fmt.format(x)
    lines = []
    w = lines.append
    w(f"Tijori pay-in lifecycle: {out['server_bin']} ({out['server_version']}), built from: {out['built_from']}")
    M = out["machine"]
    w(f"  machine before: {M['before']}; after the pay-in window: {M['after_lifecycle']}; "
      f"disk O_DSYNC 4 KiB write {M['disk_dsync_4k_write_us_before']} µs before, {M['disk_dsync_4k_write_us_after_lifecycle']} µs after")
    counts = thread_counts(pid, p2)
    w(f"  {n:,} pay-ins ({created:,} acknowledged, {pw['requests']:,} answers seen by wrk) created by wrk -t2 -c{out['connections']} -d{out['duration_secs']}s over {out['merchants']} merchants; "
      f"settled {P['payins_settled']:,}, webhooks delivered {P['webhooks_delivered']:,} (sink got {P['webhooks_received_by_sink']:,}); "
      f"drained {P['settle_wait_secs']} s after the load{'' if P['drained'] else ' -- NOT DRAINED (bounded wait hit)'}; "
      f"pending via API after: {P['pending_via_api_after']}")
    w("")
    w(f"  server CPU (utime+stime, CLK_TCK={hz})   µs/pay-in (lifecycle)   µs/GET /healthz")
    w(f"    thread class (live threads)")
    for c in classes:
        label = f"{c} ({counts[c]})" if c in counts else c
        w(f"    {label:<36} {f(P['cpu_us_per_payin_by_class'][c]):>21}   {f(H['cpu_us_per_request_by_class'][c], '{:,.2f}'):>15}")
    w(f"    {'TOTAL':<36} {f(P['cpu_us_per_payin']):>21}   {f(H['cpu_us_per_request'], '{:,.2f}'):>15}")
    w(f"    {'  of which during the load':<36} {f(P['cpu_us_per_payin_during_load']):>21}")
    w(f"    {'  of which after it (settle, webhooks)':<36} {f(P['cpu_us_per_payin_after_load']):>21}")
    w(f"    {'  idle background in the window':<36} {f(P['idle_cpu_us_per_payin_in_window']):>21}   "
      f"(idle server: {f(P['idle_cpu_us_per_sec'], '{:,.0f}')} µs CPU/s)")
    w(f"    windows: pay-ins {P['window_secs']} s, healthz {H['window_secs']} s ({h_n:,} requests)")
    w("")
    w("  closed loop (wrk -t2 -c%d -d%ds)      req/s        p50        p99   non-2xx" % (out["connections"], out["duration_secs"]))
    for name, s in (("GET /healthz", hw), ("durable POST /api/v1/payments", pw)):
        w(f"    {name:<32} {f(s['rate'], '{:,.0f}'):>9} {f(s['p50_ms'], '{:.2f} ms'):>10} {f(s['p99_ms'], '{:.2f} ms'):>10} {s['non_2xx']:>9}")
    w(f"    healthz : payments = {f(out['wrk']['healthz_to_payments_ratio'], '{:.1f}')} : 1")
    w("")
    o = out["open_loop"]
    if o and "skipped" not in o:
        w(f"  open loop, pay-ins only, at half the closed-loop rate ({o['tool']}, CO-corrected)")
        w(f"    target {o['target_rate']:,}/s, achieved {f(o['achieved_rate'], '{:,.0f}')}/s, {o['payins']:,} pay-ins, errors {o['errors']}, "
          f"late {o['late']:,}, missed {o['missed']:,}, audit {'clean' if o['audit_passed'] else 'NOT clean' if o['audit_passed'] is False else 'n/a'}")
        w(f"    POST /payments p50 {f(o['p50_ms'], '{:.2f}')} ms, p99 {f(o['p99_ms'], '{:.2f}')} ms, p99.9 {f(o['p999_ms'], '{:.2f}')} ms, "
          f"max {f(o['max_ms'], '{:.1f}')} ms (uncorrected p99 {f(o['uncorrected_p99_ms'], '{:.2f}')} ms)")
    else:
        w(f"  open loop: skipped ({(o or {}).get('skipped', 'not run')})")
    w("")
    w(f"  disk per pay-in (lifecycle window): write_bytes {f(P['write_bytes_per_payin'], '{:,.0f}')} B "
      f"(cancelled {f(P['cancelled_write_bytes_per_payin'], '{:,.0f}')} B; wchar, all write(2)-family bytes, {f(P['wchar_bytes_per_payin'], '{:,.0f}')} B); "
      f"fsyncs (group commits) {f(P['fsyncs_per_payin'], '{:.3f}')}, write sets {f(P['write_sets_per_payin'], '{:.2f}')} "
      f"({f(P['write_sets_per_fsync'])} per fsync)")
    g = out["pgbench"]
    if g and "skipped" not in g:
        w(f"  PostgreSQL 15 pgbench (benches/pgbench/run.sh {g['secs']} 16 2; insert payment + update wallet, sync commit, -M prepared): "
          f"{f(g['tps'], '{:,.0f}')} tps, latency avg {f(g['latency_avg_ms'], '{:.2f}')} ms, check {g['check']}; "
          f"Tijori POST rate / PG tps = {f(g['tijori_payments_rate_to_pg_tps'], '{:.2f}')}")
    else:
        w(f"  PostgreSQL pgbench: skipped ({(g or {}).get('skipped', 'not run')})")
    print("\n".join(lines))
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(out, fh, indent=2)
            fh.write("\n")

cmd = sys.argv[1]
if cmd == "snap":
    json.dump(snapshot(int(sys.argv[2]), sys.argv[3]), open(sys.argv[4], "w"))
elif cmd == "sink":
    sink(sys.argv[2])
elif cmd == "wait":
    wait_drained(sys.argv[2], float(sys.argv[3]))
elif cmd == "merchants":
    create_merchants(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
elif cmd == "pending":
    pending_via_api(sys.argv[2], sys.argv[3])
elif cmd == "report":
    report(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
PY
lc() { python3 "$dir/lc.py" "$@"; }

admin=tjk_lifecycleAdmin0123456789abcdefAB3k1bHu
# Starts a server on a free loopback port with a fresh data dir; sets
# server_pid and port.
start_server() {
  local data=$1 t0=$SECONDS
  "$server_bin" --listen 127.0.0.1:0 --data-dir "$data" --admin-key "$admin" \
    --durability sync --settle-delay-ms 50 --webhook-allow-private \
    >"$data.out" 2>"$data.err" &
  server_pid=$!
  # Creating a store is a few dozen fsyncs: seconds on a busy disk. Bounded.
  for _ in $(seq 1200); do
    grep -q listening "$data.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$data.out")
  [ -n "$port" ] || { echo "server did not start within 120 s:" >&2; cat "$data.err" >&2; exit 2; }
  log "server pid $server_pid listening on 127.0.0.1:$port (started in $((SECONDS - t0)) s)"
}

# The disk's synchronous 4 KiB write latency (µs), as BENCHMARKS.md asks next
# to any durable figure; and the machine's load (this VM is shared).
dsync_us() {
  timeout 60 dd if=/dev/zero of="$dir/dsync.probe" bs=4k count=200 oflag=dsync 2>&1 |
    python3 -c 'import re,sys; m=re.search(r"copied, ([\d.]+) s", sys.stdin.read()); print(round(float(m.group(1))/200*1e6) if m else "")'
  rm -f "$dir/dsync.probe"
}
machine_load() {
  echo "load $(cut -d' ' -f1-3 /proc/loadavg), io pressure avg60 $(sed -n 's/^some .*avg60=\([0-9.]*\).*/\1/p' /proc/pressure/io 2>/dev/null || echo '?')%"
}

# --- 0. webhook receiver, server, merchants (outside every window) ------------
export LC_LOAD_BEFORE LC_DSYNC_BEFORE LC_LOAD_AFTER LC_DSYNC_AFTER
LC_LOAD_BEFORE=$(machine_load)
LC_DSYNC_BEFORE=$(dsync_us)
log "before: $LC_LOAD_BEFORE; disk O_DSYNC 4 KiB write ${LC_DSYNC_BEFORE} µs"
python3 "$dir/lc.py" sink "$dir/sink.port" &  # not via lc(): $! must be python's pid
sink_pid=$!
for _ in $(seq 100); do [ -s "$dir/sink.port" ] && break; sleep 0.05; done
sink_port=$(cat "$dir/sink.port")
start_server "$dir/data"
log "webhook receiver on 127.0.0.1:$sink_port"
getconf CLK_TCK >"$dir/clk_tck"
echo "$server_pid" >"$dir/pid"
lc merchants "$port" "$admin" "$merchants" "http://127.0.0.1:$sink_port/hook/" >"$dir/keys.txt"
log "created $merchants merchants (webhook_url on the receiver)"

# --- idle background rate -----------------------------------------------------
sleep 1
lc snap "$server_pid" "$port" "$dir/idle0.json"; sleep 3
lc snap "$server_pid" "$port" "$dir/idle1.json"

# --- 2./3. GET /healthz -------------------------------------------------------
log "wrk GET /healthz, ${duration}s"
lc snap "$server_pid" "$port" "$dir/health0.json"
timeout $((duration + 30)) wrk -t2 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$port/healthz" >"$dir/wrk_health.txt"
lc snap "$server_pid" "$port" "$dir/health1.json"

# --- 1./3./5. the pay-in lifecycle --------------------------------------------
log "wrk POST /api/v1/payments (benches/wrk/payments.lua), ${duration}s"
lc snap "$server_pid" "$port" "$dir/pay0.json"
TIJORI_KEYS="$dir/keys.txt" timeout $((duration + 30)) wrk -t2 -c"$conns" -d"${duration}s" --latency \
  -s "$repo/benches/wrk/payments.lua" "http://127.0.0.1:$port" >"$dir/wrk_pay.txt"
lc snap "$server_pid" "$port" "$dir/pay1.json"
log "waiting (at most ${settle_timeout}s) for settlement and webhooks"
lc wait "$port" "$settle_timeout" >"$dir/drain.json"
lc snap "$server_pid" "$port" "$dir/pay2.json"
log "drain: $(cat "$dir/drain.json")"
export LC_PENDING_API LC_SINK_COUNT
LC_PENDING_API=$(lc pending "$port" "$dir/keys.txt" || echo -1)
LC_SINK_COUNT=$(curl -sS --max-time 5 "127.0.0.1:$sink_port/count" || echo 0)
stop_server

LC_DSYNC_AFTER=$(dsync_us)
LC_LOAD_AFTER=$(machine_load)
log "after the lifecycle window: $LC_LOAD_AFTER; disk O_DSYNC 4 KiB write ${LC_DSYNC_AFTER} µs"

# --- 4. open loop at half the closed-loop rate --------------------------------
pay_rate=$(python3 -c 'import re,sys; m=re.search(r"Requests/sec:\s+([\d.]+)", open(sys.argv[1]).read()); print(int(float(m.group(1))) if m else 0)' "$dir/wrk_pay.txt")
half=$((pay_rate / 2))
export LC_OPEN_STATUS=0 LC_OPEN_NOTE=
if [ "$half" -ge 1 ]; then
  start_server "$dir/data2"
  log "open loop: tijori-loadtest --rate $half --mix payin=1 (fresh server pid $server_pid), ${duration}s + 2s warm-up"
  timeout $((duration + 400)) "$loadtest_bin" --target "http://127.0.0.1:$port" --admin-key "$admin" \
    --mode open --rate "$half" --mix payin=1 --fail-vpa-percent 0 \
    --merchants "$merchants" --api-users-per-merchant 0 --webhook-sink --webhook-sink-hosts 1 \
    --server-settle-delay-ms 50 --warmup-secs 2 --duration-secs "$duration" \
    --settle-timeout-secs 60 --audit-read-timeout-secs 120 --webhook-wait-secs 30 \
    --quiet --json-out "$dir/open.json" >"$dir/open.txt" 2>"$dir/open.err" || LC_OPEN_STATUS=$?
  [ "$LC_OPEN_STATUS" = 0 ] || { log "tijori-loadtest exited $LC_OPEN_STATUS"; tail -5 "$dir/open.err" >&2 || true; }
  stop_server
else
  LC_OPEN_NOTE="no closed-loop POST rate measured"
fi

# --- 6. PostgreSQL 15 pgbench (benches/pgbench/run.sh, called as is) ---------
export LC_PG_NOTE= LC_PG_SECS=$duration
if [ "$no_pg" = 1 ]; then
  LC_PG_NOTE="--no-pg given"
else
  if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      log "PostgreSQL not installed: apt-get install -y postgresql"
      apt-get install -y postgresql >/dev/null || true
    fi
  fi
  if ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    log "benches/pgbench/run.sh $duration 16 2"
    timeout $((duration + 120)) benches/pgbench/run.sh "$duration" 16 2 >"$dir/pgbench.txt" 2>&1 ||
      { LC_PG_NOTE="benches/pgbench/run.sh failed: $(tail -1 "$dir/pgbench.txt")"; rm -f "$dir/pgbench.txt"; }
  else
    LC_PG_NOTE="PostgreSQL not installed (not root, or apt-get failed); use --no-pg to skip quietly"
  fi
fi

export LC_SERVER_BIN=$server_bin LC_DURATION=$duration LC_MERCHANTS=$merchants LC_CONNS=$conns
# What the binary was built from: --label, else (binary in this checkout's
# target/) this checkout's commit and whether its sources had uncommitted
# changes; the binary itself does not say.
if [ -n "$label" ]; then
  LC_COMMIT=$label
elif [[ "$(realpath "$server_bin")" == "$repo/target/"* ]]; then
  LC_COMMIT="checkout $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD -- src domain storage actors Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes')"
else
  LC_COMMIT="unknown (binary outside this checkout; pass --label)"
fi
LC_VERSION=$("$server_bin" --version 2>/dev/null | head -1 || true)
export LC_COMMIT LC_VERSION
lc report "$dir" "$json_out"

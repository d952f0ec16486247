-- wrk script: durable POST /api/v1/payments with unique order ids, spread
-- over the merchant keys listed one per line in $TIJORI_KEYS (default keys.txt).
-- Usage: see run.sh beside this file.

local keys = {}
local counter = 0
-- A global, not a local: setup() sets it per thread with thread:set(), which
-- writes the thread's global; a local would stay 0 in every thread, and the
-- threads would send the same order ids (half the requests answered 409).
thread_no = 0
local prefix = tostring(os.time())

function setup(thread)
  thread:set("thread_no", thread_no)
  thread_no = thread_no + 1
end

function init(args)
  for line in io.lines(os.getenv("TIJORI_KEYS") or "keys.txt") do
    if #line > 0 then table.insert(keys, line) end
  end
end

function request()
  counter = counter + 1
  local key = keys[(counter + thread_no) % #keys + 1]
  local body = string.format(
    '{"order_id":"wrk-%s-%d-%d","amount":"%d.%02d","payer":"Load Tester"}',
    prefix, thread_no, counter, 100 + counter % 900, counter % 100)
  return wrk.format("POST", "/api/v1/payments",
    { ["X-API-KEY"] = key, ["Content-Type"] = "application/json" }, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end

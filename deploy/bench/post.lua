-- wrk script: every request opens a service request for a serial that no other request used.
-- Arguments (after `--`): bearer token, serial prefix, JSON body template with %s %d %d for the serial.
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  token, prefix, template = args[1], args[2], args[3]
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
  counter, created, other = 0, 0, 0
end

function request()
  counter = counter + 1
  return wrk.format("POST", "/v1/service-requests", headers, string.format(template, prefix, tid, counter))
end

function response(status, hdrs, body)
  if status == 201 then created = created + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local c, o = 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"created":%d,"other":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":%d}\n',
    summary.requests, summary.duration, c, o, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout))
end

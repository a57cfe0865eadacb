-- wrk script of the clinic-server load test (run.sh): one fixed request, repeated.
-- ROUTE=chart  GET /provider/patients/p-100/chart
-- ROUTE=update PUT /provider/patients/p-100/diagnosis (the same diagnosis every time)
-- done() prints one line, `RESULT <req/s> <p50 µs> <p99 µs> <requests> <non-2xx> <socket errors>`,
-- which run.sh turns into the table.
local route = os.getenv("ROUTE") or "chart"

wrk.headers["Authorization"] = "Bearer demo-dr-grey"
wrk.headers["x-purpose-of-use"] = "treatment"
if route == "update" then
  wrk.method = "PUT"
  wrk.path = "/provider/patients/p-100/diagnosis"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"diagnosis":"Type 2 diabetes, controlled"}'
else
  wrk.method = "GET"
  wrk.path = "/provider/patients/p-100/chart"
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("RESULT %.1f %d %d %d %d %d\n",
    summary.requests / seconds,
    latency:percentile(50), latency:percentile(99),
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end

-- wrk script for make bench: GETs spread over a hot set of item ids (WRK_FIRST .. WRK_FIRST+WRK_KEYS-1)
-- and a machine-readable summary with p50/p99/p99.9 in microseconds.
-- WRK_PATHS: a file of paths, one per line (another resource's rows, e.g. /customers/<uuid>), used
-- instead of the item ids.
local first = tonumber(os.getenv("WRK_FIRST") or "1")
local keys = tonumber(os.getenv("WRK_KEYS") or "1")
local counter = 0
local paths = nil
local pfile = os.getenv("WRK_PATHS")
if pfile and pfile ~= "" then
  paths = {}
  for line in io.lines(pfile) do paths[#paths + 1] = line end
end

request = function()
  counter = counter + 1
  if paths then
    return wrk.format("GET", paths[1 + (counter * 7919) % #paths])
  end
  return wrk.format("GET", "/items/" .. (first + (counter * 7919) % keys))
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %.6f %d %d %d %d %d\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), e.status,
    e.connect + e.read + e.write + e.timeout))
end

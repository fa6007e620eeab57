-- load.lua: the wrk script of tests/bench/load.sh. Each request is
-- POST /connections creating a new connection: its connection_id is a
-- per-thread prefix and a counter, so no two requests of a run share one.
--
-- Read from the environment (load.py sets them):
--   EVS_LOAD_SECRET       the daemon's secret_key (Authorization: Bearer)
--   EVS_LOAD_INTEGRATION  the provider_config_key to create connections in
--   EVS_LOAD_PREFIX       the connection ids' prefix, unique per run and path
--   EVS_LOAD_IDS          a file done() writes the acknowledged (201) ids to
--
-- Each thread counts its 201 replies and keeps their connection ids (read
-- from the reply's body); done() gathers them with thread:get, writes the
-- ids one per line and prints one line "EVS_LOAD {json}" with the counts and
-- the latency percentiles of every request (wrk's, in microseconds).

local threads = {}
local next_tid = 1

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

function init(args)
   n = 0
   created = 0
   other = 0
   acked = {}
   prefix = os.getenv("EVS_LOAD_PREFIX") .. "-" .. tid .. "-"
   integration = os.getenv("EVS_LOAD_INTEGRATION")
   headers = {
      ["Authorization"] = "Bearer " .. os.getenv("EVS_LOAD_SECRET"),
      ["Content-Type"] = "application/json",
   }
end

function request()
   n = n + 1
   local body = '{"provider_config_key":"' .. integration .. '","connection_id":"' ..
      prefix .. n .. '","credentials":{"type":"API_KEY","apiKey":"k"}}'
   return wrk.format("POST", "/connections", headers, body)
end

function response(status, headers, body)
   if status == 201 then
      local id = body and body:match('"connection_id"%s*:%s*"([^"]*)"')
      if id then
         created = created + 1
         acked[created] = id
      else
         other = other + 1
      end
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local total_created, total_other = 0, 0
   local out = assert(io.open(os.getenv("EVS_LOAD_IDS"), "w"))
   for _, t in ipairs(threads) do
      local c = t:get("created") or 0
      local ids = t:get("acked") or {}
      total_created = total_created + c
      total_other = total_other + (t:get("other") or 0)
      for i = 1, c do
         out:write(ids[i], "\n")
      end
   end
   out:close()
   local e = summary.errors
   io.write(string.format(
      'EVS_LOAD {"created":%d,"other":%d,"requests":%d,"duration_us":%d,' ..
      '"p50_us":%d,"p99_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d}}\n',
      total_created, total_other, summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout))
end

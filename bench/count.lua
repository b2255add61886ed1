-- count.lua: what the wrk scripts of bench/ share (loaded with dofile by cc.lua,
-- te.lua and fill.lua): form encoding, and the counting of non-200 responses that
-- run.sh and logs.sh read from done()'s lines
--   bench: responses N non200 M
--   bench: status CODE COUNT        (one line per status other than 200)
--   bench: socket_errors connect C read R write W timeout T
-- A benchmark of errors is worthless; the scripts refuse to call one a result.

function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

threads = {}

function register_thread(thread)
  table.insert(threads, thread)
end

function setup(thread)
  register_thread(thread)
end

-- per-thread counters (each wrk thread runs its own Lua state)
responses, non200, codes = 0, 0, {}

function count_response(status, body)
  responses = responses + 1
  if status ~= 200 then
    non200 = non200 + 1
    codes[status] = (codes[status] or 0) + 1
    if non200 == 1 then
      -- the first failure's body says why (invalid_client, no_grant, ...)
      io.stderr:write("bench: first non-200 response: ", status, " ", body:sub(1, 300), "\n")
    end
  end
end

-- A response() callback makes wrk hand every response's headers and body to Lua: on
-- 2 cores shared with the server that costs the server a tenth of its throughput. So
-- by default wrk counts by itself (summary.errors.status: responses with a status of
-- 400 or more; a token endpoint answers no 1xx or 3xx) and only BENCH_BODIES=1 counts
-- in Lua, with per-status lines and the first failure's body.
counting_in_lua = os.getenv("BENCH_BODIES") == "1"
if counting_in_lua then
  function response(status, headers, body)
    count_response(status, body)
  end
end

function done(summary, latency, requests)
  local total, bad, all = summary.requests, summary.errors.status, {}
  if counting_in_lua then
    total, bad = 0, 0
    for _, t in ipairs(threads) do
      total = total + (t:get("responses") or 0)
      bad = bad + (t:get("non200") or 0)
      local c = t:get("codes")
      if c then
        for k, v in pairs(c) do all[k] = (all[k] or 0) + v end
      end
    end
  end
  io.write(string.format("bench: responses %d non200 %d\n", total, bad))
  for k, v in pairs(all) do io.write(string.format("bench: status %d %d\n", k, v)) end
  local e = summary.errors
  io.write(string.format("bench: socket_errors connect %d read %d write %d timeout %d\n",
                         e.connect, e.read, e.write, e.timeout))
end

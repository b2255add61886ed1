-- cc.lua: wrk script for POST /oauth/token, client credentials grant.
--
--   wrk -t2 -c64 -d30s --latency -s bench/cc.lua http://127.0.0.1:PORT/oauth/token \
--       -- BASIC_B64 RESOURCE [SCOPE]
--
-- BASIC_B64 is base64("client_id:secret") for the Authorization: Basic header;
-- RESOURCE the RFC 8707 resource (plain, encoded here); SCOPE defaults to bench:read.
-- Every response whose status is not 200 is counted; done() prints the counts as
--   bench: responses N non200 M
--   bench: status CODE COUNT        (one line per status other than 200)
-- which run.sh reads: a benchmark of errors is worthless.

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local auth, resource, scope = args[1], args[2], args[3] or "bench:read"
  if not auth or not resource then
    error("usage: wrk ... -s cc.lua URL -- BASIC_B64 RESOURCE [SCOPE]")
  end
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Basic " .. auth
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.body = "grant_type=client_credentials&resource=" .. urlencode(resource) ..
             "&scope=" .. urlencode(scope)
  responses, non200, codes = 0, 0, {}
end

function response(status, headers, body)
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

function done(summary, latency, requests)
  local total, bad, all = 0, 0, {}
  for _, t in ipairs(threads) do
    total = total + (t:get("responses") or 0)
    bad = bad + (t:get("non200") or 0)
    local c = t:get("codes")
    if c then
      for k, v in pairs(c) do all[k] = (all[k] or 0) + v end
    end
  end
  io.write(string.format("bench: responses %d non200 %d\n", total, bad))
  for k, v in pairs(all) do io.write(string.format("bench: status %d %d\n", k, v)) end
  local e = summary.errors
  io.write(string.format("bench: socket_errors connect %d read %d write %d timeout %d\n",
                         e.connect, e.read, e.write, e.timeout))
end

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

-- form encoding and response counting shared by the bench scripts
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "count.lua")


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
end


-- te.lua: wrk script for POST /oauth/token, ID-JAG token exchange (RFC 8693,
-- requested_token_type id-jag, subject token = a dev-IdP ID token).
--
--   wrk -t2 -c64 -d30s --latency -s bench/te.lua http://127.0.0.1:PORT/oauth/token \
--       -- BASIC_B64 AUDIENCE RESOURCE SUBJECT_TOKEN [SCOPE]
--
-- The same subject token is sent on every request (minted once by run.sh with
-- `mcpauth dev id-token`), so subject-token verification caching is exercised.
-- Counts non-200 responses exactly as cc.lua does and prints the same lines.

-- form encoding and response counting shared by the bench scripts
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "count.lua")


function init(args)
  local auth, audience, resource, subject, scope = args[1], args[2], args[3], args[4], args[5]
  if not auth or not audience or not resource or not subject then
    error("usage: wrk ... -s te.lua URL -- BASIC_B64 AUDIENCE RESOURCE SUBJECT_TOKEN [SCOPE]")
  end
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Basic " .. auth
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.body = table.concat({
    "grant_type=" .. urlencode("urn:ietf:params:oauth:grant-type:token-exchange"),
    "requested_token_type=" .. urlencode("urn:ietf:params:oauth:token-type:id-jag"),
    "audience=" .. urlencode(audience),
    "resource=" .. urlencode(resource),
    "scope=" .. urlencode(scope or "bench:read"),
    "subject_token=" .. urlencode(subject),
    "subject_token_type=" .. urlencode("urn:ietf:params:oauth:token-type:id_token"),
  }, "&")
end


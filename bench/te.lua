-- te.lua: wrk script for POST /oauth/token, ID-JAG token exchange (RFC 8693,
-- requested_token_type id-jag, subject token = a dev-IdP ID token).
--
--   wrk -t2 -c64 -d30s --latency -s bench/te.lua http://127.0.0.1:PORT/oauth/token \
--       -- BASIC_B64 AUDIENCE RESOURCE SUBJECT_TOKEN [SCOPE]
--
-- The same subject token is sent on every request (minted once by run.sh with
-- `mcpauth dev id-token`), so subject-token verification caching is exercised.
-- Counts non-200 responses exactly as cc.lua does and prints the same lines.

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

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
  responses, non200, codes = 0, 0, {}
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then
    non200 = non200 + 1
    codes[status] = (codes[status] or 0) + 1
    if non200 == 1 then
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

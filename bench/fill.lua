-- fill.lua: wrk script that fills the audit log through POST /oauth/token
-- (bench/logs.sh). Mixes two real requests, each answered after one durable
-- token.request event:
--   * token exchange (RFC 8693, requested_token_type access_token, resource
--     RESOURCE) as bench-te, the subject token rotating over the dev-IdP ID
--     tokens of TOKENS_FILE (one per line, one per user), so the events' user
--     column takes as many values as there are tokens;
--   * every CC_EVERY-th request, client credentials as bench-cc (no user).
--
--   wrk -t2 -c64 -d900s -s bench/fill.lua http://127.0.0.1:PORT/oauth/token \
--       -- TE_BASIC_B64 CC_BASIC_B64 RESOURCE TOKENS_FILE QUOTA [CC_EVERY]
--
-- QUOTA is the number of responses each wrk thread waits for before it stops
-- sending (0: no quota); wrk itself runs until -d or SIGINT, which logs.sh
-- sends once the log holds enough events. Requests are formatted once in
-- init(). Counts non-200 responses and prints the same lines as cc.lua.

-- form encoding and response counting shared by the bench scripts
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "count.lua")

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7)
  register_thread(thread)
end

function init(args)
  local te_auth, cc_auth, resource, file = args[1], args[2], args[3], args[4]
  quota = tonumber(args[5] or "0")
  cc_every = tonumber(args[6] or "5")
  if not te_auth or not cc_auth or not resource or not file or not quota then
    error("usage: wrk ... -s fill.lua URL -- TE_BASIC CC_BASIC RESOURCE TOKENS_FILE QUOTA [CC_EVERY]")
  end
  local path = wrk.path
  local te = {}
  for tok in io.lines(file) do
    if #tok > 0 then
      local body = table.concat({
        "grant_type=" .. urlencode("urn:ietf:params:oauth:grant-type:token-exchange"),
        "requested_token_type=" .. urlencode("urn:ietf:params:oauth:token-type:access_token"),
        "resource=" .. urlencode(resource),
        "scope=bench:read",
        "subject_token=" .. urlencode(tok),
        "subject_token_type=" .. urlencode("urn:ietf:params:oauth:token-type:id_token"),
      }, "&")
      te[#te + 1] = wrk.format("POST", path, {
        ["Authorization"] = "Basic " .. te_auth,
        ["Content-Type"] = "application/x-www-form-urlencoded",
      }, body)
    end
  end
  if #te == 0 then error("fill.lua: no subject tokens in " .. file) end
  cc = wrk.format("POST", path, {
    ["Authorization"] = "Basic " .. cc_auth,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "grant_type=client_credentials&resource=" .. urlencode(resource) .. "&scope=bench:read")
  te_reqs, n_te = te, #te
  sent, te_i = 0, tonumber(offset or 0)
end

function request()
  sent = sent + 1
  if cc_every > 0 and sent % cc_every == 0 then return cc end
  te_i = te_i + 1 -- its own counter: every user gets the same share
  return te_reqs[te_i % n_te + 1]
end

function response(status, headers, body)
  count_response(status, body)
  if quota > 0 and responses >= quota then
    wrk.thread:stop()
  end
end


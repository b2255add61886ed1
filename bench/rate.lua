-- rate.lua: wrk script for POST /oauth/token, client credentials (the request of
-- cc.lua) at a fixed rate: an open-loop schedule, wrk2-style, with stock wrk
-- (bench/exporters.sh).
--
--   wrk -t2 -c64 -d30s -s bench/rate.lua http://127.0.0.1:PORT/oauth/token \
--       -- BASIC_B64 RESOURCE RATE_PER_THREAD
--
-- Each wrk thread keeps a schedule of send times RATE_PER_THREAD per second
-- apart; before every request, delay() hands the connection the next free slot
-- and returns how many milliseconds remain until it (0 when the slot is already
-- past). The thread's rate holds as long as its connections can carry it
-- (connections / latency > rate); a schedule that falls more than a second
-- behind restarts from now instead of bursting to catch up. The clock is
-- clock_gettime(CLOCK_MONOTONIC) through LuaJIT's ffi (wrk's Lua is LuaJIT).
-- RATE_PER_THREAD 0: no delay at all (as cc.lua).
-- Counts non-200 responses and prints the lines of count.lua.

-- form encoding and response counting shared by the bench scripts
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "count.lua")

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

function init(args)
  local auth, resource, rate = args[1], args[2], tonumber(args[3] or "")
  if not auth or not resource or not rate or rate < 0 then
    error("usage: wrk ... -s rate.lua URL -- BASIC_B64 RESOURCE RATE_PER_THREAD")
  end
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Basic " .. auth
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.body = "grant_type=client_credentials&resource=" .. urlencode(resource) ..
             "&scope=bench:read"
  interval = rate > 0 and 1000 / rate or 0 -- ms between two sends of this thread
  next_at = nil
end

function delay()
  if interval == 0 then return 0 end
  local t = now_ms()
  if not next_at or next_at < t - 1000 then next_at = t end
  local at = next_at
  next_at = next_at + interval
  if at <= t then return 0 end
  return math.floor(at - t)
end

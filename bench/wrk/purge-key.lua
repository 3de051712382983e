-- wrk script for bench/purge: one single-key purge per request, walking the keys
-- k<FIRST> .. k<N-1> in a fixed pseudo-random order (a permutation), then round again.
--
-- Every key tags exactly one object, so the first N-FIRST purges each remove one live
-- object; once the walk wraps round, the keys are already gone and purges find nothing
-- (for both systems alike). The order is position p -> key FIRST + (p*STEP) mod (N-FIRST),
-- STEP coprime to N-FIRST, so bench/purge can tell which keys were purged.
--
-- Environment:
--   BENCH_PURGE_KIND     edgecache: POST /service/<SERVICE>/purge/k<i> with Fastly-Key
--                        varnish:   PURGE / with xkey-purge: k<i>
--   BENCH_PURGE_TOKEN    the Fastly-Key (edgecache)
--   BENCH_PURGE_SERVICE  service id (edgecache; default edgecache)
--   BENCH_PURGE_OBJECTS  N (default 100000)
--   BENCH_PURGE_FIRST    FIRST (default 0)
--   BENCH_PURGE_STEP     STEP (default 1)
--
-- Requests are formatted once in init(), so the per-request cost in the client is a
-- table lookup, the same for both systems. Run with -t1.
--
-- done() prints one line that bench/purge reads:
--   purge: keys K live_seconds S
-- where S is the wall time from the first request until the K-th answer (NaN when wrk's
-- Lua has no FFI, or when fewer than K answers came).

local reqs = {}
local m, pos, answered = 0, 0, 0
local t0 = nil
local threads = {}
local verified = false

local have_ffi, ffi = pcall(require, "ffi")
if have_ffi then
   have_ffi = pcall(ffi.cdef, [[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
      int clock_gettime(int clk, bench_timespec_t *ts);
   ]])
end
local tsbuf = have_ffi and ffi.new("bench_timespec_t") or nil

local function now()
   if not have_ffi then return nil end
   ffi.C.clock_gettime(1, tsbuf) -- CLOCK_MONOTONIC
   return tonumber(tsbuf.tv_sec) + tonumber(tsbuf.tv_nsec) * 1e-9
end

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local kind = os.getenv("BENCH_PURGE_KIND") or "edgecache"
   local token = os.getenv("BENCH_PURGE_TOKEN") or ""
   local service = os.getenv("BENCH_PURGE_SERVICE") or "edgecache"
   local n = tonumber(os.getenv("BENCH_PURGE_OBJECTS") or "100000")
   local first = tonumber(os.getenv("BENCH_PURGE_FIRST") or "0")
   local step = tonumber(os.getenv("BENCH_PURGE_STEP") or "1")
   m = n - first
   for p = 0, m - 1 do
      local key = "k" .. (first + (p * step) % m)
      if kind == "varnish" then
         reqs[p + 1] = wrk.format("PURGE", "/", { ["xkey-purge"] = key })
      else
         reqs[p + 1] = wrk.format("POST", "/service/" .. service .. "/purge/" .. key,
                                  { ["Fastly-Key"] = token })
      end
   end
end

function request()
   if not verified then
      -- wrk calls request() once before the run, only to check what it returns
      -- (script_verify_request); that request is never sent, so it must not count
      verified = true
      return reqs[1]
   end
   if t0 == nil then t0 = now() end
   local r = reqs[pos + 1]
   pos = pos + 1
   if pos == m then pos = 0 end
   return r
end

function response(status, headers, body)
   answered = answered + 1
   if answered == m and t0 ~= nil then
      wrk.thread:set("live_seconds", now() - t0)
   end
end

function done(summary, latency, requests)
   local keys = tonumber(os.getenv("BENCH_PURGE_OBJECTS") or "100000")
                - tonumber(os.getenv("BENCH_PURGE_FIRST") or "0")
   for _, t in ipairs(threads) do
      local s = t:get("live_seconds")
      io.write(string.format("purge: keys %d live_seconds %s\n", keys,
                             s and string.format("%.4f", s) or "nan"))
   end
end

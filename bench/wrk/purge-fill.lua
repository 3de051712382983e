-- wrk script for bench/purge: fill a cache with the objects /o/0 .. /o/N-1, each
-- requested exactly once, in order, and stop as soon as every answer is in.
--
-- Environment: BENCH_PURGE_OBJECTS (N, default 100000); BENCH_PURGE_MARK, a file
-- created when the last answer is in. Run with -t1 (one Lua state, so the counters
-- below are shared by every connection). wrk itself always runs for its whole -d
-- (its main thread just sleeps), so -d is only a bound: the caller watches for the
-- mark file and sends wrk SIGINT, which makes it stop and print its summary at once.
--
-- done() prints one line that bench/purge reads:
--   fill: sent S answered A ok O bad B
-- where ok counts 200 answers.

local n = 100000
local sent, answered, ok, bad = 0, 0, 0, 0
local threads = {}
local mark = nil
local verified = false

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   n = tonumber(os.getenv("BENCH_PURGE_OBJECTS") or "100000")
   mark = os.getenv("BENCH_PURGE_MARK")
end

function request()
   if not verified then
      -- wrk calls request() once before the run, only to check what it returns
      -- (script_verify_request); that request is never sent, so it must not count
      verified = true
      return wrk.format("GET", "/o/0")
   end
   local i = sent
   sent = sent + 1
   if i >= n then
      -- every object has been asked for: repeat the last one until the answers are in
      -- (wrk needs a request from every call); these extra answers are not counted
      i = n - 1
   end
   return wrk.format("GET", "/o/" .. i)
end

function response(status, headers, body)
   if answered < n then
      answered = answered + 1
      if status == 200 then ok = ok + 1 else bad = bad + 1 end
      wrk.thread:set("sent", math.min(sent, n))
      wrk.thread:set("answered", answered)
      wrk.thread:set("ok", ok)
      wrk.thread:set("bad", bad)
      if answered == n then
         if mark then
            local f = io.open(mark, "w")
            if f then f:write("done\n") f:close() end
         end
         wrk.thread:stop()
      end
   end
end

function done(summary, latency, requests)
   for _, t in ipairs(threads) do
      io.write(string.format("fill: sent %d answered %d ok %d bad %d\n",
         t:get("sent") or 0, t:get("answered") or 0, t:get("ok") or 0, t:get("bad") or 0))
   end
end

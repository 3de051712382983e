-- wrk script: every request asks for one of the working-set objects /set/0 .. /set/N-1,
-- chosen uniformly at random. N defaults to 10000; override with the environment
-- variable BENCH_SET_SIZE. The requests are formatted once in init() so the per-request
-- cost in the client is a table lookup and a random number.

local requests = {}
local count = 0

function init(args)
   count = tonumber(os.getenv("BENCH_SET_SIZE") or "10000")
   for i = 0, count - 1 do
      requests[i + 1] = wrk.format("GET", "/set/" .. i)
   end
   math.randomseed(os.time())
end

function request()
   return requests[math.random(1, count)]
end

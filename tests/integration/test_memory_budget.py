"""
tests/integration/test_memory_budget.py — issue 8 "Memory": the memory tier's byte budget
under load, measured against the real binary, and the process RSS the README quotes.

  MemoryBudget.test_budget_under_load         (--memory-size 16M)
  MemoryBudget.test_budget_under_load_tight   (--memory-size 5M)
      --disk-size 512M --threads 2. An origin serves 2,000 objects of mixed sizes (1 KiB ..
      1 MiB: 65% up to 16 KiB, 30% up to 256 KiB, 5% up to 1 MiB; size and bytes derived from
      the path; max-age one day). First 40 "early" paths are fetched once (MISS) and
      committed to LMDB; then 4 client threads on keep-alive connections send GETs over the
      other paths with a Zipf(1) popularity for a fixed time (12 s / 10 s, tens of thousands
      of requests, ~130 MiB of distinct objects), while a sampler reads /stats (memory.bytes,
      .objects, .evictions, .budget) and /proc/PID/status (VmRSS, RssAnon, RssFile) every
      50 ms. Asserted:
        * every sample: memory.bytes <= budget + threads x budget/4 — the slack storage/mem.c
          states: over the budget only by the objects being inserted at that moment, each at
          most budget/4 (bigger ones are not admitted), and only the worker threads insert,
          one object at a time each;
        * idle, after the load: memory.bytes <= budget, no slack;
        * the tier evicted (evictions > 0; the objects fetched add up to > 3 budgets) and the
          disk tier did not (512M holds everything, so every early object is still on disk);
        * every early path is then an X-Cache HIT, byte-identical to the origin's body, with
          no new origin request, and read back from LMDB: the memory tier inserted it (its
          objects or evictions counter moved across that GET alone; a hit from memory moves
          neither).
      16M is the budget of the issue; there (with 8 shards on 2 cores) every object is smaller
      than a shard's share, so each shard's own eviction keeps the sum within the budget. 5M is
      just over 4 x the largest object (1 MiB objects are still admitted) and makes the
      objects over 640 KiB bigger than a share: such an object is left alone in its shard and
      the tier-wide pass has to evict elsewhere, the path the slack exists for.
      Printed: max bytes / budget, the margin over the budget in multiples of the largest
      object, samples over budget, evictions, and RSS before, at the sampled peak and after
      (with VmHWM). RssFile is mostly LMDB's map (page cache the kernel can reclaim).

  MemoryBudget.test_rss_10k_small_objects
      --memory-size 256M (the binary's default; the harness default is 64M): 10,000 distinct
      1 KiB objects, each fetched once (MISS) and then all resident in memory. Printed: VmRSS
      before, after, VmHWM, memory.bytes and objects.

  MemoryBudget.test_data_file_not_kept_mapped
      2,000 x 4 KiB objects (one LMDB page each): once they are on disk the process maps at
      most 256 KiB of data.mdb (/proc/PID/smaps; the writer unmapped it when idle) and
      disk.map_trims > 0; after a restart all 2,000 are served byte-identical from LMDB (no
      origin request) and the reads leave at most 256 KiB mapped once they stop.

Every server response body is verified. Figures are printed with the prefix "membudget:" so
they can be picked out of a run's output (python3 tests/integration/run.py -v -k
test_memory_budget).
"""

import hashlib
import http.client
import itertools
import json
import os
import random
import threading
import time

import harness
from harness import Session, request, scaled, wait_until

MIB = 1 << 20
KIB = 1 << 10
HOST = "membudget.example.test"
NETWORK_ERRORS = (OSError, http.client.HTTPException)
LOAD_SECONDS = 12.0        # length of the load phases (not scaled: a slower build sends fewer requests)
TIGHT_LOAD_SECONDS = 10.0
SAMPLE_INTERVAL = 0.05  # seconds between /stats samples


def log(fmt, *args):
    print("membudget: " + (fmt % args if args else fmt), flush=True)


def proc_rss(pid):
    """{field: KiB} of the memory lines of /proc/PID/status ({} when the process is gone).
    VmRSS = RssAnon (heap, stacks) + RssFile (mapped file pages: mostly the LMDB map, page
    cache the kernel can drop) + RssShmem."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[name] = int(rest.split()[0])
    except OSError:
        pass
    return out


def mapped_kib(pid, path):
    """KiB of the file at path resident in the process's maps of it (/proc/PID/smaps Rss)."""
    total, inside = 0, False
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                head = line.split()
                if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                    inside = len(head) >= 6 and line.rstrip("\n").endswith(path)
                elif inside and head[:1] == ["Rss:"]:
                    total += int(head[1])
    except OSError:
        pass
    return total


def rss_text(r):
    return "VmRSS %d KiB (anon %d, file %d)" % (r.get("VmRSS", 0), r.get("RssAnon", 0), r.get("RssFile", 0))


def default_shards():
    """The shard count storage/mem.c's mem_create picks for nshards=0 (4 per online core,
    8..256, a power of two); only for the printed figures, never asserted."""
    cpus = os.sysconf("SC_NPROCESSORS_ONLN")
    n = max(8, min(cpus, 64) * 4) if cpus > 0 else 16
    p = 1
    while p < n:
        p <<= 1
    return p


def size_for(path):
    """Body size of a path: 65% 1-16 KiB, 30% 16-256 KiB, 5% 256 KiB-1 MiB (deterministic)."""
    h = hashlib.sha256(path.encode()).digest()
    r = int.from_bytes(h[1:5], "little")
    pick = h[0] % 20
    if pick < 13:
        return KIB + r % (15 * KIB + 1)
    if pick < 19:
        return 16 * KIB + r % (240 * KIB + 1)
    return 256 * KIB + r % (768 * KIB + 1)


def body_for(path, size):
    """The origin's body: a line naming path and size, then SHAKE-256 bytes, `size` in all."""
    head = b"%s %d\n" % (path.encode(), size)
    return (head + hashlib.shake_256(path.encode()).digest(max(0, size - len(head))))[:size]


class Catalog:
    """The objects the origin serves: path -> (size, sha256 of the body)."""

    def __init__(self, paths, sizes=None):
        self.size = {}
        self.digest = {}
        for p in paths:
            n = sizes.get(p) if sizes and p in sizes else size_for(p)
            self.size[p] = n
            self.digest[p] = hashlib.sha256(body_for(p, n)).digest()

    def serve(self, req):
        path = req.path.split("?", 1)[0]
        n = self.size.get(path)
        if n is None:
            return 404, {"Content-Type": "text/plain"}, b"unknown object\n"
        return 200, {"Cache-Control": "max-age=86400", "Content-Type": "application/octet-stream"}, body_for(path, n)

    def check(self, path, resp):
        """Raise AssertionError unless resp is a 200 with exactly the origin's body."""
        if resp.status != 200:
            raise AssertionError("%s: status %d\n%s" % (path, resp.status, resp.describe()))
        if len(resp.body) != self.size[path] or hashlib.sha256(resp.body).digest() != self.digest[path]:
            raise AssertionError("%s: body differs from the origin's (%d bytes, expected %d; starts %r)" % (
                path, len(resp.body), self.size[path], resp.body[:40]))


class MemoryBudget(harness.TestCase):

    def token(self, edge):
        return harness.create_token(edge)

    def stats(self, edge, tok):
        r = request(edge.admin_port, "GET", "/stats", headers={"Fastly-Key": tok}, timeout=10)
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)

    def fetch_all(self, edge, paths, catalog, nthreads, deadline, errors, seen=None):
        """GET the paths of paths[k] (any iterable) from client thread k, on keep-alive
        sessions, until they run out or `deadline` (monotonic) passes; verify every body.
        Adds every path served to `seen` (a set) when given. Returns the responses received."""
        done = [0] * nthreads
        lock = threading.Lock()

        def client(k):
            s = Session(edge.proxy_port, timeout=20)
            mine = set()
            try:
                for path in paths[k]:
                    if time.monotonic() >= deadline or errors:
                        return
                    try:
                        r = s.request("GET", path, headers={"Host": HOST})
                    except NETWORK_ERRORS:
                        s.close()
                        s = Session(edge.proxy_port, timeout=20)
                        r = s.request("GET", path, headers={"Host": HOST})
                    catalog.check(path, r)
                    done[k] += 1
                    mine.add(path)
            except Exception as exc:  # reported by the main thread
                errors.append("client %d: %r" % (k, exc))
            finally:
                s.close()
                if seen is not None:
                    with lock:
                        seen.update(mine)

        threads = [threading.Thread(target=client, args=(k,), name="membudget-client-%d" % k) for k in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic() + scaled(30)))
        self.assertFalse(any(t.is_alive() for t in threads), "a client thread did not finish")
        return sum(done)

    # ------------------------------------------------------------------------------------

    def test_budget_under_load(self):
        """16 MiB: the budget of the brief. With the default shard count every object here is
        smaller than a shard's share, so each shard's own eviction does the work."""
        self.budget_under_load("16M", 16 * MIB, LOAD_SECONDS)

    def test_budget_under_load_tight(self):
        """5 MiB: just over 4 x the largest object (so 1 MiB objects are still admitted). Many
        objects are now bigger than a shard's share: such an object is left alone in its shard
        and the tier-wide pass must evict from the others."""
        self.budget_under_load("5M", 5 * MIB, TIGHT_LOAD_SECONDS)

    def budget_under_load(self, budget_flag, budget_arg, seconds):
        threads = 2
        n_paths, n_early, n_clients = 2000, 40, 4
        paths = ["/obj/%d" % i for i in range(n_paths)]
        early = paths[:n_early]
        # the early paths span the whole size range, both ends exactly
        sizes = {early[0]: MIB, early[1]: KIB, early[2]: 512 * KIB, early[3]: 64 * KIB}
        catalog = Catalog(paths, sizes)
        largest = max(catalog.size.values())

        o = self.origin()
        o.route_prefix("/obj/", handler=catalog.serve)
        e = self.edgecache([o], args=["--memory-size", budget_flag, "--disk-size", "512M", "--threads", str(threads)])
        tok = self.token(e)
        pid = e.pid
        s0 = self.stats(e, tok)
        budget = s0["memory"]["budget"]
        self.assertEqual(budget, budget_arg, "memory.budget in /stats")
        slack_limit = budget + threads * (budget // 4)
        rss_before = proc_rss(pid)

        # phase A: the early objects, once each, committed to LMDB before the load
        for path in early:
            r = request(e.proxy_port, "GET", path, headers={"Host": HOST}, timeout=20)
            catalog.check(path, r)
            self.assertXCache(r, "MISS")
        wait_until(lambda: self.stats(e, tok)["disk"]["objects"] >= n_early, timeout=15,
                   interval=0.1, what="the early objects to reach LMDB")

        # phase B: LOAD_SECONDS of GETs over the other paths, Zipf(1) popularity over shuffled
        # ranks (so popular objects come in every size), one random stream per client
        ranked = paths[n_early:]
        random.Random(8).shuffle(ranked)
        weights = [1.0 / (r + 1) for r in range(len(ranked))]
        cum = list(itertools.accumulate(weights))

        def stream(k):
            rng = random.Random(1000 + k)
            while True:
                yield from rng.choices(ranked, cum_weights=cum, k=256)

        samples = []  # (t, bytes, objects, evictions, rss dict)
        stop = threading.Event()
        sampler_errors = []

        def sampler():
            t0 = time.monotonic()
            while not stop.is_set():
                try:
                    m = self.stats(e, tok)["memory"]
                    samples.append((time.monotonic() - t0, m["bytes"], m["objects"], m["evictions"], proc_rss(pid)))
                except Exception as exc:
                    sampler_errors.append(repr(exc))
                    return
                stop.wait(SAMPLE_INTERVAL)

        st = threading.Thread(target=sampler, name="membudget-sampler")
        st.start()
        errors = []
        seen = set()
        t_start = time.monotonic()
        try:
            served = self.fetch_all(e, [stream(k) for k in range(n_clients)], catalog, n_clients,
                                    t_start + seconds, errors, seen)
        finally:
            stop.set()
            st.join(scaled(15))
        elapsed = time.monotonic() - t_start
        self.assertFalse(errors, "client errors: %s" % errors[:3])
        self.assertFalse(sampler_errors, "the /stats sampler failed: %s" % sampler_errors[:1])
        distinct_bytes = sum(catalog.size[p] for p in seen)

        # idle: nothing is being inserted, the tier must be within the budget itself
        time.sleep(0.5)
        idle = self.stats(e, tok)
        rss_after = proc_rss(pid)
        max_bytes = max(s[1] for s in samples) if samples else 0
        max_objects = max(s[2] for s in samples) if samples else 0
        rss_peak = max([s[4] for s in samples] + [rss_before, rss_after], key=lambda r: r.get("VmRSS", 0))
        over = max(0, max_bytes - budget)
        nshards = default_shards()
        log("--memory-size %s: budget %d (%.1f MiB), worker threads %d, asserted limit budget + %d x budget/4 = %d "
            "(%.1f MiB); %d shards (as mem_create picks them here), share %d, %d of %d paths bigger than a share",
            budget_flag, budget, budget / MIB, threads, threads, slack_limit, slack_limit / MIB, nshards,
            budget // nshards, sum(1 for p in paths if catalog.size[p] > budget // nshards), n_paths)
        log("load: %d GETs in %.1fs by %d clients, %d distinct paths, %.1f MiB distinct (%.1f x budget), "
            "largest body %d", served, elapsed, n_clients, len(seen), distinct_bytes / MIB, distinct_bytes / budget,
            largest)
        log("memory.bytes: %d samples (every %d ms), max %d = %.4f x budget (over by %d = %.2f x the largest body), "
            "samples over budget %d, max objects %d; idle after the run %d bytes, %d objects",
            len(samples), SAMPLE_INTERVAL * 1000, max_bytes, max_bytes / budget, over, over / largest,
            sum(1 for x in samples if x[1] > budget), max_objects, idle["memory"]["bytes"], idle["memory"]["objects"])
        log("evictions: memory %d, disk %d; disk objects %d, %.1f MiB; origin requests %d",
            idle["memory"]["evictions"], idle["disk"]["evictions"], idle["disk"]["objects"],
            idle["disk"]["bytes"] / MIB, o.hits())
        log("before: %s; peak sampled: %s; after: %s; VmHWM %d KiB", rss_text(rss_before), rss_text(rss_peak),
            rss_text(rss_after), rss_after.get("VmHWM", 0))

        self.assertGreaterEqual(served, 2000, "the load got only %d requests through" % served)
        self.assertGreaterEqual(len(samples), 20, "too few /stats samples")
        self.assertGreater(distinct_bytes, 3 * budget, "the load must not fit in the tier")
        for t, b, n, ev, _ in samples:
            self.assertLessEqual(b, slack_limit, "memory.bytes %d at t=%.2fs (%d objects, %d evictions) exceeds "
                                 "budget + %d x budget/4 = %d" % (b, t, n, ev, threads, slack_limit))
        self.assertLessEqual(idle["memory"]["bytes"], budget, "idle memory tier over its budget: %s" % idle["memory"])
        self.assertGreater(idle["memory"]["evictions"], 0, "no evictions from the memory tier")
        self.assertEqual(idle["disk"]["evictions"], 0, "the disk tier evicted: the early objects may be gone")

        # the early objects: evicted from memory, read back from LMDB, byte-identical
        from_disk = 0
        for path in early:
            before = self.stats(e, tok)["memory"]
            hits_before = o.hits(path)
            r = request(e.proxy_port, "GET", path, headers={"Host": HOST}, timeout=20)
            after = self.stats(e, tok)["memory"]
            catalog.check(path, r)
            self.assertXCache(r, "HIT", "%s after the load" % path)
            self.assertEqual(o.hits(path), hits_before, "%s went to the origin again" % path)
            if after["objects"] != before["objects"] or after["evictions"] != before["evictions"]:
                from_disk += 1
        log("early objects: %d of %d were evicted from memory and read back from LMDB, all byte-identical HITs",
            from_disk, n_early)
        self.assertEqual(from_disk, n_early, "early objects still in memory after %.1f MiB of other objects"
                         % (distinct_bytes / MIB))

    def test_rss_10k_small_objects(self):
        n, n_clients = 10000, 4
        paths = ["/small/%d" % i for i in range(n)]
        catalog = Catalog(paths, {p: KIB for p in paths})

        o = self.origin()
        o.route_prefix("/small/", handler=catalog.serve)
        e = self.edgecache([o], args=["--memory-size", "256M"])
        tok = self.token(e)
        pid = e.pid
        time.sleep(0.3)
        rss_before = proc_rss(pid)

        errors = []
        t_start = time.monotonic()
        served = self.fetch_all(e, [paths[k::n_clients] for k in range(n_clients)], catalog, n_clients,
                                t_start + scaled(45), errors)
        elapsed = time.monotonic() - t_start
        self.assertFalse(errors, "client errors: %s" % errors[:3])
        self.assertEqual(served, n, "only %d of %d objects fetched in time" % (served, n))
        wait_until(lambda: self.stats(e, tok)["disk"]["objects"] >= n, timeout=15, interval=0.1,
                   what="all objects to reach LMDB")
        time.sleep(0.5)
        st = self.stats(e, tok)
        rss_after = proc_rss(pid)
        log("10k x 1 KiB, --memory-size 256M: %d GETs in %.1fs; memory %d objects, %d bytes (%.0f per object); "
            "disk %d objects, %.1f MiB", served, elapsed, st["memory"]["objects"], st["memory"]["bytes"],
            st["memory"]["bytes"] / max(1, st["memory"]["objects"]), st["disk"]["objects"], st["disk"]["bytes"] / MIB)
        log("10k x 1 KiB: before: %s; after: %s = %.1f MiB; VmHWM %d KiB", rss_text(rss_before),
            rss_text(rss_after), rss_after.get("VmRSS", 0) / KIB, rss_after.get("VmHWM", 0))
        self.assertEqual(st["memory"]["objects"], n, "every object resident in memory")
        self.assertEqual(st["memory"]["evictions"], 0)
        # every object is served from memory now: a few spot checks
        for path in paths[::1000]:
            r = request(e.proxy_port, "GET", path, headers={"Host": HOST})
            catalog.check(path, r)
            self.assertXCache(r, "HIT")
        self.assertEqual(o.hits(), n, "each object fetched from the origin exactly once")

    def test_data_file_not_kept_mapped(self):
        """storage/store_maptrim.c: once the writer is idle, the process maps none of
        data.mdb's pages (they stay in the page cache); after a restart every object is
        served from LMDB through pages that had been unmapped, and the reads do not leave
        the file mapped either."""
        n = 2000
        paths = ["/mapped/%d" % i for i in range(n)]
        catalog = Catalog(paths, {p: 4 * KIB for p in paths})  # one record a page: ~8 MiB of the map
        o = self.origin()
        o.route_prefix("/mapped/", handler=catalog.serve)
        e = self.edgecache([o], args=["--memory-size", "64M"])
        tok = self.token(e)
        errors = []
        served = self.fetch_all(e, [paths[k::2] for k in range(2)], catalog, 2, time.monotonic() + scaled(60), errors)
        self.assertFalse(errors, "client errors: %s" % errors[:3])
        self.assertEqual(served, n)
        wait_until(lambda: self.stats(e, tok)["disk"]["objects"] >= n, timeout=scaled(30), interval=0.1,
                   what="all objects to reach LMDB")
        data_mdb = os.path.join(e.data_dir, "data.mdb")
        # the puts mapped every leaf page they touched; the writer's trim when idle unmaps them
        wait_until(lambda: mapped_kib(e.pid, data_mdb) <= 256, timeout=scaled(30), interval=0.05,
                   what="data.mdb unmapped from the process (%d KiB mapped)" % mapped_kib(e.pid, data_mdb))
        st = self.stats(e, tok)
        self.assertGreater(st["disk"]["map_trims"], 0)
        log("data.mdb after %d puts: %.1f MiB used, %d KiB mapped, %d trims; RSS %s", n, st["disk"]["bytes"] / MIB,
            mapped_kib(e.pid, data_mdb), st["disk"]["map_trims"], rss_text(proc_rss(e.pid)))

        # restart: the memory tier starts empty, so each GET reads LMDB through the map
        e.restart()
        errors = []
        served = self.fetch_all(e, [paths[k::2] for k in range(2)], catalog, 2, time.monotonic() + scaled(60), errors)
        self.assertFalse(errors, "client errors: %s" % errors[:3])
        self.assertEqual(served, n)
        self.assertEqual(o.hits(), n, "every object after the restart came from LMDB, none from the origin")
        # reads alone (nothing written): the first read after a trim wakes the writer, which
        # trims once no read has come for 200 ms (or 2 s after its last trim, under steady reads)
        wait_until(lambda: mapped_kib(e.pid, data_mdb) <= 256, timeout=scaled(30), interval=0.05,
                   what="data.mdb unmapped after %d reads (%d KiB mapped)" % (n, mapped_kib(e.pid, data_mdb)))
        log("data.mdb after %d reads from disk: %d KiB mapped; RSS %s", n, mapped_kib(e.pid, data_mdb),
            rss_text(proc_rss(e.pid)))

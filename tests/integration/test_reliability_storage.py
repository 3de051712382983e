"""
tests/integration/test_reliability_storage.py — issue 8: the store under a crash and a full
disk, end to end against the real binary.

  CrashSafety      kill -9 at random moments (20 times) under a steady load of misses
                   (writes of verifiable bodies) and purges (PURGE on the proxy, surrogate-key
                   purges on the admin API); after every restart each object served must be
                   byte-identical to what the origin sent and no acknowledged purge may be
                   undone.
  FullDisk         --disk-size 4M and a stream of ~2000 unique 8-32 KiB objects.

The figures of the crash test (kills survived, requests in flight at each kill, ...) are
printed. Seeds: EDGECACHE_RELIABILITY_SEED (printed) reproduces the kill timing. The shared
helpers (verifiable bodies, ReliabilityCase) are in reliabilityutil.py.
"""

import hashlib
import http.client
import os
import random
import threading
import time

from harness import scaled
from reliabilityutil import HOST, NETWORK_ERRORS, ReliabilityCase, SID, body_for, check_body, create_token


class _Model:
    """What the origin serves and what the cache may still serve, per path.

    version[p]: the version the origin sends now. A purge bumps it *before* it is sent, so
    the content the purge removes is always an older version. floor[p]: the version of the
    last acknowledged purge; anything older must never be served again, hit or miss.
    Each path belongs to one load thread, so no two requests for a path overlap."""

    def __init__(self):
        self.lock = threading.Lock()
        self.version = {}
        self.floor = {}
        self.acked_since = set()  # paths whose purge was acknowledged since take_acked()

    @staticmethod
    def skey(path):
        # "/k/w2/123" -> "g-w2-15": eight consecutive paths of one load thread share a key
        parts = path.split("/")
        return "g-%s-%d" % (parts[2], int(parts[3]) // 8)

    def current(self, path):
        with self.lock:
            return self.version.get(path, 0)

    def bump(self, path):
        with self.lock:
            self.version[path] = self.version.get(path, 0) + 1
            return self.version[path]

    def acknowledge(self, path, version):
        with self.lock:
            self.floor[path] = max(self.floor.get(path, 0), version)
            self.acked_since.add(path)

    def take_acked(self):
        with self.lock:
            out, self.acked_since = self.acked_since, set()
            return out

    def floor_of(self, path):
        with self.lock:
            return self.floor.get(path, 0)


class _Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.failures = []

    def add(self, name, n=1):
        with self.lock:
            self.c[name] = self.c.get(name, 0) + n

    def get(self, name):
        with self.lock:
            return self.c.get(name, 0)

    def failure(self, text):
        with self.lock:
            if len(self.failures) < 20:
                self.failures.append(text)


class _Client:
    """One keep-alive connection that reconnects after any error."""

    def __init__(self, port, timeout=5):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, headers=None, body=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=scaled(self.timeout))
        h = {"Host": HOST}
        h.update(headers or {})
        try:
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class CrashSafety(ReliabilityCase):
    CYCLES = 20
    THREADS = 4
    VERIFY_SAMPLE = 40   # random paths checked after each restart ...
    VERIFY_PURGED = 150  # ... and at most this many of those purged (acknowledged) in the cycle before

    def setUp(self):
        self.model = _Model()
        self.o = self.fast_origin()
        model = self.model

        def handler(req):
            path = req.path
            v = model.current(path)
            headers = {"Cache-Control": "max-age=3600", "Content-Type": "application/octet-stream",
                       "Surrogate-Key": _Model.skey(path)}
            return 200, headers, body_for(path, v)

        self.o.route_prefix("/k/", handler=handler)
        self.e = self.edgecache([self.o], args=["--threads", "2"])
        self.token = create_token(self.e)

    # --- one response, checked against the model
    def check_response(self, stats, path, status, headers, body, when):
        if status != 200:
            stats.failure("%s: GET %s answered %d %r" % (when, path, status, body[:200]))
            return
        try:
            version = check_body(path, body)
        except AssertionError as exc:
            stats.failure("%s: %s (x-cache %s)" % (when, exc, headers.get("x-cache")))
            return
        floor = self.model.floor_of(path)
        if version < floor:
            stats.failure("%s: GET %s served version %d (x-cache %s, age %s) although a purge of it was "
                          "acknowledged (version %d)" % (when, path, version, headers.get("x-cache"),
                                                         headers.get("age"), floor))
        if version > self.model.current(path):
            stats.failure("%s: GET %s served version %d, newer than the origin ever sent" % (when, path, version))
        if (headers.get("x-cache") or "").upper().startswith("HIT"):
            stats.add("hits")

    # --- the load: one thread, its own paths
    def load_thread(self, wid, port, admin_port, stop, killing, inflight, paths, stats, rng):
        client = _Client(port)
        admin = _Client(admin_port)
        auth = {"Fastly-Key": self.token}
        try:
            while not stop.is_set():
                op = rng.random()
                inflight[wid] = True
                try:
                    if op < 0.45 or not paths:
                        path = "/k/w%d/%d" % (wid, len(paths))
                        paths.append(path)
                        status, headers, body = client.request("GET", path)
                        self.check_response(stats, path, status, headers, body, "during load")
                        stats.add("writes")
                    elif op < 0.75:
                        path = rng.choice(paths)
                        status, headers, body = client.request("GET", path)
                        self.check_response(stats, path, status, headers, body, "during load")
                        stats.add("reads")
                    elif op < 0.9:
                        path = rng.choice(paths)
                        version = self.model.bump(path)
                        status, _, body = client.request("PURGE", path, headers=auth)
                        if status == 200:
                            self.model.acknowledge(path, version)
                            stats.add("url_purges_acked")
                        else:
                            stats.failure("PURGE %s answered %d %r" % (path, status, body[:200]))
                    else:
                        key = _Model.skey(rng.choice(paths))
                        group = [p for p in paths if _Model.skey(p) == key]
                        versions = [(p, self.model.bump(p)) for p in group]
                        status, _, body = admin.request("POST", "/service/%s/purge/%s" % (SID, key), headers=auth)
                        if status == 200:
                            for p, v in versions:
                                self.model.acknowledge(p, v)
                            stats.add("key_purges_acked")
                        else:
                            stats.failure("key purge %s answered %d %r" % (key, status, body[:200]))
                    stats.add("requests")
                except NETWORK_ERRORS as exc:
                    if killing.is_set():
                        stats.add("interrupted")
                        return
                    stats.failure("request failed before any kill: %r" % exc)
                    return
                finally:
                    inflight[wid] = False
        finally:
            client.close()
            admin.close()

    def verify_after_restart(self, paths, recently_purged, stats, rng, cycle):
        client = _Client(self.e.proxy_port)
        everything = [p for lst in paths for p in lst]
        purged = sorted(recently_purged)
        sample = set(rng.sample(purged, min(len(purged), self.VERIFY_PURGED)))
        sample.update(rng.sample(everything, min(len(everything), self.VERIFY_SAMPLE)))
        hits_before = stats.get("hits")
        try:
            for path in sorted(sample):
                try:
                    status, headers, body = client.request("GET", path)
                except NETWORK_ERRORS as exc:
                    stats.failure("after restart %d: GET %s failed: %r" % (cycle, path, exc))
                    return
                self.check_response(stats, path, status, headers, body, "after restart %d" % cycle)
                stats.add("verified")
        finally:
            client.close()
        stats.add("hits_after_restart", stats.get("hits") - hits_before)

    def test_kill9_under_writes_and_purges(self):
        seed = int(os.environ.get("EDGECACHE_RELIABILITY_SEED", str(int(time.time()))))
        rng = random.Random(seed)
        stats = _Stats()
        paths = [[] for _ in range(self.THREADS)]
        kills = 0
        inflight_at_kills = []
        t0 = time.monotonic()
        budget = scaled(45)

        for cycle in range(self.CYCLES):
            if time.monotonic() - t0 > budget:
                break
            stop, killing = threading.Event(), threading.Event()
            inflight = [False] * self.THREADS
            threads = [threading.Thread(target=self.load_thread, name="load-%d" % i,
                                        args=(i, self.e.proxy_port, self.e.admin_port, stop, killing, inflight,
                                              paths[i], stats, random.Random(rng.random())))
                       for i in range(self.THREADS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.3, 0.8))
            killing.set()
            inflight_at_kills.append(sum(inflight))
            self.e.kill9()
            kills += 1
            stop.set()
            t_kill = time.monotonic()
            for t in threads:
                t.join(scaled(10))
                self.assertFalse(t.is_alive(), "a load thread did not stop")
            stats.add("join_ms", int((time.monotonic() - t_kill) * 1000))
            if stats.failures:
                break
            # restart on the same store: it must open, and serve only correct, unpurged bodies
            t_start = time.monotonic()
            self.e.start()
            t_verify = time.monotonic()
            stats.add("start_ms", int((t_verify - t_start) * 1000))
            self.verify_after_restart(paths, self.model.take_acked(), stats, rng, cycle + 1)
            stats.add("verify_ms", int((time.monotonic() - t_verify) * 1000))
            if stats.failures:
                break

        figures = ("crash safety (seed %d): %d kills survived in %.1fs; requests in flight at the kills: %d "
                   "(max %d per kill); requests interrupted: %d; completed requests: %d (writes %d, reads %d, "
                   "URL purges acked %d, key purges acked %d); objects verified after restarts: %d, of which "
                   "HITs %d; time in restarts %d ms, in checks after them %d ms"
                   % (seed, kills, time.monotonic() - t0, sum(inflight_at_kills), max(inflight_at_kills or [0]),
                      stats.get("interrupted"), stats.get("requests"), stats.get("writes"), stats.get("reads"),
                      stats.get("url_purges_acked"), stats.get("key_purges_acked"), stats.get("verified"),
                      stats.get("hits_after_restart"), stats.get("start_ms"), stats.get("verify_ms")))
        print("\n      " + figures, flush=True)
        if stats.failures:
            self.fail_server("kill -9 crash safety (seed %d):\n  " % seed + "\n  ".join(stats.failures))
        self.assertGreaterEqual(kills, self.CYCLES, "fewer kills than planned in the time budget")
        self.assertGreater(stats.get("url_purges_acked") + stats.get("key_purges_acked"), 0, "no purge was tested")
        if stats.get("hits_after_restart") == 0:
            self.fail_server("no object stored before a kill -9 was a HIT after the restart (%s)" % figures)


# ======================================================================================
# full disk


class FullDisk(ReliabilityCase):
    OBJECTS = 2000
    THREADS = 4

    def test_small_disk_keeps_serving(self):
        o = self.fast_origin()

        def size_of(path):
            return 8192 + int.from_bytes(hashlib.sha256(path.encode()).digest()[:4], "little") % (24 * 1024)

        def handler(req):
            return 200, {"Cache-Control": "max-age=3600"}, body_for(req.path, 0, size_of(req.path))

        o.route_prefix("/d/", handler=handler)
        e = self.edgecache([o], args=["--disk-size", "4M", "--memory-size", "2M"])
        failures = []
        lock = threading.Lock()
        counter = iter(range(self.OBJECTS))

        def fetch(client, path, when):
            try:
                status, headers, body = client.request("GET", path)
            except NETWORK_ERRORS as exc:
                with lock:
                    failures.append("%s: GET %s failed: %r (server running: %s)" % (when, path, exc, e.running))
                return None
            if status != 200:
                with lock:
                    failures.append("%s: GET %s answered %d %r" % (when, path, status, body[:200]))
                return None
            try:
                check_body(path, body, size_of(path))
            except AssertionError as exc:
                with lock:
                    failures.append("%s: %s" % (when, exc))
                return None
            return headers.get("x-cache", "")

        def worker(wid):
            client = _Client(e.proxy_port)
            rng = random.Random(wid)
            try:
                for n in counter:
                    if failures:
                        return
                    fetch(client, "/d/%d" % n, "stream")
                    if n % 5 == 0:  # now and then, an older object: a hit or a refetch, never wrong
                        fetch(client, "/d/%d" % rng.randrange(n + 1), "re-read")
            finally:
                client.close()

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(scaled(60))
        elapsed = time.monotonic() - t0
        if failures:
            self.fail_server("--disk-size 4M stream: " + "\n  ".join(failures[:10]))
        self.assertTrue(e.running, "edgecache died during the stream\n" + e.stderr_tail())

        # the objects written last are still stored (eviction made room for them) ...
        client = _Client(e.proxy_port)
        recent = ["/d/%d" % n for n in range(self.OBJECTS - 20, self.OBJECTS)]
        for p in recent:
            fetch(client, p, "before restart")
        client.close()
        # ... and a restart on the same directory opens the store and serves correct bodies
        code = e.restart()
        self.assertEqual(code, 0, "SIGTERM after the stream: exit %s\n%s" % (code, e.stderr_tail()))
        client = _Client(e.proxy_port)
        hits = 0
        for p in recent + ["/d/%d" % n for n in range(0, self.OBJECTS, 97)]:
            xc = fetch(client, p, "after restart")
            if p in recent and xc and xc.upper().startswith("HIT"):
                hits += 1
        client.close()
        print("\n      full disk: %d objects (8-32 KiB) through --disk-size 4M in %.1fs; %d of the last 20 were "
              "HITs from disk after the restart" % (self.OBJECTS, elapsed, hits), flush=True)
        if failures:
            self.fail_server("--disk-size 4M after restart: " + "\n  ".join(failures[:10]))
        if hits < 10:
            self.fail_server("--disk-size 4M: only %d of the 20 objects fetched last (twice) were HITs after a clean "
                             "restart: a full store stops storing new objects instead of evicting old ones" % hits)

"""
tests/integration/test_semantics_grace.py — issue 3, grace: stale-while-revalidate (the stale
copy at once, one background refresh, a 304 refreshing it, a synchronous fetch past the
window) and stale-if-error (origin stopped, 5xx, timed out; the directives that forbid
serving stale; --default-grace). The shared helpers and the timing rules are in
semanticsutil.py.
"""

import threading
import time

from harness import scaled, wait_until
from semanticsutil import Counter, NO_DATE, SemanticsCase, cc, hdrs, run_concurrently


class StaleWhileRevalidate(SemanticsCase):

    def test_stale_served_at_once_one_background_refresh(self):
        o = self.origin()
        count = Counter()
        refresh = o.hold()  # the background refresh waits at the origin until released

        def handler(req):
            n = count.next()
            if n == 1:
                return 200, cc("max-age=1, stale-while-revalidate=30", ETag='"v1"', **NO_DATE), b"version one"
            refresh.wait()
            if req.headers.get("if-none-match") == '"v2"':
                return 304, cc("max-age=60", ETag='"v2"', **NO_DATE), b""
            return 200, cc("max-age=60", ETag='"v2"', **NO_DATE), b"version two"

        o.route("/swr", handler=handler)
        e = self.edge(o)
        r = self.get(e, "/swr")
        self.assertXCache(r, "MISS")
        self.assertOk(r, b"version one")
        time.sleep(2.2)
        # the refresh is held at the origin until released below: every stale copy served
        # before that did not wait for it
        for i in range(3):
            r = self.get(e, "/swr")
            self.assertOk(r, b"version one", "stale copy %d within stale-while-revalidate" % i)
            self.assertXCache(r, "HIT", "a stale copy served is a HIT")
            self.assertIsNotNone(r.age, r.describe())
            self.assertGreaterEqual(r.age, 2, "the stale copy carries its true Age (>= max-age)\n" + r.describe())
            self.assertFalse(refresh.released)
        wait_until(lambda: refresh.waiting == 1, 3, what="the background refresh to reach the origin")
        bg = o.requests_for("/swr")[1]
        self.assertEqual(bg.method, "GET")
        self.assertEqual(bg.headers.get("if-none-match"), '"v1"',
                         "the background refresh revalidates with the stored ETag: %r" % bg.headers)
        # while the refresh is in flight, a burst of requests gets the stale copy and starts nothing
        for r in run_concurrently(8, lambda i: self.get(e, "/swr")):
            self.assertOk(r, b"version one", "stale copies during the refresh are served at once")
        self.assertEqual((refresh.waiting, o.hits("/swr")), (1, 2), "served while the refresh is held, starting no other")
        refresh.release()
        got = wait_until(lambda: (lambda x: x if x.body == b"version two" else None)(self.get(e, "/swr")),
                         3, interval=0.1, what="the refreshed body")
        self.assertXCache(got, "HIT", "the refreshed object is served from the cache")
        self.assertEqual(o.hits("/swr"), 2, "exactly one background fetch for the stale object")
        self.assertXCache(self.get(e, "/swr"), "HIT")
        self.assertEqual(o.hits("/swr"), 2)

    def test_background_revalidation_304_refreshes(self):
        o = self.origin()
        body = b"unchanged body " * 100

        def handler(req):
            if req.headers.get("if-none-match") == '"s"':
                return 304, hdrs(Cache_Control="max-age=60", ETag='"s"', X_Version="2", Date=None), b""
            return 200, hdrs(Cache_Control="max-age=1, stale-while-revalidate=30", ETag='"s"', X_Version="1",
                             Content_Type="text/plain", Date=None), body

        o.route("/swr304", handler=handler)
        e = self.edge(o)
        self.assertOk(self.get(e, "/swr304"), body)
        time.sleep(2.2)
        r = self.get(e, "/swr304")
        self.assertOk(r, body, "the stale copy at once")
        self.assertXCache(r, "HIT")
        wait_until(lambda: self.get(e, "/swr304").header("x-version") == "2", 3, interval=0.1,
                   what="the background 304 to refresh the stored headers")
        self.assertEqual(o.hits("/swr304"), 2, "one background revalidation")
        self.assertEqual(o.requests_for("/swr304")[1].headers.get("if-none-match"), '"s"')
        r = self.get(e, "/swr304")
        self.assertOk(r, body, "the body was kept (304)")
        self.assertXCache(r, "HIT")
        self.assertLessEqual(r.age, 2, "fresh again: the age restarted at the 304\n" + r.describe())
        self.assertEqual(o.hits("/swr304"), 2)

    def test_beyond_the_window_fetches_synchronously(self):
        o = self.origin()
        count = Counter()
        fetch = o.hold()

        def handler(req):
            n = count.next()
            if n == 1:
                return 200, cc("max-age=1, stale-while-revalidate=1", **NO_DATE), b"old"
            fetch.wait()
            return 200, cc("max-age=60", **NO_DATE), b"new"

        o.route("/swr-short", handler=handler)
        e = self.edge(o)
        self.assertOk(self.get(e, "/swr-short"), b"old")
        time.sleep(3.3)  # stale for 2.3 s > stale-while-revalidate=1
        got = []
        t = threading.Thread(target=lambda: got.append(self.get(e, "/swr-short", timeout=10)), daemon=True)
        t.start()
        wait_until(lambda: fetch.waiting == 1, 5, what="the fetch held at the origin")
        self.assertEqual(got, [], "no answer while the origin holds the fetch: the client waits for it")
        fetch.release()
        t.join(scaled(10))
        self.assertEqual(len(got), 1, "the client got the origin's answer once it came")
        self.assertOk(got[0], b"new", "past the stale-while-revalidate window the client waits for the origin")
        self.assertEqual(o.hits("/swr-short"), 2)
        self.assertXCache(self.get(e, "/swr-short"), "HIT")


    def test_a_variant_is_refreshed_when_another_was_fetched_since(self):
        # a fetch of one variant stores the URL's vary index anew; the background refresh of another variant asked
        # whether "the object" had been refreshed meanwhile by looking at that index, found it newer, and gave up:
        # the stale variant was served until its window ran out
        o = self.origin()
        lock = threading.Lock()
        fetched = []

        def handler(req):
            v = req.headers.get("x-v", "")
            with lock:
                fetched.append(v)
                n = fetched.count(v)
            # stale on arrival (Age past max-age), well within stale-while-revalidate
            return 200, cc("max-age=10, stale-while-revalidate=600", Vary="X-V", Age="20", **NO_DATE), (
                "%s %d" % (v, n)).encode()

        o.route("/var", handler=handler)
        e = self.edge(o)
        self.assertOk(self.get(e, "/var", headers={"X-V": "a"}), b"a 1")
        self.assertOk(self.get(e, "/var", headers={"X-V": "b"}), b"b 1")  # republishes the vary index
        r = self.get(e, "/var", headers={"X-V": "a"})
        self.assertOk(r, b"a 1", "the stale variant at once")
        self.assertXCache(r, "HIT")
        wait_until(lambda: fetched.count("a") == 2, 5, what="the background refresh of variant a at the origin")
        got = wait_until(lambda: (lambda x: x if x.body == b"a 2" else None)(self.get(e, "/var", headers={"X-V": "a"})),
                         5, interval=0.05, what="the refreshed variant a")
        self.assertXCache(got, "HIT")
        self.assertEqual(fetched.count("b"), 1, "variant b was not fetched again")


class StaleIfError(SemanticsCase):

    def test_origin_stopped(self):
        o = self.origin()
        o.route("/sie", headers=cc("max-age=1, stale-if-error=60", **NO_DATE), body=b"stale but good")
        o.route("/sie-short", headers=cc("max-age=1, stale-if-error=1", **NO_DATE), body=b"too old")
        o.route("/plain", headers=cc("max-age=1", **NO_DATE), body=b"plain")
        e = self.edge(o)
        grace = self.edge(o, args=["--default-grace", "60"])
        for path in ("/sie", "/sie-short", "/plain"):
            self.assertXCache(self.get(e, path), "MISS")
        self.assertXCache(self.get(grace, "/plain"), "MISS")
        time.sleep(3.3)
        o.stop()
        r = self.get(e, "/sie", timeout=10)
        self.assertOk(r, b"stale but good", "origin down, within stale-if-error=60")
        self.assertXCache(r, "HIT")
        self.assertIsNotNone(r.age, r.describe())
        self.assertGreaterEqual(r.age, 3, "served with its true Age\n" + r.describe())
        r = self.get(e, "/sie-short", timeout=10)
        self.assertEqual(r.status, 502, "stale for 2.3 s > stale-if-error=1: no stale copy\n" + r.describe())
        r = self.get(e, "/plain", timeout=10)
        self.assertEqual(r.status, 502, "no stale-if-error and no default grace\n" + r.describe())
        self.assertNotEqual(r.body, b"plain")
        r = self.get(grace, "/plain", timeout=10)
        self.assertOk(r, b"plain", "--default-grace 60 serves the stale copy")
        self.assertXCache(r, "HIT")

    def test_revalidation_directives_forbid_grace(self):
        # RFC 9111 4.2.4 / 5.2.2.2 / 5.2.2.8 / 5.2.2.10: must-revalidate, proxy-revalidate and
        # s-maxage (for a shared cache) forbid serving the response stale; no-cache forbids
        # serving it at all without validation. The configured default grace cannot override
        # that; the client gets an error (SHOULD be 504) instead.
        o = self.origin()
        rows = [
            ("/mr", "max-age=1, must-revalidate", False),
            ("/pr", "max-age=1, proxy-revalidate", False),
            ("/sm", "s-maxage=1", False),
            ("/nc", "no-cache, max-age=60", False),
            ("/ok", "max-age=1", True),  # control: the default grace applies
        ]
        for path, value, _ in rows:
            o.route(path, headers=cc(value, ETag='"g"', **NO_DATE), body=b"cached " + path.encode())
        e = self.edge(o, args=["--default-grace", "60"])
        for path, _, _ in rows:
            self.assertOk(self.get(e, path))
        time.sleep(2.2)
        o.stop()
        for path, value, stale_ok in rows:
            with self.subTest(cache_control=value):
                r = self.get(e, path, timeout=10)
                if stale_ok:
                    self.assertOk(r, b"cached " + path.encode(), "default grace")
                    self.assertXCache(r, "HIT")
                else:
                    self.assertIn(r.status, (502, 504), "%s: never served stale\n%s" % (value, r.describe()))
                    self.assertNotEqual(r.body, b"cached " + path.encode())

    def test_origin_answers_5xx(self):
        o = self.origin()
        state = {"broken": False}

        def make(status_when_broken, cache_control):
            def handler(req):
                if state["broken"]:
                    return status_when_broken, cc("no-store"), b"origin error %d" % status_when_broken
                return 200, cc(cache_control, **NO_DATE), b"good copy"
            return handler

        o.route("/e500", handler=make(500, "max-age=1, stale-if-error=60"))
        o.route("/e503", handler=make(503, "max-age=1, stale-if-error=60"))
        o.route("/e500-no-grace", handler=make(500, "max-age=1"))
        e = self.edge(o)
        for path in ("/e500", "/e503", "/e500-no-grace"):
            self.assertOk(self.get(e, path), b"good copy")
        time.sleep(2.2)
        state["broken"] = True
        for path in ("/e500", "/e503"):
            for i in range(2):
                r = self.get(e, path)
                self.assertOk(r, b"good copy", "%s answers 5xx: the stale copy (request %d)" % (path, i))
                self.assertXCache(r, "HIT")
            self.assertGreaterEqual(o.hits(path), 2, "the origin was asked")
        r = self.get(e, "/e500-no-grace")
        self.assertEqual(r.status, 500, "without stale-if-error the origin's answer goes through\n" + r.describe())
        self.assertEqual(r.body, b"origin error 500")

    def test_origin_times_out(self):
        o = self.origin()
        count = Counter()
        never = o.hold()  # released only when the origin closes: these answers come too late

        def handler(req):
            if count.next() == 1:
                return 200, cc("max-age=1, stale-if-error=60", **NO_DATE), b"before the timeout"
            never.wait()
            return 200, cc("max-age=60", **NO_DATE), b"too late"

        o.route("/t", handler=handler)
        o.route("/t-none", headers=cc("max-age=60"), body=b"too late", hold=never)
        e = self.edge(o, args=["--origin-timeout", "1000"])
        self.assertOk(self.get(e, "/t"), b"before the timeout")
        time.sleep(2.2)
        r = self.get(e, "/t", timeout=10)
        self.assertOk(r, b"before the timeout", "origin timed out: the stale copy")
        self.assertXCache(r, "HIT")
        # the origin was asked and still holds its answer: the stale copy is the timeout's doing
        wait_until(lambda: never.arrived >= 1, 5, what="the refresh of /t at the origin")
        self.assertEqual((never.waiting, never.timed_out), (never.arrived, 0), "the origin never answered")
        r = self.get(e, "/t-none", timeout=10)
        self.assertEqual(r.status, 504, "origin timeout without a stale copy\n" + r.describe())
        wait_until(lambda: o.hits("/t-none") == 1, 5, what="/t-none at the origin")
        self.assertEqual((never.waiting, never.timed_out), (never.arrived, 0), "the 504 came while the origin held its answer")


if __name__ == "__main__":
    print("run with: python3 tests/integration/run.py -k semantics_grace")

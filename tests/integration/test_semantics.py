"""
tests/integration/test_semantics.py — issue 3: HTTP caching semantics end to end (RFC 9111,
Fastly's surrogate headers, collapsing, grace, revalidation, Vary, Range, invalidation,
settings and header rules), against the real binary and a scripted origin on loopback that
counts requests and records the headers it got.

The expected behaviour is /work/notes/semantics-contract.md (X-Cache is HIT | MISS | PASS; a
collapsed waiter and a stale copy served are HIT) and RFC 9111; since issue 19 a stale copy the
origin confirmed with a 304 is REVALIDATED (nginx's label), not HIT.

Timing. Short lifetimes are 1-2 s and the tests sleep well past them (2.2 s for max-age=1,
4.3 s for 2 s lifetimes) while "long" lifetimes are 60 s, so a slow machine cannot flip an
outcome. Responses with max-age=1 carry no Date header (NO_DATE): a Date one second boundary
behind the proxy's clock would make them stale at once through the apparent age (RFC 9111
4.2.3). Every wait is bounded (harness.wait_until, socket timeouts, join timeouts). No
assertion is on how long a request took: an origin response that must come late is held by
a harness.Hold until the test has seen what it wanted (the waiters collapsed, /stats
"collapsed"; the stale copies served; the timeout's 504) and releases it.
"""

import json
import os
import tempfile
import threading
import time
from email.utils import formatdate, parsedate_to_datetime

import harness
from harness import request, scaled, wait_until

NO_DATE = {"Date": None}


def cc(value, **extra):
    headers = {"Cache-Control": value, "Content-Type": "text/plain"}
    headers.update({k if "-" in k else k.replace("_", "-"): v for k, v in extra.items()})
    return headers


def hdrs(**kw):
    """Header dict from keyword arguments: X_Foo="1" -> {"X-Foo": "1"}; None values kept."""
    return {k.replace("_", "-"): v for k, v in kw.items()}


def http_date(t):
    return formatdate(t, usegmt=True)


def parse_date(value):
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class Counter:
    """A thread-safe request counter for origin handlers."""

    def __init__(self):
        self.n = 0
        self._lock = threading.Lock()

    def next(self):
        with self._lock:
            self.n += 1
            return self.n


def run_concurrently(n, fn, timeout=15.0, while_running=None):
    """Run fn(i) for i in range(n) on n threads released together by a barrier; return the
    results in order. Raises AssertionError when a thread fails or does not finish in time.
    while_running(): called once the threads are started, before they are waited for (to
    watch them queue up and release what holds them)."""
    results = [None] * n
    errors = [None] * n
    barrier = threading.Barrier(n)

    def body(i):
        try:
            barrier.wait(scaled(5))
            results[i] = fn(i)
        except BaseException as exc:  # reported below
            errors[i] = exc

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    if while_running is not None:
        try:
            while_running()
        except BaseException:
            for t in threads:  # let them finish before the test's cleanup stops everything
                t.join(scaled(timeout))
            raise
    deadline = time.monotonic() + scaled(timeout)
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = sum(1 for t in threads if t.is_alive())
    if alive:
        raise AssertionError("%d of %d concurrent clients did not finish within %.1fs" % (alive, n, scaled(timeout)))
    for i, exc in enumerate(errors):
        if exc is not None:
            raise AssertionError("concurrent client %d failed: %r" % (i, exc))
    return results




class SemanticsCase(harness.TestCase):
    """Helpers: config files, an edgecache with settings, GET with a fixed Host."""

    def config_file(self, settings):
        fd, path = tempfile.mkstemp(prefix="edgecache-sem-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(settings, f)
        self.addCleanup(os.unlink, path)
        return path

    def edge(self, origin, settings=None, args=()):
        """An edgecache in front of origin; settings (dict) go into a --config file."""
        args = list(args)
        if settings is not None:
            args += ["--config", self.config_file(settings)]
        return self.edgecache([origin], args=args)

    def get(self, edge, path, headers=None, **kw):
        return request(edge.proxy_port, "GET", path, headers=headers, **kw)

    def collapsed(self, edge):
        """/stats "collapsed": requests that waited on another's fetch, counted as each joins
        it. Reading /stats takes a token: a global:read one is made on first use."""
        if getattr(edge, "stats_token", None) is None:
            edge.stats_token = harness.create_token(edge, "global:read")
        r = request(edge.admin_port, "GET", "/stats", headers={"Fastly-Key": edge.stats_token})
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)["collapsed"]

    def release_when_collapsed(self, edge, origin, path, hold, waiters):
        """while_running for run_concurrently: once the one fetch is held at the origin and
        `waiters` more requests have joined it, let the origin answer. Call it before the
        requests start: it reads /stats' count then."""
        base = self.collapsed(edge)

        def go():
            wait_until(lambda: hold.waiting == 1, 10, what="the fetch of %s held at the origin" % path)
            wait_until(lambda: self.collapsed(edge) - base >= waiters, 10, interval=0.05,
                       what="%d requests collapsed onto the fetch of %s" % (waiters, path))
            self.assertEqual(origin.hits(path), 1, "the waiters did not go to the origin")
            hold.release()
        return go

    def assertNotHit(self, resp, msg=None):
        got = (resp.header("x-cache") or "").split(",")[0].strip().upper()
        if got == "HIT":
            self.fail((msg + "\n" if msg else "") + "expected no HIT\n" + resp.describe())

    def assertOk(self, resp, body=None, msg=None):
        self.assertEqual(resp.status, 200, (msg + "\n" if msg else "") + resp.describe())
        if body is not None:
            self.assertEqual(resp.body, body, (msg + "\n" if msg else "") + resp.describe())


# ======================================================================================
# request collapsing


class Collapsing(SemanticsCase):

    def test_concurrent_misses_one_origin_fetch(self):
        o = self.origin()
        count = Counter()

        def handler(req):
            n = count.next()
            return 200, cc("max-age=60", ETag='"c%d"' % n), b"collapsed body from fetch %d\n" % n * 50

        held = harness.Hold()
        o.route("/slow", handler=handler, hold=held)
        e = self.edge(o)
        n = 10
        # the one fetch is held until the 9 others have joined it; then they are all woken by it
        results = run_concurrently(n, lambda i: self.get(e, "/slow", timeout=10),
                                   while_running=self.release_when_collapsed(e, o, "/slow", held, n - 1))
        self.assertEqual(o.hits("/slow"), 1, "10 concurrent misses for one key: one origin fetch")
        for r in results:
            self.assertOk(r, results[0].body)
        self.assertEqual(results[0].body, b"collapsed body from fetch 1\n" * 50)
        xc = sorted((r.header("x-cache") or "").upper() for r in results)
        self.assertEqual(xc.count("MISS"), 1, "one MISS (the fetcher), the waiters are HITs: %s" % xc)
        self.assertEqual(xc.count("HIT"), n - 1, "collapsed waiters get X-Cache: HIT: %s" % xc)
        self.assertXCache(self.get(e, "/slow"), "HIT")
        self.assertEqual(o.hits("/slow"), 1)

        # waiters get the same status too (a cacheable 404)
        held = harness.Hold()
        o.route("/slow-404", status=404, headers=cc("max-age=60"), body=b"not here", hold=held)
        results = run_concurrently(5, lambda i: self.get(e, "/slow-404", timeout=10),
                                   while_running=self.release_when_collapsed(e, o, "/slow-404", held, 4))
        self.assertEqual(o.hits("/slow-404"), 1, "one origin fetch for a cacheable 404 as well")
        for r in results:
            self.assertEqual((r.status, r.body), (404, b"not here"), r.describe())

    def test_collapsed_waiters_respect_vary(self):
        # a waiter may only get the fetched response when its Vary'd request headers match
        o = self.origin()

        def handler(req):
            ae = req.headers.get("accept-encoding", "")
            kind = b"br" if "br" in ae else b"gzip" if "gzip" in ae else b"identity"
            return 200, cc("max-age=60", Vary="Accept-Encoding"), b"variant " + kind

        o.route("/cv", handler=handler, delay=1.0)
        e = self.edge(o)
        encodings = ["gzip", "br", "gzip", "br", "gzip", "br"]
        results = run_concurrently(len(encodings), lambda i: self.get(
            e, "/cv", {"Accept-Encoding": encodings[i]}, timeout=10))
        for ae, r in zip(encodings, results):
            self.assertOk(r, b"variant " + ae.encode(), "client with Accept-Encoding: %s" % ae)
        self.assertLessEqual(o.hits("/cv"), 2 + 4, o.hits("/cv"))
        for ae in ("gzip", "br"):
            r = self.get(e, "/cv", {"Accept-Encoding": ae})
            self.assertOk(r, b"variant " + ae.encode())
            self.assertXCache(r, "HIT")

    def test_uncacheable_response_releases_waiters_then_hit_for_pass(self):
        o = self.origin()
        count = Counter()

        def handler(req):
            n = count.next()
            return 200, cc("no-store"), b"private answer %d" % n

        held = harness.Hold()
        o.route("/nostore", handler=handler, hold=held)
        e = self.edge(o)
        n = 5
        results = run_concurrently(n, lambda i: self.get(e, "/nostore", timeout=10),
                                   while_running=self.release_when_collapsed(e, o, "/nostore", held, n - 1))
        for r in results:
            self.assertEqual(r.status, 200, r.describe())
            self.assertTrue(r.body.startswith(b"private answer "), r.describe())
            self.assertNotHit(r, "a no-store response is never served from the cache")
        self.assertEqual(o.hits("/nostore"), n,
                         "an uncacheable response releases the waiters to fetch on their own (one origin "
                         "request per client)")
        self.assertEqual(len({r.body for r in results}), n, "every client got its own origin response")

        # hit-for-pass: the key is remembered as uncacheable, the next requests do not queue:
        # all n reach the origin while it holds every answer, so none waits behind another
        held = harness.Hold()
        o.route("/nostore", handler=handler, hold=held)
        collapsed_before = self.collapsed(e)

        def all_at_the_origin():
            wait_until(lambda: held.waiting == n, 10,
                       what="%d hit-for-pass requests at the origin at once (%d there)" % (n, held.waiting))
            held.release()

        results = run_concurrently(n, lambda i: self.get(e, "/nostore", timeout=10), while_running=all_at_the_origin)
        for r in results:
            self.assertEqual(r.status, 200, r.describe())
            self.assertXCache(r, "PASS", "hit-for-pass")
        self.assertEqual(o.hits("/nostore"), 2 * n, "hit-for-pass: every request goes to the origin")
        self.assertEqual(self.collapsed(e), collapsed_before, "hit-for-pass requests are not collapsed")


# ======================================================================================
# grace: stale-while-revalidate, stale-if-error


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


# ======================================================================================
# revalidation


REVAL_HOST = {"Host": "reval.example.test"}  # fixed: the listening port changes on restart


class Revalidation(SemanticsCase):

    def _check_revalidated(self, e, o, path, body, validator_header, validator_value):
        r = self.get(e, path, REVAL_HOST)
        self.assertXCache(r, "MISS")
        self.assertOk(r, body)
        time.sleep(2.2)
        r = self.get(e, path, REVAL_HOST)
        self.assertEqual(o.hits(path), 2, "the stale object was revalidated")
        cond = o.requests_for(path)[1]
        self.assertEqual(cond.method, "GET")
        got = cond.headers.get(validator_header.lower())
        self.assertIsNotNone(got, "the origin sees %s: %r" % (validator_header, cond.headers))
        if validator_header == "If-Modified-Since":
            self.assertEqual(parse_date(got), parse_date(validator_value), got)
        else:
            self.assertEqual(got, validator_value)
        self.assertOk(r, body, "304: the stored body is served, not refetched")
        self.assertXCache(r, "REVALIDATED", "a 304-revalidated object says so")
        self.assertEqual(r.header("x-version"), "2", "headers of the 304 replace the stored ones\n" + r.describe())
        self.assertEqual(r.header("x-keep"), "kept", "headers absent from the 304 are kept\n" + r.describe())
        self.assertEqual(r.header("content-type"), "text/plain")
        self.assertIsNotNone(r.age, r.describe())
        self.assertLessEqual(r.age, 1, "the age restarts at the 304\n" + r.describe())
        for i in range(2):
            r = self.get(e, path, REVAL_HOST)
            self.assertXCache(r, "HIT", "TTL refreshed by the 304 (max-age=60)")
            self.assertOk(r, body)
        self.assertEqual(o.hits(path), 2)
        # the refreshed headers and TTL were written to LMDB
        self.assertEqual(e.restart(), 0, e.stderr_tail())
        r = self.get(e, path, REVAL_HOST)
        self.assertXCache(r, "HIT", "after a restart the refreshed object is still fresh")
        self.assertOk(r, body)
        self.assertEqual(r.header("x-version"), "2", r.describe())
        self.assertEqual(o.hits(path), 2)

    def test_etag(self):
        o = self.origin()
        body = b"etag body " * 500

        def handler(req):
            if req.headers.get("if-none-match") == '"e1"':
                return 304, hdrs(Cache_Control="max-age=60", ETag='"e1"', X_Version="2", Date=None), b""
            return 200, hdrs(Cache_Control="max-age=1", ETag='"e1"', X_Version="1", X_Keep="kept",
                             Content_Type="text/plain", Date=None), body

        o.route("/etag", handler=handler)
        e = self.edge(o)
        self._check_revalidated(e, o, "/etag", body, "If-None-Match", '"e1"')

    def test_last_modified(self):
        o = self.origin()
        body = b"last-modified body " * 300
        lm = http_date(time.time() - 3600)

        def handler(req):
            ims = parse_date(req.headers.get("if-modified-since"))
            if ims is not None and ims >= parse_date(lm):
                return 304, hdrs(Cache_Control="max-age=60", X_Version="2", Date=None), b""
            return 200, hdrs(Cache_Control="max-age=1", Last_Modified=lm, X_Version="1", X_Keep="kept",
                             Content_Type="text/plain", Date=None), body

        o.route("/lm", handler=handler)
        e = self.edge(o)
        self._check_revalidated(e, o, "/lm", body, "If-Modified-Since", lm)

    def test_304_content_length_not_copied(self):
        # RFC 9111 3.2: a 304's Content-Length never replaces the stored one
        o = self.origin()
        body = b"0123456789" * 100

        def handler(req):
            if req.headers.get("if-none-match") == '"cl"':
                return 304, hdrs(Cache_Control="max-age=60", ETag='"cl"', Content_Length="0", Date=None), b""
            return 200, hdrs(Cache_Control="max-age=1", ETag='"cl"', Content_Type="text/plain", Date=None), body

        o.route("/cl304", handler=handler)
        e = self.edge(o)
        self.assertOk(self.get(e, "/cl304"), body)
        time.sleep(2.2)
        for i in range(2):
            r = self.get(e, "/cl304")
            self.assertOk(r, body, "request %d after a 304 with Content-Length: 0" % i)
            self.assertEqual(r.header("content-length"), str(len(body)), r.describe())
        self.assertEqual(o.hits("/cl304"), 2)

    def test_changed_resource_replaces_the_object(self):
        o = self.origin()
        count = Counter()

        def handler(req):
            if count.next() == 1:
                return 200, cc("max-age=1", ETag='"old"', **NO_DATE), b"old body"
            return 200, cc("max-age=60", ETag='"new"', **NO_DATE), b"new body"

        o.route("/changed", handler=handler)
        e = self.edge(o)
        self.assertOk(self.get(e, "/changed"), b"old body")
        time.sleep(2.2)
        r = self.get(e, "/changed")
        self.assertOk(r, b"new body", "a 200 answer to the conditional request replaces the object")
        self.assertEqual(o.requests_for("/changed")[1].headers.get("if-none-match"), '"old"')
        r = self.get(e, "/changed")
        self.assertXCache(r, "HIT")
        self.assertOk(r, b"new body")
        self.assertEqual(r.header("etag"), '"new"')
        self.assertEqual(o.hits("/changed"), 2)

    def test_no_cache_response_stored_and_revalidated_every_time(self):
        o = self.origin()
        body = b"revalidate me"

        def handler(req):
            if req.headers.get("if-none-match") == '"nc"':
                return 304, hdrs(Cache_Control="no-cache, max-age=60", ETag='"nc"'), b""
            return 200, cc("no-cache, max-age=60", ETag='"nc"'), body

        o.route("/no-cache", handler=handler)
        e = self.edge(o)
        self.assertOk(self.get(e, "/no-cache"), body)
        for i in range(2):
            r = self.get(e, "/no-cache")
            self.assertOk(r, body)
            self.assertEqual(o.hits("/no-cache"), i + 2, "no-cache: revalidated on every use")
            self.assertEqual(o.requests_for("/no-cache")[-1].headers.get("if-none-match"), '"nc"',
                             "the revalidation is conditional (the body was stored)")
            self.assertXCache(r, "REVALIDATED", "served from the cache after the origin's 304")


class ClientConditional(SemanticsCase):

    def test_304_from_the_cache(self):
        o = self.origin()
        lm = http_date(time.time() - 3600)
        body = b"conditional body"
        o.route("/cond", headers=cc("max-age=60", ETag='"c1"', **{"Last-Modified": lm}), body=body)
        e = self.edge(o)
        self.assertOk(self.get(e, "/cond"), body)
        self.assertXCache(self.get(e, "/cond"), "HIT")
        cases = [
            ({"If-None-Match": '"c1"'}, 304),
            ({"If-None-Match": 'W/"c1"'}, 304),  # weak comparison for If-None-Match
            ({"If-None-Match": '"x", "c1"'}, 304),
            ({"If-None-Match": "*"}, 304),
            ({"If-None-Match": '"other"'}, 200),
            ({"If-Modified-Since": lm}, 304),
            ({"If-Modified-Since": http_date(time.time())}, 304),
            ({"If-Modified-Since": http_date(time.time() - 7200)}, 200),
            # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3)
            ({"If-None-Match": '"other"', "If-Modified-Since": lm}, 200),
        ]
        for headers, status in cases:
            with self.subTest(headers=headers):
                r = self.get(e, "/cond", headers)
                self.assertEqual(r.status, status, r.describe())
                if status == 304:
                    self.assertEqual(r.body, b"")
                    self.assertEqual(r.header("etag"), '"c1"', "a 304 carries the ETag\n" + r.describe())
                else:
                    self.assertEqual(r.body, body)
        self.assertEqual(o.hits("/cond"), 1, "every conditional was answered by the cache")

    def test_conditional_on_a_miss_never_stores_an_empty_body(self):
        o = self.origin()
        body = b"full representation"

        def handler(req):
            if req.headers.get("if-none-match") == '"m1"':
                return 304, hdrs(Cache_Control="max-age=60", ETag='"m1"'), b""
            return 200, cc("max-age=60", ETag='"m1"'), body

        o.route("/cmiss", handler=handler)
        e = self.edge(o)
        r = self.get(e, "/cmiss", {"If-None-Match": '"m1"'})
        self.assertIn(r.status, (200, 304), r.describe())
        if r.status == 200:
            self.assertEqual(r.body, body)
        for i in range(2):
            r = self.get(e, "/cmiss")
            self.assertOk(r, body, "a plain GET after a conditional miss gets the whole body")
        self.assertXCache(r, "HIT")


# ======================================================================================
# Vary


class VaryVariants(SemanticsCase):

    def test_accept_encoding_normalized(self):
        o = self.origin()

        def handler(req):
            ae = req.headers.get("accept-encoding", "")
            kind = "br" if "br" in ae else "gzip" if "gzip" in ae else "identity"
            return 200, cc("max-age=60", Vary="Accept-Encoding", X_Kind=kind), b"body for " + kind.encode()

        o.route("/v", handler=handler)
        e = self.edge(o)
        steps = [  # (Accept-Encoding or None, expected kind, X-Cache, origin hits after)
            ("gzip, deflate", "gzip", "MISS", 1),
            ("gzip", "gzip", "HIT", 1),
            ("deflate, gzip;q=0.8", "gzip", "HIT", 1),
            ("br", "br", "MISS", 2),
            ("gzip, deflate, br", "br", "HIT", 2),
            ("gzip;q=0.5, br;q=1.0", "br", "HIT", 2),  # "contains br" (contract), q-values included
            (None, "identity", "MISS", 3),
            ("identity", "identity", "HIT", 3),
            ("deflate", "identity", "HIT", 3),
            ("gzip", "gzip", "HIT", 3),
            ("br", "br", "HIT", 3),
            (None, "identity", "HIT", 3),
        ]
        for ae, kind, xcache, hits in steps:
            with self.subTest(accept_encoding=ae):
                r = self.get(e, "/v", {"Accept-Encoding": ae} if ae is not None else None)
                self.assertOk(r, b"body for " + kind.encode())
                self.assertXCache(r, xcache)
                self.assertEqual(o.hits("/v"), hits)
        # a variant must never reach a client whose Accept-Encoding it does not fit: with
        # "br;q=1.0" alone the origin may answer brotli; a client without Accept-Encoding
        # must not get that stored response
        o.route("/v2", handler=handler)
        r = self.get(e, "/v2", {"Accept-Encoding": "br;q=1.0"})
        self.assertOk(r, b"body for br")
        r = self.get(e, "/v2")
        self.assertOk(r, b"body for identity", "no Accept-Encoding: never the br variant")
        r = self.get(e, "/v2", {"Accept-Encoding": "br"})
        self.assertOk(r, b"body for br")
        # purging the URL removes every variant
        p = request(e.proxy_port, "PURGE", "/v")
        self.assertEqual(p.status, 200, p.describe())
        for ae in ("gzip", "br", None):
            with self.subTest(after_purge=ae):
                r = self.get(e, "/v", {"Accept-Encoding": ae} if ae is not None else None)
                self.assertXCache(r, "MISS", "purging the URL removes every variant")
        self.assertEqual(o.hits("/v"), 6)

    def test_custom_header(self):
        o = self.origin()

        def handler(req):
            lang = req.headers.get("x-lang", "-")
            dev = req.headers.get("x-dev", "-")
            return 200, cc("max-age=60", Vary="X-Lang, x-dev"), ("lang=%s dev=%s" % (lang, dev)).encode()

        o.route("/lang", handler=handler)
        e = self.edge(o)
        steps = [
            ({"X-Lang": "en"}, b"lang=en dev=-", "MISS"),
            ({"X-Lang": "en"}, b"lang=en dev=-", "HIT"),
            ({"x-lang": "en"}, b"lang=en dev=-", "HIT"),  # header names are case-insensitive
            ({"X-Lang": "fr"}, b"lang=fr dev=-", "MISS"),
            ({"X-Lang": "EN"}, b"lang=EN dev=-", "MISS"),  # values keep their case
            ({}, b"lang=- dev=-", "MISS"),
            ({}, b"lang=- dev=-", "HIT"),
            ({"X-Lang": "en", "X-Dev": "phone"}, b"lang=en dev=phone", "MISS"),
            ({"X-Lang": "en", "X-Dev": "phone"}, b"lang=en dev=phone", "HIT"),
            ({"X-Lang": "fr"}, b"lang=fr dev=-", "HIT"),
            ({"X-Lang": "en"}, b"lang=en dev=-", "HIT"),
        ]
        for headers, body, xcache in steps:
            with self.subTest(headers=headers):
                r = self.get(e, "/lang", headers)
                self.assertOk(r, body)
                self.assertXCache(r, xcache)
        self.assertEqual(o.hits("/lang"), 5)

        # Vary given on two header lines: both fields count
        o.route("/lang2", handler=lambda req: (200, [("Cache-Control", "max-age=60"), ("Vary", "X-Lang"),
                                                     ("Vary", "X-Dev")],
                                                ("%s/%s" % (req.headers.get("x-lang", "-"),
                                                            req.headers.get("x-dev", "-"))).encode()))
        for headers, body, xcache in [({"X-Lang": "en", "X-Dev": "a"}, b"en/a", "MISS"),
                                      ({"X-Lang": "en", "X-Dev": "b"}, b"en/b", "MISS"),
                                      ({"X-Lang": "en", "X-Dev": "a"}, b"en/a", "HIT")]:
            with self.subTest(two_vary_lines=headers):
                r = self.get(e, "/lang2", headers)
                self.assertOk(r, body)
                self.assertXCache(r, xcache)

    def test_vary_star_not_stored(self):
        o = self.origin()
        o.route("/star", headers=cc("max-age=60", Vary="*"), body=b"never the same")
        e = self.edge(o)
        for i in range(3):
            r = self.get(e, "/star")
            self.assertOk(r, b"never the same")
            self.assertXCache(r, "PASS", "Vary: * is not stored")
            self.assertEqual(o.hits("/star"), i + 1)


# ======================================================================================
# Range


class Ranges(SemanticsCase):

    def test_ranges_from_the_cache(self):
        o = self.origin()
        body = bytes(range(256)) * 40
        n = len(body)
        lm = http_date(time.time() - 3600)
        o.route("/r", headers=hdrs(Cache_Control="max-age=60", ETag='"r1"', Last_Modified=lm,
                                   Content_Type="application/octet-stream"), body=body)
        e = self.edge(o)
        r = self.get(e, "/r", {"Range": "bytes=0-99"})
        self.assertOk(r, body, "a miss with Range: the full object")
        self.assertIsNone(o.requests_for("/r")[0].headers.get("range"), "the origin never sees Range")
        cases = [
            ("bytes=0-99", 0, 99),
            ("bytes=100-", 100, n - 1),
            ("bytes=-500", n - 500, n - 1),
            ("bytes=10000-20000", 10000, n - 1),  # last-pos past the end is clamped
            ("bytes=5-5", 5, 5),
            ("bytes=-20000", 0, n - 1),  # suffix longer than the object: all of it
        ]
        for rng, first, last in cases:
            with self.subTest(range=rng):
                r = self.get(e, "/r", {"Range": rng})
                self.assertEqual(r.status, 206, r.describe())
                self.assertEqual(r.header("content-range"), "bytes %d-%d/%d" % (first, last, n), r.describe())
                self.assertEqual(r.body, body[first:last + 1])
                self.assertEqual(r.header("content-length"), str(last - first + 1))
                self.assertXCache(r, "HIT")
        for rng in ("bytes=20000-30000", "bytes=%d-" % n):
            with self.subTest(range=rng):
                r = self.get(e, "/r", {"Range": rng})
                self.assertEqual(r.status, 416, r.describe())
                self.assertEqual(r.header("content-range"), "bytes */%d" % n, r.describe())
        for rng in ("bytes=0-1,5-6", "bytes=abc", "bytes=9-3", "items=0-5"):
            with self.subTest(full=rng):
                r = self.get(e, "/r", {"Range": rng})
                self.assertOk(r, body, "several or malformed ranges: the full 200")
        if_range = [
            ('"r1"', 206),
            ('"other"', 200),
            ('W/"r1"', 200),  # If-Range needs a strong match
            (lm, 206),
            (http_date(time.time() - 7200), 200),
        ]
        for value, status in if_range:
            with self.subTest(if_range=value):
                r = self.get(e, "/r", {"Range": "bytes=0-9", "If-Range": value})
                self.assertEqual(r.status, status, r.describe())
                self.assertEqual(r.body, body[:10] if status == 206 else body)
        self.assertEqual(o.hits("/r"), 1, "every range came from the one cached object")


# ======================================================================================
# unsafe methods


INV_HOST = "inv.example.test"


class UnsafeInvalidation(SemanticsCase):

    def test_unsafe_methods_invalidate(self):
        o = self.origin()
        count = Counter()

        def handler(req):
            if req.method in ("GET", "HEAD"):
                return 200, cc("max-age=60"), b"get %d" % count.next()
            if req.path.endswith("-fails"):
                return 500, cc("no-store"), b"failed"
            extra = {}
            if req.path == "/form":
                extra = {"Location": "http://%s/target-a" % INV_HOST, "Content-Location": "/target-b"}
            if req.path == "/form-elsewhere":
                extra = {"Location": "http://other.example.test/target-c"}
            return 201 if extra else 200, dict(cc("no-store"), **extra), b"done " + req.body

        o.route_prefix("/", handler=handler)
        e = self.edge(o)
        host = {"Host": INV_HOST}

        def prime(path):
            self.get(e, path, host)
            r = self.get(e, path, host)
            self.assertXCache(r, "HIT", "primed " + path)

        for method in ("POST", "PUT", "DELETE", "PATCH"):
            with self.subTest(method=method):
                path = "/res-" + method.lower()
                prime(path)
                r = request(e.proxy_port, method, path, headers=host, body=b"payload")
                self.assertEqual(r.status, 200, r.describe())
                self.assertEqual(r.body, b"done payload")
                self.assertXCache(r, "PASS")
                self.assertEqual(o.requests_for(path)[-1].method, method, "passed to the origin")
                self.assertEqual(o.requests_for(path)[-1].body, b"payload")
                r = self.get(e, path, host)
                self.assertXCache(r, "MISS", "a 2xx answer to %s invalidates the URL" % method)

        # every variant of the URL goes
        o.route("/res-vary", handler=lambda req: (
            (200, cc("max-age=60", Vary="Accept-Encoding"), b"v " + req.headers.get("accept-encoding", "-").encode())
            if req.method == "GET" else (204, cc("no-store"), b"")))
        for ae in ("gzip", "br"):
            h = dict(host, **{"Accept-Encoding": ae})
            self.get(e, "/res-vary", h)
            self.assertXCache(self.get(e, "/res-vary", h), "HIT", "variant " + ae)
        r = request(e.proxy_port, "DELETE", "/res-vary", headers=host)
        self.assertEqual(r.status, 204, r.describe())
        for ae in ("gzip", "br"):
            r = self.get(e, "/res-vary", dict(host, **{"Accept-Encoding": ae}))
            self.assertXCache(r, "MISS", "DELETE invalidates every variant (%s)" % ae)

        prime("/res-fails")
        r = request(e.proxy_port, "POST", "/res-fails", headers=host, body=b"x")
        self.assertEqual(r.status, 500, r.describe())
        self.assertXCache(self.get(e, "/res-fails", host), "HIT", "a 5xx answer does not invalidate")

        for path in ("/target-a", "/target-b", "/target-c"):
            prime(path)
        r = request(e.proxy_port, "POST", "/form", headers=host, body=b"f")
        self.assertEqual(r.status, 201, r.describe())
        self.assertXCache(self.get(e, "/target-a", host), "MISS", "Location on the same host is invalidated")
        self.assertXCache(self.get(e, "/target-b", host), "MISS", "Content-Location (a path) is invalidated")
        r = request(e.proxy_port, "POST", "/form-elsewhere", headers=host, body=b"f")
        self.assertEqual(r.status, 201, r.describe())
        self.assertXCache(self.get(e, "/target-c", host), "HIT", "a Location on another host is not ours")


# ======================================================================================
# freshness precedence


class Precedence(SemanticsCase):
    """Every row is primed, checked HIT at once, and checked again after 4.3 s: the winning
    source gives either 60 s (still HIT) or 2 s (refetched) while the losers say the opposite."""

    def test_precedence_table(self):
        o = self.origin()
        now = time.time()
        d = http_date(now)
        long_ago = http_date(now - 10 * 86400)
        rows = [  # (name, headers, fresh after 4.3 s?, edge)
            ("surrogate-control wins (long)",
             {"Surrogate-Control": "max-age=60", "CDN-Cache-Control": "max-age=2",
              "Cache-Control": "s-maxage=2, max-age=2"}, True, 1),
            ("surrogate-control wins (short)",
             {"Surrogate-Control": "max-age=2", "CDN-Cache-Control": "max-age=60",
              "Cache-Control": "s-maxage=60, max-age=60"}, False, 1),
            ("cdn-cache-control wins (long)",
             {"CDN-Cache-Control": "max-age=60", "Cache-Control": "s-maxage=2, max-age=2"}, True, 1),
            ("cdn-cache-control wins (short)",
             {"CDN-Cache-Control": "max-age=2", "Cache-Control": "s-maxage=60, max-age=60"}, False, 1),
            ("s-maxage wins (long)", {"Cache-Control": "s-maxage=60, max-age=2"}, True, 1),
            ("s-maxage wins (short)", {"Cache-Control": "s-maxage=2, max-age=60"}, False, 1),
            ("max-age wins (long)", {"Cache-Control": "max-age=60", "Date": d, "Expires": http_date(now + 2)},
             True, 1),
            ("max-age wins (short)", {"Cache-Control": "max-age=2", "Date": d, "Expires": http_date(now + 60)},
             False, 1),
            ("expires wins (long)", {"Date": d, "Expires": http_date(now + 60), "Last-Modified": http_date(now - 20)},
             True, 1),
            ("expires wins (short)", {"Date": d, "Expires": http_date(now + 2), "Last-Modified": long_ago},
             False, 1),
            ("expires is relative to date", {"Date": http_date(now + 1000), "Expires": http_date(now + 1002)},
             False, 1),
            ("heuristic wins over default_ttl 2", {"Date": d, "Last-Modified": http_date(now - 1000)}, True, 1),
            ("default_ttl 2", {"Date": d}, False, 1),
            ("upstream Age counts", {"Cache-Control": "max-age=60", "Age": "57", "Date": None}, False, 1),
            ("heuristic capped by max_heuristic_ttl 2", {"Date": d, "Last-Modified": long_ago}, False, 2),
            ("default_ttl 60", {"Date": d}, True, 2),
        ]
        e1 = self.edge(o, args=["--default-ttl", "2"])
        e2 = self.edge(o, args=["--default-ttl", "60", "--max-heuristic-ttl", "2"])
        edges = {1: e1, 2: e2}
        paths = {}
        for i, (name, headers, fresh, which) in enumerate(rows):
            path = "/p%d" % i
            paths[name] = path
            h = {"Content-Type": "text/plain", "Date": None}
            h.update(headers)
            o.route(path, headers=h, body=("row " + name).encode())
        for name, headers, fresh, which in rows:
            path = paths[name]
            with self.subTest(row=name, phase="prime"):
                self.assertXCache(self.get(edges[which], path), "MISS")
                r = self.get(edges[which], path)
                self.assertXCache(r, "HIT", "stored and fresh at first")
                if name == "upstream Age counts":
                    self.assertGreaterEqual(r.age or 0, 57, "upstream Age is honoured\n" + r.describe())
        time.sleep(4.3)
        for name, headers, fresh, which in rows:
            path = paths[name]
            with self.subTest(row=name):
                r = self.get(edges[which], path)
                self.assertOk(r, ("row " + name).encode())
                if fresh:
                    self.assertXCache(r, "HIT", name + ": still fresh after 4.3 s")
                    self.assertEqual(o.hits(path), 1)
                else:
                    self.assertXCache(r, "MISS", name + ": stale after 4.3 s")
                    self.assertEqual(o.hits(path), 2)

    def test_invalid_freshness_is_stale(self):
        o = self.origin()
        d = http_date(time.time())
        rows = [
            ("invalid Expires", {"Date": d, "Expires": "0"}),
            ("Expires not a date", {"Date": d, "Expires": "tomorrow"}),
            ("max-age=0", {"Cache-Control": "max-age=0"}),
            ("malformed max-age", {"Cache-Control": "max-age=abc"}),
        ]
        e = self.edge(o)
        for i, (name, headers) in enumerate(rows):
            path = "/inv%d" % i
            o.route(path, headers=dict(headers, **{"Content-Type": "text/plain"}), body=b"x")
            with self.subTest(row=name):
                self.assertOk(self.get(e, path))
                r = self.get(e, path)
                self.assertOk(r)
                self.assertNotHit(r, name + ": stale at once")
                self.assertEqual(o.hits(path), 2, name + ": refetched at once")


class MalformedFreshness(SemanticsCase):
    """Freshness headers an origin got wrong. RFC 9213 2.1: CDN-Cache-Control is an RFC 8941
    Dictionary; one that does not parse, or whose directive has the wrong type, is ignored as
    a whole and Cache-Control decides; a valid one (parameters and repeated lines included)
    replaces Cache-Control. In Cache-Control / Surrogate-Control, broken quoting never hides
    a restrictive directive. Every row is told apart by the second request alone: HIT (stored
    with a long lifetime) or not."""

    def test_invalid_field_falls_back_to_cache_control(self):
        o = self.origin()
        rows = [  # (name, header list, HIT on the second request?)
            ("trailing empty member: cc no-store applies",
             [("CDN-Cache-Control", "max-age=60, ,"), ("Cache-Control", "no-store")], False),
            ("upper-case key: cc no-store applies",
             [("CDN-Cache-Control", "Max-Age=60"), ("Cache-Control", "no-store")], False),
            ("decimal max-age: cc max-age=60 applies",
             [("CDN-Cache-Control", "max-age=1.5"), ("Cache-Control", "max-age=60")], True),
            ("negative max-age: cc max-age=60 applies",
             [("CDN-Cache-Control", "max-age=-1"), ("Cache-Control", "max-age=60")], True),
            ("string max-age: cc no-store applies",
             [("CDN-Cache-Control", 'max-age="60"'), ("Cache-Control", "no-store")], False),
            ("parameters are fine: cdn max-age=60 wins over cc no-store",
             [("CDN-Cache-Control", "max-age=60;a=1"), ("Cache-Control", "no-store")], True),
            ("lines combined, the last max-age wins over cc no-store",
             [("CDN-Cache-Control", "max-age=0"), ("CDN-Cache-Control", "max-age=600"),
              ("Cache-Control", "no-store")], True),
            ("a bad second line spoils the field: cc no-store applies",
             [("CDN-Cache-Control", "max-age=60"), ("CDN-Cache-Control", "s-maxage=?1"),
              ("Cache-Control", "no-store")], False),
        ]
        e = self.edge(o)
        for i, (name, headers, hit) in enumerate(rows):
            path = "/cdn%d" % i
            o.route(path, headers=headers + [("Content-Type", "text/plain")], body=b"row %d" % i)
            with self.subTest(row=name):
                self.assertOk(self.get(e, path), b"row %d" % i)
                r = self.get(e, path)
                self.assertOk(r, b"row %d" % i)
                if hit:
                    self.assertXCache(r, "HIT", name)
                    self.assertEqual(o.hits(path), 1, name)
                else:
                    self.assertNotHit(r, name)
                    self.assertEqual(o.hits(path), 2, name)

    def test_unterminated_quote_in_cache_control_hides_nothing_restrictive(self):
        # where an unclosed quoted-string was meant to end is unknown: a no-store or private
        # after it still counts (Cache-Control and Surrogate-Control alike)
        o = self.origin()
        rows = [
            ("cache-control private", [("Cache-Control", 'max-age=60, community="UCI, private')]),
            ("cache-control no-store", [("Cache-Control", 'max-age=60, ext="a\\", no-store')]),
            ("surrogate-control no-store",
             [("Surrogate-Control", 'max-age=60;edge1="x, no-store'), ("Cache-Control", "max-age=60")]),
        ]
        e = self.edge(o)
        for i, (name, headers) in enumerate(rows):
            path = "/uq%d" % i
            o.route(path, headers=headers + [("Content-Type", "text/plain")], body=b"uq %d" % i)
            with self.subTest(row=name):
                self.assertOk(self.get(e, path), b"uq %d" % i)
                r = self.get(e, path)
                self.assertOk(r, b"uq %d" % i)
                self.assertNotHit(r, name + ": not stored")
                self.assertEqual(o.hits(path), 2, name)


# ======================================================================================
# settings


class Settings(SemanticsCase):

    def test_surrogate_headers_stripped(self):
        o = self.origin()
        headers = cc("max-age=60", **{"Surrogate-Control": "max-age=60", "Surrogate-Key": "k1 k2"})
        o.route("/sur", headers=headers, body=b"s")
        e = self.edge(o)
        keep = self.edge(o, {"keep_surrogate_headers": True})
        for xcache in ("MISS", "HIT"):
            r = self.get(e, "/sur")
            self.assertXCache(r, xcache)
            self.assertIsNone(r.header("surrogate-control"), r.describe())
            self.assertIsNone(r.header("surrogate-key"), r.describe())
            r = self.get(keep, "/sur")
            self.assertXCache(r, xcache)
            self.assertEqual(r.header("surrogate-control"), "max-age=60", "keep_surrogate_headers\n" + r.describe())
            self.assertEqual(r.header("surrogate-key"), "k1 k2", r.describe())

    def test_client_no_cache_ignored_by_default_obeyed_with_setting(self):
        o = self.origin()
        count = Counter()

        def handler(req):
            n = count.next()
            if req.headers.get("if-none-match") == '"n"':
                return 304, hdrs(Cache_Control="max-age=60", ETag='"n"'), b""
            return 200, cc("max-age=60", ETag='"n"'), b"object %d" % n

        o.route("/ncq", handler=handler)
        e = self.edge(o)
        self.assertXCache(self.get(e, "/ncq"), "MISS")
        for h in ({"Cache-Control": "no-cache"}, {"Cache-Control": "max-age=0"}, {"Pragma": "no-cache"}):
            with self.subTest(default=h):
                r = self.get(e, "/ncq", h)
                self.assertXCache(r, "HIT", "request %r ignored by default" % h)
        self.assertEqual(o.hits("/ncq"), 1)

        o2 = self.origin()
        o2.route("/ncq", handler=handler)
        obey = self.edge(o2, {"obey_client_no_cache": True})
        self.assertXCache(self.get(obey, "/ncq"), "MISS")
        for i, h in enumerate(({"Cache-Control": "no-cache"}, {"Cache-Control": "max-age=0"})):
            with self.subTest(obey=h):
                r = self.get(obey, "/ncq", h)
                self.assertOk(r)
                self.assertEqual(o2.hits("/ncq"), i + 2, "request %r forces a revalidation" % h)
        self.assertXCache(self.get(obey, "/ncq"), "HIT", "a plain request is still a HIT")
        self.assertEqual(o2.hits("/ncq"), 3)

    def test_authorization_requests(self):
        # RFC 9111 3.5: a shared cache stores a response to a request with Authorization only
        # when the response has public, s-maxage or must-revalidate
        o = self.origin()
        rows = [
            ("/auth-plain", "max-age=60", False),
            ("/auth-public", "public, max-age=60", True),
            ("/auth-smaxage", "s-maxage=60", True),
            ("/auth-mr", "max-age=60, must-revalidate", True),
        ]
        for path, value, _ in rows:
            o.route(path, headers=cc(value), body=b"for " + path.encode())
        e = self.edge(o)
        auth = {"Authorization": "Basic dXNlcjpwYXNz"}
        for path, value, stored in rows:
            with self.subTest(cache_control=value):
                for i in range(2):
                    r = self.get(e, path, auth)
                    self.assertOk(r, b"for " + path.encode())
                if stored:
                    self.assertXCache(r, "HIT", value + " allows storing an authorized response")
                    self.assertEqual(o.hits(path), 1)
                else:
                    self.assertXCache(r, "PASS", "an authorized response without public/s-maxage/must-revalidate")
                    self.assertEqual(o.hits(path), 2)
                    r = self.get(e, path)
                    self.assertNotHit(r, "never served to another client")

    def test_cookie_policy_strip(self):
        o = self.origin()
        o.route("/ck", headers=cc("max-age=60", **{"Set-Cookie": "s=1; Path=/"}), body=b"cookie page")
        e = self.edge(o, {"cookie_policy": "strip"})
        r = self.get(e, "/ck")
        self.assertOk(r, b"cookie page")
        self.assertXCache(r, "MISS")
        self.assertEqual(r.header("set-cookie"), "s=1; Path=/", "the first client still gets Set-Cookie")
        for i in range(2):
            r = self.get(e, "/ck")
            self.assertOk(r, b"cookie page")
            self.assertXCache(r, "HIT", "stored with Set-Cookie removed")
            self.assertIsNone(r.header("set-cookie"), "Set-Cookie is never served from the cache\n" + r.describe())
        self.assertEqual(o.hits("/ck"), 1)
        passing = self.edge(o, {"cookie_policy": "pass"})
        for i in range(2):
            self.assertXCache(self.get(passing, "/ck"), "PASS", "cookie_policy pass")

    def test_cache_key_settings(self):
        o = self.origin()
        count = Counter()
        o.route_prefix("/", handler=lambda req: (200, cc("max-age=60"), b"n%d" % count.next()))
        e = self.edge(o, {"cache_key": {"include_host": False, "ignore_query_params": ["utm_source", "utm_medium"],
                                        "sort_query": True}})
        steps = [  # (path, host, X-Cache)
            ("/p?a=1&utm_source=x", None, "MISS"),
            ("/p?a=1&utm_source=y", None, "HIT"),
            ("/p?a=1", None, "HIT"),
            ("/p?utm_medium=z&a=1", None, "HIT"),
            ("/p?utm_source&a=1", None, "HIT"),  # a parameter without a value is still ignored
            ("/p?a=2", None, "MISS"),
            ("/s?b=2&a=1", None, "MISS"),
            ("/s?a=1&b=2", None, "HIT"),
            ("/s?a=1&b=2", "other.example.test", "HIT"),  # include_host false
        ]
        for path, host, xcache in steps:
            with self.subTest(path=path, host=host):
                r = self.get(e, path, {"Host": host} if host else None)
                self.assertOk(r)
                self.assertXCache(r, xcache)
        self.assertEqual([r.path for r in o.requests], ["/p?a=1&utm_source=x", "/p?a=2", "/s?b=2&a=1"],
                         "the origin receives the original URLs")

        o.reset()
        plain = self.edge(o)
        steps = [
            ("/p?a=1&utm_source=x", None, "MISS"),
            ("/p?a=1&utm_source=y", None, "MISS"),
            ("/s?b=2&a=1", None, "MISS"),
            ("/s?a=1&b=2", None, "MISS"),
            ("/s?a=1&b=2", "one.example.test", "MISS"),
            ("/s?a=1&b=2", "two.example.test", "MISS"),
            ("/s?a=1&b=2", "one.example.test", "HIT"),
        ]
        for path, host, xcache in steps:
            with self.subTest(default=path, host=host):
                self.assertXCache(self.get(plain, path, {"Host": host} if host else None), xcache)
        self.assertEqual(len(o.requests), 6)


# ======================================================================================
# header rules


HEADER_RULES = [
    {"phase": "request", "action": "set", "header": "X-Edge-Req", "value": "r1"},
    {"phase": "request", "action": "unset", "header": "X-Secret"},
    {"phase": "request", "action": "append", "header": "X-List", "value": "b"},
    {"phase": "request", "action": "set", "header": "X-Prefixed", "value": "yes",
     "condition": {"path_prefix": "/hr/cond/"}},
    {"phase": "request", "action": "set", "header": "X-Debug-Seen", "value": "1",
     "condition": {"header": "X-Debug", "equals": "on"}},
    {"phase": "request", "action": "set", "header": "X-Has-Flag", "value": "1", "condition": {"header": "X-Flag"}},
    {"phase": "request", "action": "set", "header": "X-Both", "value": "1",
     "condition": {"path_prefix": "/hr/cond/", "header": "X-Debug", "equals": "on"}},
    {"phase": "fetch", "action": "unset", "header": "Set-Cookie", "condition": {"path_prefix": "/hr/cookie"}},
    {"phase": "fetch", "action": "set", "header": "Cache-Control", "value": "max-age=2",
     "condition": {"path_prefix": "/hr/ttl"}},
    {"phase": "fetch", "action": "set", "header": "X-Fetched", "value": "f1"},
    {"phase": "deliver", "action": "set", "header": "X-Served-By", "value": "edge-1"},
    {"phase": "deliver", "action": "unset", "header": "X-Internal"},
    {"phase": "deliver", "action": "append", "header": "X-Trace", "value": "edge"},
    {"phase": "deliver", "action": "set", "header": "X-Area", "value": "static",
     "condition": {"path_prefix": "/hr/static/"}},
    {"phase": "deliver", "action": "set", "header": "X-Order", "value": "a"},
    {"phase": "deliver", "action": "append", "header": "X-Order", "value": "b"},
    {"phase": "deliver", "action": "set", "header": "X-Gone", "value": "x"},
    {"phase": "deliver", "action": "unset", "header": "X-Gone"},
]


def split_list(value):
    return [v.strip() for v in (value or "").split(",") if v.strip()]


class HeaderRules(SemanticsCase):

    def setUp(self):
        self.o = self.origin()
        self.o.route_prefix("/hr/", headers=cc("max-age=60", X_Internal="secret", X_Trace="origin"), body=b"hr")
        self.e = self.edge(self.o, {"header_rules": HEADER_RULES})

    def test_request_phase(self):
        r = self.get(self.e, "/hr/plain", {"X-Secret": "s", "X-List": "a"})
        self.assertOk(r, b"hr")
        seen = self.o.requests_for("/hr/plain")[0].headers
        self.assertEqual(seen.get("x-edge-req"), "r1", seen)
        self.assertNotIn("x-secret", seen)
        self.assertEqual(split_list(seen.get("x-list")), ["a", "b"], seen)
        for name in ("x-prefixed", "x-debug-seen", "x-has-flag", "x-both"):
            self.assertNotIn(name, seen, "conditions not met: " + name)
        self.assertIsNone(r.header("x-edge-req"), "request rules do not touch the response")

        self.get(self.e, "/hr/cond/a", {"X-Debug": "on", "X-Flag": "1"})
        seen = self.o.requests_for("/hr/cond/a")[0].headers
        for name in ("x-prefixed", "x-debug-seen", "x-has-flag", "x-both"):
            self.assertEqual(seen.get(name), "yes" if name == "x-prefixed" else "1", "%s: %r" % (name, seen))

        self.get(self.e, "/hr/cond/b", {"X-Debug": "off"})
        seen = self.o.requests_for("/hr/cond/b")[0].headers
        self.assertEqual(seen.get("x-prefixed"), "yes")
        self.assertNotIn("x-debug-seen", seen, "equals does not match 'off'")
        self.assertNotIn("x-both", seen, "conditions are ANDed")
        self.assertNotIn("x-has-flag", seen)

        self.get(self.e, "/hr/plain2", {"X-Debug": "on"})
        seen = self.o.requests_for("/hr/plain2")[0].headers
        self.assertEqual(seen.get("x-debug-seen"), "1")
        self.assertNotIn("x-both", seen, "conditions are ANDed (path does not match)")

    def test_fetch_phase_unset_set_cookie_makes_it_storable(self):
        self.o.route("/hr/cookie", headers=cc("max-age=60", **{"Set-Cookie": "s=1"}), body=b"cookie")
        r = self.get(self.e, "/hr/cookie")
        self.assertOk(r, b"cookie")
        self.assertXCache(r, "MISS", "Set-Cookie removed before the store decision")
        self.assertIsNone(r.header("set-cookie"), "the fetch phase changes what the client gets too\n" + r.describe())
        r = self.get(self.e, "/hr/cookie")
        self.assertXCache(r, "HIT")
        self.assertIsNone(r.header("set-cookie"))
        self.assertEqual(r.header("x-fetched"), "f1", "fetch-phase headers are stored")
        self.assertEqual(self.o.hits("/hr/cookie"), 1)

    def test_fetch_phase_set_cache_control_changes_ttl(self):
        self.o.route("/hr/ttl", headers=cc("no-store", **NO_DATE), body=b"ttl")
        r = self.get(self.e, "/hr/ttl")
        self.assertXCache(r, "MISS", "Cache-Control replaced by max-age=2 before the store decision")
        self.assertEqual(r.header("cache-control"), "max-age=2", r.describe())
        self.assertXCache(self.get(self.e, "/hr/ttl"), "HIT")
        self.assertEqual(self.o.hits("/hr/ttl"), 1)
        time.sleep(3.3)
        self.assertXCache(self.get(self.e, "/hr/ttl"), "MISS", "the TTL set by the rule (2 s) has passed")
        self.assertEqual(self.o.hits("/hr/ttl"), 2)

    def test_deliver_phase_on_miss_and_hit(self):
        for path in ("/hr/static/x", "/hr/dyn"):
            for xcache in ("MISS", "HIT"):
                with self.subTest(path=path, xcache=xcache):
                    r = self.get(self.e, path)
                    self.assertOk(r, b"hr")
                    self.assertXCache(r, xcache)
                    self.assertEqual(r.header("x-served-by"), "edge-1", r.describe())
                    self.assertIsNone(r.header("x-internal"), r.describe())
                    self.assertEqual(split_list(r.header("x-trace")), ["origin", "edge"], r.describe())
                    self.assertEqual(split_list(r.header("x-order")), ["a", "b"], "rules apply in order")
                    self.assertIsNone(r.header("x-gone"), "set then unset")
                    self.assertEqual(r.header("x-area"), "static" if path.startswith("/hr/static/") else None)
        self.assertNotIn("x-served-by", self.o.requests_for("/hr/dyn")[0].headers)


if __name__ == "__main__":
    print("run with: python3 tests/integration/run.py -k semantics")

"""
tests/integration/test_semantics_collapsing.py — issue 3, request collapsing: concurrent misses
for one key make one origin fetch and the waiters get its answer (a HIT, the same status),
only when their Vary'd request headers match; an uncacheable answer releases the waiters to
fetch on their own and makes the key hit-for-pass. The shared helpers and the timing rules
are in semanticsutil.py.
"""

import harness
from harness import request, wait_until
from semanticsutil import Counter, SemanticsCase, cc, run_concurrently


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

    def test_collapsed_waiters_respect_vary_on_a_field_edgecache_writes(self):
        # X-Forwarded-For is what edgecache writes: waiters from other addresses sent none of
        # their own, like the fetcher, and still may not get its answer
        o = self.origin()
        held = harness.Hold()
        o.route("/cx", hold=held, handler=lambda req: (200, cc("max-age=60", Vary="X-Forwarded-For"),
                                                        req.headers.get("x-forwarded-for", "-").encode()))
        e = self.edge(o)
        sources = ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
        results = run_concurrently(len(sources), lambda i: request(e.proxy_port, "GET", "/cx", source=sources[i],
                                                                   timeout=10),
                                   while_running=self.release_when_collapsed(e, o, "/cx", held, len(sources) - 1))
        for source, r in zip(sources, results):
            self.assertOk(r, source.encode(), "the client at %s" % source)
        self.assertLessEqual(o.hits("/cx"), 4, o.hits("/cx"))
        for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            r = request(e.proxy_port, "GET", "/cx", source=source)
            self.assertOk(r, source.encode())
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


if __name__ == "__main__":
    print("run with: python3 tests/integration/run.py -k semantics_collapsing")

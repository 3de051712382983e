"""
tests/integration/test_semantics_revalidation.py — issue 3, revalidation: a stale object
revalidated with If-None-Match / If-Modified-Since, a 304 merging its headers into the stored
ones (never its Content-Length) and refreshing the TTL across a restart, a 200 replacing the
object, no-cache revalidated on every use; and clients' own conditional requests answered
from the cache. The shared helpers and the timing rules are in semanticsutil.py.
"""

import time

from semanticsutil import Counter, NO_DATE, SemanticsCase, cc, hdrs, http_date, parse_date


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


if __name__ == "__main__":
    print("run with: python3 tests/integration/run.py -k semantics_revalidation")

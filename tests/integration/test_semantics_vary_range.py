"""
tests/integration/test_semantics_vary_range.py — issue 3, which stored response answers a
request: Vary variants (Accept-Encoding normalized, custom headers, several Vary lines,
Vary: *, a purge removing every variant) and Range requests served from the cached object
(206, 416, If-Range). The shared helpers are in semanticsutil.py.
"""

import time

from harness import request
from semanticsutil import SemanticsCase, cc, hdrs, http_date


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


if __name__ == "__main__":
    print("run with: python3 tests/integration/run.py -k semantics_vary_range")

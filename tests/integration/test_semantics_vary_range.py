"""
tests/integration/test_semantics_vary_range.py — issue 3, which stored response answers a
request: Vary variants (Accept-Encoding normalized, custom headers, several Vary lines,
Vary: *, a purge removing every variant, the fields edgecache writes for the origin keyed as
the origin got them) and Range requests served from the cached object (206, 416, If-Range).
The shared helpers are in semanticsutil.py.
"""

import http.client
import re
import shutil
import ssl
import tempfile
import time

import harness
from certs import self_signed
from harness import request, scaled
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


class VaryOnWrittenFields(SemanticsCase):
    """X-Forwarded-For, X-Forwarded-Proto and Forwarded are written by edgecache for the
    origin, whatever the client sent: a response that varies on one is keyed on the value the
    origin got (RFC 9111 4.1), or one client's answer is every client's."""

    def echo(self, field):
        def handler(req):
            return 200, cc("max-age=100", Vary=field), ("%s=%s" % (field, req.headers.get(field.lower(), "-"))).encode()
        return handler

    def from_(self, e, source, path, headers=None):
        return request(e.proxy_port, "GET", path, headers=headers, source=source)

    def test_x_forwarded_for_is_keyed_as_the_origin_got_it(self):
        o = self.origin()
        o.route("/xff", handler=self.echo("X-Forwarded-For"))
        e = self.edge(o)
        steps = [  # (client address, its X-Forwarded-For or None, body, X-Cache, origin hits after)
            ("127.0.0.2", None, "127.0.0.2", "MISS", 1),
            ("127.0.0.2", None, "127.0.0.2", "HIT", 1),
            ("127.0.0.3", None, "127.0.0.3", "MISS", 2),  # not client 127.0.0.2's answer
            ("127.0.0.3", None, "127.0.0.3", "HIT", 2),
            ("127.0.0.2", None, "127.0.0.2", "HIT", 2),
            # the client's value is extended: one value from two addresses is two variants
            ("127.0.0.2", "10.0.0.1", "10.0.0.1, 127.0.0.2", "MISS", 3),
            ("127.0.0.3", "10.0.0.1", "10.0.0.1, 127.0.0.3", "MISS", 4),
            ("127.0.0.2", "10.0.0.1", "10.0.0.1, 127.0.0.2", "HIT", 4),
            # nor can a client name itself into another's variant
            ("127.0.0.3", "127.0.0.2", "127.0.0.2, 127.0.0.3", "MISS", 5),
        ]
        for source, xff, got, xcache, hits in steps:
            with self.subTest(source=source, xff=xff):
                r = self.from_(e, source, "/xff", {"X-Forwarded-For": xff} if xff is not None else None)
                self.assertOk(r, b"X-Forwarded-For=" + got.encode())
                self.assertXCache(r, xcache)
                self.assertEqual(o.hits("/xff"), hits)

        # Forwarded names the client's address too
        o.route("/fwd", handler=self.echo("Forwarded"))
        for source, xcache, hits in [("127.0.0.2", "MISS", 1), ("127.0.0.3", "MISS", 2), ("127.0.0.2", "HIT", 2),
                                     ("127.0.0.3", "HIT", 2)]:
            with self.subTest(forwarded_from=source):
                r = self.from_(e, source, "/fwd", {"Forwarded": "for=6.6.6.6"})
                self.assertOk(r)
                self.assertIn(b";for=" + source.encode(), r.body)
                self.assertXCache(r, xcache)
                self.assertEqual(o.hits("/fwd"), hits)

    def test_x_forwarded_proto_is_keyed_as_the_origin_got_it(self):
        # an http-only answer (a redirect to https) must not reach an HTTPS client
        o = self.origin()

        def handler(req):
            vary = cc("max-age=100", Vary="X-Forwarded-Proto")
            if req.headers.get("x-forwarded-proto") == "https":
                return 200, vary, b"secure"
            return 301, dict(vary, Location="https://site.test/p"), b"use https"

        o.route("/p", handler=handler)
        tmp = tempfile.mkdtemp(prefix="edgecache-vary-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = self_signed(tmp, "site.test")
        e = self.edge(o, args=["--tls-listen", "127.0.0.1:0", "--tls-cert", "site.test=%s,%s" % (cert, key)])
        m = re.search(r" tls=(\S+)", e.stderr_text())  # the listener's address, as test_tls.py reads it
        self.assertIsNotNone(m, e.stderr_tail())
        tls_port = int(m.group(1).split(",")[0].rsplit(":", 1)[1])

        def https(headers=None):
            ctx = ssl.create_default_context(cafile=cert)
            ctx.check_hostname = False
            conn = http.client.HTTPSConnection("127.0.0.1", tls_port, context=ctx, timeout=scaled(5))
            try:
                conn.request("GET", "/p", headers=dict(headers or {}, Host="site.test"))
                resp = conn.getresponse()
                return harness.Response(resp.status, resp.reason, list(resp.getheaders()), resp.read())
            finally:
                conn.close()

        def plain(headers=None):
            return self.get(e, "/p", dict(headers or {}, Host="site.test"))

        steps = [  # (client, its X-Forwarded-Proto, status, X-Cache, origin hits after)
            (plain, "https", 301, "MISS", 1),  # the client's claim is not what the origin got
            (plain, None, 301, "HIT", 1),
            (https, None, 200, "MISS", 2),  # not the plain client's redirect
            (https, "http", 200, "HIT", 2),
            (plain, None, 301, "HIT", 2),
        ]
        for client, xfp, status, xcache, hits in steps:
            with self.subTest(client=client.__name__, xfp=xfp):
                r = client({"X-Forwarded-Proto": xfp} if xfp is not None else None)
                self.assertEqual(r.status, status, r.describe())
                self.assertXCache(r, xcache)
                self.assertEqual(o.hits("/p"), hits)

    def test_request_rules_count_in_the_key(self):
        # a request-phase rule sets a field the response varies on: the key is what the origin got
        o = self.origin()
        o.route("/lang", handler=self.echo("X-Lang"))
        rules = [{"phase": "request", "action": "set", "header": "X-Lang", "value": "en",
                  "condition": {"header": "X-Geo", "equals": "uk"}}]
        e = self.edge(o, {"header_rules": rules})
        steps = [  # (client's headers, body, X-Cache, origin hits after)
            ({"X-Geo": "uk"}, "en", "MISS", 1),
            ({}, "-", "MISS", 2),  # not the X-Lang the rule gave the first request
            ({"X-Lang": "en"}, "en", "HIT", 2),  # what the origin got for the first
            ({"X-Geo": "uk", "X-Lang": "fr"}, "en", "HIT", 2),  # the rule replaces the client's
            ({}, "-", "HIT", 2),
        ]
        for headers, got, xcache, hits in steps:
            with self.subTest(headers=headers):
                r = self.get(e, "/lang", headers)
                self.assertOk(r, b"X-Lang=" + got.encode())
                self.assertXCache(r, xcache)
                self.assertEqual(o.hits("/lang"), hits)


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

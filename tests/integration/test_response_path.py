"""
tests/integration/test_response_path.py — issue 19, the response side: what a client can
make the cache remember about a URL for everybody (hit-for-pass, collapsing), request bodies
(413 limit, no second copy, the budget of bodies held at once), the origin's Date on what
the cache serves (RFC 9110 6.6.1), interim 1xx responses, invalidation by unsafe and
unknown methods (RFC 9111 4.4), the REVALIDATED label, and negative caching (an error
without freshness is stored only for negative_ttl).

Every wait is an event (origin request counts, a threading.Event the origin handler blocks
on, /stats counters) or a bounded poll; the few sleeps only let a lifetime of 1 s run out or
the clock's second change, and no assertion is on elapsed time.
"""

import json
import os
import tempfile
import socket
import threading
import time
from email.utils import formatdate, parsedate_to_datetime

import harness
from harness import request, scaled, wait_until
from test_bad_origin import RawOrigin, send

# the scripted origin answers any method (BaseHTTPRequestHandler looks up do_<METHOD>)
for _m in ("FOO", "PROPPATCH", "TRACE"):
    setattr(harness._OriginHandler, "do_" + _m, harness._OriginHandler._handle)


def cc(value, **extra):
    headers = {"Cache-Control": value, "Content-Type": "text/plain"}
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return headers


def epoch(date_value):
    return parsedate_to_datetime(date_value).timestamp()


class Case(harness.TestCase):

    def get(self, edge, path, headers=None, **kw):
        return request(edge.proxy_port, "GET", path, headers=headers, **kw)

    def token(self, edge):
        if not hasattr(edge, "test_token"):
            edge.test_token = harness.create_token(edge)
        return edge.test_token

    def stats(self, edge):
        r = request(edge.admin_port, "GET", "/stats", headers={"Fastly-Key": self.token(edge)})
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)

    def put_settings(self, edge, changes):
        r = request(edge.admin_port, "PUT", "/config/settings", body=json.dumps(changes).encode(),
                    headers={"Fastly-Key": self.token(edge), "Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)


# ======================================================================================
# item 4: hit-for-pass only for reasons that come from the response


class HitForPass(Case):

    def test_authorization_request_does_not_keep_the_url_out(self):
        o = self.origin()
        o.route("/auth", headers=cc("max-age=60"), body=b"page")
        e = self.edgecache([o])
        r = self.get(e, "/auth", {"Authorization": "Basic dXNlcjpwYXNz"})
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(r, "PASS", "RFC 9111 3.5: not stored for a request with Authorization")
        r = self.get(e, "/auth")
        self.assertXCache(r, "MISS", "a plain request after an authorized one is fetched to be stored, "
                                     "not passed (hit-for-pass is not for the request's reasons)")
        r = self.get(e, "/auth")
        self.assertXCache(r, "HIT")
        self.assertEqual(r.body, b"page")
        self.assertEqual(o.hits("/auth"), 2)

    def test_overlong_varied_value_does_not_keep_the_url_out(self):
        o = self.origin()
        o.route("/vary", headers=cc("max-age=60", Vary="X-Token"), body=b"varied")
        e = self.edgecache([o])
        r = self.get(e, "/vary", {"X-Token": "t" * 3000})
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(r, "PASS", "a variant key that does not fit is not stored")
        r = self.get(e, "/vary")
        self.assertXCache(r, "MISS", "the next plain request may store its variant")
        self.assertXCache(self.get(e, "/vary"), "HIT")
        self.assertEqual(o.hits("/vary"), 2)

    def test_error_status_provoked_by_the_request_does_not_keep_the_url_out(self):
        # a header the origin dislikes (nginx: "Request Header Or Cookie Too Large") gives a 400
        o = self.origin()
        o.route("/app.js", handler=lambda req: (400, {"Content-Type": "text/plain"}, b"bad request")
                if "x-huge" in req.headers else (200, cc("max-age=60"), b"app"))
        e = self.edgecache([o])
        r = self.get(e, "/app.js", {"X-Huge": "h" * 100})
        self.assertEqual(r.status, 400, r.describe())
        self.assertXCache(r, "PASS")
        r = self.get(e, "/app.js")
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(r, "MISS", "a 4xx answers one request: the URL is not remembered as hit-for-pass")
        self.assertXCache(self.get(e, "/app.js"), "HIT")

    def test_partial_or_not_modified_answer_provoked_by_the_request_does_not_keep_the_url_out(self):
        # the cache asks for whole objects without validators of the client's; an origin that still
        # answers 206 or 304 was made to by some other request header (e.g. the old Request-Range)
        o = self.origin()

        def handler(req):
            if "request-range" in req.headers:
                return 206, cc("max-age=60", Content_Range="bytes 0-1/4"), b"wh"
            if "x-if-none" in req.headers:
                return 304, {"Cache-Control": "max-age=60"}, b""
            return 200, cc("max-age=60"), b"whole"

        o.route("/whole", handler=handler)
        e = self.edgecache([o])
        for name, status in (("Request-Range", 206), ("X-If-None", 304)):
            with self.subTest(status=status):
                r = self.get(e, "/whole", {name: "bytes=0-1"})
                self.assertEqual(r.status, status, r.describe())
                self.assertXCache(r, "PASS")
                r = self.get(e, "/whole")
                self.assertEqual(r.body, b"whole", r.describe())
                self.assertXCache(r, "MISS", "the next plain request may store the whole object")
                self.assertXCache(self.get(e, "/whole"), "HIT")
                request(e.proxy_port, "PURGE", "/whole")

    def test_waiters_on_an_authorized_fetch_fetch_to_store(self):
        # plain requests collapsed onto a fetch made for a request with Authorization: its answer
        # is not storable for them, but theirs is; they must not be sent to pass
        o = self.origin()
        release = threading.Event()
        self.addCleanup(release.set)

        def handler(req):
            if "authorization" in req.headers:
                release.wait(scaled(10))
            return 200, cc("max-age=60"), b"shared page"

        o.route("/collapse", handler=handler)
        e = self.edgecache([o])
        results = {}

        def fetch(name, headers):
            results[name] = self.get(e, "/collapse", headers, timeout=15)

        first = threading.Thread(target=fetch, args=("auth", {"Authorization": "Bearer x"}), daemon=True)
        first.start()
        wait_until(lambda: o.hits("/collapse") == 1, what="the authorized request at the origin")
        base = self.stats(e)["collapsed"]
        plain = [threading.Thread(target=fetch, args=("plain%d" % i, None), daemon=True) for i in range(3)]
        for t in plain:
            t.start()
        wait_until(lambda: self.stats(e)["collapsed"] >= base + 3, what="three requests collapsed on the fetch")
        release.set()
        for t in [first] + plain:
            t.join(scaled(15))
        self.assertXCache(results["auth"], "PASS")
        for i in range(3):
            r = results["plain%d" % i]
            self.assertEqual(r.body, b"shared page", r.describe())
            self.assertXCache(r, "MISS", "a waiter released by a response not storable for the fetch's own "
                                         "request fetches to store")
        self.assertXCache(self.get(e, "/collapse"), "HIT")


# ======================================================================================
# item 8: request bodies


def raw_exchange(port, data, timeout=5):
    """Send raw bytes, return the raw response bytes until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout)) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before it read everything
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and b"HTTP/1.1 413" in out:
                break
        return out


# ======================================================================================
# negative caching (CPDoS, Nguyen et al. 2019): an error the origin gives no lifetime is not
# stored unless negative_ttl says for how long


class NegativeCaching(Case):

    def test_error_provoked_by_an_unkeyed_header_does_not_replace_the_url(self):
        # frameworks honour X-HTTP-Method-Override; the cache does not key on it. A 405 without
        # freshness used to be stored for default_ttl and served to every client (HMO attack)
        o = self.origin()
        o.route("/page", handler=lambda req: (405, {"Content-Type": "text/plain", "Allow": "GET"}, b"no DELETE here")
                if "x-http-method-override" in req.headers else (200, cc("max-age=60"), b"the page"))
        e = self.edgecache([o])
        r = self.get(e, "/page", {"X-HTTP-Method-Override": "DELETE"})
        self.assertEqual(r.status, 405, r.describe())
        self.assertXCache(r, "PASS", "an error without freshness is not stored (negative_ttl 0)")
        r = self.get(e, "/page")
        self.assertEqual((r.status, r.body), (200, b"the page"), "the next plain client gets the page\n" + r.describe())
        self.assertXCache(r, "MISS", "and it is stored: the 405 did not mark the URL hit-for-pass either")
        r = self.get(e, "/page")
        self.assertXCache(r, "HIT")
        self.assertEqual(r.body, b"the page")
        self.assertEqual(o.hits("/page"), 2)

    def test_clients_collapsed_on_a_provoked_error_get_the_page(self):
        # plain requests that collapsed onto the attacker's fetch: its 405 is not theirs
        o = self.origin()
        release = threading.Event()
        self.addCleanup(release.set)

        def handler(req):
            if "x-http-method-override" in req.headers:
                release.wait(scaled(10))
                return 405, {"Content-Type": "text/plain"}, b"no DELETE here"
            return 200, cc("max-age=60"), b"the page"

        o.route("/hmo", handler=handler)
        e = self.edgecache([o])
        results = {}

        def fetch(name, headers):
            results[name] = self.get(e, "/hmo", headers, timeout=15)

        first = threading.Thread(target=fetch, args=("attacker", {"X-HTTP-Method-Override": "DELETE"}), daemon=True)
        first.start()
        wait_until(lambda: o.hits("/hmo") == 1, what="the attacker's request at the origin")
        base = self.stats(e)["collapsed"]
        plain = [threading.Thread(target=fetch, args=("plain%d" % i, None), daemon=True) for i in range(3)]
        for t in plain:
            t.start()
        wait_until(lambda: self.stats(e)["collapsed"] >= base + 3, what="three requests collapsed on the fetch")
        release.set()
        for t in [first] + plain:
            t.join(scaled(15))
        for i in range(3):
            r = results["plain%d" % i]
            self.assertEqual((r.status, r.body), (200, b"the page"), r.describe())
        self.assertEqual(results["attacker"].status, 405, results["attacker"].describe())
        self.assertXCache(results["attacker"], "PASS")
        r = self.get(e, "/hmo")
        self.assertXCache(r, "HIT")
        self.assertEqual((r.status, r.body), (200, b"the page"))

    def test_errors_without_freshness_pass_and_with_freshness_are_stored(self):
        o = self.origin()
        o.route("/gone", status=404, headers={"Content-Type": "text/plain"}, body=b"not here")
        o.route("/gone-lm", status=410, body=b"gone",
                headers={"Content-Type": "text/plain", "Last-Modified": "Mon, 01 Jan 2001 00:00:00 GMT"})
        o.route("/gone-max-age", status=404, headers=cc("max-age=60"), body=b"not here, for a minute")
        e = self.edgecache([o])
        for path in ("/gone", "/gone-lm"):
            with self.subTest(path=path):
                for _ in range(2):
                    r = self.get(e, path)
                    self.assertXCache(r, "PASS", "no freshness of its own, Last-Modified heuristic or not")
                self.assertEqual(o.hits(path), 2)
        self.assertXCache(self.get(e, "/gone-max-age"), "MISS")
        r = self.get(e, "/gone-max-age")
        self.assertXCache(r, "HIT", "an error the origin gives a lifetime keeps it")
        self.assertEqual((r.status, r.body), (404, b"not here, for a minute"))

    def test_negative_ttl_set_at_run_time_stores_a_plain_404_for_that_long(self):
        o = self.origin()
        o.route("/missing", status=404, headers={"Content-Type": "text/plain"}, body=b"not here")
        o.route("/missing-2", status=404, headers={"Content-Type": "text/plain"}, body=b"not here either")
        e = self.edgecache([o], args=["--default-ttl", "3600"])
        self.assertXCache(self.get(e, "/missing"), "PASS")
        settings = self.put_settings(e, {"negative_ttl": 1})
        self.assertEqual(settings["negative_ttl"], 1)
        r = self.get(e, "/missing")
        self.assertEqual(r.status, 404, r.describe())
        self.assertXCache(r, "MISS", "stored once negative_ttl is set")
        r = self.get(e, "/missing")
        self.assertXCache(r, "HIT")
        self.assertEqual((r.status, r.body), (404, b"not here"))
        # for negative_ttl (1 s), not default_ttl (an hour): it goes to the origin again
        wait_until(lambda: (self.get(e, "/missing").x_cache or "").split(",")[0].strip().upper() != "HIT",
                   timeout=10, interval=0.1, what="the stored 404 to outlive negative_ttl 1")
        self.assertEqual(o.hits("/missing"), 3)
        # back to 0: not stored any more
        self.put_settings(e, {"negative_ttl": 0})
        for _ in range(2):
            self.assertXCache(self.get(e, "/missing-2"), "PASS")

    def test_negative_ttl_flag(self):
        o = self.origin()
        o.route("/nf", status=404, headers={"Content-Type": "text/plain"}, body=b"not found")
        e = self.edgecache([o], args=["--negative-ttl", "60"])
        self.assertXCache(self.get(e, "/nf"), "MISS")
        self.assertXCache(self.get(e, "/nf"), "HIT")
        self.assertEqual(o.hits("/nf"), 1)


class RequestBodies(Case):

    def test_limit_413_and_intact_below(self):
        o = self.origin()
        o.route("/upload", handler=lambda req: (200, {"Content-Type": "text/plain"},
                                                b"got %d %s" % (len(req.body), req.body[:1] + req.body[-1:])))
        e = self.edgecache([o], args=["--max-request-body", "1M"])
        limit = 1 << 20
        body = b"a" + b"m" * (limit - 2) + b"z"
        r = request(e.proxy_port, "POST", "/upload", body=body, timeout=15)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.body, b"got %d az" % limit)
        got = o.requests_for("/upload")[-1]
        self.assertEqual(got.body, body, "the body reaches the origin intact")
        self.assertEqual(got.headers.get("content-length"), str(limit))

        # one byte over, announced by Content-Length: refused before the body is read
        out = raw_exchange(e.proxy_port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (limit + 1)
                           + b"b" * 4096)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:200])
        # chunked, growing past the limit
        chunk = b"c" * 65536
        data = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        data += b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(limit // len(chunk) + 2))
        data += b"0\r\n\r\n"
        out = raw_exchange(e.proxy_port, data)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:200])
        self.assertEqual(o.hits("/upload"), 1, "a body over the limit never reaches the origin")
        # the server goes on
        r = request(e.proxy_port, "PUT", "/upload", body=b"small")
        self.assertEqual(r.body, b"got 5 sl")

    def test_default_limit_is_8M(self):
        o = self.origin()
        o.route("/upload", handler=lambda req: (200, {}, b"%d" % len(req.body)))
        e = self.edgecache([o])
        out = raw_exchange(e.proxy_port, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
                           ((8 << 20) + 1))
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:200])
        self.assertEqual(o.hits("/upload"), 0)

    def test_bodies_held_at_once_are_bounded(self):
        o = self.origin()
        release = threading.Event()
        self.addCleanup(release.set)

        def slow(req):
            release.wait(scaled(10))
            return 200, {}, b"slow %d" % len(req.body)

        o.route("/slow", handler=slow)
        o.route("/fast", handler=lambda req: (200, {}, b"fast %d" % len(req.body)))
        e = self.edgecache([o], args=["--max-request-body", "1M", "--request-body-memory", "1M"])
        held = {}
        t = threading.Thread(target=lambda: held.update(r=request(e.proxy_port, "POST", "/slow", body=b"s" * 700000,
                                                                  timeout=15)), daemon=True)
        t.start()
        wait_until(lambda: o.hits("/slow") == 1, what="the first body at the origin")
        r = request(e.proxy_port, "POST", "/fast", body=b"f" * 400000)
        self.assertEqual(r.status, 503, "700000 + 400000 bytes held at once is over the 1M budget\n" + r.describe())
        self.assertEqual(r.header("retry-after"), "1")
        self.assertEqual(o.hits("/fast"), 0)
        r = request(e.proxy_port, "POST", "/fast", body=b"f" * 300000)
        self.assertEqual(r.body, b"fast 300000", "within the budget: " + r.describe())
        r = request(e.proxy_port, "GET", "/fast")
        self.assertEqual(r.status, 200, "requests without a body are not counted")
        release.set()
        t.join(scaled(15))
        self.assertEqual(held["r"].body, b"slow 700000")
        # the first body's share comes back when its request is done
        wait_until(lambda: request(e.proxy_port, "POST", "/fast", body=b"f" * 400000).status == 200,
                   what="the budget to be given back")


# ======================================================================================
# RFC 9110 6.6.1: the origin's Date, not the cache's clock


class OriginDate(Case):

    def test_hit_miss_pass_and_304_keep_the_origin_date(self):
        o = self.origin()
        date = formatdate(time.time() - 30, usegmt=True)
        o.route("/dated", headers=cc("max-age=600", Date=date, ETag='"d"'), body=b"dated body")
        e = self.edgecache([o])
        for label in ("MISS", "HIT"):
            r = self.get(e, "/dated")
            self.assertXCache(r, label)
            self.assertEqual(r.header_all("date"), [date], "one Date, the origin's, on a %s\n%s" % (label, r.describe()))
            self.assertGreaterEqual(r.age, 30, r.describe())
        r = self.get(e, "/dated", {"If-None-Match": '"d"'})
        self.assertEqual(r.status, 304, r.describe())
        self.assertEqual(r.header_all("date"), [date], "a 304 from the cache carries the stored Date")
        r = request(e.proxy_port, "POST", "/dated", body=b"x")
        self.assertXCache(r, "PASS")
        self.assertEqual(r.header_all("date"), [date], "a passed response keeps its Date")

    def test_without_date_the_receipt_time_is_kept(self):
        o = self.origin()
        o.route("/undated", headers=cc("max-age=600", Date=None), body=b"undated")
        e = self.edgecache([o])
        r = self.get(e, "/undated")
        self.assertXCache(r, "MISS")
        first = r.header_all("date")
        self.assertEqual(len(first), 1, r.describe())
        self.assertLessEqual(abs(epoch(first[0]) - time.time()), 5, "a Date is added: when it came")
        # let the clock pass the second the response came in
        wait_until(lambda: time.time() >= epoch(first[0]) + 1.5, what="the next second", interval=0.05)
        r = self.get(e, "/undated")
        self.assertXCache(r, "HIT")
        self.assertEqual(r.header_all("date"), first, "a hit carries the time the response was received, "
                                                      "not the time it is served")

    def test_revalidated_and_stale_copies(self):
        o = self.origin()
        d304 = formatdate(time.time() - 5, usegmt=True)

        def handler(req):
            if req.headers.get("if-none-match") == '"r"':
                # five seconds old: stale again at once (max-age=1), so the next request revalidates
                return 304, {"Cache-Control": "max-age=1, stale-if-error=60", "ETag": '"r"', "Date": d304}, b""
            return 200, cc("max-age=1, stale-if-error=60", ETag='"r"', Date=None), b"rbody"

        o.route("/reval", handler=handler)
        e = self.edgecache([o])
        r = self.get(e, "/reval")
        self.assertXCache(r, "MISS")
        time.sleep(2.2)  # max-age=1 runs out
        r = self.get(e, "/reval")
        self.assertEqual(o.hits("/reval"), 2)
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(r, "REVALIDATED", "a stale copy the origin confirmed with a 304")
        self.assertEqual(r.body, b"rbody")
        self.assertEqual(r.header_all("date"), [d304], "the 304's Date replaces the stored one (RFC 9111 4.3.4)")
        self.assertGreaterEqual(r.age, 5, r.describe())
        o.stop()
        r = self.get(e, "/reval")
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(r, "HIT", "stale-if-error: the stored copy stands in for the dead origin")
        self.assertEqual(r.body, b"rbody")
        self.assertEqual(r.header_all("date"), [d304], "a stale copy keeps its Date")


# ======================================================================================
# RFC 9110 15.2: interim responses


class InterimResponses(Case):

    def test_103_then_200(self):
        o = RawOrigin()
        self.addCleanup(o.close)
        o.on("/hints", send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nCache-Control: max-age=999\r\n\r\n"
                            b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Type: text/plain\r\n"
                            b"Content-Length: 5\r\nConnection: close\r\n\r\nfinal"))
        e = self.edgecache([o.address])
        r = self.get(e, "/hints")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.body, b"final")
        self.assertXCache(r, "MISS")
        self.assertIsNone(r.header("link"), "the 103's fields are not part of the final response\n" + r.describe())
        r = self.get(e, "/hints")
        self.assertEqual((r.status, r.body), (200, b"final"), "the final response is what was stored")
        self.assertXCache(r, "HIT")
        self.assertEqual(r.header("cache-control"), "max-age=60")
        self.assertEqual(o.hits("/hints"), 1)

    def test_100_continue_from_the_origin_and_the_client(self):
        o = self.origin()  # http.server answers Expect: 100-continue with an interim 100
        o.route("/form", handler=lambda req: (201, {"Content-Type": "text/plain"}, b"stored " + req.body))
        e = self.edgecache([o])
        with socket.create_connection(("127.0.0.1", e.proxy_port), timeout=scaled(5)) as s:
            s.sendall(b"POST /form HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            s.sendall(b"data")
            reader = harness.Reader(s)
            r = harness.read_raw_response(reader, "POST")
            while 100 <= r.status < 200:
                r = harness.read_raw_response(reader, "POST")
        self.assertEqual(r.status, 201, r.describe())
        self.assertEqual(r.body, b"stored data")
        self.assertEqual(o.requests_for("/form")[0].body, b"data")


# ======================================================================================
# RFC 9111 4.4: any method not known to be safe invalidates


class UnknownMethodsInvalidate(Case):

    def test_unknown_and_extension_methods(self):
        o = self.origin()
        o.route_prefix("/", handler=lambda req: (200, cc("max-age=60"), b"get")
                       if req.method in ("GET", "HEAD") else (200, cc("no-store"), b"done " + req.method.encode()))
        e = self.edgecache([o])
        for method, invalidates in (("FOO", True), ("PROPPATCH", True), ("OPTIONS", False), ("TRACE", False)):
            with self.subTest(method=method):
                path = "/res-" + method.lower()
                self.get(e, path)
                self.assertXCache(self.get(e, path), "HIT", "primed")
                r = request(e.proxy_port, method, path, body=b"" if method != "TRACE" else None)
                self.assertEqual(r.status, 200, r.describe())
                self.assertEqual(o.requests_for(path)[-1].method, method, "passed to the origin")
                r = self.get(e, path)
                self.assertXCache(r, "MISS" if invalidates else "HIT",
                                  "%s is %s" % (method, "not known to be safe" if invalidates else "safe"))


# ======================================================================================
# siblings: headers the cache must not overwrite or double


class ForwardedHeaders(Case):

    def test_passed_response_keeps_the_origin_age(self):
        o = self.origin()
        o.route("/aged", headers=cc("max-age=600", Age="50"), body=b"aged")
        e = self.edgecache([o])
        r = request(e.proxy_port, "POST", "/aged", body=b"x")
        self.assertXCache(r, "PASS")
        self.assertGreaterEqual(r.age, 50, "a passed response says how old it is, not 0\n" + r.describe())

    def test_one_accept_ranges_on_a_hit(self):
        o = self.origin()
        o.route("/ranged", headers=cc("max-age=60", Accept_Ranges="bytes"), body=b"0123456789")
        e = self.edgecache([o])
        self.get(e, "/ranged")
        r = self.get(e, "/ranged")
        self.assertXCache(r, "HIT")
        self.assertEqual(r.header_all("accept-ranges"), ["bytes"], r.describe())

    def test_collapsed_readers_never_get_another_clients_set_cookie(self):
        # cookie_policy strip: the fetching client gets its Set-Cookie, the stored object has none;
        # the requests collapsed onto the fetch read the response as it streams and are other
        # clients: they must not get the first client's cookie either
        o = self.origin()
        release = threading.Event()
        self.addCleanup(release.set)

        def handler(req):
            release.wait(scaled(10))
            return 200, cc("max-age=60", Set_Cookie="session=first-client"), b"page " * 1000

        o.route("/cookie", handler=handler)
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"cookie_policy": "strip"}, f)
        self.addCleanup(os.unlink, path)
        e = self.edgecache([o], args=["--config", path])
        results = {}

        def fetch(i):
            results[i] = self.get(e, "/cookie", timeout=15)

        threads = [threading.Thread(target=fetch, args=(0,), daemon=True)]
        threads[0].start()
        wait_until(lambda: o.hits("/cookie") == 1, what="the first request at the origin")
        base = self.stats(e)["collapsed"]
        threads += [threading.Thread(target=fetch, args=(i,), daemon=True) for i in (1, 2, 3)]
        for t in threads[1:]:
            t.start()
        wait_until(lambda: self.stats(e)["collapsed"] >= base + 3, what="three requests collapsed on the fetch")
        release.set()
        for t in threads:
            t.join(scaled(15))
        self.assertEqual(results[0].header("set-cookie"), "session=first-client", results[0].describe())
        for i in (1, 2, 3):
            self.assertEqual(results[i].body, b"page " * 1000)
            self.assertIsNone(results[i].header("set-cookie"), "client %d got the first client's cookie\n%s" % (
                i, results[i].describe()))
        r = self.get(e, "/cookie")
        self.assertXCache(r, "HIT")
        self.assertIsNone(r.header("set-cookie"))

    def test_waiters_on_a_revalidation_never_get_its_set_cookie(self):
        # the origin answers the fetching client's revalidation with a 304 that sets a cookie: that
        # answer is not storable, and it is that client's, not the waiters'
        o = self.origin()
        release = threading.Event()
        self.addCleanup(release.set)

        def handler(req):
            if req.headers.get("if-none-match") == '"c"':
                release.wait(scaled(10))
                return 304, {"Cache-Control": "max-age=60", "ETag": '"c"', "Set-Cookie": "session=first-client",
                             "Date": None}, b""
            return 200, cc("max-age=1", ETag='"c"', Date=None), b"cookie page"

        o.route("/reval-cookie", handler=handler)
        e = self.edgecache([o])
        self.assertXCache(self.get(e, "/reval-cookie"), "MISS")
        time.sleep(2.2)  # max-age=1 runs out
        results = {}

        def fetch(i):
            results[i] = self.get(e, "/reval-cookie", timeout=15)

        threads = [threading.Thread(target=fetch, args=(0,), daemon=True)]
        threads[0].start()
        wait_until(lambda: o.hits("/reval-cookie") == 2, what="the revalidation at the origin")
        base = self.stats(e)["collapsed"]
        threads += [threading.Thread(target=fetch, args=(i,), daemon=True) for i in (1, 2)]
        for t in threads[1:]:
            t.start()
        wait_until(lambda: self.stats(e)["collapsed"] >= base + 2, what="two requests collapsed on the revalidation")
        release.set()
        for t in threads:
            t.join(scaled(15))
        self.assertXCache(results[0], "REVALIDATED")
        self.assertEqual(results[0].header("set-cookie"), "session=first-client", results[0].describe())
        for i in (1, 2):
            self.assertEqual(results[i].body, b"cookie page", results[i].describe())
            self.assertIsNone(results[i].header("set-cookie"), "client %d got the first client's cookie\n%s" % (
                i, results[i].describe()))

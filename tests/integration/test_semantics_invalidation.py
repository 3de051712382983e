"""
tests/integration/test_semantics_invalidation.py — issue 3, invalidation by unsafe methods
(RFC 9111 4.4): a 2xx answer to POST, PUT, DELETE or PATCH invalidates the URL, every Vary
variant of it, and the Location / Content-Location on the same host; a 5xx answer does not.
The shared helpers are in semanticsutil.py.
"""

from harness import request
from semanticsutil import Counter, SemanticsCase, cc


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


if __name__ == "__main__":
    print("run with: python3 tests/integration/run.py -k semantics_invalidation")

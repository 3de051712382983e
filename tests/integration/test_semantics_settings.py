"""
tests/integration/test_semantics_settings.py — issue 3, the config file's caching settings
(keep_surrogate_headers, obey_client_no_cache, cookie_policy, cache_key) and RFC 9111 3.5's
Authorization rule; and header rules in their request, fetch and deliver phases, with
conditions. The shared helpers and the timing rules are in semanticsutil.py.
"""

import time

from semanticsutil import Counter, NO_DATE, SemanticsCase, cc, hdrs


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
    print("run with: python3 tests/integration/run.py -k semantics_settings")

"""
tests/integration/test_backends.py — issue 5: several backends, load balancing, health
checks, origin shielding and the origin admin endpoints, end to end against the real binary
and scripted origins.

  Balancing        weighted round robin follows the weights; hash mode sends each key to one
                   backend; a failed connect is retried once on another backend (GET/HEAD only).
  Health           a backend failing its health check gets no traffic within `window` probes and
                   gets it back when it recovers; a stopped one likewise; all down: stale in grace,
                   else 503 with a short body naming no internals; first-byte timeout: 504.
  Api              Fastly's shapes (JSON and form bodies), defaults echoed, 400s naming the field
                   with nothing half-applied, scopes, and survival across a restart; a change
                   applies at once without dropping a request in flight.
  Shield           two edgecache processes, edge -> shield -> origin, with origin hit counts, and
                   purges forwarded to the shield (--shield-admin).
"""

import json
import threading
import time

import harness
from harness import closed_port, request, scaled, wait_until

HOST = {"Host": "www.example.test"}  # fixed: the cache key must not depend on the proxy's port
SID = "edgecache"
BASE = "/service/%s/version/1" % SID


class BackendCase(harness.TestCase):
    def token(self, edge, scope="global"):
        return harness.create_token(edge, scope)

    def api(self, edge, method, path, body=None, token=None, form=False, expect=None):
        r = self.admin_api(edge, method, path, body, token, form, expect)
        self.assertEqual(r.header("content-type"), "application/json", r.describe())
        return r

    def js(self, r):
        return json.loads(r.body)

    def get(self, edge, path, headers=None, **kw):
        h = dict(HOST)
        h.update(headers or {})
        return request(edge.proxy_port, "GET", path, headers=h, **kw)

    def health_route(self, origin, status=200):
        origin.route("/health", status=status, headers={"Cache-Control": "no-store"}, body=b"")

    def add_healthcheck(self, edge, tok, name="hc", **fields):
        body = {"name": name, "path": "/health", "check_interval": 100, "timeout": 300, "window": 3, "threshold": 2,
                "initial": 2}
        body.update(fields)
        return self.js(self.api(edge, "POST", BASE + "/healthcheck", body, tok, expect=200))


def uncached(body):
    return {"headers": {"Cache-Control": "no-store", "Content-Type": "text/plain"}, "body": body}


class Balancing(BackendCase):
    def test_weighted_round_robin_follows_weights(self):
        o1, o2 = self.origin(), self.origin()
        o1.route_prefix("/w/", **uncached(b"one"))
        o2.route_prefix("/w/", **uncached(b"two"))
        e = self.edgecache([o1, o2])
        tok = self.token(e)
        r = self.api(e, "PUT", BASE + "/backend/backend2", {"weight": 300}, tok, expect=200)
        self.assertEqual(self.js(r)["weight"], 300)
        for i in range(200):
            self.assertEqual(self.get(e, "/w/%d" % i).status, 200)
        n1, n2 = o1.hits(), o2.hits()
        self.assertEqual(n1 + n2, 200)
        # smooth weighted round robin per worker thread: 1:3 within a request or two per thread
        self.assertTrue(44 <= n1 <= 56, "weights 100:300 gave %d:%d" % (n1, n2))

    def test_hash_mode_sends_each_key_to_one_backend(self):
        origins = [self.origin() for _ in range(3)]
        for i, o in enumerate(origins):
            o.route_prefix("/k/", **uncached(b"origin %d" % i))
        e = self.edgecache(origins)
        tok = self.token(e)
        r = self.api(e, "PUT", "/config/load-balancing", {"load_balancing": "hash"}, tok, expect=200)
        self.assertEqual(self.js(r), {"load_balancing": "hash"})
        self.assertEqual(self.js(self.api(e, "GET", "/config/load-balancing", token=tok, expect=200)),
                         {"load_balancing": "hash"})
        bodies = {}
        for rnd in range(3):
            for k in range(30):
                r = self.get(e, "/k/%d" % k)
                self.assertEqual(r.status, 200)
                bodies.setdefault(k, set()).add(r.body)
        for k, seen in bodies.items():
            self.assertEqual(len(seen), 1, "key /k/%d went to several backends: %r" % (k, seen))
        used = [o for o in origins if o.hits() > 0]
        self.assertGreaterEqual(len(used), 2, "30 keys all hashed onto one backend")
        for o in origins:
            paths = {q.path for q in o.requests}
            for other in origins:
                if other is not o:
                    self.assertFalse(paths & {q.path for q in other.requests})

    def test_connect_failure_retries_another_backend_for_get_only(self):
        o = self.origin()
        o.route_prefix("/r/", **uncached(b"alive"))
        dead = closed_port()
        e = self.edgecache([dead, o])
        tok = self.token(e)
        self.api(e, "PUT", "/config/load-balancing", {"load_balancing": "first"}, tok, expect=200)
        for i in range(10):
            r = self.get(e, "/r/%d" % i)
            self.assertEqual(r.status, 200, "GET retried on the live backend\n" + r.describe())
            self.assertEqual(r.body, b"alive")
        r = request(e.proxy_port, "HEAD", "/r/head", headers=HOST)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(o.hits(), 11)
        # a POST is not retried: the first (dead) backend's failure is the answer
        r = request(e.proxy_port, "POST", "/r/post", headers=HOST, body=b"x")
        self.assertEqual(r.status, 502, r.describe())
        self.assertEqual(o.hits("/r/post"), 0)


class Health(BackendCase):
    def test_failing_backend_gets_no_traffic_then_comes_back(self):
        o1, o2 = self.origin(), self.origin()
        for i, o in enumerate((o1, o2)):
            self.health_route(o)
            o.route_prefix("/h/", **uncached(b"origin %d" % i))
        e = self.edgecache([o1, o2])
        tok = self.token(e)
        self.add_healthcheck(e, tok)
        for b in ("backend1", "backend2"):
            self.api(e, "PUT", BASE + "/backend/" + b, {"healthcheck": "hc"}, tok, expect=200)
        wait_until(lambda: o2.hits("/health") >= 2, 5, what="probes of backend2")
        # backend2's health check starts failing: out within `window` (3) probes of 100 ms
        self.health_route(o2, 500)
        time.sleep(scaled(0.3 * 3 + 0.3))
        before = len([q for q in o2.requests if q.path.startswith("/h/")])
        for i in range(20):
            r = self.get(e, "/h/a%d" % i)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"origin 0")
        after = len([q for q in o2.requests if q.path.startswith("/h/")])
        self.assertEqual(after, before, "an unhealthy backend got traffic")
        self.assertGreater(o2.hits("/health"), 3, "probes go on while it is down")
        # it recovers: `threshold` good probes later it takes traffic again
        self.health_route(o2, 200)
        time.sleep(scaled(0.1 * 2 + 0.5))
        for i in range(20):
            self.assertEqual(self.get(e, "/h/b%d" % i).status, 200)
        back = len([q for q in o2.requests if q.path.startswith("/h/b")])
        self.assertTrue(5 <= back <= 15, "after recovery backend2 got %d of 20" % back)

    def test_stopped_backend_is_marked_down_and_back(self):
        o1, o2 = self.origin(), self.origin()
        for i, o in enumerate((o1, o2)):
            self.health_route(o)
            o.route_prefix("/s/", **uncached(b"origin %d" % i))
        e = self.edgecache([o1, o2])
        tok = self.token(e)
        self.add_healthcheck(e, tok)
        for b in ("backend1", "backend2"):
            self.api(e, "PUT", BASE + "/backend/" + b, {"healthcheck": "hc"}, tok, expect=200)
        o2.stop()
        time.sleep(scaled(0.4 * 3 + 0.3))
        for i in range(20):
            r = self.get(e, "/s/a%d" % i)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.body, b"origin 0")
        o2.start()  # same port
        time.sleep(scaled(0.1 * 2 + 0.6))
        for i in range(20):
            self.assertEqual(self.get(e, "/s/b%d" % i).status, 200)
        self.assertGreater(len([q for q in o2.requests if q.path.startswith("/s/b")]), 3, "backend2 is back in rotation")

    def test_all_down_serves_stale_else_503(self):
        o = self.origin()
        self.health_route(o)
        o.route("/stale", headers={"Cache-Control": "max-age=1, stale-if-error=60", "Content-Type": "text/plain"},
                body=b"old copy")
        o.route("/never", headers={"Cache-Control": "max-age=60"}, body=b"x")
        e = self.edgecache([o])
        tok = self.token(e)
        self.add_healthcheck(e, tok)
        self.api(e, "PUT", BASE + "/backend/backend1", {"healthcheck": "hc"}, tok, expect=200)
        wait_until(lambda: o.hits("/health") >= 1, 5, what="a probe")
        r = self.get(e, "/stale")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(o.hits("/stale"), 1)
        self.health_route(o, 503)
        time.sleep(scaled(max(1.2, 0.3 * 3 + 0.3)))  # expired, and the backend is marked down
        r = self.get(e, "/stale")
        self.assertEqual(r.status, 200, "stale served when no backend is healthy\n" + r.describe())
        self.assertEqual(r.body, b"old copy")
        self.assertEqual(o.hits("/stale"), 1, "an unhealthy backend is not asked")
        r = self.get(e, "/never")
        self.assertEqual(r.status, 503, r.describe())
        self.assertLess(len(r.body), 100)
        for internal in (b"127.0.0.1", b"backend1", str(o.port).encode()):
            self.assertNotIn(internal, r.body)
        self.assertEqual(o.hits("/never"), 0)

    def test_first_byte_timeout_gives_504(self):
        o = self.origin()
        held = harness.Hold()
        o.route("/slow", headers={"Cache-Control": "max-age=60"}, body=b"late", hold=held)
        e = self.edgecache([o])
        tok = self.token(e)
        r = self.api(e, "PUT", BASE + "/backend/backend1", {"first_byte_timeout": 500}, tok, expect=200)
        self.assertEqual(self.js(r)["first_byte_timeout"], 500)
        r = self.get(e, "/slow", timeout=10)
        self.assertEqual(r.status, 504, r.describe())
        # the origin holds its answer until released: the 504 is the first-byte timeout's own
        self.assertEqual((held.arrived, held.waiting), (1, 1), "the 504 came while the origin still held its answer")
        held.release()


class Api(BackendCase):
    def test_crud_fastly_shapes_json_and_form(self):
        o = self.origin()
        e = self.edgecache([o])
        tok = self.token(e)
        r = self.api(e, "GET", BASE + "/backend", token=tok, expect=200)
        listed = self.js(r)
        self.assertEqual(len(listed), 1)
        b1 = listed[0]
        self.assertEqual(b1["name"], "backend1")
        self.assertEqual(b1["address"], "127.0.0.1")
        self.assertEqual(b1["port"], o.port)
        for field, default in (("weight", 100), ("connect_timeout", 1000), ("first_byte_timeout", 15000),
                               ("between_bytes_timeout", 10000), ("max_conn", 200), ("override_host", None),
                               ("healthcheck", None), ("shield", None)):
            self.assertEqual(b1[field], default, field)
        self.assertEqual(b1["service_id"], SID)
        self.assertEqual(b1["version"], 1)

        # health check with Fastly's form-encoded body; defaults filled in
        r = self.api(e, "POST", BASE + "/healthcheck", {"name": "hc form", "path": "/status"}, tok, form=True, expect=200)
        hc = self.js(r)
        self.assertEqual(hc["name"], "hc form")
        self.assertEqual((hc["method"], hc["expected_response"], hc["check_interval"], hc["timeout"], hc["window"],
                          hc["threshold"], hc["initial"]), ("HEAD", 200, 5000, 500, 5, 3, 2))
        # backend by form, referencing it (name with a space: percent-encoded in paths)
        r = self.api(e, "POST", BASE + "/backend", {"name": "second", "address": "127.0.0.1", "port": str(o.port),
                                                    "weight": "7", "healthcheck": "hc form"}, tok, form=True, expect=200)
        self.assertEqual(self.js(r)["weight"], 7)
        self.assertEqual(self.js(r)["healthcheck"], "hc form")
        r = self.api(e, "GET", BASE + "/healthcheck/hc%20form", token=tok, expect=200)
        self.assertEqual(self.js(r)["path"], "/status")
        # JSON update, then rename the health check: the backend follows
        r = self.api(e, "PUT", BASE + "/healthcheck/hc%20form", {"name": "hc2", "window": 4}, tok, expect=200)
        self.assertEqual(self.js(r)["window"], 4)
        r = self.api(e, "GET", BASE + "/backend/second", token=tok, expect=200)
        self.assertEqual(self.js(r)["healthcheck"], "hc2")
        # delete
        self.api(e, "GET", BASE + "/healthcheck/nope", token=tok, expect=404)
        r = self.api(e, "DELETE", BASE + "/backend/second", token=tok, expect=200)
        self.assertEqual(self.js(r), {"status": "ok"})
        self.api(e, "GET", BASE + "/backend/second", token=tok, expect=404)
        self.api(e, "DELETE", BASE + "/healthcheck/hc2", token=tok, expect=200)
        self.assertEqual(self.js(self.api(e, "GET", BASE + "/healthcheck", token=tok, expect=200)), [])

    def test_bad_values_name_the_field_and_change_nothing(self):
        o = self.origin()
        e = self.edgecache([o])
        tok = self.token(e)
        self.add_healthcheck(e, tok, name="used")
        self.api(e, "PUT", BASE + "/backend/backend1", {"healthcheck": "used"}, tok, expect=200)
        before = self.js(self.api(e, "GET", BASE + "/backend", token=tok, expect=200))
        cases = [
            ("PUT", BASE + "/backend/backend1", {"healthcheck": "missing", "weight": 5}, "healthcheck"),
            ("PUT", BASE + "/backend/backend1", {"port": 70000}, "port"),
            ("PUT", BASE + "/backend/backend1", {"weight": -1}, "weight"),
            ("PUT", BASE + "/backend/backend1", {"wieght": 1}, "wieght"),
            ("POST", BASE + "/backend", {"name": "backend1", "address": "127.0.0.1"}, "name"),
            ("POST", BASE + "/backend", {"name": "x"}, "address"),
            ("POST", BASE + "/backend", {"name": "x", "address": "no-such-host.invalid"}, "address"),
            ("POST", BASE + "/healthcheck", {"name": "used"}, "name"),
            ("POST", BASE + "/healthcheck", {"name": "w", "window": 3, "threshold": 4}, "threshold"),
            ("DELETE", BASE + "/healthcheck/used", None, "name"),
            ("PUT", "/config/load-balancing", {"load_balancing": "random"}, "load_balancing"),
        ]
        for method, path, body, field in cases:
            with self.subTest(method=method, path=path, body=body):
                r = self.api(e, method, path, body, tok)
                self.assertEqual(r.status, 400, r.describe())
                got = self.js(r)
                self.assertEqual(got["msg"], "Bad request")
                self.assertTrue(got["detail"].startswith(field + ":"), got["detail"])
        r = self.api(e, "PUT", BASE + "/backend/backend1", {"weight": "-1"}, tok, form=True)
        self.assertEqual(r.status, 400)
        self.assertTrue(self.js(r)["detail"].startswith("weight:"))
        r = self.api(e, "POST", BASE + "/backend", "{not json", tok)
        self.assertEqual(r.status, 400)
        self.assertEqual(self.js(self.api(e, "GET", BASE + "/backend", token=tok, expect=200)), before)
        self.assertEqual([h["name"] for h in self.js(self.api(e, "GET", BASE + "/healthcheck", token=tok))], ["used"])

    def test_list_limits(self):
        """Each list stops at its limit with a 400 naming it; nothing past it is stored."""
        o = self.origin()
        e = self.edgecache([o])
        tok = self.token(e)
        for kind, noun, have, body in (("backend", "backends", 1, lambda i: {"name": "b%d" % i, "address": "127.0.0.1",
                                                                                "port": o.port}),
                                       ("healthcheck", "health checks", 0, lambda i: {"name": "h%d" % i, "path": "/"})):
            with self.subTest(kind=kind):
                for i in range(have, 64):
                    self.api(e, "POST", BASE + "/" + kind, body(i), tok, expect=200)
                r = self.api(e, "POST", BASE + "/" + kind, body(64), tok)
                self.assertEqual(r.status, 400, r.describe())
                self.assertEqual(self.js(r)["detail"], "name: too many %s (at most 64)" % noun)
                self.assertEqual(len(self.js(self.api(e, "GET", BASE + "/" + kind, token=tok, expect=200))), 64)
                # an update of one that is there still works at the limit
                self.api(e, "PUT", BASE + "/%s/%s" % (kind, body(63)["name"]), {"name": body(63)["name"]}, tok,
                         expect=200)

    def test_auth_scopes_and_routes(self):
        e = self.edgecache([self.origin()])
        glob, read, purge = self.token(e), self.token(e, "global:read"), self.token(e, "purge_select")
        self.assertEqual(self.api(e, "GET", BASE + "/backend").status, 401)
        self.assertEqual(self.api(e, "GET", BASE + "/backend", token="not-a-token").status, 401)
        self.assertEqual(self.api(e, "GET", BASE + "/backend", token=purge).status, 403)
        self.assertEqual(self.api(e, "GET", BASE + "/backend", token=read).status, 200)
        self.assertEqual(self.api(e, "GET", "/config/load-balancing", token=read).status, 200)
        self.assertEqual(self.api(e, "POST", BASE + "/healthcheck", {"name": "x"}, read).status, 403)
        self.assertEqual(self.api(e, "PUT", "/config/load-balancing", {"load_balancing": "first"}, read).status, 403)
        self.assertEqual(self.api(e, "GET", "/service/other/version/1/backend", token=glob).status, 404)
        r = self.api(e, "PATCH", BASE + "/backend/backend1", {"weight": 1}, glob)
        self.assertEqual(r.status, 405)
        self.assertIn("PUT", r.header("allow"))
        self.assertEqual(self.api(e, "DELETE", BASE + "/backend", token=glob).status, 405)
        # any version names the live configuration
        r = self.api(e, "GET", "/service/%s/version/42/backend/backend1" % SID, token=read, expect=200)
        self.assertEqual(self.js(r)["version"], 42)

    def test_configuration_survives_restart(self):
        o1, o2 = self.origin(), self.origin()
        for o, body in ((o1, b"one"), (o2, b"two")):
            self.health_route(o)
            o.route_prefix("/p/", **uncached(body))
        e = self.edgecache([o1])
        tok = self.token(e)
        self.add_healthcheck(e, tok, name="persisted", window=4)
        self.api(e, "POST", BASE + "/backend", {"name": "api-made", "address": "127.0.0.1", "port": str(o2.port),
                                                "healthcheck": "persisted", "weight": "250"}, tok, form=True, expect=200)
        self.api(e, "PUT", "/config/load-balancing", {"load_balancing": "first"}, tok, expect=200)
        self.api(e, "DELETE", BASE + "/backend/backend1", token=tok, expect=200)
        backends = self.js(self.api(e, "GET", BASE + "/backend", token=tok))
        checks = self.js(self.api(e, "GET", BASE + "/healthcheck", token=tok))
        self.assertEqual(e.restart(), 0)  # same flags: --backend o1 must not come back
        self.assertEqual(self.js(self.api(e, "GET", BASE + "/backend", token=tok, expect=200)), backends)
        self.assertEqual(self.js(self.api(e, "GET", BASE + "/healthcheck", token=tok, expect=200)), checks)
        self.assertEqual(self.js(self.api(e, "GET", "/config/load-balancing", token=tok)), {"load_balancing": "first"})
        wait_until(lambda: self.get(e, "/p/1").status == 200, 5, what="the health-checked backend up after restart")
        self.assertEqual(self.get(e, "/p/2").body, b"two")
        self.assertEqual(o1.hits("/p/2"), 0)

    def test_change_applies_at_once_without_dropping_inflight(self):
        o1, o2 = self.origin(), self.origin()
        o1.route("/slow", headers={"Cache-Control": "no-store"}, body=b"from one", delay=1.5)
        o1.route_prefix("/q/", **uncached(b"one"))
        o2.route_prefix("/q/", **uncached(b"two"))
        e = self.edgecache([o1], args=["--threads", "1"])
        tok = self.token(e)
        result = {}

        def slow():
            result["r"] = self.get(e, "/slow", timeout=10)

        t = threading.Thread(target=slow)
        t.start()
        wait_until(lambda: o1.hits("/slow") == 1, 5, what="the slow request at the origin")
        # replace backend1 by backend2 while the request is in flight
        self.api(e, "POST", BASE + "/backend", {"name": "b2", "address": "127.0.0.1", "port": o2.port}, tok, expect=200)
        self.api(e, "DELETE", BASE + "/backend/backend1", token=tok, expect=200)
        for i in range(5):
            self.assertEqual(self.get(e, "/q/%d" % i).body, b"two", "the change applies at once")
        t.join(scaled(10))
        self.assertEqual(result["r"].status, 200, result["r"].describe())
        self.assertEqual(result["r"].body, b"from one")
        self.assertEqual(o1.hits("/q/0"), 0)
        time.sleep(1.2)  # the worker's tick frees the old backend's pool; still serving
        self.assertEqual(self.get(e, "/q/x").body, b"two")


class Shield(BackendCase):
    def assertServedAs(self, resp, expected, msg=None):
        """X-Cache of this node: the last value (a shield's own X-Cache comes first, as with Fastly)."""
        values = [v.strip().upper() for v in ", ".join(resp.header_all("x-cache")).split(",") if v.strip()]
        self.assertTrue(values and values[-1] == expected,
                        (msg + "\n" if msg else "") + "expected X-Cache ...%s, got %r" % (expected, values))

    def test_edge_shield_origin_hit_counts_and_purge_forwarding(self):
        o = self.origin()
        o.route("/sh", headers={"Cache-Control": "max-age=300", "Content-Type": "text/plain"}, body=b"shielded")
        shield = self.edgecache([o])
        edge = self.edgecache([], args=["--shield", "127.0.0.1:%d" % shield.proxy_port])
        r = self.get(edge, "/sh")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.body, b"shielded")
        self.assertServedAs(r, "MISS")
        self.assertEqual(o.hits("/sh"), 1, "a miss at the edge is one miss at the shield")
        self.assertServedAs(self.get(shield, "/sh"), "HIT")
        self.assertServedAs(self.get(edge, "/sh"), "HIT")
        # a second edge node is served by the shield without touching the origin
        edge2 = self.edgecache([], args=["--shield", "127.0.0.1:%d" % shield.proxy_port])
        r = self.get(edge2, "/sh")
        self.assertEqual(r.body, b"shielded")
        self.assertEqual(o.hits("/sh"), 1)
        # the --shield backend is visible over the API
        tok = self.token(edge)
        listed = self.js(self.api(edge, "GET", BASE + "/backend", token=tok, expect=200))
        self.assertEqual([(b["name"], b["shield"], b["port"]) for b in listed], [("shield", "shield", shield.proxy_port)])
        # a purge of only the edge's own copy (no --shield-admin): the shield still has it
        r = self.api(edge, "POST", "/purge/www.example.test/sh", token=tok, expect=200)
        r = self.get(edge, "/sh")
        self.assertServedAs(r, "MISS")
        self.assertEqual(o.hits("/sh"), 1, "refilled from the shield")
        # an edge that forwards purges: acknowledged only after the shield applied it too
        shield_tok = self.token(shield, "purge_select")
        edge3 = self.edgecache([], args=["--shield", "127.0.0.1:%d" % shield.proxy_port,
                                         "--shield-admin", "127.0.0.1:%d" % shield.admin_port,
                                         "--shield-token", shield_tok])
        tok3 = self.token(edge3)
        self.assertEqual(self.get(edge3, "/sh").body, b"shielded")
        self.assertEqual(o.hits("/sh"), 1)
        r = self.api(edge3, "POST", "/purge/www.example.test/sh", token=tok3, expect=200)
        self.assertServedAs(self.get(shield, "/sh"), "MISS", "the purge reached the shield before the 200")
        self.assertEqual(o.hits("/sh"), 2)
        # PURGE on the edge's proxy listener is forwarded as well
        o.route("/sh2", headers={"Cache-Control": "max-age=300"}, body=b"two")
        self.assertEqual(self.get(edge3, "/sh2").status, 200)
        self.assertEqual(o.hits("/sh2"), 1)
        r = request(edge3.proxy_port, "PURGE", "/sh2", headers={"Host": "www.example.test", "Fastly-Key": tok3})
        self.assertEqual(r.status, 200, r.describe())
        self.assertServedAs(self.get(shield, "/sh2"), "MISS")
        self.assertEqual(o.hits("/sh2"), 2)
        # surrogate-key purges too
        o.route("/sk", headers={"Cache-Control": "max-age=300", "Surrogate-Key": "tag-a"}, body=b"k")
        self.get(edge3, "/sk")
        self.assertEqual(o.hits("/sk"), 1)
        self.api(edge3, "POST", "/service/%s/purge/tag-a" % SID, token=tok3, expect=200)
        self.assertServedAs(self.get(shield, "/sk"), "MISS")
        # a shield that refuses (bad token): the edge does not acknowledge
        edge4 = self.edgecache([], args=["--shield", "127.0.0.1:%d" % shield.proxy_port,
                                         "--shield-admin", "127.0.0.1:%d" % shield.admin_port,
                                         "--shield-token", "wrong"])
        tok4 = self.token(edge4)
        r = self.api(edge4, "POST", "/purge/www.example.test/sh", token=tok4)
        self.assertEqual(r.status, 502, r.describe())

    def test_shield_refusing_a_purge_is_502_bad_gateway_on_both_listeners(self):
        """The one purge answer: a shield that refuses the forward (a wrong --shield-token) is a
        502 "Bad Gateway" with the same JSON on the proxy listener's PURGE as on the admin API
        (the PURGE answer used to go out as "502 Unknown", written apart from the admin's)."""
        o = self.origin()
        shield = self.edgecache([o])
        edge = self.edgecache([], args=["--shield", "127.0.0.1:%d" % shield.proxy_port,
                                        "--shield-admin", "127.0.0.1:%d" % shield.admin_port,
                                        "--shield-token", "wrong"])
        tok = self.token(edge)
        want = {"msg": "Purge failed", "detail": "shield: the purge could not be applied on the shield node"}
        answers = [request(edge.proxy_port, "PURGE", "/r", headers={"Host": "www.example.test", "Fastly-Key": tok}),
                   self.api(edge, "POST", "/purge/www.example.test/r", token=tok)]
        for r in answers:
            self.assertEqual((r.status, r.reason), (502, "Bad Gateway"), r.describe())
            self.assertEqual(r.headers.get("content-type"), "application/json", r.describe())
            self.assertEqual(json.loads(r.body), want, r.describe())

    def test_shield_down_falls_back_to_origin(self):
        o = self.origin()
        o.route("/fb", headers={"Cache-Control": "max-age=300"}, body=b"direct")
        edge = self.edgecache([o], args=["--shield", "127.0.0.1:%d" % closed_port()])
        # the shield refuses connections: the GET is retried on the origin
        r = self.get(edge, "/fb")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.body, b"direct")
        self.assertEqual(o.hits("/fb"), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()

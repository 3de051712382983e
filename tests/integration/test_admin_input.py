"""
tests/integration/test_admin_input.py — issue 19, items 2, 5 and 10: hostile bytes over the
admin API, against the real binary.

Item 2: an error answer that quotes request bytes which are not UTF-8 (a field name cut in the
middle of a character by "%.64s", a form body of b"\\xff\\xfe", a path segment of %ff) made
json_pack fail and the process abort. Every request here must get a clear 4xx JSON answer
(valid UTF-8, parseable, with msg and detail), and the process must still answer /health after
each one: a purge_select token is all the attacker has for the purge routes, global or
global:read for the configuration routes.

Item 10: batch-purge keys that are not UTF-8 were purged but left out of the answer (a JSON
object's names are UTF-8). Such a batch is now refused with 400 before anything is purged.

Item 5: surrogate keys longer than LMDB's 511-byte key limit were neither indexed nor purged,
while the purge said ok. Every key the API accepts (up to 1,024 bytes) is purgeable; a key the
origin sends beyond 1,024 bytes is ignored, with every key after it in the header (Fastly's
rule), and the API refuses such a key with 400.
"""

import json

import harness
from harness import request

SID = "edgecache"
HOST = {"Host": "www.example.test"}

# 63 ASCII bytes and then "é" (two bytes): "%.64s" cut it after its first byte
CUT_NAME = "a" * 63 + "\u00e9"


class AdminInputCase(harness.TestCase):
    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o])

    def token(self, scope):
        return harness.create_token(self.e, scope)

    def send(self, method, path, token, headers=None, body=None):
        h = {"Fastly-Key": token}
        h.update(headers or {})
        return request(self.e.admin_port, method, path, headers=h, body=body)

    def assert_alive(self, what):
        self.assertTrue(self.e.running, "the process ended after %s\n%s" % (what, self.e.stderr_tail()))
        r = request(self.e.admin_port, "GET", "/health")
        self.assertEqual(r.status, 200, "no /health after %s\n%s" % (what, r.describe()))
        self.assertEqual(json.loads(r.body), {"status": "ok"})

    def assert_clear_4xx(self, r, what, status=400):
        """A clear JSON error: the status, application/json, UTF-8, msg and detail strings."""
        self.assertEqual(r.status, status, "%s\n%s" % (what, r.describe()))
        self.assertEqual(r.header("content-type"), "application/json", what)
        try:
            doc = json.loads(r.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            self.fail("%s: not UTF-8 JSON (%s): %r" % (what, e, r.body))
        self.assertIsInstance(doc.get("msg"), str, what)
        self.assertIsInstance(doc.get("detail"), str, what)
        self.assertNotIn("could not be encoded", doc["detail"], "%s: the detail itself was encodable" % what)
        return doc

    # --- item 2: what a purge_select token can send

    def test_purge_select_token_cannot_end_the_process(self):
        tok = self.token("purge_select")
        batch = "/service/%s/purge" % SID
        cases = [
            # the case: an unknown JSON field name cut inside "é" by %.64s
            ("unknown field cut mid character", "POST", batch, {"Content-Type": "application/json"},
             json.dumps({CUT_NAME: 1}, ensure_ascii=False).encode()),
            # three- and four-byte characters cut at every offset
            ("field cut in a 3-byte character", "POST", batch, {}, json.dumps({"b" * 62 + "\u20ac": 1}, ensure_ascii=False).encode()),
            ("field cut in a 4-byte character", "POST", batch, {}, json.dumps({"c" * 61 + "\U0001f600": 1}, ensure_ascii=False).encode()),
            ("field cut after 2 of 4 bytes", "POST", batch, {}, json.dumps({"c" * 62 + "\U0001f600": 1}, ensure_ascii=False).encode()),
            # a huge field name
            ("huge field name", "POST", batch, {}, json.dumps({"\u00e9" * 20000: 1}, ensure_ascii=False).encode()),
            # not JSON, with high bytes the lexer stops at
            ("raw high bytes as JSON", "POST", batch, {}, b"\xff\xfe"),
            ("invalid JSON after many characters", "POST", batch, {}, ("{\"" + "\u00e9" * 300).encode()),
            # keys: high bytes in the Surrogate-Key header that are not UTF-8 (item 10 refuses them)
            ("batch header with latin-1 bytes", "POST", batch, {"Surrogate-Key": b"caf\xe9 ok"}, None),
            # a key with a NUL through percent-encoding, and an over-long one
            ("key with %00", "POST", "/service/%s/purge/a%%00b" % SID, {}, None),
            ("key over 1024 bytes", "POST", "/service/%s/purge/%s" % (SID, "k" * 1025), {}, None),
            # a service id with high bytes (quoted in the 404)
            ("service id with high bytes", "POST", "/service/%ff%fe/purge/k", {}, None),
            # a URL purge whose host the proxy would refuse (userinfo is not part of a Host)
            ("url purge with userinfo in the host", "POST", "/purge/us@www.example.test/a", {}, None),
        ]
        for what, method, path, headers, body in cases:
            r = self.send(method, path, tok, headers, body)
            self.assertTrue(400 <= r.status < 500, "%s\n%s" % (what, r.describe()))
            self.assert_clear_4xx(r, what, r.status)
            self.assert_alive(what)
        # a host with escaped high bytes is an RFC 3986 reg-name (pct-encoded), as the proxy's
        # Host check takes it: the purge names what the proxy could have stored under it
        r = self.send("POST", "/purge/www.exa%ffmple.test/a", tok, {}, None)
        self.assertEqual(r.status, 200, r.describe())
        self.assert_alive("url purge with %ff in the host")

    def test_a_credential_of_high_bytes_is_a_plain_401(self):
        for tok in (b"\xff\xfe", b"\xc3" * 600):
            r = request(self.e.admin_port, "POST", "/service/%s/purge/k" % SID, headers={"Fastly-Key": tok})
            self.assertEqual(r.status, 401, r.describe())
            self.assertEqual(json.loads(r.body.decode("utf-8")), {"msg": "Provided credentials are missing or invalid"})
            self.assert_alive("Fastly-Key %r" % tok[:4])

    def test_the_detail_shows_the_name_escaped_and_cut_between_characters(self):
        tok = self.token("purge_select")
        r = self.send("POST", "/service/%s/purge" % SID, tok, {}, json.dumps({CUT_NAME: 1}, ensure_ascii=False).encode())
        doc = self.assert_clear_4xx(r, "cut name")
        self.assertIn("unknown field", doc["detail"])
        # what is shown is the name's whole characters, never half of "é"
        shown = doc["detail"].split(":")[0]
        self.assertTrue(CUT_NAME.startswith(shown.rstrip(".")), doc["detail"])

    # --- item 2: what the configuration tokens can send

    def test_form_bodies_with_high_bytes_get_400(self):
        tok = self.token("global")
        path = "/service/%s/version/1/backend" % SID
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        cases = [
            ("the issue's form body", b"\xff\xfe"),
            ("a field name that decodes to non-UTF-8", b"%ff%fe=1"),
            ("name and value not UTF-8", b"%ff=%ff"),
            ("value not UTF-8", b"name=%ff"),
            ("field name cut by the detail", ("a" * 63 + "\u00e9").encode() + b"=1"),
            ("malformed escape after high bytes", b"\xc3\xa9" * 40 + b"%zz=1"),
            ("NUL through percent-encoding", b"name=a%00b"),
            ("a huge field", b"x" * 60000 + b"=1"),
        ]
        for what, body in cases:
            r = self.send("POST", path, tok, form, body)
            self.assert_clear_4xx(r, what)
            self.assert_alive(what)
        # nothing was created by any of them
        r = self.send("GET", path, tok)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual([b["name"] for b in json.loads(r.body)], ["backend1"])

    def test_configuration_routes_quote_no_raw_bytes(self):
        tok = self.token("global")
        cases = [
            ("token create: cut field", "POST", "/tokens", json.dumps({CUT_NAME: 1}, ensure_ascii=False).encode(), 400),
            ("token create: scope cut mid character", "POST", "/tokens",
             json.dumps({"scope": CUT_NAME}, ensure_ascii=False).encode(), 400),
            ("token create: scopes array, one cut", "POST", "/tokens",
             json.dumps({"scopes": ["purge_select", "x" * 62 + "\u20ac"]}, ensure_ascii=False).encode(), 400),
            ("settings: cut field", "PUT", "/config/settings", json.dumps({CUT_NAME: 1}, ensure_ascii=False).encode(), 400),
            ("load balancing: cut field", "PUT", "/config/load-balancing",
             json.dumps({CUT_NAME: 1}, ensure_ascii=False).encode(), 400),
            ("header rules: cut field", "POST", "/config/header-rules",
             json.dumps({"phase": "deliver", "action": "unset", "header": "x-a", CUT_NAME: 1}, ensure_ascii=False).encode(),
             400),
            ("header rules: cut condition field", "POST", "/config/header-rules",
             json.dumps({"phase": "deliver", "action": "unset", "header": "x-a", "condition": {CUT_NAME: 1}},
                        ensure_ascii=False).encode(), 400),
            ("backend JSON: cut field", "POST", "/service/%s/version/1/backend" % SID,
             json.dumps({"name": "b2", "address": "127.0.0.1", CUT_NAME: 1}, ensure_ascii=False).encode(), 400),
            ("health check JSON: cut field", "POST", "/service/%s/version/1/healthcheck" % SID,
             json.dumps({"name": "h", "path": "/", CUT_NAME: 1}, ensure_ascii=False).encode(), 400),
            ("backend named %ff", "GET", "/service/%s/version/1/backend/%%ff%%fe" % SID, None, 404),
            ("health check named with a cut character", "PUT", "/service/%s/version/1/healthcheck/%%c3" % SID,
             b"{}", 404),
            ("token id of high bytes", "DELETE", "/tokens/%ff%ff%ff%ff%ff%ff%ff%ff%ff%ff%ff%ff%ff%ff%ff%ff", None, 404),
        ]
        for what, method, path, body, status in cases:
            r = self.send(method, path, tok, {"Content-Type": "application/json"}, body)
            self.assert_clear_4xx(r, what, status)
            self.assert_alive(what)

    def test_global_read_token_gets_a_404_for_a_name_of_high_bytes(self):
        tok = self.token("global:read")
        r = self.send("GET", "/service/%s/version/1/healthcheck/%%e9t%%e9" % SID, tok)
        doc = self.assert_clear_4xx(r, "GET healthcheck/%e9t%e9", 404)
        self.assertIn("\\xe9t\\xe9", doc["detail"])
        self.assert_alive("GET healthcheck/%e9t%e9")


def cached(tag):
    return {"Cache-Control": "max-age=300", "Content-Type": "text/plain", "Surrogate-Key": tag}


class SurrogateKeyCase(harness.TestCase):
    """Items 5 and 10 end to end: the origin tags, the admin API purges, the proxy shows it."""

    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o])
        self.tok = harness.create_token(self.e, "purge_select")

    def get(self, path):
        return request(self.e.proxy_port, "GET", path, headers=HOST)

    def warm(self, path):
        self.assertEqual(self.get(path).status, 200)
        self.assertXCache(self.get(path), "HIT", "warming %s" % path)

    def purge(self, path, headers=None):
        h = {"Fastly-Key": self.tok}
        h.update(headers or {})
        return request(self.e.admin_port, "POST", path, headers=h)

    def test_long_keys_from_the_origin_are_purgeable(self):
        k600 = "k" * 599 + "6"
        k1024 = "m" * 1023 + "1"
        # two keys sharing their first 700 bytes
        p1, p2 = "p" * 700 + "1", "p" * 700 + "2"
        self.o.route("/600", headers=cached("short " + k600), body=b"600")
        self.o.route("/1024", headers=cached(k1024), body=b"1024")
        self.o.route("/p1", headers=cached(p1), body=b"p1")
        self.o.route("/p2", headers=cached(p2), body=b"p2")
        for path in ("/600", "/1024", "/p1", "/p2"):
            self.warm(path)
        r = self.purge("/service/%s/purge/%s" % (SID, k600))
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(self.get("/600"), "MISS", "the 600-byte key purged its object")
        self.assertXCache(self.get("/1024"), "HIT")
        r = self.purge("/service/%s/purge" % SID, {"Surrogate-Key": k1024 + " " + p1})
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(set(json.loads(r.body)), {k1024, p1})
        self.assertXCache(self.get("/1024"), "MISS", "the 1,024-byte key purged its object")
        self.assertXCache(self.get("/p1"), "MISS")
        self.assertXCache(self.get("/p2"), "HIT", "a key sharing 700 bytes with a purged one is another key")
        self.assertEqual(self.o.hits("/600"), 2)
        self.assertEqual(self.o.hits("/p2"), 1)

    def test_a_key_over_1024_bytes_from_the_origin_is_ignored_with_the_keys_after_it(self):
        k2000 = "z" * 2000
        self.o.route("/2000", headers=cached("before %s after" % k2000), body=b"2000")
        self.warm("/2000")
        # the API refuses the key outright: no purge can be acknowledged for it
        r = self.purge("/service/%s/purge/%s" % (SID, k2000))
        self.assertEqual(r.status, 400, r.describe())
        r = self.purge("/service/%s/purge" % SID, {"Surrogate-Key": k2000})
        self.assertEqual(r.status, 400, r.describe())
        # Fastly's rule: the keys after an over-long key are not applied either
        r = self.purge("/service/%s/purge/after" % SID)
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(self.get("/2000"), "HIT", "'after' follows an ignored key: it tags nothing")
        r = self.purge("/service/%s/purge/before" % SID)
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(self.get("/2000"), "MISS")
        self.assertTrue(self.e.running)

    def test_batch_keys_that_are_not_utf8_purge_nothing(self):
        # the origin tags with a Latin-1 byte (\xe9) and a plain key
        self.o.route("/latin", headers=cached("caf\u00e9 plain"), body=b"latin")
        self.warm("/latin")
        r = self.purge("/service/%s/purge" % SID, {"Surrogate-Key": b"caf\xe9 plain"})
        self.assertEqual(r.status, 400, r.describe())
        doc = json.loads(r.body.decode("utf-8"))
        self.assertIn("not valid UTF-8", doc["detail"])
        self.assertIn("caf\\xe9", doc["detail"])
        self.assertXCache(self.get("/latin"), "HIT", "nothing was purged: neither key")
        # the plain key alone is fine, and names itself in the answer
        r = self.purge("/service/%s/purge" % SID, {"Surrogate-Key": b"plain"})
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(set(json.loads(r.body)), {"plain"})
        self.assertXCache(self.get("/latin"), "MISS")
        # a single-key purge names no key in its answer: it takes the Latin-1 key
        self.warm("/latin")
        r = self.purge("/service/%s/purge/caf%%e9" % SID)
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(self.get("/latin"), "MISS")


class LayerLimitsCase(harness.TestCase):
    """Limits that differed between two layers: what the admin API takes, the next layer takes."""

    def token(self, edge, scope):
        return harness.create_token(edge, scope)

    def test_purges_of_long_keys_and_urls_are_forwarded_to_the_shield(self):
        o = self.origin()
        shield = self.edgecache([o])
        edge = self.edgecache([], args=["--shield", "127.0.0.1:%d" % shield.proxy_port,
                                        "--shield-admin", "127.0.0.1:%d" % shield.admin_port,
                                        "--shield-token", self.token(shield, "purge_select")])
        tok = self.token(edge, "purge_select")
        k600 = "s" * 600
        long_path = "/" + "u" * 400
        o.route("/sk", headers=cached(k600), body=b"k")
        o.route(long_path, headers={"Cache-Control": "max-age=300"}, body=b"u")
        for path in ("/sk", long_path):
            self.assertEqual(request(edge.proxy_port, "GET", path, headers=HOST).status, 200)
            self.assertXCache(request(shield.proxy_port, "GET", path, headers=HOST), "HIT")
        # the purge path is over 255 bytes: it used to fail the forward (502) after the local purge
        r = request(edge.admin_port, "POST", "/service/%s/purge/%s" % (SID, k600), headers={"Fastly-Key": tok})
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(request(shield.proxy_port, "GET", "/sk", headers=HOST), "MISS", "the shield purged it too")
        r = request(edge.admin_port, "POST", "/purge/www.example.test" + long_path, headers={"Fastly-Key": tok})
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(request(shield.proxy_port, "GET", long_path, headers=HOST), "MISS")
        # a full batch of the longest keys (a Surrogate-Key header of 256 KB: over the 64 KB
        # the forward took)
        keys = ["%03d" % i + "b" * 1021 for i in range(256)]
        r = request(edge.admin_port, "POST", "/service/%s/purge" % SID,
                    headers={"Fastly-Key": tok, "Surrogate-Key": " ".join(keys)})
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(len(json.loads(r.body)), 256)

    def test_a_json_batch_takes_as_many_keys_as_the_header(self):
        o = self.origin()
        e = self.edgecache([o])
        tok = self.token(e, "purge_select")
        # 256 keys of 1,024 bytes, each byte one that JSON escapes to two: the largest batch
        keys = ["%03d" % i + '"' * 1021 for i in range(256)]
        body = json.dumps({"surrogate_keys": keys})
        self.assertGreater(len(body), 64 * 1024)
        r = request(e.admin_port, "POST", "/service/%s/purge" % SID,
                    headers={"Fastly-Key": tok, "Content-Type": "application/json"}, body=body)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(sorted(json.loads(r.body)), sorted(keys))
        # other routes keep the 64 KiB limit
        r = request(e.admin_port, "POST", "/service/%s/purge/k" % SID,
                    headers={"Fastly-Key": tok, "Content-Type": "application/json"}, body="x" * (64 * 1024 + 1))
        self.assertEqual(r.status, 413, r.describe())
        self.assertEqual(json.loads(r.body)["msg"], "Payload too large")

    def test_a_health_check_path_up_to_1024_bytes_is_taken(self):
        o = self.origin()
        e = self.edgecache([o])
        tok = self.token(e, "global")
        path = "/" + "h" * 299
        r = request(e.admin_port, "POST", "/service/%s/version/1/healthcheck" % SID,
                    headers={"Fastly-Key": tok, "Content-Type": "application/json"},
                    body=json.dumps({"name": "long", "path": path}))
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(json.loads(r.body)["path"], path)
        r = request(e.admin_port, "POST", "/service/%s/version/1/healthcheck" % SID,
                    headers={"Fastly-Key": tok, "Content-Type": "application/json"},
                    body=json.dumps({"name": "too-long", "path": "/" + "h" * 1024}))
        self.assertEqual(r.status, 400, r.describe())

"""GET|POST|PUT|DELETE /config/header-rules: the rules change at once on every worker,
are validated whole, need the right scope, and survive a restart."""
import json

import harness
from harness import request
from test_admin import AdminCase


class HeaderRulesApi(AdminCase):
    def rules(self, token):
        r = self.admin("GET", "/config/header-rules", token)
        self.assertEqual(r.status, 200, r.describe())
        return self.js(r)

    def test_add_apply_delete_persist(self):
        tok = self.token("global")
        ro = self.token("global:read", name="ro")
        self.o.route("/hr/page", headers={"Cache-Control": "max-age=300"}, body=b"page")
        self.assertEqual(self.rules(tok), [])

        # deliver rule: applies to the very next response, hit or miss
        r = self.admin("POST", "/config/header-rules", tok,
                       body={"phase": "deliver", "action": "set", "header": "X-Served-By", "value": "edge-1"})
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(len(self.js(r)), 1)
        for expected in ("MISS", "HIT", "HIT"):
            resp = request(self.e.proxy_port, "GET", "/hr/page")
            self.assertEqual(resp.x_cache, expected)
            self.assertEqual(resp.header("x-served-by"), "edge-1", resp.describe())

        # request rule with a path condition: the origin sees the header only under /hr/
        r = self.admin("POST", "/config/header-rules", tok,
                       body={"phase": "request", "action": "set", "header": "X-Edge", "value": "1",
                             "condition": {"path_prefix": "/hr/"}})
        self.assertEqual(r.status, 200, r.describe())
        self.o.route("/hr/other", headers={"Cache-Control": "no-store"}, body=b"x")
        self.o.route("/elsewhere", headers={"Cache-Control": "no-store"}, body=b"y")
        request(self.e.proxy_port, "GET", "/hr/other")
        request(self.e.proxy_port, "GET", "/elsewhere")
        seen = {req.path: req.headers.get("x-edge") for req in self.o.requests}
        self.assertEqual(seen.get("/hr/other"), "1")
        self.assertIsNone(seen.get("/elsewhere"))

        # invalid rules are refused whole; the list is unchanged
        for bad in ({"phase": "deliver", "action": "bogus", "header": "X"},
                    {"phase": "deliver", "action": "set", "header": "X"},
                    {"phase": "deliver", "action": "set", "header": "X", "value": "a\r\nInjected: 1"},
                    {"phase": "nope", "action": "unset", "header": "X"},
                    {"phase": "deliver", "action": "unset", "header": "X", "extra": 1}):
            r = self.admin("POST", "/config/header-rules", tok, body=bad)
            self.assertEqual(r.status, 400, "%r\n%s" % (bad, r.describe()))
            self.assertIn("header_rules[", self.js(r)["detail"])
        self.assertEqual(len(self.rules(tok)), 2)
        r = self.admin("POST", "/config/header-rules", tok, body="{not json")
        self.assertEqual(r.status, 400)

        # scopes: read-only may read, not write; no token is 401
        self.assertEqual(self.admin("GET", "/config/header-rules", ro).status, 200)
        self.assertEqual(self.admin("POST", "/config/header-rules", ro,
                                    body={"phase": "deliver", "action": "unset", "header": "X"}).status, 403)
        self.assertEqual(self.admin("DELETE", "/config/header-rules", None).status, 401)

        # survives a restart
        self.e.restart()
        self.assertEqual(len(self.rules(tok)), 2)
        resp = request(self.e.proxy_port, "GET", "/hr/page")
        self.assertEqual(resp.header("x-served-by"), "edge-1")

        # delete one by index, then all
        r = self.admin("DELETE", "/config/header-rules/0", tok)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual([x["header"] for x in self.js(r)], ["x-edge"])
        self.assertIsNone(request(self.e.proxy_port, "GET", "/hr/page").header("x-served-by"))
        self.assertEqual(self.admin("DELETE", "/config/header-rules/7", tok).status, 404)
        r = self.admin("PUT", "/config/header-rules", tok,
                       body=[{"phase": "fetch", "action": "unset", "header": "Set-Cookie"}])
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(len(self.js(r)), 1)
        self.assertEqual(self.admin("DELETE", "/config/header-rules", tok).status, 200)
        self.assertEqual(self.rules(tok), [])

    # the headers edgecache writes itself for framing and the connection: a rule's copy would be
    # a second, conflicting line (two Content-Lengths, a chunked GET with a second Host)
    REFUSED = ("Content-Length", "transfer-encoding", "CONNECTION", "keep-alive", "proxy-connection", "te",
               "Trailer", "upgrade", "proxy-authenticate", "proxy-authorization", "Host", "edgecache-purge-seq")

    def test_framing_and_hop_by_hop_names_are_refused_in_every_phase(self):
        tok = self.token("global")
        kept = {"phase": "deliver", "action": "set", "header": "X-Kept", "value": "1"}
        self.assertEqual(self.admin("PUT", "/config/header-rules", tok, body=[kept]).status, 200)
        for phase in ("request", "fetch", "deliver"):
            for name in self.REFUSED:
                for action, value in (("set", "chunked"), ("append", "99999"), ("unset", None)):
                    bad = {"phase": phase, "action": action, "header": name}
                    if value is not None:
                        bad["value"] = value
                    for method, body in (("POST", bad), ("PUT", [kept, bad])):
                        r = self.admin(method, "/config/header-rules", tok, body=body)
                        self.assertEqual(r.status, 400, "%s %r\n%s" % (method, bad, r.describe()))
                        detail = self.js(r)["detail"]  # index 1: after the kept rule, appended or listed
                        self.assertIn('header_rules[1].header: "%s" is not allowed: ' % name.lower(), detail)
                        if name == "Host":
                            self.assertIn("override_host", detail)
        # nothing was stored: the list is the one rule, here and after a restart
        self.assertEqual(self.rules(tok), [{"phase": "deliver", "action": "set", "header": "x-kept", "value": "1"}])
        self.e.restart()
        self.assertEqual(self.rules(tok), [{"phase": "deliver", "action": "set", "header": "x-kept", "value": "1"}])

    def test_an_ordinary_header_still_works_in_every_phase(self):
        tok = self.token("global")
        self.o.route("/hr/foo", headers={"Cache-Control": "max-age=300"}, body=b"abc")
        r = self.admin("PUT", "/config/header-rules", tok,
                       body=[{"phase": "request", "action": "set", "header": "X-Foo", "value": "to-origin"},
                             {"phase": "fetch", "action": "set", "header": "x-foo-stored", "value": "kept"},
                             {"phase": "deliver", "action": "append", "header": "X-Foo", "value": "to-client"}])
        self.assertEqual(r.status, 200, r.describe())
        for expected in ("MISS", "HIT"):
            resp = request(self.e.proxy_port, "GET", "/hr/foo")
            self.assertEqual((resp.status, resp.x_cache, resp.body), (200, expected, b"abc"), resp.describe())
            self.assertEqual(resp.header("x-foo-stored"), "kept", resp.describe())
            self.assertEqual(resp.header("x-foo"), "to-client", resp.describe())
            self.assertEqual(resp.header_all("content-length"), ["3"], resp.describe())
            self.assertEqual(resp.header_all("transfer-encoding"), [], resp.describe())
        self.assertEqual([req.headers.get("x-foo") for req in self.o.requests], ["to-origin"])


if __name__ == "__main__":
    import unittest
    unittest.main()

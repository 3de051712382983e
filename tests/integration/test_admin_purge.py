"""
tests/integration/test_admin_purge.py — issue 4: purges through the admin API and PURGE on the
proxy listener, end to end against the real binary: key purges (hard, soft, batches and their
limits, many in flight, clients hanging up), purge all, URL purges (every form, every Vary
variant, soft, PURGE, during an in-flight fetch) and their durability across kill -9 and lost
store writes. AdminCase and the shared constants are test_admin.py's.
"""

import http.client
import json
import os
import socket
import threading

import harness
from harness import request, scaled
from test_admin import AdminCase, HOST, MSG_401, MSG_403, PURGE_ID_RE, SID, cached


class KeyPurges(AdminCase):
    def test_hard_key_purge_then_miss(self):
        tok = self.token("purge_select")
        self.o.route("/k1", headers=cached("k1 shared"), body=b"one")
        self.o.route("/other", headers=cached("zzz"), body=b"other")
        self.warm("/k1")
        self.warm("/other")
        pid = self.assertPurgeOk(self.admin("POST", "/service/%s/purge/k1" % SID, token=tok))
        r = self.get("/k1")
        self.assertXCache(r, "MISS", "after a hard purge")
        self.assertEqual(self.o.hits("/k1"), 2)
        self.assertXCache(self.get("/other"), "HIT", "untagged objects stay")
        # ids are unique
        pid2 = self.assertPurgeOk(self.admin("POST", "/service/%s/purge/shared" % SID, token=tok))
        self.assertNotEqual(pid, pid2)

    def test_soft_key_purge_keeps_the_object_but_stale(self):
        tok = self.token("purge_select")
        seen = []

        def handler(req):
            seen.append(req.headers.get("if-none-match"))
            if req.headers.get("if-none-match") == '"v1"':
                return 304, cached("soft"), b""
            return 200, cached("soft"), b"soft body"

        self.o.route("/soft", handler=handler)
        self.warm("/soft")
        self.assertEqual(seen, [None])
        self.assertPurgeOk(self.admin("POST", "/service/%s/purge/soft" % SID, token=tok,
                                      headers={"Fastly-Soft-Purge": "1"}))
        r = self.get("/soft")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.body, b"soft body", "the stored body is still there")
        self.assertEqual(len(seen), 2, "a soft-purged object is stale: it is revalidated")
        self.assertEqual(seen[1], '"v1"', "revalidated with the stored validator, so it was kept")
        # a hard purge removes it: the next fetch is unconditional
        self.assertPurgeOk(self.admin("POST", "/service/%s/purge/soft" % SID, token=tok))
        self.get("/soft")
        self.assertIsNone(seen[-1], "after a hard purge nothing is left to revalidate")

    def test_batch_purge_with_header_and_json(self):
        tok = self.token("purge_select")
        for name, tag in (("a", "ka"), ("b", "kb"), ("c", "kc"), ("d", "kd")):
            self.o.route("/" + name, headers=cached(tag), body=name.encode())
            self.warm("/" + name)
        r = self.admin("POST", "/service/%s/purge" % SID, token=tok, headers={"Surrogate-Key": "ka kb"})
        self.assertEqual(r.status, 200, r.describe())
        body = self.js(r)
        self.assertEqual(set(body), {"ka", "kb"})
        for v in body.values():
            self.assertRegex(v, PURGE_ID_RE)
        self.assertNotEqual(body["ka"], body["kb"])
        self.assertXCache(self.get("/a"), "MISS")
        self.assertXCache(self.get("/b"), "MISS")
        self.assertXCache(self.get("/c"), "HIT")
        r = self.admin("POST", "/service/%s/purge" % SID, token=tok, body={"surrogate_keys": ["kc", "kd"]},
                       headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(set(self.js(r)), {"kc", "kd"})
        self.assertXCache(self.get("/c"), "MISS")
        self.assertXCache(self.get("/d"), "MISS")

    def test_batch_limits_and_bad_bodies(self):
        tok = self.token("global")
        path = "/service/%s/purge" % SID
        keys = ["k%d" % i for i in range(257)]
        r = self.admin("POST", path, token=tok, headers={"Surrogate-Key": " ".join(keys)})
        self.assertEqual(r.status, 400)
        self.assertEqual(self.js(r)["msg"], "Bad request")
        r = self.admin("POST", path, token=tok, body={"surrogate_keys": keys})
        self.assertEqual(r.status, 400)
        r = self.admin("POST", path, token=tok, body={"surrogate_keys": keys[:256]})
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(len(self.js(r)), 256)
        for bad in ('{"surrogate_keys": ["a"', '{"surrogate_keys": "a"}', '{"keys": ["a"]}', '[]',
                    '{"surrogate_keys": [1]}', '{"surrogate_keys": []}', '{"surrogate_keys": ["a b"]}'):
            r = self.admin("POST", path, token=tok, body=bad)
            self.assertEqual(r.status, 400, bad)
            body = self.js(r)
            self.assertEqual(body["msg"], "Bad request", bad)
            self.assertTrue(body.get("detail"), bad)
        r = self.admin("POST", path, token=tok)
        self.assertEqual(r.status, 400, "no keys at all")

    def test_many_purges_in_flight_at_once(self):
        results = self.purge_keys_from_threads(self.token("purge_select"), "key-")
        self.assertEqual(len(results), 200)
        self.assertTrue(all(s == 200 for s, _ in results))
        self.assertEqual(len({i for _, i in results}), 200, "every purge has its own id")

    def test_clients_that_hang_up_mid_purge(self):
        tok = self.token("purge_select")
        for i in range(30):
            with socket.create_connection(("127.0.0.1", self.e.admin_port), timeout=scaled(5)) as s:
                s.sendall(("POST /service/%s/purge/gone-%d HTTP/1.1\r\nHost: x\r\nFastly-Key: %s\r\n"
                           "Content-Length: 0\r\n\r\n" % (SID, i, tok)).encode())
        self.assertPurgeOk(self.admin("POST", "/service/%s/purge/after" % SID, token=tok))
        self.assertEqual(self.admin("GET", "/health").status, 200)


class PurgeAll(AdminCase):
    def test_purge_all(self):
        tok = self.token("purge_all")
        for p in ("/x", "/y"):
            self.o.route(p, headers=cached(), body=p.encode())
            self.warm(p)
        r = self.admin("POST", "/service/%s/purge_all" % SID, token=tok, headers={"Fastly-Soft-Purge": "1"})
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(self.js(r), {"status": "ok"})
        self.assertXCache(self.get("/x"), "MISS", "purge_all is never soft")
        self.assertXCache(self.get("/y"), "MISS")


class UrlPurges(AdminCase):
    def test_admin_url_purge_forms(self):
        tok = self.token("purge_select")
        self.o.route("/page?x=1", headers=cached(), body=b"p1")
        self.o.route("/page2", headers=cached(), body=b"p2")
        self.o.route("/page3", headers=cached(), body=b"p3")
        self.warm("/page?x=1")
        self.warm("/page2")
        self.warm("/page3")
        self.assertPurgeOk(self.admin("POST", "/purge/www.example.test/page?x=1", token=tok))
        self.assertXCache(self.get("/page?x=1"), "MISS")
        self.assertXCache(self.get("/page2"), "HIT")
        self.assertPurgeOk(self.admin("POST", "/purge/http://WWW.Example.Test:80/page2", token=tok))
        self.assertXCache(self.get("/page2"), "MISS", "scheme, case and :80 do not matter")
        self.assertPurgeOk(self.admin("POST", "/purge/https://www.example.test/page3", token=tok))
        self.assertXCache(self.get("/page3"), "MISS")
        r = self.admin("POST", "/purge/", token=tok)
        self.assertEqual(r.status, 400)

    def test_url_purge_removes_every_vary_variant(self):
        tok = self.token("purge_select")

        def handler(req):
            v = req.headers.get("x-variant", "none")
            return 200, cached(Vary="X-Variant"), ("variant " + v).encode()

        self.o.route("/v", handler=handler)
        for v in ("a", "b"):
            self.warm("/v", {"X-Variant": v})
        self.assertPurgeOk(self.admin("POST", "/purge/www.example.test/v", token=tok))
        for v in ("a", "b"):
            r = self.get("/v", {"X-Variant": v})
            self.assertXCache(r, "MISS", "variant %s" % v)
            self.assertEqual(r.body, ("variant " + v).encode())

    def test_soft_url_purge(self):
        tok = self.token("purge_select")
        seen = []

        def handler(req):
            seen.append(req.headers.get("if-none-match"))
            if req.headers.get("if-none-match") == '"v1"':
                return 304, cached(), b""
            return 200, cached(), b"soft url"

        self.o.route("/su", handler=handler)
        self.warm("/su")
        self.assertPurgeOk(self.admin("POST", "/purge/www.example.test/su", token=tok, headers={"Fastly-Soft-Purge": "1"}))
        r = self.get("/su")
        self.assertEqual(r.body, b"soft url")
        self.assertEqual(seen, [None, '"v1"'])

    def test_proxy_PURGE_method(self):
        self.o.route("/pp", headers=cached(), body=b"pp")
        # no token exists yet: PURGE is allowed without one
        self.warm("/pp")
        r = request(self.e.proxy_port, "PURGE", "/pp", headers=HOST)
        self.assertPurgeOk(r)
        self.assertXCache(self.get("/pp"), "MISS")
        # once a token exists, PURGE needs one with purge_select or global
        sel = self.token("purge_select")
        only_all = self.token("purge_all")
        self.warm("/pp")
        r = request(self.e.proxy_port, "PURGE", "/pp", headers=HOST)
        self.assertEqual((r.status, self.js(r)), (401, MSG_401))
        r = request(self.e.proxy_port, "PURGE", "/pp", headers=dict(HOST, **{"Fastly-Key": "bad"}))
        self.assertEqual(r.status, 401)
        r = request(self.e.proxy_port, "PURGE", "/pp", headers=dict(HOST, **{"Fastly-Key": only_all}))
        self.assertEqual((r.status, self.js(r)), (403, MSG_403))
        self.assertXCache(self.get("/pp"), "HIT", "refused purges purge nothing")
        r = request(self.e.proxy_port, "PURGE", "/pp", headers=dict(HOST, **{"Fastly-Key": sel}))
        self.assertPurgeOk(r)
        self.assertXCache(self.get("/pp"), "MISS")
        # the setting turns the requirement off, at once
        glob = self.token("global")
        r = self.admin("PUT", "/config/settings", token=glob, body={"purge_requires_auth": False})
        self.assertEqual(r.status, 200, r.describe())
        self.warm("/pp")
        self.assertPurgeOk(request(self.e.proxy_port, "PURGE", "/pp", headers=HOST))
        self.assertXCache(self.get("/pp"), "MISS")

    def test_purge_during_inflight_fetch_is_not_stored_fresh(self):
        tok = self.token("purge_select")
        self.o.route("/slow", headers=cached(), body=b"old", delay=1.0)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", self.get("/slow")))
        t.start()
        harness.wait_until(lambda: self.o.hits("/slow") == 1, timeout=5, what="the fetch to start")
        self.assertPurgeOk(self.admin("POST", "/purge/www.example.test/slow", token=tok))
        t.join(scaled(10))
        self.assertEqual(out["r"].status, 200)
        self.o.route("/slow", headers=cached(), body=b"new")
        r = self.get("/slow")
        self.assertEqual(r.body, b"new", "the response fetched across the purge was not stored as fresh")


class Durability(AdminCase):
    def test_purges_survive_kill9(self):
        tok = self.token("global")
        self.o.route("/d1", headers=cached("dk"), body=b"d1")
        self.o.route("/d2", headers=cached(), body=b"d2")
        self.o.route("/d3", headers=cached(), body=b"d3")
        for p in ("/d1", "/d2", "/d3"):
            self.warm(p)
        # a hit can come from the memory tier before the object's put commits: what the
        # restart must bring back is what was committed before the kill
        harness.wait_until(lambda: self.js(self.admin("GET", "/stats", token=tok))["disk"]["objects"] >= 3,
                           timeout=10, what="the three objects to be committed")
        self.assertPurgeOk(self.admin("POST", "/service/%s/purge/dk" % SID, token=tok))
        self.assertPurgeOk(self.admin("POST", "/purge/www.example.test/d2", token=tok))
        self.e.kill9()
        self.e.start()
        self.assertXCache(self.get("/d3"), "HIT", "the store is warm after the restart")
        self.assertXCache(self.get("/d1"), "MISS", "key purge survived kill -9")
        self.assertXCache(self.get("/d2"), "MISS", "URL purge survived kill -9")
        self.warm("/d3")
        r = self.admin("POST", "/service/%s/purge_all" % SID, token=tok)
        self.assertEqual(r.status, 200)
        self.e.kill9()
        self.e.start()
        self.assertXCache(self.get("/d3"), "MISS", "purge_all survived kill -9")

    def test_concurrent_purge_burst_answered_and_durable_after_kill9(self):
        """Purges from many connections at once share the admin loops' turns and the journal
        thread's synced writes (group commit). Every one is answered 200, and every answered
        one survives kill -9."""
        tok, glob = self.token("purge_select"), self.token("global")
        n, conns = 96, 8
        for i in range(n):
            self.o.route("/b%d" % i, headers=cached("bk%d" % i), body=b"b%d" % i)
            self.warm("/b%d" % i)
        harness.wait_until(lambda: self.js(self.admin("GET", "/stats", token=glob))["disk"]["objects"] >= n,
                           timeout=10, what="the objects to be committed")
        results, start = {}, threading.Barrier(conns)

        def purge_some(first):
            conn = http.client.HTTPConnection("127.0.0.1", self.e.admin_port, timeout=scaled(30))
            try:
                start.wait(scaled(30))
                for i in range(first, n, conns):  # one keep-alive connection: many purges per loop turn
                    conn.request("POST", "/service/%s/purge/bk%d" % (SID, i), headers={"Fastly-Key": tok})
                    r = conn.getresponse()
                    results[i] = (r.status, r.read())
            finally:
                conn.close()

        threads = [threading.Thread(target=purge_some, args=(t,)) for t in range(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(scaled(60))
            self.assertFalse(t.is_alive(), "a purging connection did not finish")
        self.assertEqual(sorted(results), list(range(n)), "every purge was answered")
        for i, (status, body) in sorted(results.items()):
            self.assertEqual(status, 200, "purge of bk%d: %r" % (i, body))
            self.assertRegex(json.loads(body)["id"], PURGE_ID_RE)
        self.e.kill9()
        self.e.start()
        for i in range(n):
            self.assertXCache(self.get("/b%d" % i), "MISS", "answered purge of bk%d survived kill -9" % i)

    def test_purges_survive_loss_of_unsynced_store_writes(self):
        """A purge is acknowledged once its journal record is synced; the main store is
        synced later, in the background. A crash of the machine can lose the main store's
        writes since its last sync: simulated by putting data.mdb back to the image a clean
        stop left, keeping journal.log. The restart must apply the purges again."""
        tok = self.token("global")
        for p, tag in (("/j1", "jk"), ("/j2", None), ("/j3", None)):
            self.o.route(p, headers=cached(tag), body=p.encode())
            self.warm(p)
        self.e.stop()  # clean: everything synced
        data = os.path.join(self.e.data_dir, "data.mdb")
        with open(data, "rb") as f:
            image = f.read()
        self.e.start()
        self.assertXCache(self.get("/j1"), "HIT")
        self.assertPurgeOk(self.admin("POST", "/service/%s/purge/jk" % SID, token=tok))
        self.assertPurgeOk(self.admin("POST", "/purge/www.example.test/j2", token=tok))
        self.e.kill9()
        with open(data, "wb") as f:  # the disk as a power cut could leave it
            f.write(image)
        os.unlink(os.path.join(self.e.data_dir, "lock.mdb"))
        self.e.start()
        self.assertIn("applied 2 purge(s) again from the purge journal", self.e.stderr_text())
        self.assertXCache(self.get("/j3"), "HIT", "the store is warm")
        self.assertXCache(self.get("/j1"), "MISS", "the key purge was applied again")
        self.assertXCache(self.get("/j2"), "MISS", "the URL purge was applied again")
        # once applied and synced, a later restart does not apply them again
        self.warm("/j1")
        self.e.restart()
        self.assertXCache(self.get("/j1"), "HIT", "fetched after the purge: kept")

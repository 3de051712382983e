"""
tests/integration/test_realtime.py — issue 23: Fastly's real-time analytics API on the admin
listener (GET /v1/channel/<sid>/ts/0|h|h/limit/N|<t>), end to end against the real binary.

Every figure is waited for (the real-time thread closes one record a second), never slept
for: a test polls ts/h until the records add up to the requests it made, then checks every
count exactly.
"""

import json
import socket
import threading
import time

import harness
from harness import request, scaled, wait_until

SID = "edgecache"
HOST = "www.example.test"


class RealtimeCase(harness.TestCase):
    ARGS = ()

    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o], args=list(self.ARGS))
        self.tok = self.token("global")

    def token(self, scope):
        return harness.create_token(self.e, scope)

    def rt(self, rest, token=None, sid=SID, status=200):
        r = request(self.e.admin_port, "GET", "/v1/channel/%s/ts/%s" % (sid, rest),
                    headers={"Fastly-Key": token or self.tok}, timeout=scaled(10))
        self.assertEqual(r.status, status, r.describe() + "\n" + r.body.decode(errors="replace"))
        self.assertEqual(r.header("content-type"), "application/json")
        return json.loads(r.body)

    def get(self, path, headers=None):
        h = {"Host": HOST}
        h.update(headers or {})
        return request(self.e.proxy_port, "GET", path, headers=h)

    def totals(self, doc, where="aggregated"):
        out = {}
        for rec in doc["Data"]:
            m = rec[where] if where == "aggregated" else rec["datacenter"][where]
            for k, v in m.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[k] = out.get(k, 0) + v
        return out

    def wait_requests(self, n):
        """ts/h once its records hold n requests (the newest one's second must have closed)."""
        box = {}

        def done():
            box["doc"] = self.rt("h")
            return self.totals(box["doc"]).get("requests", 0) >= n

        wait_until(done, timeout=scaled(10), what="%d requests in ts/h" % n)
        return box["doc"]


class Shape(RealtimeCase):
    def test_counts_by_second_in_fastlys_shape(self):
        self.o.route("/c", body=b"cached body", headers={"Cache-Control": "max-age=300"})
        self.o.route("/p", body=b"private", headers={"Cache-Control": "private"})
        self.o.route("/missing", status=404, body=b"no", headers={"Cache-Control": "no-store"})
        self.assertEqual(self.get("/c").status, 200)          # miss
        for _ in range(3):
            self.assertEqual(self.get("/c").status, 200)      # hits
        for _ in range(2):
            self.assertEqual(self.get("/p").status, 200)      # passes
        self.assertEqual(self.get("/missing").status, 404)    # pass (no-store)
        doc = self.wait_requests(7)

        self.assertEqual(sorted(doc), ["AggregateDelay", "Data", "Timestamp"])
        self.assertIsInstance(doc["Timestamp"], int)
        self.assertIsInstance(doc["AggregateDelay"], int)
        self.assertLessEqual(len(doc["Data"]), 120)
        seconds = [rec["recorded"] for rec in doc["Data"]]
        self.assertEqual(seconds, sorted(set(seconds)), "one record per second, oldest first")
        self.assertEqual(doc["Timestamp"], seconds[-1])
        self.assertLessEqual(seconds[-1], int(time.time()))
        node = list(doc["Data"][-1]["datacenter"])
        self.assertEqual(len(node), 1)
        for rec in doc["Data"]:
            self.assertEqual(sorted(rec), ["aggregated", "datacenter", "recorded"])
            self.assertEqual(rec["aggregated"], rec["datacenter"][node[0]], "one node: the aggregate is its own")

        t = self.totals(doc)
        self.assertEqual(t["requests"], 7)
        self.assertEqual(t["hits"], 3)
        self.assertEqual(t["miss"], 1)
        self.assertEqual(t["pass"], 3)
        self.assertEqual(t["errors"], 0)
        self.assertEqual(t["status_2xx"], 6)
        self.assertEqual(t["status_200"], 6)
        self.assertEqual(t["status_4xx"], 1)
        self.assertEqual(t["status_404"], 1)
        self.assertEqual(t["origin_fetches"], 4)
        self.assertEqual(t["resp_body_bytes"], 4 * len(b"cached body") + 2 * len(b"private") + 2)
        self.assertEqual(t["resp_body_bytes"], t["body_size"])
        self.assertGreater(t["resp_header_bytes"], 7 * 50)
        self.assertGreater(t["hits_time"], 0)
        self.assertGreater(t["miss_time"], 0)
        self.assertGreater(t["pass_time"], 0)
        misses = sum(sum(rec["aggregated"]["miss_histogram"].values()) for rec in doc["Data"])
        self.assertEqual(misses, 1, "the one miss is in miss_histogram")
        for rec in doc["Data"]:
            for key in rec["aggregated"]["miss_histogram"]:
                self.assertTrue(key.isdigit() and 1 <= int(key) <= 60000, key)
            hits_us = rec["aggregated"]["hits_histogram_us"]
            for key in hits_us:
                self.assertTrue(key.isdigit() or key == "+Inf", key)
        self.assertEqual(sum(sum(r["aggregated"]["hits_histogram_us"].values()) for r in doc["Data"]), 3)
        newest = doc["Data"][-1]["aggregated"]
        self.assertEqual(newest["objects_in_memory"], 1)
        self.assertEqual(len(newest["backends"]), 1)
        self.assertTrue(list(newest["backends"].values())[0]["healthy"])

    def test_limit_last_second_and_after(self):
        self.o.route("/c", body=b"x", headers={"Cache-Control": "max-age=300"})
        self.get("/c")
        doc = self.wait_requests(1)
        newest = doc["Data"][-1]["recorded"]

        one = self.rt("0")
        self.assertEqual(len(one["Data"]), 1, "ts/0 is the last complete second")
        self.assertGreaterEqual(one["Data"][0]["recorded"], newest)
        self.assertEqual(one["Timestamp"], one["Data"][0]["recorded"])

        two = self.rt("h/limit/2")
        self.assertLessEqual(len(two["Data"]), 2)
        self.assertEqual(two["Timestamp"], two["Data"][-1]["recorded"])

        # ts/<t>: only what is newer than t; nothing newer yet means a long poll until the
        # next second closes
        first = doc["Data"][0]["recorded"]
        after = self.rt(str(first))
        self.assertTrue(all(rec["recorded"] > first for rec in after["Data"]))
        latest = self.rt("0")["Timestamp"]
        nxt = self.rt(str(latest))
        self.assertTrue(nxt["Data"], "the long poll answers with the next second")
        self.assertTrue(all(rec["recorded"] > latest for rec in nxt["Data"]))
        self.assertEqual(nxt["Timestamp"], nxt["Data"][-1]["recorded"])

        # a t far ahead (a client's clock): answered at once with where the data is
        ahead = self.rt(str(int(time.time()) + 3600))
        self.assertEqual(ahead["Data"], [])
        self.assertLessEqual(ahead["Timestamp"], int(time.time()))

    def test_errors_and_scopes(self):
        self.rt("h", sid="other", status=404)
        for bad in ("x", "-1", "1.5", "h/limit/0", "h/limit/x", "1234567890123", "h/", "0/1"):
            self.rt(bad, status=400)
        self.rt("", status=404)
        r = request(self.e.admin_port, "GET", "/v1/channel/%s/ts/h" % SID)
        self.assertEqual(r.status, 401)
        r = request(self.e.admin_port, "GET", "/v1/channel/%s/ts/h" % SID,
                    headers={"Fastly-Key": self.token("purge_select")})
        self.assertEqual(r.status, 403)
        self.rt("h", token=self.token("global:read"))
        r = request(self.e.admin_port, "POST", "/v1/channel/%s/ts/h" % SID, headers={"Fastly-Key": self.tok})
        self.assertEqual(r.status, 405)

    def test_a_client_that_leaves_during_the_long_poll(self):
        latest = self.rt("0")["Timestamp"]
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", self.e.admin_port), timeout=scaled(5))
            s.sendall(("GET /v1/channel/%s/ts/%d HTTP/1.1\r\nHost: a\r\nFastly-Key: %s\r\n\r\n"
                       % (SID, latest + 1, self.tok)).encode())
            s.close()
        # the server is still there and answers
        self.rt("h")
        self.assertTrue(self.e.running)

    def test_shutdown_answers_a_waiting_long_poll(self):
        latest = self.rt("0")["Timestamp"]
        s = socket.create_connection(("127.0.0.1", self.e.admin_port), timeout=scaled(10))
        self.addCleanup(s.close)
        # a second far enough ahead that only the shutdown can end the wait early
        s.sendall(("GET /v1/channel/%s/ts/%d HTTP/1.1\r\nHost: a\r\nFastly-Key: %s\r\n\r\n"
                   % (SID, latest + 1, self.tok)).encode())
        got = {}

        def read_answer():
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            got["data"] = data

        t = threading.Thread(target=read_answer)
        t.start()
        self.assertEqual(self.e.stop(), 0)
        t.join(scaled(10))
        self.assertNotIn("still armed", self.e.stderr_text())
        # answered at once, not cut off when the listener gave up on the connection
        self.assertTrue(got.get("data", b"").startswith(b"HTTP/1.1 200"), got)
        body = json.loads(got["data"].split(b"\r\n\r\n", 1)[1])
        self.assertEqual(sorted(body), ["AggregateDelay", "Data", "Timestamp"])

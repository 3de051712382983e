"""
tests/integration/test_admin_hostile.py — the attacker-minded review of issues 21 and 23's
admin endpoints: many concurrent long polls of the real-time API (each answered, nothing left
behind: the process's descriptors come back to where they were), and Fastly's TLS fields of a
backend with oversized values and NUL bytes (JSON and form), each a 400 naming the field with
the backend unchanged, and a body over the admin limit a 413.
"""

import json
import os
import socket

import harness
from harness import request, scaled, wait_until

SID = "edgecache"
BASE = "/service/%s/version/1" % SID
CERT = ("-----BEGIN CERTIFICATE-----\n" + "MIIB" * 16 + "\n-----END CERTIFICATE-----\n")


class AdminHostile(harness.TestCase):
    def setUp(self):
        self.o = self.origin()
        self.o.route_prefix("/", body=b"x", headers={"Cache-Control": "no-store"})
        self.e = self.edgecache([self.o])
        self.tok = harness.create_token(self.e)

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.e.pid))

    def test_many_concurrent_long_polls_are_answered_and_leave_nothing(self):
        def latest():
            r = request(self.e.admin_port, "GET", "/v1/channel/%s/ts/0" % SID, headers={"Fastly-Key": self.tok},
                        timeout=10)
            return json.loads(r.body)["Timestamp"] if r.status == 200 else 0

        wait_until(lambda: latest() > 0, scaled(10), what="a first real-time second")
        base = self.fds()
        t = latest()
        n = 300
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", self.e.admin_port))
            s.sendall(("GET /v1/channel/%s/ts/%d HTTP/1.1\r\nHost: x\r\nFastly-Key: %s\r\nConnection: close\r\n\r\n"
                       % (SID, t, self.tok)).encode())
            socks.append(s)
        answered = 0
        for s in socks:
            s.settimeout(scaled(30))
            data = harness.read_to_close(s)
            s.close()
            head, _, body = data.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:100])
            doc = json.loads(body)
            self.assertGreaterEqual(doc["Timestamp"], t)
            answered += 1
        self.assertEqual(answered, n)
        # every waiting request's connection is gone from the process
        wait_until(lambda: self.fds() <= base, scaled(10), what="descriptors back to %d (now %d)" % (base, self.fds()))
        self.assertTrue(self.e.running)

    def put(self, fields, form=False):
        return self.admin_api(self.e, "PUT", BASE + "/backend/backend1", fields, self.tok, form)

    def test_tls_fields_oversized_or_with_nul_bytes(self):
        before = request(self.e.admin_port, "GET", BASE + "/backend/backend1", headers={"Fastly-Key": self.tok}).body
        huge = CERT * (20000 // len(CERT) + 1)  # over the 16 KiB a PEM field holds
        bad = [
            ({"ssl_ca_cert": huge}, "ssl_ca_cert"),
            ({"ssl_client_cert": huge}, "ssl_client_cert"),
            ({"ssl_client_key": huge[:9000]}, "ssl_client_key"),
            ({"ssl_ca_cert": CERT[:30] + "\u0000" + CERT[30:]}, "ssl_ca_cert"),
            ({"ssl_cert_hostname": "origin.test\u0000.evil.test"}, "ssl_cert_hostname"),
            ({"ssl_sni_hostname": "a" * 300}, "ssl_sni_hostname"),
            ({"ssl_ciphers": "HIGH\u0000:aNULL"}, "ssl_ciphers"),
            ({"ssl_ciphers": "A" * 2000}, "ssl_ciphers"),
            ({"min_tls_version": "1.2\u0000"}, "min_tls_version"),
        ]
        for fields, name in bad:
            for form in (False, True):
                r = self.put(fields, form=form)
                self.assertEqual(r.status, 400, "%s form=%s -> %s" % (list(fields), form, r.body[:200]))
                # a NUL byte (JSON \u0000, form %00) is refused whole by the body's reader, before any field
                nul = any("\u0000" in v for v in fields.values())
                self.assertTrue(json.loads(r.body)["detail"].startswith("body:" if nul else name + ":"), r.body[:200])
        r = self.put({"ssl_ca_cert": CERT * (70000 // len(CERT) + 1)})
        self.assertEqual(r.status, 413, r.body[:200])
        after = request(self.e.admin_port, "GET", BASE + "/backend/backend1", headers={"Fastly-Key": self.tok}).body
        self.assertEqual(after, before)
        self.assertTrue(self.e.running)

    def test_stats_query_abuse_is_4xx(self):
        h = {"Fastly-Key": self.tok}

        def get(path):
            return request(self.e.admin_port, "GET", path, headers=h, timeout=30)

        bad = [
            "/stats?from=99999999999999&by=minute",       # 14 digits: not a time
            "/stats?from=0&by=minute",                    # 29 million minutes
            "/stats/aggregate?from=999999+months+ago&by=day",
            "/stats/aggregate?from=now&to=1",             # to before from
            "/stats/aggregate?from=-5",
            "/stats/aggregate?from=%00",
            "/stats/aggregate?from=" + "9" * 300,
            "/stats/aggregate?by=" + "m" * 300,
            "/stats/aggregate?region=" + "%41" * 200,
            "/stats/aggregate?from=2024-02-30+25:61",
            "/stats/sla?month=2024-13",
            "/stats/sla?month=99999-01",
            "/stats/sla?month=" + "1" * 300,
            "/v1/channel/%s/ts/%s" % (SID, "9" * 40),
            "/v1/channel/%s/ts/h/limit/%s" % (SID, "9" * 40),
            "/v1/channel/%s/ts/-1" % SID,
        ]
        for path in bad:
            r = get(path)
            self.assertEqual(r.status, 400, "%s -> %d %s" % (path[:80], r.status, r.body[:200]))
            self.assertIn("detail", json.loads(r.body))
        # the largest limit there is: the ring, not an allocation of the number asked for
        r = get("/v1/channel/%s/ts/h/limit/999999999999" % SID)
        self.assertEqual(r.status, 200, r.body[:200])
        self.assertLessEqual(len(json.loads(r.body)["Data"]), 120)
        # a window far in the past or far ahead is an empty answer, not an error
        for path in ("/stats/aggregate?from=1&to=86400&by=hour", "/stats/aggregate?from=1&to=86400&by=minute",
                     "/stats/aggregate?to=999999999999&by=minute"):
            r = get(path)
            self.assertEqual(r.status, 200, "%s -> %s" % (path, r.body[:200]))
            self.assertEqual(json.loads(r.body)["data"], [])
        self.assertTrue(self.e.running)


def host_address():
    """This machine's address on its default route (a UDP connect sends nothing), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


class AdminBodies(harness.TestCase):
    """h2o 2.2.5 reads a request's whole body before the token is looked at: over h2 one
    connection without a token made the admin hold 100 bodies of up to 1 MiB at once (8 such
    connections: 8 MB to 870 MB). The admin is HTTP/1.1 only, and one address but loopback
    keeps at most 64 connections on a loop."""

    def test_cleartext_h2_is_not_spoken(self):
        e = self.edgecache([])
        s = socket.create_connection(("127.0.0.1", e.admin_port), timeout=scaled(10))
        # the h2 preface (prior knowledge) and an empty SETTINGS frame
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        data = harness.read_to_close(s)
        s.close()
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 4"), data[:80])
        r = request(e.admin_port, "GET", "/health", headers={"Upgrade": "h2c", "Connection": "Upgrade, HTTP2-Settings",
                                                              "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"})
        self.assertEqual(r.status, 200, "an Upgrade: h2c is answered in HTTP/1.1\n" + r.describe())
        self.assertTrue(e.running)

    def test_one_address_keeps_at_most_64_connections(self):
        addr = host_address()
        if addr is None:
            self.skipTest("no address but loopback to connect from")
        e = self.edgecache([], args=["--admin-listen", "0.0.0.0:0", "--admin-threads", "1"])  # the limits are per thread
        held = []
        try:
            for _ in range(64):  # each holds a body it never finishes: what the limit bounds
                s = socket.create_connection((addr, e.admin_port), timeout=scaled(10))
                s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"a" * 100000)
                held.append(s)
            # one request on a held connection's neighbour slot proves they were all accepted
            extra = socket.create_connection((addr, e.admin_port), timeout=scaled(10))
            try:
                extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                got = extra.recv(65536)
            except (ConnectionResetError, BrokenPipeError):  # closed with our request unread
                got = b""
            self.assertEqual(got, b"", "the 65th connection from one address is closed at accept")
            extra.close()
            wait_until(lambda: "connection refused at accept" in e.stderr_text(), scaled(10), what="the refusal said")
            # loopback is not limited per address, and the address gets its slots back
            self.assertEqual(request(e.admin_port, "GET", "/health").status, 200)
            held.pop().close()

            def answered():  # refused until the server has seen that close
                try:
                    with socket.create_connection((addr, e.admin_port), timeout=scaled(10)) as s:
                        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        return harness.read_to_close(s).startswith(b"HTTP/1.1 200")
                except (ConnectionResetError, BrokenPipeError):
                    return False

            wait_until(answered, scaled(10), what="a slot back for the address once one of its connections closed")
        finally:
            for s in held:
                s.close()
        self.assertTrue(e.running)

"""
tests/integration/test_admin_parked.py — a waiting purge's connection (server/h1park.c): while a
purge waits for its answer, its HTTP/1 connection stays registered for input without being read.
Whatever comes meanwhile (pipelined requests, a body's purge, a half-close, a reset, a stop) must
reach h2o intact once the purge is answered: every request answered once, in order.

To hold a purge deterministically, the edge forwards purges to a hand-made shield admin API
(--shield-admin) that answers only when the test opens its gate: a purge is acknowledged only once
the shield answered, so from the moment the shield holds the forwarded request until the gate opens
the client's purge is waiting, its connection parked.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import tempfile
import threading

import harness
from certs import TestCA
from harness import RawListener, Reader, read_raw_response, request, scaled, wait_until
from test_admin import PURGE_ID_RE, SID


class GatedShield(RawListener):
    """A shield admin API that answers every forwarded purge 200 once `gate` is set; `held`
    counts the forwarded requests read so far (each comes on its own connection)."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.cond = threading.Condition()
        self.held = 0

    def serve(self, conn):
        conn.settimeout(scaled(20))
        r = Reader(conn)
        head = []
        while True:
            line = r.line()
            if not line:
                break
            head.append(line)
        for h in head:
            name, _, value = h.partition(b":")
            if name.strip().lower() == b"content-length":
                r.exactly(int(value))
        with self.cond:
            self.held += 1
            self.cond.notify_all()
        if not self.gate.wait(scaled(20)):
            return
        body = json.dumps({"status": "ok", "id": "shield-1"}).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), body))

    def wait_held(self, n):
        with self.cond:
            if not self.cond.wait_for(lambda: self.held >= n, scaled(10)):
                raise AssertionError("the shield got %d forwarded purges, expected %d" % (self.held, n))


class ParkedPurge(harness.TestCase):
    def setUp(self):
        self.shield = GatedShield()
        self.addCleanup(self.shield.close)
        self.addCleanup(self.shield.gate.set)  # never leave a forward hanging
        self.e = self.edgecache([], args=["--shield", "127.0.0.1:%d" % harness.closed_port(),
                                          "--shield-admin", "127.0.0.1:%d" % self.shield.port,
                                          "--shield-token", "t" * 43])
        self.tok = harness.create_token(self.e, "purge_select")

    def purge_bytes(self, key):
        return ("POST /service/%s/purge/%s HTTP/1.1\r\nHost: admin\r\nFastly-Key: %s\r\n"
                "Content-Length: 0\r\n\r\n" % (SID, key, self.tok)).encode()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.e.admin_port), timeout=scaled(20))
        self.addCleanup(s.close)
        return s

    def assertPurged(self, resp):
        self.assertEqual(resp.status, 200, resp.describe())
        self.assertRegex(json.loads(resp.body)["id"], PURGE_ID_RE)

    def assertServing(self):
        """The process is alive and answers a new purge (the gate is open by then)."""
        self.assertPurged(request(self.e.admin_port, "POST", "/service/%s/purge/after" % SID,
                                  headers={"Fastly-Key": self.tok}))

    def test_a_request_pipelined_while_a_purge_waits_is_answered_after_it(self):
        s = self.connect()
        s.sendall(self.purge_bytes("first"))
        self.shield.wait_held(1)
        # the first purge waits for the shield: this one arrives on the parked connection
        s.sendall(self.purge_bytes("second") + b"GET /health HTTP/1.1\r\nHost: admin\r\n\r\n")
        self.shield.gate.set()
        r = Reader(s)
        first, second = read_raw_response(r), read_raw_response(r)
        self.assertPurged(first)
        self.assertPurged(second)
        self.assertNotEqual(json.loads(first.body)["id"], json.loads(second.body)["id"])
        self.assertNotEqual(first.header("connection", "").lower(), "close", first.describe())
        third = read_raw_response(r)
        self.assertEqual(third.status, 200, third.describe())
        self.assertEqual(self.shield.held, 2, "each purge was forwarded once")

    def test_purges_one_after_another_on_one_connection(self):
        """Each purge waits parked with nothing behind it; the next is sent once its answer is in."""
        self.shield.gate.set()
        s = self.connect()
        r = Reader(s)
        for i in range(5):
            s.sendall(self.purge_bytes("seq%d" % i))
            self.assertPurged(read_raw_response(r))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: admin\r\n\r\n")
        self.assertEqual(read_raw_response(r).status, 200)

    def test_many_requests_pipelined_while_a_purge_waits_are_answered_in_order(self):
        s = self.connect()
        s.sendall(self.purge_bytes("head"))
        self.shield.wait_held(1)
        keys = ["p%d" % i for i in range(64)]
        s.sendall(b"".join(self.purge_bytes(k) for k in keys) + b"GET /health HTTP/1.1\r\nHost: admin\r\n\r\n")
        self.shield.gate.set()
        r = Reader(s)
        ids = set()
        for _ in range(1 + len(keys)):
            resp = read_raw_response(r)
            self.assertPurged(resp)
            ids.add(json.loads(resp.body)["id"])
        self.assertEqual(len(ids), 1 + len(keys), "every purge answered once")
        self.assertEqual(read_raw_response(r).status, 200)
        self.assertEqual(self.shield.held, 1 + len(keys))

    def test_a_batch_purge_with_a_body_then_a_pipelined_request(self):
        s = self.connect()
        body = json.dumps({"surrogate_keys": ["b1", "b2"]}).encode()
        s.sendall(("POST /service/%s/purge HTTP/1.1\r\nHost: admin\r\nFastly-Key: %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (SID, self.tok, len(body))).encode()
                  + body)
        self.shield.wait_held(1)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: admin\r\n\r\n")
        self.shield.gate.set()
        r = Reader(s)
        resp = read_raw_response(r)
        self.assertEqual(resp.status, 200, resp.describe())
        self.assertEqual(set(json.loads(resp.body)), {"b1", "b2"})
        self.assertEqual(read_raw_response(r).status, 200)

    def test_an_http10_purge_is_answered_and_its_connection_closed(self):
        s = self.connect()
        s.sendall(self.purge_bytes("old").replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        self.shield.wait_held(1)
        self.shield.gate.set()
        r = Reader(s)
        self.assertPurged(read_raw_response(r))
        self.assertEqual(r.until_close(), b"")

    def test_purge_on_the_proxy_listener_then_a_pipelined_get(self):
        s = socket.create_connection(("127.0.0.1", self.e.proxy_port), timeout=scaled(20))
        self.addCleanup(s.close)
        s.sendall(("PURGE /x HTTP/1.1\r\nHost: www.example.test\r\nFastly-Key: %s\r\n\r\n" % self.tok).encode())
        self.shield.wait_held(1)
        s.sendall(b"PURGE /y HTTP/1.1\r\nHost: www.example.test\r\nFastly-Key: " + self.tok.encode() + b"\r\n\r\n")
        self.shield.gate.set()
        r = Reader(s)
        self.assertPurged(read_raw_response(r))
        self.assertPurged(read_raw_response(r))
        self.assertEqual(self.shield.held, 2)

    def test_a_client_that_closes_its_writing_side_still_gets_its_answer(self):
        s = self.connect()
        s.sendall(self.purge_bytes("halfclosed"))
        self.shield.wait_held(1)
        s.shutdown(socket.SHUT_WR)
        self.shield.gate.set()
        r = Reader(s)
        self.assertPurged(read_raw_response(r))
        self.assertEqual(r.until_close(), b"")
        self.assertServing()

    def test_clients_that_leave_while_their_purges_wait(self):
        socks = []
        for i in range(8):
            s = socket.create_connection(("127.0.0.1", self.e.admin_port), timeout=scaled(20))
            s.sendall(self.purge_bytes("gone%d" % i) + (b"Y" * (i * 4096)))
            socks.append(s)
        self.shield.wait_held(8)
        for i, s in enumerate(socks):
            if i % 2:  # a reset
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        self.shield.gate.set()
        self.assertServing()
        r = request(self.e.admin_port, "GET", "/stats", headers={"Fastly-Key": harness.create_token(self.e, "global")})
        self.assertEqual(r.status, 200, r.describe())

    def test_a_stop_while_purges_wait(self):
        socks = []
        for i in range(4):
            s = self.connect()
            s.sendall(self.purge_bytes("stopping%d" % i) + (b"Z" * (i * 8192)))
            socks.append(s)
        self.shield.wait_held(4)
        # the shield answers once the stop has begun: the purges are answered during the drain
        self.e.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutting down" in self.e.stderr_text(), what="the stop to begin")
        self.shield.gate.set()
        for s in socks:
            self.assertPurged(read_raw_response(Reader(s)))
        self.assertEqual(self.e.stop(), 0, self.e.stderr_tail())
        self.assertIsNone(self.e.sanitizer_report(), self.e.stderr_tail())
        self.assertNotIn("still open at shutdown", self.e.stderr_text())


class ParkedPurgeOverTLS(ParkedPurge):
    """The same, on the admin API's TLS listener: a parked TLS connection reads and decrypts nothing
    until its purge is answered, and then h2o gets every record that came meanwhile."""

    def setUp(self):
        tmp = tempfile.mkdtemp(prefix="edgecache-parked-")
        self.addCleanup(shutil.rmtree, tmp, True)
        self.ca = TestCA(os.path.join(tmp, "ca"))
        cert = self.ca.issue("admin.test")
        self.shield = GatedShield()
        self.addCleanup(self.shield.close)
        self.addCleanup(self.shield.gate.set)
        self.e = self.edgecache([], args=["--shield", "127.0.0.1:%d" % harness.closed_port(),
                                          "--shield-admin", "127.0.0.1:%d" % self.shield.port,
                                          "--shield-token", "t" * 43,
                                          "--admin-tls-listen", "127.0.0.1:0", "--admin-tls-cert", "%s,%s" % cert])
        m = re.search(r" admin-tls=\S+:(\d+)", self.e.stderr_text())
        self.assertIsNotNone(m, self.e.stderr_tail())
        self.tls_port = int(m.group(1))
        self.tok = harness.create_token(self.e, "purge_select")

    def connect(self):
        ctx = ssl.create_default_context(cafile=self.ca.cert)
        ctx.check_hostname = False
        raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=scaled(20))
        s = ctx.wrap_socket(raw, server_hostname="admin.test")
        self.addCleanup(s.close)
        return s

    # the tests that need a plaintext peer (half-close, HTTP/1.0 over a raw socket, the proxy
    # listener, resets) are the parent's; these run the pipelining ones over TLS
    test_a_client_that_closes_its_writing_side_still_gets_its_answer = None
    test_clients_that_leave_while_their_purges_wait = None
    test_purge_on_the_proxy_listener_then_a_pipelined_get = None
    test_a_stop_while_purges_wait = None


class ParkedMiss(harness.TestCase):
    """A miss waits for its origin with its connection parked (server/proxy.c); whatever answers it
    (the fetch, a collapsed request's fetch, an error) unparks it first (h1park's filter)."""

    def setUp(self):
        self.gate = threading.Event()
        self.cond = threading.Condition()
        self.held = 0
        self.addCleanup(self.gate.set)
        self.o = self.origin()

        def slow(req):
            with self.cond:
                self.held += 1
                self.cond.notify_all()
            self.gate.wait(scaled(20))
            return 200, {"Cache-Control": "max-age=60", "Content-Type": "text/plain"}, b"slow " + req.path.encode()

        self.o.route_prefix("/slow/", handler=slow)
        self.o.route("/fast", headers={"Cache-Control": "max-age=60"}, body=b"fast")
        self.o.route("/gone", status=404, headers={"Cache-Control": "no-store"}, body=b"gone")
        self.e = self.edgecache([self.o])

    def wait_held(self, n):
        with self.cond:
            if not self.cond.wait_for(lambda: self.held >= n, scaled(10)):
                raise AssertionError("the origin holds %d requests, expected %d" % (self.held, n))

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.e.proxy_port), timeout=scaled(20))
        self.addCleanup(s.close)
        return s

    @staticmethod
    def get(path):
        return ("GET %s HTTP/1.1\r\nHost: www.example.test\r\n\r\n" % path).encode()

    def test_requests_pipelined_behind_a_waiting_miss_are_answered_in_order(self):
        s = self.connect()
        s.sendall(self.get("/slow/1"))
        self.wait_held(1)
        s.sendall(self.get("/fast") + self.get("/gone") + self.get("/fast"))
        self.gate.set()
        r = Reader(s)
        answers = [read_raw_response(r) for _ in range(4)]
        self.assertEqual([a.status for a in answers], [200, 200, 404, 200])
        self.assertEqual([a.body for a in answers], [b"slow /slow/1", b"fast", b"gone", b"fast"])
        # the same connection goes on: a miss again, then a hit
        s.sendall(self.get("/slow/2") + self.get("/slow/1"))
        answers = [read_raw_response(r) for _ in range(2)]
        self.assertEqual([a.body for a in answers], [b"slow /slow/2", b"slow /slow/1"])

    def test_misses_one_after_another_on_one_connection(self):
        """Each miss waits parked with nothing behind it; the next is sent once its answer is in."""
        self.gate.set()
        s = self.connect()
        r = Reader(s)
        for i in range(5):
            s.sendall(self.get("/slow/seq%d" % i))
            self.assertEqual(read_raw_response(r).body, b"slow /slow/seq%d" % i)
        s.sendall(self.get("/slow/seq0"))
        self.assertEqual(read_raw_response(r).body, b"slow /slow/seq0", "a hit on the same connection")

    def test_collapsed_requests_on_kept_alive_connections(self):
        socks = [self.connect() for _ in range(4)]
        for s in socks:
            s.sendall(self.get("/slow/c"))
        self.wait_held(1)
        for s in socks:
            s.sendall(self.get("/fast"))  # behind each waiting (collapsed) miss
        self.gate.set()
        for s in socks:
            r = Reader(s)
            self.assertEqual(read_raw_response(r).body, b"slow /slow/c")
            self.assertEqual(read_raw_response(r).body, b"fast")
        self.assertEqual(self.o.hits("/slow/c"), 1, "one fetch for the four")

    def test_a_client_that_leaves_while_its_miss_waits(self):
        s = socket.create_connection(("127.0.0.1", self.e.proxy_port), timeout=scaled(20))
        s.sendall(self.get("/slow/left"))
        self.wait_held(1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        self.gate.set()
        r = harness.request(self.e.proxy_port, "GET", "/fast", headers={"Host": "www.example.test"})
        self.assertEqual(r.status, 200, r.describe())

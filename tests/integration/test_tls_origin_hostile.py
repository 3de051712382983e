"""
tests/integration/test_tls_origin_hostile.py — issue 21's origin side against origins that
misbehave during the TLS handshake (the attacker-minded review): one that accepts and never
answers (the connect timeout bounds the handshake, not the much longer first-byte one), one
that answers in cleartext, one that resets the connection after reading the ClientHello, and
one whose certificate chain is larger than OpenSSL takes (100 KiB). Each is a 5xx with a short
body, the process keeps serving, and a valid origin afterwards works. And after the handshake
(openssl s_server, driven through its stdin): a TLS 1.2 origin that renegotiates before its
response (h2o 2.2.5 does not renegotiate: a 502 whose log line says so, never a crash), and a
TLS 1.3 origin that sends a KeyUpdate asking for ours (known: the fetch stalls until its
first-byte timeout, see the test; bounded, nothing else harmed).
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading

import harness
from certs import TestCA
from harness import RawListener, request, tls_server_context, wait_until

BASE = "/service/edgecache/version/1"
HOST = {"Host": "www.example.test"}


class RawOrigin(RawListener):
    """A listening socket whose accepted connections `behave(conn)` handles, one thread each."""

    def __init__(self, behave):
        self.behave = behave
        super().__init__()

    def serve(self, conn):
        self.behave(conn)


def silent(conn):
    """reads the ClientHello and answers nothing, ever (until the test ends)"""
    while conn.recv(4096):
        pass


def cleartext(conn):
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    conn.close()


def reset(conn):
    conn.recv(4096)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # RST instead of FIN


class HostileCase(harness.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="edgecache-tls-hostile-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.good = self.origin()
        self.good.route_prefix("/", headers={"Cache-Control": "no-store"}, body=b"fine")
        self.e = self.edgecache([self.good])
        self.tok = harness.create_token(self.e)

    def put_backend(self, port, **fields):
        body = {"use_ssl": True, "port": port, "ssl_check_cert": False}
        body.update(fields)
        r = request(self.e.admin_port, "PUT", BASE + "/backend/backend1", body=json.dumps(body),
                    headers={"Fastly-Key": self.tok, "Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.body)

    def raw(self, behave):
        o = RawOrigin(behave)
        self.addCleanup(o.close)
        return o

    def assert_failed_and_alive(self, path, statuses=(502, 503, 504)):
        r = request(self.e.proxy_port, "GET", path, headers=HOST, timeout=30)
        self.assertIn(r.status, statuses, r.describe())
        self.assertLess(len(r.body), 200)
        self.assertTrue(self.e.running, "the process is alive")
        return r

    def back_to_the_good_origin(self):
        r = request(self.e.admin_port, "PUT", BASE + "/backend/backend1",
                    body=json.dumps({"use_ssl": False, "port": self.good.port}),
                    headers={"Fastly-Key": self.tok, "Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.body)
        r = request(self.e.proxy_port, "GET", "/after", headers=HOST)
        self.assertEqual((r.status, r.body), (200, b"fine"), r.describe())



class Hostile(HostileCase):
    def test_a_silent_handshake_ends_at_the_connect_timeout(self):
        o = self.raw(silent)
        # the first-byte timeout is far beyond the client's patience: only the connect timeout
        # (which covers the handshake) can answer within it
        self.put_backend(o.port, connect_timeout=500, first_byte_timeout=600000)
        self.assert_failed_and_alive("/silent")
        self.assertGreaterEqual(o.connections, 1)
        self.back_to_the_good_origin()

    def test_a_cleartext_answer_to_the_client_hello(self):
        o = self.raw(cleartext)
        self.put_backend(o.port)
        self.assert_failed_and_alive("/cleartext")
        wait_until(lambda: "TLS handshake failed: wrong version number" in self.e.stderr_text(), 10,
                   what="a TLS log line")
        self.back_to_the_good_origin()

    def test_a_reset_in_the_middle_of_the_handshake(self):
        o = self.raw(reset)
        self.put_backend(o.port)
        for i in range(3):
            self.assert_failed_and_alive("/reset/%d" % i)
        self.back_to_the_good_origin()

    def test_a_certificate_chain_larger_than_openssl_takes(self):
        ca = TestCA(self.dir)
        cert, key = ca.issue("origin.test", names=["127.0.0.1"])
        leaf = open(cert).read()
        extra = open(ca.cert).read()
        big = os.path.join(self.dir, "big-chain.pem")
        with open(big, "w") as f:  # the leaf, then its CA over and over: ~150 KiB of chain
            f.write(leaf + extra * (150 * 1024 // len(extra) + 1))
        good_origin = self.origin(tls=tls_server_context(big, key))
        good_origin.route_prefix("/", headers={"Cache-Control": "no-store"}, body=b"never")
        self.put_backend(good_origin.port, ssl_check_cert=True, ssl_ca_cert=extra)
        self.assert_failed_and_alive("/big", statuses=(502,))
        wait_until(lambda: "TLS handshake failed: excessive message size" in self.e.stderr_text(), 10,
                   what="a TLS log line")
        self.assertEqual(good_origin.hits(), 0)
        self.back_to_the_good_origin()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class AfterTheHandshake(HostileCase):
    def s_server(self, version):
        ca = TestCA(self.dir)
        cert, key = ca.issue("origin.test", names=["127.0.0.1"])
        port = free_port()
        p = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", cert, "-key", key,
                              version, "-naccept", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.out = b""
        self.read_until(p, b"ACCEPT")
        return p, port

    def read_until(self, p, what):
        box = {}

        def reader():
            while what not in self.out:
                chunk = os.read(p.stdout.fileno(), 4096)
                if not chunk:
                    break
                self.out += chunk
            box["done"] = what in self.out

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(harness.scaled(20))
        self.assertTrue(box.get("done"), "s_server never said %r: %r" % (what, self.out[-500:]))

    def exchange(self, version, command, path, ack=None, **backend_fields):
        """s_server's `command` once it has the request, then (after it printed `ack`, so that
        its stdin is not read as one piece with the command, which would drop the response) the
        response."""
        p, port = self.s_server(version)
        self.put_backend(port, **backend_fields)
        box = {}

        def fetch():
            box["r"] = request(self.e.proxy_port, "GET", path, headers=HOST, timeout=30)

        t = threading.Thread(target=fetch, daemon=True)
        t.start()
        self.read_until(p, b"GET " + path.encode())
        try:  # s_server may be gone already: our side ended the connection at the renegotiation
            p.stdin.write(command + b"\n")
            p.stdin.flush()
            if ack is not None:
                self.read_until(p, ack)
            p.stdin.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok")
            p.stdin.flush()
        except BrokenPipeError:
            pass
        t.join(harness.scaled(40))
        self.assertIn("r", box, "the fetch was answered")
        self.assertTrue(self.e.running)
        return box["r"]

    def test_a_renegotiating_tls12_origin(self):
        r = self.exchange("-tls1_2", b"r", "/renegotiate")
        self.assertIn(r.status, (502, 503), r.describe())
        self.assertLess(len(r.body), 200)
        # the log line says why, not that the origin hung up
        wait_until(lambda: "ssl renegotiation not supported" in self.e.stderr_text(), 10, what="the reason logged")
        self.back_to_the_good_origin()

    def test_a_tls13_key_update_that_asks_for_ours_is_bounded(self):
        # KNOWN (review of issue 21): a KeyUpdate with update_requested makes OpenSSL answer with
        # its own inside SSL_read, which h2o 2.2.5's socket layer forbids (its renegotiation
        # guard); the response that follows is never decoded and the fetch ends at the first-byte
        # timeout, a 504. What must hold meanwhile: it ends, and nothing else is harmed.
        r = self.exchange("-tls1_3", b"K", "/keyupdate", ack=b"SSL_do_handshake -> 1",
                          first_byte_timeout=2000)
        self.assertIn(r.status, (200, 502, 504), r.describe())
        if r.status == 200:
            self.assertEqual(r.body, b"ok")
        self.back_to_the_good_origin()

"""Collapsed requests read the response as it arrives: a request that joins a fetch in
flight gets the first bytes before the origin has sent the last, and the origin is asked
once."""
import http.client
import socket
import threading
import time
import unittest

import harness
from harness import request


class SlowOrigin:
    """Answers every request with a 20-byte body: 10 bytes at once, 10 more after `pause` s."""

    def __init__(self, pause=1.5):
        self.pause = pause
        self.connections = 0
        self.requests = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            self.requests += 1
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 20\r\n"
                         b"Connection: close\r\n\r\nfirst-half")
            time.sleep(self.pause)
            conn.sendall(b"secondhalf")

    def close(self):
        self.closed = True
        self.sock.close()


class Streaming(harness.TestCase):
    def test_collapsed_request_streams(self):
        o = SlowOrigin(pause=1.5)
        self.addCleanup(o.close)
        e = harness.Edgecache(backends=[], args=["--backend", "127.0.0.1:%d" % o.port])
        e.start()
        self.addCleanup(e.stop)

        results = {}

        def client(name, delay):
            time.sleep(delay)
            c = http.client.HTTPConnection("127.0.0.1", e.proxy_port, timeout=10)
            t0 = time.monotonic()
            c.request("GET", "/slow", headers={"Host": "stream.test"})
            r = c.getresponse()
            first = r.read(10)
            t_first = time.monotonic() - t0
            rest = r.read()
            results[name] = (r.status, r.getheader("x-cache"), first + rest, t_first, time.monotonic() - t0)
            c.close()

        a = threading.Thread(target=client, args=("owner", 0))
        b = threading.Thread(target=client, args=("joiner", 0.4))
        a.start()
        b.start()
        a.join(15)
        b.join(15)
        self.assertIn("owner", results)
        self.assertIn("joiner", results)
        for name in ("owner", "joiner"):
            status, _, body, _, _ = results[name]
            self.assertEqual(status, 200, name)
            self.assertEqual(body, b"first-halfsecondhalf", name)
        _, xcache, _, t_first, t_total = results["joiner"]
        self.assertEqual(xcache, "HIT", "the joiner is served from the fetch in flight")
        # the joiner started 0.4 s in; the origin finishes at about 1.5 s: its first bytes came before that
        self.assertLess(t_first, 0.8, "the collapsed request got the first bytes as they arrived (%.2fs)" % t_first)
        self.assertGreater(t_total, 0.7, "and the rest only when the origin sent it (%.2fs)" % t_total)
        self.assertEqual(o.requests, 1, "one origin fetch for both")
        # and the object is cached whole
        r = request(e.proxy_port, "GET", "/slow", headers={"Host": "stream.test"})
        self.assertEqual((r.x_cache, r.body), ("HIT", b"first-halfsecondhalf"))
        self.assertEqual(o.requests, 1)

    def test_collapsed_request_sees_a_cut_body_cut(self):
        """When the origin dies mid-body, a reader's response is aborted, never a complete-looking short body."""
        o = SlowOrigin(pause=0.8)
        self.addCleanup(o.close)
        e = harness.Edgecache(backends=[], args=["--backend", "127.0.0.1:%d" % o.port, "--origin-timeout", "300"])
        e.start()
        self.addCleanup(e.stop)
        out = {}

        def client(name, delay):
            time.sleep(delay)
            c = http.client.HTTPConnection("127.0.0.1", e.proxy_port, timeout=10)
            try:
                c.request("GET", "/cut", headers={"Host": "stream.test"})
                r = c.getresponse()
                out[name] = (r.status, r.read())
            except (http.client.IncompleteRead, ConnectionError) as exc:
                out[name] = ("cut", repr(exc))
            finally:
                c.close()

        ts = [threading.Thread(target=client, args=("owner", 0)), threading.Thread(target=client, args=("joiner", 0.1))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(15)
        for name in ("owner", "joiner"):
            self.assertIn(name, out)
            self.assertNotEqual(out[name][:2], (200, b"first-half"), "%s got a short body that looks complete" % name)
            self.assertNotEqual(out[name], (200, b"first-halfsecondhalf"), "%s: the between-bytes timeout cut it" % name)


if __name__ == "__main__":
    unittest.main()

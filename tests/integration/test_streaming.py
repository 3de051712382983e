"""Collapsed requests read the response as it arrives: a request that joins a fetch in
flight gets the first bytes before the origin has sent the last, and the origin is asked
once. The origin sends the second half only when the test releases it, so "before" is an
order of events, not a measured time."""
import http.client
import socket
import threading
import time
import unittest

import harness
from harness import request


class SlowOrigin(harness.RawListener):
    """Answers every request with a 20-byte body: 10 bytes at once, 10 more after `pause` s,
    or, with pause=None, once release() is called (or close(); 30 s at most)."""

    def __init__(self, pause=1.5):
        self.pause = pause
        self.released = threading.Event()
        self.requests = 0
        super().__init__()

    def serve(self, conn):
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
            if self.pause is None:
                self.released.wait(30)
            else:
                time.sleep(self.pause)
            conn.sendall(b"secondhalf")

    def release(self):
        self.released.set()

    def close(self):
        self.released.set()
        super().close()


class Streaming(harness.TestCase):
    def test_collapsed_request_streams(self):
        o = SlowOrigin(pause=None)
        self.addCleanup(o.close)
        e = harness.Edgecache(backends=[], args=["--backend", "127.0.0.1:%d" % o.port])
        e.start()
        self.addCleanup(e.stop)

        results = {}
        got_first = {"owner": threading.Event(), "joiner": threading.Event()}
        rest_sent = {}  # per client: had the origin been released when its first bytes came?

        def client(name):
            c = http.client.HTTPConnection("127.0.0.1", e.proxy_port, timeout=10)
            c.request("GET", "/slow", headers={"Host": "stream.test"})
            r = c.getresponse()
            first = r.read(10)
            rest_sent[name] = o.released.is_set()
            got_first[name].set()
            rest = r.read()
            results[name] = (r.status, r.getheader("x-cache"), first + rest)
            c.close()

        a = threading.Thread(target=client, args=("owner",), daemon=True)
        b = threading.Thread(target=client, args=("joiner",), daemon=True)
        a.start()
        self.assertTrue(got_first["owner"].wait(10), "the owner's first bytes")
        b.start()  # joins the fetch in flight: the origin has sent half and holds the rest
        self.assertTrue(got_first["joiner"].wait(10), "the joiner's first bytes, while the origin holds the rest")
        self.assertEqual(rest_sent, {"owner": False, "joiner": False},
                         "the collapsed request got the first bytes as they arrived, before the origin sent the rest")
        self.assertEqual(results, {}, "and neither has the rest before the origin sends it")
        o.release()
        a.join(15)
        b.join(15)
        self.assertIn("owner", results)
        self.assertIn("joiner", results)
        for name in ("owner", "joiner"):
            status, _, body = results[name]
            self.assertEqual(status, 200, name)
            self.assertEqual(body, b"first-halfsecondhalf", name)
        self.assertEqual(results["joiner"][1], "HIT", "the joiner is served from the fetch in flight")
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

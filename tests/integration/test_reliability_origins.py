"""
tests/integration/test_reliability_origins.py — issue 8: hostile origins, end to end against
the real binary: endless bodies, a huge header, an invalid status line, bodies shorter and
longer than Content-Length, nothing at all, no answer (hostile_origin.py). The shared helpers
are in reliabilityutil.py.
"""

import re
import socket
import threading
import time

import harness
from harness import scaled
from hostile_origin import HostileOrigin
from reliabilityutil import HOST, ReliabilityCase, raw_exchange, server_rss_kib


class HostileOrigins(ReliabilityCase):
    def setUp(self):
        self.ho = HostileOrigin()
        self.addCleanup(self.ho.close)
        self.e = self.edgecache([self.ho.address], args=["--origin-timeout", "1000"])

    def get(self, path, timeout=10):
        return raw_exchange(self.e.proxy_port, ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, HOST)).encode(),
                            timeout=scaled(timeout))

    def assert_alive(self, what):
        if not self.e.running:
            self.fail_server("%s: edgecache died\n%s" % (what, self.e.stderr_tail(15)))

    def assert_others_served(self, tag, n=5, limit=1.0):
        """n healthy URLs are each answered before their deadline, `limit` seconds (scaled):
        a request that does not get its answer by then fails, nothing is timed."""
        for i in range(n):
            path = "/ok/%s-%d" % (tag, i)
            status, body, how = self.get(path, timeout=limit)
            if status != 200 or body != ("ok:%s\n" % path).encode():
                self.fail_server("%s: a request for a healthy URL got %s %s %r (deadline %.1fs)"
                                 % (tag, how, status, body[:200], scaled(limit)))
        return True

    def head_only(self, path, timeout=5):
        """Send a GET, read only the response head, hang up. Returns the status (or None)."""
        with socket.create_connection(("127.0.0.1", self.e.proxy_port), timeout=scaled(timeout)) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, HOST)).encode())
            buf = b""
            try:
                while b"\r\n\r\n" not in buf and len(buf) < 1 << 20:
                    data = s.recv(65536)
                    if not data:
                        break
                    buf += data
            except OSError:
                pass
        m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
        return int(m.group(1)) if m else None

    def assert_not_cached(self, path, head_only=False):
        self.assert_alive(path)
        before = self.ho.hits(path)
        if head_only:
            self.head_only(path)
        else:
            self.get(path, timeout=5)
        self.assert_alive(path)
        if self.ho.hits(path) != before + 1:
            self.fail_server("%s: the second request did not reach the origin: a broken response was cached" % path)

    def test_invalid_heads_give_502(self):
        results, problems = {}, []
        for mode in ("hugeheader", "manyheaders", "badstatus", "garbage", "nothing"):
            path = "/%s/x" % mode
            status, body, how = self.get(path)
            self.assert_alive("origin %s" % mode)
            results[mode] = status or how
            if status not in (502, 503, 504):
                problems.append("origin %s: the client got %s %s %r (expected 502/504)" % (mode, how, status, body[:60]))
            elif len(body) > 1024:
                problems.append("origin %s: the %d error carries %d bytes" % (mode, status, len(body)))
            before = self.ho.hits(path)
            self.get(path, timeout=5)
            # >= : a GET on a pooled connection the origin closed unanswered is retried once on a fresh one
            if self.ho.hits(path) < before + 1:
                problems.append("origin %s: the second request did not reach the origin (the response was cached)"
                                % mode)
            self.assert_others_served(mode)
        print("\n      invalid origin heads: %r" % results, flush=True)
        if problems:
            self.fail_server("\n  ".join(problems))

    def test_short_body_is_not_cached(self):
        status, body, how = self.get("/short/x")
        # after the head went out, the only honest signal left is an aborted response
        if not (status in (502, 504) or (status == 200 and len(body) < 100000)):
            self.fail_server("origin short body: client got %s %s with %d bytes" % (how, status, len(body)))
        self.assert_not_cached("/short/x")
        self.assert_others_served("short")

    def test_long_body_does_not_poison_the_connection(self):
        status, body, how = self.get("/long/x")
        if not (status in (502, 504) or (status == 200 and body == b"0123456789")):
            self.fail_server("origin body longer than Content-Length: client got %s %s %r" % (how, status, body[:80]))
        # the extra bytes must not be read as the answer to the next request on a reused connection
        for i in range(6):
            path = "/ok/after-long-%d" % i
            s2, b2, how2 = self.get(path, timeout=5)
            if s2 != 200 or b2 != ("ok:%s\n" % path).encode():
                self.fail_server("after an origin sent more than its Content-Length, %s got %s %s %r: the extra bytes "
                                 "were taken as the next response (connection reused)" % (path, how2, s2, b2[:80]))
        if status == 200:
            again, body2, _ = self.get("/long/x")
            self.assertEqual((again, body2), (200, b"0123456789"), "a stored copy must be exactly Content-Length")

    def test_hang_gives_504_and_others_are_served(self):
        # the /hang origin holds the socket until close(): the answer can only be the proxy's
        # own, from --origin-timeout, and the others are served while the fetch hangs
        result = {}

        def hung():
            result["r"] = self.get("/hang/x", timeout=15)

        th = threading.Thread(target=hung, daemon=True)
        th.start()
        harness.wait_until(lambda: self.ho.hits("/hang/x") == 1, 5, what="the hanging fetch at the origin")
        self.assert_others_served("hang", n=8, limit=0.5)
        th.join(scaled(20))
        self.assertIn("r", result, "the client of the hanging origin got no answer")
        status, body, how = result["r"]
        print("\n      hanging origin: %s %s (--origin-timeout 1000)" % (how, status), flush=True)
        if status not in (502, 504) or how != "response":
            self.fail_server("origin never answers: client got %s %s %r" % (how, status, body[:100]))
        self.assert_not_cached("/hang/x")

    def endless(self, mode):
        path = "/%s/x" % mode
        pid = self.e.pid
        rss0 = server_rss_kib(pid)
        s = socket.create_connection(("127.0.0.1", self.e.proxy_port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, HOST)).encode())
        got = 0
        head = b""
        t0 = time.monotonic()
        peak = rss0
        served = None
        try:
            # a slow reader: 64 KiB every 50 ms (~1.3 MB/s) while the origin sends as fast as it can
            while time.monotonic() - t0 < 3.0:
                data = s.recv(65536)
                if not data:
                    break
                if got == 0 and not head:
                    head = data[:200]
                got += len(data)
                peak = max(peak, server_rss_kib(pid))
                if served is None and time.monotonic() - t0 > 1.0:
                    served = self.assert_others_served(mode, n=3, limit=1.0)
                time.sleep(0.05)
        finally:
            s.close()
        left_at = time.monotonic()
        t1 = time.monotonic()
        while path not in self.ho.endless_closed and time.monotonic() - t1 < 10:
            time.sleep(0.05)
        closed = self.ho.endless_closed.get(path)
        sent = self.ho.endless_bytes.get(path, 0)
        print("\n      endless origin body (%s): client read %d KiB in 3s, origin sent %d MiB; server RSS %d -> %d MiB; "
              "origin connection dropped %s" % (mode, got // 1024, sent >> 20, rss0 // 1024, peak // 1024,
                                                "%.2fs after the client left" % max(0.0, closed - left_at)
                                                if closed else "never"),
              flush=True)
        self.assert_not_cached(path, head_only=True)
        if not head.startswith(b"HTTP/1.1 200"):
            self.fail_server("endless origin body (%s): client got %r" % (mode, head[:80]))
        if peak - rss0 > 256 * 1024:
            self.fail_server("endless origin body (%s) to a slow client: the server's RSS grew by %d MiB (the origin "
                             "is read as fast as it sends, with no back-pressure from the client)"
                             % (mode, (peak - rss0) // 1024))
        if closed is None:
            self.fail_server("endless origin body (%s): the origin connection was still open 10s after the client "
                             "went away" % mode)

    def test_endless_chunked_body(self):
        self.endless("endless")

    def test_endless_close_delimited_body(self):
        self.endless("endless-eof")

"""
tests/integration/test_bad_origin.py — issue 3, bad input from the origin: garbage, a close
in the middle of the body, a wrong Content-Length, an origin that never answers.

The client must get a clear 502 (bad answer) or 504 (no answer within --origin-timeout), or,
once the response head has gone out, an aborted response it can recognise as truncated (a
Content-Length it did not get, or a chunked body without its last chunk) — and the cache
must never keep a truncated object: the next request goes to the origin again. With a stale
copy allowed by stale-if-error the client gets that copy instead of the error.

The misbehaving origin is a tiny raw socket server in this file (RawOrigin): per request
path, a function writes whatever bytes it likes to the socket. Every wait is bounded, and
no assertion is on elapsed time: an origin that "never answers" stalls until the test ends,
so an answer the client gets can only be the proxy's own (its --origin-timeout), and the
origin's count of stalls that ended says that no stall ran out first.
"""

import re
import socket
import threading
import time

import harness
from harness import scaled

FULL_LEN = 1000
PART = b"p" * 300


# --------------------------------------------------------------------------------------
# a raw origin


class RawOrigin:
    """Listens on 127.0.0.1:<ephemeral>; for each connection reads one request head and runs
    the behaviour registered for its path (fn(sock, path)), then closes the connection.
    Counts requests per path. close() stops everything within a second."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.closed = threading.Event()
        self.stalls_ended = 0  # stall() calls that returned (only at close(), or their 60 s deadline)
        self._lock = threading.Lock()
        self._behaviours = {}
        self._counts = {}
        self._conns = []
        self._thread = threading.Thread(target=self._accept_loop, name="raw-origin", daemon=True)
        self._thread.start()

    def on(self, path, fn):
        with self._lock:
            self._behaviours[path] = fn

    def hits(self, path):
        with self._lock:
            return self._counts.get(path, 0)

    def hold(self, seconds):
        """Sleep until closed or for `seconds` (a slow origin)."""
        self.closed.wait(seconds)

    def stall(self):
        """Say nothing more until close() (a deadline of 60 s, scaled, keeps a thread from
        outliving a broken test): whatever the client gets meanwhile, the proxy decided."""
        self.closed.wait(scaled(60))
        with self._lock:
            self.stalls_ended += 1

    def _accept_loop(self):
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            m = re.match(rb"[A-Z]+ (\S+) HTTP/1\.[01]\r\n", head)
            path = m.group(1).decode("latin-1") if m else "?"
            with self._lock:
                self._counts[path] = self._counts.get(path, 0) + 1
                fn = self._behaviours.get(path)
            if fn is None:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                fn(conn, path)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.closed.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(2)


def send(data):
    def fn(conn, path):
        conn.sendall(data)
    return fn


def send_then_stall(data, origin):
    def fn(conn, path):
        conn.sendall(data)
        origin.stall()
    return fn


def good(body, cache_control="max-age=60"):
    return send(b"HTTP/1.1 200 OK\r\nCache-Control: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (cache_control.encode(), len(body), body))


HEAD_1000 = (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Type: text/plain\r\n"
             b"Content-Length: %d\r\n\r\n" % FULL_LEN)
HEAD_CHUNKED = (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Type: text/plain\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")


# --------------------------------------------------------------------------------------
# a raw client that tells a clean response from an aborted one


class Outcome:
    def __init__(self):
        self.status = None     # None: no response head at all
        self.headers = {}
        self.body = b""
        self.complete = False  # the framing says the whole body arrived
        self.timed_out = False
        self.raw = b""

    def describe(self):
        return "status=%s complete=%s timed_out=%s headers=%r body[:80]=%r (%d bytes)" % (
            self.status, self.complete, self.timed_out, self.headers, self.body[:80], len(self.body))


def fetch(port, path, timeout=8.0):
    """GET path with Connection: close; read until the proxy closes or timeout."""
    out = Outcome()
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout)) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: bad.example.test\r\nConnection: close\r\n\r\n" % path.encode())
        deadline = time.monotonic() + scaled(timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                out.timed_out = True
                break
            s.settimeout(remaining)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                out.timed_out = True
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    out.raw = data
    if b"\r\n\r\n" not in data:
        return out
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        return out
    out.status = int(m.group(1))
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        out.headers[key] = (out.headers[key] + ", " if key in out.headers else "") + value.strip()
    if "chunked" in out.headers.get("transfer-encoding", "").lower():
        body, pos = b"", 0
        while True:
            eol = rest.find(b"\r\n", pos)
            if eol < 0:
                break
            try:
                size = int(rest[pos:eol].split(b";")[0].strip(), 16)
            except ValueError:
                break
            if size == 0:
                out.complete = True
                break
            if len(rest) < eol + 2 + size + 2:
                body += rest[eol + 2:eol + 2 + size]
                break
            body += rest[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2
        out.body = body
    elif "content-length" in out.headers:
        n = int(out.headers["content-length"].split(",")[0])
        out.body = rest[:n]
        out.complete = len(rest) >= n
    else:
        out.body = rest
        out.complete = not out.timed_out  # close-delimited: cannot tell truncation
    return out


# --------------------------------------------------------------------------------------


class BadOrigin(harness.TestCase):

    def setUp(self):
        self.raw = RawOrigin()
        self.addCleanup(self.raw.close)
        self.e = self.edgecache([self.raw.address], args=["--origin-timeout", "1000"])

    def assertErrorThenNotCached(self, path, statuses, may_abort=False):
        """The client gets one of `statuses` (a complete short error response) or, when
        may_abort, a response it can tell is truncated; the next request asks the origin again."""
        out = fetch(self.e.proxy_port, path)
        self.assertFalse(out.timed_out, "the proxy must end the response (origin timeout 1 s): " + out.describe())
        self.assertEqual(self.raw.stalls_ended, 0, "the proxy ended it, not a stalled origin: " + out.describe())
        if out.status in statuses:
            self.assertTrue(out.complete, "the error response itself is complete: " + out.describe())
            self.assertNotEqual(out.headers.get("x-cache", "").upper(), "HIT", out.describe())
        elif may_abort:
            self.assertEqual(out.status, 200, "a clear error, or the 200 aborted: " + out.describe())
            self.assertFalse(out.complete, "a truncated body must look truncated to the client "
                                           "(Content-Length or chunked framing): " + out.describe())
            self.assertLess(len(out.body), FULL_LEN, out.describe())
        else:
            self.fail("expected a status in %s: %s" % (statuses, out.describe()))
        before = self.raw.hits(path)
        self.assertGreaterEqual(before, 1, "the origin was asked")
        time.sleep(0.3)  # a (wrongly) stored object would be in place by now
        second = fetch(self.e.proxy_port, path)
        self.assertNotEqual(second.headers.get("x-cache", "").upper(), "HIT",
                            "a failed fetch must not be cached: " + second.describe())
        self.assertGreater(self.raw.hits(path), before, "the next request goes to the origin again")
        if second.status == 200:
            self.assertFalse(second.complete and len(second.body) < FULL_LEN and second.body.startswith(b"p"),
                             "no truncated object served as complete: " + second.describe())

    def test_garbage(self):
        self.raw.on("/garbage", send(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 this is not HTTP\r\n\r\n"))
        self.assertErrorThenNotCached("/garbage", (502,))

    def test_bad_status_line(self):
        self.raw.on("/bad-status", send(b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok"))
        self.assertErrorThenNotCached("/bad-status", (502,))

    def test_closes_without_answer(self):
        self.raw.on("/empty", send(b""))
        self.assertErrorThenNotCached("/empty", (502,))

    def test_closes_mid_head(self):
        self.raw.on("/half-head", send(b"HTTP/1.1 200 OK\r\nContent-Type: te"))
        self.assertErrorThenNotCached("/half-head", (502,))

    def test_closes_mid_body(self):
        self.raw.on("/mid-body", send(HEAD_1000 + PART))
        self.assertErrorThenNotCached("/mid-body", (502,), may_abort=True)

    def test_content_length_too_long_then_stall(self):
        self.raw.on("/cl-stall", send_then_stall(HEAD_1000 + PART, self.raw))
        self.assertErrorThenNotCached("/cl-stall", (502, 504), may_abort=True)

    def test_chunked_truncated(self):
        self.raw.on("/chunked-cut", send(HEAD_CHUNKED + b"12c\r\n" + PART + b"\r\n"))
        self.assertErrorThenNotCached("/chunked-cut", (502,), may_abort=True)

    def test_chunked_invalid_size(self):
        self.raw.on("/chunked-bad", send(HEAD_CHUNKED + b"12c\r\n" + PART + b"\r\nzz\r\nxxxx\r\n0\r\n\r\n"))
        self.assertErrorThenNotCached("/chunked-bad", (502,), may_abort=True)

    def test_conflicting_content_lengths(self):
        # RFC 9112 6.3: differing Content-Length values are an unrecoverable framing error;
        # a proxy discards the response and answers 502
        self.raw.on("/two-cl", send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n"
                                    b"Content-Length: 7\r\nConnection: close\r\n\r\nhelloXX"))
        self.assertErrorThenNotCached("/two-cl", (502,))

    def test_non_numeric_content_length(self):
        self.raw.on("/bad-cl", send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: abc\r\n"
                                    b"Connection: close\r\n\r\nhello"))
        self.assertErrorThenNotCached("/bad-cl", (502,))

    def test_unknown_transfer_encoding(self):
        # RFC 9112 6.3: chunked not final -> the body runs to the close. A proxy may forward it
        # or answer 502; it must not crash (h2o 2.2.5 asserts on it when the origin is HTTP/1.1).
        self.raw.on("/te-gzip", send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: gzip\r\n"
                                     b"Connection: close\r\n\r\nnot really gzip"))
        out = fetch(self.e.proxy_port, "/te-gzip")
        self.assertIn(out.status, (200, 502), out.describe())
        self.assertFalse(out.timed_out, out.describe())
        second = fetch(self.e.proxy_port, "/te-gzip")
        self.assertIn(second.status, (200, 502), "the proxy survives: " + second.describe())

    def test_never_answers(self):
        self.raw.on("/silent", lambda conn, path: self.raw.stall())
        self.assertErrorThenNotCached("/silent", (504,))
        # both 504s came while the origin still held both connections: --origin-timeout's own
        self.assertEqual((self.raw.hits("/silent"), self.raw.stalls_ended), (2, 0))

    def test_head_never_finishes(self):
        self.raw.on("/slow-head", send_then_stall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", self.raw))
        self.assertErrorThenNotCached("/slow-head", (504,))

    def test_collapsed_clients_of_a_failing_fetch(self):
        # several clients wait for one fetch that then breaks mid-body: nobody gets a complete
        # 200 of the truncated body, and nothing is stored
        def slow_then_cut(conn, path):
            self.raw.hold(1.0)
            conn.sendall(HEAD_1000 + PART)

        self.raw.on("/cut-shared", slow_then_cut)
        outs = [None] * 5
        threads = []

        def client(i):
            outs[i] = fetch(self.e.proxy_port, "/cut-shared")

        for i in range(5):
            t = threading.Thread(target=client, args=(i,), daemon=True)
            threads.append(t)
            t.start()
        for t in threads:
            t.join(scaled(15))
        self.assertTrue(all(o is not None for o in outs), "every client finished")
        for out in outs:
            self.assertFalse(out.timed_out, out.describe())
            if out.status == 200:
                self.assertFalse(out.complete, "truncated, so it must look truncated: " + out.describe())
            else:
                self.assertIn(out.status, (502, 504), out.describe())
        before = self.raw.hits("/cut-shared")
        time.sleep(0.3)
        self.raw.on("/cut-shared", good(b"x" * FULL_LEN))
        out = fetch(self.e.proxy_port, "/cut-shared")
        self.assertEqual((out.status, out.body), (200, b"x" * FULL_LEN), out.describe())
        self.assertGreater(self.raw.hits("/cut-shared"), before, "nothing was stored")

    def test_stale_copy_instead_of_the_error(self):
        body = b"the good stale copy"
        self.raw.on("/stale", good(body, "max-age=1, stale-if-error=60"))
        first = fetch(self.e.proxy_port, "/stale")
        self.assertEqual((first.status, first.body), (200, body), first.describe())
        time.sleep(2.2)
        cases = [
            ("garbage", send(b"garbage garbage\r\n\r\n")),
            ("empty close", send(b"")),
            ("never answers", lambda conn, path: self.raw.stall()),
            ("conflicting Content-Length", send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n"
                                                b"\r\nhelloXX")),
        ]
        for name, fn in cases:
            with self.subTest(origin=name):
                self.raw.on("/stale", fn)
                before = self.raw.hits("/stale")
                out = fetch(self.e.proxy_port, "/stale")
                self.assertEqual(out.status, 200, out.describe())
                self.assertTrue(out.complete, out.describe())
                self.assertEqual(out.body, body, "stale-if-error: the stale copy instead of a 502/504")
                self.assertEqual(out.headers.get("x-cache", "").upper(), "HIT", out.describe())
                self.assertGreater(self.raw.hits("/stale"), before, "the origin was tried")


if __name__ == "__main__":
    print("run with: python3 tests/integration/run.py -k bad_origin")

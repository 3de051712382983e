"""
tests/integration/reliabilityutil.py — what the test_reliability_*.py files share (issue 8:
crash safety, a full disk, hostile clients and hostile origins, end to end against the real
binary): ReliabilityCase and its fast origin, verifiable bodies, the server's sockets and
RSS from /proc, raw HTTP exchanges, and the notes file for server bugs.

Bodies are derived from the path (and a version) so any response can be checked by itself:
the first line names the path and version, the rest is SHAKE-256 of both.

A failure here is a server bug to fix, not a test to relax: every assertion message says
what the server did.
"""

import hashlib
import http.client
import os
import re
import socket
import time

import harness


HOST = "www.example.test"  # fixed: the proxy's port changes at every restart, the cache key must not
SID = "edgecache"
NETWORK_ERRORS = (OSError, http.client.HTTPException)


def body_for(path, version, size=None):
    """The origin's body for path at version: a header line, then SHAKE-256 bytes."""
    if size is None:
        h = hashlib.sha256(path.encode()).digest()
        pick = h[0] % 16
        if pick < 10:
            size = 100 + int.from_bytes(h[1:3], "little") % 8000           # small
        elif pick < 15:
            size = 8192 + int.from_bytes(h[1:4], "little") % (56 * 1024)   # medium
        else:
            size = 64 * 1024 + int.from_bytes(h[1:4], "little") % (192 * 1024)  # large
    head = b"%s v=%d\n" % (path.encode(), version)
    return head + hashlib.shake_256(b"%s|%d" % (path.encode(), version)).digest(size)


BODY_HEAD_RE = re.compile(rb"^(\S+) v=(\d+)\n")


def check_body(path, body, size=None):
    """Return the version a body claims, or raise AssertionError if it is not exactly the
    origin's body for that path and version."""
    m = BODY_HEAD_RE.match(body[:300])
    if not m:
        raise AssertionError("%s: body does not start with its path/version line (%d bytes, starts %r)"
                             % (path, len(body), body[:40]))
    if m.group(1).decode() != path:
        raise AssertionError("%s: served the body of %s" % (path, m.group(1).decode()))
    version = int(m.group(2))
    expected = body_for(path, version, size)
    if body != expected:
        first = next((i for i in range(min(len(body), len(expected))) if body[i] != expected[i]),
                     min(len(body), len(expected)))
        raise AssertionError("%s v=%d: body differs from the origin's (%d bytes, expected %d, first difference "
                             "at byte %d)" % (path, version, len(body), len(expected), first))
    return version


create_token = harness.create_token


def server_socket_fds(pid):
    """Sockets the process holds (every /proc/PID/fd entry that is a socket)."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def server_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


FAILURE_NOTES = os.environ.get("EDGECACHE_RELIABILITY_NOTES", "/work/notes/reliability-failures.txt")


def note_failure(text):
    """Record a server bug for the lead (besides failing the test): appended to FAILURE_NOTES
    when its directory exists, once per distinct first line (numbers blanked), so repeated runs
    do not flood it."""
    if not os.path.isdir(os.path.dirname(FAILURE_NOTES)):
        return
    first = text.strip().splitlines()[0] if text.strip() else "?"
    key = re.sub(r"\d+", "N", first)
    try:
        try:
            with open(FAILURE_NOTES) as f:
                seen = {re.sub(r"\d+", "N", line.split("] ", 1)[-1].rstrip("\n")) for line in f}
        except FileNotFoundError:
            seen = set()
        if key in seen:
            return
        with open(FAILURE_NOTES, "a") as f:
            f.write("[%s] %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), text.rstrip()))
    except OSError:
        pass


class _NoDelayHandler(harness._OriginHandler):
    """The harness origin writes a response head and its body separately; with Nagle on, the
    body then waits for the delayed ACK of the head (40 ms per miss on loopback), which would
    make the load tests measure the origin's Nagle instead of edgecache."""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ReliabilityCase(harness.TestCase):
    def fail_server(self, text):
        note_failure("%s: %s" % (self.id(), text))
        self.fail(text)

    def fast_origin(self):
        o = self.origin()
        o._server.RequestHandlerClass = _NoDelayHandler  # read per connection by socketserver
        o._server.handle_error = lambda request, address: None  # a killed proxy resets connections: no tracebacks
        return o


def raw_exchange(port, data, timeout=5.0):
    """Send raw bytes and read one response. Returns (status or None, body bytes, how) where
    how is "response", "closed" (EOF or reset before a complete response) or "timeout"."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf = b""
    try:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may refuse early; its answer (if any) is still readable
        deadline = time.monotonic() + timeout
        while True:
            m = re.match(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n(.*?)\r\n\r\n", buf, re.S)
            if m:
                status = int(m.group(1))
                cl = re.search(rb"(?im)^content-length:\s*(\d+)", m.group(2))
                body = buf[m.end():]
                if cl and len(body) >= int(cl.group(1)):
                    return status, body[:int(cl.group(1))], "response"
            left = deadline - time.monotonic()
            if left <= 0:
                return (int(m.group(1)) if m else None), buf, "timeout"
            sock.settimeout(left)
            try:
                part = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                part = b""
            if not part:
                if m:
                    return int(m.group(1)), buf[m.end():], "response"
                return None, buf, "closed"
            buf += part
    finally:
        sock.close()

"""
tests/integration/harness.py — start the real edgecache binary against a scripted origin
on loopback, and talk HTTP to both.  Python 3 standard library only.

    from harness import Origin, Edgecache, request, BINARY

    o = Origin()                       # threaded HTTP/1.1 origin on 127.0.0.1:<ephemeral>
    o.route("/a", headers={"Cache-Control": "max-age=60"}, body=b"hello")
    e = Edgecache(backends=[o])        # temp data dir, removed at cleanup
    e.start()
    r = request(e.proxy_port, "GET", "/a")
    assert r.header("x-cache") == "MISS" and o.hits("/a") == 1
    e.cleanup(); o.close()

Rules the harness keeps so that a failing test never hangs or leaks:
  * every wait is a deadline loop or a socket timeout;
  * tests wait on events, not on the clock: origin hits, a Hold in the origin (a response
    held until the test releases it) and /stats counters say when something happened, and no
    assertion is on elapsed time;
  * every Edgecache and Origin created is registered and killed / closed at exit
    (atexit), and TestCase (below) registers cleanups so teardown happens even when a
    test fails;
  * Edgecache.cleanup() stops the server with SIGTERM and *fails* when it does not exit 0
    or when its stderr holds a sanitizer report, so ASan/UBSan findings in any test
    surface as test errors.

Timeouts scale with the environment variable EDGECACHE_TIMEOUT_SCALE (default 1; the
run.py driver raises it for sanitizer builds whose binary name contains "asan").
"""

import atexit
import errno
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def _default_binary():
    path = os.environ.get("EDGECACHE_BINARY") or os.path.join(ROOT, "build", "edgecache")
    return os.path.abspath(path)


# Path of the binary under test. run.py sets EDGECACHE_BINARY before importing tests;
# set_binary() changes it afterwards (module attribute, read at each start).
BINARY = _default_binary()


def set_binary(path):
    """Point the harness at another binary (absolute path kept)."""
    global BINARY
    BINARY = os.path.abspath(path)
    os.environ["EDGECACHE_BINARY"] = BINARY


def timeout_scale():
    try:
        return max(1.0, float(os.environ.get("EDGECACHE_TIMEOUT_SCALE", "1")))
    except ValueError:
        return 1.0


def scaled(seconds):
    """A timeout scaled for slow (sanitizer) builds."""
    return seconds * timeout_scale()


def wait_until(predicate, timeout=5.0, interval=0.02, what="condition"):
    """Poll predicate() until it is truthy; return its value or raise AssertionError."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (scaled(timeout), what))
        time.sleep(interval)


def free_port():
    """An ephemeral port that was free a moment ago (racy; prefer port 0 where possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_sockets(port):
    """How many TCP sockets listen on `port` (any address, IPv4 and IPv6), read from
    /proc/net/tcp and tcp6: a SO_REUSEPORT group counts each of its sockets."""
    count = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def closed_port():
    """A loopback port with nothing listening on it (connections are refused)."""
    return free_port()


# --------------------------------------------------------------------------------------
# HTTP client side


class Response:
    """A complete HTTP response: .status, .reason, .headers (dict, lower-case names; repeated
    fields joined with ", "), .header_list ([(name, value)] as received), .body (bytes)."""

    def __init__(self, status, reason, header_list, body):
        self.status = status
        self.reason = reason
        self.header_list = header_list
        self.headers = {}
        for name, value in header_list:
            key = name.lower()
            if key in self.headers:
                self.headers[key] += ", " + value
            else:
                self.headers[key] = value
        self.body = body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def header_all(self, name):
        """Every value of a repeated field, in order."""
        name = name.lower()
        return [v for n, v in self.header_list if n.lower() == name]

    @property
    def x_cache(self):
        return self.header("x-cache")

    @property
    def age(self):
        """The Age header as an int, or None when absent or malformed."""
        value = self.header("age")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def __repr__(self):
        return "<Response %d x-cache=%s age=%s len=%d>" % (
            self.status, self.header("x-cache"), self.header("age"), len(self.body))

    def describe(self):
        """Status line and headers, for assertion messages."""
        lines = ["%d %s" % (self.status, self.reason)]
        lines += ["%s: %s" % hv for hv in self.header_list]
        lines.append("(body %d bytes)" % len(self.body))
        return "\n".join(lines)


def _response_from_http_client(resp):
    body = resp.read()
    return Response(resp.status, resp.reason, list(resp.getheaders()), body)


def request(port, method, path, headers=None, body=None, timeout=5, host="127.0.0.1"):
    """One request on a fresh connection; returns a Response. `headers` is a dict or a list
    of (name, value); a "Host" entry replaces the default "127.0.0.1:<port>"."""
    conn = http.client.HTTPConnection(host, port, timeout=scaled(timeout))
    try:
        _send(conn, method, path, headers, body)
        return _response_from_http_client(conn.getresponse())
    finally:
        conn.close()


def _header_items(headers):
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


def _send(conn, method, path, headers, body):
    items = _header_items(headers)
    names = {n.lower() for n, _ in items}
    if isinstance(body, str):
        body = body.encode()
    conn.putrequest(method, path, skip_host="host" in names, skip_accept_encoding=True)
    for name, value in items:
        conn.putheader(name, value)
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)


class Session:
    """Several requests on one keep-alive connection (http.client, strictly sequential).

        with Session(port) as s:
            r1 = s.request("GET", "/a"); r2 = s.request("GET", "/b")
            s.reconnects   # how often the connection had to be re-opened (0 = kept alive)
    """

    def __init__(self, port, timeout=5, host="127.0.0.1"):
        self.conn = http.client.HTTPConnection(host, port, timeout=scaled(timeout))
        self.sockets_seen = []

    def request(self, method, path, headers=None, body=None):
        _send(self.conn, method, path, headers, body)
        if self.conn.sock is not None and (not self.sockets_seen or self.sockets_seen[-1] is not self.conn.sock):
            self.sockets_seen.append(self.conn.sock)
        return _response_from_http_client(self.conn.getresponse())

    @property
    def reconnects(self):
        return max(0, len(self.sockets_seen) - 1)

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Reader:
    """Buffered reader over a socket: the raw HTTP/1.1 response parser's, and any test's that
    reads a byte stream by lines and counts (websocket frames, exact header bytes)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by peer (%d bytes unparsed)" % len(self.buf))
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise ValueError("header line too long")
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def until_close(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not data:
                break
            self.buf += data
        out, self.buf = self.buf, b""
        return out


class RawListener:
    """A TCP listener on 127.0.0.1:<ephemeral> for a test's hand-made peer: each accepted
    connection goes to self.serve(conn) on a thread of its own (an OSError there ends only that
    connection). Counts connections; close() stops the accept loop and closes every connection."""

    def __init__(self, backlog=64):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, name="raw-listener-%d" % self.port, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.conns.append(c)
            threading.Thread(target=self._serve_one, args=(c,), daemon=True).start()

    def _serve_one(self, c):
        try:
            self.serve(c)
        except OSError:
            pass

    def serve(self, conn):
        raise NotImplementedError

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def read_raw_response(reader, method="GET"):
    """Parse one HTTP/1.x response from a Reader (Content-Length, chunked or close-delimited)."""
    status_line = reader.line().decode("latin-1")
    m = re.match(r"HTTP/1\.[01] (\d{3})(?: (.*))?$", status_line)
    if not m:
        raise ValueError("bad status line %r" % status_line)
    status = int(m.group(1))
    header_list = []
    while True:
        line = reader.line()
        if not line:
            break
        name, _, value = line.decode("latin-1").partition(":")
        header_list.append((name.strip(), value.strip()))
    resp = Response(status, m.group(2) or "", header_list, b"")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return resp
    te = resp.header("transfer-encoding", "").lower()
    if "chunked" in te:
        parts = []
        while True:
            size = int(reader.line().split(b";")[0].strip(), 16)
            if size == 0:
                while reader.line():  # trailers
                    pass
                break
            parts.append(reader.exactly(size))
            if reader.exactly(2) != b"\r\n":
                raise ValueError("bad chunk terminator")
        resp.body = b"".join(parts)
    elif resp.header("content-length") is not None:
        resp.body = reader.exactly(int(resp.header("content-length")))
    else:
        resp.body = reader.until_close()
    return resp


def pipeline(port, requests, timeout=5, host="127.0.0.1"):
    """Send every request in one write on one connection (HTTP/1.1 pipelining), then read the
    responses in order. requests: list of (method, path) or (method, path, headers[, body]).
    Returns a list of Responses (raises if the server closes early)."""
    raw = b""
    methods = []
    for req in requests:
        method, path = req[0], req[1]
        headers = _header_items(req[2] if len(req) > 2 else None)
        body = req[3] if len(req) > 3 else None
        if isinstance(body, str):
            body = body.encode()
        names = {n.lower() for n, _ in headers}
        lines = ["%s %s HTTP/1.1" % (method, path)]
        if "host" not in names:
            lines.append("Host: %s:%d" % (host, port))
        lines += ["%s: %s" % hv for hv in headers]
        if body is not None and "content-length" not in names:
            lines.append("Content-Length: %d" % len(body))
        raw += ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        methods.append(method)
    with socket.create_connection((host, port), timeout=scaled(timeout)) as sock:
        sock.sendall(raw)
        reader = Reader(sock)
        return [read_raw_response(reader, m) for m in methods]


# --------------------------------------------------------------------------------------
# Origin


class Hold:
    """A barrier in the scripted origin: a request that reaches it waits until the test calls
    release() (or until `timeout` seconds, scaled, pass, so that nothing hangs; an Origin's
    close() releases its routes' holds). Give it to a route (route(path, hold=h)) or call
    h.wait() in a handler. While the origin holds a response, anything the client gets for
    that request came from the proxy alone: a timeout, a stale copy, a collapsed wait.

        h = Hold(); o.route("/slow", body=b"x", hold=h)
        ... start the request(s) ...
        wait_until(lambda: h.waiting == 1)     # the fetch is at the origin, held
        h.release()                            # now it answers

    .waiting: requests held right now; .arrived: requests that reached it, in all;
    .released: whether release() was called (a request arriving after it is not held)."""

    def __init__(self, timeout=30.0):
        self.timeout = timeout
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.waiting = 0
        self.arrived = 0
        self.timed_out = 0  # waits that ended at the deadline rather than on release()

    @property
    def released(self):
        return self._event.is_set()

    def release(self):
        self._event.set()

    def wait(self):
        with self._lock:
            self.waiting += 1
            self.arrived += 1
        try:
            if not self._event.wait(scaled(self.timeout)):
                with self._lock:
                    self.timed_out += 1
        finally:
            with self._lock:
                self.waiting -= 1


class OriginRequest:
    """What the origin received: .method .path (with query) .headers (dict, lower-case
    names) .header_list .body (bytes) .time (monotonic seconds)."""

    def __init__(self, method, path, header_list, body):
        self.method = method
        self.path = path
        self.header_list = header_list
        self.headers = {}
        for name, value in header_list:
            key = name.lower()
            self.headers[key] = self.headers[key] + ", " + value if key in self.headers else value
        self.body = body
        self.time = time.monotonic()

    def __iter__(self):  # so that `method, path, headers, body = req` works
        return iter((self.method, self.path, self.headers, self.body))

    def __repr__(self):
        return "<OriginRequest %s %s %d bytes>" % (self.method, self.path, len(self.body))


class _Route:
    def __init__(self, status, headers, body, delay, handler, chunked, hold=None):
        self.hold = hold
        self.status = status
        self.headers = headers
        self.body = body
        self.delay = delay
        self.handler = handler
        self.chunked = chunked


class _OriginServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # a held or slow answer written after the proxy gave up on it is expected, not news;
        # so is a TLS handshake a test makes fail (origin.tls_failures counts them)
        if isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


class _OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "test-origin/1"
    sys_version = ""

    def version_string(self):
        return self.server_version

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            # in this connection's thread: a refused handshake must not stall the accept loop
            self.request.settimeout(scaled(10))
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.server.origin._tls_event(False, self.request)
                raise
            self.request.settimeout(None)
            self.server.origin._tls_event(True, self.request)
        super().setup()
        # head and body go out in separate writes: without NODELAY each miss waits ~40 ms on a delayed ACK
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.origin = self.server.origin
        self.origin._conn_opened(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.origin._conn_closed(self.connection)

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(parts)
        length = self.headers.get("Content-Length")
        if length:
            return self.rfile.read(int(length))
        return b""

    def _handle(self):
        body = self._read_body()
        req = OriginRequest(self.command, self.path, list(self.headers.items()), body)
        origin = self.origin
        route = origin._lookup(self.path)
        origin._record(req)
        if route is not None and route.hold is not None:
            route.hold.wait()
        if route is None:
            status, headers, rbody, delay, chunked = 404, [("Content-Type", "text/plain")], b"no route\n", 0.0, False
        elif route.handler is not None:
            delay = route.delay
            if delay:
                time.sleep(delay)
                delay = 0.0
            result = route.handler(req)
            status, headers, rbody = result[0], result[1], result[2]
            chunked = route.chunked
        else:
            status, headers, rbody, delay, chunked = route.status, route.headers, route.body, route.delay, route.chunked
        if delay:
            time.sleep(delay)
        self._respond(status, _header_items(headers), rbody, chunked)

    def _respond(self, status, headers, body, chunked):
        if isinstance(body, str):
            body = body.encode()
        body = body or b""
        names = {n.lower(): v for n, v in headers}
        if "chunked" in (names.get("transfer-encoding") or "").lower():
            chunked = True
        self.send_response_only(status)
        if "date" not in names:
            self.send_header("Date", formatdate(usegmt=True))
        for name, value in headers:
            if value is None:  # {"Date": None} suppresses the default
                continue
            if chunked and name.lower() == "transfer-encoding":
                continue
            self.send_header(name, str(value))
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        if chunked:
            if not no_body:
                self.send_header("Transfer-Encoding", "chunked")
        elif "content-length" not in names and status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        if (names.get("connection") or "").lower() == "close":
            self.close_connection = True
        self.end_headers()
        if no_body:
            self.wfile.flush()
            return
        if chunked:
            step = 16384
            for i in range(0, len(body), step):
                piece = body[i:i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        self.wfile.flush()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_PURGE = _handle


class Origin:
    """A scripted HTTP/1.1 origin on 127.0.0.1 (threaded, keep-alive). Started on creation.

    route(path, ...) answers an exact path (query included); route_prefix(prefix, ...)
    answers anything starting with prefix (longest prefix wins, exact routes first);
    anything else gets 404 "no route". Every request is recorded in .requests.
    """

    def __init__(self, port=0, start=True, tls=None):
        """tls: an ssl.SSLContext (see tls_server_context) to answer over TLS; .sni_seen lists
        the SNI names of handshakes (None: none sent), .tls_handshakes / .tls_failures count
        them, .tls_versions the protocol of each."""
        self.port = port
        self.tls = tls
        self.sni_seen = []
        self.tls_handshakes = 0
        self.tls_failures = 0
        self.tls_versions = []
        if tls is not None:
            tls.sni_callback = self._on_sni
        self.requests = []
        self._routes = {}
        self._prefix_routes = {}
        self._lock = threading.Lock()
        self._conns = set()
        self._holds = []
        self._server = None
        self._thread = None
        _registry.add(self)
        if start:
            self.start()

    # --- routes
    def route(self, path, status=200, headers=None, body=b"", delay=0.0, handler=None, chunked=False, hold=None):
        """Answer `path` (exact, query included) with status/headers/body, after `delay`
        seconds; or with handler(req) -> (status, headers, body). headers: dict or list of
        (name, value) (lists allow repeated fields; value None drops the default Date).
        chunked=True (or a Transfer-Encoding: chunked header) sends the body chunked with no
        Content-Length. hold: a Hold that each request waits on (recorded first, so hits()
        counts it) before anything is answered."""
        with self._lock:
            self._routes[path] = _Route(status, headers, body, delay, handler, chunked, hold)
            if hold is not None:
                self._holds.append(hold)

    def route_prefix(self, prefix, status=200, headers=None, body=b"", delay=0.0, handler=None, chunked=False,
                     hold=None):
        with self._lock:
            self._prefix_routes[prefix] = _Route(status, headers, body, delay, handler, chunked, hold)
            if hold is not None:
                self._holds.append(hold)

    def hold(self, timeout=30.0):
        """A new Hold released when this origin closes (for handlers that call h.wait())."""
        h = Hold(timeout)
        with self._lock:
            self._holds.append(h)
        return h

    def _lookup(self, path):
        with self._lock:
            route = self._routes.get(path)
            if route is not None:
                return route
            best = None
            for prefix, r in self._prefix_routes.items():
                if path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                    best = (prefix, r)
            return best[1] if best else None

    # --- recording
    def _record(self, req):
        with self._lock:
            self.requests.append(req)

    def hits(self, path=None):
        """Requests received for exactly `path` (query included), or in total."""
        with self._lock:
            if path is None:
                return len(self.requests)
            return sum(1 for r in self.requests if r.path == path)

    def requests_for(self, path):
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def reset(self):
        with self._lock:
            self.requests = []

    # --- TLS
    def _on_sni(self, sslobj, name, ctx):
        with self._lock:
            self.sni_seen.append(name)

    def _tls_event(self, ok, sock):
        with self._lock:
            if ok:
                self.tls_handshakes += 1
                self.tls_versions.append(sock.version())
            else:
                self.tls_failures += 1

    # --- connections (so that stop() also drops keep-alive connections)
    def _conn_opened(self, sock):
        with self._lock:
            self._conns.add(sock)

    def _conn_closed(self, sock):
        with self._lock:
            self._conns.discard(sock)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def running(self):
        return self._server is not None

    def start(self):
        """Listen (again) on self.port (ephemeral the first time when 0)."""
        if self._server is not None:
            return
        deadline = time.monotonic() + 5
        while True:
            try:
                server = _OriginServer(("127.0.0.1", self.port), _OriginHandler)
                break
            except OSError as exc:  # the old port may linger for a moment
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        server.origin = self
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="origin-%d" % self.port, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop listening (connections are refused) and drop every open connection."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._thread = None

    def close(self):
        with self._lock:
            holds = list(self._holds)
        for h in holds:  # held handler threads answer (to nobody) and end
            h.release()
        self.stop()
        _registry.discard(self)


def tls_server_context(cert, key, client_ca=None, max_version=None, min_version=None):
    """A server context for Origin(tls=...): certificate and key files; client_ca: require a
    client certificate issued by that CA file; max/min_version: ssl.TLSVersion bounds."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    if max_version is not None:
        ctx.maximum_version = max_version
    if min_version is not None:
        ctx.minimum_version = min_version
    return ctx


# --------------------------------------------------------------------------------------
# Edgecache process

READY_RE = re.compile(r"edgecache: ready proxy=(\S+):(\d+)(?: admin=(\S+):(\d+))?")
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)|"
                          r"runtime error:|SUMMARY: UndefinedBehaviorSanitizer")


class EdgecacheError(AssertionError):
    pass


class Edgecache:
    """The real binary as a child process.

    backends: Origins, ports (int) or "HOST:PORT" strings.  data_dir: None = a fresh temp
    dir removed at cleanup (kept across restart()).  args: extra flags; a flag given in args
    replaces the harness default of the same name (--threads 2 --admin-threads 2
    --memory-size 64M --disk-size 256M --default-ttl 120, listen/admin on 127.0.0.1:0).  defaults=False
    passes only args (plus nothing else) — for --config tests.
    """

    DEFAULTS = [("--listen", "127.0.0.1:0"), ("--admin-listen", "127.0.0.1:0"), ("--threads", "2"),
                ("--admin-threads", "2"), ("--memory-size", "64M"), ("--disk-size", "256M"),
                ("--default-ttl", "120")]

    def __init__(self, backends=(), data_dir=None, args=(), binary=None, defaults=True, env=None):
        self.backends = list(backends)
        self._own_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="edgecache-int-")
        self.args = list(args)
        self.binary = binary
        self.defaults = defaults
        self.env = env
        self.proc = None
        self.proxy_port = None
        self.admin_port = None
        self.proxy_host = None
        self.exit_codes = []  # of every stopped run
        self._logdir = tempfile.mkdtemp(prefix="edgecache-log-")
        self._runs = 0
        self._stderr_path = None
        self._stdout_path = None
        self._stderr_files = []
        self._cleaned = False
        self._saved = {}  # stderr/stdout texts kept after the log dir is removed
        _registry.add(self)

    # --- command line
    def _backend_arg(self, b):
        if isinstance(b, Origin):
            return b.address
        if isinstance(b, int):
            return "127.0.0.1:%d" % b
        return str(b)

    def command(self):
        cmd = [self.binary or BINARY]
        given = {a.split("=", 1)[0] for a in self.args if a.startswith("--")}
        if self.defaults:
            for flag, value in self.DEFAULTS:
                if flag not in given:
                    cmd += [flag, value]
            if "--data-dir" not in given:
                cmd += ["--data-dir", self.data_dir]
        for b in self.backends:
            cmd += ["--backend", self._backend_arg(b)]
        return cmd + self.args

    # --- lifecycle
    def start(self, timeout=10):
        """Start the process and wait for its ready line; raise EdgecacheError (with the stderr
        tail) when it exits or does not become ready in time."""
        if self.proc is not None and self.proc.poll() is None:
            raise EdgecacheError("edgecache already running (pid %d)" % self.proc.pid)
        self._runs += 1
        self._stderr_path = os.path.join(self._logdir, "stderr.%d" % self._runs)
        self._stdout_path = os.path.join(self._logdir, "stdout.%d" % self._runs)
        self._stderr_files.append(self._stderr_path)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if self.env:
            env.update(self.env)
        cmd = self.command()
        if not os.path.exists(cmd[0]):
            raise EdgecacheError("binary not found: %s (build it, or pass --binary)" % cmd[0])
        with open(self._stderr_path, "wb") as err, open(self._stdout_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=self._logdir, env=env)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            m = READY_RE.search(self._read(self._stderr_path))
            if m:
                self.proxy_host = m.group(1)
                self.proxy_port = int(m.group(2))
                self.admin_port = int(m.group(4)) if m.group(4) else None
                return self
            code = self.proc.poll()
            if code is not None:
                self.exit_codes.append(code)
                raise EdgecacheError("edgecache exited with %s before it was ready\ncommand: %s\n%s" % (
                    code, " ".join(cmd), self._tail(self._stderr_path)))
            if time.monotonic() >= deadline:
                self._kill()
                raise EdgecacheError("edgecache not ready after %.1fs\ncommand: %s\n%s" % (
                    scaled(timeout), " ".join(cmd), self._tail(self._stderr_path)))
            time.sleep(0.02)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send sig and wait for the exit; return the exit code (negative = killed by that
        signal). If it does not exit in time it is killed with SIGKILL and EdgecacheError is
        raised."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self._kill()
                raise EdgecacheError("edgecache did not exit within %.1fs of signal %d\n%s" % (
                    scaled(timeout), sig, self._tail(self._stderr_path)))
        code = self.proc.returncode
        self.exit_codes.append(code)
        self.proc = None
        return code

    def kill9(self):
        """SIGKILL (no chance to flush anything) and reap. Returns the exit code (-9)."""
        if self.proc is None:
            return None
        self._kill()
        code = self.proc.returncode
        self.exit_codes.append(code)
        self.proc = None
        return code

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def restart(self, sig=signal.SIGTERM, timeout=10):
        """stop(sig) then start() with the same data dir and flags; returns the stop's exit code."""
        code = self.stop(sig, timeout)
        self.start(timeout)
        return code

    # --- output
    def _read(self, path):
        if path in self._saved:
            return self._saved[path]
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _tail(self, path, lines=40):
        text = self._read(path) if path else ""
        tail = text.splitlines()[-lines:]
        return "--- edgecache stderr (last %d lines) ---\n%s\n---" % (len(tail), "\n".join(tail))

    def stderr_text(self):
        """Everything the process wrote to stderr, all runs (restarts) concatenated."""
        return "".join(self._read(p) for p in self._stderr_files)

    def stdout_text(self):
        return self._read(self._stdout_path) if self._stdout_path else ""

    def stderr_tail(self, lines=40):
        return self._tail(self._stderr_path, lines)

    def sanitizer_report(self):
        """The first sanitizer finding in stderr (any run), or None."""
        text = self.stderr_text()
        m = SANITIZER_RE.search(text)
        if not m:
            return None
        start = text.rfind("\n", 0, m.start()) + 1
        return text[start:start + 4000]

    # --- teardown
    def cleanup(self, check=True):
        """Stop (SIGTERM, then SIGKILL), remove temp dirs. With check, raise EdgecacheError when
        the final stop was not a clean exit 0 or a sanitizer reported anything."""
        if self._cleaned:
            return
        self._cleaned = True
        problems = []
        try:
            if self.proc is not None:
                code = self.stop()
                if code != 0:
                    problems.append("exit code %s after SIGTERM at teardown" % code)
        except EdgecacheError as exc:
            problems.append(str(exc))
        report = self.sanitizer_report()
        if report:
            problems.append("sanitizer report in stderr:\n" + report)
        text = self.stderr_tail(60)
        for path in self._stderr_files + [self._stdout_path]:
            if path:
                self._saved[path] = self._read(path)
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self._logdir, ignore_errors=True)
        _registry.discard(self)  # last: an interrupted cleanup is finished by the atexit sweep
        if problems and check:
            raise EdgecacheError("; ".join(problems) + "\n" + text)

    def emergency_kill(self):
        self._kill()
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self._logdir, ignore_errors=True)


def run_binary(args, timeout=10, cwd=None, binary=None, env=None):
    """Run the binary to completion (CLI commands: --help, migrate ...).
    Returns subprocess.CompletedProcess with text stdout/stderr. Kills it on timeout."""
    full_env = dict(os.environ)
    full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    if env:
        full_env.update(env)
    tmp = None
    if cwd is None:
        tmp = cwd = tempfile.mkdtemp(prefix="edgecache-cli-")
    try:
        return subprocess.run([binary or BINARY] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=scaled(timeout), cwd=cwd, env=full_env)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def create_token(edge_or_dir, scope="global", name=None):
    """A new API token made by `edgecache token create` for a node (or its data directory);
    AssertionError with the CLI's stderr when it fails."""
    data_dir = getattr(edge_or_dir, "data_dir", edge_or_dir)
    args = ["token", "create", "--data-dir", data_dir, "--scope", scope] + (["--name", name] if name else [])
    p = run_binary(args)
    if p.returncode != 0 or not p.stdout.strip():
        raise AssertionError("edgecache token create --scope %s failed: %s" % (scope, p.stderr))
    return p.stdout.strip().splitlines()[0].strip()


# --------------------------------------------------------------------------------------
# registry: nothing outlives the test process

class _Registry:
    def __init__(self):
        self._items = set()
        self._lock = threading.Lock()
        self.created = []  # every Edgecache created since the last take_created()

    def add(self, item):
        with self._lock:
            self._items.add(item)
            if isinstance(item, Edgecache):
                self.created.append(item)

    def discard(self, item):
        with self._lock:
            self._items.discard(item)

    def take_created(self):
        with self._lock:
            out, self.created = self.created, []
            return out

    def kill_all(self):
        with self._lock:
            items = list(self._items)
            self._items.clear()
        for item in items:
            try:
                if isinstance(item, Edgecache):
                    item.emergency_kill()
                else:
                    item.stop()
            except Exception:  # best effort at exit
                pass


_registry = _Registry()
atexit.register(_registry.kill_all)


# --------------------------------------------------------------------------------------
# unittest glue


class TestCase(unittest.TestCase):
    """Base class: self.origin() / self.edgecache() create, start and register cleanups."""

    def origin(self, **kwargs):
        o = Origin(**kwargs)
        self.addCleanup(o.close)
        return o

    def edgecache(self, backends=(), start=True, **kwargs):
        e = Edgecache(backends=backends, **kwargs)
        self.addCleanup(e.cleanup)
        if start:
            e.start()
        return e

    def get(self, edge, path, headers=None, **kw):
        return request(edge.proxy_port, "GET", path, headers=headers, **kw)

    def admin_api(self, edge, method, path, body=None, token=None, form=False, expect=None):
        """One admin API request with Fastly-Key `token`; a dict body goes as JSON, or as a form
        with form=True; `expect`: the status it must answer."""
        h = {"Fastly-Key": token} if token is not None else {}
        if isinstance(body, dict):
            if form:
                body = urllib.parse.urlencode(body)
                h["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                body = json.dumps(body)
                h["Content-Type"] = "application/json"
        r = request(edge.admin_port, method, path, headers=h, body=body)
        if expect is not None:
            self.assertEqual(r.status, expect, "%s %s -> %s" % (method, path, r.body))
        return r

    def assertXCache(self, resp, expected, msg=None):
        got = resp.header("x-cache")
        if got is None or got.split(",")[0].strip().upper() != expected:
            self.fail((msg + "\n" if msg else "") + "expected X-Cache %s, got %r\n%s" % (
                expected, got, resp.describe()))


def sleep_until(t_monotonic):
    """Sleep until a monotonic instant (no-op if already past)."""
    delay = t_monotonic - time.monotonic()
    if delay > 0:
        time.sleep(delay)


if __name__ == "__main__":
    print("harness.py is a library; run tests with: python3 %s/tests/integration/run.py" % ROOT, file=sys.stderr)
    sys.exit(2)

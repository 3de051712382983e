"""
tests/integration/harness_origin.py — how the scripted origin answers (harness.py re-exports
it): the request handler, routes, the requests it records, Hold (a response held until the
test releases it), and the TLS server context of a TLS origin. The Origin class that starts
and stops one is in harness_servers.py, beside Edgecache: one registry stops both.
"""

import socket
import ssl
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness_base import scaled
from harness_client import _header_items


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

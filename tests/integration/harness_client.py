"""
tests/integration/harness_client.py — the harness's HTTP client side (harness.py re-exports
it): a Response, one request on a fresh connection, a keep-alive Session, and raw sockets
for what http.client will not send or parse (Reader, RawListener, read_raw_response,
pipeline). Every socket has a timeout (scaled, harness_base.py).
"""

import http.client
import re
import socket
import threading

from harness_base import scaled


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


def request(port, method, path, headers=None, body=None, timeout=5, host="127.0.0.1", source=None):
    """One request on a fresh connection; returns a Response. `headers` is a dict or a list
    of (name, value); a "Host" entry replaces the default "127.0.0.1:<port>". `source`: the
    client's address (another loopback one, "127.0.0.2", is another client to the proxy)."""
    conn = http.client.HTTPConnection(host, port, timeout=scaled(timeout),
                                      source_address=(source, 0) if source is not None else None)
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


def read_to_close(sock):
    """Every byte the peer sends until it closes (the socket's own timeout bounds the wait)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


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

"""
tests/integration/hostile_origin.py — a misbehaving origin for the reliability tests: a raw
TCP server on 127.0.0.1:<ephemeral> that reads one HTTP/1.1 request head at a time and answers
according to the first segment of the path. Python 3 standard library only.

    o = HostileOrigin()
    e = Edgecache(backends=[o.address], args=["--origin-timeout", "1000"])
    ...GET /short/x through edgecache...
    o.hits("/short/x")        # requests the origin received for that path
    o.close()

Modes (path prefix):
  /ok/...          a well-formed cacheable 200 (Content-Length, keep-alive); body "ok:<path>\\n"
  /endless/...     200, chunked, chunks of 16 KiB for ever (until the peer goes away)
  /endless-eof/... 200 without Content-Length (close-delimited), data for ever
  /hugeheader/...  a 200 whose head carries one 80 KiB header (more than 64 KiB)
  /manyheaders/... a 200 with 300 header fields
  /badstatus/...   an invalid status line ("HTTP/1.1 2x0 What"), then a body
  /garbage/...     bytes that are not HTTP at all, then close
  /short/...       Content-Length: 100000, 1000 bytes of body, then close
  /long/...        Content-Length: 10, then those 10 bytes and 19 more that look like a response
                   head (they would poison a reused connection); the connection stays open
  /nothing/...     reads the request, closes without a byte
  /hang/...        reads the request, never answers (the socket is held until close())

Every connection is one thread (daemon); close() shuts the listener and every socket, so a
failing test never leaves a thread blocked. For the endless modes, `endless_closed` records
the monotonic time at which the proxy dropped the origin connection, so a test can assert
that resources are released once nobody wants the body.
"""

import socket
import threading
import time

OK_HEADERS = b"Cache-Control: max-age=300\r\nContent-Type: text/plain\r\n"


class HostileOrigin:
    def __init__(self):
        self._lock = threading.Lock()
        self._hits = {}
        self._socks = set()
        self._closed = False
        self.endless_closed = {}   # path -> monotonic time the proxy dropped the connection
        self.endless_bytes = {}    # path -> bytes sent before that
        self.connections = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="hostile-origin-%d" % self.port, daemon=True)
        self._thread.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    # --- bookkeeping
    def hits(self, path=None):
        with self._lock:
            if path is None:
                return sum(self._hits.values())
            return self._hits.get(path, 0)

    def _count(self, path):
        with self._lock:
            self._hits[path] = self._hits.get(path, 0) + 1

    def close(self):
        with self._lock:
            self._closed = True
            socks = list(self._socks)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self._thread.join(5)

    # --- server
    def _accept_loop(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._socks.add(conn)
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_head(self, conn, buf):
        """Read up to the end of a request head; returns (head, rest) or (None, b"") at EOF."""
        while b"\r\n\r\n" not in buf:
            try:
                data = conn.recv(65536)
            except OSError:
                return None, b""
            if not data:
                return None, b""
            buf += data
            if len(buf) > 1 << 20:
                return None, b""
        head, rest = buf.split(b"\r\n\r\n", 1)
        return head, rest

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                head, buf = self._read_head(conn, buf)
                if head is None:
                    return
                request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
                parts = request_line.split(" ")
                path = parts[1] if len(parts) >= 2 else "/"
                method = parts[0]
                # bodies of requests we receive are not used; skip a Content-Length body
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        n = int(value.strip() or b"0")
                        while len(buf) < n:
                            data = conn.recv(65536)
                            if not data:
                                return
                            buf += data
                        buf = buf[n:]
                self._count(path)
                mode = path.split("/")[1] if path.count("/") >= 1 else ""
                keep = self._answer(conn, mode, path, method)
                if not keep:
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._socks.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _answer(self, conn, mode, path, method):
        """Send the answer for one request; return True to keep reading requests."""
        if mode == "ok":
            body = ("ok:%s\n" % path).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + OK_HEADERS + b"Content-Length: %d\r\n\r\n" % len(body) +
                         (body if method != "HEAD" else b""))
            return True
        if mode in ("endless", "endless-eof"):
            chunked = mode == "endless"
            head = b"HTTP/1.1 200 OK\r\n" + OK_HEADERS
            head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Connection: close\r\n\r\n"
            conn.sendall(head)
            piece = b"e" * 16384
            frame = b"4000\r\n" + piece + b"\r\n" if chunked else piece
            sent = 0
            conn.settimeout(30)
            try:
                while not self._closed:
                    conn.sendall(frame)
                    sent += len(piece)
            except OSError:
                pass
            with self._lock:
                self.endless_closed[path] = time.monotonic()
                self.endless_bytes[path] = sent
            return False
        if mode == "hugeheader":
            body = b"huge\n"
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + OK_HEADERS + b"X-Huge: " + b"h" * (80 * 1024) + b"\r\n" +
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return True
        if mode == "manyheaders":
            body = b"many\n"
            fields = b"".join(b"X-Field-%d: %d\r\n" % (i, i) for i in range(300))
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + OK_HEADERS + fields + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return True
        if mode == "badstatus":
            body = b"bad status\n"
            conn.sendall(b"HTTP/1.1 2x0 What\r\n" + OK_HEADERS + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return False
        if mode == "garbage":
            conn.sendall(b"\x00\x01 this is not HTTP \xff\r\n\r\nat all\r\n")
            return False
        if mode == "short":
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + OK_HEADERS + b"Content-Length: 100000\r\n\r\n" + b"s" * 1000)
            time.sleep(0.05)
            return False
        if mode == "long":
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + OK_HEADERS + b"Content-Length: 10\r\n\r\n" + b"0123456789" +
                         b"HTTP/1.1 200 OK\r\n\r\n")  # extra bytes that look like a response head
            return True
        if mode == "nothing":
            return False
        if mode == "hang":
            while not self._closed:
                try:
                    conn.settimeout(0.2)
                    data = conn.recv(65536)
                    if not data:
                        return False
                except socket.timeout:
                    continue
            return False
        body = b"no such mode\n"
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return True

"""
tests/integration/test_request_bodies.py — request bodies still arriving are bounded
(server/inflow.c): h2o 2.2.5 holds a request's whole body before the handler runs, and two h2c
connections sending 100 unfinished 4 MB bodies each took edgecache to 812 MB. Now the bodies
still arriving on all connections stay within --request-body-memory: a connection that would pass
it (or holds more than 4 bodies of --max-request-body) is closed, and counted in /stats. (The
bodies held while origins answer have their own check: test_response_path.RequestBodies.)

Every attack is raw bytes on real sockets (HTTP/2 frames written here, HPACK literals without
Huffman coding); the legitimate uploads around them must still pass, whole, to the origin.
"""

import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import unittest

import certs
import harness
from harness import create_token, request, scaled, wait_until

MAX_BODY = 1 << 20  # --max-request-body
BUDGET = 8 << 20  # --request-body-memory
ARGS = ["--max-request-body", str(MAX_BODY), "--request-body-memory", str(BUDGET)]
TLS_RE = re.compile(r" tls=(\S+)")  # as test_tls.py reads the bound address
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# A sanitizer build's allocator keeps freed memory in quarantine (ASan: 256 MiB), so its peak RSS says nothing of
# what edgecache holds; its runs (slower: EDGECACHE_TIMEOUT_SCALE above 1) check the rest but not that figure.
MEASURE_RSS = harness.timeout_scale() == 1


def hpack_int(value, prefix_bits, flags=0):
    """RFC 7541 5.1."""
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes([flags | value])
    out, value = [flags | top], value - top
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    return bytes(out + [value])


def hpack_field(name_index, value):
    """A literal field without indexing, its name from the static table (RFC 7541 6.2.2)."""
    return hpack_int(name_index, 4) + hpack_int(len(value), 7) + value


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def post_headers(stream, path, length, end_stream=False):
    """HEADERS for a POST of `length` body bytes (END_HEADERS; END_STREAM when there is no body)."""
    block = (b"\x83"  # :method POST
             + b"\x86"  # :scheme http
             + hpack_field(4, path.encode())  # :path
             + hpack_field(1, b"example.test")  # :authority
             + hpack_field(28, str(length).encode()))  # content-length
    return frame(0x1, 0x4 | (0x1 if end_stream else 0), stream, block)


START = PREFACE + frame(0x4, 0, 0)  # the client preface, then an empty SETTINGS


def get_headers(stream, path):
    """HEADERS for a GET (END_HEADERS, END_STREAM)."""
    block = b"\x82" + b"\x86" + hpack_field(4, path.encode()) + hpack_field(1, b"example.test")  # GET, http
    return frame(0x1, 0x5, stream, block)


def data_frames(stream, nbytes, end_stream):
    out, left = [], nbytes
    while left > 0:
        n = min(left, 16384)
        left -= n
        out.append(frame(0x0, 0x1 if end_stream and left == 0 else 0, stream, b"u" * n))
    return b"".join(out)


def rss_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def closed_by_server(sock, timeout):
    """Read (and drop) what the server sends until it closes the connection; True if it did."""
    sock.settimeout(scaled(timeout))
    try:
        harness.read_to_close(sock)
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    return True


class RequestBodies(harness.TestCase):
    def setUp(self):
        self.o = self.origin()
        self.received = []  # body lengths the origin got
        lock = threading.Lock()

        def upload(req):
            if req.method != "GET":
                with lock:
                    self.received.append(len(req.body or b""))
            return 200, {"Content-Type": "text/plain"}, b"got %d" % len(req.body or b"")

        self.o.route_prefix("/", handler=upload)
        self.e = self.edgecache([self.o], args=ARGS)
        self.tok = create_token(self.e, "global:read")

    def h2c(self):
        """A cleartext HTTP/2 connection to the proxy (prior knowledge), closed with the test."""
        s = socket.create_connection(("127.0.0.1", self.e.proxy_port))
        self.addCleanup(s.close)
        s.sendall(START)
        return s

    def stats(self):
        r = request(self.e.admin_port, "GET", "/stats", headers={"Fastly-Key": self.tok})
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)

    def bodies(self):
        return self.stats()["request_bodies"]

    def arriving_at_least(self, n, what):
        wait_until(lambda: self.bodies()["arriving_bytes"] >= n, what=what)

    def assert_uploads_pass(self, what):
        """An HTTP/1 upload of a whole --max-request-body still reaches the origin whole."""
        body = b"b" * MAX_BODY
        r = request(self.e.proxy_port, "POST", "/after", body=body, headers={"Content-Type": "text/plain"})
        self.assertEqual((r.status, r.body), (200, b"got %d" % MAX_BODY), what + "\n" + r.describe())

    def attack(self, connect, nconn, streams, per_stream):
        """nconn connections, each opening `streams` POSTs of MAX_BODY and sending per_stream bytes of each,
        never the end. Returns the connections' sockets, after every sender is done (or was cut off)."""
        socks = [connect() for _ in range(nconn)]

        def send(s):
            try:
                s.sendall(START)
                for k in range(streams):
                    sid = 1 + 2 * k
                    s.sendall(post_headers(sid, "/up%d" % k, MAX_BODY) + data_frames(sid, per_stream, False))
            except OSError:
                pass  # closed by the server: what is wanted

        threads = [threading.Thread(target=send, args=(s,)) for s in socks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(scaled(60))
        return socks

    def check_bounded(self, socks, before_kib, what):
        for i, s in enumerate(socks):
            self.assertTrue(closed_by_server(s, 10), "%s: connection %d was closed" % (what, i))
            s.close()
        grown = rss_kib(self.e.proc.pid, "VmHWM") - before_kib
        sent = len(socks) * 100 * 900 * 1024 // 1024
        # the budget (8 MiB), and what reads bring before they are counted: h2o reads until the socket is empty,
        # doubling its buffer, so one read of a fast sender on loopback can bring several MB per connection
        if MEASURE_RSS:
            self.assertLess(grown, 128 * 1024, "%s: peak memory grew by %d KiB while %d KiB of bodies were sent" % (
                what, grown, sent))
        b = wait_until(lambda: (lambda v: v if v["arriving_bytes"] == 0 else None)(self.bodies()),
                       what="arriving bytes back to 0 once the connections are gone")
        self.assertGreaterEqual(b["connections_closed"], len(socks), b)
        self.assertEqual(b["budget"], BUDGET)
        self.assert_uploads_pass(what)
        self.assertEqual(self.received, [MAX_BODY], "no unfinished body reached the origin")

    def test_unfinished_h2c_bodies_are_bounded(self):
        before = rss_kib(self.e.proc.pid)
        socks = self.attack(lambda: socket.create_connection(("127.0.0.1", self.e.proxy_port)), 4, 100, 900 * 1024)
        self.check_bounded(socks, before, "h2c")

    def test_unfinished_h2_bodies_over_tls_are_bounded(self):
        tmp = tempfile.mkdtemp(prefix="edgecache-bodies-")
        self.addCleanup(shutil.rmtree, tmp, True)
        ca = certs.TestCA(os.path.join(tmp, "ca"))
        cert, key = ca.issue("localhost")
        self.e.stop()
        e = self.edgecache([self.o], args=ARGS + ["--tls-listen", "127.0.0.1:0", "--tls-cert",
                                                  "localhost=%s,%s" % (cert, key)])
        self.e, self.tok = e, create_token(e, "global:read")
        m = TLS_RE.search(e.stderr_text())
        self.assertIsNotNone(m, e.stderr_tail())
        port = int(m.group(1).split(",")[0].rsplit(":", 1)[1])
        ctx = ssl.create_default_context(cafile=ca.cert)
        ctx.set_alpn_protocols(["h2"])

        def connect():
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
            self.assertEqual(s.selected_alpn_protocol(), "h2")
            return s

        before = rss_kib(e.proc.pid)
        socks = self.attack(connect, 4, 100, 900 * 1024)
        self.check_bounded(socks, before, "h2 over TLS")

    def test_http2_after_http1_requests_is_counted(self):
        # h2o turns an HTTP/1 connection into HTTP/2 whenever a request starts with the client preface, also after
        # HTTP/1 requests on it. An early version went on counting it as HTTP/1 and, at its first HTTP/2 request,
        # started its count afresh: four unfinished bodies (under the connection's limit of four), a GET, and a
        # fifth was kept open, with the first four no longer counted
        before = rss_kib(self.e.proc.pid)
        socks = []
        for n in range(3):
            s = socket.create_connection(("127.0.0.1", self.e.proxy_port))
            socks.append(s)
            reader = harness.Reader(s)
            for i in range(3):
                s.sendall(b"GET /first%d HTTP/1.1\r\nHost: example.test\r\n\r\n" % i)
                self.assertEqual(harness.read_raw_response(reader).status, 200)
            try:
                s.sendall(START)
                for sid in (1, 3, 5, 7, 11):  # and a GET on 9, before the fifth
                    if sid == 11:
                        s.sendall(get_headers(9, "/get"))
                    s.sendall(post_headers(sid, "/up%d" % sid, MAX_BODY) + data_frames(sid, 900 << 10, False))
            except OSError:
                pass  # closed by the server: what is wanted
        self.check_bounded(socks, before, "HTTP/2 after HTTP/1")

    def test_reset_and_refused_streams_leave_nothing_counted(self):
        # uploads the client gives up (RST_STREAM) and bodies h2o refuses (past --max-request-body) are dropped by
        # h2o: so are their counts, or a long-lived connection would reach its limit on bytes nobody holds
        s = self.h2c()
        sid = 1
        for k in range(24):  # 12 MiB given up, three times the connection's limit
            s.sendall(post_headers(sid, "/gone%d" % k, MAX_BODY) + data_frames(sid, 512 << 10, False)
                      + frame(0x3, 0, sid, struct.pack(">I", 0x8)))  # RST_STREAM CANCEL
            sid += 2
        for k in range(6):  # 7.5 MiB refused by h2o
            s.sendall(post_headers(sid, "/big%d" % k, 0) + data_frames(sid, MAX_BODY + (256 << 10), True))
            sid += 2
        body = b"w" * (700 << 10)
        s.sendall(post_headers(sid, "/whole", len(body)) + data_frames(sid, len(body), True))
        wait_until(lambda: len(self.received) == 1, what="the whole upload at the origin")
        self.assertEqual(self.received, [len(body)], "only the whole upload reached the origin")
        b = self.bodies()
        self.assertEqual((b["connections_closed"], b["arriving_bytes"]), (0, 0), b)

    def test_a_stream_made_to_exist_by_priority_is_counted_once_opened(self):
        # PRIORITY makes a stream exist (idle) in h2o, which drops DATA sent on it. An early version counted that
        # DATA until past --max-request-body, marked the stream refused, and then skipped the real body sent after
        # HEADERS opened it: any number of bodies held uncounted
        before = rss_kib(self.e.proc.pid)

        def connect():
            return socket.create_connection(("127.0.0.1", self.e.proxy_port))

        socks = [connect() for _ in range(3)]
        for s in socks:
            try:
                s.sendall(START)
                for k in range(8):
                    sid = 1 + 2 * k
                    # PRIORITY (depends on 0, weight 17) opens the idle stream, a DATA frame on it makes h2o reset it:
                    # once per frame, past --max-request-body
                    priority = frame(0x2, 0, sid, b"\x00\x00\x00\x00\x10")
                    s.sendall(b"".join(priority + frame(0x0, 0, sid, b"p" * 16384) for _ in range(MAX_BODY // 16384 + 4))
                              + post_headers(sid, "/p%d" % sid, MAX_BODY) + data_frames(sid, 900 << 10, False))
            except OSError:
                pass  # closed by the server: what is wanted
        self.check_bounded(socks, before, "PRIORITY first")

    def test_data_on_an_idle_stream_does_not_count_towards_its_body(self):
        # a fifth review: one DATA frame on a stream PRIORITY made idle (h2o drops it), then HEADERS opening it and
        # a body one byte short of --max-request-body. Counted together they passed the limit, the stream was taken
        # for refused by h2o and its body skipped, while h2o held all of it
        before = rss_kib(self.e.proc.pid)
        socks = [socket.create_connection(("127.0.0.1", self.e.proxy_port)) for _ in range(3)]
        for s in socks:
            try:
                s.sendall(START)
                for k in range(8):
                    sid = 1 + 2 * k
                    s.sendall(frame(0x2, 0, sid, b"\x00\x00\x00\x00\x10") + frame(0x0, 0, sid, b"p" * 16384)
                              + post_headers(sid, "/p%d" % sid, MAX_BODY) + data_frames(sid, MAX_BODY - 1, False))
            except OSError:
                pass  # closed by the server: what is wanted
        self.check_bounded(socks, before, "DATA on an idle stream first")

    def test_a_stream_opened_below_the_greatest_id_counts_afresh(self):
        # a sixth review: PRIORITY makes stream 1 idle again after stream 3 was opened, and h2o opens it from a
        # HEADERS although its id is below 3. An early version took that HEADERS for trailers, kept the 1 MiB of DATA
        # h2o had dropped on the idle stream, took the stream for refused at its first real frame, and skipped a body
        # h2o held whole
        s = self.h2c()
        priority = frame(0x2, 0, 1, b"\x00\x00\x00\x00\x10")
        s.sendall(b"".join(priority + frame(0x0, 0, 1, b"p" * 16384) for _ in range(MAX_BODY // 16384)))
        s.sendall(priority + post_headers(3, "/three", MAX_BODY) + post_headers(1, "/one", MAX_BODY)
                  + data_frames(1, MAX_BODY - 1, False))
        # what h2o dropped stays counted (an over-count), and stream 1's own body is counted on top of it
        self.arriving_at_least(2 * MAX_BODY - 1 - (16 << 10), "stream 1's body counted")

    def test_uploads_with_trailers_are_taken_off(self):
        # a request ended by trailers (HEADERS with END_STREAM after its DATA) is handed over like any other: its
        # bytes leave the count, or 24 of them on one connection would pass its limit
        s = self.h2c()
        trailer = b"\x00" + hpack_int(9, 7) + b"x-trailer" + hpack_int(1, 7) + b"1"
        for k in range(24):
            sid = 1 + 2 * k
            s.sendall(post_headers(sid, "/t%d" % k, 256 << 10) + data_frames(sid, 256 << 10, False)
                      + frame(0x1, 0x5, sid, trailer))
        wait_until(lambda: len(self.received) == 24, what="the 24 uploads at the origin")
        self.assertEqual(self.received, [256 << 10] * 24)
        b = wait_until(lambda: (lambda v: v if v["held_bytes"] == 0 else None)(self.bodies()), what="nothing held")
        self.assertEqual((b["connections_closed"], b["arriving_bytes"]), (0, 0), b)

    def test_a_request_takes_off_only_its_own_stream(self):
        # stream 1's body is arriving; in one read: a whole 10-byte upload on stream 3, its RST_STREAM, and stream 1's
        # trailers begun (END_STREAM, no END_HEADERS: h2o holds stream 1 until a CONTINUATION). An early version,
        # finding no whole stream of 10 bytes to take off for stream 3's request, took the first whole one: stream 1,
        # whose 900 KiB h2o still held, then uncounted
        s = self.h2c()
        s.sendall(post_headers(1, "/b", MAX_BODY) + data_frames(1, 900 << 10, False))
        self.arriving_at_least((900 << 10) - (16 << 10), "stream 1's body counted")
        requests = self.stats()["requests"]
        trailer = b"\x00" + hpack_int(9, 7) + b"x-trailer" + hpack_int(1, 7) + b"1"
        s.sendall(post_headers(3, "/a", 10) + data_frames(3, 10, True) + frame(0x3, 0, 3, struct.pack(">I", 0x8))
                  + frame(0x1, 0x1, 1, trailer))
        wait_until(lambda: self.stats()["requests"] > requests, what="stream 3's request at the handler")
        self.assertGreaterEqual(self.bodies()["arriving_bytes"], (900 << 10) - (16 << 10), "stream 1 still counted")

    def test_a_whole_stream_reset_keeps_its_count_for_its_request(self):
        # the same with a stream of the same length (a fourth review): stream 3 is completed and reset in the read
        # that begins stream 1's trailers. An early version dropped stream 3's count at the reset; its request then
        # took off stream 1's, of the same length, which h2o still held
        s = self.h2c()
        n = 600 << 10
        s.sendall(post_headers(1, "/b", MAX_BODY) + data_frames(1, n, False)
                  + post_headers(3, "/a", n) + data_frames(3, n - 1, False))
        self.arriving_at_least(2 * n - 1 - (16 << 10), "both bodies counted")
        requests = self.stats()["requests"]
        trailer = b"\x00" + hpack_int(9, 7) + b"x-trailer" + hpack_int(1, 7) + b"1"
        s.sendall(frame(0x0, 0x1, 3, b"z") + frame(0x3, 0, 3, struct.pack(">I", 0x8)) + frame(0x1, 0x1, 1, trailer))
        wait_until(lambda: self.stats()["requests"] > requests, what="stream 3's request at the handler")
        self.assertGreaterEqual(self.bodies()["arriving_bytes"], n - (16 << 10), "stream 1 still counted")

    def test_frames_behind_the_last_http1_request_are_counted(self):
        # a GET, then in the same write the client preface and an unfinished upload: h2o turns the connection into
        # HTTP/2 after answering the GET and parses those frames from its own callback. An early version counted them
        # as HTTP/1 bytes, then started the HTTP/2 count at 0
        s = socket.create_connection(("127.0.0.1", self.e.proxy_port))
        self.addCleanup(s.close)
        s.sendall(b"GET /g HTTP/1.1\r\nHost: example.test\r\n\r\n" + START + post_headers(1, "/up", MAX_BODY)
                  + data_frames(1, 200 << 10, False))
        self.arriving_at_least((200 << 10) - (16 << 10), "the upload behind the GET counted")
        self.assertEqual(self.bodies()["connections_closed"], 0)

    def test_unfinished_http1_bodies_are_bounded(self):
        before = rss_kib(self.e.proc.pid)
        socks = []
        head = b"POST /up HTTP/1.1\r\nHost: example.test\r\nContent-Length: %d\r\n\r\n" % MAX_BODY
        for i in range(96):
            s = socket.create_connection(("127.0.0.1", self.e.proxy_port))
            try:
                s.sendall(head + b"u" * (900 * 1024))
            except OSError:
                pass
            socks.append(s)
        wait_until(lambda: self.bodies()["connections_closed"] > 0, what="a connection closed for the budget")
        grown = rss_kib(self.e.proc.pid, "VmHWM") - before
        if MEASURE_RSS:
            self.assertLess(grown, 48 * 1024, "peak memory grew by %d KiB while 86,400 KiB of bodies were sent" % grown)
        for s in socks:
            s.close()
        wait_until(lambda: self.bodies()["arriving_bytes"] == 0, what="arriving bytes back to 0")
        self.assert_uploads_pass("HTTP/1")
        self.assertEqual(self.received, [MAX_BODY])

    def test_uploads_within_the_budget_pass(self):
        # more bytes over one connection than its limit (4 bodies), one request after another: what the handler
        # took is taken off, over HTTP/1 keep-alive and over h2c
        body = b"k" * (256 << 10)
        s = socket.create_connection(("127.0.0.1", self.e.proxy_port))
        self.addCleanup(s.close)
        reader = harness.Reader(s)
        for i in range(24):
            s.sendall(b"POST /k%d HTTP/1.1\r\nHost: example.test\r\nContent-Length: %d\r\n\r\n" % (i, len(body)) + body)
            r = harness.read_raw_response(reader)
            self.assertEqual((r.status, r.body), (200, b"got %d" % len(body)), r.describe())
        h2 = self.h2c()
        for k in range(24):
            sid = 1 + 2 * k
            h2.sendall(post_headers(sid, "/h%d" % k, len(body)) + data_frames(sid, len(body), True))
            wait_until(lambda: len(self.received) == 25 + k, what="upload %d at the origin" % k)
        # and four whole bodies at once on one HTTP/2 connection (within its limit and the budget)
        h2.sendall(b"".join(post_headers(101 + 2 * k, "/p%d" % k, 900 << 10) for k in range(4)))
        h2.sendall(b"".join(data_frames(101 + 2 * k, 900 << 10, True) for k in range(4)))
        wait_until(lambda: len(self.received) == 52, what="the four parallel uploads at the origin")
        self.assertEqual(self.received, [len(body)] * 48 + [900 << 10] * 4)
        self.assertEqual(self.bodies()["connections_closed"], 0)

    @unittest.skipUnless(shutil.which("curl"), "needs curl")
    def test_uploads_over_an_upgraded_connection_are_taken_off(self):
        # Upgrade: h2c (curl --http2 on http://) turns an HTTP/1 connection into HTTP/2 after its first request:
        # bodies sent on it afterwards are counted as HTTP/2 DATA and taken off as each request is handled
        path = os.path.join(tempfile.mkdtemp(prefix="edgecache-bodies-"), "body")
        self.addCleanup(shutil.rmtree, os.path.dirname(path), True)
        with open(path, "wb") as f:
            f.write(b"c" * (512 << 10))
        url = "http://127.0.0.1:%d/c" % self.e.proxy_port
        args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}\\n", "--http2", url]
        for i in range(16):
            args += ["--next", "-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}\\n", "--http2",
                     "--data-binary", "@" + path, "%s%d" % (url, i)]
        out = subprocess.run(args, capture_output=True, timeout=scaled(60)).stdout.decode().split()
        if out[:2] != ["2", "200"]:
            self.skipTest("this curl did not upgrade to h2c: %r" % out[:2])
        self.assertEqual(out, ["2", "200"] * 17)
        self.assertEqual(self.received, [512 << 10] * 16)
        self.assertEqual(self.bodies()["connections_closed"], 0)
        self.assertEqual(self.bodies()["arriving_bytes"], 0)

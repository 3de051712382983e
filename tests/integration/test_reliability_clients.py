"""
tests/integration/test_reliability_clients.py — issue 8: hostile clients, end to end against
the real binary: request-head limits, slow and silent clients, a client that never reads,
pipelining, thousands of idle keep-alive connections. The shared helpers are in
reliabilityutil.py.
"""

import json
import os
import resource
import selectors
import socket
import time

import harness
from harness import request, scaled
from reliabilityutil import (NETWORK_ERRORS, ReliabilityCase, body_for, create_token, raw_exchange, server_rss_kib,
                             server_socket_fds)


class HostileClients(ReliabilityCase):
    def setUp(self):
        self.o = self.fast_origin()
        self.o.route("/small", headers={"Cache-Control": "max-age=300"}, body=b"small\n")
        self.o.route_prefix("/p/", handler=lambda req: (200, {"Cache-Control": "max-age=300"},
                                                         ("body of %s\n" % req.path).encode()))
        self.o.route("/nostore", headers={"Cache-Control": "no-store"}, body=b"not stored\n")
        self.big = body_for("/big", 0, 8 << 20)  # below the largest cacheable size (--memory-size / 4)
        self.o.route("/big", headers={"Cache-Control": "max-age=300"}, body=self.big)
        self.e = self.edgecache([self.o])

    def stalled_clients_closed(self):
        """/stats: clients dropped because their socket's send queue did not move."""
        if getattr(self, "stats_token", None) is None:
            self.stats_token = create_token(self.e, "global:read")
        r = request(self.e.admin_port, "GET", "/stats", headers={"Fastly-Key": self.stats_token})
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)["stalled_clients_closed"]

    def assert_still_serving(self, what):
        try:
            r = request(self.e.proxy_port, "GET", "/small", timeout=5)
        except NETWORK_ERRORS as exc:
            self.fail_server("after %s the proxy does not answer: %r\n%s" % (what, exc, self.e.stderr_tail()))
        self.assertEqual(r.status, 200, "after %s: %s" % (what, r.describe()))
        self.assertEqual(r.body, b"small\n")

    def assert_refused(self, what, raw, origin_must_not_see=True):
        before = self.o.hits()
        status, body, how = raw_exchange(self.e.proxy_port, raw, timeout=scaled(10))
        ok = how == "closed" or (status is not None and 400 <= status < 500)
        if not ok:
            self.fail_server("%s: expected a 4xx or a closed connection, got %s status %s body %r"
                             % (what, how, status, body[:200]))
        if status is not None and len(body) > 1024:
            self.fail_server("%s: the %d answer has a %d-byte body (expected a short one)" % (what, status, len(body)))
        if origin_must_not_see and self.o.hits() != before:
            self.fail_server("%s: the request was forwarded to the origin (answered %s %s) instead of being refused "
                             "by edgecache" % (what, how, status))
        self.assert_still_serving(what)
        return status, how

    def test_request_line_too_long(self):
        results = []
        for size in (64 * 1024, 600 * 1024):
            raw = b"GET /p/" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            results.append(self.assert_refused("a %d KiB request line" % (size // 1024), raw))
        print("\n      long request line: %r" % results, flush=True)

    def test_too_many_headers(self):
        raw = b"GET /p/many HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n"
        print("\n      150 headers: %r" % (self.assert_refused("150 header fields", raw),), flush=True)

    def test_header_too_large(self):
        results = []
        for size in (64 * 1024, 600 * 1024):
            raw = b"GET /p/hdr HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * size + b"\r\n\r\n"
            results.append(self.assert_refused("a %d KiB header field" % (size // 1024), raw))
        print("\n      large header: %r" % results, flush=True)

    def test_slow_and_silent_clients_are_timed_out(self):
        """h2o's request timeout (10 s): a client trickling its headers, one that sends half a
        request line and one that sends nothing must all be disconnected, bounded. The event
        is the server closing each connection; the wait for it has a deadline of 15 s (scaled),
        and no duration is asserted."""
        limit = scaled(15.0)
        socks = {}
        for name in ("trickle", "partial", "silent"):
            socks[name] = socket.create_connection(("127.0.0.1", self.e.proxy_port), timeout=5)
        socks["trickle"].sendall(b"GET /p/slow HTTP/1.1\r\nHost: x\r\n")
        socks["partial"].sendall(b"GET /p/partial HT")
        closed = {}
        t0 = time.monotonic()
        next_byte = t0
        try:
            while len(closed) < len(socks) and time.monotonic() - t0 < limit:
                now = time.monotonic()
                if "trickle" not in closed and now >= next_byte:
                    try:
                        socks["trickle"].send(b"X")  # "XXXX...": a header name that never ends
                    except OSError:
                        closed["trickle"] = now - t0
                    next_byte = now + 0.5
                for name, s in socks.items():
                    if name in closed:
                        continue
                    s.setblocking(False)
                    try:
                        data = s.recv(65536)
                        if not data:
                            closed[name] = now - t0
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed[name] = now - t0
                time.sleep(0.05)
        finally:
            for s in socks.values():
                s.close()
        print("\n      slow clients closed after: %s" % {k: round(v, 1) for k, v in sorted(closed.items())}, flush=True)
        late = [n for n in socks if n not in closed]
        if late:
            self.fail_server("slow clients %s were not disconnected within %.0fs (closed: %r): the request timeout "
                             "does not bound a client that trickles its request" % (late, limit, closed))
        self.assert_still_serving("slow clients")

    def test_client_that_never_reads(self):
        """Clients that request a cached 8 MiB object and never read must not stop others being
        served, and must be disconnected (their buffers released) in bounded time."""
        for expected in ("MISS", "HIT"):
            r = request(self.e.proxy_port, "GET", "/big", timeout=30)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, self.big)
            self.assertXCache(r, expected)
        pid = self.e.pid
        base = server_socket_fds(pid)
        rss_before = server_rss_kib(pid)
        stuck = []
        for _ in range(10):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", self.e.proxy_port))
            s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            stuck.append(s)
        try:
            time.sleep(0.5)
            # others are served while the stuck clients are held: each within its own deadline
            # of 2 s (scaled), and before the server has dropped any stuck client
            dropped_before = self.stalled_clients_closed()
            for i in range(30):
                r = request(self.e.proxy_port, "GET", "/p/other-%d" % (i % 5), timeout=2)
                self.assertEqual(r.status, 200, r.describe())
                self.assertEqual(r.body, ("body of /p/other-%d\n" % (i % 5)).encode())
            served_while_stuck = self.stalled_clients_closed() == dropped_before
            held = server_socket_fds(pid) - base
            rss = server_rss_kib(pid)
            # bounded: h2o's timeouts are 10 s; give it twice that
            t0 = time.monotonic()
            while server_socket_fds(pid) - base > 2 and time.monotonic() - t0 < 20:
                time.sleep(0.25)
            left = max(0, server_socket_fds(pid) - base)
            print("\n      never-reading clients: %d sockets held by the server, RSS %d -> "
                  "%d MiB; %d still held after %.0fs" % (held, rss_before // 1024, rss // 1024, left,
                                                         time.monotonic() - t0), flush=True)
            if not served_while_stuck:
                self.fail_server("with 10 clients that never read, the others were served only once some were dropped")
            if left > 2:
                self.fail_server("%d connections of clients that never read an 8 MiB response were still open %.0fs "
                                 "later: a stalled writer is never timed out (its buffers are never released)"
                                 % (left, time.monotonic() - t0))
        finally:
            for s in stuck:
                s.close()
        self.assert_still_serving("clients that never read")

    def test_pipelined_requests_answered_in_order(self):
        for i in range(0, 10, 2):  # half of them cached already
            self.assertEqual(request(self.e.proxy_port, "GET", "/p/%d" % i).status, 200)
        reqs = []
        for i in range(10):
            reqs.append(("GET", "/p/%d" % i))
            if i % 3 == 0:
                reqs.append(("HEAD", "/p/%d" % i))
        reqs += [("GET", "/nostore"), ("GET", "/missing"), ("GET", "/p/0"), ("GET", "/small")]
        responses = harness.pipeline(self.e.proxy_port, reqs, timeout=10)
        self.assertEqual(len(responses), len(reqs))
        for (method, path), r in zip(reqs, responses):
            if path == "/missing":
                self.assertEqual(r.status, 404, r.describe())
                continue
            self.assertEqual(r.status, 200, "%s %s\n%s" % (method, path, r.describe()))
            expected = {"/nostore": b"not stored\n", "/small": b"small\n"}.get(path, ("body of %s\n" % path).encode())
            if method == "HEAD":
                self.assertEqual(r.body, b"", "HEAD %s has a body" % path)
            else:
                self.assertEqual(r.body, expected, "pipelined %s %s answered out of order or wrong" % (method, path))

    def test_many_idle_keepalive_connections(self):
        want = int(os.environ.get("EDGECACHE_IDLE_CONNS", "10000"))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = want + 512
        if soft < need:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
            except (ValueError, OSError):
                pass
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        n = min(want, soft - 512)  # this process and the server each hold n (each has this limit)
        self.assertGreater(n, 500, "RLIMIT_NOFILE too low (%d) for the idle-connection test" % soft)
        # a fresh server so that it inherits the (possibly raised) limit
        self.e.stop()
        self.e.start()
        request(self.e.proxy_port, "GET", "/small")  # cached: every idle connection gets a HIT
        sel = selectors.DefaultSelector()
        conns = {}
        req = b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n"
        t0 = time.monotonic()
        deadline = t0 + scaled(20)
        opened = 0
        done = 0
        try:
            while (opened < n or done < opened) and time.monotonic() < deadline:
                # keep about 500 handshakes in flight so the listen backlog never overflows
                while opened < n and opened - done < 500:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    s.connect_ex(("127.0.0.1", self.e.proxy_port))
                    conns[s] = b""
                    sel.register(s, selectors.EVENT_WRITE)
                    opened += 1
                for key, ev in sel.select(timeout=0.2):
                    s = key.fileobj
                    if ev & selectors.EVENT_WRITE:
                        try:
                            s.send(req)
                        except OSError:
                            sel.unregister(s)
                            conns[s] = None
                            done += 1
                            continue
                        sel.modify(s, selectors.EVENT_READ)
                    else:
                        try:
                            data = s.recv(4096)
                        except OSError:
                            data = b""
                        if not data:
                            sel.unregister(s)
                            conns[s] = None
                            done += 1
                            continue
                        conns[s] += data
                        if conns[s].endswith(b"small\n"):
                            sel.unregister(s)
                            done += 1
            setup = time.monotonic() - t0
            answered = sum(1 for v in conns.values() if v and v.endswith(b"small\n"))
            # others are served while all of them are held, each within its deadline of 2 s (scaled)
            for i in range(20):
                r = request(self.e.proxy_port, "GET", "/p/idle-%d" % (i % 4), timeout=2)
                self.assertEqual(r.status, 200, r.describe())
            # how many of the idle ones are still open (not closed by the server)
            held = 0
            for s, v in conns.items():
                if not v:
                    continue
                s.setblocking(False)
                try:
                    data = s.recv(1)
                    if data:
                        held += 1  # unexpected bytes, but open
                except BlockingIOError:
                    held += 1
                except OSError:
                    pass
            server_fds = server_socket_fds(self.e.pid)
            rss = server_rss_kib(self.e.pid)
        finally:
            for s in conns:
                s.close()
            sel.close()
        print("\n      idle keep-alive: %d opened, %d answered, %d held open (server holds %d sockets, RSS %d MiB) "
              "after %.1fs of set-up" % (n, answered, held, server_fds, rss // 1024, setup), flush=True)
        if answered < n * 0.99:
            self.fail_server("only %d of %d keep-alive connections got their response within %.0fs"
                             % (answered, n, scaled(20)))
        if held < answered * 0.99:
            self.fail_server("only %d of %d idle keep-alive connections were still open" % (held, answered))
        self.assert_still_serving("%d idle connections" % n)

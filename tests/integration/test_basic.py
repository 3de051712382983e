"""
tests/integration/test_basic.py — issue 2: the caching proxy's basic contract, end to end.

Every test starts the real binary (harness.BINARY) against a scripted origin on loopback
and asserts on status, X-Cache / Age headers, bodies and the origin's hit counts.
Short-lived responses (max-age=1, --default-ttl 1) are sent without a Date header so that
a second boundary between the origin's Date and the proxy's clock cannot make them stale
at once (RFC 9111 apparent age); everything else carries a Date like real origins do.
"""

import json
import os
import re
import shutil
import signal
import tempfile
import time
from email.utils import formatdate

import harness
from harness import Session, closed_port, pipeline, request, run_binary, sleep_until

NO_DATE = {"Date": None}
WARM_HOST = {"Host": "warm.example.test"}  # fixed: the listening port changes on restart


def cc(value, **extra):
    headers = {"Cache-Control": value, "Content-Type": "text/plain"}
    headers.update(extra)
    return headers


class BasicCaching(harness.TestCase):
    """One origin and one edgecache (--default-ttl 120) per test."""

    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o])

    def get(self, path, headers=None, **kw):
        return request(self.e.proxy_port, "GET", path, headers=headers, **kw)

    def test_miss_then_hit(self):
        body = b"hello, cached world\n"
        self.o.route("/hello", headers=cc("max-age=60", ETag='"v1"'), body=body)
        r1 = self.get("/hello")
        self.assertEqual(r1.status, 200, r1.describe())
        self.assertXCache(r1, "MISS")
        self.assertEqual(r1.body, body)
        r2 = self.get("/hello")
        self.assertEqual(r2.status, 200, r2.describe())
        self.assertXCache(r2, "HIT")
        self.assertEqual(r2.body, body)
        self.assertEqual(r2.header("content-type"), "text/plain")
        self.assertEqual(r2.header("etag"), '"v1"')
        self.assertIsNotNone(r2.age, "a HIT carries Age\n" + r2.describe())
        self.assertXCache(self.get("/hello"), "HIT")
        self.assertEqual(self.o.hits("/hello"), 1, "the origin was asked once")

    def test_head_on_cached_object(self):
        body = b"x" * 1234
        self.o.route("/head", headers=cc("max-age=60", ETag='"h"'), body=body)
        g = self.get("/head")
        self.assertXCache(g, "MISS")
        # HEAD then GET on one connection: a body wrongly sent after the HEAD would be
        # parsed as the next response and break it.
        head, after = pipeline(self.e.proxy_port, [("HEAD", "/head"), ("GET", "/head")])
        self.assertEqual(head.status, 200, head.describe())
        self.assertXCache(head, "HIT")
        self.assertEqual(head.body, b"")
        for name in ("content-type", "etag", "cache-control"):
            self.assertEqual(head.header(name), g.header(name), "HEAD %s differs\n%s" % (name, head.describe()))
        if head.header("content-length") is not None:
            self.assertEqual(head.header("content-length"), str(len(body)), head.describe())
        self.assertEqual(after.status, 200, after.describe())
        self.assertXCache(after, "HIT")
        self.assertEqual(after.body, body)
        self.assertEqual(self.o.hits("/head"), 1)

    def test_head_miss(self):
        body = b"head miss body"
        self.o.route("/head-miss", headers=cc("max-age=60"), body=body)
        head, other = pipeline(self.e.proxy_port, [("HEAD", "/head-miss"), ("GET", "/other")])
        self.assertEqual(head.status, 200, head.describe())
        self.assertXCache(head, "MISS")
        self.assertEqual(head.body, b"")
        self.assertEqual(other.status, 404, "the response after the HEAD is intact\n" + other.describe())
        self.assertEqual(self.o.hits("/head-miss"), 1)
        self.assertIn(self.o.requests_for("/head-miss")[0].method, ("GET", "HEAD"))
        g = self.get("/head-miss")
        self.assertEqual(g.status, 200, g.describe())
        self.assertEqual(g.body, body, "a GET after a HEAD miss has the full body")
        self.assertLessEqual(self.o.hits("/head-miss"), 2)

    def _assert_never_stored(self, path, times=3):
        for i in range(times):
            r = self.get(path)
            self.assertEqual(r.status, 200, r.describe())
            self.assertXCache(r, "PASS", "request %d of %s" % (i + 1, path))
            self.assertEqual(self.o.hits(path), i + 1, "origin hit on every request of " + path)
        return r

    def test_no_store_never_stored(self):
        self.o.route("/no-store", headers=cc("no-store"), body=b"fresh every time")
        r = self._assert_never_stored("/no-store")
        self.assertEqual(r.body, b"fresh every time")

    def test_private_never_stored(self):
        self.o.route("/private", headers=cc("private, max-age=60"), body=b"mine")
        self._assert_never_stored("/private")

    def test_set_cookie_never_stored(self):
        self.o.route("/cookie", headers=cc("max-age=60", **{"Set-Cookie": "session=abc123; Path=/"}), body=b"c")
        r = self._assert_never_stored("/cookie")
        self.assertEqual(r.header("set-cookie"), "session=abc123; Path=/", "Set-Cookie reaches the client")

    def test_max_age_expires(self):
        self.o.route("/short", headers=cc("max-age=1", **NO_DATE), body=b"short-lived")
        self.assertXCache(self.get("/short"), "MISS")
        self.assertXCache(self.get("/short"), "HIT")
        time.sleep(2.2)
        r = self.get("/short")
        self.assertXCache(r, "MISS", "max-age=1 is stale after 2s")
        self.assertEqual(r.body, b"short-lived")
        self.assertEqual(self.o.hits("/short"), 2)
        self.assertXCache(self.get("/short"), "HIT", "stored again after the refetch")

    def test_s_maxage_beats_max_age(self):
        self.o.route("/s-long", headers=cc("max-age=1, s-maxage=60", **NO_DATE), body=b"long")
        self.o.route("/s-short", headers=cc("max-age=60, s-maxage=1", **NO_DATE), body=b"short")
        for path in ("/s-long", "/s-short"):
            self.assertXCache(self.get(path), "MISS")
            self.assertXCache(self.get(path), "HIT")
        time.sleep(2.2)
        self.assertXCache(self.get("/s-long"), "HIT", "s-maxage=60 wins over max-age=1")
        self.assertXCache(self.get("/s-short"), "MISS", "s-maxage=1 wins over max-age=60")
        self.assertEqual(self.o.hits("/s-long"), 1)
        self.assertEqual(self.o.hits("/s-short"), 2)

    def test_fetch_across_a_second_boundary_is_not_a_second_old(self):
        """The time a fetch took counts toward the object's age (RFC 9111 4.2.3) in whole
        seconds of that time: a 0.2 s fetch that crosses a second boundary of the clock
        leaves a new object, not one a second old (which s-maxage=1 makes stale at once)."""
        self.o.route("/boundary", headers=cc("max-age=60, s-maxage=1", **NO_DATE), body=b"b", delay=0.2)
        for _ in range(3):  # the fetch must start late in a second: 0.85-0.9 s into it, then 0.2 s
            frac = time.time() % 1.0
            time.sleep((0.85 - frac) % 1.0)
            if 0.85 <= time.time() % 1.0 < 0.9:
                break
        r = self.get("/boundary")
        self.assertXCache(r, "MISS")
        self.assertEqual(r.header("age"), "0", r.describe())
        self.assertXCache(self.get("/boundary"), "HIT", "a 0.2 s fetch left an object fresh for about a second")
        self.assertEqual(self.o.hits("/boundary"), 1)

    def test_post_passes_with_body(self):
        def echo(req):
            return 200, cc("max-age=60"), b"got " + req.method.encode() + b": " + req.body

        self.o.route("/form", handler=echo)
        payload = b"name=value&x=1"
        r = request(self.e.proxy_port, "POST", "/form", headers={"Content-Type": "application/x-www-form-urlencoded"},
                    body=payload)
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(r, "PASS")
        self.assertEqual(r.body, b"got POST: " + payload)
        seen = self.o.requests_for("/form")
        self.assertEqual(len(seen), 1)
        self.assertEqual(seen[0].method, "POST")
        self.assertEqual(seen[0].body, payload)
        self.assertEqual(seen[0].headers.get("content-type"), "application/x-www-form-urlencoded")
        r = request(self.e.proxy_port, "POST", "/form", body=b"second")
        self.assertXCache(r, "PASS")
        self.assertEqual(r.body, b"got POST: second")
        self.assertEqual(self.o.hits("/form"), 2, "POST is never answered from the cache")
        g = self.get("/form")
        self.assertEqual(g.body, b"got GET: ", "a GET is not answered with a POST's response")
        self.assertXCache(g, "MISS")
        self.assertEqual(self.o.hits("/form"), 3)

    def test_large_body_byte_identical(self):
        data = os.urandom(2 * 1024 * 1024)
        self.o.route("/big.bin", headers={"Cache-Control": "max-age=60", "Content-Type": "application/octet-stream"},
                     body=data)
        r1 = self.get("/big.bin", timeout=20)
        self.assertEqual(r1.status, 200, r1.describe())
        self.assertXCache(r1, "MISS")
        self.assertEqual(len(r1.body), len(data))
        self.assertTrue(r1.body == data, "MISS body differs from the origin's")
        for _ in range(2):
            r = self.get("/big.bin", timeout=20)
            self.assertXCache(r, "HIT")
            self.assertEqual(len(r.body), len(data))
            self.assertTrue(r.body == data, "HIT body differs from the origin's")
        self.assertEqual(self.o.hits("/big.bin"), 1)

    def test_chunked_origin_response_cached(self):
        data = b"".join(b"line %06d of a chunked response\n" % i for i in range(4000))
        self.o.route("/chunked", headers=cc("max-age=60"), body=data, chunked=True)
        r1 = self.get("/chunked")
        self.assertEqual(r1.status, 200, r1.describe())
        self.assertXCache(r1, "MISS")
        self.assertEqual(r1.body, data)
        r2 = self.get("/chunked")
        self.assertXCache(r2, "HIT")
        self.assertEqual(r2.body, data)
        self.assertEqual(self.o.hits("/chunked"), 1)

    def test_query_string_is_part_of_the_key(self):
        paths = {"/q?a=1": b"one", "/q?a=2": b"two", "/q": b"none", "/q?a=1&b=2": b"both"}
        for path, body in paths.items():
            self.o.route(path, headers=cc("max-age=60"), body=body)
        for path, body in paths.items():
            r = self.get(path)
            self.assertXCache(r, "MISS", path)
            self.assertEqual(r.body, body, path)
        for path, body in paths.items():
            r = self.get(path)
            self.assertXCache(r, "HIT", path)
            self.assertEqual(r.body, body, path)
            self.assertEqual(self.o.hits(path), 1, path)

    def test_age_present_and_growing(self):
        self.o.route("/aging", headers=cc("max-age=60"), body=b"aging")
        self.assertXCache(self.get("/aging"), "MISS")
        r1 = self.get("/aging")
        self.assertXCache(r1, "HIT")
        self.assertIsNotNone(r1.age, "HIT without a numeric Age\n" + r1.describe())
        time.sleep(1.1)
        r2 = self.get("/aging")
        self.assertXCache(r2, "HIT")
        self.assertIsNotNone(r2.age, r2.describe())
        self.assertGreaterEqual(r2.age, r1.age + 1, "Age grows with time")
        self.assertLessEqual(r2.age, r1.age + 3)

    def test_keep_alive_many_requests_one_connection(self):
        for i in range(3):
            self.o.route("/ka/%d" % i, headers=cc("max-age=60"), body=b"keep-alive %d" % i)
        with Session(self.e.proxy_port) as s:
            for round_ in range(2):
                for i in range(3):
                    r = s.request("GET", "/ka/%d" % i)
                    self.assertEqual(r.status, 200, r.describe())
                    self.assertEqual(r.body, b"keep-alive %d" % i)
                    self.assertXCache(r, "MISS" if round_ == 0 else "HIT")
            self.o.route("/ka/post", body=b"posted")
            r = s.request("POST", "/ka/post", body=b"p")
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.body, b"posted")
            r = s.request("GET", "/ka/1")
            self.assertEqual(r.body, b"keep-alive 1", "still in step after the POST")
            self.assertEqual(s.reconnects, 0, "the proxy closed the keep-alive connection")
        # pipelined: three requests in one write, answered in order
        answers = pipeline(self.e.proxy_port, [("GET", "/ka/2"), ("GET", "/ka/0"), ("GET", "/ka/1")])
        self.assertEqual([a.body for a in answers], [b"keep-alive 2", b"keep-alive 0", b"keep-alive 1"])
        for i in range(3):
            self.assertEqual(self.o.hits("/ka/%d" % i), 1)

    def test_origin_down_gives_5xx(self):
        self.o.route("/cached", headers=cc("max-age=60"), body=b"still here")
        self.assertXCache(self.get("/cached"), "MISS")
        self.o.stop()
        r = self.get("/never-fetched", timeout=20)
        self.assertIn(r.status, (502, 503, 504), r.describe())
        self.assertLess(len(r.body), 1024, "a short error body")
        self.assertNotEqual((r.header("x-cache") or "").upper(), "HIT")
        hit = self.get("/cached")
        self.assertXCache(hit, "HIT", "cached objects are still served with the origin down")
        self.assertEqual(hit.body, b"still here")

    def test_sigint_clean_shutdown(self):
        self.o.route("/x", headers=cc("max-age=60"), body=b"x")
        self.assertEqual(self.get("/x").status, 200)
        self.assertEqual(self.e.stop(signal.SIGINT), 0, self.e.stderr_tail())


class DefaultTtl(harness.TestCase):
    """--default-ttl 1: responses without freshness information expire after a second."""

    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o], args=["--default-ttl", "1"])

    def get(self, path):
        return request(self.e.proxy_port, "GET", path)

    def test_no_freshness_uses_default_ttl(self):
        self.o.route("/plain", headers={"Content-Type": "text/plain", "Date": None}, body=b"plain")
        self.assertXCache(self.get("/plain"), "MISS")
        self.assertXCache(self.get("/plain"), "HIT", "stored for the default TTL")
        time.sleep(2.2)
        self.assertXCache(self.get("/plain"), "MISS", "--default-ttl 1 expired")
        self.assertEqual(self.o.hits("/plain"), 2)

    def test_expires_in_the_future_is_honoured(self):
        now = time.time()
        self.o.route("/expires", headers={"Date": formatdate(now, usegmt=True),
                                          "Expires": formatdate(now + 60, usegmt=True)}, body=b"expires")
        self.o.route("/expired", headers={"Date": formatdate(now, usegmt=True),
                                          "Expires": formatdate(now - 60, usegmt=True)}, body=b"expired")
        self.assertXCache(self.get("/expires"), "MISS")
        self.assertXCache(self.get("/expires"), "HIT")
        self.assertXCache(self.get("/expired"), "MISS")
        self.assertNotEqual(self.get("/expired").header("x-cache"), "HIT", "an Expires in the past is stale")
        self.assertEqual(self.o.hits("/expired"), 2)
        time.sleep(2.2)
        self.assertXCache(self.get("/expires"), "HIT", "Expires (+60s) wins over --default-ttl 1")
        self.assertEqual(self.o.hits("/expires"), 1)


class WarmRestart(harness.TestCase):
    """Objects survive a restart on the same --data-dir, with their remaining TTL."""

    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o])

    def get(self, path, timeout=5):
        return request(self.e.proxy_port, "GET", path, headers=WARM_HOST, timeout=timeout)

    def test_warm_restart_after_sigterm(self):
        body = b"survives a clean restart"
        self.o.route("/warm", headers=cc("max-age=600"), body=body)
        self.assertXCache(self.get("/warm"), "MISS")
        self.assertXCache(self.get("/warm"), "HIT")
        self.assertEqual(self.e.stop(signal.SIGTERM), 0, "SIGTERM exits 0\n" + self.e.stderr_tail())
        self.o.stop()
        self.e.start()
        r = self.get("/warm", timeout=10)
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(r, "HIT", "warm after restart, origin down")
        self.assertEqual(r.body, body)
        self.assertEqual(r.header("content-type"), "text/plain")
        self.assertEqual(self.o.hits("/warm"), 1)

    def test_warm_restart_after_kill9(self):
        body = os.urandom(64 * 1024)
        self.o.route("/warm9", headers=cc("max-age=600"), body=body)
        self.assertXCache(self.get("/warm9"), "MISS")
        time.sleep(1.0 * min(harness.timeout_scale(), 2.0))  # the asynchronous write reaches LMDB
        self.assertEqual(self.e.kill9(), -signal.SIGKILL)
        self.o.stop()
        self.e.start()
        r = self.get("/warm9", timeout=10)
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(r, "HIT", "committed before kill -9, so warm")
        self.assertTrue(r.body == body, "body differs after kill -9 restart")
        self.assertEqual(self.o.hits("/warm9"), 1)

    def test_age_grows_across_restart(self):
        """Age is about time, so this test reads the clock, but only to know the object's true
        age: the time since the origin recorded the one fetch. It waits on Age values, never
        on a duration."""
        self.o.route("/aged", headers=cc("max-age=600"), body=b"aged")
        self.assertXCache(self.get("/aged"), "MISS")

        def hit_aged(at_least):
            def check():
                r = self.get("/aged")
                self.assertXCache(r, "HIT")
                self.assertIsNotNone(r.age, r.describe())
                # never older than the object: the origin answered after it recorded the request
                true_age = time.monotonic() - self.o.requests_for("/aged")[0].time
                self.assertLessEqual(r.age, true_age + 1, "Age %d for an object %.1fs old" % (r.age, true_age))
                return r if r.age >= at_least else None
            return check

        r1 = harness.wait_until(hit_aged(1), timeout=5, interval=0.1, what="an Age of 1")
        self.assertEqual(self.e.restart(), 0)
        r2 = hit_aged(0)()
        self.assertGreaterEqual(r2.age, r1.age, "the restart does not reset Age (before %d, after %d)" % (r1.age, r2.age))
        harness.wait_until(hit_aged(r1.age + 2), timeout=5, interval=0.1, what="Age to go on growing after the restart")
        self.assertEqual(self.o.hits("/aged"), 1)

    def test_remaining_ttl_kept_across_restart(self):
        # max-age=5 and a restart 1.5s in leave 3.5s for the restart: under a loaded CI
        # machine a 3s lifetime once expired during it, and the refetched copy was fresh.
        # Expiry is read from the object's own Age, not from a stopwatch: the copy is served
        # until it is 5 s old (Age 4 at most), restart or not; a TTL restarted at the restart
        # would go on serving it at Age 5 and 6.
        self.o.route("/ttl5", headers=cc("max-age=5"), body=b"five seconds")
        t0 = time.monotonic()
        self.assertXCache(self.get("/ttl5"), "MISS")
        sleep_until(t0 + 1.5)
        self.assertEqual(self.e.restart(), 0)
        r = self.get("/ttl5")
        self.assertXCache(r, "HIT", "fresh object after restart (if a MISS: did the restart take 3.5 s?)")
        ages = [r.age]

        def expired():
            r = self.get("/ttl5")
            if (r.header("x-cache") or "").split(",")[0].strip().upper() == "HIT":
                ages.append(r.age)
                return False
            return True

        harness.wait_until(expired, timeout=10, interval=0.1, what="max-age=5 to expire")
        self.assertLessEqual(max(ages), 4, "served only while younger than max-age=5, restart or not: Ages %s" % ages)
        self.assertEqual(ages, sorted(ages), "Age never goes back: %s" % ages)
        self.assertEqual(self.o.hits("/ttl5"), 2)


class CommandLine(harness.TestCase):
    """--help, bad flags, --config, migrate --status."""

    def test_help(self):
        p = run_binary(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout + p.stderr
        for flag in ("--listen", "--backend", "--data-dir", "--memory-size", "--disk-size", "--default-ttl",
                     "--threads", "--config"):
            self.assertIn(flag, text, "--help mentions " + flag)

    def test_bad_flags_exit_2_naming_the_flag(self):
        cases = [
            (["--threads", "x"], "threads"),
            (["--memory-size", "abc"], "memory-size"),
            (["--disk-size", "lots"], "disk-size"),
            (["--default-ttl", "soon"], "default-ttl"),
            (["--backend", "127.0.0.1"], "backend"),
            (["--listen", "127.0.0.1:99999"], "listen"),
            (["--nope"], "nope"),
        ]
        for args, name in cases:
            with self.subTest(args=args):
                p = run_binary(args + ["--data-dir", "data"])
                self.assertEqual(p.returncode, 2, "exit code for %s\n%s" % (args, p.stderr))
                lines = [line for line in p.stderr.splitlines() if line.strip()]
                self.assertEqual(len(lines), 1, "one line on stderr for %s, got:\n%s" % (args, p.stderr))
                self.assertIn(name, lines[0], "the message names the setting")

    def test_workers_share_one_listening_socket_and_each_serves(self):
        """The proxy address has one listening socket, whose dups every worker's loop
        watches: a connection goes to whichever worker accepts it first (an idle one before
        a busy one), not to a worker chosen by a SO_REUSEPORT hash whatever it is doing.
        24 connections held open at once over it are all answered (which worker took each
        is the kernel's choice, so it is not asserted)."""
        o = self.origin()
        o.route("/one", headers={"Content-Type": "text/plain", "Cache-Control": "max-age=60"}, body=b"one")
        e = self.edgecache([o], args=["--threads", "3"])
        self.assertEqual(harness.listening_sockets(e.proxy_port), 1)
        sessions = [Session(e.proxy_port) for _ in range(24)]
        try:
            for s in sessions:
                r = s.request("GET", "/one")
                self.assertEqual((r.status, r.body), (200, b"one"), r.describe())
        finally:
            for s in sessions:
                s.close()
        self.assertEqual(len(o.requests_for("/one")), 1, "one fetch; every other answer a hit")

    def test_second_instance_on_the_same_address_is_refused(self):
        """SO_REUSEPORT shares the proxy (and a several-thread admin) address between one
        process's threads; a second edgecache on that address must fail to start, not join
        the group and take a share of the first one's connections."""
        o = self.origin()
        o.route("/who", headers={"Content-Type": "text/plain"}, body=b"first")
        first = self.edgecache([o])
        for flag, port in (("--listen", first.proxy_port), ("--admin-listen", first.admin_port)):
            with self.subTest(flag=flag):
                listen = {"--listen": "127.0.0.1:0", "--admin-listen": "127.0.0.1:0", flag: "127.0.0.1:%d" % port}
                # (were it to start, it would run until run_binary's timeout, and fail the test)
                p = run_binary(["--listen", listen["--listen"], "--admin-listen", listen["--admin-listen"],
                                "--threads", "2", "--admin-threads", "2", "--backend", o.address,
                                "--data-dir", "data", "--memory-size", "64M", "--disk-size", "256M"])
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("%s" % flag, p.stderr)
                self.assertIn("Address already in use (another edgecache on it?)", p.stderr)
        # the first one still answers, on both addresses
        r = request(first.proxy_port, "GET", "/who", timeout=10)
        self.assertEqual((r.status, r.body), (200, b"first"), r.describe())
        r = request(first.admin_port, "GET", "/health", timeout=10)
        self.assertEqual(r.status, 200, r.describe())

    def _write_config(self, values):
        fd, path = tempfile.mkstemp(prefix="edgecache-config-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(values, f)
        self.addCleanup(os.unlink, path)
        return path

    def _temp_dir(self):
        d = tempfile.mkdtemp(prefix="edgecache-cfgdata-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_config_file_used_and_flags_win(self):
        o = self.origin()
        o.route("/cfg", headers={"Content-Type": "text/plain", "Date": None}, body=b"from config")
        base = {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "threads": 2,
                "memory_size": "64M", "disk_size": "256M"}
        # A: everything from the file: its backend, data_dir and default_ttl 1
        dir_a = self._temp_dir()
        conf_a = self._write_config(dict(base, backends=[o.address], data_dir=dir_a, default_ttl=1))
        a = self.edgecache(defaults=False, args=["--config", conf_a])
        # B: the file names a dead backend and default_ttl 1; the flags win
        dir_b = self._temp_dir()
        conf_b = self._write_config(dict(base, backends=["127.0.0.1:%d" % closed_port()], data_dir=dir_b,
                                         default_ttl=1))
        b = self.edgecache([o], defaults=False, args=["--config", conf_b, "--default-ttl", "100"])
        for e in (a, b):
            r = request(e.proxy_port, "GET", "/cfg", timeout=10)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.body, b"from config")
            self.assertXCache(r, "MISS")
            self.assertXCache(request(e.proxy_port, "GET", "/cfg"), "HIT")
        self.assertEqual(o.hits("/cfg"), 2)
        for d in (dir_a, dir_b):
            harness.wait_until(lambda: os.listdir(d), 5, what="files in the config's data_dir " + d)
        time.sleep(2.2)
        self.assertXCache(request(a.proxy_port, "GET", "/cfg"), "MISS", "default_ttl 1 from the file")
        self.assertXCache(request(b.proxy_port, "GET", "/cfg"), "HIT", "--default-ttl 100 beats the file's 1")
        self.assertEqual(o.hits("/cfg"), 3)

    def test_config_file_errors_exit_2(self):
        cases = [
            ('{"default_ttl": "soon"}', "default_ttl"),
            ('{"no_such_key": 1}', "no_such_key"),
            ('{"backends": "127.0.0.1:80"}', "backends"),
            ('{"listen": ', None),  # not JSON
        ]
        for text, name in cases:
            with self.subTest(config=text):
                fd, path = tempfile.mkstemp(prefix="edgecache-badconfig-", suffix=".json")
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                try:
                    p = run_binary(["--config", path, "--data-dir", "data"])
                finally:
                    os.unlink(path)
                self.assertEqual(p.returncode, 2, p.stderr)
                lines = [line for line in p.stderr.splitlines() if line.strip()]
                self.assertEqual(len(lines), 1, p.stderr)
                if name:
                    self.assertIn(name, lines[0])
        p = run_binary(["--config", "/nonexistent/edgecache.json"])
        self.assertEqual(p.returncode, 2, p.stderr)

    @staticmethod
    def _versions(text):
        """(current, latest) from `migrate --status`; current is None when it says "none"."""
        cur = re.search(r"(?:current|schema)[^\d\n]{0,40}?(\d+)", text, re.I)
        latest = re.search(r"latest[^\d\n]{0,40}?(\d+)", text, re.I)
        return (int(cur.group(1)) if cur else None, int(latest.group(1)) if latest else None)

    def test_migrate_status(self):
        tmp = self._temp_dir()
        # no store yet: a missing directory and an empty one both report "nothing yet"
        for label, path in (("missing dir", os.path.join(tmp, "does-not-exist")), ("empty dir", tmp)):
            with self.subTest(label):
                p = run_binary(["migrate", "--status", "--data-dir", path])
                out = p.stdout + p.stderr
                self.assertEqual(p.returncode, 0, out)
                cur, latest = self._versions(out)
                self.assertIsNotNone(latest, "prints the latest version:\n" + out)
                self.assertGreaterEqual(latest, 1, out)
                self.assertIn(cur, (None, 0), "a store that does not exist yet is at version 0/none:\n" + out)
        self.assertFalse(os.path.exists(os.path.join(tmp, "does-not-exist")), "--status creates nothing")
        # after the server has opened the store it is fully migrated
        used = self._temp_dir()
        e = self.edgecache([closed_port()], data_dir=used)
        self.assertEqual(e.stop(), 0)
        p = run_binary(["migrate", "--status", "--data-dir", used])
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        cur, latest = self._versions(out)
        self.assertIsNotNone(cur, "prints the current version:\n" + out)
        self.assertIsNotNone(latest, out)
        self.assertEqual(cur, latest, "the server migrated the store to the latest version:\n" + out)


if __name__ == "__main__":
    import unittest
    unittest.main()

"""
tests/integration/test_stats.py — issue 6: /stats, the history, /stats/sla, /metrics and the
access log, end to end against the real binary.

Requests go over raw sockets so that the exact number of header and body bytes the client
received is known: /stats must report the same bandwidth, byte for byte. The history tests
use the test knob --stats-minute-seconds 1 (a history "minute" lasts one second) and
--stats-sample-interval 1, so samples appear within a second or two.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import harness
from harness import Reader, request, scaled, wait_until

HOST = "www.example.test"
FAST = ["--stats-minute-seconds", "1", "--stats-sample-interval", "1"]
MSG_401 = {"msg": "Provided credentials are missing or invalid"}
MSG_403 = {"msg": "You are not authorized to perform this action"}

HELP_RE = re.compile(r"^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$")
TYPE_RE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$")
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\})?'
                       r' (-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|\+Inf|-Inf|NaN)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
ACCESS_RE = re.compile(r'^(\S+) - - \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] "(\S+) (\S+) (HTTP/[0-9.]+)" '
                       r'(\d{3}) (\d+|-) "([^"]*)" "([^"]*)" (HIT|MISS|PASS|-) (\S+) (\d+\.\d{6}|-) (\d+\.\d{6})$')


def raw_get(port, path, method="GET", host=HOST, headers=()):
    """One request on a fresh connection. Returns (status, headers dict, body, bytes of the
    header block as received, total bytes received)."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host, "Connection: close"]
    lines += ["%s: %s" % hv for hv in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(5)) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no header block in %r" % data[:200]
    head_bytes = len(head) + 4
    status = int(head.split(b" ", 2)[1])
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        hdrs[name.strip().lower()] = value.strip()
    return status, hdrs, body, head_bytes, len(data)


def writes_in_place(data_dir):
    """Whether data_dir's file system is one the store maps its data file writable on (ext4, tmpfs)."""
    kind = subprocess.run(["stat", "-f", "-c", "%t", data_dir], stdout=subprocess.PIPE, check=True).stdout
    return kind.strip() in (b"ef53", b"1021994")


def journal_takes_o_direct(data_dir):
    """Whether the purge journal in data_dir opens with O_DIRECT (what its file system allows)."""
    try:
        fd = os.open(os.path.join(data_dir, "journal.log"), os.O_RDWR | os.O_DIRECT)
    except OSError:
        return False
    os.close(fd)
    return True


class KeepAlive:
    """Sequential requests on one keep-alive connection, counting the exact header bytes and
    the decoded body bytes of each response (Content-Length, chunked, or none for HEAD)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
        self.reader = Reader(self.sock)

    def request(self, method, path):
        self.sock.sendall(("%s %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (method, path, HOST)).encode())
        lines = [self.reader.line()]
        while lines[-1]:
            lines.append(self.reader.line())
        head_bytes = sum(len(line) + 2 for line in lines)
        hdrs = {}
        for line in lines[1:-1]:
            name, _, value = line.decode("latin-1").partition(":")
            hdrs[name.strip().lower()] = value.strip()
        body = b""
        if method != "HEAD":
            if hdrs.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int(self.reader.line().split(b";")[0], 16)
                    if size == 0:
                        self.reader.line()
                        break
                    body += self.reader.exactly(size)
                    self.reader.exactly(2)
            else:
                body = self.reader.exactly(int(hdrs["content-length"]))
        return int(lines[0].split(b" ", 2)[1]), hdrs, body, head_bytes

    def close(self):
        self.sock.close()


def parse_metrics(text):
    """Check every line against the text exposition format; return {family: type} and a list of
    (name, labels dict, value)."""
    families, samples = {}, []
    family = ftype = None
    for n, line in enumerate(text.split("\n")):
        if line == "" and n == len(text.split("\n")) - 1:
            break  # the final newline
        assert line, "empty line %d" % n
        if line.startswith("# HELP "):
            assert HELP_RE.match(line), "bad HELP line %r" % line
            continue
        if line.startswith("# TYPE "):
            m = TYPE_RE.match(line)
            assert m, "bad TYPE line %r" % line
            family, ftype = m.group(1), m.group(2)
            assert family not in families, "family %s declared twice" % family
            families[family] = ftype
            if ftype == "counter":
                assert family.endswith("_total"), "counter %s without _total" % family
            continue
        assert not line.startswith("#"), "unknown comment %r" % line
        m = SAMPLE_RE.match(line)
        assert m, "bad sample line %r" % line
        name = m.group(1)
        assert family is not None and name.startswith(family), "sample %s outside its family %s" % (name, family)
        suffix = name[len(family):]
        allowed = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}.get(ftype, ("",))
        assert suffix in allowed, "sample %s in %s family %s" % (name, ftype, family)
        labels = dict((k, v) for k, v in LABEL_RE.findall(m.group(2) or ""))
        value = float(m.group(3).replace("+Inf", "inf").replace("-Inf", "-inf"))
        samples.append((name, labels, value))
    return families, samples


class StatsCase(harness.TestCase):
    ARGS = FAST

    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o], args=self.ARGS)
        self.tok = self.token("global")

    # --- helpers
    def token(self, scope, edge=None):
        return harness.create_token(edge or self.e, scope)

    def admin(self, path, token=None, method="GET", edge=None):
        h = {"Fastly-Key": token} if token else {}
        return request((edge or self.e).admin_port, method, path, headers=h)

    def stats(self, path="/stats", edge=None):
        r = self.admin(path, self.tok, edge=edge)
        self.assertEqual(r.status, 200, r.describe() + "\n" + r.body.decode(errors="replace"))
        self.assertEqual(r.header("content-type"), "application/json")
        return json.loads(r.body)

    def responses(self, s):
        return sum(s["status_%dxx" % k] for k in range(1, 6))

    def wait_responses(self, n, edge=None):
        """The per-request figures are recorded when h2o disposes of a request (after its
        connection closed): wait for them to add up."""
        out = {}

        def done():
            out["s"] = self.stats(edge=edge)
            return self.responses(out["s"]) >= n

        wait_until(done, timeout=scaled(5), what="%d responses in /stats" % n)
        self.assertEqual(self.responses(out["s"]), n, "more responses than requests made")
        return out["s"]

    def history_requests(self, since, edge=None):
        doc = self.stats("/stats/service/edgecache?by=minute&from=%d&to=%d" % (since, int(time.time()) + 5), edge=edge)
        return sum(d["requests"] for d in doc["data"]), doc


class Counters(StatsCase):
    def test_counters_exact_after_a_scripted_sequence(self):
        n_miss, n_hit = 4, 6
        bodies = {}
        for i in range(n_miss):
            bodies["/c/%d" % i] = b"x" * (100 + 7 * i)
            self.o.route("/c/%d" % i, headers={"Cache-Control": "max-age=300", "Content-Type": "text/plain"},
                         body=bodies["/c/%d" % i])
        self.o.route("/pass", headers={"Cache-Control": "no-store"}, body=b"p" * 50)
        port = self.e.proxy_port
        head_total = body_total = 0

        def get(path, expect_status, expect_cache):
            nonlocal head_total, body_total
            status, hdrs, body, hb, total = raw_get(port, path)
            self.assertEqual(status, expect_status, "%s: %r" % (path, hdrs))
            self.assertEqual(hdrs.get("x-cache"), expect_cache, path)
            head_total += hb
            body_total += len(body)
            return body

        for i in range(n_miss):
            self.assertEqual(get("/c/%d" % i, 200, "MISS"), bodies["/c/%d" % i])
        for i in range(n_hit):
            get("/c/%d" % (i % 2), 200, "HIT")
        get("/pass", 200, "PASS")
        r = request(self.e.admin_port, "POST", "/purge/%s/c/0" % HOST, headers={"Fastly-Key": self.tok})
        self.assertEqual(r.status, 200, r.describe())
        self.o.stop()
        get("/dead", 502, "MISS")

        s = self.wait_responses(n_miss + n_hit + 2)
        self.assertEqual(s["requests"], n_miss + n_hit + 2)
        self.assertEqual(s["hits"], n_hit)
        self.assertEqual(s["miss"], n_miss)
        self.assertEqual(s["pass"], 1)
        self.assertEqual(s["errors"], 1, "one request failed: one error")
        self.assertAlmostEqual(s["hit_ratio"], n_hit / (n_hit + n_miss))
        self.assertEqual(s["status_2xx"], n_miss + n_hit + 1)
        self.assertEqual(s["status_200"], n_miss + n_hit + 1)
        self.assertEqual(s["status_5xx"], 1)
        self.assertEqual(s["status_502"], 1)
        self.assertEqual(s["status_1xx"] + s["status_3xx"] + s["status_4xx"], 0)
        self.assertEqual(s["synth"], 1, "the 502 was generated by edgecache")
        self.assertEqual(s["errors_not_origin"], 1)
        self.assertEqual(s["uncacheable"], 1)
        self.assertEqual(s["origin_fetches"], n_miss + 2)
        self.assertEqual(s["origin_bytes"], sum(len(b) for b in bodies.values()) + 50)
        # bandwidth: byte for byte what the client received
        self.assertEqual(s["body_size"], body_total)
        self.assertEqual(s["header_size"], head_total)
        self.assertEqual(s["bandwidth"], head_total + body_total)
        # latency histograms, by cache status
        lat = s["latency_ms"]
        self.assertEqual(lat["hits"]["count"], n_hit)
        self.assertEqual(lat["miss"]["count"], n_miss + 1)
        self.assertEqual(lat["pass"]["count"], 1)
        for k in ("hits", "miss", "pass"):
            self.assertTrue(0 <= lat[k]["p50"] <= lat[k]["p90"] <= lat[k]["p99"] <= lat[k]["p999"], lat[k])
        # the purge
        self.assertEqual(s["purges"]["url"]["count"], 1)
        self.assertEqual(s["purges"]["key"]["count"] + s["purges"]["all"]["count"] + s["purges"]["soft"]["count"], 0)
        self.assertGreaterEqual(s["purges"]["url"]["max_latency_ms"], s["purges"]["url"]["avg_latency_ms"])
        # its synced journal write: one, and its time (the unit test times a held write)
        d = s["disk"]
        self.assertEqual(d["journal_commits"], 1)
        self.assertGreaterEqual(d["journal_write_ms"], 0)
        self.assertEqual(d["journal_write_max_ms"], d["journal_write_ms"])
        self.assertEqual(d["journal_write_avg_ms"], d["journal_write_ms"])
        self.assertLessEqual(d["journal_write_ms"], s["purges"]["url"]["max_latency_ms"], "the write is part of the purge")
        # direct exactly where the journal's file system takes O_DIRECT
        self.assertIs(d["journal_direct"], journal_takes_o_direct(self.e.data_dir))
        # the data file is mapped writable where it is all allocated on ext4 or tmpfs (test_full_disk: the rest)
        allocated = os.stat(os.path.join(self.e.data_dir, "data.mdb")).st_blocks * 512 >= d["map_size"]
        self.assertIs(d["writemap"], writes_in_place(self.e.data_dir) and allocated, d)
        # objects waiting for the writer, at most: --memory-size 64M is less than the 256M default
        self.assertEqual(d["put_backlog_limit"], 64 << 20, d)
        # objects, the rest of the document
        self.assertGreaterEqual(s["memory"]["objects"], n_miss - 1)
        self.assertEqual(s["objects_in_memory"], s["memory"]["objects"])
        self.assertGreater(s["memory"]["bytes"], 0)
        self.assertIn("evictions", s)
        # per backend (the one from --backend): fetches started and the failed one
        self.assertEqual(len(s["backends"]), 1, s["backends"])
        b = s["backends"][0]
        self.assertEqual(b["requests"], n_miss + 2)
        self.assertGreaterEqual(b["errors"], 1)
        for k in ("name", "address", "healthy", "last_probe_latency_ms"):
            self.assertIn(k, b)
        self.assertIsInstance(s["version"], str)
        self.assertLessEqual(abs(s["start_time"] + s["uptime"] - time.time()), 3)
        for k in ("stale_served", "revalidations", "revalidated_304", "collapsed"):
            self.assertEqual(s[k], 0, k)

    def test_bandwidth_keep_alive_chunked_and_head(self):
        self.o.route("/chunk", headers={"Cache-Control": "max-age=300"}, body=b"z" * 3000, chunked=True)
        ka = KeepAlive(self.e.proxy_port)
        heads = bodies = 0
        seen_te = False
        for method, cache in (("GET", "MISS"), ("GET", "HIT"), ("HEAD", "HIT")):
            status, hdrs, body, hb = ka.request(method, "/chunk")
            self.assertEqual((status, hdrs.get("x-cache")), (200, cache), hdrs)
            self.assertEqual(len(body), 0 if method == "HEAD" else 3000)
            seen_te = seen_te or "transfer-encoding" in hdrs
            heads += hb
            bodies += len(body)
        ka.close()
        s = self.wait_responses(3)
        self.assertEqual(s["header_size"], heads)
        self.assertEqual(s["body_size"], bodies, "body bytes (chunk framing not included)")
        self.assertEqual(s["bandwidth"], heads + bodies)
        self.assertTrue(seen_te, "the streamed miss should have been chunked")

    def test_metrics_exposition(self):
        self.o.route("/m", headers={"Cache-Control": "max-age=300"}, body=b"m" * 10)
        for _ in range(4):
            raw_get(self.e.proxy_port, "/m")
        r = request(self.e.admin_port, "POST", "/service/edgecache/purge/nothing-tagged",
                    headers={"Fastly-Key": self.token("purge_select")})
        self.assertEqual(r.status, 200, r.describe())
        s = self.wait_responses(4)
        r = self.admin("/metrics", self.token("global:read"))
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        text = r.body.decode()
        self.assertTrue(text.endswith("\n"))
        families, samples = parse_metrics(text)
        self.assertEqual(families["edgecache_request_duration_seconds"], "histogram")

        def value(name, **labels):
            found = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items())]
            self.assertEqual(len(found), 1, "%s %r: %r" % (name, labels, found))
            return found[0]

        self.assertEqual(value("edgecache_requests_total"), 4)
        self.assertEqual(value("edgecache_hits_total"), s["hits"])
        self.assertEqual(value("edgecache_misses_total"), s["miss"])
        self.assertEqual(value("edgecache_responses_total", **{"class": "2xx"}), 4)
        self.assertEqual(value("edgecache_bandwidth_bytes_total"), s["bandwidth"])
        # every histogram: cumulative buckets in le order, +Inf == _count, buckets add up to the count
        for cache in ("hit", "miss", "pass"):
            buckets = [(float(l["le"]), v) for n, l, v in samples
                       if n == "edgecache_request_duration_seconds_bucket" and l.get("cache") == cache]
            self.assertGreater(len(buckets), 10)
            les = [b[0] for b in buckets]
            self.assertEqual(les, sorted(les))
            self.assertEqual(les[-1], float("inf"))
            counts = [b[1] for b in buckets]
            self.assertEqual(counts, sorted(counts), "cumulative counts never decrease")
            per_bucket = [counts[0]] + [counts[i] - counts[i - 1] for i in range(1, len(counts))]
            total = value("edgecache_request_duration_seconds_count", cache=cache)
            self.assertEqual(sum(per_bucket), total)
            self.assertEqual(counts[-1], total)
            self.assertGreaterEqual(value("edgecache_request_duration_seconds_sum", cache=cache), 0)
        self.assertEqual(value("edgecache_request_duration_seconds_count", cache="hit"), 3)
        self.assertEqual(value("edgecache_request_duration_seconds_count", cache="miss"), 1)
        # the backend from --backend has its labelled series
        backend_series = [l for n, l, v in samples if n == "edgecache_backend_requests_total"]
        for labels in backend_series:
            self.assertIn("backend", labels)
        # the purge's synced journal write, timed
        self.assertEqual(families["edgecache_purge_journal_write_seconds"], "summary")
        self.assertEqual(value("edgecache_purge_journal_write_seconds_count"), s["disk"]["journal_commits"])
        self.assertEqual(value("edgecache_purge_journal_write_seconds_count"), 1)
        self.assertEqual(families["edgecache_purge_journal_direct"], "gauge")
        self.assertEqual(value("edgecache_purge_journal_direct"), int(s["disk"]["journal_direct"]))
        self.assertEqual(families["edgecache_disk_writemap"], "gauge")
        self.assertEqual(value("edgecache_disk_put_backlog_limit_bytes"), s["disk"]["put_backlog_limit"])
        self.assertEqual(value("edgecache_disk_writemap"), int(s["disk"]["writemap"]))
        self.assertAlmostEqual(value("edgecache_purge_journal_write_seconds_sum"), s["disk"]["journal_write_ms"] / 1000,
                               delta=1e-6)
        self.assertEqual(value("edgecache_purge_journal_write_max_seconds"),
                         value("edgecache_purge_journal_write_seconds_sum"))
        self.assertEqual(value("edgecache_build_info", version=s["version"]), 1)


class Auth(StatsCase):
    ARGS = []

    def test_no_token_or_wrong_scope(self):
        purge_only = self.token("purge_select")
        reader = self.token("global:read")
        for path in ("/stats", "/stats/sla", "/metrics", "/stats?by=minute"):
            r = self.admin(path)
            self.assertEqual(r.status, 401, path)
            self.assertEqual(json.loads(r.body), MSG_401)
            r = self.admin(path, "not-a-token")
            self.assertEqual(r.status, 401, path)
            r = self.admin(path, purge_only)
            self.assertEqual(r.status, 403, path)
            self.assertEqual(json.loads(r.body), MSG_403)
            self.assertEqual(self.admin(path, reader).status, 200, path)
            self.assertEqual(self.admin(path, self.tok).status, 200, path)
        r = self.admin("/stats", self.tok, method="POST")
        self.assertEqual(r.status, 405)
        self.assertIn("GET", r.header("allow"))

    def test_bad_parameters(self):
        for q in ("by=week", "from=tomorrow", "to=2024-13-01", "region=mars", "from=2024-01-02&to=2024-01-01",
                  "from=0&by=minute"):
            r = self.admin("/stats?" + q, self.tok)
            self.assertEqual(r.status, 400, q)
            self.assertIn("detail", json.loads(r.body))
        for m in ("2024-13", "24-01", "2999-01", "x"):
            r = self.admin("/stats/sla?month=" + m, self.tok)
            self.assertEqual(r.status, 400, m)


class History(StatsCase):
    def test_history_shape_and_restart(self):
        self.o.route_prefix("/h/", headers={"Cache-Control": "max-age=300"}, body=b"h")
        t0 = int(time.time()) - 1
        for i in range(3):
            raw_get(self.e.proxy_port, "/h/%d" % i)
        got = {}

        def history_has(n):
            def check():
                got["n"], got["doc"] = self.history_requests(t0)
                return got["n"] >= n
            return check

        wait_until(history_has(3), timeout=scaled(6), what="3 requests in the history")
        self.assertEqual(got["n"], 3)
        doc = got["doc"]
        self.assertEqual(doc["status"], "success")
        self.assertIsNone(doc["msg"])
        self.assertEqual(doc["meta"]["by"], "minute")
        self.assertIn("from", doc["meta"])
        self.assertIn("to", doc["meta"])
        starts = [d["start_time"] for d in doc["data"]]
        self.assertEqual(starts, sorted(starts))
        self.assertEqual(len(starts), len(set(starts)))
        row = next(d for d in doc["data"] if d["requests"])
        for k in ("requests", "hits", "miss", "pass", "errors", "bandwidth", "status_2xx", "hit_ratio"):
            self.assertIn(k, row)

        # a restart keeps it (the last partial minute is written at shutdown)
        for i in range(2):
            raw_get(self.e.proxy_port, "/h/%d" % i)
        self.assertEqual(self.e.restart(), 0)
        n, _ = self.history_requests(t0)
        self.assertEqual(n, 5, "history after a restart")
        raw_get(self.e.proxy_port, "/h/0")
        wait_until(history_has(6), timeout=scaled(6), what="6 requests in the history")
        self.assertEqual(got["n"], 6)
        # by hour and by day the same requests are grouped; GET /stats keys them by service id
        doc = self.stats("/stats?by=hour&from=%d" % (t0 - 7200))
        self.assertEqual(list(doc["data"]), ["edgecache"])
        self.assertEqual(sum(d["requests"] for d in doc["data"]["edgecache"]), 6)
        doc = self.stats("/stats?by=day&from=%d" % (t0 - 2 * 86400))
        self.assertEqual(sum(d["requests"] for d in doc["data"]["edgecache"]), 6)
        self.assertLessEqual(len(doc["data"]["edgecache"]), 2)


class Sla(StatsCase):
    def test_sla_figures(self):
        self.o.route("/big", headers={"Cache-Control": "max-age=300"}, body=b"b" * 100000)
        for _ in range(3):
            raw_get(self.e.proxy_port, "/big")
        got = {}

        def sampled():
            got["s"] = self.stats("/stats/sla")
            return got["s"]["bandwidth_samples"] >= 1 and got["s"]["max_utilization_bps"] > 0

        wait_until(sampled, timeout=scaled(6), what="a bandwidth sample")
        s = got["s"]
        self.assertEqual(s["month"], time.strftime("%Y-%m", time.gmtime()))
        self.assertEqual(s["sample_interval"], 1)
        self.assertGreaterEqual(s["max_utilization_bps"], s["p95_utilization_bps"])
        self.assertAlmostEqual(s["permitted_utilization_bps"], 5 * s["average_utilization_bps"], delta=0.01)
        self.assertEqual(s["utilization_spike"], s["p95_utilization_bps"] > s["permitted_utilization_bps"])
        self.assertEqual(s["degraded_minutes"], 0)
        self.assertEqual(s["availability_percent"], 100)
        self.assertEqual(s["sla_band"], "100%-99.99%")

        # errors we cause (the origin is gone: 502s we generate) make degraded minutes
        self.o.stop()
        for i in range(3):
            self.assertEqual(raw_get(self.e.proxy_port, "/gone/%d" % i)[0], 502)

        def degraded():
            got["s"] = self.stats("/stats/sla")
            return got["s"]["degraded_minutes"] >= 1

        wait_until(degraded, timeout=scaled(6), what="a degraded minute")
        self.assertLess(got["s"]["availability_percent"], 100)
        # the SLA summary is part of /stats too
        self.assertIn("sla_band", self.stats()["sla"])

    def test_origin_errors_are_not_degraded(self):
        self.o.route("/e", status=503, headers={"Cache-Control": "no-store"}, body=b"origin says no")
        for _ in range(3):
            self.assertEqual(raw_get(self.e.proxy_port, "/e")[0], 503)
        s = self.wait_responses(3)
        self.assertEqual(s["status_503"], 3)
        self.assertEqual(s["errors_not_origin"], 0)
        time.sleep(scaled(1.5))
        self.assertEqual(self.stats("/stats/sla")["degraded_minutes"], 0)


class AccessLog(StatsCase):
    def setUp(self):
        self.logdir = tempfile.mkdtemp(prefix="edgecache-alog-")
        self.addCleanup(shutil.rmtree, self.logdir, True)
        self.log = os.path.join(self.logdir, "access.log")
        self.ARGS = FAST + ["--access-log", self.log]
        super().setUp()

    def lines(self, path, n):
        got = {}

        def enough():
            try:
                with open(path) as f:
                    got["l"] = f.read().splitlines()
            except FileNotFoundError:
                got["l"] = []
            return len(got["l"]) >= n

        wait_until(enough, timeout=scaled(5), what="%d lines in %s" % (n, path))
        return got["l"]

    def test_lines_and_reopen(self):
        self.o.route_prefix("/a", headers={"Cache-Control": "max-age=300"}, body=b"abc")
        raw_get(self.e.proxy_port, "/a?x=1", headers=[("User-Agent", 'tester "1"'), ("Referer", "http://r/")])
        raw_get(self.e.proxy_port, "/a?x=1")
        lines = self.lines(self.log, 2)
        self.assertEqual(len(lines), 2, lines)
        # each worker thread buffers its own lines: across threads the order is not the request order
        lines.sort(key=lambda l: "tester" not in l)
        m = ACCESS_RE.match(lines[0])
        self.assertTrue(m, lines[0])
        self.assertEqual(m.group(1), "127.0.0.1")
        self.assertEqual((m.group(3), m.group(4), m.group(5)), ("GET", "/a?x=1", "HTTP/1.1"))
        self.assertEqual((m.group(6), m.group(7)), ("200", "3"))
        self.assertEqual(m.group(8), "http://r/")
        self.assertEqual(m.group(9), "tester \\x221\\x22")
        self.assertEqual(m.group(10), "MISS")
        backends = self.stats()["backends"]  # the backend's name, as /stats shows it
        self.assertIn(m.group(11), [b["name"] for b in backends] or [self.o.address])
        self.assertLessEqual(float(m.group(12)), float(m.group(13)))
        m2 = ACCESS_RE.match(lines[1])
        self.assertTrue(m2, lines[1])
        self.assertEqual(m2.group(10), "HIT")
        self.assertEqual(m2.group(11), "-")

        # rotation: rename, SIGHUP, and the next lines go to a new file
        rotated = self.log + ".1"
        os.rename(self.log, rotated)
        os.kill(self.e.pid, signal.SIGHUP)
        wait_until(lambda: os.path.exists(self.log), timeout=scaled(5), what="the log reopened")
        raw_get(self.e.proxy_port, "/a?x=2")
        lines = self.lines(self.log, 1)
        self.assertEqual(len(lines), 1)
        self.assertIn("/a?x=2", lines[0])
        with open(rotated) as f:
            self.assertEqual(len(f.read().splitlines()), 2)
        self.assertTrue(self.e.running)


class PutBacklog(StatsCase):
    ARGS = FAST + ["--disk-put-backlog", "3M"]

    def test_the_option_sets_the_limit(self):
        self.assertEqual(self.stats()["disk"]["put_backlog_limit"], 3 << 20)


class PublicMetrics(StatsCase):
    ARGS = ["--metrics-listen", "127.0.0.1:0"]

    def test_metrics_without_token_on_its_own_listener(self):
        m = re.search(r"metrics listener on 127\.0\.0\.1:(\d+)", self.e.stderr_text())
        self.assertTrue(m, self.e.stderr_tail())
        port = int(m.group(1))
        r = request(port, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        parse_metrics(r.body.decode())
        self.assertEqual(request(port, "GET", "/stats").status, 404)
        # the admin listener still wants a token
        self.assertEqual(self.admin("/metrics").status, 401)

    def test_a_trickling_client_cannot_hold_the_metrics_listener(self):
        # The listener once served one connection at a time, and a client that sent its
        # request one byte at a time held it for as long as it kept trickling (a timeout per
        # read only), so every scrape queued behind it. Now an h2o event loop serves the
        # connections concurrently, and the head still has one deadline (2 s).
        m = re.search(r"metrics listener on 127\.0\.0\.1:(\d+)", self.e.stderr_text())
        port = int(m.group(1))
        slow = socket.create_connection(("127.0.0.1", port))
        self.addCleanup(slow.close)
        stop = threading.Event()

        def trickle():
            for ch in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 200:
                if stop.wait(0.3):
                    return
                try:
                    slow.send(bytes([ch]))
                except OSError:
                    return

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        self.addCleanup(t.join)
        self.addCleanup(stop.set)
        slow.send(b"G")  # accepted before the scrape below connects
        # the scrape never waits behind the trickler; 30 s would mean the trickler still
        # held the listener after 100 bytes
        r = request(port, "GET", "/metrics", timeout=30)
        self.assertEqual(r.status, 200)

"""
tests/integration/test_fastly_stats.py — issue 23: Fastly's historical and real-time stats
APIs on the admin listener, read over plain HTTP (their paths, parameters and shapes), by
the official `fastly` npm client (HistoricalApi, RealtimeApi) and by the Fastly CLI
(`fastly stats historical`, `fastly stats realtime`), each after the same scripted sequence
of hits, misses and passes, with every count checked exactly.

The npm client is installed once into build/fastly-js/ (npm install, as test_fastly_cli.py
installs the CLI); the tests that need it are skipped, saying why, only when npm or its
registry cannot be reached. Set EDGECACHE_FASTLY_JS_VERSION to pin a version.

How the clients are pointed at edgecache (nothing in them is changed):
- npm `fastly`: every operation passes its own base URL (https://api.fastly.com, or
  https://rt.fastly.com for RealtimeApi) to ApiClient.callApi, which overrides
  ApiClient.basePath, and `_base_path_index` only picks among those. The client's own
  hook for this is ApiClient.plugins (superagent plugins, applied to every request before
  it is sent): one plugin rewrites the scheme and host of each request URL to the admin
  listener's.
- CLI: `fastly stats historical` follows FASTLY_API_ENDPOINT (like the purges). `fastly
  stats realtime` builds its client with go-fastly's DefaultRealtimeStatsEndpoint
  (https://rt.fastly.com) hard-coded (go-fastly's FASTLY_RTS_URL is read only by
  NewRealtimeStatsClient, which the CLI does not call), so no setting points it elsewhere.
  Its HTTP client honours HTTPS_PROXY and SSL_CERT_FILE (Go's standard ones), so the test
  gives it an HTTPS proxy that terminates TLS for rt.fastly.com with a certificate from a
  test CA and forwards to the admin listener: the CLI's own requests, unchanged.
"""

import fcntl
import json
import os
import queue
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from certs import TestCA
from harness import ROOT, RawListener, closed_port, request, scaled, wait_until
from npmutil import npm_install
from test_fastly_cli import FastlyCLIUser

SID = "edgecache"
HOST = "www.example.test"
FAST = ["--stats-minute-seconds", "1", "--stats-sample-interval", "1"]

JS_PACKAGE = "fastly"
JS_DIR = os.path.join(ROOT, "build", "fastly-js")
JS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastly_js_stats.js")

_js = {"skip": None}


def fastly_js():
    """The directory holding node_modules/fastly, installed on first use; SkipTest only when
    node, npm or the registry cannot be had."""
    if _js["skip"] is not None:
        raise unittest.SkipTest(_js["skip"])
    try:
        return _install_js()
    except unittest.SkipTest as exc:
        _js["skip"] = str(exc)
        raise


def _install_js():
    if shutil.which("node") is None:
        raise unittest.SkipTest("node is not installed, so the %s npm client cannot be run" % JS_PACKAGE)
    version = os.environ.get("EDGECACHE_FASTLY_JS_VERSION")
    npm_install(JS_PACKAGE + ("@" + version if version else ""), JS_DIR,
                os.path.join("node_modules", JS_PACKAGE, "package.json"))
    return JS_DIR


# the scripted sequence: what each figure must be after it
EXPECT = {"requests": 8, "hits": 4, "miss": 1, "pass": 3, "errors": 0, "status_2xx": 7, "status_4xx": 1,
          "status_200": 6, "status_206": 1, "status_404": 1, "status_5xx": 0, "origin_fetches": 4}


class FastlyStatsCase(harness.TestCase):
    ARGS = FAST

    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o], args=list(self.ARGS))
        self.tok = harness.create_token(self.e, "global:read")
        self.t0 = int(time.time()) - 1

    def get(self, path, headers=None):
        h = {"Host": HOST}
        h.update(headers or {})
        return request(self.e.proxy_port, "GET", path, headers=h)

    def script(self):
        """1 miss, 3 hits and a 206 hit, 2 passes and a 404 pass."""
        self.o.route("/c", body=b"cached body", headers={"Cache-Control": "max-age=300"})
        self.o.route("/p", body=b"private", headers={"Cache-Control": "private"})
        self.o.route("/missing", status=404, body=b"no", headers={"Cache-Control": "no-store"})
        self.assertXCache(self.get("/c"), "MISS")
        for _ in range(3):
            self.assertXCache(self.get("/c"), "HIT")
        r = self.get("/c", {"Range": "bytes=0-3"})
        self.assertEqual(r.status, 206)
        for _ in range(2):
            self.assertXCache(self.get("/p"), "PASS")
        self.assertEqual(self.get("/missing").status, 404)

    def admin(self, path, status=200):
        r = request(self.e.admin_port, "GET", path, headers={"Fastly-Key": self.tok})
        self.assertEqual(r.status, status, path + ": " + r.describe() + "\n" + r.body.decode(errors="replace"))
        return json.loads(r.body)

    def window(self, by="minute"):
        return "from=%d&to=%d&by=%s" % (self.t0, int(time.time()) + 5, by)

    def wait_history(self):
        box = {}

        def done():
            box["doc"] = self.admin("/stats/aggregate?" + self.window())
            return sum(d["requests"] for d in box["doc"]["data"]) >= EXPECT["requests"]

        wait_until(done, timeout=scaled(10), what="the sequence in the history")
        return box["doc"]

    def assertSums(self, rows, what):
        for k, v in EXPECT.items():
            self.assertEqual(sum(r.get(k, 0) or 0 for r in rows), v, "%s: %s" % (what, k))


class Historical(FastlyStatsCase):
    def test_every_endpoint_shape_and_counts(self):
        self.script()
        agg = self.wait_history()
        self.assertEqual(agg["status"], "success")
        self.assertIsNone(agg["msg"])
        self.assertEqual(agg["meta"]["by"], "minute")
        self.assertEqual(agg["meta"]["region"], "all")
        self.assertRegex(agg["meta"]["from"], r"^[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d UTC \d{4}$")
        self.assertSums(agg["data"], "aggregate")
        self.assertNotIn("service_id", agg["data"][0])
        row = next(d for d in agg["data"] if d["requests"])
        for k in ("hits_time", "miss_time", "pass_time", "hit_ratio", "bandwidth", "body_size", "header_size",
                  "resp_body_bytes", "resp_header_bytes", "start_time", "uncacheable", "synth"):
            self.assertIn(k, row)

        svc = self.admin("/stats/service/%s?%s" % (SID, self.window()))
        self.assertIsInstance(svc["data"], list)
        self.assertSums(svc["data"], "service")
        self.assertTrue(all(d["service_id"] == SID for d in svc["data"]))

        by_sid = self.admin("/stats?" + self.window())
        self.assertEqual(list(by_sid["data"]), [SID], "GET /stats keys data by service id")
        self.assertSums(by_sid["data"][SID], "/stats")
        # GET /stats without history parameters is still edgecache's own document
        own = self.admin("/stats")
        self.assertEqual(own["requests"], EXPECT["requests"])
        self.assertIn("latency_ms", own)

        fld = self.admin("/stats/field/hits?" + self.window())
        self.assertEqual(list(fld["data"]), [SID])
        for d in fld["data"][SID]:
            self.assertEqual(sorted(d), ["hits", "service_id", "start_time"])
        self.assertEqual(sum(d["hits"] for d in fld["data"][SID]), EXPECT["hits"])
        sf = self.admin("/stats/service/%s/field/status_206?%s" % (SID, self.window()))
        self.assertEqual(sum(d["status_206"] for d in sf["data"]), 1)

        # by hour and by day: the same counts in fewer buckets; relative times as Fastly takes them
        hour = self.admin("/stats/service/%s?from=2%%20hours%%20ago&to=now&by=hour" % SID)
        self.assertSums(hour["data"], "by hour")
        self.assertLessEqual(len(hour["data"]), 3)
        day = self.admin("/stats/service/%s?from=1+day+ago&by=day" % SID)
        self.assertSums(day["data"], "by day")
        for d in hour["data"]:
            self.assertEqual(d["start_time"] % 3600, 0)

        # one region: "all" and "local" have the data, a Fastly region has none, others are 400
        local = self.admin("/stats/aggregate?%s&region=local" % self.window())
        self.assertEqual(local["meta"]["region"], "local")
        self.assertSums(local["data"], "region=local")
        self.assertEqual(self.admin("/stats/aggregate?%s&region=usa" % self.window())["data"], [])
        self.assertEqual(self.admin("/stats/regions")["data"], ["local"])

    def test_errors(self):
        self.admin("/stats/service/other?by=minute", status=404)
        self.admin("/stats/service/other/field/hits", status=404)
        for q in ("/stats/field/nonsense", "/stats/aggregate?region=mars", "/stats/aggregate?by=week",
                  "/stats/aggregate?from=soon", "/stats/field/service_id"):
            doc = self.admin(q, status=400)
            self.assertIn("detail", doc)
        for q in ("/stats/service/", "/stats/service/%s/field/" % SID, "/stats/service/%s/x" % SID, "/stats/field/a/b"):
            self.admin(q, status=404)
        r = request(self.e.admin_port, "GET", "/stats/aggregate")
        self.assertEqual(r.status, 401)


class NpmClient(FastlyStatsCase):
    """The official npm client's HistoricalApi and RealtimeApi, pointed at the admin listener
    through ApiClient.plugins (its per-operation base URLs override ApiClient.basePath)."""

    @classmethod
    def setUpClass(cls):
        try:  # fetched once per process, outside any single test's deadline
            fastly_js()
        except unittest.SkipTest:
            pass

    def setUp(self):
        self.js_dir = fastly_js()
        super().setUp()

    def wait_realtime(self):
        def done():
            doc = self.admin("/v1/channel/%s/ts/h" % SID)
            return sum(r["aggregated"]["requests"] for r in doc["Data"]) >= EXPECT["requests"]

        wait_until(done, timeout=scaled(10), what="the sequence in the real-time records")

    def test_historical_and_realtime_api(self):
        self.script()
        self.wait_history()
        self.wait_realtime()
        to = int(time.time()) + 5
        p = subprocess.run(["node", JS_SCRIPT, self.js_dir, "http://127.0.0.1:%d" % self.e.admin_port, self.tok, SID,
                            str(self.t0), str(to)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=scaled(60))
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout[:2000])
        out = json.loads(p.stdout)

        self.assertEqual(out["stats"]["status"], "success")
        self.assertEqual(out["stats"]["meta"]["by"], "minute")
        self.assertEqual(list(out["stats"]["data"]), [SID])
        self.assertSums(out["stats"]["data"][SID], "getHistStats")
        self.assertSums(out["service"]["data"], "getHistStatsService")
        self.assertSums(out["aggregate"]["data"], "getHistStatsAggregated")
        self.assertSums(out["region_local"]["data"], "getHistStatsService region=local")
        self.assertEqual(sum(d["hits"] for d in out["field"]["data"][SID]), EXPECT["hits"])
        self.assertEqual(sum(d["miss"] for d in out["service_field"]["data"]), EXPECT["miss"])
        self.assertEqual(out["regions"]["data"], ["local"])
        row = next(d for d in out["service"]["data"] if d["requests"])
        self.assertEqual(row["service_id"], SID)
        self.assertGreater(sum(d["hits_time"] for d in out["service"]["data"]), 0)
        self.assertEqual(out["wrong_service"], 404)

        h = out["rt_h"]
        self.assertLessEqual(len(h["Data"]), 120)
        t = {}
        for rec in h["Data"]:
            for k, v in rec["aggregated"].items():
                if isinstance(v, (int, float)):
                    t[k] = t.get(k, 0) + v
        for k, v in EXPECT.items():
            if k in ("requests", "hits", "miss", "pass", "errors") or k.startswith("status_"):
                self.assertEqual(t.get(k, 0), v, "getStatsLast120Seconds: " + k)
        misses = sum(sum(r["aggregated"].get("miss_histogram", {}).values()) for r in h["Data"])
        self.assertEqual(misses, EXPECT["miss"])
        node = list(h["Data"][-1]["datacenter"])
        self.assertEqual(len(node), 1)
        self.assertEqual(h["Data"][-1]["datacenter"][node[0]]["requests"], h["Data"][-1]["aggregated"]["requests"])
        raw = out["rt_h_raw"]
        self.assertEqual(raw["Timestamp"], raw["Data"][-1]["recorded"])
        self.assertEqual(h["Timestamp"], raw["Timestamp"])
        self.assertEqual(len(out["rt_last"]["Data"]), 1)
        self.assertLessEqual(len(out["rt_limit"]["Data"]), 3)
        self.assertGreater(out["rt_after"]["Timestamp"], h["Timestamp"], "ts/<Timestamp> goes on from there")


class RealtimeTunnel(RawListener):
    """An HTTPS proxy for the Fastly CLI's real-time client: it answers `CONNECT
    rt.fastly.com:443`, terminates TLS there with a certificate for rt.fastly.com issued by a
    test CA (the CLI trusts it through SSL_CERT_FILE), and passes the bytes on to the admin
    listener. Any other CONNECT (the CLI's check for a newer release) is refused."""

    def __init__(self, directory, upstream_port):
        self.upstream_port = upstream_port
        self.ca = TestCA(directory)
        cert, key = self.ca.issue("rt.fastly.com", names=["rt.fastly.com"])
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.connects = []
        super().__init__()

    def serve(self, c):
        try:
            c.settimeout(scaled(30))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = c.recv(4096)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.connects.append(line)
            if line.split()[:2] != ["CONNECT", "rt.fastly.com:443"]:
                c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            tls = self.ctx.wrap_socket(c, server_side=True)
            up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=scaled(30))

            def pump(src, dst):
                try:
                    while True:
                        data = src.recv(65536)
                        if not data:
                            break
                        dst.sendall(data)
                except OSError:
                    pass
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

            threading.Thread(target=pump, args=(up, tls), daemon=True).start()
            pump(tls, up)
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()


class FastlyCLIStats(FastlyCLIUser, FastlyStatsCase):
    """`fastly stats historical` (FASTLY_API_ENDPOINT) and `fastly stats realtime` (through
    RealtimeTunnel: the CLI's real-time host cannot be set)."""

    def setUp(self):
        self.use_fastly_cli()
        super().setUp()

    def env(self, https_proxy=None):
        endpoint = "http://127.0.0.1:%d" % self.e.admin_port
        dead = "http://127.0.0.1:%d" % closed_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.home,
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
            "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
            "FASTLY_API_ENDPOINT": endpoint,
            "FASTLY_ACCOUNT_ENDPOINT": endpoint,
            "HTTPS_PROXY": https_proxy or dead, "HTTP_PROXY": dead, "https_proxy": https_proxy or dead,
            "http_proxy": dead, "NO_PROXY": "", "no_proxy": "",
            "TERM": "dumb", "NO_COLOR": "1",
        }
        return env

    def fastly(self, *args):
        cmd = [self.cli] + list(args) + ["--token=" + self.tok, "--non-interactive"]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                           env=self.env(), cwd=self.home, timeout=scaled(60))
        self.assertEqual(p.returncode, 0, "fastly %s\nstdout: %s\nstderr: %s" % (" ".join(args), p.stdout, p.stderr))
        return p.stdout

    def test_stats_historical(self):
        self.script()
        self.wait_history()
        window = ["--from", str(self.t0), "--to", str(int(time.time()) + 5), "--by", "minute"]
        out = self.fastly("stats", "historical", "-s", SID, "--json", *window)
        rows = [json.loads(l) for l in out.splitlines() if l.strip()]
        self.assertSums(rows, "fastly stats historical --json")
        # the text form: one block a minute, Fastly's layout
        out = self.fastly("stats", "historical", "-s", SID, *window)
        self.assertIn("By: minute", out)
        requests = [int(m) for m in re.findall(r"(?m)^Requests:\s+(\d+)$", out)]
        self.assertEqual(sum(requests), EXPECT["requests"], out)
        hits = [int(m) for m in re.findall(r"(?m)^  Hit:\s+(\d+)$", out)]
        self.assertEqual(sum(hits), EXPECT["hits"], out)
        # one field
        out = self.fastly("stats", "historical", "-s", SID, "--field", "miss", *window)
        self.assertEqual(sum(int(m) for m in re.findall(r"\tmiss: (\d+)$", out, re.M)), EXPECT["miss"], out)

    def realtime(self, tunnel, *args):
        cmd = [self.cli, "stats", "realtime", "-s", SID] + list(args) + ["--token=" + self.tok, "--non-interactive"]
        env = self.env("http://127.0.0.1:%d" % tunnel.port)
        env["SSL_CERT_FILE"] = tunnel.ca.cert
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, cwd=self.home)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        lines, errs = queue.Queue(), []
        threading.Thread(target=lambda: [lines.put(l.decode(errors="replace")) for l in p.stdout], daemon=True).start()
        threading.Thread(target=lambda: errs.extend(l.decode(errors="replace") for l in p.stderr), daemon=True).start()
        return p, lines, errs

    def next_line(self, p, lines, errs, tunnel):
        try:
            return lines.get(timeout=scaled(15))
        except queue.Empty:
            self.fail("fastly stats realtime printed nothing for 15 s (exit %s)\nstderr: %s\nCONNECTs: %s" % (
                p.poll(), "".join(errs), tunnel.connects))

    def test_stats_realtime_through_an_https_proxy(self):
        tunnel = RealtimeTunnel(tempfile.mkdtemp(dir=self.home), self.e.admin_port)
        self.addCleanup(tunnel.close)
        p, lines, errs = self.realtime(tunnel, "--json")
        first = json.loads(self.next_line(p, lines, errs, tunnel))  # connected: the last second
        self.assertIn("aggregated", first)
        self.assertIn("recorded", first)
        self.script()
        total = {}
        while total.get("requests", 0) < EXPECT["requests"]:
            rec = json.loads(self.next_line(p, lines, errs, tunnel))
            for k, v in rec["aggregated"].items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    total[k] = total.get(k, 0) + v
        for k in ("requests", "hits", "miss", "pass", "errors", "status_200", "status_206", "status_404"):
            self.assertEqual(total.get(k, 0), EXPECT[k], k)
        self.assertIn("CONNECT rt.fastly.com:443 HTTP/1.1", tunnel.connects)
        p.kill()

        # the text form prints one block a second
        p, lines, errs = self.realtime(tunnel)
        block = ""
        while "Requests:" not in block:
            block += self.next_line(p, lines, errs, tunnel)
        self.assertNotIn("failed to type assert", "".join(errs))

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

import json
import time

import harness
from harness import request, run_binary, scaled, wait_until

SID = "edgecache"
HOST = "www.example.test"
FAST = ["--stats-minute-seconds", "1", "--stats-sample-interval", "1"]

# the scripted sequence: what each figure must be after it
EXPECT = {"requests": 8, "hits": 4, "miss": 1, "pass": 3, "errors": 0, "status_2xx": 7, "status_4xx": 1,
          "status_200": 6, "status_206": 1, "status_404": 1, "status_5xx": 0, "origin_fetches": 4}


class FastlyStatsCase(harness.TestCase):
    ARGS = FAST

    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o], args=list(self.ARGS))
        p = run_binary(["token", "create", "--data-dir", self.e.data_dir, "--scope", "global:read"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.tok = p.stdout.strip()
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

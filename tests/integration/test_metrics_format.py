"""
tests/integration/test_metrics_format.py — issue 23: /metrics as Prometheus reads it. Every
family has `# HELP` and `# TYPE`, every line parses strictly (test_stats.parse_metrics),
values carry no more digits than they need (0.046739, never 0.046739000000000003),
histogram buckets are cumulative from 1 µs to 60 s, and `promtool check metrics` finds
nothing to say when promtool is installed (Debian's `prometheus` package; skipped without it).
"""

import re
import shutil
import subprocess
import unittest

import harness
from harness import request, scaled, wait_until
from test_stats import parse_metrics

HOST = "www.example.test"
NUMBER_RE = re.compile(r"^-?(\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$")


def significant_digits(tok):
    m = NUMBER_RE.match(tok)
    assert m, tok
    digits = (m.group(1) + (m.group(2) or "")).lstrip("0")
    return len(digits.rstrip("0")) if m.group(2) else len(digits)


class MetricsFormat(harness.TestCase):
    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o])
        self.tok = harness.create_token(self.e)
        self.o.route("/c", body=b"x" * 5000, headers={"Cache-Control": "max-age=300"})
        self.o.route("/p", body=b"p", headers={"Cache-Control": "private"})
        for path in ("/c", "/c", "/c", "/p"):
            request(self.e.proxy_port, "GET", path, headers={"Host": HOST})
        request(self.e.admin_port, "POST", "/service/edgecache/purge/k", headers={"Fastly-Key": self.tok})
        wait_until(lambda: b"edgecache_request_duration_seconds_count{cache=\"pass\"} 1\n" in self.metrics(),
                   timeout=scaled(5), what="the four requests in /metrics")

    def metrics(self):
        r = request(self.e.admin_port, "GET", "/metrics", headers={"Fastly-Key": self.tok})
        self.assertEqual(r.status, 200)
        return r.body

    def test_help_type_precision_and_buckets(self):
        text = self.metrics().decode()
        families, samples = parse_metrics(text)
        helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
        self.assertEqual(helps, set(families), "every family has # HELP and # TYPE")
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if line.startswith("# TYPE "):
                self.assertTrue(lines[i - 1].startswith("# HELP " + line.split()[2] + " "), line)
        for line in lines:
            if line and not line.startswith("#"):
                tok = line.rsplit(" ", 1)[1]
                if tok in ("+Inf", "-Inf", "NaN") or tok.lstrip("-").isdigit():
                    continue  # integers are exact as they are
                # no more significant digits than the shortest form that reads back
                self.assertLessEqual(significant_digits(tok), max(significant_digits(repr(float(tok))), 1), line)
                self.assertLessEqual(significant_digits(tok), 15, line)
        for cache in ("hit", "miss", "pass"):
            buckets = [(l["le"], v) for n, l, v in samples
                       if n == "edgecache_request_duration_seconds_bucket" and l["cache"] == cache]
            les = [float(le) for le, _ in buckets]
            self.assertEqual(les, sorted(les))
            self.assertEqual(les[0], 0.000001)
            self.assertEqual(les[-2], 60.0)
            self.assertEqual(buckets[-1][0], "+Inf")
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), "cumulative")
            for le, _ in buckets[:-1]:
                self.assertNotIn("e", le, "bucket bounds in plain decimal seconds")
        hits = [v for n, l, v in samples if n == "edgecache_request_duration_seconds_count" and l["cache"] == "hit"]
        self.assertEqual(hits, [2])

    def test_promtool_check_metrics(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            raise unittest.SkipTest("promtool is not installed (Debian package prometheus)")
        p = subprocess.run([promtool, "check", "metrics"], input=self.metrics(), capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        self.assertEqual(out.strip(), "", "promtool has something to say")

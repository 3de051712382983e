"""
tests/integration/test_latency.py — issue 23: a request's latency is its own monotonic time
from the proxy handler's entry to its last byte handed to the socket, in microseconds. Before,
the event loop's cached millisecond clock made every hit 0.

No timed assertion: the order is built by the test. A miss is held at the origin (a Hold)
while the hits run one after another, and released only after they have all been answered, so
the miss's latency contains all of theirs: the hits' sum must be below the misses' sum, and
above 0.
"""

import json
import threading

import harness
from harness import Hold, request, scaled, wait_until
from test_stats import parse_metrics

HOST = "www.example.test"
N_HITS = 8


class Latency(harness.TestCase):
    def setUp(self):
        self.o = self.origin()
        self.e = self.edgecache([self.o])
        self.tok = harness.create_token(self.e)

    def admin(self, path):
        r = request(self.e.admin_port, "GET", path, headers={"Fastly-Key": self.tok})
        self.assertEqual(r.status, 200, r.describe())
        return r

    def get(self, path):
        return request(self.e.proxy_port, "GET", path, headers={"Host": HOST}, timeout=scaled(30))

    def test_hits_take_time_and_less_than_a_slow_miss(self):
        self.o.route("/fast", body=b"f" * 1000, headers={"Cache-Control": "max-age=300"})
        hold = Hold()
        self.o.route("/slow", body=b"s" * 1000, headers={"Cache-Control": "max-age=300"}, hold=hold)
        self.assertXCache(self.get("/fast"), "MISS")

        slow = {}
        t = threading.Thread(target=lambda: slow.setdefault("r", self.get("/slow")))
        t.start()
        try:
            wait_until(lambda: hold.waiting == 1, timeout=scaled(10), what="the slow miss held at the origin")
            for _ in range(N_HITS):
                self.assertXCache(self.get("/fast"), "HIT")
        finally:
            hold.release()
            t.join(scaled(30))
        self.assertXCache(slow["r"], "MISS")

        box = {}

        def recorded():
            box["s"] = json.loads(self.admin("/stats").body)
            lat = box["s"]["latency_ms"]
            return lat["hits"]["count"] == N_HITS and lat["miss"]["count"] == 2

        wait_until(recorded, timeout=scaled(10), what="the hits and misses recorded")

        text = self.admin("/metrics").body.decode()
        _, samples = parse_metrics(text)

        def value(name, cache, le=None):
            for n, labels, v in samples:
                if n == name and labels.get("cache") == cache and (le is None or labels.get("le") == le):
                    return v
            raise AssertionError("no sample %s{cache=%s,le=%s}" % (name, cache, le))

        hit_sum = value("edgecache_request_duration_seconds_sum", "hit")
        miss_sum = value("edgecache_request_duration_seconds_sum", "miss")
        self.assertEqual(value("edgecache_request_duration_seconds_count", "hit"), N_HITS)
        self.assertGreater(hit_sum, 0, "hits take time (the loop's cached clock made them 0)")
        self.assertLess(hit_sum, miss_sum, "all the hits ran inside the held miss")
        # not every hit in the first bucket: they were measured, not rounded to 0
        first = min((float(l["le"]), v) for n, l, v in samples
                    if n == "edgecache_request_duration_seconds_bucket" and l.get("cache") == "hit")
        self.assertLess(first[1], N_HITS)

        lat = box["s"]["latency_ms"]
        self.assertGreater(lat["hits"]["avg"], 0)
        self.assertLess(lat["hits"]["avg"], lat["miss"]["avg"])
        self.assertLess(lat["hits"]["p50"], lat["miss"]["p99"])

"""
tests/integration/test_accept_spread.py — issue 24: which workers take new connections
(--accept-spread, server/frontend.c).

The first worker always watches the proxy's listening socket; a worker after it watches
only while every worker before it used at least --accept-spread percent of a core over its
last window (100 ms or more). So an idle node takes its new connections on one worker, and
a busy one brings in the next. /stats shows, per worker, whether it watches, how many
connections it accepted and its share of a core; /metrics the same.

The harness runs every other test with --accept-spread 0 (every worker takes connections,
whichever is free first), so that concurrent clients there land on both workers and the
paths between workers stay exercised. These tests give the flag themselves.
"""

import json
import re
import threading

import harness
from harness import Session, request, scaled, wait_until

BODY = b"spread" * 100


class AcceptSpread(harness.TestCase):
    def setUp(self):
        self.o = self.origin()
        self.o.route("/one", headers={"Content-Type": "text/plain", "Cache-Control": "max-age=600"}, body=BODY)

    def start(self, threads, spread):
        self.e = self.edgecache([self.o], args=["--threads", str(threads), "--accept-spread", str(spread)])
        self.tok = harness.create_token(self.e, "global")

    def workers(self):
        r = request(self.e.admin_port, "GET", "/stats", headers={"Fastly-Key": self.tok})
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)["workers"]

    def wait_workers(self, predicate, what):
        out = {}

        def check():
            out["w"] = self.workers()
            return predicate(out["w"])

        wait_until(check, timeout=scaled(10), what=what)
        return out["w"]

    def hit(self, session):
        r = session.request("GET", "/one")
        self.assertEqual((r.status, r.body), (200, BODY), r.describe())

    def test_an_idle_node_takes_new_connections_on_its_first_worker(self):
        """With three workers and nothing else to do, 24 connections held open at once all go
        to the first worker; the other two never watch the listener."""
        self.start(3, 50)
        w = self.wait_workers(lambda w: len(w) == 3 and w[0]["accepting"], "the first worker watching")
        self.assertEqual([x["accepting"] for x in w], [True, False, False], w)
        sessions = [Session(self.e.proxy_port) for _ in range(24)]
        try:
            for s in sessions:
                self.hit(s)
            w = self.workers()
        finally:
            for s in sessions:
                s.close()
        self.assertEqual([x["connections_accepted"] for x in w], [24, 0, 0], w)
        self.assertEqual([x["connections_open"] for x in w], [24, 0, 0], w)
        self.assertEqual([x["accepting"] for x in w], [True, False, False], w)
        w = self.wait_workers(lambda w: w[0]["connections_open"] == 0, "the closed connections counted")
        self.assertEqual([x["connections_accepted"] for x in w], [24, 0, 0], w)
        for x in w:
            self.assertGreaterEqual(x["cpu_percent"], 0)
            self.assertLessEqual(x["cpu_percent"], 100)
        self.assertEqual(len(self.o.requests_for("/one")), 1, "one fetch; every other answer a hit")

    def test_with_0_every_worker_watches_always(self):
        self.start(3, 0)
        self.wait_workers(lambda w: len(w) == 3 and all(x["accepting"] for x in w), "every worker watching")
        sessions = [Session(self.e.proxy_port) for _ in range(12)]
        try:
            for s in sessions:
                self.hit(s)
        finally:
            for s in sessions:
                s.close()
        w = self.workers()
        self.assertEqual(sum(x["connections_accepted"] for x in w), 12, w)
        self.assertTrue(all(x["accepting"] for x in w), w)

    def test_a_busy_first_worker_brings_in_the_next_and_lets_it_go(self):
        """At --accept-spread 1, a client asking without pause keeps the first worker above 1%
        of a core: the second starts to watch, takes some of the new connections, and stops
        watching once the load is gone. The connections it took stay served by it."""
        self.start(2, 1)
        self.wait_workers(lambda w: len(w) == 2 and w[0]["accepting"] and not w[1]["accepting"],
                          "only the first worker watching")
        stop = threading.Event()
        errors = []

        def load():
            try:
                with Session(self.e.proxy_port) as s:
                    while not stop.is_set():
                        r = s.request("GET", "/one")
                        if r.status != 200:
                            errors.append(r.describe())
                            return
            except Exception as e:  # reported by the test, not lost in the thread
                errors.append(repr(e))

        t = threading.Thread(target=load, daemon=True)
        t.start()
        kept = []
        try:
            w = self.wait_workers(lambda w: w[1]["accepting"] or errors, "the second worker watching")
            self.assertEqual(errors, [])
            self.assertGreaterEqual(w[0]["cpu_percent"], 1.0, w)

            def one_more_on_the_second():
                s = Session(self.e.proxy_port)
                kept.append(s)
                self.hit(s)
                return self.workers()[1]["connections_accepted"] >= 1

            wait_until(one_more_on_the_second, timeout=scaled(10), interval=0, what="a connection on the second worker")
            for s in kept:
                self.hit(s)  # every new connection is served, on whichever worker took it
        finally:
            stop.set()
            t.join(scaled(10))
        self.assertEqual(errors, [])
        self.wait_workers(lambda w: not w[1]["accepting"], "the second worker no longer watching once idle")
        try:
            for s in kept:
                self.hit(s)  # it still serves the connections it took
        finally:
            for s in kept:
                s.close()
        w = self.workers()
        self.assertEqual(sum(x["connections_accepted"] for x in w), 1 + len(kept), w)

    def test_metrics_show_each_worker(self):
        self.start(2, 50)
        self.wait_workers(lambda w: len(w) == 2 and w[0]["accepting"], "the first worker watching")
        with Session(self.e.proxy_port) as s:
            self.hit(s)
            r = request(self.e.admin_port, "GET", "/metrics", headers={"Fastly-Key": self.tok})
        self.assertEqual(r.status, 200)
        text = r.body.decode()
        for family, kind in (("edgecache_worker_accepting", "gauge"),
                             ("edgecache_worker_connections_accepted_total", "counter"),
                             ("edgecache_worker_cpu_share", "gauge")):
            self.assertIn("# TYPE %s %s\n" % (family, kind), text)
        samples = dict(re.findall(r'^(edgecache_worker_\w+\{worker="\d+"\}) (\S+)$', text, re.M))
        self.assertEqual(samples['edgecache_worker_accepting{worker="0"}'], "1")
        self.assertEqual(samples['edgecache_worker_accepting{worker="1"}'], "0")
        self.assertEqual(samples['edgecache_worker_connections_accepted_total{worker="0"}'], "1")
        self.assertEqual(samples['edgecache_worker_connections_accepted_total{worker="1"}'], "0")
        for k in ("0", "1"):
            share = float(samples['edgecache_worker_cpu_share{worker="%s"}' % k])
            self.assertTrue(0 <= share <= 1, share)

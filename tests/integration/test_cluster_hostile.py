"""
tests/integration/test_cluster_hostile.py — the cache network (issue 22) against a hostile or
failing bus: NATS with users and TLS, forged and malformed messages on the purge and
heartbeat subjects, the purge stream or a node's consumer deleted by an operator while the
nodes run. Real nats-server processes (natsutil), real nodes, scripted origins; every wait is
on an event (/health, /stats counters), never on elapsed time.
"""

import json

import natsutil
import test_cluster
from harness import request, wait_until

SID = test_cluster.SID
STREAM_API = "$JS.API.STREAM."
CONSUMER_API = "$JS.API.CONSUMER."


class OperatorDeletes(test_cluster.ClusterCase):
    """An operator deletes the stream or a node's consumer while the nodes run."""

    def test_a_stream_made_anew_is_not_skipped_by_a_node_that_was_ahead(self):
        a, b = self.node("A"), self.node("B")
        for i in range(4):  # B's applied sequence is now past what the new stream will hold
            self.assertEqual(self.purge(a, "/service/%s/purge/k-warm%d" % (SID, i)).status, 200)
        old = self.cstats(a)["applied_seq"]
        self.wait_applied([b], old)
        self.cache([b], ["/obj/n1"])
        gaps = self.cstats(b)["gap_invalidations"]
        r = natsutil.publish_raw(self.nats.servers[0].port, STREAM_API + "DELETE.EDGECACHE_PURGES", b"")
        self.assertTrue(r.get("success"), r)
        # the nodes notice, one of them makes the stream again; a purge lands at its sequence 1
        r = self.purge(a, "/service/%s/purge/k-n1" % SID)
        self.assertEqual(r.status, 200, r.describe())
        new_seq = self.cstats(a)["applied_seq"]
        self.assertLess(new_seq, old, "the purge counts in a new stream")
        wait_until(lambda: self.cstats(b)["gap_invalidations"] > gaps, timeout=30,
                   what="B invalidated everything on the new stream")
        self.wait_applied([b], new_seq)
        wait_until(lambda: self.cstats(b)["applied_seq"] <= self.cstats(b)["stream_last_seq"], timeout=30,
                   what="B counts in the new stream")
        self.assertOwnXCache(self.get(b, "/obj/n1"), "MISS")
        self.assertIn("made anew", b.stderr_text())
        # and the new stream goes on working: a purge after it reaches B by its sequence
        self.cache([b], ["/obj/n2"])
        r = self.purge(a, "/service/%s/purge/k-n2" % SID)
        self.assertEqual(r.status, 200, r.describe())
        self.wait_applied([b], self.cstats(a)["applied_seq"])
        self.assertOwnXCache(self.get(b, "/obj/n2"), "MISS")

    def test_a_stream_made_anew_while_a_node_was_down(self):
        a, b = self.node("A"), self.node("B")
        for i in range(4):
            self.assertEqual(self.purge(a, "/service/%s/purge/k-warm%d" % (SID, i)).status, 200)
        self.wait_applied([b], self.cstats(a)["applied_seq"])
        self.cache([b], ["/obj/d1"])
        b.stop()
        r = natsutil.publish_raw(self.nats.servers[0].port, STREAM_API + "DELETE.EDGECACHE_PURGES", b"")
        self.assertTrue(r.get("success"), r)
        # B's purge comes first in the new stream, then more than B had applied on the old one:
        # by sequence alone, B would resume past it
        self.assertEqual(self.purge(a, "/service/%s/purge/k-d1" % SID).status, 200)
        for i in range(6):
            self.assertEqual(self.purge(a, "/service/%s/purge/k-after%d" % (SID, i)).status, 200)
        b.start()
        self.wait_ready(b)
        self.assertGreaterEqual(self.cstats(b)["gap_invalidations"], 1)
        self.assertOwnXCache(self.get(b, "/obj/d1"), "MISS")

    def test_a_deleted_consumer_is_made_again(self):
        a, b = self.node("A"), self.node("B")
        self.cache([b], ["/obj/c1"])
        durable = "edgecache_B_%s" % self._testMethodName[-12:]
        runs = self.cstats(b)["catchup_runs"]
        r = natsutil.publish_raw(self.nats.servers[0].port,
                                 CONSUMER_API + "DELETE.EDGECACHE_PURGES." + durable, b"")
        self.assertTrue(r.get("success"), r)
        wait_until(lambda: self.cstats(b)["catchup_runs"] > runs, timeout=30, what="B set its consumer up again")
        r = self.purge(a, "/service/%s/purge/k-c1" % SID)
        self.assertEqual(r.status, 200, r.describe())
        self.wait_applied([b], self.cstats(a)["applied_seq"])
        self.assertOwnXCache(self.get(b, "/obj/c1"), "MISS")

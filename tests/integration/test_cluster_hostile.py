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


class HostileBus(test_cluster.ClusterCase):
    """Whoever may publish on the subjects: what the nodes themselves must withstand."""

    def cluster_view(self, e):
        r = request(e.admin_port, "GET", "/cluster", headers={"Fastly-Key": self.token(e)})
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)

    def node_entry(self, e, name):
        return {n["node"]: n for n in self.cluster_view(e)["nodes"]}.get(name)

    def forge(self, e, messages, marker):
        """Publish forged heartbeats, then one from `marker`: once A lists the marker, it has
        read everything before it (one connection: NATS keeps their order)."""
        natsutil.publish_core(self.nats.servers[0].port,
                              [("edgecache.node." + n, v) for n, v in messages] + [("edgecache.node." + marker, b"1")])
        wait_until(lambda: self.node_entry(e, marker) is not None, timeout=30, what="A heard the marker")

    def test_forged_heartbeats_do_not_stick_or_distort(self):
        a, b = self.node("A"), self.node("B")
        an, bn = "A_%s" % self._testMethodName[-12:], "B_%s" % self._testMethodName[-12:]
        self.assertEqual(self.purge(a, "/service/%s/purge/k-hb" % SID).status, 200)
        seq = self.cstats(a)["applied_seq"]
        self.wait_applied([b], seq)
        wait_until(lambda: (self.node_entry(a, bn) or {}).get("applied_seq") == seq, timeout=30, what="A heard B")
        # beyond any sequence (JSON would show it negative), not a number, an empty one, a
        # subject that is not a node name: all ignored
        self.forge(a, [(bn, b"18446744073709551615"), (bn, b"12x"), (bn, b""), ("bad-name", b"5"),
                       (bn, b"9" * 40)], "marker1")
        self.assertEqual(self.node_entry(a, bn)["applied_seq"], seq)
        self.assertIsNone(self.node_entry(a, "bad-name"))
        # a node's own entry is not taken from the network
        self.forge(a, [(an, b"9223372036854775807")], "marker2")
        self.assertEqual(self.node_entry(a, an)["applied_seq"], seq)
        # a huge but well-formed claim for B lasts until B's own next heartbeat
        self.forge(a, [(bn, b"9223372036854775807")], "marker3")
        wait_until(lambda: self.node_entry(a, bn)["applied_seq"] == seq, timeout=30,
                   what="B's own heartbeat replaced the forged one")
        for n in self.cluster_view(a)["nodes"]:
            self.assertGreaterEqual(n["applied_seq"], 0, n)
            self.assertGreaterEqual(n["lag"], 0, n)
        st = self.cstats(a)
        self.assertEqual(st["applied_seq"], seq)
        self.assertEqual(st["lag"], 0)

    def test_poison_messages_are_skipped_and_acked_never_wedge(self):
        a, b = self.node("A"), self.node("B")
        self.cache([a, b], ["/obj/p1"])
        port = self.nats.servers[0].port
        base = [self.cstats(e) for e in (a, b)]
        key = natsutil.encode_purge("key", [("poison-ok-1", b"k-p1")])
        poison = [
            b"",  # nothing at all
            b"ECP1",  # a header cut short
            b"ECP2" + key[4:],  # another magic
            key[:4] + b"\x09" + key[5:],  # an unknown kind
            key[:5] + b"\x02" + key[6:],  # an unknown flag
            key[:6] + b"\x00\x00" + key[8:],  # no items
            key[:6] + b"\x00\x02" + key[8:],  # two items for a "key" purge
            key + b"x",  # bytes after the last item
            key[:-1],  # a key cut short
            natsutil.encode_purge("key", [('a"b', b"k-p1")]),  # an id that would break JSON
            natsutil.encode_purge("key", [("", b"k-p1")]),  # an empty id
            natsutil.encode_purge("key", [("x" * 200, b"k-p1")]),  # an id too long for a purge id
            key[:8] + bytes([len("poison-ok-1")]) + b"poison-ok-1" + b"\xff\xff\xff\xff" + b"k-p1",  # a key length past the end
            natsutil.encode_purge("all", [("poison-all-1", b"x")]),  # "all" carries no key
            natsutil.encode_purge("keys", [("p%d" % i, b"k") for i in range(4097)]),  # too many items
            b"\x00" * (900 * 1024),  # large (under the server's max_payload)
        ]
        last = 0
        for i, p in enumerate(poison):
            last = natsutil.publish_raw(port, "edgecache.purge", p, msg_id="poison-%d" % i)["seq"]
        good = natsutil.publish_raw(port, "edgecache.purge", key, msg_id="poison-ok-1")["seq"]
        self.assertGreater(good, last)
        self.wait_applied([a, b], good)
        for e, st0 in zip((a, b), base):
            st = self.cstats(e)
            self.assertEqual(st["invalid_skipped"] - st0["invalid_skipped"], len(poison))
            self.assertEqual(st["applied"] - st0["applied"], 1)
            self.assertEqual(st["lag"], 0)
            self.assertOwnXCache(self.get(e, "/obj/p1"), "MISS")
        # nothing was left unacknowledged for redelivery: the consumer's ack floor is the stream's end
        durable = "edgecache_A_%s" % self._testMethodName[-12:]
        info = natsutil.publish_raw(port, CONSUMER_API + "INFO.EDGECACHE_PURGES." + durable, b"")
        wait_until(lambda: natsutil.publish_raw(port, CONSUMER_API + "INFO.EDGECACHE_PURGES." + durable, b"")
                   ["ack_floor"]["stream_seq"] >= good, timeout=30, what="A acked everything")
        info = natsutil.publish_raw(port, CONSUMER_API + "INFO.EDGECACHE_PURGES." + durable, b"")
        self.assertEqual(info["num_ack_pending"], 0, info)
        self.assertEqual(info["num_redelivered"], 0, info)

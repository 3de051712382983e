"""
tests/integration/test_cluster_hostile.py — the cache network (issue 22) against a hostile or
failing bus: NATS with users and TLS, forged and malformed messages on the purge and
heartbeat subjects, the purge stream or a node's consumer deleted by an operator while the
nodes run. Real nats-server processes (natsutil), real nodes, scripted origins; every wait is
on an event (/health, /stats counters), never on elapsed time.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile

import certs
import natsutil
import test_cluster
from harness import request, run_binary, wait_until

SID = test_cluster.SID
STREAM_API = "$JS.API.STREAM."
CONSUMER_API = "$JS.API.CONSUMER."


class OperatorAndDisk(test_cluster.ClusterCase):
    """An operator deletes the stream or a node's consumer while the nodes run; a node's disk fills up."""

    def test_a_stream_made_anew_is_not_skipped_by_a_node_that_was_ahead(self):
        a, b = self.node("A"), self.node("B")
        for i in range(4):  # B's applied sequence is now past what the new stream will hold
            self.assertEqual(self.purge(a, "/service/%s/purge/k-warm%d" % (SID, i)).status, 200)
        old = self.cstats(a)["applied_seq"]
        self.wait_applied([b], old)
        self.cache([b], ["/obj/n1"])
        gaps = self.cstats(b)["gap_invalidations"]
        a_gaps = self.cstats(a)["gap_invalidations"]
        r = natsutil.publish_raw(self.nats.servers[0].port, STREAM_API + "DELETE.EDGECACHE_PURGES", b"")
        self.assertTrue(r.get("success"), r)
        # the nodes notice, one of them makes the stream again; a purge lands at its sequence 1
        r = self.purge(a, "/service/%s/purge/k-n1" % SID)
        self.assertEqual(r.status, 200, r.describe())
        # answered only once A applied it: A's old sequence (above the new one) does not count, A
        # had to bind the new stream (whose purge-all covers it) first
        self.assertGreater(self.cstats(a)["gap_invalidations"], a_gaps)
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

    def test_a_full_disk_stops_the_cache_until_the_purges_are_applied(self):
        mnt = tempfile.mkdtemp(prefix="edgecache-full-")
        self.addCleanup(shutil.rmtree, mnt, True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", mnt], capture_output=True).returncode != 0:
            self.skipTest("needs a small file system of its own (mount tmpfs: root)")
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        a = self.node("A")
        b = self.node("B", data_dir=os.path.join(mnt, "b"), args=["--disk-reserve", "free-space"])
        self.assertEqual(self.body(b, "/obj/f1"), "/obj/f1 v1")
        self.assertOwnXCache(self.get(b, "/obj/f1"), "HIT")
        self.assertTrue(self.cstats(b)["ready"])  # (its admin token is made now: not on a full disk)
        with open(os.path.join(mnt, "fill"), "wb") as f:  # the disk is full
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        r = self.purge(a, "/service/%s/purge/k-f1" % SID)
        self.assertEqual(r.status, 200, r.describe())
        wait_until(lambda: not self.cstats(b)["ready"], timeout=30, what="B not ready: its store cannot apply the purge")
        self.assertLess(self.cstats(b)["applied_seq"], self.cstats(a)["applied_seq"])
        self.assertEqual(request(b.admin_port, "GET", "/health").status, 503)
        # the purged object is not served from B's cache: B passes to the origin
        self.assertEqual(self.body(b, "/obj/f1"), "/obj/f1 v2")
        os.unlink(os.path.join(mnt, "fill"))
        self.wait_ready(b)
        self.wait_applied([b], self.cstats(a)["applied_seq"])
        self.assertEqual(self.body(b, "/obj/f1"), "/obj/f1 v3")
        self.assertIn("not serving the cache", b.stderr_text())

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

    def test_a_consumer_that_delivers_nothing_is_set_up_again(self):
        """B's durable consumer is there but delivers nothing (as one was seen stuck after a
        NATS quorum came back). Made so: while B is stopped (SIGSTOP), its consumer is made
        again under its name with at most one message unacknowledged, and a pull of the test's
        own takes that one and never acknowledges it. A purge that A stores must still reach
        B: B sees itself behind the stream with nothing applied for 3 s and sets its consumer
        up again from its applied sequence."""
        a, b = self.node("A"), self.node("B")
        self.assertEqual(self.purge(a, "/service/%s/purge/k-s0" % SID).status, 200)
        self.wait_applied([b], self.cstats(a)["applied_seq"])
        self.cache([b], ["/obj/s1"])
        durable = "edgecache_B_%s" % self._testMethodName[-12:]
        port = self.nats.servers[0].port
        stalls, runs = self.cstats(b)["consumer_stalls"], self.cstats(b)["catchup_runs"]
        b.proc.send_signal(signal.SIGSTOP)
        try:
            r = natsutil.publish_raw(port, CONSUMER_API + "DELETE.EDGECACHE_PURGES." + durable, b"")
            self.assertTrue(r.get("success"), r)
            config = {"stream_name": "EDGECACHE_PURGES",
                      "config": {"durable_name": durable, "deliver_policy": "all", "ack_policy": "explicit",
                                 "ack_wait": 3600 * 10**9, "max_ack_pending": 1}}
            r = natsutil.publish_raw(port, CONSUMER_API + "DURABLE.CREATE.EDGECACHE_PURGES." + durable,
                                     json.dumps(config).encode())
            self.assertNotIn("error", r, r)
            thief = natsutil.pull_one(port, "EDGECACHE_PURGES", durable)  # held, never acknowledged
            self.addCleanup(thief.close)
        finally:
            b.proc.send_signal(signal.SIGCONT)
        r = self.purge(a, "/service/%s/purge/k-s1" % SID)
        self.assertEqual(r.status, 200, r.describe())
        self.wait_applied([b], self.cstats(a)["applied_seq"])
        self.assertOwnXCache(self.get(b, "/obj/s1"), "MISS")
        st = self.cstats(b)
        self.assertGreater(st["consumer_stalls"], stalls, st)
        self.assertGreater(st["catchup_runs"], runs, st)
        self.assertIn("delivered nothing", b.stderr_text())


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
        ] + [b"\x00" * (900 * 1024)] * 24  # large (under max_payload): more than one fetch's byte bound together

        last = 0
        for i, p in enumerate(poison):
            last = natsutil.publish_raw(port, "edgecache.purge", p, msg_id="poison-%d" % i, timeout=60)["seq"]
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
        # the stream the nodes made refuses messages over 1 MiB, which bounds what one fetch holds
        info = natsutil.publish_raw(port, STREAM_API + "INFO.EDGECACHE_PURGES", b"")
        self.assertEqual(info["config"]["max_msg_size"], 1 << 20, info)


PASSWORD = "pw-Secret-4815162342"


class Credentials(test_cluster.ClusterCase):
    """NATS over TLS (client certificates required) with users: a password in the URL, an NKey."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="edgecache-nats-auth-")
        cls.ca = certs.TestCA(os.path.join(cls.dir, "ca"))
        cls.server_cert = cls.ca.issue("nats.test", names=["nats.test", "127.0.0.1"])
        cls.client_cert = cls.ca.issue("edge.test")
        cls.seed, cls.pub = natsutil.user_nkey()
        cls.seed_file = os.path.join(cls.dir, "edge.nk")
        with open(cls.seed_file, "w") as f:
            f.write(cls.seed + "\n")
        extra = ('tls { cert_file: %s, key_file: %s, ca_file: %s, verify: true, timeout: 5 }\n'
                 'authorization { users: [ {user: edge, password: "%s"}, {nkey: %s} ] }') % (
            json.dumps(cls.server_cert[0]), json.dumps(cls.server_cert[1]), json.dumps(cls.ca.cert), PASSWORD, cls.pub)
        cls.nats = natsutil.NatsCluster(1, extra_conf=extra).start()

    @classmethod
    def tearDownClass(cls):
        cls.nats.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def url(self, userinfo=None):
        port = self.nats.servers[0].port
        return "nats://%s127.0.0.1:%d" % (userinfo + "@" if userinfo else "", port)

    def tls_args(self):
        return ["--cluster-tls-ca", self.ca.cert, "--cluster-tls-cert", "%s,%s" % self.client_cert]

    def secure_node(self, name, cluster_args, ready=True):
        e = self.edgecache([self.o], args=["--cluster"] + cluster_args + ["--node-name", "%s_%s" % (
            name, self._testMethodName[-12:]), "--origin-timeout", "5000"])
        if ready:
            self.wait_ready(e)
        return e

    def assertNoSecret(self, e):
        shown = [e.stderr_text()]
        for path in ("/stats", "/cluster", "/metrics"):
            r = request(e.admin_port, "GET", path, headers={"Fastly-Key": self.token(e)})
            shown.append(r.body.decode(errors="replace"))
        for text in shown:
            self.assertNotIn(PASSWORD, text)
            self.assertNotIn(self.seed, text)

    def test_password_and_nkey_over_tls_carry_purges(self):
        a = self.secure_node("A", [self.url("edge:" + PASSWORD)] + self.tls_args())
        b = self.secure_node("B", [self.url(), "--cluster-nkey", self.seed_file] + self.tls_args())
        self.cache([a, b], ["/obj/t1"])
        r = self.purge(a, "/service/%s/purge/k-t1" % SID)
        self.assertEqual(r.status, 200, r.describe())
        self.wait_applied([b], self.cstats(a)["applied_seq"])
        for e in (a, b):
            self.assertOwnXCache(self.get(e, "/obj/t1"), "MISS")
            self.assertTrue(self.cstats(e)["connected"])
            self.assertIsNone(self.cstats(e)["connect_error"])
            self.assertNoSecret(e)
        # and someone without credentials cannot put a purge on the bus: that is what protects it
        with self.assertRaises(OSError):
            natsutil.publish_core(self.nats.servers[0].port, [("edgecache.purge", b"x")])

    def test_a_wrong_password_starts_reports_and_refuses_purges(self):
        e = self.secure_node("W", [self.url("edge:not-" + PASSWORD)] + self.tls_args(), ready=False)
        wait_until(lambda: "Authorization" in (self.cstats(e)["connect_error"] or ""), timeout=30,
                   what="the refusal in /stats")
        st = self.cstats(e)
        self.assertFalse(st["connected"])
        self.assertFalse(st["ready"])
        self.assertEqual(request(e.admin_port, "GET", "/health").status, 503)
        self.assertIn("Authorization", e.stderr_text())
        self.assertEqual(e.stderr_text().count("Authorization"), 1, "said once, not at every retry")
        self.assertNotIn(PASSWORD, e.stderr_text())
        # the node serves (from the origin, not the cache it cannot keep in step) ...
        self.assertEqual(self.body(e, "/obj/w1"), "/obj/w1 v1")
        # ... and a purge is refused: nothing is acknowledged that the stream did not store
        r = self.purge(e, "/service/%s/purge/k-w1" % SID)
        self.assertEqual(r.status, 503, r.describe())

    def test_credentials_revoked_then_restored_the_node_comes_back_by_itself(self):
        a = self.secure_node("R", [self.url("edge:" + PASSWORD)] + self.tls_args())
        server = self.nats.servers[0]
        with open(server.conf) as f:
            conf = f.read()

        def reload(text):
            with open(server.conf, "w") as f:
                f.write(text)
            server.proc.send_signal(signal.SIGHUP)

        self.addCleanup(reload, conf)
        reload(conf.replace(PASSWORD, "rotated-" + PASSWORD))  # the server drops us, and refuses our reconnects
        wait_until(lambda: not self.cstats(a)["connected"] and "Authorization" in (self.cstats(a)["connect_error"] or ""),
                   timeout=30, what="the refusal in /stats")
        # cnats gives such a connection up for good: the node must not
        wait_until(lambda: "closed the connection" in a.stderr_text(), timeout=30, what="the closed connection noticed")
        reload(conf)
        wait_until(lambda: self.cstats(a)["connected"], timeout=60, what="connected again")
        self.cache([a], ["/obj/r1"])
        r = self.purge(a, "/service/%s/purge/k-r1" % SID)
        self.assertEqual(r.status, 200, r.describe())
        self.assertOwnXCache(self.get(a, "/obj/r1"), "MISS")
        self.assertNoSecret(a)

    def test_a_server_the_ca_did_not_sign_is_refused(self):
        other = certs.TestCA(os.path.join(self.o_dir(), "other"))
        e = self.secure_node("X", [self.url("edge:" + PASSWORD), "--cluster-tls-ca", other.cert], ready=False)
        wait_until(lambda: self.cstats(e)["connect_error"] is not None, timeout=30, what="the TLS failure in /stats")
        self.assertFalse(self.cstats(e)["connected"])
        self.assertNoSecret(e)

    def test_a_server_certificate_for_another_name_is_refused(self):
        e = self.secure_node("H", [self.url("edge:" + PASSWORD)] + self.tls_args() +
                             ["--cluster-tls-hostname", "other.test"], ready=False)
        wait_until(lambda: self.cstats(e)["connect_error"] is not None, timeout=30, what="the name mismatch in /stats")
        self.assertFalse(self.cstats(e)["connected"])
        ok = self.secure_node("N", [self.url("edge:" + PASSWORD)] + self.tls_args() +
                              ["--cluster-tls-hostname", "nats.test"])
        self.assertTrue(self.cstats(ok)["connected"])

    def test_bad_credential_settings_exit_2_with_one_line_and_no_secret(self):
        d = self.o_dir()
        junk = os.path.join(d, "junk")
        with open(junk, "w") as f:
            f.write("not a seed\n")
        url = self.url("edge:" + PASSWORD)
        for args, flag in (([url, "--cluster-tls-ca", os.path.join(d, "missing.pem")], "--cluster-tls-ca"),
                           ([url, "--cluster-tls-ca", junk], "--cluster-tls-ca"),
                           ([url, "--cluster-nkey", junk], "--cluster-nkey"),
                           ([url, "--cluster-creds", junk], "--cluster-creds"),
                           ([url, "--cluster-creds", junk, "--cluster-nkey", self.seed_file], "--cluster-nkey"),
                           (["tls://edge:%s@127.0.0.1:1" % PASSWORD], "--cluster-tls-ca"),
                           (["nats://edge:%s@127.0.0.1" % PASSWORD], "--cluster"),
                           (["nats://edge:%s@" % PASSWORD], "--cluster"),
                           (["nats://ed ge:%s@127.0.0.1:1" % PASSWORD], "--cluster")):
            p = run_binary(["--cluster"] + args + ["--node-name", "x", "--data-dir", self.o_dir()])
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn(flag, p.stderr)
            self.assertNotIn(PASSWORD, p.stderr)
        p = run_binary(["--cluster-tls-ca", self.ca.cert, "--data-dir", self.o_dir()])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("no --cluster", p.stderr)
        p = run_binary(["--help"])
        for flag in ("--cluster-creds", "--cluster-nkey", "--cluster-tls-ca", "--cluster-tls-cert",
                     "--cluster-tls-hostname"):
            self.assertIn(flag, p.stdout + p.stderr)


class DecentralizedAuth(test_cluster.ClusterCase):
    """NATS in operator mode (JWTs): a node with a .creds file."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="edgecache-nats-jwt-")
        conf, cls.creds = natsutil.operator_setup(cls.dir)
        cls.nats = natsutil.NatsCluster(1, extra_conf=conf).start()

    @classmethod
    def tearDownClass(cls):
        cls.nats.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_a_creds_file_carries_purges_and_none_is_refused(self):
        a = self.node("A", args=["--cluster-creds", self.creds])
        b = self.node("B", args=["--cluster-creds", self.creds])
        self.cache([b], ["/obj/j1"])
        r = self.purge(a, "/service/%s/purge/k-j1" % SID)
        self.assertEqual(r.status, 200, r.describe())
        self.wait_applied([b], self.cstats(a)["applied_seq"])
        self.assertOwnXCache(self.get(b, "/obj/j1"), "MISS")
        with open(self.creds) as f:
            seed = [line for line in f.read().splitlines() if line.startswith("SU")][0]
        self.assertNotIn(seed, a.stderr_text())
        c = self.edgecache([self.o], args=["--cluster", self.nats.urls, "--node-name", "nocreds"])
        wait_until(lambda: self.cstats(c)["connect_error"] is not None, timeout=30, what="refused without credentials")
        self.assertFalse(self.cstats(c)["connected"])

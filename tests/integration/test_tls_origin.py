"""
tests/integration/test_tls_origin.py — issue 21, the origin side: backends with Fastly's TLS
fields, against a TLS origin in Python (harness.Origin(tls=...)) with certificates a test CA
(tests/integration/certs.py) makes fresh for every test.

  Verify     a valid certificate (MISS then HIT over one pooled TLS connection); an expired, a
             wrong-name and a self-signed one, each a 502 with a log line naming the backend and
             OpenSSL's reason, then each accepted once configured (the right ssl_cert_hostname,
             ssl_ca_cert with the issuer, ssl_check_cert false); the SNI sent.
  Options    client certificates the origin requires; min/max TLS version; ssl_ciphers.
  Health     health checks over TLS mark a backend healthy, and sick when its certificate fails.
  Api        the fields in JSON and form bodies, defaults, the client key never echoed, invalid
             values 400 naming the field with nothing changed, persisted across a restart.
  ShieldNodeOverTLS  two edgecache processes: the edge reaches the shield's --tls-listen and
             forwards purges to its --admin-tls-listen, both verified; a certificate that does not
             verify is a 502 (and an unacknowledged purge) with a log line.
  EdgecacheAsOrigin  another edgecache node's --tls-listen as a TLS origin: ssl_sni_hostname
             picks its non-default certificate.
"""

import json
import os
import re
import ssl
import tempfile
import threading
import shutil

import harness
from certs import TestCA, self_signed
from harness import request, run_binary, tls_server_context, wait_until

SID = "edgecache"
BASE = "/service/%s/version/1" % SID
HOST = {"Host": "www.example.test"}


def pem(path):
    with open(path) as f:
        return f.read()


class TlsCase(harness.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="edgecache-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.ca = TestCA(self.dir)

    def tls_origin(self, cert_key, **ctx_args):
        o = self.origin(tls=tls_server_context(*cert_key, **ctx_args))
        o.route_prefix("/c/", headers={"Cache-Control": "max-age=60", "Content-Type": "text/plain"}, body=b"cached")
        o.route_prefix("/p/", headers={"Cache-Control": "no-store"}, body=b"passed")
        return o

    def token(self, edge):
        return harness.create_token(edge)

    def api(self, edge, method, path, body=None, form=False, expect=None):
        return self.admin_api(edge, method, path, body, self.tok, form, expect)

    def edge_for(self, origin, args=(), **fields):
        """edgecache whose backend1 is `origin` over TLS with `fields`; returns it."""
        e = self.edgecache([origin], args=args)
        self.tok = self.token(e)
        self.set_backend(e, origin, **fields)
        return e

    def set_backend(self, e, origin, expect=200, form=False, **fields):
        body = {"use_ssl": True, "port": origin.port}
        body.update(fields)
        return self.api(e, "PUT", BASE + "/backend/backend1", body, form=form, expect=expect)

    def get(self, edge, path):
        return request(edge.proxy_port, "GET", path, headers=HOST)

    def assert_refused(self, e, path, reason):
        """a 502 with a short body, and the log line naming the backend and `reason`"""
        r = self.get(e, path)
        self.assertEqual(r.status, 502, r.describe())
        self.assertLess(len(r.body), 100)
        wait_until(lambda: "backend 'backend1'" in e.stderr_text() and reason in e.stderr_text(), 10,
                   what="a log line with %r" % reason)
        line = [ln for ln in e.stderr_text().splitlines() if reason in ln][0]
        self.assertIn("TLS", line)


class Verify(TlsCase):
    def test_valid_certificate_miss_then_hit_over_one_connection(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["origin.test", "127.0.0.1"]))
        e = self.edge_for(o, args=["--threads", "1"], ssl_ca_cert=pem(self.ca.cert))  # one worker: one pool
        r = self.get(e, "/c/1")
        self.assertEqual((r.status, r.body), (200, b"cached"), r.describe())
        self.assertXCache(r, "MISS")
        self.assertXCache(self.get(e, "/c/1"), "HIT")
        for i in range(5):
            r = self.get(e, "/p/%d" % i)
            self.assertEqual((r.status, r.body), (200, b"passed"))
        self.assertEqual(o.hits(), 6)
        # the keep-alive connection was reused: one handshake for the six requests (two if the machine
        # stalled past the pool's 2 s idle timeout between two of them)
        self.assertIn(o.tls_handshakes, (1, 2))
        self.assertEqual(o.tls_failures, 0)

    def test_the_certificate_name_is_the_address_by_default(self):
        # the backend is 127.0.0.1: a certificate for a DNS name only does not verify
        o = self.tls_origin(self.ca.issue("origin.test"))
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert))
        self.assert_refused(e, "/c/a", "IP address mismatch")
        # override_host (without its port) is the name next, and the SNI
        self.set_backend(e, o, override_host="origin.test:8443")
        r = self.get(e, "/c/a")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(o.sni_seen[-1], "origin.test")
        self.set_backend(e, o, override_host=None, ssl_cert_hostname="origin.test")
        r = self.get(e, "/c/b")
        self.assertEqual(r.status, 200, r.describe())

    def test_expired_certificate_is_refused(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"], expired=True))
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert))
        self.assert_refused(e, "/c/x", "certificate has expired")
        self.assertEqual(o.hits(), 0, "nothing was sent over an unverified connection")
        # not stored either: a valid certificate later is a MISS
        self.set_backend(e, o, ssl_check_cert=False)
        self.assertXCache(self.get(e, "/c/x"), "MISS")

    def test_wrong_name_is_refused_then_accepted_with_the_right_cert_hostname(self):
        # both versions: libh2o 2.2.5's own name check runs only after a TLS 1.2 handshake; OpenSSL's runs in both
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            o = self.tls_origin(self.ca.issue("other.test"), max_version=version)
            e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert), ssl_cert_hostname="origin.test")
            self.assert_refused(e, "/c/n", "hostname mismatch")
            self.assertEqual(o.hits(), 0)
            self.set_backend(e, o, ssl_cert_hostname="other.test")
            r = self.get(e, "/c/n")
            self.assertEqual((r.status, r.body), (200, b"cached"), r.describe())
            # the SNI may name another host: the certificate is still checked for ssl_cert_hostname
            self.set_backend(e, o, ssl_sni_hostname="front.test")
            self.assertEqual(self.get(e, "/p/n").status, 200)
            self.assertEqual(o.sni_seen[-1], "front.test")

    def test_self_signed_is_refused_then_trusted_as_ca_or_unchecked(self):
        cert, key = self_signed(self.dir, "self.test", names=["self.test", "127.0.0.1"])
        o = self.tls_origin((cert, key))
        e = self.edge_for(o)  # the system store: does not know it
        self.assert_refused(e, "/c/s", "self-signed certificate")
        self.set_backend(e, o, ssl_ca_cert=pem(cert))
        self.assertEqual(self.get(e, "/c/s").status, 200)
        # an unknown CA: refused again
        other = TestCA(self.dir + "/other", name="other root")
        self.set_backend(e, o, ssl_ca_cert=pem(other.cert))
        self.assert_refused(e, "/c/s2", "self-signed certificate")
        # checks off: accepted, and said once when configured
        self.set_backend(e, o, ssl_check_cert=False)
        self.assertEqual(self.get(e, "/c/s3").status, 200)
        self.assertIn("ssl_check_cert is false", e.stderr_text())

    def test_unknown_issuer_is_refused(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]))
        e = self.edge_for(o)  # the system store does not hold the test CA
        self.assert_refused(e, "/c/u", "unable to get local issuer certificate")

    def test_chain_through_an_intermediate(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"], via_intermediate=True))
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert))
        self.assertEqual(self.get(e, "/c/chain").status, 200)

    def test_sni_sent(self):
        o = self.tls_origin(self.ca.issue("origin.test"))
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert), ssl_cert_hostname="origin.test")
        self.assertEqual(self.get(e, "/p/1").status, 200)
        self.assertEqual(o.sni_seen[-1], "origin.test")  # the certificate name by default
        self.set_backend(e, o, ssl_sni_hostname="sni.test")
        self.assertEqual(self.get(e, "/p/2").status, 200)
        self.assertEqual(o.sni_seen[-1], "sni.test")  # SNI differs, the certificate is still checked for origin.test
        # an IP address is never sent as SNI (RFC 6066)
        o2 = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]))
        self.set_backend(e, o2, ssl_cert_hostname=None, ssl_sni_hostname=None)
        self.assertEqual(self.get(e, "/p/3").status, 200)
        self.assertEqual(o2.sni_seen, [None])

    def test_change_during_a_fetch_keeps_its_connection(self):
        # the fetch's connection holds its own context: a reconfiguration (new context, new pool) does not break it
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]))
        hold = harness.Hold()
        o.route("/slow", headers={"Cache-Control": "no-store"}, body=b"slow", hold=hold)
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert))
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", self.get(e, "/slow")))
        t.start()
        wait_until(lambda: hold.waiting == 1, 10, what="the fetch held at the origin")
        self.set_backend(e, o, ssl_sni_hostname="new.test", ssl_check_cert=False)
        hold.release()
        t.join(30)
        self.assertEqual((result["r"].status, result["r"].body), (200, b"slow"))
        self.assertEqual(self.get(e, "/p/after").status, 200)
        self.assertEqual(o.sni_seen[-1], "new.test")  # the next fetch: a new connection, the new settings

    def test_cleartext_backend_to_tls_origin_and_back(self):
        # pools are per TLS identity: switching use_ssl never hands over a connection
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]))
        plain = self.origin()
        plain.route_prefix("/p/", headers={"Cache-Control": "no-store"}, body=b"plain")
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert))
        self.assertEqual(self.get(e, "/p/a").body, b"passed")
        self.api(e, "PUT", BASE + "/backend/backend1", {"use_ssl": False, "port": plain.port}, expect=200)
        self.assertEqual(self.get(e, "/p/b").body, b"plain")
        self.set_backend(e, o)
        self.assertEqual(self.get(e, "/p/c").body, b"passed")


class Options(TlsCase):
    def test_client_certificate_required_by_the_origin(self):
        client_ca = TestCA(self.dir + "/clients", name="client root")
        cert, key = client_ca.issue("edge.client")
        # TLS 1.3 refuses a missing client certificate after the handshake, TLS 1.2 during it
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]), client_ca=client_ca.cert,
                                max_version=version)
            e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert))
            r = self.get(e, "/p/none")
            self.assertEqual(r.status, 502, r.describe())
            wait_until(lambda: "backend 'backend1'" in e.stderr_text() and "TLS" in e.stderr_text(), 10,
                       what="the log line")
            self.assertEqual(o.hits(), 0)
            self.set_backend(e, o, ssl_client_cert=pem(cert), ssl_client_key=pem(key))
            r = self.get(e, "/p/with")
            self.assertEqual((r.status, r.body), (200, b"passed"), r.describe())
            # a client certificate from a CA the origin does not trust: refused again
            other = TestCA(self.dir + "/other%d" % version, name="other root")
            ocert, okey = other.issue("edge.client")
            self.set_backend(e, o, ssl_client_cert=pem(ocert), ssl_client_key=pem(okey))
            self.assertEqual(self.get(e, "/p/other").status, 502)

    def test_min_and_max_tls_version(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]), max_version=ssl.TLSVersion.TLSv1_2)
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert), min_tls_version="1.3")
        self.assert_refused(e, "/p/v13", "protocol version")
        self.set_backend(e, o, min_tls_version="1.2", max_tls_version="1.2")
        self.assertEqual(self.get(e, "/p/v12").status, 200)
        self.assertEqual(o.tls_versions[-1], "TLSv1.2")
        o13 = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]))
        self.set_backend(e, o13, min_tls_version=None, max_tls_version=None)
        self.assertEqual(self.get(e, "/p/any").status, 200)
        self.assertEqual(o13.tls_versions[-1], "TLSv1.3")

    def test_ssl_ciphers_restrict_tls12(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]), max_version=ssl.TLSVersion.TLSv1_2)
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert), ssl_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertEqual(self.get(e, "/p/c1").status, 200)
        # an RSA-only list cannot talk to an ECDSA certificate
        self.set_backend(e, o, ssl_ciphers="ECDHE-RSA-AES128-GCM-SHA256")
        self.assert_refused(e, "/p/c2", "handshake failure")


class Health(TlsCase):
    def test_health_checks_over_tls(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]))
        o.route("/health", headers={"Cache-Control": "no-store"}, body=b"")
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert))
        self.api(e, "POST", BASE + "/healthcheck", {"name": "hc", "path": "/health", "check_interval": 100, "timeout": 2000,
                                                   "window": 3, "threshold": 2, "initial": 0}, expect=200)
        self.set_backend(e, o, healthcheck="hc")

        def healthy():
            stats = json.loads(self.api(e, "GET", "/stats").body)
            b = [x for x in stats["backends"] if x["name"] == "backend1"][0] if isinstance(stats.get("backends"), list) \
                else stats["backends"]["backend1"]
            return b["healthy"]
        wait_until(lambda: healthy(), 10, what="healthy over TLS")
        self.assertGreaterEqual(o.hits("/health"), 2)
        self.assertEqual(self.get(e, "/p/h").status, 200)
        # the certificate stops verifying (another CA): the probes fail, the backend is sick
        other = TestCA(self.dir + "/other", name="other root")
        self.set_backend(e, o, ssl_ca_cert=pem(other.cert))
        wait_until(lambda: not healthy(), 10, what="sick when the certificate does not verify")
        self.assertEqual(self.get(e, "/p/h2").status, 503)


class Api(TlsCase):
    def test_fields_json_and_form_defaults_and_key_not_echoed(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]))
        e = self.edgecache([o])
        self.tok = self.token(e)
        b = json.loads(self.api(e, "GET", BASE + "/backend/backend1", expect=200).body)
        for field, default in (("use_ssl", False), ("ssl_check_cert", True), ("ssl_cert_hostname", None),
                               ("ssl_sni_hostname", None), ("ssl_ca_cert", None), ("ssl_client_cert", None),
                               ("ssl_client_key", None), ("min_tls_version", None), ("max_tls_version", None),
                               ("ssl_ciphers", None)):
            self.assertEqual(b[field], default, field)
        # use_ssl without a port: Fastly's 443 (POST: a new backend)
        r = self.api(e, "POST", BASE + "/backend", {"name": "b443", "address": "127.0.0.1", "use_ssl": True}, expect=200)
        self.assertEqual(json.loads(r.body)["port"], 443)
        r = self.api(e, "POST", BASE + "/backend", {"name": "p443", "address": "127.0.0.1", "port": 443}, expect=200)
        self.assertTrue(json.loads(r.body)["use_ssl"])
        self.api(e, "DELETE", BASE + "/backend/b443", expect=200)
        self.api(e, "DELETE", BASE + "/backend/p443", expect=200)
        # form body: booleans and PEM text as form fields
        client_ca = TestCA(self.dir + "/clients", name="client root")
        cert, key = client_ca.issue("edge.client")
        r = self.set_backend(e, o, form=True, use_ssl="true", ssl_ca_cert=pem(self.ca.cert), ssl_client_cert=pem(cert),
                             ssl_client_key=pem(key), min_tls_version="1.2", ssl_sni_hostname="sni.test")
        b = json.loads(r.body)
        self.assertIs(b["use_ssl"], True)
        self.assertEqual(b["ssl_ca_cert"], pem(self.ca.cert))
        self.assertEqual(b["ssl_client_cert"], pem(cert))
        self.assertEqual(b["ssl_client_key"], "(redacted)")
        self.assertNotIn("PRIVATE KEY", r.body.decode())
        self.assertEqual(b["min_tls_version"], "1.2")
        self.assertEqual(self.get(e, "/p/form").status, 200)
        # a GET answer sent back as it is keeps the key; the key is never in the log
        got = json.loads(self.api(e, "GET", BASE + "/backend/backend1", expect=200).body)
        self.assertNotIn("PRIVATE KEY", json.dumps(got))
        self.api(e, "PUT", BASE + "/backend/backend1", got, expect=200)
        self.assertEqual(self.get(e, "/p/again").status, 200)
        self.assertNotIn("PRIVATE KEY", e.stderr_text())

    def test_invalid_fields_are_400_naming_the_field(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]))
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert))
        client_ca = TestCA(self.dir + "/clients", name="client root")
        cert, key = client_ca.issue("edge.client")
        _, other_key = client_ca.issue("other.client")
        bad = [
            ({"use_ssl": "maybe"}, "use_ssl"),
            ({"ssl_check_cert": 2}, "ssl_check_cert"),
            ({"ssl_ca_cert": "not pem"}, "ssl_ca_cert"),
            ({"ssl_ca_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "ssl_ca_cert"),
            ({"ssl_client_cert": pem(cert)}, "ssl_client_key"),
            ({"ssl_client_cert": pem(cert), "ssl_client_key": pem(other_key)}, "ssl_client_key"),
            ({"ssl_client_cert": pem(cert), "ssl_client_key": "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n"},
             "ssl_client_key"),
            ({"min_tls_version": "1.1"}, "min_tls_version"),
            ({"max_tls_version": "2.0"}, "max_tls_version"),
            ({"min_tls_version": "1.3", "max_tls_version": "1.2"}, "min_tls_version"),
            ({"ssl_ciphers": "NO-SUCH-CIPHER"}, "ssl_ciphers"),
            ({"ssl_cert_hostname": "bad name"}, "ssl_cert_hostname"),
            ({"ssl_sni_hostname": 7}, "ssl_sni_hostname"),
            ({"ssl_client_key": "(redacted)"}, "ssl_client_key"),
        ]
        before = self.api(e, "GET", BASE + "/backend/backend1", expect=200).body
        for fields, name in bad:
            r = self.api(e, "PUT", BASE + "/backend/backend1", fields)
            self.assertEqual(r.status, 400, "%s -> %s" % (fields, r.body))
            self.assertTrue(json.loads(r.body)["detail"].startswith(name + ":"), "%s -> %s" % (fields, r.body))
            if all(isinstance(v, str) for v in fields.values()):  # the same as form fields
                r = self.api(e, "PUT", BASE + "/backend/backend1", fields, form=True)
                self.assertEqual(r.status, 400, "form %s -> %s" % (fields, r.body))
                self.assertTrue(json.loads(r.body)["detail"].startswith(name + ":"), "form %s -> %s" % (fields, r.body))
        self.assertEqual(self.api(e, "GET", BASE + "/backend/backend1", expect=200).body, before)
        self.assertNotIn("PRIVATE KEY", e.stderr_text())

    def test_fields_survive_restart(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]))
        client_ca = TestCA(self.dir + "/clients", name="client root")
        cert, key = client_ca.issue("edge.client")
        e = self.edge_for(o, ssl_ca_cert=pem(self.ca.cert), ssl_cert_hostname="127.0.0.1", ssl_sni_hostname="sni.test",
                          ssl_client_cert=pem(cert), ssl_client_key=pem(key), max_tls_version="1.3",
                          ssl_ciphers="ECDHE+AESGCM")
        before = json.loads(self.api(e, "GET", BASE + "/backend/backend1", expect=200).body)
        self.assertEqual(self.get(e, "/c/r").status, 200)
        e.restart()
        after = json.loads(self.api(e, "GET", BASE + "/backend/backend1", expect=200).body)
        self.assertEqual(after, before)
        self.assertXCache(self.get(e, "/c/r"), "HIT")
        self.assertEqual(self.get(e, "/p/r").status, 200)  # the client key came back from the store too
        self.assertEqual(o.sni_seen[-1], "sni.test")


class Shield(TlsCase):
    def test_shield_link_over_tls(self):
        # the shield end is a TLS origin here: what is tested is the link (another edgecache node
        # answers TLS with --tls-listen, which is the client side's)
        shield = self.tls_origin(self.ca.issue("shield.test", names=["127.0.0.1"]))
        e = self.edgecache(args=["--shield", shield.address, "--shield-tls", self.ca.cert])
        r = self.get(e, "/c/sh")
        self.assertEqual((r.status, r.body), (200, b"cached"), r.describe())
        self.assertEqual(shield.tls_handshakes, 1)
        self.assertEqual(shield.sni_seen, [None])  # an IP address: no SNI
        e.stop()
        # the system's store does not know the test CA: refused, and said
        e2 = self.edgecache(args=["--shield", shield.address, "--shield-tls", "system"])
        r = self.get(e2, "/c/sh2")
        self.assertEqual(r.status, 502, r.describe())
        wait_until(lambda: "backend 'shield'" in e2.stderr_text() and "unable to get local issuer" in e2.stderr_text(), 10,
                   what="the log line")

    def test_shield_tls_flag_errors(self):
        bad = self.dir + "/bad.pem"
        with open(bad, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        for args, words in ((["--shield", "127.0.0.1:1", "--shield-tls", bad], "--shield-tls: '%s'" % bad),
                            (["--shield", "127.0.0.1:1", "--shield-tls", self.dir + "/missing.pem"], "cannot read"),
                            (["--shield-tls", "system"], "no --shield")):
            p = run_binary(args + ["--data-dir", self.dir + "/data", "--listen", "127.0.0.1:0", "--admin-listen",
                                   "127.0.0.1:0"])
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn(words, p.stderr)


def served_as(resp):
    """X-Cache of the node that answered: the last value (a shield's own comes first, as with Fastly)."""
    values = [v.strip().upper() for v in ", ".join(resp.header_all("x-cache")).split(",") if v.strip()]
    return values[-1] if values else None


class TlsNode(TlsCase):
    """Another edgecache process that answers on --tls-listen (and its admin API on
    --admin-tls-listen): certs is [(host, (cert, key))]; .tls_port and .admin_tls_port are set."""

    def tls_node(self, origin, certs, admin_cert=None):
        args = ["--tls-listen", "127.0.0.1:0"]
        for host, (cert, key) in certs:
            args += ["--tls-cert", "%s=%s,%s" % (host, cert, key)]
        if admin_cert is not None:
            args += ["--admin-tls-listen", "127.0.0.1:0", "--admin-tls-cert", "%s,%s" % admin_cert]
        n = self.edgecache([origin], args=args)
        text = n.stderr_text()
        n.tls_port = int(re.search(r" tls=[^ ,]+:(\d+)", text).group(1))
        m = re.search(r" admin-tls=\S+:(\d+)", text)
        n.admin_tls_port = int(m.group(1)) if m else None
        return n

    def scoped_token(self, edge, scope):
        return harness.create_token(edge, scope)

    def cleartext_origin(self):
        o = self.origin()
        o.route_prefix("/c/", headers={"Cache-Control": "max-age=300", "Content-Type": "text/plain"}, body=b"cached")
        return o


class ShieldNodeOverTLS(TlsNode):
    """The shield link end to end between two edgecache processes: the edge reaches the shield's
    --tls-listen (--shield-tls CA.pem) and forwards purges to its --admin-tls-listen
    (--shield-admin-tls CA.pem), both verified."""

    def test_miss_through_the_shield_hit_at_the_edge_and_purge_forwarded_over_tls(self):
        o = self.cleartext_origin()
        cert = self.ca.issue("shield.test", names=["127.0.0.1"])
        shield = self.tls_node(o, [("default", cert)], admin_cert=cert)
        shield_tok = self.scoped_token(shield, "purge_select")
        edge = self.edgecache(args=["--shield", "127.0.0.1:%d" % shield.tls_port, "--shield-tls", self.ca.cert,
                                    "--shield-admin", "127.0.0.1:%d" % shield.admin_tls_port,
                                    "--shield-admin-tls", self.ca.cert, "--shield-token", shield_tok])
        r = self.get(edge, "/c/a")
        self.assertEqual((r.status, r.body), (200, b"cached"), r.describe())
        self.assertEqual(served_as(r), "MISS", r.describe())
        self.assertEqual(o.hits("/c/a"), 1)
        self.assertEqual(served_as(self.get(edge, "/c/a")), "HIT")
        self.assertEqual(served_as(self.get(shield, "/c/a")), "HIT", "the shield filled on the edge's miss")
        self.assertEqual(o.hits("/c/a"), 1)
        # a purge on the edge is acknowledged once the shield applied it, over its TLS admin listener
        self.tok = self.token(edge)
        self.api(edge, "POST", "/purge/www.example.test/c/a", expect=200)
        self.assertEqual(served_as(self.get(shield, "/c/a")), "MISS", "the purge reached the shield before the 200")
        self.assertEqual(o.hits("/c/a"), 2)
        r = self.get(edge, "/c/a")
        self.assertEqual((r.status, served_as(r)), (200, "MISS"), "the edge's own copy went too")
        self.assertEqual(o.hits("/c/a"), 2, "refilled from the shield's fresh copy")
        # a PURGE on the edge's proxy listener takes the same way
        r = request(edge.proxy_port, "PURGE", "/c/a", headers={"Host": "www.example.test", "Fastly-Key": self.tok})
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(served_as(self.get(shield, "/c/a")), "MISS")
        # cleartext to the TLS admin listener (no --shield-admin-tls) is not a purge the shield applies
        edge2 = self.edgecache(args=["--shield", "127.0.0.1:%d" % shield.tls_port, "--shield-tls", self.ca.cert,
                                     "--shield-admin", "127.0.0.1:%d" % shield.admin_tls_port,
                                     "--shield-token", shield_tok])
        self.tok = self.token(edge2)
        self.assertEqual(self.api(edge2, "POST", "/purge/www.example.test/c/a").status, 502)

    def test_a_shield_whose_certificate_does_not_verify_is_502_and_logged(self):
        o = self.cleartext_origin()
        wrong = self.ca.issue("elsewhere.test")  # the trusted CA's, for another name than 127.0.0.1
        shield = self.tls_node(o, [("default", wrong)], admin_cert=wrong)
        shield_tok = self.scoped_token(shield, "purge_select")
        edge = self.edgecache(args=["--shield", "127.0.0.1:%d" % shield.tls_port, "--shield-tls", self.ca.cert,
                                    "--shield-admin", "127.0.0.1:%d" % shield.admin_tls_port,
                                    "--shield-admin-tls", self.ca.cert, "--shield-token", shield_tok])
        r = self.get(edge, "/c/b")
        self.assertEqual(r.status, 502, r.describe())
        self.assertLess(len(r.body), 100)
        self.assertEqual(o.hits("/c/b"), 0)
        wait_until(lambda: re.search(r"backend 'shield' .*TLS handshake failed: .*mismatch", edge.stderr_text()), 10,
                   what="the log line naming the shield backend and the reason")
        # the purge is not acknowledged: the shield's admin certificate does not verify either
        self.tok = self.token(edge)
        r = self.api(edge, "POST", "/purge/www.example.test/c/b")
        self.assertEqual(r.status, 502, r.describe())
        wait_until(lambda: re.search(r"purge forwarded to the shield: TLS handshake failed: .*mismatch", edge.stderr_text()),
                   10, what="the forward's log line")
        # a CA the shield's certificate does not come from: refused alike
        other = TestCA(os.path.join(self.dir, "other-ca"), name="another root")
        edge2 = self.edgecache(args=["--shield", "127.0.0.1:%d" % shield.tls_port, "--shield-tls", other.cert])
        self.assertEqual(self.get(edge2, "/c/b").status, 502)
        wait_until(lambda: "backend 'shield'" in edge2.stderr_text() and "unable to get local issuer" in edge2.stderr_text(),
                   10, what="the log line")
        self.assertEqual(o.hits("/c/b"), 0)

    def test_shield_admin_tls_flag_errors(self):
        for args, words in ((["--shield-admin-tls", self.ca.cert], "--shield-admin-tls: there is no --shield-admin"),
                            (["--shield-admin", "127.0.0.1:1", "--shield-admin-tls", self.dir + "/missing.pem"],
                             "--shield-admin-tls: cannot read")):
            p = run_binary(args + ["--data-dir", self.dir + "/data", "--listen", "127.0.0.1:0", "--admin-listen",
                                   "127.0.0.1:0"])
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn(words, p.stderr)
        self.assertFalse(os.path.exists(self.dir + "/data"))


class EdgecacheAsOrigin(TlsNode):
    def test_ssl_sni_hostname_picks_a_non_default_certificate_of_an_edgecache_node(self):
        """A backend with use_ssl at another edgecache node's --tls-listen: the SNI it sends picks
        that node's certificate (h2o's server side), the default one answering other names."""
        o = self.cleartext_origin()
        node = self.tls_node(o, [("default", self.ca.issue("a.test")), ("b.test", self.ca.issue("b.test"))])
        e = self.edgecache(["127.0.0.1:%d" % node.tls_port])
        self.tok = self.token(e)
        self.api(e, "PUT", BASE + "/backend/backend1", {"use_ssl": True, "ssl_ca_cert": pem(self.ca.cert),
                                                        "ssl_cert_hostname": "b.test", "ssl_sni_hostname": "a.test"},
                 expect=200)
        r = self.get(e, "/c/x")  # the node answers a.test with the default certificate, not b.test's
        self.assertEqual(r.status, 502, r.describe())
        wait_until(lambda: re.search(r"backend 'backend1' .*TLS handshake failed: .*mismatch.*'b\.test'",
                                     e.stderr_text()), 10, what="the name mismatch in the log")
        self.assertEqual(o.hits("/c/x"), 0)
        self.api(e, "PUT", BASE + "/backend/backend1", {"use_ssl": True, "ssl_ca_cert": pem(self.ca.cert),
                                                        "ssl_cert_hostname": "b.test", "ssl_sni_hostname": "b.test"},
                 expect=200)
        r = self.get(e, "/c/x")
        self.assertEqual((r.status, r.body), (200, b"cached"), r.describe())
        self.assertEqual(served_as(r), "MISS")
        self.assertEqual(served_as(self.get(e, "/c/x")), "HIT")
        self.assertEqual(o.hits("/c/x"), 1)


class ConfigFile(TlsCase):
    def test_backend_objects_in_the_config_file(self):
        o = self.tls_origin(self.ca.issue("origin.test", names=["127.0.0.1"]))
        path = os.path.join(self.dir, "edge.json")
        with open(path, "w") as f:
            json.dump({"backends": [{"name": "tls1", "address": "127.0.0.1", "port": o.port, "use_ssl": True,
                                     "ssl_ca_cert": pem(self.ca.cert), "ssl_sni_hostname": "sni.test"}]}, f)
        e = self.edgecache(args=["--config", path])
        r = self.get(e, "/c/f")
        self.assertEqual((r.status, r.body), (200, b"cached"), r.describe())
        self.assertEqual(o.sni_seen[-1], "sni.test")
        self.tok = self.token(e)
        b = json.loads(self.api(e, "GET", BASE + "/backend/tls1", expect=200).body)
        self.assertIs(b["use_ssl"], True)

    def test_bad_tls_field_in_the_config_file_is_one_line_and_exit_2(self):
        for fields, name in (({"ssl_ciphers": "NO-SUCH-CIPHER"}, "ssl_ciphers"),
                             ({"ssl_ca_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
                              "ssl_ca_cert"),
                             ({"max_tls_version": "1.4"}, "max_tls_version")):
            path = os.path.join(self.dir, "bad.json")
            obj = {"address": "127.0.0.1", "port": 8443, "use_ssl": True}
            obj.update(fields)
            with open(path, "w") as f:
                json.dump({"backends": [obj]}, f)
            data = os.path.join(self.dir, "data-" + name)
            p = run_binary(["--config", path, "--data-dir", data, "--listen", "127.0.0.1:0", "--admin-listen",
                            "127.0.0.1:0"])
            self.assertEqual(p.returncode, 2, p.stderr)
            lines = p.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, p.stderr)
            self.assertIn("'backends': element 0: %s:" % name, lines[0])
            self.assertFalse(os.path.exists(data), "nothing half-started: no store made")


if __name__ == "__main__":
    import unittest
    unittest.main()

"""
tests/integration/test_tls.py — issue 21, the client side: HTTPS listeners (--tls-listen,
--tls-cert HOST=CERT,KEY), SNI, ALPN (h2 and http/1.1), session tickets, reload on SIGHUP,
X-Forwarded-Proto / Forwarded, cache_key.include_scheme, the admin API over TLS, and the
start-up checks of bad certificates.

Certificates are made fresh per test by tests/integration/certs.py (a test CA, openssl's
command line). Clients: Python's ssl module (peer certificates, sessions, keep-alive),
curl --http2 (h2 over TLS by ALPN) and h2load.
"""

import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading

import harness
from certs import TestCA, self_signed
from harness import request, run_binary, scaled, wait_until

TLS_RE = re.compile(r" tls=(\S+)")
ADMIN_TLS_RE = re.compile(r" admin-tls=\S+:(\d+)")


def cn_of(peercert):
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port that sends `server_name` as SNI (and Host)."""

    def __init__(self, port, server_name, context, timeout):
        super().__init__("127.0.0.1", port, context=context, timeout=timeout)
        self.server_name = server_name

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.server_name)


class TLSTestCase(harness.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="edgecache-tls-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.ca = TestCA(os.path.join(self.tmp, "ca"))

    # --- starting
    def tls_edge(self, certs, backends=(), args=(), start=True):
        """edgecache with one TLS listener; certs: [(host, (cert, key))]."""
        flags = ["--tls-listen", "127.0.0.1:0"]
        for host, (cert, key) in certs:
            flags += ["--tls-cert", "%s=%s,%s" % (host, cert, key)]
        e = self.edgecache(backends, args=flags + list(args), start=start)
        return e

    def tls_port(self, e):
        m = TLS_RE.search(e.stderr_text())
        self.assertIsNotNone(m, e.stderr_tail())
        return int(m.group(1).split(",")[0].rsplit(":", 1)[1])

    # --- clients
    def client_ctx(self, verify=True, max_version=None):
        ctx = ssl.create_default_context(cafile=self.ca.cert)
        ctx.check_hostname = False  # SNI names the tests choose; the chain is still verified
        if not verify:
            ctx.verify_mode = ssl.CERT_NONE
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx

    def handshake(self, port, server_name, ctx=None, session=None):
        """(peer certificate dict, cipher name, protocol, session_reused) of one handshake."""
        ctx = ctx or self.client_ctx()
        with socket.create_connection(("127.0.0.1", port), scaled(5)) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name, session=session) as s:
                return s.getpeercert(), s.cipher()[0], s.version(), s.session_reused

    def https(self, port, path, server_name="a.test", headers=None, method="GET", ctx=None):
        conn = _SNIConnection(port, server_name, ctx or self.client_ctx(), scaled(5))
        headers = dict(headers or {})
        if server_name is not None and not any(k.lower() == "host" for k in headers):
            headers["Host"] = "%s:%d" % (server_name, port)  # as a browser would: the name it asked for
        try:
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            return harness.Response(resp.status, resp.reason, list(resp.getheaders()), resp.read())
        finally:
            conn.close()

    def curl_h2(self, port, path, *extra, name="a.test"):
        """curl --http2 over TLS; returns (http version, status, headers dict, body)."""
        body_path = os.path.join(self.tmp, "curl-body")
        if os.path.exists(body_path):
            os.unlink(body_path)  # curl writes no file for a response without a body
        out = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", self.ca.cert, "--resolve", "%s:%d:127.0.0.1" % (name, port),
             "-D", "-", "-o", body_path, "--max-time", str(scaled(10)), *extra,
             "https://%s:%d%s" % (name, port, path)],
            capture_output=True, text=True, timeout=scaled(20))
        self.assertEqual(out.returncode, 0, out.stderr)
        blocks = [b for b in out.stdout.replace("\r\n", "\n").split("\n\n") if b.strip()]
        lines = blocks[-1].split("\n")
        version, status = lines[0].split()[0], int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if not os.path.exists(body_path):
            return version, status, headers, b""
        with open(body_path, "rb") as f:
            return version, status, headers, f.read()


class SNIAndALPN(TLSTestCase):
    def test_sni_picks_the_certificate_ecdsa_rsa_and_chain(self):
        a = self.ca.issue("a.test")
        b = self.ca.issue("b.test", key="rsa")
        w = self.ca.issue("w.test", names=["*.w.test"], via_intermediate=True)
        e = self.tls_edge([("a.test", a), ("b.test", b), ("*.w.test", w)])
        port = self.tls_port(e)
        cert, cipher, _, _ = self.handshake(port, "a.test")
        self.assertEqual(cn_of(cert), "a.test")
        cert, _, _, _ = self.handshake(port, "B.Test")  # names are case-insensitive
        self.assertEqual(cn_of(cert), "b.test")
        # the client trusts only the root: this verifies only because the intermediate is served
        cert, _, _, _ = self.handshake(port, "x.w.test")
        self.assertEqual(cn_of(cert), "w.test")
        # a wildcard covers one label, no more: a.x.w.test is an unknown name
        cert, _, _, _ = self.handshake(port, "a.x.w.test")
        self.assertEqual(cn_of(cert), "a.test")
        # ECDSA and RSA keys: a TLS 1.2 suite says which one signed
        tls12 = self.client_ctx(max_version=ssl.TLSVersion.TLSv1_2)
        _, cipher, version, _ = self.handshake(port, "a.test", tls12)
        self.assertEqual(version, "TLSv1.2")
        self.assertIn("ECDSA", cipher)
        _, cipher, _, _ = self.handshake(port, "b.test", tls12)
        self.assertIn("RSA", cipher)
        self.assertNotIn("ECDSA", cipher)

    def test_unknown_names_and_no_sni_get_the_default(self):
        a = self.ca.issue("a.test")
        d = self.ca.issue("fallback.test")
        e = self.tls_edge([("a.test", a)])
        port = self.tls_port(e)
        self.assertEqual(cn_of(self.handshake(port, "nobody.test")[0]), "a.test")  # the first one
        self.assertEqual(cn_of(self.handshake(port, None)[0]), "a.test")  # no SNI at all
        e.cleanup()
        e2 = self.tls_edge([("a.test", a), ("default", d)])
        port = self.tls_port(e2)
        self.assertEqual(cn_of(self.handshake(port, "a.test")[0]), "a.test")
        self.assertEqual(cn_of(self.handshake(port, "nobody.test")[0]), "fallback.test")
        self.assertEqual(cn_of(self.handshake(port, None)[0]), "fallback.test")

    def test_tls_versions_below_1_2_are_refused(self):
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))])
        port = self.tls_port(e)
        # a client willing to speak TLS 1.0/1.1 (security level 0) still gets no handshake
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "a.test",
                              "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                             input="", capture_output=True, text=True, timeout=scaled(20))
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertNotIn("Cipher is ECDHE", out.stdout)
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "a.test",
                              "-tls1_3"], input="", capture_output=True, text=True, timeout=scaled(20))
        self.assertIn("TLSv1.3", out.stdout)

    def test_h2_by_alpn_and_a_hit(self):
        o = self.origin()
        o.route("/h", headers={"Cache-Control": "max-age=60"}, body=b"over tls")
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))], backends=[o])
        port = self.tls_port(e)
        self.assertEqual(harness.listening_sockets(port), 1, "the workers share one TLS listening socket")
        version, status, headers, body = self.curl_h2(port, "/h")
        self.assertEqual((version, status, body), ("HTTP/2", 200, b"over tls"))
        self.assertEqual(headers.get("x-cache"), "MISS")
        version, status, headers, body = self.curl_h2(port, "/h")
        self.assertEqual((version, status, body), ("HTTP/2", 200, b"over tls"))
        self.assertEqual(headers.get("x-cache"), "HIT")
        self.assertEqual(o.hits("/h"), 1)
        # HTTP/1.1 still offered
        r = self.https(port, "/h")
        self.assertEqual((r.status, r.x_cache, r.body), (200, "HIT", b"over tls"))
        # h2load negotiates h2 too
        out = subprocess.run(["h2load", "-n", "20", "-c", "2", "-m", "4", "https://127.0.0.1:%d/h" % port],
                             capture_output=True, text=True, timeout=scaled(60))
        self.assertIn("Application protocol: h2", out.stdout, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"20 succeeded")
        self.assertEqual(o.hits("/h"), 2)  # its authority is 127.0.0.1:port, another key: one more fetch, collapsed

    def test_tls_listener_follows_accept_spread(self):
        """The TLS listener is watched as the cleartext one is (--accept-spread, default 50):
        on an idle node, new HTTPS connections (each a full handshake) all go to the first
        worker, and the second does not watch."""
        o = self.origin()
        o.route("/s", headers={"Cache-Control": "max-age=60"}, body=b"spread")
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))], backends=[o], args=["--accept-spread", "50"])
        port = self.tls_port(e)
        tok = harness.create_token(e, "global")

        def workers():
            r = request(e.admin_port, "GET", "/stats", headers={"Fastly-Key": tok})
            self.assertEqual(r.status, 200, r.describe())
            return json.loads(r.body)["workers"]

        wait_until(lambda: workers()[0]["accepting"], what="the first worker watching")
        for _ in range(6):
            r = self.https(port, "/s")
            self.assertEqual((r.status, r.body), (200, b"spread"))
        w = workers()
        self.assertEqual([x["connections_accepted"] for x in w], [6, 0], w)
        self.assertEqual([x["accepting"] for x in w], [True, False], w)

    def test_range_304_purge_and_streaming_over_h2(self):
        o = self.origin()
        o.route("/r", headers={"Cache-Control": "max-age=60", "ETag": '"v1"'}, body=b"0123456789")
        o.route("/big", headers={"Cache-Control": "max-age=60"}, body=b"x" * 300000, chunked=True)
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))], backends=[o])
        port = self.tls_port(e)
        self.assertEqual(self.curl_h2(port, "/r")[1], 200)
        version, status, headers, body = self.curl_h2(port, "/r", "-r", "2-5")
        self.assertEqual((version, status, body), ("HTTP/2", 206, b"2345"))
        self.assertEqual(headers.get("content-range"), "bytes 2-5/10")
        version, status, headers, body = self.curl_h2(port, "/r", "-H", 'If-None-Match: "v1"')
        self.assertEqual((version, status, body), ("HTTP/2", 304, b""))
        self.assertEqual(o.hits("/r"), 1)
        # PURGE from loopback before any token exists, over h2
        version, status, _, _ = self.curl_h2(port, "/r", "-X", "PURGE")
        self.assertEqual((version, status), ("HTTP/2", 200))
        version, status, headers, _ = self.curl_h2(port, "/r")
        self.assertEqual(headers.get("x-cache"), "MISS")
        self.assertEqual(o.hits("/r"), 2)
        # a chunked body streamed through, then served whole from the cache
        version, status, _, body = self.curl_h2(port, "/big")
        self.assertEqual((version, status, len(body)), ("HTTP/2", 200, 300000))
        version, status, headers, body = self.curl_h2(port, "/big")
        self.assertEqual((headers.get("x-cache"), len(body)), ("HIT", 300000))

    def test_collapsing_over_h2(self):
        o = self.origin()
        hold = o.hold()
        o.route("/c", headers={"Cache-Control": "max-age=60"}, body=b"collapsed", hold=hold)
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))], backends=[o])
        port = self.tls_port(e)
        # five concurrent streams on one h2 connection for one URL: one origin fetch
        proc = subprocess.Popen(["h2load", "-n", "5", "-c", "1", "-m", "5", "https://127.0.0.1:%d/c" % port],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: o.hits("/c") >= 1, timeout=scaled(10), what="the fetch reached the origin")
            hold.release()
            out, _ = proc.communicate(timeout=scaled(60))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertIn("5 succeeded", out)
        self.assertEqual(o.hits("/c"), 1)


class HostileClients(TLSTestCase):
    def closed_by_server(self, sock, deadline):
        sock.settimeout(deadline)
        try:
            while sock.recv(4096):
                pass
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def test_garbage_silence_and_cut_handshakes_end_the_connection_not_the_server(self):
        o = self.origin()
        o.route("/ok", headers={"Cache-Control": "max-age=60"}, body=b"ok")
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))], backends=[o])
        port = self.tls_port(e)
        socks = []
        for payload in (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",            # cleartext on the TLS port
                        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 20,  # a ClientHello cut short
                        b"\x16\x03\x01\x00\x05\xff\xff\xff\xff\xff",  # a record that is no ClientHello
                        b""):                                               # nothing at all
            s = socket.create_connection(("127.0.0.1", port), scaled(5))
            socks.append(s)
            s.sendall(payload)
        try:
            # h2o's handshake timeout (10 s) closes the silent and the cut ones; the others at once
            for s in socks:
                self.assertTrue(self.closed_by_server(s, scaled(30)), "a connection was left open")
        finally:
            for s in socks:
                s.close()
        self.assertEqual(self.https(port, "/ok").body, b"ok")
        self.assertTrue(e.running)


    def test_two_host_lines_over_tls_are_400(self):
        """The Host lines are counted in the decrypted head too (test_request_safety: the cleartext cases)."""
        o = self.origin()
        o.route("/h", headers={"Cache-Control": "max-age=60"}, body=b"h")
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))], backends=[o])
        port = self.tls_port(e)
        ctx = self.client_ctx()
        ctx.set_alpn_protocols(["http/1.1"])
        with socket.create_connection(("127.0.0.1", port), scaled(5)) as sock:
            with ctx.wrap_socket(sock, server_hostname="a.test") as s:
                s.sendall(b"GET /h HTTP/1.1\r\nHost: a.test\r\n\r\n"
                          b"GET /h HTTP/1.1\r\nHost: a.test\r\nHost: evil.test\r\nConnection: close\r\n\r\n")
                reader = harness.Reader(s)
                first, second = harness.read_raw_response(reader), harness.read_raw_response(reader)
        self.assertEqual((first.status, first.body), (200, b"h"), first.describe())
        self.assertEqual(second.status, 400, second.describe())
        self.assertEqual(o.hits("/h"), 1)


class Resumption(TLSTestCase):
    @staticmethod
    def exchange(port, ctx, session=None):
        """One request on a connection of its own, read to the close: (the session it ends with,
        whether it resumed `session`). TLS 1.3 tickets come after the handshake: the exchange
        makes sure they are read."""
        with socket.create_connection(("127.0.0.1", port), scaled(5)) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test", session=session) as s:
                s.sendall(b"GET /nothing HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                while s.recv(65536):
                    pass
                return s.session, s.session_reused

    def test_session_tickets_resume_tls13_and_tls12(self):
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))], backends=[self.origin()])
        port = self.tls_port(e)
        for max_version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = self.client_ctx(max_version=max_version)
            session, _ = self.exchange(port, ctx)
            self.assertIsNotNone(session)
            self.assertTrue(session.has_ticket, max_version)
            _, _, _, reused = self.handshake(port, "a.test", ctx, session=session)
            self.assertTrue(reused, "no resumption with %s" % max_version)

    def test_each_tls13_resumption_hands_out_the_next_ticket(self):
        """A client that uses each TLS 1.3 ticket once (RFC 8446 C.4; browsers do) keeps resuming:
        every resumed connection brings the next ticket, not only the full handshake's two."""
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))], backends=[self.origin()])
        port = self.tls_port(e)
        ctx = self.client_ctx(max_version=ssl.TLSVersion.TLSv1_3)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        session = None
        for i in range(5):
            ended, reused = self.exchange(port, ctx, session)
            self.assertEqual(reused, i > 0, "connection %d" % i)
            if session is not None:
                self.assertNotEqual(ended.id, session.id, "connection %d brought no new ticket" % i)
            session = ended

    def test_openssl_s_client_reuses_a_session(self):
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))])
        port = self.tls_port(e)
        sess = os.path.join(self.tmp, "sess.pem")
        base = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "a.test", "-tls1_2"]
        subprocess.run(base + ["-sess_out", sess], input="", capture_output=True, text=True, timeout=scaled(20))
        out = subprocess.run(base + ["-sess_in", sess], input="", capture_output=True, text=True, timeout=scaled(20))
        self.assertIn("Reused, TLSv1.2", out.stdout)


class Reload(TLSTestCase):
    def test_sighup_swaps_the_certificate_and_keeps_connections(self):
        o = self.origin()
        o.route("/k", headers={"Cache-Control": "max-age=60"}, body=b"kept")
        first = self.ca.issue("a.test")
        cert, key = os.path.join(self.tmp, "live.crt"), os.path.join(self.tmp, "live.key")
        shutil.copy(first[0], cert)
        shutil.copy(first[1], key)
        e = self.tls_edge([("a.test", (cert, key))], backends=[o])
        port = self.tls_port(e)
        old_serial = self.handshake(port, "a.test")[0]["serialNumber"]

        kept = _SNIConnection(port, "a.test", self.client_ctx(), scaled(5))
        self.addCleanup(kept.close)
        kept.request("GET", "/k")
        self.assertEqual(kept.getresponse().read(), b"kept")

        second = self.ca.issue("a.test")
        shutil.copy(second[0], cert)
        shutil.copy(second[1], key)
        os.kill(e.pid, signal.SIGHUP)
        wait_until(lambda: "certificate reloaded" in e.stderr_text(), timeout=scaled(10), what="the reload")
        new_serial = self.handshake(port, "a.test")[0]["serialNumber"]
        self.assertNotEqual(new_serial, old_serial)
        # the connection made before the reload still serves, on the same socket
        sock_before = kept.sock
        kept.request("GET", "/k")
        resp = kept.getresponse()
        self.assertEqual((resp.status, resp.read()), (200, b"kept"))
        self.assertIs(kept.sock, sock_before)

        # a bad certificate on reload: refused, named, and the last good one keeps serving
        with open(cert, "w") as f:
            f.write("this is not a certificate\n")
        os.kill(e.pid, signal.SIGHUP)
        wait_until(lambda: "not reloaded" in e.stderr_text(), timeout=scaled(10), what="the refused reload")
        line = [l for l in e.stderr_text().splitlines() if "not reloaded" in l][0]
        self.assertIn("--tls-cert a.test", line)
        self.assertIn("not a PEM certificate", line)
        self.assertEqual(self.handshake(port, "a.test")[0]["serialNumber"], new_serial)
        kept.request("GET", "/k")
        self.assertEqual(kept.getresponse().read(), b"kept")
        # a key that does not match is refused the same way
        shutil.copy(second[0], cert)
        shutil.copy(first[1], key)
        os.kill(e.pid, signal.SIGHUP)
        wait_until(lambda: "key does not match" in e.stderr_text(), timeout=scaled(10), what="the refused reload")
        self.assertEqual(self.handshake(port, "a.test")[0]["serialNumber"], new_serial)


    def test_reloads_during_handshakes_on_every_thread(self):
        # handshakes from several client threads (so on both worker threads) while the certificate
        # set is swapped again and again: none fails, and each sees one of the two certificates
        first, second = self.ca.issue("a.test"), self.ca.issue("a.test")
        cert, key = os.path.join(self.tmp, "live.crt"), os.path.join(self.tmp, "live.key")
        shutil.copy(first[0], cert)
        shutil.copy(first[1], key)
        e = self.tls_edge([("a.test", (cert, key)), ("default", self.ca.issue("b.test"))])
        port = self.tls_port(e)
        serials = {self.handshake(port, "a.test")[0]["serialNumber"]}
        stop, failures, seen = threading.Event(), [], set()

        def client():
            ctx = self.client_ctx()
            while not stop.is_set():
                try:
                    seen.add(cn_of(self.handshake(port, "a.test", ctx)[0]))
                except (OSError, ssl.SSLError) as exc:
                    failures.append(repr(exc))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(6):
                src = second if i % 2 == 0 else first
                shutil.copy(src[0], cert)
                shutil.copy(src[1], key)
                os.kill(e.pid, signal.SIGHUP)
                wait_until(lambda: e.stderr_text().count("certificates reloaded") >= i + 1, timeout=scaled(10),
                           what="reload %d" % (i + 1))
                serials.add(self.handshake(port, "a.test")[0]["serialNumber"])
        finally:
            stop.set()
            for t in threads:
                t.join(scaled(30))
        self.assertEqual(failures, [])
        self.assertEqual(seen, {"a.test"})
        self.assertEqual(len(serials), 2)


class BadInput(TLSTestCase):
    def start_fails(self, args):
        data_dir = os.path.join(self.tmp, "never-created")
        out = run_binary(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir", data_dir] + args)
        self.assertEqual(out.returncode, 2, out.stderr)
        lines = out.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, out.stderr)
        self.assertFalse(os.path.exists(data_dir), "the store was created before the check")
        return lines[0]

    def test_bad_certificates_at_start(self):
        a_cert, a_key = self.ca.issue("a.test")
        b_cert, b_key = self.ca.issue("b.test")
        junk = os.path.join(self.tmp, "junk.pem")
        with open(junk, "w") as f:
            f.write("hello\n")
        missing = os.path.join(self.tmp, "missing.pem")
        listen = ["--tls-listen", "127.0.0.1:0"]
        line = self.start_fails(listen + ["--tls-cert", "a.test=%s,%s" % (junk, a_key)])
        self.assertIn("--tls-cert a.test", line)
        self.assertIn("not a PEM certificate", line)
        line = self.start_fails(listen + ["--tls-cert", "a.test=%s,%s" % (a_cert, junk)])
        self.assertIn("not a PEM private key", line)
        line = self.start_fails(listen + ["--tls-cert", "a.test=%s,%s" % (a_cert, b_key)])
        self.assertIn("key does not match the certificate", line)
        line = self.start_fails(listen + ["--tls-cert", "a.test=%s,%s" % (missing, a_key)])
        self.assertIn("No such file or directory", line)
        self.assertIn("--tls-cert", line)
        line = self.start_fails(listen + ["--tls-cert", "a.test=%s,%s" % (a_cert, a_key),
                                          "--tls-cert", "A.test=%s,%s" % (b_cert, b_key)])
        self.assertIn("name 'a.test' is listed twice", line)
        line = self.start_fails(listen + ["--tls-cert", "default=%s,%s" % (a_cert, a_key),
                                          "--tls-cert", "*=%s,%s" % (b_cert, b_key)])
        self.assertIn("listed twice", line)
        line = self.start_fails(listen)
        self.assertTrue(line.startswith("edgecache: --tls-listen: no certificate"), line)
        line = self.start_fails(listen + ["--tls-cert", "%s,%s" % (a_cert, a_key)])
        self.assertIn("--tls-cert: expected HOST=CERT.pem,KEY.pem", line)
        line = self.start_fails(listen + ["--tls-cert", "bad_name!=%s,%s" % (a_cert, a_key)])
        self.assertIn("invalid host name", line)
        line = self.start_fails(["--admin-tls-listen", "127.0.0.1:0"])
        self.assertIn("--admin-tls-listen: no certificate", line)
        line = self.start_fails(["--admin-tls-listen", "127.0.0.1:0", "--admin-tls-cert", "%s,%s" % (a_cert, b_key)])
        self.assertIn("--admin-tls-cert", line)
        self.assertIn("key does not match", line)

    def test_a_certificate_without_its_listener_is_refused(self):
        """--tls-cert without --tls-listen served nothing and said nothing: an operator who forgot
        the listener found out from a refused connection. The admin listener has a certificate of
        its own (--admin-tls-cert), so --tls-cert never serves it either."""
        cert = self.ca.issue("a.test")
        line = self.start_fails(["--tls-cert", "a.test=%s,%s" % cert])
        self.assertTrue(line.startswith("edgecache: --tls-cert: no --tls-listen"), line)
        line = self.start_fails(["--admin-tls-listen", "127.0.0.1:0", "--admin-tls-cert", "%s,%s" % cert,
                                 "--tls-cert", "a.test=%s,%s" % cert])
        self.assertTrue(line.startswith("edgecache: --tls-cert: no --tls-listen"), line)
        self.assertIn("--admin-tls-cert", line)  # says which certificate the admin listener takes
        line = self.start_fails(["--admin-tls-cert", "%s,%s" % cert])
        self.assertTrue(line.startswith("edgecache: --admin-tls-cert: no --admin-tls-listen"), line)
        conf = os.path.join(self.tmp, "certs-only.json")
        with open(conf, "w") as f:
            json.dump({"tls_certs": ["a.test=%s,%s" % cert]}, f)
        line = self.start_fails(["--config", conf])
        self.assertIn("--tls-cert: no --tls-listen", line)

    def test_admin_tls_listen_bind_failure_names_its_flag(self):
        cert = self.ca.issue("admin.test")
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            out = run_binary(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir",
                              os.path.join(self.tmp, "data"), "--admin-tls-listen", "127.0.0.1:%d" % port,
                              "--admin-tls-cert", "%s,%s" % cert])
        self.assertNotEqual(out.returncode, 0, out.stderr)
        lines = [ln for ln in out.stderr.splitlines() if "in use" in ln]
        self.assertEqual(len(lines), 1, out.stderr)
        self.assertTrue(lines[0].startswith("edgecache: --admin-tls-listen 127.0.0.1:%d: " % port), lines[0])
        self.assertNotIn("--admin-listen", lines[0])

    def test_config_file_lists(self):
        a = self.ca.issue("a.test")
        b = self.ca.issue("b.test", key="rsa")
        conf = os.path.join(self.tmp, "edgecache.json")
        with open(conf, "w") as f:
            json.dump({"tls_listen": ["127.0.0.1:0"],
                       "tls_certs": ["a.test=%s,%s" % a, {"host": "b.test", "cert": b[0], "key": b[1]}]}, f)
        e = self.edgecache(args=["--config", conf])
        port = self.tls_port(e)
        self.assertEqual(cn_of(self.handshake(port, "b.test")[0]), "b.test")
        self.assertEqual(cn_of(self.handshake(port, "zzz.test")[0]), "a.test")
        with open(conf, "w") as f:
            json.dump({"tls_listen": "127.0.0.1:0", "tls_certs": [{"host": "b.test", "cert": b[0]}]}, f)
        out = run_binary(["--config", conf, "--data-dir", os.path.join(self.tmp, "d2")])
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("key 'tls_certs': element 0", out.stderr)


class OriginHeaders(TLSTestCase):
    def test_forwarded_proto_set_and_client_values_replaced(self):
        o = self.origin()
        o.route_prefix("/f", headers={"Cache-Control": "no-store"}, body=b"f")
        e = self.tls_edge([("a.test", self.ca.issue("a.test"))], backends=[o])
        port = self.tls_port(e)
        spoof = {"X-Forwarded-Proto": "http", "Forwarded": "for=6.6.6.6;proto=http"}
        r = self.https(port, "/f1", headers=spoof)
        self.assertEqual(r.status, 200)
        got = o.requests_for("/f1")[-1].headers
        self.assertEqual(got.get("x-forwarded-proto"), "https")
        self.assertEqual(got.get("forwarded"), 'proto=https;host="a.test:%d";for=127.0.0.1' % port)
        r = request(e.proxy_port, "GET", "/f2", headers=dict(spoof, Host="plain.test"))
        self.assertEqual(r.status, 200)
        got = o.requests_for("/f2")[-1].headers
        self.assertEqual(got.get("x-forwarded-proto"), "http")
        self.assertEqual(got.get("forwarded"), 'proto=http;host="plain.test";for=127.0.0.1')
        # h2: the :scheme a client claims does not count, the connection does
        self.curl_h2(port, "/f3")
        self.assertEqual(o.requests_for("/f3")[-1].headers.get("x-forwarded-proto"), "https")


class IncludeScheme(TLSTestCase):
    def edge_with(self, o, include_scheme):
        conf = os.path.join(self.tmp, "scheme-%d.json" % include_scheme)
        with open(conf, "w") as f:
            json.dump({"cache_key": {"include_scheme": include_scheme}}, f)
        return self.tls_edge([("a.test", self.ca.issue("a.test"))], backends=[o], args=["--config", conf])

    def test_include_scheme_keeps_http_and_https_apart(self):
        o = self.origin()
        o.route("/s", headers={"Cache-Control": "max-age=60"}, body=b"s")
        e = self.edge_with(o, True)
        port = self.tls_port(e)
        host = {"Host": "a.test"}
        self.assertEqual(request(e.proxy_port, "GET", "/s", headers=host).x_cache, "MISS")
        self.assertEqual(self.https(port, "/s", headers=host).x_cache, "MISS")
        self.assertEqual(o.hits("/s"), 2)
        self.assertEqual(self.https(port, "/s", headers=host).x_cache, "HIT")
        self.assertEqual(request(e.proxy_port, "GET", "/s", headers=host).x_cache, "HIT")
        # a PURGE names the URL: both objects go, whichever scheme it came over
        self.assertEqual(request(e.proxy_port, "PURGE", "/s", headers=host).status, 200)
        self.assertEqual(self.https(port, "/s", headers=host).x_cache, "MISS")
        self.assertEqual(request(e.proxy_port, "GET", "/s", headers=host).x_cache, "MISS")

    def test_without_include_scheme_both_share_one_object(self):
        o = self.origin()
        o.route("/s", headers={"Cache-Control": "max-age=60"}, body=b"s")
        e = self.edge_with(o, False)
        port = self.tls_port(e)
        host = {"Host": "a.test"}
        self.assertEqual(request(e.proxy_port, "GET", "/s", headers=host).x_cache, "MISS")
        self.assertEqual(self.https(port, "/s", headers=host).x_cache, "HIT")
        self.assertEqual(o.hits("/s"), 1)


class AdminOverTLS(TLSTestCase):
    def test_admin_api_over_tls_and_cleartext(self):
        cert = self.ca.issue("admin.test")
        e = self.edgecache(args=["--admin-tls-listen", "127.0.0.1:0", "--admin-tls-cert", "%s,%s" % cert])
        m = ADMIN_TLS_RE.search(e.stderr_text())
        self.assertIsNotNone(m, e.stderr_tail())
        port = int(m.group(1))
        peer = self.handshake(port, "admin.test")[0]
        self.assertEqual(cn_of(peer), "admin.test")
        r = self.https(port, "/health", server_name="admin.test")
        self.assertEqual(r.status, 200)
        r = self.https(port, "/stats", server_name="admin.test")
        self.assertEqual(r.status, 401)  # the same API: tokens still needed
        self.assertEqual(request(e.admin_port, "GET", "/health").status, 200)
        out = subprocess.run(["curl", "-sS", "--http2", "--cacert", self.ca.cert, "--resolve",
                              "admin.test:%d:127.0.0.1" % port, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                              "https://admin.test:%d/health" % port], capture_output=True, text=True,
                             timeout=scaled(20))
        # HTTP/1.1 even when h2 is offered: over h2 one connection without a token could make
        # the admin hold 100 request bodies at once (admin-api/admin.c)
        self.assertEqual(out.stdout, "1.1 200", out.stderr)

    def test_sighup_reloads_the_admin_certificate(self):
        first = self.ca.issue("admin.test")
        cert, key = os.path.join(self.tmp, "admin.crt"), os.path.join(self.tmp, "admin.key")
        shutil.copy(first[0], cert)
        shutil.copy(first[1], key)
        e = self.edgecache(args=["--admin-tls-listen", "127.0.0.1:0", "--admin-tls-cert", "%s,%s" % (cert, key)])
        port = int(ADMIN_TLS_RE.search(e.stderr_text()).group(1))
        old = self.handshake(port, "admin.test")[0]["serialNumber"]
        second = self.ca.issue("admin.test")
        shutil.copy(second[0], cert)
        shutil.copy(second[1], key)
        os.kill(e.pid, signal.SIGHUP)
        wait_until(lambda: "1 certificate reloaded" in e.stderr_text(), timeout=scaled(10), what="the reload")
        self.assertNotEqual(self.handshake(port, "admin.test")[0]["serialNumber"], old)
        self.assertEqual(self.https(port, "/health", server_name="admin.test").status, 200)


class OCSPStapling(TLSTestCase):
    def start_responder(self, port, leaf_cert, cn):
        """`openssl ocsp` on 127.0.0.1:port answering for leaf_cert (good), signed by its issuer."""
        icert, ikey = self.ca.intermediate()

        def field(opt):
            out = subprocess.run(["openssl", "x509", opt, "-noout", "-in", leaf_cert], capture_output=True, text=True,
                                 check=True)
            return out.stdout.strip().split("=", 1)[1]

        end = datetime.datetime.strptime(field("-enddate"), "%b %d %H:%M:%S %Y %Z").strftime("%y%m%d%H%M%SZ")
        index = os.path.join(self.tmp, "ocsp-index.txt")
        with open(index, "w") as f:
            f.write("V\t%s\t\t%s\tunknown\t/CN=%s\n" % (end, field("-serial"), cn))
        log = os.path.join(self.tmp, "ocsp.log")
        with open(log, "wb") as out:
            proc = subprocess.Popen(["openssl", "ocsp", "-index", index, "-port", str(port), "-rsigner", icert,
                                     "-rkey", ikey, "-CA", icert, "-ndays", "1"],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

        def stop():
            proc.kill()
            proc.wait()

        self.addCleanup(stop)

        def accepts():
            # its own words, not a probe connection: it answers one connection at a time
            with open(log, errors="replace") as f:
                return "waiting for OCSP client connections" in f.read()

        wait_until(accepts, timeout=scaled(10), what="the OCSP responder")
        return proc

    def s_client_status(self, port, name):
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", name, "-status",
                              "-CAfile", self.ca.cert], input="", capture_output=True, text=True, timeout=scaled(20))
        return out.stdout

    def test_ocsp_response_is_stapled(self):
        port = harness.free_port()
        stapled = self.ca.issue("d.test", via_intermediate=True, ocsp_url="http://127.0.0.1:%d" % port)
        plain = self.ca.issue("a.test")
        self.start_responder(port, stapled[0], "d.test")
        e = self.tls_edge([("a.test", plain), ("d.test", stapled)])
        tls_port = self.tls_port(e)
        seen = {}

        def stapled_now():
            seen["out"] = self.s_client_status(tls_port, "d.test")
            return "OCSP Response Status: successful" in seen["out"]

        wait_until(stapled_now, timeout=scaled(30), interval=0.2, what="a stapled OCSP response")
        self.assertIn("Cert Status: good", seen["out"])
        # a certificate that names no responder gets no staple
        self.assertIn("OCSP response: no response sent", self.s_client_status(tls_port, "a.test"))

    def test_a_responder_that_is_down_costs_no_handshake(self):
        dead = harness.closed_port()
        cert = self.ca.issue("d.test", via_intermediate=True, ocsp_url="http://127.0.0.1:%d/" % dead)
        e = self.tls_edge([("d.test", cert)])
        port = self.tls_port(e)
        wait_until(lambda: "OCSP: http://127.0.0.1:%d/: cannot connect: Connection refused; asking again" % dead
                   in e.stderr_text(), timeout=scaled(30), what="the failed fetch's log line")
        out = self.s_client_status(port, "d.test")
        self.assertIn("OCSP response: no response sent", out)
        self.assertIn("Verify return code: 0 (ok)", out)


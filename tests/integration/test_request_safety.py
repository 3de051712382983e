"""
tests/integration/test_request_safety.py — issue 19, the request side: what a client may put
in Host, the request target and its header lines, and what it must not achieve with them
(replace another URL's object, poison a Vary variant, smuggle per-hop fields past the proxy).

Every test runs the real binary against a scripted origin that records what it received.
Raw requests (several Host lines, absolute-form targets, HTTP/1.0) go over a plain socket.
"""

import json
import shutil
import socket
import subprocess
import unittest

import harness
from harness import Reader, read_raw_response, request, scaled

LONG = {"Cache-Control": "max-age=300", "Content-Type": "text/plain"}
HOST = {"Host": "www.example.test"}  # the default Host names the proxy's port, which a restart changes


def raw(port, data, timeout=5):
    """Send raw request bytes on a fresh connection; return the parsed response."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout)) as s:
        s.sendall(data)
        return read_raw_response(Reader(s))


def echo(req):
    """An origin handler that answers with what it got: path and Host."""
    body = ("path=%s host=%s" % (req.path, req.headers.get("host", "<none>"))).encode()
    return 200, LONG, body


class RequestCase(harness.TestCase):
    def token(self, edge, scope="global"):
        return harness.create_token(edge, scope)


class HostPoisoning(RequestCase):
    """Item 1: the key was host+path glued together, and Host could hold a '/'."""

    def test_host_with_a_path_cannot_replace_another_object(self):
        o = self.origin()
        o.route("/assets/v2/app.js", headers=LONG, body=b"the real app.js")
        o.route("/app.js", headers=LONG, body=b"attacker's app.js")
        e = self.edgecache([o])
        # the attack from the issue, before anyone asked for the real object
        r = request(e.proxy_port, "GET", "/app.js", headers={"Host": "www.example.com/assets/v2"})
        self.assertEqual(r.status, 400, r.describe())
        self.assertEqual(o.hits("/app.js"), 0, "a refused request never reaches the origin")
        r = request(e.proxy_port, "GET", "/assets/v2/app.js", headers={"Host": "www.example.com"})
        self.assertEqual((r.status, r.body), (200, b"the real app.js"), r.describe())
        self.assertXCache(r, "MISS")
        # and once more after the real object is cached: it stays
        r = request(e.proxy_port, "GET", "/app.js", headers={"Host": "www.example.com/assets/v2"})
        self.assertEqual(r.status, 400, r.describe())
        r = request(e.proxy_port, "GET", "/assets/v2/app.js", headers={"Host": "www.example.com"})
        self.assertEqual((r.status, r.body), (200, b"the real app.js"), r.describe())
        self.assertXCache(r, "HIT")
        self.assertEqual(o.hits("/assets/v2/app.js"), 1)

    def test_hosts_refused_and_accepted(self):
        o = self.origin()
        o.route_prefix("/", handler=echo)
        e = self.edgecache([o])
        bad = [b"a/b", b"a?b", b"a#b", b"user@a", b"a b", b"", b":80", b"a:8o", b"a:123456", b"a:65536", b"[::1",
               b"[::1]x", b"[zz::1]", b"[::1%25eth0]", b"a\\b", b"a\"b", b"a%2", b"a%zz", b"\xc3\xa9.example",
               b"a:b:c", b"a\x7f"]
        for host in bad:
            with self.subTest(host=host):
                r = raw(e.proxy_port, b"GET /h HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
                self.assertEqual(r.status, 400, r.describe())
        self.assertEqual(o.hits(), 0, "no refused request reached the origin")
        good = [b"example.com", b"EXAMPLE.com:8080", b"127.0.0.1", b"[::1]:8080", b"[2001:db8::1]", b"a-b_c~d.example",
                b"a!$&'()*+,;=b", b"xn--bcher-kva.example", b"a%41b", b"a:"]
        for host in good:
            with self.subTest(host=host):
                r = raw(e.proxy_port, b"GET /h HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
                self.assertEqual(r.status, 200, r.describe())
                self.assertEqual(r.body, b"path=/h host=" + host, "the origin gets the Host as the client sent it")

    def test_host_case_and_default_port_share_an_object(self):
        o = self.origin()
        o.route_prefix("/", handler=echo)
        e = self.edgecache([o])
        self.assertXCache(request(e.proxy_port, "GET", "/c", headers={"Host": "Shop.Example"}), "MISS")
        self.assertXCache(request(e.proxy_port, "GET", "/c", headers={"Host": "shop.example:80"}), "HIT")
        self.assertXCache(request(e.proxy_port, "GET", "/c", headers={"Host": "shop.example:8080"}), "MISS")
        self.assertXCache(request(e.proxy_port, "GET", "/c", headers={"Host": "other.example"}), "MISS")

    def test_more_than_one_host_line_is_400(self):
        """RFC 9112 3.2: a front end that reads the first Host and a cache that keys on the last (all h2o 2.2.5
        shows) would take one request for two sites'. Counted in the raw head, so case, keep-alive and a
        body do not hide one, and a body that holds Host lines is no reason to refuse."""
        o = self.origin()
        o.route_prefix("/", handler=echo)
        e = self.edgecache([o])
        for heads in ([b"Host: a.example", b"Host: b.example"], [b"Host: a.example", b"Host: a.example"],
                      [b"host: a.example", b"X-A: 1", b"HOST: evil.example"]):
            with self.subTest(heads=heads):
                r = raw(e.proxy_port, b"GET /two HTTP/1.1\r\n" + b"\r\n".join(heads) + b"\r\nConnection: close\r\n\r\n")
                self.assertEqual(r.status, 400, r.describe())
                self.assertIn(b"more than one Host", r.body)
        r = raw(e.proxy_port, b"POST /two HTTP/1.1\r\nHost: a.example\r\nContent-Length: 4\r\nHost: b.example\r\n"
                b"Connection: close\r\n\r\nabcd")
        self.assertEqual(r.status, 400, r.describe())
        self.assertEqual(o.hits(), 0, "a request with two Host lines reached the origin")
        for host in (b"a.example", b"b.example", b"evil.example"):  # nothing was cached under either name
            r = raw(e.proxy_port, b"GET /two HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
            self.assertEqual((r.status, r.body), (200, b"path=/two host=" + host), r.describe())
            self.assertXCache(r, "MISS")

        # keep-alive and pipelined: the second request's lines are counted, not the first's
        with socket.create_connection(("127.0.0.1", e.proxy_port), timeout=scaled(5)) as s:
            s.sendall(b"GET /k1 HTTP/1.1\r\nHost: a.example\r\n\r\n"
                      b"GET /k2 HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"
                      b"GET /k3 HTTP/1.1\r\nHost: a.example\r\n\r\n")
            reader = Reader(s)
            first, second = read_raw_response(reader), read_raw_response(reader)
            self.assertEqual((first.status, first.body), (200, b"path=/k1 host=a.example"), first.describe())
            self.assertEqual(second.status, 400, second.describe())
            self.assertEqual(s.recv(1), b"", "the connection stays open after a 400 for two Host lines")
        self.assertEqual(o.hits("/k2") + o.hits("/k3"), 0)
        # a body may hold anything, Host lines included
        body = b"Host: b.example\r\nHost: c.example\r\n\r\n"
        r = raw(e.proxy_port, b"POST /body HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % len(body) + body)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(o.hits("/body"), 1)

    def test_missing_host(self):
        o = self.origin()
        o.route_prefix("/", handler=echo)
        e = self.edgecache([o])
        r = raw(e.proxy_port, b"GET /m HTTP/1.1\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.status, 400, "HTTP/1.1 without Host (RFC 9112 3.2)\n" + r.describe())
        self.assertEqual(o.hits(), 0)
        # HTTP/1.0 may leave Host out: the origin gets an empty one, not h2o's "default"
        r = raw(e.proxy_port, b"GET /m HTTP/1.0\r\n\r\n")
        self.assertEqual((r.status, r.body), (200, b"path=/m host="), r.describe())
        # ... and a client that says "Host: default" is not that request
        r = raw(e.proxy_port, b"GET /m HTTP/1.1\r\nHost: default\r\nConnection: close\r\n\r\n")
        self.assertEqual((r.status, r.body), (200, b"path=/m host=default"), r.describe())
        self.assertEqual(r.header("x-cache"), "MISS")
        self.assertEqual(o.hits("/m"), 2)

    def test_absolute_form_authority_wins_for_key_and_origin(self):
        o = self.origin()
        o.route_prefix("/", handler=echo)
        e = self.edgecache([o])
        r = raw(e.proxy_port, b"GET http://A.example/p?q=1 HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
        self.assertEqual((r.status, r.body), (200, b"path=/p?q=1 host=A.example"), r.describe())
        self.assertXCache(r, "MISS")
        self.assertXCache(request(e.proxy_port, "GET", "/p?q=1", headers={"Host": "a.example"}), "HIT")
        r = request(e.proxy_port, "GET", "/p?q=1", headers={"Host": "b.example"})
        self.assertXCache(r, "MISS")
        self.assertEqual(r.body, b"path=/p?q=1 host=b.example")
        # a target without a path names "/"
        r = raw(e.proxy_port, b"GET https://c.example:8443 HTTP/1.1\r\nHost: c.example\r\nConnection: close\r\n\r\n")
        self.assertEqual((r.status, r.body), (200, b"path=/ host=c.example:8443"), r.describe())
        # the target's authority is checked like Host; Host is still checked (RFC 9112 3.2)
        for target, host in [(b"http://a.example/x/../app.js@evil", b"a.example"),
                             (b"http://user@a.example/x", b"a.example"), (b"http:///x", b"a.example"),
                             (b"http://a.example/x", b"a/b"), (b"ftp://a.example/x", b"a.example"),
                             (b"x/y", b"a.example"), (b"*", b"a.example")]:
            with self.subTest(target=target, host=host):
                r = raw(e.proxy_port, b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
                if target.startswith(b"http://a.example/x/"):
                    self.assertEqual(r.status, 200, "an '@' in the path is the path's business\n" + r.describe())
                else:
                    self.assertEqual(r.status, 400, r.describe())

    def test_purge_host_validated_and_same_key_as_admin(self):
        o = self.origin()
        o.route_prefix("/", handler=echo)
        e = self.edgecache([o])
        tok = self.token(e)
        hdr = {"Host": "www.example.com", "Fastly-Key": tok}
        self.assertXCache(request(e.proxy_port, "GET", "/assets/v2/app.js", headers=hdr), "MISS")
        # a PURGE whose Host smuggles a path is refused: nothing is purged
        r = request(e.proxy_port, "PURGE", "/app.js", headers={"Host": "www.example.com/assets/v2", "Fastly-Key": tok})
        self.assertEqual(r.status, 400, r.describe())
        self.assertXCache(request(e.proxy_port, "GET", "/assets/v2/app.js", headers=hdr), "HIT")
        # PURGE on the proxy and the admin API's URL purge name the objects the proxy keyed
        for path, host, admin_target in [("/k?b=1", "Shop.Example:80", "shop.example/k?b=1"),
                                         ("/k2", "shop.example", "http://SHOP.example:80/k2"),
                                         ("/k3", "[::1]:8080", "[::1]:8080/k3")]:
            with self.subTest(path=path, host=host):
                self.assertXCache(request(e.proxy_port, "GET", path, headers={"Host": host}), "MISS")
                self.assertXCache(request(e.proxy_port, "GET", path, headers={"Host": host}), "HIT")
                r = request(e.admin_port, "POST", "/purge/" + admin_target, headers={"Fastly-Key": tok})
                self.assertEqual(r.status, 200, r.describe())
                self.assertXCache(request(e.proxy_port, "GET", path, headers={"Host": host}), "MISS")
                r = request(e.proxy_port, "PURGE", path, headers={"Host": host, "Fastly-Key": tok})
                self.assertEqual(r.status, 200, r.describe())
                self.assertXCache(request(e.proxy_port, "GET", path, headers={"Host": host}), "MISS")
        # the admin API refuses a host the proxy would refuse
        r = request(e.admin_port, "POST", "/purge/user@www.example.com/x", headers={"Fastly-Key": tok})
        self.assertEqual(r.status, 400, r.describe())


def curl_has_http2():
    if shutil.which("curl") is None:
        return False
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    return "HTTP2" in out


@unittest.skipUnless(curl_has_http2(), "needs curl with HTTP/2 (h2c prior knowledge)")
class Http2(RequestCase):
    """The same rules over HTTP/2, where Host is :authority and cookies come in crumbs."""

    def curl(self, edge, path, *headers, extra=()):
        args = ["curl", "-s", "-i", "--http2-prior-knowledge", "--max-time", str(scaled(5))] + list(extra)
        for h in headers:
            args += ["-H", h]
        out = subprocess.run(args + ["http://127.0.0.1:%d%s" % (edge.proxy_port, path)], capture_output=True,
                             timeout=scaled(10)).stdout.decode("latin-1")
        head, _, body = out.partition("\r\n\r\n")
        return head.split("\r\n")[0], body

    def test_authority_checked_and_crumbs_joined(self):
        o = self.origin()
        o.route_prefix("/", handler=lambda req: (200, LONG, ("host=%s cookie=%s" % (
            req.headers.get("host"), [v for n, v in req.header_list if n.lower() == "cookie"])).encode()))
        e = self.edgecache([o])
        status, body = self.curl(e, "/x", "Host: www.example.com/assets/v2")
        self.assertEqual(status.split()[:2], ["HTTP/2", "400"], body)
        status, body = self.curl(e, "/x", "Host: Good.Example", "Cookie: a=1", "Cookie: b=2")
        self.assertEqual(status.split()[:2], ["HTTP/2", "200"], body)
        self.assertEqual(body, "host=Good.Example cookie=['a=1; b=2']", "crumbs joined with '; ' (RFC 9113 8.2.3)")
        self.assertEqual(o.hits(), 1)


    def test_a_method_or_target_with_spaces_is_refused(self):
        # h2o 2.2.5 takes :method and :path with spaces and tabs; copied into the origin's
        # request line, ":path: /a HTTP/1.0" became "GET /a HTTP/1.0 HTTP/1.1"
        o = self.origin()
        o.route_prefix("/", headers=LONG, body=b"ok")
        e = self.edgecache([o])
        for what, extra in (("a target with a space", ["--request-target", "/a HTTP/1.0"]),
                            ("a target with a tab", ["--request-target", "/a\tb"]),
                            ("a method with spaces", ["-X", "GET /b HTTP/1.0 "])):
            status, body = self.curl(e, "/x", extra=extra)
            self.assertEqual(status.split()[:2], ["HTTP/2", "400"], "%s: %s" % (what, body))
            self.assertIn("invalid method or request target", body, what)
        self.assertEqual(o.hits(), 0, "nothing reached the origin")
        status, body = self.curl(e, "/x", extra=["-X", "GET"])
        self.assertEqual((status.split()[:2], body), (["HTTP/2", "200"], "ok"))


class RepeatedLines(RequestCase):
    """Item 3: the variant key read the first line of a field, the origin got every line."""

    def test_two_accept_encoding_lines_never_poison_the_gzip_variant(self):
        o = self.origin()
        seen = []

        def handler(req):
            seen.append([v for n, v in req.header_list if n.lower() == "accept-encoding"])
            ae = req.headers.get("accept-encoding", "")
            kind = b"br" if "br" in ae else b"gzip" if "gzip" in ae else b"identity"
            h = dict(LONG, Vary="Accept-Encoding")
            return 200, h, b"encoded as " + kind

        o.route("/ae", handler=handler)
        e = self.edgecache([o])
        r = request(e.proxy_port, "GET", "/ae", headers=[("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")])
        self.assertEqual(r.body, b"encoded as br", r.describe())
        self.assertEqual(seen[-1], ["br"], "the origin gets one line: the value the variant was keyed on")
        r = request(e.proxy_port, "GET", "/ae", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(r.body, b"encoded as gzip", "the gzip variant never holds the br body\n" + r.describe())
        self.assertXCache(r, "MISS")
        r = request(e.proxy_port, "GET", "/ae", headers={"Accept-Encoding": "gzip, br"})
        self.assertEqual(r.body, b"encoded as br")
        self.assertXCache(r, "HIT")
        r = request(e.proxy_port, "GET", "/ae", headers=[("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")])
        self.assertEqual(r.body, b"encoded as br")
        self.assertXCache(r, "HIT")
        self.assertEqual(o.hits("/ae"), 2)

    def test_repeated_varied_field_keyed_and_forwarded_as_one_line(self):
        o = self.origin()
        seen = []

        def handler(req):
            lines = [v for n, v in req.header_list if n.lower() == "x-lang"]
            seen.append(lines)
            return 200, dict(LONG, Vary="X-Lang"), ("lang=" + "|".join(lines)).encode()

        o.route("/lang", handler=handler)
        e = self.edgecache([o])
        r = request(e.proxy_port, "GET", "/lang", headers=[("X-Lang", "en"), ("X-Lang", "fr")])
        self.assertEqual(r.body, b"lang=en, fr", r.describe())
        self.assertEqual(seen[-1], ["en, fr"])
        r = request(e.proxy_port, "GET", "/lang", headers={"X-Lang": "en"})
        self.assertXCache(r, "MISS")
        self.assertEqual(r.body, b"lang=en", "a client sending only 'en' never gets the 'en, fr' variant")
        r = request(e.proxy_port, "GET", "/lang", headers={"X-Lang": "en, fr"})
        self.assertXCache(r, "HIT")
        self.assertEqual(r.body, b"lang=en, fr")

    def test_repeated_cache_control_and_conditionals_read_whole(self):
        o = self.origin()
        o.route("/etag", headers=dict(LONG, ETag='"b"'), body=b"etag body")
        e = self.edgecache([o])
        self.assertXCache(request(e.proxy_port, "GET", "/etag"), "MISS")
        # If-None-Match is a list: '"b"' on the second line matches as well as on the first
        r = request(e.proxy_port, "GET", "/etag", headers=[("If-None-Match", '"a"'), ("If-None-Match", '"b"')])
        self.assertEqual(r.status, 304, r.describe())


class LineFolding(RequestCase):
    """Sibling of the header-line bugs: h2o 2.2.5 hands an obs-fold continuation over as a line
    without a name, which went to the origin as ": folded" (RFC 9112 5.2: reject or unfold)."""

    def test_obs_fold_refused(self):
        o = self.origin()
        o.route_prefix("/", handler=echo)
        e = self.edgecache([o])
        r = raw(e.proxy_port, b"GET /f HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\n  folded: evil\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.status, 400, r.describe())
        self.assertEqual(o.hits(), 0, "nothing with a nameless line reaches the origin")
        r = raw(e.proxy_port, b"GET /f HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.status, 200, r.describe())


class AmbiguousFraming(RequestCase):
    """h2o 2.2.5 takes chunked over Content-Length and the first of two Content-Length lines.
    A front end that reads such a request the other way takes part of it, or the next one on
    the connection, for another request (smuggling, RFC 9112 6.3): a 400, and the connection
    closed, so that what follows is never read as a request."""

    def exchange(self, port, data):
        with socket.create_connection(("127.0.0.1", port), timeout=scaled(5)) as s:
            s.sendall(data)
            return harness.read_to_close(s)  # closed by the server: a timeout here fails the test

    def test_two_lengths_or_a_length_beside_chunked_is_refused_and_the_connection_closed(self):
        o = self.origin()
        o.route_prefix("/", handler=echo)
        e = self.edgecache([o])
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: a.example\r\n\r\n"
        for what, head, body in (
                ("two Content-Length lines", b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello"),
                ("Content-Length beside chunked", b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                 b"0\r\n\r\n"),
                ("chunked beside Content-Length", b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                 b"0\r\n\r\n")):
            got = self.exchange(e.proxy_port, b"POST /p HTTP/1.1\r\nHost: a.example\r\n" + head + b"\r\n" + body + smuggled)
            self.assertTrue(got.startswith(b"HTTP/1.1 400 "), "%s: %r" % (what, got[:200]))
            self.assertEqual(got.count(b"HTTP/1.1 "), 1, "%s: one answer, then the close" % what)
            self.assertIn(b"ambiguous message framing", got, what)
        self.assertEqual(o.hits(), 0, "neither the request nor what followed it reached the origin")
        # one length, or chunked alone, and the next request on the connection: both served
        for i, (head, body) in enumerate(((b"Content-Length: 5\r\n", b"hello"),
                                          (b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"))):
            got = self.exchange(e.proxy_port, b"POST /p HTTP/1.1\r\nHost: a.example\r\n" + head + b"\r\n" + body +
                                b"GET /next%d HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n" % i)
            self.assertEqual(got.count(b"HTTP/1.1 200 "), 2, got[:300])
        self.assertEqual(o.hits(), 4)


class ConnectionListed(RequestCase):
    """Item 7: fields named in Connection belong to one hop (RFC 9110 7.6.1)."""

    def test_client_connection_listed_fields_never_reach_the_origin(self):
        o = self.origin()
        o.route_prefix("/", handler=lambda req: (200, LONG, json.dumps(sorted(req.headers)).encode()))
        e = self.edgecache([o])
        for method, path in [("GET", "/cached"), ("POST", "/passed")]:
            with self.subTest(method=method):
                r = request(e.proxy_port, method, path,
                            headers=[("Connection", "keep-alive, X-Secret"), ("X-Secret", "s3cret"),
                                     ("Connection", "x-other"), ("X-Other", "1"), ("X-Kept", "k")],
                            body=b"" if method == "POST" else None)
                self.assertEqual(r.status, 200, r.describe())
                got = o.requests_for(path)[-1].headers
                self.assertNotIn("x-secret", got)
                self.assertNotIn("x-other", got, "a second Connection line counts too")
                self.assertEqual(got.get("x-kept"), "k")

    def test_connection_listed_field_does_not_key_a_variant(self):
        # the origin never sees a field the client's Connection names, so the variant must not be
        # keyed on it either: it would hold a response made without it
        o = self.origin()
        o.route("/v", handler=lambda req: (200, dict(LONG, Vary="X-Lang"),
                                           ("lang=" + req.headers.get("x-lang", "-")).encode()))
        e = self.edgecache([o])
        r = request(e.proxy_port, "GET", "/v", headers=[("Connection", "X-Lang"), ("X-Lang", "fr")])
        self.assertEqual(r.body, b"lang=-")
        r = request(e.proxy_port, "GET", "/v", headers={"X-Lang": "fr"})
        self.assertEqual(r.body, b"lang=fr", "the 'fr' variant never holds the response made without X-Lang")

    def test_origin_connection_listed_fields_neither_stored_nor_delivered(self):
        o = self.origin()
        o.route("/r", headers=[("Cache-Control", "max-age=300"), ("Connection", "X-Hop"), ("X-Hop", "internal"),
                               ("X-Keep", "yes")], body=b"r")
        o.route("/p", headers=[("Cache-Control", "no-store"), ("Connection", "keep-alive, X-Hop"),
                               ("X-Hop", "internal"), ("X-Keep", "yes")], body=b"p")
        e = self.edgecache([o])
        for path, outcomes in [("/r", ("MISS", "HIT")), ("/p", ("PASS", "PASS"))]:
            for xcache in outcomes:
                with self.subTest(path=path, xcache=xcache):
                    r = request(e.proxy_port, "GET", path, headers=HOST)
                    self.assertXCache(r, xcache)
                    self.assertIsNone(r.header("x-hop"), r.describe())
                    self.assertEqual(r.header("x-keep"), "yes")
        # after a restart the object comes from disk: the field was never stored
        tok = self.token(e)
        harness.wait_until(lambda: json.loads(request(e.admin_port, "GET", "/stats", headers={"Fastly-Key": tok}).body)
                           ["disk"]["objects"] >= 1, what="the object on disk")
        e.restart()
        r = request(e.proxy_port, "GET", "/r", headers=HOST)
        self.assertXCache(r, "HIT")
        self.assertIsNone(r.header("x-hop"), r.describe())


class ResponseLines(RequestCase):
    """Siblings of item 3 on the response side: Vary and Surrogate-Key read on their first
    (Vary: last) line only."""

    def test_vary_on_two_lines_keys_on_every_field(self):
        o = self.origin()
        o.route("/two", handler=lambda req: (200, [("Cache-Control", "max-age=300"), ("Vary", "X-Lang"), ("Vary", "X-Dev")],
                                             ("%s/%s" % (req.headers.get("x-lang", "-"),
                                                         req.headers.get("x-dev", "-"))).encode()))
        e = self.edgecache([o])
        for headers, body, xcache in [({"X-Lang": "en", "X-Dev": "a"}, b"en/a", "MISS"),
                                      ({"X-Lang": "fr", "X-Dev": "a"}, b"fr/a", "MISS"),
                                      ({"X-Lang": "en", "X-Dev": "b"}, b"en/b", "MISS"),
                                      ({"X-Lang": "en", "X-Dev": "a"}, b"en/a", "HIT"),
                                      ({"X-Lang": "fr", "X-Dev": "a"}, b"fr/a", "HIT")]:
            with self.subTest(headers=headers):
                r = request(e.proxy_port, "GET", "/two", headers=dict(HOST, **headers))
                self.assertEqual(r.body, body, r.describe())
                self.assertXCache(r, xcache)

    def test_surrogate_key_on_two_lines_purges_by_either(self):
        o = self.origin()
        o.route("/sk", headers=[("Cache-Control", "max-age=300"), ("Surrogate-Key", "one"), ("Surrogate-Key", "two three")],
                body=b"sk")
        e = self.edgecache([o])
        tok = self.token(e)
        for key in ("two", "one", "three"):
            with self.subTest(key=key):
                self.assertXCache(request(e.proxy_port, "GET", "/sk", headers=HOST), "MISS")
                self.assertXCache(request(e.proxy_port, "GET", "/sk", headers=HOST), "HIT")
                r = request(e.admin_port, "POST", "/service/edgecache/purge/" + key, headers={"Fastly-Key": tok})
                self.assertEqual(r.status, 200, r.describe())
                self.assertXCache(request(e.proxy_port, "GET", "/sk", headers=HOST), "MISS",
                                  "a key on the second Surrogate-Key line names the object too")
                r = request(e.admin_port, "POST", "/service/edgecache/purge_all", headers={"Fastly-Key": tok})
                self.assertEqual(r.status, 200, r.describe())

    def test_batch_purge_reads_every_surrogate_key_line(self):
        # the admin API's batch purge took the first Surrogate-Key line only: "kb" on a second
        # line was left cached, and the answer did not say so
        o = self.origin()
        o.route("/a", headers={"Cache-Control": "max-age=300", "Surrogate-Key": "ka"}, body=b"a")
        o.route("/b", headers={"Cache-Control": "max-age=300", "Surrogate-Key": "kb"}, body=b"b")
        e = self.edgecache([o])
        tok = self.token(e)
        for path in ("/a", "/b"):
            self.assertXCache(request(e.proxy_port, "GET", path, headers=HOST), "MISS")
            self.assertXCache(request(e.proxy_port, "GET", path, headers=HOST), "HIT")
        r = request(e.admin_port, "POST", "/service/edgecache/purge",
                    headers=[("Fastly-Key", tok), ("Surrogate-Key", "ka"), ("Surrogate-Key", "kb")])
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(sorted(json.loads(r.body)), ["ka", "kb"], r.describe())
        for path in ("/a", "/b"):
            self.assertXCache(request(e.proxy_port, "GET", path, headers=HOST), "MISS")


class ShieldForward(RequestCase):
    """Sibling of item 1: the PURGE forwarded to the shield was "/purge/" + Host + path, which the
    shield's admin API reads with a scheme when the concatenation starts like one."""

    def test_purge_forwarded_to_the_shield_names_the_same_url(self):
        o = self.origin()
        o.route_prefix("/", handler=echo)
        shield = self.edgecache([o])
        shield_tok = self.token(shield, "purge_select")
        edge = self.edgecache([], args=["--shield", "127.0.0.1:%d" % shield.proxy_port,
                                        "--shield-admin", "127.0.0.1:%d" % shield.admin_port,
                                        "--shield-token", shield_tok])
        tok = self.token(edge)
        victim = {"Host": "victim.example"}
        self.assertXCache(request(shield.proxy_port, "GET", "/x", headers=victim), "MISS")
        self.assertXCache(request(shield.proxy_port, "GET", "/x", headers=victim), "HIT")
        # "http:" is a valid host with an empty port; "/purge/" + "http:" + "/victim.example/x" read
        # as a URL is http://victim.example/x
        r = request(edge.proxy_port, "PURGE", "/victim.example/x", headers={"Host": "http:", "Fastly-Key": tok})
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(request(shield.proxy_port, "GET", "/x", headers=victim), "HIT",
                          "a PURGE of http:/victim.example/x must not purge victim.example/x on the shield")
        # and the forward still purges what it names on the shield
        self.assertXCache(request(edge.proxy_port, "GET", "/y", headers=victim), "MISS")
        r = request(edge.proxy_port, "PURGE", "/y", headers={"Host": "Victim.Example:80", "Fastly-Key": tok})
        self.assertEqual(r.status, 200, r.describe())
        self.assertXCache(request(shield.proxy_port, "GET", "/y", headers=victim), "MISS")

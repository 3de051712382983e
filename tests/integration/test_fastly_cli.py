"""
tests/integration/test_fastly_cli.py — issue 4: Fastly's own CLI, unchanged, purges
through edgecache's admin listener.

The CLI is the npm package @fastly/cli-linux-x64 (a prebuilt `fastly` binary inside the
package), installed once into build/fastly-cli/ and reused from there; the test is
skipped only when it cannot be had (no npm, no registry, not linux-x64).  Set
EDGECACHE_FASTLY_CLI_VERSION to pin a version (default: the newest), or
EDGECACHE_FASTLY_CLI to the path of a `fastly` binary to use that one instead.

Each run points the CLI at a small recording proxy in front of the admin listener
(FASTLY_API_ENDPOINT and FASTLY_ACCOUNT_ENDPOINT), so a failure names exactly what the
CLI asked for and what it got.  The CLI runs with HOME in a temp dir (its config file is
written there) and with HTTP(S)_PROXY set to a closed loopback port: its background
check for a newer CLI release then fails at once instead of leaving the machine, while
requests to 127.0.0.1 never use a proxy.
"""

import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import http.client

import harness
from harness import ROOT, closed_port, run_binary, scaled
from npmutil import npm_install

SID = "edgecache"
HOST = "www.example.test"
PACKAGE = "@fastly/cli-linux-x64"
CACHE_DIR = os.path.join(ROOT, "build", "fastly-cli")
INSTALLED = os.path.join(CACHE_DIR, "node_modules", "@fastly", "cli-linux-x64", "fastly")
PURGE_ID_RE = re.compile(r"[A-Za-z0-9._]+-\d{9,}-\d+")

_cli = {"path": None, "skip": None}


def _install():
    """Path of the `fastly` binary, installing it into CACHE_DIR when absent; raises
    unittest.SkipTest only when it cannot be fetched."""
    override = os.environ.get("EDGECACHE_FASTLY_CLI")
    if override:
        if not os.access(override, os.X_OK):
            raise AssertionError("EDGECACHE_FASTLY_CLI=%s is not an executable" % override)
        return override
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise unittest.SkipTest("%s runs on linux x86_64 only (this is %s %s)" % (
            PACKAGE, platform.system(), platform.machine()))
    if os.access(INSTALLED, os.X_OK):
        return INSTALLED
    version = os.environ.get("EDGECACHE_FASTLY_CLI_VERSION")
    binary = npm_install(PACKAGE + ("@" + version if version else ""), CACHE_DIR,
                         os.path.relpath(INSTALLED, CACHE_DIR))
    os.chmod(binary, 0o755)
    return INSTALLED


def fastly_cli():
    """(path, version line) of the CLI, installed on first use; SkipTest when unavailable."""
    if _cli["skip"] is not None:
        raise unittest.SkipTest(_cli["skip"])
    if _cli["path"] is None:
        try:
            _cli["path"] = _install()
        except unittest.SkipTest as exc:
            _cli["skip"] = str(exc)
            raise
    return _cli["path"]


class RecordingProxy:
    """HTTP/1.1 forwarder on 127.0.0.1:<ephemeral> to one upstream port; records every
    exchange as (method, path, request headers, request body, status, response body)."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.exchanges = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = [(n, v) for n, v in self.headers.items()
                           if n.lower() not in ("connection", "keep-alive", "proxy-connection")]
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=scaled(10))
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for n, v in headers:
                        conn.putheader(n, v)
                    conn.endheaders(body if length else None)
                    resp = conn.getresponse()
                    rbody = resp.read()
                    rheaders = [(n, v) for n, v in resp.getheaders()
                                if n.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                                     "content-length")]
                    status = resp.status
                finally:
                    conn.close()
                with proxy._lock:
                    proxy.exchanges.append((self.command, self.path, dict((n.lower(), v) for n, v in headers),
                                            body, status, rbody))
                self.send_response_only(status)
                for n, v in rheaders:
                    self.send_header(n, v)
                self.send_header("Content-Length", str(len(rbody)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(rbody)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_PURGE = do_OPTIONS = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def take(self):
        with self._lock:
            out, self.exchanges = self.exchanges, []
            return out

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def describe(exchanges):
    lines = []
    for method, path, headers, body, status, rbody in exchanges:
        auth = "Fastly-Key" if "fastly-key" in headers else ("Authorization" if "authorization" in headers else "no token")
        extra = ["%s: %s" % (n, headers[n]) for n in ("fastly-soft-purge", "surrogate-key") if n in headers]
        lines.append("  %s %s [%s%s]%s -> %d %s" % (
            method, path, auth, "; " + "; ".join(extra) if extra else "",
            " body=%r" % body[:200] if body else "", status, rbody[:200].decode("utf-8", "replace")))
    return "\n".join(lines) or "  (no requests)"


class FastlyCLIUser:
    """Mixin of a test case that runs the Fastly CLI: fetched once per process in setUpClass,
    outside any single test's deadline; use_fastly_cli() sets self.cli (or skips) and a fresh
    self.home for the CLI's configuration."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            fastly_cli()
        except unittest.SkipTest:
            pass

    def use_fastly_cli(self):
        self.cli = fastly_cli()
        self.home = tempfile.mkdtemp(prefix="fastly-home-")
        self.addCleanup(shutil.rmtree, self.home, True)


class FastlyCLI(FastlyCLIUser, harness.TestCase):
    def setUp(self):
        self.use_fastly_cli()
        self.o = self.origin()
        self.e = self.edgecache([self.o])
        self.proxy = RecordingProxy(self.e.admin_port)
        self.addCleanup(self.proxy.close)
        p = run_binary(["token", "create", "--data-dir", self.e.data_dir, "--scope", "global", "--name", "cli"])
        self.token = p.stdout.strip()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(self.token, r"^[A-Za-z0-9_-]{43}$", "token create prints the token\n" + p.stderr)

    def fastly(self, *args, expect_ok=True):
        """Run the CLI; returns (CompletedProcess, recorded exchanges)."""
        endpoint = "http://127.0.0.1:%d" % self.proxy.port
        dead = "http://127.0.0.1:%d" % closed_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.home,
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
            "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
            "FASTLY_API_ENDPOINT": endpoint,
            "FASTLY_ACCOUNT_ENDPOINT": endpoint,
            "HTTPS_PROXY": dead, "HTTP_PROXY": dead, "https_proxy": dead, "http_proxy": dead,
            "NO_PROXY": "", "no_proxy": "",
            "TERM": "dumb", "NO_COLOR": "1",
        }
        cmd = [self.cli] + list(args) + ["--token=" + self.token, "--non-interactive"]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                               env=env, cwd=self.home, timeout=scaled(30))
        except subprocess.TimeoutExpired as exc:
            self.fail("fastly %s did not finish in 30 s\nrequests:\n%s\nstdout: %s\nstderr: %s" % (
                " ".join(args), describe(self.proxy.take()), exc.stdout, exc.stderr))
        exchanges = self.proxy.take()
        self.last = "fastly %s -> exit %d\nstdout: %s\nstderr: %s\nrequests to the admin API:\n%s" % (
            " ".join(args), p.returncode, p.stdout.strip(), p.stderr.strip(), describe(exchanges))
        if expect_ok:
            self.assertEqual(p.returncode, 0, self.last)
        return p, exchanges

    # --- helpers
    def route(self, path, key=None, seen=None):
        """A cacheable object with an ETag (and a Surrogate-Key); `seen` collects the
        If-None-Match of every origin fetch, so a revalidation is told from a refetch."""
        def handler(req):
            if seen is not None:
                seen.append(req.headers.get("if-none-match"))
            h = {"Cache-Control": "max-age=300", "Content-Type": "text/plain", "ETag": '"v1"'}
            if key:
                h["Surrogate-Key"] = key
            if req.headers.get("if-none-match") == '"v1"':
                return 304, h, b""
            return 200, h, b"body of " + path.encode()
        self.o.route(path, handler=handler)

    def get(self, path):
        return harness.request(self.e.proxy_port, "GET", path, headers={"Host": HOST})

    def warm(self, path):
        self.assertEqual(self.get(path).status, 200)
        self.assertXCache(self.get(path), "HIT", "warming " + path)

    def assertPurged(self, p, exchanges, forms, soft=False):
        """The CLI reported success and sent exactly one purge, one of `forms` (method, path,
        Surrogate-Key header or None), with the token (and Fastly-Soft-Purge when soft);
        every request it made, the purge and any other, succeeded."""
        purges = [x for x in exchanges if "purge" in x[1]]
        self.assertEqual(len(purges), 1, "one purge request\n" + self.last)
        method, path, headers, _, status, rbody = purges[0]
        self.assertIn((method, path, headers.get("surrogate-key")), forms,
                      "a documented purge endpoint\n" + self.last)
        self.assertEqual(status, 200, self.last)
        self.assertEqual(headers.get("fastly-key"), self.token, self.last)
        self.assertEqual(headers.get("fastly-soft-purge") == "1", soft, self.last)
        self.assertTrue(all(x[4] == 200 for x in exchanges), "every request the CLI made succeeded\n" + self.last)
        self.assertRegex(p.stdout, r"(?i)success", self.last)
        return p.stdout

    def key_forms(self, key):
        """How a client may purge one key: the single-key path or the batch with the header."""
        return [("POST", "/service/%s/purge/%s" % (SID, key), None),
                ("POST", "/service/%s/purge" % SID, key)]

    def url_forms(self, url):
        """How a client may purge one URL: with or without its scheme."""
        bare = url.split("://", 1)[1]
        return [("POST", "/purge/" + url, None), ("POST", "/purge/" + bare, None)]

    # --- the four forms
    def test_version_runs_offline(self):
        p, exchanges = self.fastly("version")
        self.assertRegex(p.stdout, r"Fastly CLI version v\d+\.\d+\.\d+", self.last)
        self.assertEqual(exchanges, [], "`version` needs no API\n" + self.last)

    def test_purge_key(self):
        self.route("/k1", "alpha beta")
        self.route("/k2", "beta")
        self.route("/other", "gamma")
        for path in ("/k1", "/k2", "/other"):
            self.warm(path)
        p, ex = self.fastly("purge", "--key", "beta", "-s", SID)
        out = self.assertPurged(p, ex, self.key_forms("beta"))
        self.assertIn("beta", out, self.last)
        self.assertRegex(out, PURGE_ID_RE, "the CLI prints the purge id it got\n" + self.last)
        self.assertXCache(self.get("/k1"), "MISS")
        self.assertXCache(self.get("/k2"), "MISS")
        self.assertXCache(self.get("/other"), "HIT", "objects without the key stay")
        # the current spelling of the same command
        self.warm("/k1")
        p, ex = self.fastly("service", "purge", "--key", "alpha", "--service-id", SID)
        self.assertPurged(p, ex, self.key_forms("alpha"))
        self.assertXCache(self.get("/k1"), "MISS")
        self.assertXCache(self.get("/other"), "HIT")

    def test_purge_key_file(self):
        """--file: a batch of keys in one request (the JSON body form)."""
        for name in ("f1", "f2", "f3"):
            self.route("/" + name, "key-" + name)
            self.warm("/" + name)
        keys = os.path.join(self.home, "keys.txt")
        with open(keys, "w") as f:
            f.write("key-f1\nkey-f2\n")
        p, ex = self.fastly("purge", "--file", keys, "--service-id", SID)
        purges = [x for x in ex if "purge" in x[1]]
        self.assertEqual(len(purges), 1, "one batch request\n" + self.last)
        method, path, headers, body, status, rbody = purges[0]
        self.assertEqual((method, path, status), ("POST", "/service/%s/purge" % SID, 200), self.last)
        sent = headers.get("surrogate-key", "").split() or json.loads(body or b"{}").get("surrogate_keys")
        self.assertEqual(sorted(sent or []), ["key-f1", "key-f2"], self.last)
        for key in ("key-f1", "key-f2"):  # a table: each key with the purge id it got
            self.assertRegex(p.stdout, r"(?m)^%s\s+%s\s*$" % (key, PURGE_ID_RE.pattern), self.last)
        self.assertXCache(self.get("/f1"), "MISS")
        self.assertXCache(self.get("/f2"), "MISS")
        self.assertXCache(self.get("/f3"), "HIT")

    def test_purge_url(self):
        self.route("/u", "ukey")
        self.route("/u2", "ukey")
        self.warm("/u")
        self.warm("/u2")
        url = "http://%s/u" % HOST
        p, ex = self.fastly("purge", "--url", url, "--service-id", SID)
        self.assertPurged(p, ex, self.url_forms(url))
        self.assertXCache(self.get("/u"), "MISS")
        self.assertXCache(self.get("/u2"), "HIT", "only that URL goes")
        # https:// and a bare host name name the same object
        self.warm("/u")
        url = "https://%s/u" % HOST
        p, ex = self.fastly("purge", "--url", url, "--service-id", SID)
        self.assertPurged(p, ex, self.url_forms(url))
        self.assertXCache(self.get("/u"), "MISS", "purged by its https:// URL\n" + self.last)

    def test_purge_all(self):
        for path in ("/a1", "/a2"):
            self.route(path, "k" + path[1:])
            self.warm(path)
        p, ex = self.fastly("purge", "--all", "--service-id", SID)
        self.assertPurged(p, ex, [("POST", "/service/%s/purge_all" % SID, None)])
        self.assertXCache(self.get("/a1"), "MISS")
        self.assertXCache(self.get("/a2"), "MISS")

    def test_soft_purge_key_and_url(self):
        seen = []
        self.route("/s", "softkey", seen)
        self.warm("/s")
        p, ex = self.fastly("purge", "--key", "softkey", "--soft", "--service-id", SID)
        self.assertPurged(p, ex, self.key_forms("softkey"), soft=True)
        r = self.get("/s")
        self.assertEqual((r.status, r.body), (200, b"body of /s"), r.describe())
        self.assertEqual(seen, [None, '"v1"'], "soft-purged: kept but stale, so revalidated\n" + self.last)
        self.assertXCache(self.get("/s"), "HIT", "fresh again after the 304")
        url = "http://%s/s" % HOST
        p, ex = self.fastly("purge", "--url", url, "--soft", "--service-id", SID)
        self.assertPurged(p, ex, self.url_forms(url), soft=True)
        self.get("/s")
        self.assertEqual(seen, [None, '"v1"', '"v1"'], "soft URL purge: revalidated again\n" + self.last)

    def test_wrong_service_and_bad_token_fail(self):
        self.route("/w", "wkey")
        self.warm("/w")
        p, ex = self.fastly("purge", "--key", "wkey", "--service-id", "not-this-node", expect_ok=False)
        self.assertNotEqual(p.returncode, 0, self.last)
        self.assertXCache(self.get("/w"), "HIT", "nothing purged\n" + self.last)
        self.token = "x" * 43
        p, ex = self.fastly("purge", "--key", "wkey", "--service-id", SID, expect_ok=False)
        self.assertNotEqual(p.returncode, 0, self.last)
        self.assertIn(401, [x[4] for x in ex], self.last)
        self.assertXCache(self.get("/w"), "HIT", "nothing purged\n" + self.last)


if __name__ == "__main__":
    unittest.main()

"""Tests for edgecache_purge.py.

The live tests need a running edgecache in front of the test origin of tests/clients/run,
which exports EDGECACHE_URL, EDGECACHE_SERVICE, EDGECACHE_TOKEN (global scope),
EDGECACHE_SELECT_TOKEN (purge_select scope), PROXY_URL and ORIGIN_URL; without them only
the offline tests run. The origin tags each path with the surrogate key
"path-with-slashes-as-dashes" and max-age=3600, and counts requests at /__count?path=...

    python3 -m unittest discover -s purge-clients/python -p 'test_*.py' -v
"""

import json
import os
import socket
import subprocess
import sys
import time
import unittest
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edgecache_purge import Client, PurgeError, url_purge_path  # noqa: E402

CLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "edgecache-purge")
LIVE_VARS = ("EDGECACHE_URL", "EDGECACHE_TOKEN", "EDGECACHE_SELECT_TOKEN", "PROXY_URL", "ORIGIN_URL")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def live():
    return all(os.environ.get(v) for v in LIVE_VARS)


def fresh_path(name):
    return "/py/%s-%s" % (name, uuid.uuid4().hex[:12])


def key_for(path):
    return path.lstrip("/").replace("/", "-")


def fetch(path):
    """GET path through the proxy; returns the X-Cache header."""
    with _DIRECT.open(os.environ["PROXY_URL"] + path, timeout=10) as r:
        r.read()
        assert r.status == 200, "GET %s through the proxy: %d" % (path, r.status)
        return r.headers.get("X-Cache", "")


def origin_count(path):
    url = "%s/__count?path=%s" % (os.environ["ORIGIN_URL"], urllib.parse.quote(path, safe=""))
    with _DIRECT.open(url, timeout=10) as r:
        return json.loads(r.read())["count"]


def fresh_hit(x_cache):
    return x_cache.strip().upper() == "HIT"


class OfflineTest(unittest.TestCase):
    def test_url_purge_path_strips_scheme_and_fragment(self):
        self.assertEqual("/purge/example.com/a/b?x", url_purge_path("http://example.com/a/b?x"))
        self.assertEqual("/purge/example.com/a/b?x", url_purge_path("HTTPS://Example.COM/a/b?x#frag"))
        self.assertEqual("/purge/example.com:8080/", url_purge_path("example.com:8080"))
        self.assertEqual("/purge/example.com/?q=1", url_purge_path("//example.com?q=1"))
        self.assertEqual("/purge/h/a%20b/%C3%BC%22", url_purge_path('http://h/a b/\u00fc"'))
        self.assertEqual("/purge/h/already%2Fescaped", url_purge_path("http://h/already%2Fescaped"))
        with self.assertRaises(ValueError):
            url_purge_path("/no/host")

    def test_configuration_errors(self):
        with self.assertRaises(ValueError):
            Client("ftp://x", token="t")
        with self.assertRaises(ValueError):
            Client("http://127.0.0.1:1", token="bad token")
        c = Client("http://127.0.0.1:1/", "svc", "t")
        self.assertEqual("http://127.0.0.1:1", c.url)
        self.assertEqual((5.0, 5.0), (c.connect_timeout, c.read_timeout))
        for bad in ("two words", ""):
            with self.assertRaises(ValueError):
                c.purge_key(bad)
        with self.assertRaises(ValueError):
            c.purge_keys(["ok", None])
        with self.assertRaises(TypeError):
            c.purge_keys("one-string")
        self.assertEqual({}, c.purge_keys([]))

    def test_refused_connection_raises_without_status(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # bound, then closed: nobody listens
        c = Client("http://127.0.0.1:%d" % port, token="t")
        with self.assertRaises(PurgeError) as cm:
            c.purge_key("k")
        self.assertIsNone(cm.exception.status)
        self.assertRegex(str(cm.exception), "(?i)refused")

    def test_read_timeout_raises(self):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(4)  # listens, never answers
        self.addCleanup(server.close)
        c = Client("http://127.0.0.1:%d" % server.getsockname()[1], token="t", read_timeout=0.5)
        started = time.monotonic()
        with self.assertRaises(PurgeError) as cm:
            c.purge_all()
        self.assertIsNone(cm.exception.status)
        self.assertLess(time.monotonic() - started, 4)


@unittest.skipUnless(live(), "no live edgecache (run tests/clients/run)")
class LiveTest(unittest.TestCase):
    def client(self, **kwargs):
        return Client(**kwargs)

    def cache(self, path):
        """GET until the object is a fresh HIT (the first GET of a new path is not one)."""
        self.assertFalse(fresh_hit(fetch(path)), "first GET of %s should not be a HIT" % path)
        for _ in range(20):
            if fresh_hit(fetch(path)):
                return
            time.sleep(0.05)
        self.fail("%s never became a HIT through the proxy" % path)

    def assert_purged(self, path):
        before = origin_count(path)
        x_cache = fetch(path)
        self.assertIn("MISS", x_cache.upper(), "GET %s after the purge should be a MISS" % path)
        self.assertGreater(origin_count(path), before, "the origin should have been asked again")

    def assert_soft_purged(self, path):
        """After a soft purge the object is stale: the next GET must reach the origin (a
        revalidation or a refetch) before it is answered. The X-Cache label is not checked:
        the proxy labels a response refreshed by a 304 "HIT"; the origin's count is the evidence."""
        before = origin_count(path)
        x_cache = fetch(path)
        self.assertGreater(origin_count(path), before,
                           "GET %s after a soft purge must be revalidated or refetched, not a fresh HIT "
                           "(X-Cache: %s)" % (path, x_cache))

    def assert_still_cached(self, path):
        self.assertTrue(fresh_hit(fetch(path)), "%s should still be a HIT" % path)

    def assert_purge_id(self, purge_id):
        self.assertIsInstance(purge_id, str)
        self.assertTrue(purge_id)

    def test_purge_url(self):
        path = fresh_path("url") + "?v=1&w=two"  # the query is part of the URL purged
        self.cache(path)
        self.assert_purge_id(self.client().purge_url(os.environ["PROXY_URL"] + path))
        self.assert_purged(path)

    def test_purge_key(self):
        path = fresh_path("key")
        self.cache(path)
        self.assert_purge_id(self.client().purge_key(key_for(path)))
        self.assert_purged(path)

    def test_purge_keys_batch(self):
        a, b = fresh_path("batch-a"), fresh_path("batch-b")
        self.cache(a)
        self.cache(b)
        ids = self.client().purge_keys([key_for(a), key_for(b)])
        self.assertEqual(sorted([key_for(a), key_for(b)]), sorted(ids))
        for purge_id in ids.values():
            self.assert_purge_id(purge_id)
        self.assert_purged(a)
        self.assert_purged(b)

    def test_purge_keys_splits_above_256(self):
        path = fresh_path("batch-big")
        self.cache(path)
        keys = ["py-filler-%d" % i for i in range(1, 300)] + [key_for(path)]
        ids = self.client().purge_keys(keys)
        self.assertEqual(sorted(keys), sorted(ids))
        self.assert_purged(path)

    def test_purge_all(self):
        a, b = fresh_path("all-a"), fresh_path("all-b")
        self.cache(a)
        self.cache(b)
        self.assertIs(True, self.client().purge_all())
        self.assert_purged(a)
        self.assert_purged(b)

    def test_soft_purge_url(self):
        path = fresh_path("soft-url")
        self.cache(path)
        self.assert_purge_id(self.client().purge_url(os.environ["PROXY_URL"] + path, soft=True))
        self.assert_soft_purged(path)

    def test_soft_purge_key(self):
        path = fresh_path("soft-key")
        self.cache(path)
        self.assert_purge_id(self.client().purge_key(key_for(path), soft=True))
        self.assert_soft_purged(path)

    def test_soft_purge_keys_batch(self):
        path = fresh_path("soft-batch")
        self.cache(path)
        ids = self.client().purge_keys([key_for(path)], soft=True)
        self.assert_purge_id(ids.get(key_for(path)))
        self.assert_soft_purged(path)

    def test_wrong_token_raises_401_and_purges_nothing(self):
        path = fresh_path("wrong-token")
        self.cache(path)
        bad = self.client(token="not-a-valid-token")
        calls = [lambda: bad.purge_key(key_for(path)),
                 lambda: bad.purge_url(os.environ["PROXY_URL"] + path),
                 lambda: bad.purge_keys([key_for(path)]),
                 bad.purge_all]
        for call in calls:
            with self.assertRaises(PurgeError) as cm:
                call()
            self.assertEqual(401, cm.exception.status)
            self.assertTrue(cm.exception.msg)
        self.assert_still_cached(path)

    def test_purge_select_token_may_purge_keys_but_not_all(self):
        path = fresh_path("select")
        self.cache(path)
        select = self.client(token=os.environ["EDGECACHE_SELECT_TOKEN"])
        with self.assertRaises(PurgeError) as cm:
            select.purge_all()
        self.assertEqual(403, cm.exception.status)
        self.assertTrue(cm.exception.msg)
        self.assert_still_cached(path)
        self.assert_purge_id(select.purge_key(key_for(path)))
        self.assert_purged(path)

    def test_cli_purges_keys_and_fails_with_exit_1(self):
        a, b = fresh_path("cli-a"), fresh_path("cli-b")
        self.cache(a)
        self.cache(b)
        r = subprocess.run([CLI, "key", key_for(a), key_for(b)], capture_output=True, text=True, timeout=30)
        self.assertEqual(0, r.returncode, r.stderr)
        lines = [line.split() for line in r.stdout.splitlines()]
        self.assertEqual(sorted([key_for(a), key_for(b)]), sorted(line[0] for line in lines))
        for line in lines:
            self.assertEqual(2, len(line))
        self.assert_purged(a)
        self.assert_purged(b)

        r = subprocess.run([CLI, "url", "--soft", os.environ["PROXY_URL"] + a],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertEqual(os.environ["PROXY_URL"] + a, r.stdout.split()[0])

        r = subprocess.run([CLI, "--token", "not-a-valid-token", "all"], capture_output=True, text=True, timeout=30)
        self.assertEqual(1, r.returncode)
        self.assertIn("401", r.stderr)


if __name__ == "__main__":
    unittest.main()

"""
tests/integration/harness.py — start the real edgecache binary against a scripted origin
on loopback, and talk HTTP to both.  Python 3 standard library only.

    from harness import Origin, Edgecache, request, BINARY

    o = Origin()                       # threaded HTTP/1.1 origin on 127.0.0.1:<ephemeral>
    o.route("/a", headers={"Cache-Control": "max-age=60"}, body=b"hello")
    e = Edgecache(backends=[o])        # temp data dir, removed at cleanup
    e.start()
    r = request(e.proxy_port, "GET", "/a")
    assert r.header("x-cache") == "MISS" and o.hits("/a") == 1
    e.cleanup(); o.close()

Rules the harness keeps so that a failing test never hangs or leaks:
  * every wait is a deadline loop or a socket timeout;
  * tests wait on events, not on the clock: origin hits, a Hold in the origin (a response
    held until the test releases it) and /stats counters say when something happened, and no
    assertion is on elapsed time;
  * every Edgecache and Origin created is registered and killed / closed at exit
    (atexit), and TestCase (below) registers cleanups so teardown happens even when a
    test fails;
  * Edgecache.cleanup() stops the server with SIGTERM and *fails* when it does not exit 0
    or when its stderr holds a sanitizer report, so ASan/UBSan findings in any test
    surface as test errors.

Timeouts scale with the environment variable EDGECACHE_TIMEOUT_SCALE (default 1; the
run.py driver raises it for sanitizer builds whose binary name contains "asan").

The harness is five files, split by what they do; tests import `harness` alone (it
re-exports every name they use), and each part imports only the parts above it here:
  harness_base.py     timeouts scaled for slow builds, wait_until, sleep_until, ports
  harness_client.py   Response, request, Session; raw sockets (Reader, RawListener, pipeline)
  harness_origin.py   how the scripted origin answers: handler, routes, Hold, TLS context
  harness_servers.py  Origin, Edgecache, run_binary, create_token, BINARY; the registry
  harness.py          TestCase (the unittest glue) and the re-exports
"""

import json
import sys
import unittest
import urllib.parse

import harness_servers
from harness_base import (ROOT, closed_port, free_port, listening_sockets, scaled, sleep_until,  # noqa: F401
                          timeout_scale, wait_until)
from harness_client import (RawListener, Reader, Response, Session, pipeline, read_raw_response,  # noqa: F401
                            read_to_close, request)
from harness_origin import Hold, OriginRequest, _OriginHandler, tls_server_context  # noqa: F401
from harness_servers import (READY_RE, SANITIZER_RE, Edgecache, EdgecacheError, Origin, _registry,  # noqa: F401
                             create_token, run_binary, set_binary)


def __getattr__(name):
    """harness.BINARY is harness_servers.BINARY, read at each use: set_binary() rebinds it
    there, and a copy imported here would keep the first value."""
    if name == "BINARY":
        return harness_servers.BINARY
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


# --------------------------------------------------------------------------------------
# unittest glue


class TestCase(unittest.TestCase):
    """Base class: self.origin() / self.edgecache() create, start and register cleanups."""

    def origin(self, **kwargs):
        o = Origin(**kwargs)
        self.addCleanup(o.close)
        return o

    def edgecache(self, backends=(), start=True, **kwargs):
        e = Edgecache(backends=backends, **kwargs)
        self.addCleanup(e.cleanup)
        if start:
            e.start()
        return e

    def get(self, edge, path, headers=None, **kw):
        return request(edge.proxy_port, "GET", path, headers=headers, **kw)

    def admin_api(self, edge, method, path, body=None, token=None, form=False, expect=None):
        """One admin API request with Fastly-Key `token`; a dict body goes as JSON, or as a form
        with form=True; `expect`: the status it must answer."""
        h = {"Fastly-Key": token} if token is not None else {}
        if isinstance(body, dict):
            if form:
                body = urllib.parse.urlencode(body)
                h["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                body = json.dumps(body)
                h["Content-Type"] = "application/json"
        r = request(edge.admin_port, method, path, headers=h, body=body)
        if expect is not None:
            self.assertEqual(r.status, expect, "%s %s -> %s" % (method, path, r.body))
        return r

    def assertXCache(self, resp, expected, msg=None):
        got = resp.header("x-cache")
        if got is None or got.split(",")[0].strip().upper() != expected:
            self.fail((msg + "\n" if msg else "") + "expected X-Cache %s, got %r\n%s" % (
                expected, got, resp.describe()))


if __name__ == "__main__":
    print("harness.py is a library; run tests with: python3 %s/tests/integration/run.py" % ROOT, file=sys.stderr)
    sys.exit(2)

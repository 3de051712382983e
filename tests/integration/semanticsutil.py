"""
tests/integration/semanticsutil.py — what the test_semantics_*.py files share (issue 3: HTTP
caching semantics end to end, RFC 9111, Fastly's surrogate headers, collapsing, grace,
revalidation, Vary, Range, invalidation, settings and header rules): SemanticsCase, the
origin header builders (cc, hdrs, NO_DATE), dates, a thread-safe counter and
run_concurrently. Every test runs against the real binary and a scripted origin on loopback
that counts requests and records the headers it got.

The expected behaviour is /work/notes/semantics-contract.md (X-Cache is HIT | MISS | PASS; a
collapsed waiter and a stale copy served are HIT) and RFC 9111; since issue 19 a stale copy the
origin confirmed with a 304 is REVALIDATED (nginx's label), not HIT.

Timing. Short lifetimes are 1-2 s and the tests sleep well past them (2.2 s for max-age=1,
4.3 s for 2 s lifetimes) while "long" lifetimes are 60 s, so a slow machine cannot flip an
outcome. Responses with max-age=1 carry no Date header (NO_DATE): a Date one second boundary
behind the proxy's clock would make them stale at once through the apparent age (RFC 9111
4.2.3). Every wait is bounded (harness.wait_until, socket timeouts, join timeouts). No
assertion is on how long a request took: an origin response that must come late is held by
a harness.Hold until the test has seen what it wanted (the waiters collapsed, /stats
"collapsed"; the stale copies served; the timeout's 504) and releases it.
"""

import json
import os
import tempfile
import threading
import time
from email.utils import formatdate, parsedate_to_datetime

import harness
from harness import request, scaled, wait_until


NO_DATE = {"Date": None}


def cc(value, **extra):
    headers = {"Cache-Control": value, "Content-Type": "text/plain"}
    headers.update({k if "-" in k else k.replace("_", "-"): v for k, v in extra.items()})
    return headers


def hdrs(**kw):
    """Header dict from keyword arguments: X_Foo="1" -> {"X-Foo": "1"}; None values kept."""
    return {k.replace("_", "-"): v for k, v in kw.items()}


def http_date(t):
    return formatdate(t, usegmt=True)


def parse_date(value):
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


class Counter:
    """A thread-safe request counter for origin handlers."""

    def __init__(self):
        self.n = 0
        self._lock = threading.Lock()

    def next(self):
        with self._lock:
            self.n += 1
            return self.n


def run_concurrently(n, fn, timeout=15.0, while_running=None):
    """Run fn(i) for i in range(n) on n threads released together by a barrier; return the
    results in order. Raises AssertionError when a thread fails or does not finish in time.
    while_running(): called once the threads are started, before they are waited for (to
    watch them queue up and release what holds them)."""
    results = [None] * n
    errors = [None] * n
    barrier = threading.Barrier(n)

    def body(i):
        try:
            barrier.wait(scaled(5))
            results[i] = fn(i)
        except BaseException as exc:  # reported below
            errors[i] = exc

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    if while_running is not None:
        try:
            while_running()
        except BaseException:
            for t in threads:  # let them finish before the test's cleanup stops everything
                t.join(scaled(timeout))
            raise
    deadline = time.monotonic() + scaled(timeout)
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = sum(1 for t in threads if t.is_alive())
    if alive:
        raise AssertionError("%d of %d concurrent clients did not finish within %.1fs" % (alive, n, scaled(timeout)))
    for i, exc in enumerate(errors):
        if exc is not None:
            raise AssertionError("concurrent client %d failed: %r" % (i, exc))
    return results


class SemanticsCase(harness.TestCase):
    """Helpers: config files, an edgecache with settings, GET with a fixed Host."""

    def config_file(self, settings):
        fd, path = tempfile.mkstemp(prefix="edgecache-sem-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(settings, f)
        self.addCleanup(os.unlink, path)
        return path

    def edge(self, origin, settings=None, args=()):
        """An edgecache in front of origin; settings (dict) go into a --config file."""
        args = list(args)
        if settings is not None:
            args += ["--config", self.config_file(settings)]
        return self.edgecache([origin], args=args)

    def get(self, edge, path, headers=None, **kw):
        return request(edge.proxy_port, "GET", path, headers=headers, **kw)

    def collapsed(self, edge):
        """/stats "collapsed": requests that waited on another's fetch, counted as each joins
        it. Reading /stats takes a token: a global:read one is made on first use."""
        if getattr(edge, "stats_token", None) is None:
            edge.stats_token = harness.create_token(edge, "global:read")
        r = request(edge.admin_port, "GET", "/stats", headers={"Fastly-Key": edge.stats_token})
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)["collapsed"]

    def release_when_collapsed(self, edge, origin, path, hold, waiters):
        """while_running for run_concurrently: once the one fetch is held at the origin and
        `waiters` more requests have joined it, let the origin answer. Call it before the
        requests start: it reads /stats' count then."""
        base = self.collapsed(edge)

        def go():
            wait_until(lambda: hold.waiting == 1, 10, what="the fetch of %s held at the origin" % path)
            wait_until(lambda: self.collapsed(edge) - base >= waiters, 10, interval=0.05,
                       what="%d requests collapsed onto the fetch of %s" % (waiters, path))
            self.assertEqual(origin.hits(path), 1, "the waiters did not go to the origin")
            hold.release()
        return go

    def assertNotHit(self, resp, msg=None):
        got = (resp.header("x-cache") or "").split(",")[0].strip().upper()
        if got == "HIT":
            self.fail((msg + "\n" if msg else "") + "expected no HIT\n" + resp.describe())

    def assertOk(self, resp, body=None, msg=None):
        self.assertEqual(resp.status, 200, (msg + "\n" if msg else "") + resp.describe())
        if body is not None:
            self.assertEqual(resp.body, body, (msg + "\n" if msg else "") + resp.describe())

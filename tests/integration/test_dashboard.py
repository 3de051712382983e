"""
tests/integration/test_dashboard.py — issue 23: the live dashboard (GET /dashboard on the
admin listener) in headless Chromium, against the real binary and a real origin.

The browser is Debian's chromium, driven over the DevTools protocol with the standard
library only (cdp.py); the test is skipped, saying so, only when no chromium is installed.
One browser serves the whole class; each test gets a fresh edgecache and a fresh tab state.

What the page must do, checked in the DOM (Runtime.evaluate) and on its canvases:
  * load without a token, ask for one, keep it for the tab (sessionStorage: a reload does
    not ask again) and read the stats endpoints with it;
  * show the figures of a scripted sequence of misses, hits and passes (per 120 s window
    and since start, status classes, memory and disk, the origin's health) as they happen;
  * draw its charts (points drawn and pixels of the series' colour on the canvas);
  * say clearly when the token is refused (401) or lacks the read scope (403), and when the
    node cannot be reached, with no exception and no console error of its own;
  * fit a phone's width.
Screenshots are written under the test's temporary directory, removed at the end unless
EDGECACHE_KEEP_SCREENSHOTS is set (its path is printed then).
"""

import json
import os
import shutil
import tempfile
import time
import unittest

import cdp
import harness
from harness import request, wait_until

FAST = ["--stats-minute-seconds", "1", "--stats-sample-interval", "1"]
REQUESTS_BLUE = (0x24, 0x58, 0xd3)  # dashboard.js COLORS.requests
HITS_GREEN = (0x1b, 0x7f, 0x3b)     # COLORS.hits / COLORS.ratio
SERVICE = "dash-svc"

# the page's own failures; the browser's "Failed to load resource" lines for answers the
# test provokes (401, 403, a refused connection) are network entries and are allowed there
def page_errors(events, allow_network=False):
    bad = []
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.exceptionThrown":
            bad.append("exception: %s" % json.dumps(p.get("exceptionDetails", {}))[:500])
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
            bad.append("console.%s: %s" % (p.get("type"), json.dumps(p.get("args", []))[:500]))
        elif m == "Log.entryAdded":
            e = p.get("entry", {})
            if e.get("level") in ("error", "warning") and not (allow_network and e.get("source") == "network"):
                bad.append("log %s/%s: %s %s" % (e.get("source"), e.get("level"), e.get("text"), e.get("url", "")))
    return bad


INK_JS = """(() => {
  const c = document.getElementById(%s);
  if (!c || !c.width || !c.height) return 0;
  /* read a copy: the page's own context is left as the page made it */
  const copy = document.createElement('canvas');
  copy.width = c.width;
  copy.height = c.height;
  const g = copy.getContext('2d', { willReadFrequently: true });
  g.drawImage(c, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (d[i + 3] > 200 && Math.abs(d[i] - %d) < 30 && Math.abs(d[i + 1] - %d) < 30 && Math.abs(d[i + 2] - %d) < 30) n++;
  return n;
})()"""


class DashboardTest(harness.TestCase):
    browser = None
    tmp = None

    @classmethod
    def setUpClass(cls):
        if cdp.find_chromium() is None:
            raise unittest.SkipTest("chromium is not installed (scripts/install-deps installs Debian's chromium)")
        cls.tmp = tempfile.mkdtemp(prefix="edgecache-dashboard-")
        try:
            cls.browser = cdp.Browser.start(cls.tmp)
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.browser is not None:
            cls.browser.close()
        if cls.tmp is not None:
            if os.environ.get("EDGECACHE_KEEP_SCREENSHOTS"):
                shutil.rmtree(os.path.join(cls.tmp, "chromium-profile"), ignore_errors=True)
                print("dashboard screenshots kept in %s" % cls.tmp)
            else:
                shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.o = self.origin()
        self.o.route_prefix("/obj/", headers={"Cache-Control": "max-age=300", "Content-Type": "text/plain",
                                             "Surrogate-Key": "objs"}, body=b"x" * 2000)
        self.o.route("/private", headers={"Cache-Control": "private"}, body=b"per-user")
        self.e = self.edgecache([self.o], args=FAST + ["--service-id", SERVICE])
        self.reader = self.token("global:read")
        b = self.b = self.browser
        b.call("Emulation.clearDeviceMetricsOverride")
        b.call("Runtime.enable")
        b.call("Log.enable")
        b.call("Page.enable")
        # a blank tab: the page of an earlier test (polling its stopped node) is gone before
        # the events are counted; each node's admin port is a new origin, with no token kept
        b.call("Page.navigate", url="about:blank")
        wait_until(lambda: b.evaluate("location.href") == "about:blank", timeout=10, what="a blank tab")
        b.pump()
        b.events.clear()

    # --- helpers
    def token(self, scope):
        return harness.create_token(self.e, scope)

    def admin_url(self, path):
        return "http://127.0.0.1:%d%s" % (self.e.admin_port, path)

    def admin_json(self, path):
        r = request(self.e.admin_port, "GET", path, headers={"Fastly-Key": self.reader})
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)

    def js(self, expr):
        return self.b.evaluate(expr)

    def text(self, element_id):
        return self.js("(() => { const e = document.getElementById(%s); return e ? e.textContent : null; })()"
                       % json.dumps(element_id))

    def shown(self, element_id):
        return self.js("(() => { const e = document.getElementById(%s); return !!e && !e.hidden; })()"
                       % json.dumps(element_id))

    def ink(self, canvas_id, rgb):
        return self.js(INK_JS % ((json.dumps(canvas_id),) + rgb))

    def points(self, canvas_id):
        return int(self.js("Number((document.getElementById(%s) || {dataset: {}}).dataset.points || 0)"
                           % json.dumps(canvas_id)))

    def open_dashboard(self):
        self.b.call("Page.navigate", url=self.admin_url("/dashboard"))
        wait_until(lambda: self.js("document.readyState") == "complete" and self.shown("login"), timeout=15,
                   what="the dashboard's token form")

    def enter_token(self, token):
        self.js("document.getElementById('token').focus()")
        self.b.call("Input.insertText", text=token)
        self.js("document.getElementById('open').click()")

    def wait_text(self, element_id, expected, timeout=15):
        got = []

        def check():
            got[:] = [self.text(element_id)]
            return got[0] == expected
        try:
            wait_until(check, timeout=timeout, what="#%s to show %r" % (element_id, expected))
        except AssertionError as exc:
            raise AssertionError("%s (it shows %r; message: %r)" % (exc, got[0] if got else None, self.text("msg")))

    def errors(self, since=0, allow_network=False):
        self.b.pump()
        return page_errors(self.b.events[since:], allow_network)

    def screenshot(self, name):
        path = os.path.join(self.tmp, name)
        size = self.b.screenshot(path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(size, 10000, "a screenshot of a drawn page is more than a few bytes")
        return path

    def traffic(self):
        """3 misses, 5 hits, 2 passes: 10 requests, all 200; then one key purge."""
        seq = [("/obj/a", "MISS"), ("/obj/b", "MISS"), ("/obj/c", "MISS")]
        seq += [("/obj/a", "HIT")] * 3 + [("/obj/b", "HIT")] * 2 + [("/private", "PASS")] * 2
        for path, expected in seq:
            r = request(self.e.proxy_port, "GET", path)
            self.assertEqual(r.status, 200, r.describe())
            self.assertXCache(r, expected)
        wait_until(lambda: self.admin_json("/stats")["requests"] == 10, what="/stats to count the 10 requests")
        r = request(self.e.admin_port, "POST", "/service/%s/purge/objs" % SERVICE,
                    headers={"Fastly-Key": self.token("purge_select")})
        self.assertEqual(r.status, 200, r.describe())

    # --- tests
    def test_page_headers_and_no_token_needed(self):
        for path, ctype in (("/dashboard", "text/html; charset=utf-8"), ("/dashboard.js", "text/javascript; charset=utf-8"),
                            ("/dashboard.css", "text/css; charset=utf-8")):
            r = request(self.e.admin_port, "GET", path)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.header("content-type"), ctype)
            csp = r.header("content-security-policy")
            self.assertIn("default-src 'none'", csp)
            self.assertIn("script-src 'self'", csp)
            self.assertNotIn("unsafe-inline", csp)
            self.assertEqual(r.header("x-content-type-options"), "nosniff")
            self.assertEqual(r.header("cache-control"), "no-store")
            self.assertEqual(int(r.header("content-length")), len(r.body))
        page = request(self.e.admin_port, "GET", "/dashboard").body.decode()
        self.assertIn('<meta name="edgecache-service" content="%s">' % SERVICE, page)
        self.assertIn('<script src="/dashboard.js"', page)
        # self-contained: nothing from another origin, no inline script or style
        for needle in ("http://", "https://", "//cdn", "<script>", "style=", "@import", "url("):
            self.assertNotIn(needle, page.split("-->", 1)[1])
        self.assertEqual(request(self.e.admin_port, "POST", "/dashboard").status, 405)

    def test_live_figures_charts_and_screenshot(self):
        b = self.b
        self.open_dashboard()
        self.assertFalse(self.shown("main"), "no figures before a token is given")
        self.enter_token(self.reader)
        wait_until(lambda: self.text("conn") == "live", timeout=15, what="the page to go live")
        self.assertEqual(self.js("sessionStorage.length"), 1)
        self.assertEqual(self.js("localStorage.length"), 0, "the token is kept for the tab only")

        self.traffic()
        # the figures of the sequence: since start (/stats) and in the last 120 s (real-time)
        for field, n in (("requests", "10"), ("hits", "5"), ("miss", "3"), ("pass", "2"), ("errors", "0"),
                         ("purges", "1")):
            self.wait_text("total-" + field, n)
            self.wait_text("win-" + field, n)
        self.wait_text("hit-ratio", "62.5%")
        self.assertRegex(self.text("purge-latency"), r"^[0-9.]+ (ms|µs)$")
        wait_until(lambda: self.js("document.querySelector('#status-2xx td:nth-child(3)').textContent") == "10",
                   timeout=15, what="10 responses of class 2xx in the last 120 s")
        # memory and disk as /stats says once the purge's deletes are committed
        wait_until(lambda: (lambda s: (s["memory"]["objects"], s["disk"]["objects"]))(self.admin_json("/stats")) == (0, 0),
                   timeout=15, what="the purge to empty memory and disk")
        self.wait_text("mem-objects", "0")
        self.wait_text("disk-objects", "0")
        self.wait_text("mem-budget", "64.0 MiB")
        self.assertFalse(self.shown("nodes"), "one node: no per-node table")
        # the origin: healthy, with the 5 requests that reached it (3 misses, 2 passes)
        wait_until(lambda: self.js("document.querySelector('#backend-rows tr td:nth-child(6)').textContent") == "5",
                   timeout=15, what="the origin's 5 requests")
        self.assertEqual(self.o.hits(), 5)
        backend = self.js("document.querySelector('#backend-rows tr').textContent")
        self.assertIn(self.o.address, backend)
        self.assertIn("healthy", backend)
        self.assertNotIn("unhealthy", backend)
        for kind in ("hit", "miss"):
            for q in ("p50", "p95", "p99", "mean"):
                self.assertRegex(self.text("lat-%s-%s" % (kind, q)), r"^[0-9.]+ (ms|µs)$", "%s %s" % (kind, q))

        # the real-time charts drew the requests (points, and pixels of the series' colour)
        wait_until(lambda: self.points("chart-requests") > 0 and self.ink("chart-requests", REQUESTS_BLUE) > 20,
                   timeout=15, what="the requests chart to draw its line")
        self.assertGreater(self.points("chart-bandwidth"), 0)
        self.assertGreater(self.points("chart-latency"), 0)
        self.screenshot("dashboard-desktop.png")
        self.assertEqual(self.errors(), [], "console errors or exceptions in the page")

        # a phone: nothing wider than the screen, the charts drawn again at its width
        b.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
        wait_until(lambda: self.js("innerWidth") == 390, timeout=10, what="the phone's viewport")
        width = lambda: self.js("[document.documentElement.scrollWidth, innerWidth]")
        wait_until(lambda: width()[0] <= width()[1], timeout=10, what="the page to fit a 390 px wide screen")
        wait_until(lambda: self.js("document.getElementById('chart-requests').width") == 2 * self.js(
            "document.getElementById('chart-requests').clientWidth") and self.ink("chart-requests", REQUESTS_BLUE) > 20,
            timeout=15, what="the requests chart redrawn at the phone's width")
        self.screenshot("dashboard-phone.png")
        b.call("Emulation.clearDeviceMetricsOverride")

        # the token is kept for the tab: a reload shows figures without asking; the 24 h
        # history (minute buckets) is read when the page starts
        wait_until(lambda: sum(b_["requests"] for b_ in self.history()) == 10, timeout=15,
                   what="the history to hold the 10 requests")
        self.js("window.beforeReload = true")
        b.call("Page.reload")
        wait_until(lambda: self.js("!window.beforeReload && document.readyState === 'complete'") and
                   self.text("conn") == "live", timeout=15, what="the reloaded page to go live with the kept token")
        self.assertFalse(self.shown("login"))
        wait_until(lambda: self.points("chart-day-requests") > 0 and self.ink("chart-day-requests", REQUESTS_BLUE) > 0,
                   timeout=15, what="the 24 h requests chart to draw")
        wait_until(lambda: self.ink("chart-day-ratio", HITS_GREEN) > 0, timeout=15, what="the 24 h hit-ratio chart")
        self.screenshot("dashboard-desktop-24h.png")
        self.assertEqual(self.errors(), [], "console errors or exceptions in the page")

    def history(self):
        to = int(time.time()) + 1
        doc = self.admin_json("/stats/service/%s?from=%d&to=%d&by=minute" % (SERVICE, to - 3600, to))
        return doc["data"]

    def test_hostile_service_id_is_text(self):
        """A service id is any printable text but spaces, '/', '?' and '#': in the page it is
        an attribute's text, and in the API paths it is percent-encoded ('%41' stays '%41')."""
        sid = "x\"><b>&'<i>%41"
        self.e.stop()
        self.e.args = FAST + ["--service-id", sid]
        self.e.start()
        page = request(self.e.admin_port, "GET", "/dashboard").body.decode()
        self.assertIn('content="x&quot;&gt;&lt;b&gt;&amp;&#39;&lt;i&gt;%41"', page)
        self.open_dashboard()
        self.assertEqual(self.js("document.querySelector('meta[name=\"edgecache-service\"]').content"), sid)
        self.assertEqual(self.js("document.querySelectorAll('b, i').length"), 0)
        self.enter_token(self.reader)
        wait_until(lambda: self.text("conn") == "live", timeout=15, what="the page to go live")
        self.assertIn("service " + sid, self.text("node"))
        self.assertEqual(self.errors(), [])

    def test_token_refused_or_without_read_scope(self):
        b = self.b
        self.open_dashboard()
        mark = len(b.events)
        self.enter_token(self.token("purge_select"))
        wait_until(lambda: "403" in (self.text("msg") or ""), timeout=15, what="the 403 message")
        self.assertIn("global:read", self.text("msg"))
        self.assertTrue(self.shown("msg") and self.shown("login"))
        self.assertFalse(self.shown("main"))
        self.assertIsNone(self.js("sessionStorage.getItem('edgecache.dashboard.token')"), "a refused token is not kept")
        self.screenshot("dashboard-403.png")

        self.enter_token("not-a-token")
        wait_until(lambda: "401" in (self.text("msg") or ""), timeout=15, what="the 401 message")
        self.assertTrue(self.shown("login"))
        self.assertEqual(self.errors(mark, allow_network=True), [])

    def test_node_unreachable_is_shown(self):
        b = self.b
        self.open_dashboard()
        self.enter_token(self.reader)
        wait_until(lambda: self.text("conn") == "live", timeout=15, what="the page to go live")
        mark = len(b.events)
        self.assertEqual(self.e.stop(), 0)
        wait_until(lambda: "cannot reach the admin API" in (self.text("msg") or ""), timeout=15,
                   what="the page to say the node cannot be reached")
        self.assertEqual(self.text("conn"), "offline")
        self.assertTrue(self.shown("main"), "the last figures stay on screen")
        self.assertEqual(self.errors(mark, allow_network=True), [])


if __name__ == "__main__":
    unittest.main()

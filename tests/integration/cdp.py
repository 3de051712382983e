"""
tests/integration/cdp.py — headless Chromium driven over the Chrome DevTools protocol,
Python standard library only (no playwright, puppeteer or websocket package): a minimal
RFC 6455 client (text frames out, masked; text, continuation, ping and close in) and a
Browser that starts `chromium --headless=new --remote-debugging-port=0`, finds the port in
DevToolsActivePort and talks to its first page target.

    b = Browser.start(tmpdir)            # None when no chromium is installed
    b.call("Page.navigate", url=...)
    b.evaluate("document.title")         # Runtime.evaluate, by value, promises awaited
    b.events                             # every event received so far, in order
    b.close()

Every read has a deadline; a browser that stops answering is an AssertionError, never a
hang. Chromium runs in its own process group (start_new_session) so close() ends it and its
helpers by that group's id.
"""

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request

from harness import Reader, scaled

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium():
    """The chromium binary's path, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


class WebSocket:
    """One client websocket connection (ws:// only)."""

    def __init__(self, url, timeout):
        assert url.startswith("ws://"), url
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
        self.reader = Reader(self.sock)
        status = self.reader.line()
        while self.reader.line():  # the rest of the head, up to its empty line
            pass
        if b" 101 " not in status + b" ":
            raise AssertionError("websocket upgrade refused: %r" % status[:200])

    def _take(self, n):
        return self.reader.exactly(n)

    def send_text(self, text):
        payload = text.encode()
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def _send_control(self, opcode, payload=b""):
        mask = os.urandom(4)
        self.sock.sendall(struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask +
                          bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv_text(self, timeout):
        """The next whole text message; socket.timeout when none comes within timeout."""
        self.sock.settimeout(timeout)
        parts = []
        while True:
            b0, b1 = self._take(2)
            opcode, fin = b0 & 0x0F, b0 & 0x80
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8))[0]
            mask = self._take(4) if b1 & 0x80 else None
            payload = self._take(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self._send_control(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            parts.append(payload)
            if fin:
                return b"".join(parts).decode("utf-8", "replace")

    def close(self):
        try:
            self._send_control(0x8)
        except OSError:
            pass
        self.sock.close()


class Browser:
    """Headless Chromium with one page target."""

    def __init__(self, proc, ws, profile):
        self.proc = proc
        self.ws = ws
        self.profile = profile
        self.next_id = 0
        self.events = []

    @classmethod
    def start(cls, tmpdir, width=1280, height=1800):
        """Start chromium with a fresh profile under tmpdir; None when chromium is missing."""
        binary = find_chromium()
        if binary is None:
            return None
        profile = os.path.join(tmpdir, "chromium-profile")
        os.makedirs(profile, exist_ok=True)
        cmd = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile,
               "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-default-apps", "--mute-audio",
               "--hide-scrollbars", "--window-size=%d,%d" % (width, height), "about:blank"]
        log = open(os.path.join(tmpdir, "chromium.log"), "wb")
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        browser = cls(proc, None, profile)
        try:
            port_file = os.path.join(profile, "DevToolsActivePort")
            deadline = time.monotonic() + scaled(30)
            port = None
            while port is None:
                if proc.poll() is not None:
                    raise AssertionError("chromium exited with %s:\n%s" % (proc.returncode, _tail(tmpdir)))
                try:
                    with open(port_file) as f:
                        first = f.readline().strip()
                    port = int(first) if first else None
                except (OSError, ValueError):
                    port = None
                if port is None:
                    if time.monotonic() > deadline:
                        raise AssertionError("chromium wrote no DevToolsActivePort:\n" + _tail(tmpdir))
                    time.sleep(0.05)
            ws_url = None
            while ws_url is None:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=scaled(5)) as r:
                        targets = json.load(r)
                    ws_url = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
                except OSError:
                    ws_url = None
                if ws_url is None:
                    if time.monotonic() > deadline:
                        raise AssertionError("chromium shows no page target:\n" + _tail(tmpdir))
                    time.sleep(0.05)
            browser.ws = WebSocket(ws_url, scaled(10))
        except BaseException:
            browser.close()
            raise
        return browser

    def call(self, method, timeout=20, **params):
        """Send a command and return its result; events received meanwhile go to .events."""
        self.next_id += 1
        my = self.next_id
        self.ws.send_text(json.dumps({"id": my, "method": method, "params": params}))
        deadline = time.monotonic() + scaled(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no answer from chromium to %s" % method)
            try:
                msg = json.loads(self.ws.recv_text(left))
            except socket.timeout:
                continue
            if msg.get("id") == my:
                if "error" in msg:
                    raise AssertionError("%s failed: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def pump(self):
        """Read the events that have already arrived (no waiting)."""
        while True:
            try:
                msg = json.loads(self.ws.recv_text(0.01))
            except socket.timeout:
                return
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises awaited); a thrown
        exception is an AssertionError."""
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError("page script failed: %s\n%s" % (expression[:200], json.dumps(r["exceptionDetails"])[:1000]))
        return r.get("result", {}).get("value")

    def screenshot(self, path):
        """A PNG of the page's viewport written to path; returns its size in bytes."""
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def close(self):
        if self.ws is not None:
            self.ws.close()
            self.ws = None
        if self.proc is not None:
            # the group is chromium's own (start_new_session): its renderers and helpers too
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(scaled(5))
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(scaled(5))
            except subprocess.TimeoutExpired:
                pass
        self.proc = None


def _tail(tmpdir, lines=30):
    try:
        with open(os.path.join(tmpdir, "chromium.log"), "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return "(no chromium.log)"

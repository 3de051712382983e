"""Shared pieces of the deterministic benches (bench/hitcost, bench/cold, bench/memory).

- Origin: a threaded HTTP/1.1 origin on 127.0.0.1 answering GET /o/<i> (and any other
  path) with a deterministic body of a fixed size and Cache-Control: max-age=3600.
- Edgecache: start the binary (optionally under a wrapper such as valgrind), wait for
  its ready line, read its proxy port; stop it with SIGTERM and wait.
- Client: keep-alive GETs over one connection, with the cache status checked.
- /proc readers: read_bytes of /proc/PID/io, Rss/RssAnon/RssFile of /proc/PID/status.

Everything listens on 127.0.0.1 and every network call has a timeout. Nothing here
measures time: the figures these benches report are counts (instructions, bytes read
from the device, resident pages), which a loaded machine does not change much.
"""

import http.client
import http.server
import os
import re
import signal
import socketserver
import subprocess
import threading
import time

READY_RE = re.compile(r"edgecache: ready proxy=(\S+):(\d+)")


def body_for(path, size):
    """Deterministic printable body of exactly size bytes, different per path."""
    seed = (path + "\n").encode()
    return (seed * (size // len(seed) + 1))[:size]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no delayed-ACK stall between them

    def do_GET(self):  # noqa: N802 (http.server's naming)
        size = self.server.body_size
        body = body_for(self.path, size)
        self.server.count += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Origin:
    """An origin on 127.0.0.1:<port> serving body_size-byte objects; count = requests."""

    def __init__(self, body_size):
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.body_size = body_size
        self.httpd.count = 0
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def count(self):
        return self.httpd.count

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Edgecache:
    """edgecache started with args (a list), optionally behind a wrapper (a list)."""

    def __init__(self, binary, args, stderr_path, wrapper=(), env=None):
        self.cmd = list(wrapper) + [binary] + list(args)
        self.stderr_path = stderr_path
        self.env = env
        self.proc = None
        self.port = None

    def start(self, timeout=120.0):
        errf = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=errf, env=self.env)
        errf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("edgecache exited (%s) before ready: %s\n%s" %
                                   (self.proc.returncode, " ".join(self.cmd), self.stderr_tail()))
            m = READY_RE.search(self.stderr())
            if m:
                self.port = int(m.group(2))
                return self
            time.sleep(0.05)
        raise RuntimeError("edgecache not ready after %.0fs: %s" % (timeout, self.stderr_tail()))

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stderr_tail(self, n=15):
        return "\n".join(self.stderr().splitlines()[-n:])

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout=120.0):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Client:
    """One keep-alive connection to 127.0.0.1:port; get() returns (status, cache header, body length)."""

    def __init__(self, port, cache_header="X-Cache", timeout=60.0):
        self.port, self.cache_header, self.timeout = port, cache_header, timeout
        self.conn = None

    def get(self, path):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                body = r.read()
                return r.status, (r.getheader(self.cache_header) or ""), len(body)
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def proc_io_read_bytes(pid):
    """read_bytes of /proc/PID/io: bytes this process caused to be read from a device."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return 0


def proc_mem_kib(pid):
    """{'VmRSS','RssAnon','RssFile','RssShmem'} in KiB from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0])
    return out


def drop_page_cache():
    """Drop clean page-cache pages (root only); returns True when it was done."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False

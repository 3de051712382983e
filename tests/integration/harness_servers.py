"""
tests/integration/harness_servers.py — what a test starts, and the registry that stops it
(harness.py re-exports all of it): the scripted Origin (how it answers is
harness_origin.py), the real edgecache binary as a child process (Edgecache, run_binary,
create_token), and which binary that is (BINARY, set_binary).

Every Edgecache and Origin created is registered and killed / closed at exit (atexit);
Edgecache.cleanup() stops the server with SIGTERM and *fails* when it does not exit 0 or when
its stderr holds a sanitizer report, so ASan/UBSan findings in any test surface as test
errors. Origin and Edgecache share a file because the registry tells them apart and both
register with it.
"""

import atexit
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness_base import ROOT, scaled
from harness_origin import Hold, _OriginHandler, _OriginServer, _Route


def _default_binary():
    path = os.environ.get("EDGECACHE_BINARY") or os.path.join(ROOT, "build", "edgecache")
    return os.path.abspath(path)


# Path of the binary under test. run.py sets EDGECACHE_BINARY before importing tests;
# set_binary() changes it afterwards (module attribute, read at each start).
BINARY = _default_binary()


def set_binary(path):
    """Point the harness at another binary (absolute path kept)."""
    global BINARY
    BINARY = os.path.abspath(path)
    os.environ["EDGECACHE_BINARY"] = BINARY


# --------------------------------------------------------------------------------------
# Origin (how it answers: harness_origin.py)


class Origin:
    """A scripted HTTP/1.1 origin on 127.0.0.1 (threaded, keep-alive). Started on creation.

    route(path, ...) answers an exact path (query included); route_prefix(prefix, ...)
    answers anything starting with prefix (longest prefix wins, exact routes first);
    anything else gets 404 "no route". Every request is recorded in .requests.
    """

    def __init__(self, port=0, start=True, tls=None):
        """tls: an ssl.SSLContext (see tls_server_context) to answer over TLS; .sni_seen lists
        the SNI names of handshakes (None: none sent), .tls_handshakes / .tls_failures count
        them, .tls_versions the protocol of each."""
        self.port = port
        self.tls = tls
        self.sni_seen = []
        self.tls_handshakes = 0
        self.tls_failures = 0
        self.tls_versions = []
        if tls is not None:
            tls.sni_callback = self._on_sni
        self.requests = []
        self._routes = {}
        self._prefix_routes = {}
        self._lock = threading.Lock()
        self._conns = set()
        self._holds = []
        self._server = None
        self._thread = None
        _registry.add(self)
        if start:
            self.start()

    # --- routes
    def route(self, path, status=200, headers=None, body=b"", delay=0.0, handler=None, chunked=False, hold=None):
        """Answer `path` (exact, query included) with status/headers/body, after `delay`
        seconds; or with handler(req) -> (status, headers, body). headers: dict or list of
        (name, value) (lists allow repeated fields; value None drops the default Date).
        chunked=True (or a Transfer-Encoding: chunked header) sends the body chunked with no
        Content-Length. hold: a Hold that each request waits on (recorded first, so hits()
        counts it) before anything is answered."""
        with self._lock:
            self._routes[path] = _Route(status, headers, body, delay, handler, chunked, hold)
            if hold is not None:
                self._holds.append(hold)

    def route_prefix(self, prefix, status=200, headers=None, body=b"", delay=0.0, handler=None, chunked=False,
                     hold=None):
        with self._lock:
            self._prefix_routes[prefix] = _Route(status, headers, body, delay, handler, chunked, hold)
            if hold is not None:
                self._holds.append(hold)

    def hold(self, timeout=30.0):
        """A new Hold released when this origin closes (for handlers that call h.wait())."""
        h = Hold(timeout)
        with self._lock:
            self._holds.append(h)
        return h

    def _lookup(self, path):
        with self._lock:
            route = self._routes.get(path)
            if route is not None:
                return route
            best = None
            for prefix, r in self._prefix_routes.items():
                if path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                    best = (prefix, r)
            return best[1] if best else None

    # --- recording
    def _record(self, req):
        with self._lock:
            self.requests.append(req)

    def hits(self, path=None):
        """Requests received for exactly `path` (query included), or in total."""
        with self._lock:
            if path is None:
                return len(self.requests)
            return sum(1 for r in self.requests if r.path == path)

    def requests_for(self, path):
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def reset(self):
        with self._lock:
            self.requests = []

    # --- TLS
    def _on_sni(self, sslobj, name, ctx):
        with self._lock:
            self.sni_seen.append(name)

    def _tls_event(self, ok, sock):
        with self._lock:
            if ok:
                self.tls_handshakes += 1
                self.tls_versions.append(sock.version())
            else:
                self.tls_failures += 1

    # --- connections (so that stop() also drops keep-alive connections)
    def _conn_opened(self, sock):
        with self._lock:
            self._conns.add(sock)

    def _conn_closed(self, sock):
        with self._lock:
            self._conns.discard(sock)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def running(self):
        return self._server is not None

    def start(self):
        """Listen (again) on self.port (ephemeral the first time when 0)."""
        if self._server is not None:
            return
        deadline = time.monotonic() + 5
        while True:
            try:
                server = _OriginServer(("127.0.0.1", self.port), _OriginHandler)
                break
            except OSError as exc:  # the old port may linger for a moment
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        server.origin = self
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="origin-%d" % self.port, daemon=True)
        self._thread.start()

    def stop(self):
        """Stop listening (connections are refused) and drop every open connection."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._thread = None

    def close(self):
        with self._lock:
            holds = list(self._holds)
        for h in holds:  # held handler threads answer (to nobody) and end
            h.release()
        self.stop()
        _registry.discard(self)


# --------------------------------------------------------------------------------------
# Edgecache process

READY_RE = re.compile(r"edgecache: ready proxy=(\S+):(\d+)(?: admin=(\S+):(\d+))?")
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)|"
                          r"runtime error:|SUMMARY: UndefinedBehaviorSanitizer")


class EdgecacheError(AssertionError):
    pass


class Edgecache:
    """The real binary as a child process.

    backends: Origins, ports (int) or "HOST:PORT" strings.  data_dir: None = a fresh temp
    dir removed at cleanup (kept across restart()).  args: extra flags; a flag given in args
    replaces the harness default of the same name (--threads 2 --admin-threads 2
    --accept-spread 0 --memory-size 64M --disk-size 256M --default-ttl 120, listen/admin on
    127.0.0.1:0).  defaults=False passes only args (plus nothing else) — for --config tests.

    --accept-spread 0: every worker takes new connections, whichever is free first. The
    default (50) would put a test's few connections all on the first worker, and the paths
    between workers (a request collapsed on another worker's fetch, a stream read from it)
    would go untested; test_accept_spread.py tests the default's behaviour.
    """

    DEFAULTS = [("--listen", "127.0.0.1:0"), ("--admin-listen", "127.0.0.1:0"), ("--threads", "2"),
                ("--admin-threads", "2"), ("--accept-spread", "0"), ("--memory-size", "64M"), ("--disk-size", "256M"),
                ("--default-ttl", "120")]

    def __init__(self, backends=(), data_dir=None, args=(), binary=None, defaults=True, env=None):
        self.backends = list(backends)
        self._own_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="edgecache-int-")
        self.args = list(args)
        self.binary = binary
        self.defaults = defaults
        self.env = env
        self.proc = None
        self.proxy_port = None
        self.admin_port = None
        self.proxy_host = None
        self.exit_codes = []  # of every stopped run
        self._logdir = tempfile.mkdtemp(prefix="edgecache-log-")
        self._runs = 0
        self._stderr_path = None
        self._stdout_path = None
        self._stderr_files = []
        self._cleaned = False
        self._saved = {}  # stderr/stdout texts kept after the log dir is removed
        _registry.add(self)

    # --- command line
    def _backend_arg(self, b):
        if isinstance(b, Origin):
            return b.address
        if isinstance(b, int):
            return "127.0.0.1:%d" % b
        return str(b)

    def command(self):
        cmd = [self.binary or BINARY]
        given = {a.split("=", 1)[0] for a in self.args if a.startswith("--")}
        if self.defaults:
            for flag, value in self.DEFAULTS:
                if flag not in given:
                    cmd += [flag, value]
            if "--data-dir" not in given:
                cmd += ["--data-dir", self.data_dir]
        for b in self.backends:
            cmd += ["--backend", self._backend_arg(b)]
        return cmd + self.args

    # --- lifecycle
    def start(self, timeout=10):
        """Start the process and wait for its ready line; raise EdgecacheError (with the stderr
        tail) when it exits or does not become ready in time."""
        if self.proc is not None and self.proc.poll() is None:
            raise EdgecacheError("edgecache already running (pid %d)" % self.proc.pid)
        self._runs += 1
        self._stderr_path = os.path.join(self._logdir, "stderr.%d" % self._runs)
        self._stdout_path = os.path.join(self._logdir, "stdout.%d" % self._runs)
        self._stderr_files.append(self._stderr_path)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if self.env:
            env.update(self.env)
        cmd = self.command()
        if not os.path.exists(cmd[0]):
            raise EdgecacheError("binary not found: %s (build it, or pass --binary)" % cmd[0])
        with open(self._stderr_path, "wb") as err, open(self._stdout_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=self._logdir, env=env)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            m = READY_RE.search(self._read(self._stderr_path))
            if m:
                self.proxy_host = m.group(1)
                self.proxy_port = int(m.group(2))
                self.admin_port = int(m.group(4)) if m.group(4) else None
                return self
            code = self.proc.poll()
            if code is not None:
                self.exit_codes.append(code)
                raise EdgecacheError("edgecache exited with %s before it was ready\ncommand: %s\n%s" % (
                    code, " ".join(cmd), self._tail(self._stderr_path)))
            if time.monotonic() >= deadline:
                self._kill()
                raise EdgecacheError("edgecache not ready after %.1fs\ncommand: %s\n%s" % (
                    scaled(timeout), " ".join(cmd), self._tail(self._stderr_path)))
            time.sleep(0.02)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send sig and wait for the exit; return the exit code (negative = killed by that
        signal). If it does not exit in time it is killed with SIGKILL and EdgecacheError is
        raised."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self._kill()
                raise EdgecacheError("edgecache did not exit within %.1fs of signal %d\n%s" % (
                    scaled(timeout), sig, self._tail(self._stderr_path)))
        code = self.proc.returncode
        self.exit_codes.append(code)
        self.proc = None
        return code

    def kill9(self):
        """SIGKILL (no chance to flush anything) and reap. Returns the exit code (-9)."""
        if self.proc is None:
            return None
        self._kill()
        code = self.proc.returncode
        self.exit_codes.append(code)
        self.proc = None
        return code

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def restart(self, sig=signal.SIGTERM, timeout=10):
        """stop(sig) then start() with the same data dir and flags; returns the stop's exit code."""
        code = self.stop(sig, timeout)
        self.start(timeout)
        return code

    # --- output
    def _read(self, path):
        if path in self._saved:
            return self._saved[path]
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _tail(self, path, lines=40):
        text = self._read(path) if path else ""
        tail = text.splitlines()[-lines:]
        return "--- edgecache stderr (last %d lines) ---\n%s\n---" % (len(tail), "\n".join(tail))

    def stderr_text(self):
        """Everything the process wrote to stderr, all runs (restarts) concatenated."""
        return "".join(self._read(p) for p in self._stderr_files)

    def stdout_text(self):
        return self._read(self._stdout_path) if self._stdout_path else ""

    def stderr_tail(self, lines=40):
        return self._tail(self._stderr_path, lines)

    def sanitizer_report(self):
        """The first sanitizer finding in stderr (any run), or None."""
        text = self.stderr_text()
        m = SANITIZER_RE.search(text)
        if not m:
            return None
        start = text.rfind("\n", 0, m.start()) + 1
        return text[start:start + 4000]

    # --- teardown
    def cleanup(self, check=True):
        """Stop (SIGTERM, then SIGKILL), remove temp dirs. With check, raise EdgecacheError when
        the final stop was not a clean exit 0 or a sanitizer reported anything."""
        if self._cleaned:
            return
        self._cleaned = True
        problems = []
        try:
            if self.proc is not None:
                code = self.stop()
                if code != 0:
                    problems.append("exit code %s after SIGTERM at teardown" % code)
        except EdgecacheError as exc:
            problems.append(str(exc))
        report = self.sanitizer_report()
        if report:
            problems.append("sanitizer report in stderr:\n" + report)
        text = self.stderr_tail(60)
        for path in self._stderr_files + [self._stdout_path]:
            if path:
                self._saved[path] = self._read(path)
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self._logdir, ignore_errors=True)
        _registry.discard(self)  # last: an interrupted cleanup is finished by the atexit sweep
        if problems and check:
            raise EdgecacheError("; ".join(problems) + "\n" + text)

    def emergency_kill(self):
        self._kill()
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self._logdir, ignore_errors=True)


def run_binary(args, timeout=10, cwd=None, binary=None, env=None):
    """Run the binary to completion (CLI commands: --help, migrate ...).
    Returns subprocess.CompletedProcess with text stdout/stderr. Kills it on timeout."""
    full_env = dict(os.environ)
    full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    if env:
        full_env.update(env)
    tmp = None
    if cwd is None:
        tmp = cwd = tempfile.mkdtemp(prefix="edgecache-cli-")
    try:
        return subprocess.run([binary or BINARY] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=scaled(timeout), cwd=cwd, env=full_env)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def create_token(edge_or_dir, scope="global", name=None):
    """A new API token made by `edgecache token create` for a node (or its data directory);
    AssertionError with the CLI's stderr when it fails."""
    data_dir = getattr(edge_or_dir, "data_dir", edge_or_dir)
    args = ["token", "create", "--data-dir", data_dir, "--scope", scope] + (["--name", name] if name else [])
    p = run_binary(args)
    if p.returncode != 0 or not p.stdout.strip():
        raise AssertionError("edgecache token create --scope %s failed: %s" % (scope, p.stderr))
    return p.stdout.strip().splitlines()[0].strip()


# --------------------------------------------------------------------------------------
# registry: nothing outlives the test process

class _Registry:
    def __init__(self):
        self._items = set()
        self._lock = threading.Lock()
        self.created = []  # every Edgecache created since the last take_created()

    def add(self, item):
        with self._lock:
            self._items.add(item)
            if isinstance(item, Edgecache):
                self.created.append(item)

    def discard(self, item):
        with self._lock:
            self._items.discard(item)

    def take_created(self):
        with self._lock:
            out, self.created = self.created, []
            return out

    def kill_all(self):
        with self._lock:
            items = list(self._items)
            self._items.clear()
        for item in items:
            try:
                if isinstance(item, Edgecache):
                    item.emergency_kill()
                else:
                    item.stop()
            except Exception:  # best effort at exit
                pass


_registry = _Registry()
atexit.register(_registry.kill_all)

"""
tests/integration/harness_base.py — the bottom of the test harness (harness.py re-exports
all of it): the repository root, timeouts scaled for slow (sanitizer) builds, waiting on a
condition with a deadline, sleeping to an instant, and loopback ports.

Timeouts scale with the environment variable EDGECACHE_TIMEOUT_SCALE (default 1; the
run.py driver raises it for sanitizer builds whose binary name contains "asan").
"""

import os
import socket
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def timeout_scale():
    try:
        return max(1.0, float(os.environ.get("EDGECACHE_TIMEOUT_SCALE", "1")))
    except ValueError:
        return 1.0


def scaled(seconds):
    """A timeout scaled for slow (sanitizer) builds."""
    return seconds * timeout_scale()


def wait_until(predicate, timeout=5.0, interval=0.02, what="condition"):
    """Poll predicate() until it is truthy; return its value or raise AssertionError."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (scaled(timeout), what))
        time.sleep(interval)


def free_port():
    """An ephemeral port that was free a moment ago (racy; prefer port 0 where possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_sockets(port):
    """How many TCP sockets listen on `port` (any address, IPv4 and IPv6), read from
    /proc/net/tcp and tcp6: a SO_REUSEPORT group counts each of its sockets."""
    count = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def closed_port():
    """A loopback port with nothing listening on it (connections are refused)."""
    return free_port()


def sleep_until(t_monotonic):
    """Sleep until a monotonic instant (no-op if already past)."""
    delay = t_monotonic - time.monotonic()
    if delay > 0:
        time.sleep(delay)

#!/usr/bin/env python3
"""Helpers for bench/run: the parts that are awkward in bash.

Subcommands (each prints plain text for bench/run to read):

  ports N                 print N distinct free TCP ports on 127.0.0.1
  mkdocroot DIR N         write the bench objects under DIR: hot-1k, hot-64k, set/0..N-1
  warm PORT KIND N        request every object twice over keep-alive connections and
                          check the second answer is a cache hit the way KIND reports it
                          (edgecache: X-Cache HIT; varnish: X-Varnish with two ids;
                          nginx: X-Cache-Status HIT; ceiling: no check); exit 1 on failure
  pids MODE PID           the pids of that server (MODE as for mem), space separated
  mem MODE PID            processes of the server rooted at PID (MODE tree: PID and all its
                          descendants; children: descendants only, e.g. Varnish's worker)
                          and the sum of their RSS and PSS: "<nprocs> <rss_kib> <pss_kib>"
  wrk ...                 one timed wrk run with CPU accounting, one TSV line on stdout
  table RESULTS MEM       format the collected TSV rows as the final report

Everything talks to 127.0.0.1 only and every network call has a timeout.
"""

import http.client
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time

HOT_OBJECTS = (("/hot-1k", 1024), ("/hot-64k", 65536))
SET_OBJECT_SIZE = 1024


def cmd_ports(argv):
    n = int(argv[0])
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        print(" ".join(str(s.getsockname()[1]) for s in socks))
    finally:
        for s in socks:
            s.close()
    return 0


def _body(size, name):
    """Deterministic printable body of exactly size bytes, different per object."""
    seed = (name + "\n").encode()
    reps = size // len(seed) + 1
    return (seed * reps)[:size]


def cmd_mkdocroot(argv):
    root, n = argv[0], int(argv[1])
    os.makedirs(os.path.join(root, "set"), exist_ok=True)
    for path, size in HOT_OBJECTS:
        with open(os.path.join(root, path.lstrip("/")), "wb") as f:
            f.write(_body(size, path))
    for i in range(n):
        with open(os.path.join(root, "set", str(i)), "wb") as f:
            f.write(_body(SET_OBJECT_SIZE, "/set/%d" % i))
    return 0


def _is_hit(kind, resp):
    if kind == "edgecache":
        return (resp.getheader("X-Cache") or "").strip().upper().startswith("HIT")
    if kind == "varnish":
        return len((resp.getheader("X-Varnish") or "").split()) == 2
    if kind == "nginx":
        return (resp.getheader("X-Cache-Status") or "").strip().upper() == "HIT"
    return True  # ceiling: a plain file server has no cache to check


class _Warmer:
    def __init__(self, port, kind, objects):
        self.port, self.kind, self.objects = port, kind, objects
        self.errors = []
        self.retries = 0
        self.lock = threading.Lock()

    def _get(self, conn, path):
        for attempt in range(3):
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                return resp, body
            except (OSError, http.client.HTTPException):
                conn.close()
                if attempt == 2:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")

    def run_part(self, part):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for path, size in part:
                resp, body = self._get(conn, path)
                if resp.status != 200 or len(body) != size:
                    self._err("%s: first GET status %d, %d bytes" % (path, resp.status, len(body)))
                    continue
                hit = False
                for attempt in range(3):
                    resp, body = self._get(conn, path)
                    if resp.status != 200 or len(body) != size:
                        self._err("%s: GET status %d, %d bytes" % (path, resp.status, len(body)))
                        break
                    if _is_hit(self.kind, resp):
                        hit = True
                        break
                    with self.lock:
                        self.retries += 1
                    time.sleep(0.02 * (attempt + 1))
                if not hit and resp.status == 200:
                    hdrs = "; ".join("%s: %s" % kv for kv in resp.getheaders())
                    self._err("%s: not a hit after 3 tries (%s)" % (path, hdrs))
        except (OSError, http.client.HTTPException) as e:
            self._err("connection failed: %s" % e)
        finally:
            conn.close()

    def _err(self, msg):
        with self.lock:
            self.errors.append(msg)


def cmd_warm(argv):
    port, kind, n = int(argv[0]), argv[1], int(argv[2])
    objects = list(HOT_OBJECTS) + [("/set/%d" % i, SET_OBJECT_SIZE) for i in range(n)]
    w = _Warmer(port, kind, objects)
    nthreads = 4
    parts = [objects[i::nthreads] for i in range(nthreads)]
    threads = [threading.Thread(target=w.run_part, args=(p,)) for p in parts]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    if w.errors:
        for e in w.errors[:5]:
            print("warm: " + e, file=sys.stderr)
        print("warm: %d of %d objects failed" % (len(w.errors), len(objects)), file=sys.stderr)
        return 1
    check = "hits verified" if kind != "ceiling" else "no hit check (plain file server)"
    print("%d objects x2 in %.1fs, %s, %d re-tries" % (len(objects), took, check, w.retries))
    return 0


def _all_ppids():
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces
        rest = s[s.rindex(")") + 2:].split()
        out[int(d)] = int(rest[1])
    return out


def server_pids(mode, root):
    ppids = _all_ppids()
    tree = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in ppids.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    if mode == "children":
        tree.discard(root)
    return sorted(p for p in tree if p in ppids)


def _mem_kib(pid):
    rss = pss = 0
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = pss = int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def cmd_pids(argv):
    print(" ".join(str(p) for p in server_pids(argv[0], int(argv[1]))))
    return 0


def cmd_mem(argv):
    mode, root = argv[0], int(argv[1])
    pids = server_pids(mode, root)
    rss = pss = 0
    for p in pids:
        r, s = _mem_kib(p)
        rss += r
        pss += s
    print("%d %d %d" % (len(pids), rss, pss))
    return 0


def _cpu_ticks(pids):
    """utime, stime ticks summed over pids (threads included)."""
    u = s = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        u += int(rest[11])
        s += int(rest[12])
    return u, s


def _machine_ticks():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user = fields[0] + fields[1]  # user + nice (guest is already inside user)
    busy = user + fields[2] + fields[5] + fields[6] + (fields[7] if len(fields) > 7 else 0)
    return user, busy


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out):
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return (float(rps.group(1)) if rps else float("nan"),
            _ms(p99.group(1)) if p99 else float("nan"), errors)


def cmd_wrk(argv):
    """wrk SERVER WORKLOAD URL DURATION CONNS RAWFILE MODE PID [SCRIPT]"""
    server, workload, url, duration, conns, rawfile, mode, root = argv[:8]
    script = argv[8] if len(argv) > 8 else ""
    cmd = ["wrk", "-t1", "-c%s" % conns, "-d%ss" % duration, "--latency"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    pids = server_pids(mode, int(root))
    hz = os.sysconf("SC_CLK_TCK")
    su0, ss0 = _cpu_ticks(pids)
    mu0, mb0 = _machine_ticks()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=float(duration) + 30)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace") + "\nwrk timed out\n", 124
    elapsed = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    mu1, mb1 = _machine_ticks()
    su1, ss1 = _cpu_ticks(pids)
    with open(rawfile, "w") as f:
        f.write("$ %s\n%s" % (" ".join(cmd), out))
    rps, p99, errors = parse_wrk(out)
    if rc != 0:
        errors = max(errors, 1)
    srv_cores = ((su1 - su0) + (ss1 - ss0)) / hz / elapsed
    wrk_user = ru1.ru_utime - ru0.ru_utime
    # user time of everything that is neither the server nor wrk: compilers, other jobs.
    # (kernel time is left out on purpose: loopback softirq work lands there unattributed)
    other_cores = max(0.0, ((mu1 - mu0) - (su1 - su0)) / hz - wrk_user) / elapsed
    busy_cores = (mb1 - mb0) / hz / elapsed
    print("\t".join([server, workload, "%.1f" % rps, "%.3f" % p99, str(errors),
                     "%.2f" % srv_cores, "%.2f" % other_cores, "%.2f" % busy_cores]))
    return 0


def _fmt_mib(kib):
    return "%.1f" % (kib / 1024.0)


def cmd_table(argv):
    results, memfile = argv[0], argv[1]
    rows = []
    with open(results) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 8:
                rows.append(parts)
    varnish = {r[1]: float(r[2]) for r in rows if r[0] == "varnish"}
    head = "%-10s %-9s %12s %9s %10s %6s %8s %8s" % (
        "server", "workload", "requests/s", "p99 ms", "vs varnish", "errors",
        "srv cpu", "other")
    lines = [head, "-" * len(head)]
    for server, workload, rps, p99, errors, srv, other, _busy in rows:
        base = varnish.get(workload)
        ratio = "%.2fx" % (float(rps) / base) if base and server != "varnish" else (
            "1.00x" if server == "varnish" else "-")
        lines.append("%-10s %-9s %12s %9s %10s %6s %8s %8s" % (
            server, workload, "%.0f" % float(rps), "%.2f" % float(p99), ratio, errors,
            srv, other))
    lines.append("")
    mem = []
    if os.path.exists(memfile):
        with open(memfile) as f:
            mem = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    if mem:
        head = "%-10s %-34s %6s %12s %12s %12s" % (
            "server", "processes counted", "procs", "RSS idle MiB", "RSS warm MiB",
            "PSS warm MiB")
        lines += [head, "-" * len(head)]
        for server, what, nprocs, rss0, rss1, pss1 in mem:
            lines.append("%-10s %-34s %6s %12s %12s %12s" % (
                server, what, nprocs, _fmt_mib(int(rss0)), _fmt_mib(int(rss1)),
                _fmt_mib(int(pss1))))
    print("\n".join(lines))
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmds = {"ports": cmd_ports, "mkdocroot": cmd_mkdocroot, "warm": cmd_warm,
            "mem": cmd_mem, "pids": cmd_pids, "wrk": cmd_wrk, "table": cmd_table}
    fn = cmds.get(sys.argv[1])
    if fn is None:
        print(__doc__, file=sys.stderr)
        return 2
    return fn(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())

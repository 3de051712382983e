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
                          and the sums of their RSS, PSS, PSS by kind of page and RSS by kind
                          of page: "<nprocs> <rss> <pss> <pss anon> <pss file> <pss shmem>
                          <rss anon> <rss file> <rss shmem>" (KiB)
  pagecache PATH...       "<files> <KiB>": page cache held by the files at PATH (directories
                          walked), by mincore(2), whether a process maps them or not
  wrk ...                 one timed wrk run with CPU accounting, one TSV line on stdout
  table RESULTS MEM       format the collected TSV rows (one per round, server and
                          workload) as the final report: medians, spreads, ratios

Subcommands for bench/purge (objects /o/0 .. /o/N-1; object i has surrogate key k<i>;
objects 0..1999 also carry g0..g9, 200 each, and 2000..3999 carry b0, b1, 1,000 each):

  purge-map FILE N        write the origin's nginx map from URI to the shared keys
  purge-step M            a step coprime to M for purge-key.lua's walk
  purge-fill URL N MARK BOUND SCRIPT RAW
                          run wrk with purge-fill.lua until all N answers are in (SIGINT
                          when the MARK file appears, BOUND seconds at most); prints
                          "<answered> <ok> <seconds>", exit 1 unless all N were 200
  purge-probe PORT KIND EXPECT I...
                          GET /o/I for each I, expect each to be a hit or a miss
                          (EXPECT hit|miss, KIND as for warm); prints the counts, exit 1
                          on any surprise
  purge-sample N FIRST STEP DONE COUNT
                          COUNT object numbers whose keys were among the first DONE of
                          purge-key.lua's walk
  purge-wrk SERVER URL DURATION CONNS RAW PID SCRIPT
                          one timed wrk purge run with CPU accounting (and, when perf
                          works, a count of the server's fsync/fdatasync/msync calls) and
                          the machine's disk writes (during it, and in the second before
                          it: other jobs); one TSV line on stdout
  purge-table RESULTS GROUPS
                          format the purge report of one round
  purge-targets ROUNDS RESULTS GROUPS
                          check issue 4's targets over rounds 1..ROUNDS, whose files are
                          RESULTS and GROUPS with %d for the round number
  disk-probe DIR SECONDS  synced 512-byte writes in DIR for SECONDS: how many took over
                          5 ms, the longest, and the time spent in those

Everything talks to 127.0.0.1 only and every network call has a timeout.
"""

import http.client
import math
import os
import re
import resource
import signal
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
    """(rss, pss, pss_anon, pss_file, pss_shmem) in KiB from /proc/PID/smaps_rollup (the
    Pss_* split needs Linux 5.7; without it, anon/file/shmem come from /proc/PID/status'
    RssAnon/RssFile/RssShmem)"""
    v = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"):
                    v[k] = int(rest.split()[0])
    except OSError:
        pass
    if "Pss_Anon" not in v:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    k, _, rest = line.partition(":")
                    if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                        v[{"VmRSS": "Rss", "RssAnon": "Pss_Anon", "RssFile": "Pss_File",
                           "RssShmem": "Pss_Shmem"}[k]] = int(rest.split()[0])
        except OSError:
            pass
        v.setdefault("Pss", v.get("Rss", 0))
    return tuple(v.get(k, 0) for k in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"))


def _rss_split_kib(pid):
    """(rss anon, rss file, rss shmem) in KiB from /proc/PID/status: what the process has
    resident, by kind of page, counted in full (PSS divides shared pages among sharers)"""
    v = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("RssAnon", "RssFile", "RssShmem"):
                    v[k] = int(rest.split()[0])
    except OSError:
        pass
    return tuple(v.get(k, 0) for k in ("RssAnon", "RssFile", "RssShmem"))


def _mincore_kib(path):
    """KiB of the file at path resident in the page cache (mincore(2) over a read-only map
    of it), whether any process maps it or not; 0 for an empty or unreadable file"""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return 0
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        prot_read, map_shared = 1, 1
        addr = libc.mmap(None, size, prot_read, map_shared, fd, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            return 0
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            vec = (ctypes.c_ubyte * ((size + page - 1) // page))()
            if libc.mincore(addr, size, vec) != 0:
                return 0
            return sum(b & 1 for b in vec) * page // 1024
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def cmd_pagecache(argv):
    """pagecache PATH...: "<files> <KiB> <per path>": the page cache held by the regular
    files at PATH (files, or directories walked whole), in all and per PATH
    ("name=KiB,name=KiB" with each PATH's last component)"""
    files = kib = 0
    each = []
    for root in argv:
        paths = [root]
        if os.path.isdir(root):
            paths = [os.path.join(d, n) for d, _, names in os.walk(root) for n in names]
        mine = 0
        for path in paths:
            if os.path.isfile(path) and not os.path.islink(path):
                files += 1
                mine += _mincore_kib(path)
        kib += mine
        each.append("%s=%d" % (os.path.basename(root.rstrip("/")) or root, mine))
    print("%d %d %s" % (files, kib, ",".join(each)))
    return 0


def cmd_pids(argv):
    print(" ".join(str(p) for p in server_pids(argv[0], int(argv[1]))))
    return 0


def cmd_mem(argv):
    """mem MODE PID: "<nprocs> <rss> <pss> <pss anon> <pss file> <pss shmem> <rss anon>
    <rss file> <rss shmem>" in KiB, summed over the processes"""
    mode, root = argv[0], int(argv[1])
    pids = server_pids(mode, root)
    tot = [0] * 8
    for p in pids:
        for i, x in enumerate(_mem_kib(p) + _rss_split_kib(p)):
            tot[i] += x
    print("%d %s" % (len(pids), " ".join(str(x) for x in tot)))
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
    """(user, busy, steal) ticks of the whole machine (/proc/stat). Steal is the time the
    hypervisor gave this VM's runnable CPUs to someone else: other tenants of the host,
    invisible in any process's figures; anything but ~0 during a run makes its rates and
    tails noise."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user = fields[0] + fields[1]  # user + nice (guest is already inside user)
    steal = fields[7] if len(fields) > 7 else 0
    busy = user + fields[2] + fields[5] + fields[6] + steal
    return user, busy, steal


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
    mu0, mb0, st0 = _machine_ticks()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=float(duration) + 30)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace") + "\nwrk timed out\n", 124
    elapsed = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    mu1, mb1, st1 = _machine_ticks()
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
    steal_cores = (st1 - st0) / hz / elapsed
    print("\t".join([server, workload, "%.1f" % rps, "%.3f" % p99, str(errors),
                     "%.2f" % srv_cores, "%.2f" % other_cores, "%.2f" % busy_cores, "%.2f" % steal_cores]))
    return 0


def _fmt_mib(kib):
    return "%.1f" % (kib / 1024.0)


def _spread(xs, fmt):
    """'median (min-max)' of xs, or the one value"""
    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt % xs[0]
    return (fmt + " (" + fmt + "-" + fmt + ")") % (_median(xs), min(xs), max(xs))


# the peers edgecache is compared with, in the ratio lines: ceiling = the h2o file server
RATIO_PEERS = (("ceiling", "h2o"), ("varnish", "Varnish"), ("nginx", "nginx"))


def cmd_table(argv):
    """table RESULTS MEM: RESULTS rows are 'round server workload rps p99 errors srv other
    busy [steal]' (one per wrk run); per server and workload the median over rounds and the spread
    (min-max), then edgecache's ratio to each peer, one ratio per round (both runs of a
    pair come from the same round, a minute apart at most), median and spread."""
    results, memfile = argv[0], argv[1]
    runs = {}  # (server, workload) -> {round: (rps, p99, errors, srv, other, steal)}
    order, workloads = [], []
    with open(results) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 9:  # from before the steal figure
                parts.append("nan")
            if len(parts) != 10:
                continue
            rnd, server, workload = int(parts[0]), parts[1], parts[2]
            runs.setdefault((server, workload), {})[rnd] = (
                float(parts[3]), float(parts[4]), int(parts[5]), float(parts[6]), float(parts[7]), float(parts[9]))
            if server not in order:
                order.append(server)
            if workload not in workloads:
                workloads.append(workload)
    nrounds = max([max(r) for r in runs.values()] or [0])
    head = "%-10s %-9s %-24s %-22s %6s %7s %7s %9s" % (
        "server", "workload", "requests/s med (min-max)", "p99 ms med (min-max)", "errors", "srv cpu", "other",
        "steal max")
    lines = ["%d round%s; each round runs every server once per workload, in alternating order" %
             (nrounds, "" if nrounds == 1 else "s"), "", head, "-" * len(head)]
    for workload in workloads:
        for server in order:
            r = runs.get((server, workload))
            if not r:
                continue
            vals = list(r.values())
            steal = [v[5] for v in vals if not math.isnan(v[5])]
            lines.append("%-10s %-9s %-24s %-22s %6d %7.2f %7.2f %9s" % (
                server, workload, _spread([v[0] for v in vals], "%.0f"), _spread([v[1] for v in vals], "%.2f"),
                sum(v[2] for v in vals), _median([v[3] for v in vals]), _median([v[4] for v in vals]),
                "%.2f" % max(steal) if steal else "-"))
    if "edgecache" in order:
        lines += ["", "edgecache / peer, per round (median, min-max over rounds; p99: edgecache's over the peer's,"
                  " below 1 is better)"]
        head = "%-9s %-8s %-26s %-26s" % ("workload", "peer", "requests/s ratio", "p99 ratio")
        lines += [head, "-" * len(head)]
        for workload in workloads:
            mine = runs.get(("edgecache", workload), {})
            for peer, label in RATIO_PEERS:
                theirs = runs.get((peer, workload), {})
                common = sorted(set(mine) & set(theirs))
                if not common:
                    continue
                rr = [mine[i][0] / theirs[i][0] for i in common if theirs[i][0] > 0]
                pr = [mine[i][1] / theirs[i][1] for i in common if theirs[i][1] > 0]
                lines.append("%-9s %-8s %-26s %-26s" % (workload, label, _spread(rr, "%.2fx"), _spread(pr, "%.2fx")))
    lines.append("")
    mem = []
    if os.path.exists(memfile):
        with open(memfile) as f:
            mem = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    if mem:
        # row: server, what, nprocs, rss idle, rss warm, pss warm, pss anon, pss file, pss shmem,
        #      rss anon, rss file, rss shmem, page-cache files, page-cache KiB, what the files are,
        #      page-cache KiB per path ("name=KiB,...")
        head = "%-10s %-34s %5s %8s %8s %8s %8s %8s %8s %10s" % (
            "server", "processes counted", "procs", "RSS idle", "RSS warm", "anon", "file", "shmem", "PSS warm",
            "page cache")
        lines += ["memory, MiB (anon, file, shmem: the warm RSS split by kind of page; page cache: the kernel's",
                  "cache of the server's data files, mapped or not, see the notes below)", head, "-" * len(head)]
        notes, rss = [], {}
        for row in mem:
            row = row + [""] * (16 - len(row))
            server, what, nprocs = row[:3]
            kib = [int(x) if x.strip().isdigit() else 0 for x in row[3:14]]
            rss[server] = kib[1]
            pc = _fmt_mib(kib[10]) if row[13].strip() else "-"
            lines.append("%-10s %-34s %5s %8s %8s %8s %8s %8s %8s %10s" % (
                server, what, nprocs, _fmt_mib(kib[0]), _fmt_mib(kib[1]), _fmt_mib(kib[6]), _fmt_mib(kib[7]),
                _fmt_mib(kib[8]), _fmt_mib(kib[2]), pc))
            if row[14]:
                split = ""
                if "," in row[15]:
                    split = ": " + ", ".join("%s %s" % (n, _fmt_mib(int(k))) for n, _, k in
                                             (x.partition("=") for x in row[15].split(",")))
                notes.append("  %-9s page cache of %s%s" % (server, row[14], split))
        lines += notes
        cached = int(os.environ.get("BENCH_CACHED_BYTES", "0"))
        if "edgecache" in rss and "nginx" in rss and cached > 0:
            limit = rss["nginx"] + cached // 1024
            lines.append("target (issue 24): edgecache RSS warm %s MiB <= nginx RSS warm %s + bytes cached %s = %s MiB: %s" % (
                _fmt_mib(rss["edgecache"]), _fmt_mib(rss["nginx"]), _fmt_mib(cached // 1024), _fmt_mib(limit),
                "met" if rss["edgecache"] <= limit else "NOT met"))
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------- bench/purge

PURGE_GROUPS = (("g", 0, 200, 10), ("b", 2000, 1000, 2))  # prefix, first object, size, count
PURGE_SINGLE_FIRST = 4000  # single-key purges use k4000 .. k<N-1>: no shared key on them


def purge_groups():
    """[(key, first object, objects)] for every shared key."""
    out = []
    for prefix, first, size, count in PURGE_GROUPS:
        for j in range(count):
            out.append(("%s%d" % (prefix, j), first + j * size, size))
    return out


def cmd_purge_map(argv):
    path, n = argv[0], int(argv[1])
    with open(path, "w") as f:
        for key, first, size in purge_groups():
            for i in range(first, min(first + size, n)):
                f.write('/o/%d " %s";\n' % (i, key))
    return 0


def cmd_purge_step(argv):
    m = int(argv[0])
    step = max(1, int(m * 0.6180339887))
    while math.gcd(step, m) != 1:
        step += 1
    print(step)
    return 0


def cmd_purge_fill(argv):
    url, n, mark, bound, script, rawfile = argv[0], int(argv[1]), argv[2], int(argv[3]), argv[4], argv[5]
    env = dict(os.environ, BENCH_PURGE_OBJECTS=str(n), BENCH_PURGE_MARK=mark)
    cmd = ["wrk", "-t1", "-c50", "-d%ds" % bound, "-s", script, url]
    if os.path.exists(mark):
        os.unlink(mark)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    took = None
    try:
        while p.poll() is None:
            if took is None and os.path.exists(mark):
                took = time.monotonic() - t0
                p.send_signal(signal.SIGINT)  # wrk stops at once and prints its summary
            if time.monotonic() - t0 > bound + 30:
                p.kill()
                break
            time.sleep(0.02)
        out = p.communicate(timeout=30)[0]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    with open(rawfile, "w") as f:
        f.write("$ %s\n%s" % (" ".join(cmd), out))
    m = re.search(r"^fill: sent (\d+) answered (\d+) ok (\d+) bad (\d+)", out, re.M)
    if not m:
        print("purge-fill: no summary from wrk (see %s)" % rawfile, file=sys.stderr)
        return 1
    answered, ok = int(m.group(2)), int(m.group(3))
    print("%d %d %.1f" % (answered, ok, took if took is not None else time.monotonic() - t0))
    return 0 if ok == n else 1


def cmd_purge_probe(argv):
    port, kind, expect = int(argv[0]), argv[1], argv[2]
    idx = [int(x) for x in argv[3:]]
    hits = misses = bad = 0
    surprises = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in idx:
            path = "/o/%d" % i
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                bad += 1
                surprises.append("%s: %s" % (path, e))
                continue
            if resp.status != 200 or body != ("object %d\n" % i).encode():
                bad += 1
                surprises.append("%s: status %d, %d bytes" % (path, resp.status, len(body)))
                continue
            hit = _is_hit(kind, resp)
            if hit:
                hits += 1
            else:
                misses += 1
            if hit != (expect == "hit"):
                surprises.append("%s: %s, expected a %s" % (path, "hit" if hit else "miss", expect))
    finally:
        conn.close()
    print("%d hits, %d misses, %d bad" % (hits, misses, bad))
    for s in surprises[:5]:
        print("probe: " + s, file=sys.stderr)
    return 1 if surprises else 0


def cmd_purge_sample(argv):
    n, first, step, done, count = (int(x) for x in argv[:5])
    m = n - first
    done = max(0, min(done, m))
    if done == 0 or count <= 0:
        return 0
    positions = sorted({(k * done) // count for k in range(count)})
    print(" ".join(str(first + (p * step) % m) for p in positions))
    return 0


def _disk_write_bytes():
    """Bytes written to every whole block device since boot (/proc/diskstats)."""
    total = 0
    try:
        with open("/proc/diskstats") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 10:
                    continue
                name = parts[2]
                if os.path.exists("/sys/block/%s" % name) and not name.startswith(("loop", "ram", "dm-")):
                    total += int(parts[9]) * 512
    except OSError:
        pass
    return total


def cmd_disk_probe(argv):
    """disk-probe DIR SECONDS: time synced 512-byte writes (O_DSYNC, one at a time, into a
    1 MiB file in DIR, removed after) for SECONDS; print 'writes N over_5ms K longest_ms X
    stalled_ms S', S being the time spent in the writes that took over 5 ms. It measures
    the disk a durable purge waits for, with nothing of edgecache's running."""
    path = os.path.join(argv[0], "disk-probe.bin")
    secs = float(argv[1])
    size, block = 1 << 20, b"\0" * 512
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"\0" * size)
        os.fsync(fd)
        os.close(fd)
        fd = os.open(path, os.O_RDWR | os.O_DSYNC)
        n = over = 0
        longest = stalled = 0.0
        off = 0
        end = time.monotonic() + secs
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                break
            os.pwrite(fd, block, off)
            ms = (time.monotonic() - t0) * 1000
            off = (off + 512) % size
            n += 1
            longest = max(longest, ms)
            if ms > 5:
                over += 1
                stalled += ms
    finally:
        os.close(fd)
        os.unlink(path)
    print("writes %d over_5ms %d longest_ms %.1f stalled_ms %.0f" % (n, over, longest, stalled))
    return 0


def _perf_syncs_start(pids, outfile):
    """perf stat counting the sync calls and the task switches of pids, or None when perf
    cannot do it."""
    if subprocess.run(["sh", "-c", "command -v perf"], capture_output=True).returncode != 0:
        return None
    events = "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_enter_msync,context-switches"
    try:
        p = subprocess.Popen(["perf", "stat", "-x,", "-o", outfile, "-e", events, "-p", ",".join(str(p) for p in pids)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    time.sleep(0.3)  # let it attach before the run starts
    if p.poll() is not None:
        return None
    return p


def _perf_syncs_stop(p, outfile):
    """(sync calls, task switches) perf counted; -1 for what it could not count."""
    if p is None:
        return -1, -1
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return -1, -1
    total, seen, switches = 0, False, -1
    try:
        with open(outfile) as f:
            for line in f:
                parts = line.split(",")
                if len(parts) > 2 and parts[0].strip().isdigit():
                    if parts[2].startswith("syscalls:"):
                        total += int(parts[0])
                        seen = True
                    elif parts[2].startswith("context-switches"):
                        switches = int(parts[0])
    except OSError:
        return -1, -1
    return (total if seen else -1), switches


def cmd_purge_wrk(argv):
    """purge-wrk SERVER URL DURATION CONNS RAW PID SCRIPT"""
    server, url, duration, conns, rawfile, root, script = argv[:7]
    cmd = ["wrk", "-t1", "-c%s" % conns, "-d%ss" % duration, "--latency", "-s", script, url]
    pids = server_pids("tree", int(root))
    hz = os.sysconf("SC_CLK_TCK")
    perf = _perf_syncs_start(pids, rawfile + ".perf")
    # the disk's writes in the second before the run: what other jobs are doing to it
    qw0, qt0 = _disk_write_bytes(), time.monotonic()
    time.sleep(1.0)
    quiet_rate = (_disk_write_bytes() - qw0) / 1e6 / (time.monotonic() - qt0)
    su0, ss0 = _cpu_ticks(pids)
    mu0, _mb0, st0 = _machine_ticks()
    dw0 = _disk_write_bytes()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=float(duration) + 60)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace") + "\nwrk timed out\n", 124
    elapsed = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    mu1, _mb1, st1 = _machine_ticks()
    su1, ss1 = _cpu_ticks(pids)
    dw1 = _disk_write_bytes()
    syncs, switches = _perf_syncs_stop(perf, rawfile + ".perf")
    try:
        os.unlink(rawfile + ".perf")
    except OSError:
        pass
    with open(rawfile, "w") as f:
        f.write("$ %s\n%s" % (" ".join(cmd), out))
    rps, p99, errors = parse_wrk(out)
    if rc != 0:
        errors = max(errors, 1)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    reqs = re.search(r"^\s+(\d+) requests in", out, re.M)
    live = re.search(r"^purge: keys (\d+) live_seconds (\S+)", out, re.M)
    live_rate = float("nan")
    if live:
        try:
            secs = float(live.group(2))
            if secs > 0:
                live_rate = int(live.group(1)) / secs
        except ValueError:
            pass
        if live_rate != live_rate and reqs and int(reqs.group(1)) < int(live.group(1)):
            live_rate = rps  # the whole run was inside the first pass
    srv_cores = ((su1 - su0) + (ss1 - ss0)) / hz / elapsed
    wrk_user = ru1.ru_utime - ru0.ru_utime
    other_cores = max(0.0, ((mu1 - mu0) - (su1 - su0)) / hz - wrk_user) / elapsed
    # per answered purge: the server's CPU time, and its task switches (both hold better than
    # a rate when other jobs share the machine); -1 when there were none, or perf could not count
    nreq = int(reqs.group(1)) if reqs else 0
    cpu_us = ((su1 - su0) + (ss1 - ss0)) / hz * 1e6 / nreq if nreq else -1
    per_switch = switches / nreq if nreq and switches >= 0 else -1
    print("\t".join([server, "%.1f" % rps, "%.3f" % (_ms(p50.group(1)) if p50 else float("nan")),
                     "%.3f" % p99, str(errors), "%.2f" % srv_cores, "%.2f" % other_cores,
                     reqs.group(1) if reqs else "0", "%.1f" % live_rate, str(syncs),
                     "%.1f" % quiet_rate, "%.1f" % ((dw1 - dw0) / 1e6 / elapsed),
                     "%.1f" % cpu_us, "%.3f" % per_switch, "%.2f" % ((st1 - st0) / hz / elapsed)]))
    return 0


def _median(xs):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2.0


def _purge_load(results, groups_file):
    """RESULTS rows from purge-wrk (SERVER is "<system>" for the run over cached keys,
    "<system>:absent" for the run over keys nothing carries), by label; GROUPS rows
    'server key objects ms status gone' from bench/purge's curl purges, by server; and
    the systems in the order they appear. A missing file reads as empty."""
    rows, groups, order = {}, {}, []
    try:
        with open(results) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 12:  # from before the CPU and task-switch figures
                    parts += ["-1", "-1"]
                if len(parts) == 14:  # from before the steal figure
                    parts.append("nan")
                if len(parts) == 15:
                    rows[parts[0]] = parts
                    name = parts[0].split(":")[0]
                    if name not in order:
                        order.append(name)
    except FileNotFoundError:
        pass
    try:
        with open(groups_file) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 6:
                    groups.setdefault(parts[0], []).append(parts)
                    if parts[0] not in order:
                        order.append(parts[0])
    except FileNotFoundError:
        pass
    return rows, groups, order


def cmd_purge_targets(argv):
    """purge-targets ROUNDS RESULTS GROUPS: issue 4's targets. With several rounds, the
    rate is checked on the median of each round's edgecache/Varnish ratio, the p99 on
    the median of edgecache's p99s, the 1,000-object key on the slowest of all its
    purges; each line also gives every round's figure and how many met the target.
    Prints nothing when no round has edgecache rows."""
    n = int(argv[0])
    rounds = [_purge_load(argv[1] % i, argv[2] % i)[:2] for i in range(1, n + 1)]
    if not any("edgecache" in rows for rows, _ in rounds):
        return 0

    def verdict(ok):
        return "met" if ok else "MISSED"

    def each_round(vals, fmt, ok):
        if n == 1:
            return ""
        return "; each round: %s; met in %d of %d" % (
            " ".join(fmt % v for v in vals), sum(1 for v in vals if ok(v)), len(vals))

    def rates(system):
        """(system's purges/s, Varnish's) for each round that ran both"""
        return [(float(r[system][1]), float(r["varnish"][1])) for r, _ in rounds
                if system in r and "varnish" in r and float(r["varnish"][1]) > 0]

    out = []
    pairs = rates("edgecache")
    if pairs:
        ratios = [e / v for e, v in pairs]
        m = _median(ratios)
        if n == 1:
            e, v = pairs[0]
            what = "%.0f/s vs %.0f/s, %.2fx%s" % (e, v, m, "" if m >= 1 else "; short by %.0f/s" % (v - e))
        else:
            what = "median of %d rounds %.2fx" % (len(ratios), m)
        out.append("purge rate >= Varnish's: %s (%s%s)" % (
            verdict(m >= 1), what, each_round(ratios, "%.2fx", lambda x: x >= 1)))
    p99s = [float(r["edgecache"][3]) for r, _ in rounds if "edgecache" in r]
    m = _median(p99s)
    what = "%.2f ms" % m if n == 1 else "median of %d rounds %.2f ms" % (len(p99s), m)
    out.append("single-key p99 < 5 ms: %s (%s%s%s)" % (
        verdict(m < 5), what, "" if m < 5 else ", %.1fx the target" % (m / 5),
        each_round(p99s, "%.2f", lambda x: x < 5)))
    big = sorted(float(g[3]) for _, groups in rounds for g in groups.get("edgecache", [])
                 if g[2] == "1000" and g[4] == "200")
    if big:
        out.append("1,000-object key < 20 ms: %s (slowest of %d: %.2f ms)" % (
            verdict(big[-1] < 20), len(big), big[-1]))
    alt = [e / v for e, v in rates("edgecache-alt")]
    if alt:
        out.append("(edgecache-alt, another build: %s Varnish's rate%s)" % (
            "%.2fx" % alt[0] if n == 1 else "median of %d rounds %.2fx" % (len(alt), _median(alt)),
            "" if n == 1 else "; each round: " + " ".join("%.2fx" % x for x in alt)))
    ref = [e / v for e, v in rates("edgecache-tmpfs")]
    if ref:
        out.append("(reference, not a target: edgecache-tmpfs, not durable, %s Varnish's rate%s)" % (
            "%.2fx" % ref[0] if n == 1 else "median of %d rounds %.2fx" % (len(ref), _median(ref)),
            "" if n == 1 else "; each round: " + " ".join("%.2fx" % x for x in ref)))
    costs = []
    for system in ("edgecache", "edgecache-alt", "edgecache-tmpfs", "varnish"):
        cpu = [float(r[system][12]) for r, _ in rounds if system in r and float(r[system][12]) >= 0]
        sw = [float(r[system][13]) for r, _ in rounds if system in r and float(r[system][13]) >= 0]
        if cpu:
            costs.append("%s %.1f us%s" % (system, _median(cpu), ", %.2f switches" % _median(sw) if sw else ""))
    if costs:
        out.append("(per single-key purge, server CPU and task switches%s: %s)" % (
            "" if n == 1 else ", medians", "; ".join(costs)))
    print("targets (issue 4): " + "\n                   ".join(out))
    # issue 24's, stricter: 1.2x Varnish's rate, durable; the p99 of the tmpfs reference (the path
    # without the disk) at most 1.5x Varnish's, per round; a 1,000-object key under 10 ms
    def quiet(r, systems):
        """did the host take less than 0.1 cores from each of these runs of the round?"""
        return all(system in r and r[system][14] != "nan" and float(r[system][14]) < 0.1 for system in systems)

    def over_quiet(systems, ratio, ok):
        """the same check over the rounds the host left alone, when some were not"""
        vals = [ratio(r) for r, _ in rounds if all(x in r for x in systems) and float(r["varnish"][3]) > 0
                and float(r["varnish"][1]) > 0 and quiet(r, systems)]
        shown = [r for r, _ in rounds if all(x in r for x in systems)]
        if n == 1 or len(vals) == len(shown):
            return ""
        if not vals:
            return "; no round had steal under 0.1 cores"
        return "; over the %d round%s with steal under 0.1 cores: %.2fx, %s" % (
            len(vals), "" if len(vals) == 1 else "s", _median(vals), verdict(ok(_median(vals))))

    out = []
    if pairs:
        ratios = [e / v for e, v in pairs]
        m = _median(ratios)
        out.append("purge rate >= 1.2x Varnish's, durable: %s (%s%.2fx%s%s)" % (
            verdict(m >= 1.2), "" if n == 1 else "median of %d rounds " % len(ratios), m,
            each_round(ratios, "%.2fx", lambda x: x >= 1.2),
            over_quiet(("edgecache", "varnish"), lambda r: float(r["edgecache"][1]) / float(r["varnish"][1]),
                       lambda x: x >= 1.2)))
    tails = [float(r["edgecache-tmpfs"][3]) / float(r["varnish"][3]) for r, _ in rounds
             if "edgecache-tmpfs" in r and "varnish" in r and float(r["varnish"][3]) > 0]
    if tails:
        m = _median(tails)
        out.append("p99 of edgecache-tmpfs <= 1.5x Varnish's: %s (%s%.2fx%s%s)" % (
            verdict(m <= 1.5), "" if n == 1 else "median of %d rounds " % len(tails), m,
            each_round(tails, "%.2fx", lambda x: x <= 1.5),
            over_quiet(("edgecache-tmpfs", "varnish"),
                       lambda r: float(r["edgecache-tmpfs"][3]) / float(r["varnish"][3]), lambda x: x <= 1.5)))
    if big:
        out.append("1,000-object key < 10 ms: %s (slowest of %d: %.2f ms)" % (
            verdict(big[-1] < 10), len(big), big[-1]))
    if out:
        print("targets (issue 24): " + "\n                    ".join(out))
    return 0


def _steal(row):
    """a purge-wrk row's steal (cores the host took from this VM during the run), or -"""
    return "-" if row[14] == "nan" else row[14]


def cmd_purge_table(argv):
    """purge-table RESULTS GROUPS: one round's report (see _purge_load)."""
    rows, groups, order = _purge_load(argv[0], argv[1])

    def ratio(label, system):
        base = rows.get(label.replace(system, "varnish", 1))
        if system == "varnish":
            return "1.00x"
        if not base or float(base[1]) <= 0:
            return "-"
        return "%.2fx" % (float(rows[label][1]) / float(base[1]))

    def first_pass(r):
        v = float(r[8])
        return "%.0f" % v if v == v else "-"

    head = "%-15s %10s %8s %8s %10s %11s %11s %12s %6s %8s %6s %6s" % (
        "system", "purges/s", "p50 ms", "p99 ms", "vs varnish", "200-key ms", "1000-key ms",
        "1st pass/s", "errors", "srv cpu", "other", "steal")
    lines = [head, "-" * len(head)]
    for system in order:
        g = groups.get(system, [])
        ms200 = _median([float(x[3]) for x in g if x[2] == "200" and x[4] == "200"])
        ms1000 = _median([float(x[3]) for x in g if x[2] == "1000" and x[4] == "200"])
        r = rows.get(system)
        if r:
            lines.append("%-15s %10.0f %8.2f %8.2f %10s %11.2f %11.2f %12s %6s %8s %6s %6s" % (
                system, float(r[1]), float(r[2]), float(r[3]), ratio(system, system), ms200,
                ms1000, first_pass(r), r[4], r[5], r[6], _steal(r)))
        else:
            lines.append("%-15s %10s %8s %8s %10s %11.2f %11.2f %12s %6s %8s %6s %6s" % (
                system, "-", "-", "-", "-", ms200, ms1000, "-", "-", "-", "-", "-"))
    absent = [s for s in order if s + ":absent" in rows]
    if absent:
        lines.append("")
        lines.append("purges of keys that tag nothing (same client, same duration):")
        head = "%-15s %10s %8s %8s %10s %6s %8s %6s %6s" % (
            "system", "purges/s", "p50 ms", "p99 ms", "vs varnish", "errors", "srv cpu", "other", "steal")
        lines += [head, "-" * len(head)]
        for system in absent:
            label = system + ":absent"
            r = rows[label]
            lines.append("%-15s %10.0f %8.2f %8.2f %10s %6s %8s %6s %6s" % (
                system, float(r[1]), float(r[2]), float(r[3]), ratio(label, system), r[4], r[5], r[6], _steal(r)))
    lines.append("")
    for label in [s for s in order if s in rows] + [s + ":absent" for s in absent]:
        r = rows[label]
        syncs = int(r[9])
        extra = ["%s purges" % r[7]]
        if syncs >= 0:
            extra.append("%d sync calls (%s)" % (
                syncs, "%.1f purges per sync" % (int(r[7]) / syncs) if syncs else "none: not durable"))
        extra.append("disk writes %s MB/s during the run (%s MB/s in the second before it)" % (r[11], r[10]))
        if float(r[12]) >= 0:
            extra.append("server CPU %s us per purge" % r[12] + (
                ", %.2f task switches per purge" % float(r[13]) if float(r[13]) >= 0 else ""))
        lines.append("%-24s %s" % (label.replace(":", ", ") + ":", "; ".join(extra)))
    for system in order:
        g = groups.get(system, [])
        if not g:
            continue
        lines.append("%-24s %s" % (system + " keys, ms:", ", ".join(
            "%s %s%s" % (x[1], "%.2f" % float(x[3]) if x[4] == "200" else "status " + x[4],
                         "" if x[5] == x[2] else " (%s gone)" % x[5])
            for x in g)))
    print("\n".join(lines))
    return 0

def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmds = {"ports": cmd_ports, "mkdocroot": cmd_mkdocroot, "warm": cmd_warm,
            "mem": cmd_mem, "pagecache": cmd_pagecache, "pids": cmd_pids, "wrk": cmd_wrk, "table": cmd_table,
            "purge-map": cmd_purge_map, "purge-step": cmd_purge_step,
            "purge-fill": cmd_purge_fill, "purge-probe": cmd_purge_probe,
            "purge-sample": cmd_purge_sample, "purge-wrk": cmd_purge_wrk,
            "purge-table": cmd_purge_table, "purge-targets": cmd_purge_targets,
            "disk-probe": cmd_disk_probe}
    fn = cmds.get(sys.argv[1])
    if fn is None:
        print(__doc__, file=sys.stderr)
        return 2
    return fn(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())

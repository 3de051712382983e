"""benchlib.py's commands for bench/run's hit benchmark.

- mkdocroot: the bench objects (hot-1k, hot-64k, set/0..N-1) on disk; bench/tls uses it too.
- warm: every object requested twice, the second answer checked to be a cache hit.
- wrk: one timed wrk run with CPU accounting (the server's, everything else's, the host's
  steal), one TSV row.
- table: the rows of every round as the final report: medians, spreads, edgecache's ratio
  to each peer per round, and the memory table bench/run collected.
"""

import http.client
import math
import os
import sys
import threading
import time

from bench_common import _is_hit, _median, parse_wrk, server_pids, thread_split, thread_ticks, wrk_measured


HOT_OBJECTS = (("/hot-1k", 1024), ("/hot-64k", 65536))
SET_OBJECT_SIZE = 1024


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
    threads0 = thread_ticks(pids)
    out, rc, elapsed, srv_ticks, other_cores, busy_cores, steal_cores = wrk_measured(cmd, pids, float(duration) + 30)
    split = thread_split(threads0, thread_ticks(pids))
    with open(rawfile, "w") as f:
        f.write("$ %s\n%s\n%s\n" % (" ".join(cmd), out, split))
    rps, p99, errors = parse_wrk(out)
    if rc != 0:
        errors = max(errors, 1)
    srv_cores = srv_ticks / hz / elapsed
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

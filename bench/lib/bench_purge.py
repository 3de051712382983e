"""benchlib.py's commands for bench/purge (objects /o/0 .. /o/N-1; object i has surrogate key
k<i>; PURGE_GROUPS gives the keys some objects share).

- purge-map, purge-step, purge-sample: the origin's key map, the walk over the single keys
  and which objects that walk purged.
- purge-fill, purge-probe: filling the cache, and checking objects are hits or misses.
- purge-wrk: one timed wrk purge run with CPU accounting, perf's count of the server's sync
  calls and task switches, and the machine's disk writes; one TSV row.
- disk-probe: the latency of synced writes to the disk itself, nothing of edgecache's running.
- purge-table, purge-targets: the report of one round, and issue 4's and 24's targets over
  every round.
"""

import http.client
import math
import os
import re
import signal
import subprocess
import sys
import time

from bench_common import _is_hit, _median, _ms, parse_wrk, server_pids, wrk_measured


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
    dw0 = _disk_write_bytes()
    out, rc, elapsed, srv_ticks, other_cores, _busy, steal_cores = wrk_measured(cmd, pids, float(duration) + 60)
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
    srv_cores = srv_ticks / hz / elapsed
    # per answered purge: the server's CPU time, and its task switches (both hold better than
    # a rate when other jobs share the machine); -1 when there were none, or perf could not count
    nreq = int(reqs.group(1)) if reqs else 0
    cpu_us = srv_ticks / hz * 1e6 / nreq if nreq else -1
    per_switch = switches / nreq if nreq and switches >= 0 else -1
    print("\t".join([server, "%.1f" % rps, "%.3f" % (_ms(p50.group(1)) if p50 else float("nan")),
                     "%.3f" % p99, str(errors), "%.2f" % srv_cores, "%.2f" % other_cores,
                     reqs.group(1) if reqs else "0", "%.1f" % live_rate, str(syncs),
                     "%.1f" % quiet_rate, "%.1f" % ((dw1 - dw0) / 1e6 / elapsed),
                     "%.1f" % cpu_us, "%.3f" % per_switch, "%.2f" % steal_cores]))
    return 0


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

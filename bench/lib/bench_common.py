"""Low-level helpers shared by benchlib.py's commands, bench/run's and bench/purge's alike.

- /proc readers: the processes of a server (server_pids: the tree under a pid), the CPU
  ticks of a set of processes (_cpu_ticks) and of the whole machine, with the hypervisor's
  steal (_machine_ticks).
- wrk's output: requests/s, p99 and errors (parse_wrk); wrk's latency units in ms (_ms).
- wrk_measured: one wrk run, with the server's and the machine's CPU measured around it.
- _median; _is_hit: whether an answer was a cache hit, the way each kind of server says so.

Nothing here prints or reads a command line (but wrk_measured runs wrk), and nothing imports
the other bench modules.
"""

import os
import re
import resource
import subprocess
import time


def _is_hit(kind, resp):
    if kind == "edgecache":
        return (resp.getheader("X-Cache") or "").strip().upper().startswith("HIT")
    if kind == "varnish":
        return len((resp.getheader("X-Varnish") or "").split()) == 2
    if kind == "nginx":
        return (resp.getheader("X-Cache-Status") or "").strip().upper() == "HIT"
    return True  # ceiling: a plain file server has no cache to check


def _stat_name_fields(path):
    """(command name, the fields after it (state first)) of a /proc/.../stat file, or None when
    the process or thread is gone. The name is in parentheses and may contain spaces and
    parentheses."""
    try:
        with open(path) as f:
            st = f.read()
    except OSError:
        return None
    return st[st.index("(") + 1:st.rindex(")")], st[st.rindex(")") + 2:].split()


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name, or None when the process is gone."""
    nf = _stat_name_fields("/proc/%d/stat" % pid)
    return nf[1] if nf is not None else None


def _all_ppids():
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        rest = _stat_fields(int(d))
        if rest is not None:
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


def _cpu_ticks(pids):
    """utime, stime ticks summed over pids (threads included)."""
    u = s = 0
    for p in pids:
        rest = _stat_fields(p)
        if rest is not None:
            u += int(rest[11])
            s += int(rest[12])
    return u, s


def thread_ticks(pids):
    """{(pid, tid): (name, utime + stime ticks)} for every thread of pids."""
    out = {}
    for p in pids:
        try:
            tids = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tids:
            nf = _stat_name_fields("/proc/%d/task/%s/stat" % (p, t))
            if nf is not None:
                out[(p, int(t))] = (nf[0], int(nf[1][11]) + int(nf[1][12]))
    return out


def thread_split(before, after):
    """What each thread of the server used between two thread_ticks readings, busiest first:
    "busiest 0.97 of the server's CPU: ec-worker 486, ec-worker 12, ..." (threads that used
    nothing left out). Says whether a run's connections landed on one worker or several."""
    used = sorted(((after[k][1] - before.get(k, (None, 0))[1], after[k][0]) for k in after), reverse=True)
    used = [(n, name) for n, name in used if n > 0]
    total = sum(n for n, _ in used)
    if total == 0:
        return "threads: no CPU used"
    return "threads: busiest %.2f of the server's CPU: %s" % (
        used[0][0] / total, ", ".join("%s %d" % (name, n) for n, name in used[:6]))


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def machine_line():
    """The machine line of every bench report: cores, kernel, and how an idle CPU waits.
    The last matters in a VM: with the cpuidle driver haltpoll and a guest halt-poll of 0 ns
    (this project's VMs boot with haltpoll.guest_halt_poll_ns=0) an idle vCPU halts at once,
    and waking a thread on it goes through the host. Work that waits on a device (a durable
    purge waits for its synced journal write) leaves CPUs idle and pays that on every
    wake-up; work that keeps both CPUs busy (Varnish's in-memory purges) does not."""
    u = os.uname()
    line = "%d cores, %s %s" % (os.cpu_count() or 0, u.sysname, u.release)
    driver = _read("/sys/devices/system/cpu/cpuidle/current_driver")
    if driver:
        poll = _read("/sys/module/haltpoll/parameters/guest_halt_poll_ns") if driver == "haltpoll" else None
        line += "; cpuidle %s%s" % (driver, ", guest halt-poll %s ns" % poll if poll is not None else "")
    return line


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


def _median(xs):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2.0


def wrk_measured(cmd, pids, timeout):
    """Run wrk's command line `cmd` (killed after `timeout` seconds) and measure around it.
    Returns (out, rc, elapsed, srv_ticks, other_cores, busy_cores, steal_cores): wrk's stdout
    then stderr (rc 124 and a line saying so when it overran), the run's seconds, the user and
    system ticks of the server's `pids`, and, in cores over the run: the user time of everything
    that is neither the server nor wrk, the machine's busy time, and the hypervisor's steal."""
    hz = os.sysconf("SC_CLK_TCK")
    su0, ss0 = _cpu_ticks(pids)
    mu0, mb0, st0 = _machine_ticks()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace") + "\nwrk timed out\n", 124
    elapsed = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    mu1, mb1, st1 = _machine_ticks()
    su1, ss1 = _cpu_ticks(pids)
    wrk_user = ru1.ru_utime - ru0.ru_utime
    # user time of everything that is neither the server nor wrk: compilers, other jobs.
    # (kernel time is left out on purpose: loopback softirq work lands there unattributed)
    other_cores = max(0.0, ((mu1 - mu0) - (su1 - su0)) / hz - wrk_user) / elapsed
    return (out, rc, elapsed, (su1 - su0) + (ss1 - ss0), other_cores, (mb1 - mb0) / hz / elapsed,
            (st1 - st0) / hz / elapsed)

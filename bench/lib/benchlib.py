#!/usr/bin/env python3
"""Helpers for bench/run: the parts that are awkward in bash.

Subcommands (each prints plain text for bench/run to read):

  machine                 the machine line of a report: cores, kernel, cpuidle driver (and
                          haltpoll's guest halt-poll time: how an idle vCPU waits)
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

# The commands live in sibling modules by what they serve (each one's docstring says what it
# holds): bench_hits.py (mkdocroot, warm, wrk, table) and bench_mem.py (mem, pagecache) for
# bench/run, bench_purge.py (purge-*, disk-probe) for bench/purge, and bench_common.py the
# /proc readers, wrk parsing and medians they share. This file is the command line: the
# dispatch, and the commands both scripts use (machine, ports, pids).

import os
import socket
import sys

# the siblings, also when bench/tls loads this file by its path
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from bench_common import machine_line, server_pids  # noqa: E402
from bench_hits import cmd_mkdocroot, cmd_table, cmd_warm, cmd_wrk  # noqa: E402
from bench_mem import cmd_mem, cmd_pagecache  # noqa: E402
from bench_purge import (cmd_disk_probe, cmd_purge_fill, cmd_purge_map, cmd_purge_probe,  # noqa: E402
                         cmd_purge_sample, cmd_purge_step, cmd_purge_table, cmd_purge_targets,
                         cmd_purge_wrk)


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


def cmd_machine(argv):
    print(machine_line())
    return 0


def cmd_pids(argv):
    print(" ".join(str(p) for p in server_pids(argv[0], int(argv[1]))))
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmds = {"machine": cmd_machine, "ports": cmd_ports, "mkdocroot": cmd_mkdocroot, "warm": cmd_warm,
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

"""benchlib.py's memory commands, for bench/run.

- mem MODE PID: the processes of a server and the sums of their RSS and PSS, split by kind
  of page (/proc/PID/smaps_rollup and /proc/PID/status).
- pagecache PATH...: the page cache the files at PATH hold, by mincore(2), whether a
  process maps them or not.
"""

import os

from bench_common import server_pids


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

"""
tests/integration/test_full_disk.py — issue 19 item 11: a real full disk must not wedge the
cache.  The data directory is a small tmpfs the test mounts (32 MiB, so root is needed;
skipped with a message otherwise), with --disk-size larger than the file system, filled
from a scripted origin and then filled up from outside with a filler file, so that the
file system itself (not LMDB's map) runs out.

  ReservedStore      the default --disk-reserve preallocate: the store reserves what the
                     file system has (the shortfall shows as disk.enospc and a disk.budget
                     below the map); with the file system then 100% full it still stores,
                     evicts, answers key purges and purge-all, reclaims the old generation
                     and stores new objects again.
  FreeSpaceBudget    --disk-reserve free-space (no preallocation, as on a file system that
                     cannot preallocate): a filler written from outside makes LMDB's own
                     writes fail (disk.enospc counts them); new objects are still HITs from
                     memory, one too big for what is left stays there (disk.memory_only)
                     and a key purge still takes it out, purges are answered 200, and once
                     the filler is deleted the budget grows back and the store fills past
                     where it was cut, with no restart.
  WriteMap           --disk-size well inside the tmpfs: the store allocates its whole map and maps
                     its data file writable (disk.writemap); with the file system then 100% full it
                     stores, evicts and purges without a fault (a write through the map to a block
                     the file system had not allocated would be SIGBUS, not an error), and a
                     restart on the full disk keeps the writable map and the objects. A map that
                     would leave the purge journal short of room is not mapped writable.
  JournalRoom        the purge journal's room: a journal with holes gets its blocks at open
                     (purges then answer 200 on a full disk); with no room even then, a
                     purge or purge_all is a 503 and is not applied, and works once room
                     comes back.

Every wait is on /stats counters (harness.wait_until), never on elapsed time.  The figures
(objects stored before the store first evicted, the budgets) are printed.
"""

import hashlib
import json
import os
import subprocess
import tempfile

import harness
from harness import request, scaled, wait_until

TMPFS_SIZE = "32m"
DISK_SIZE = "128M"  # more than the tmpfs; its purge journal is 8 MiB (a sixteenth, at least 8 MiB)
HOST = "disk.example.test"
SID = "edgecache"
OBJ_SIZE = 32 * 1024


def body_for(path, size=OBJ_SIZE):
    head = b"%s\n" % path.encode()
    return head + hashlib.shake_256(path.encode()).digest(size - len(head))


def surrogate_keys(path):
    n = int(path.rsplit("/", 1)[1])
    return "all k%d" % (n % 7)


class FullDiskCase(harness.TestCase):
    """Mount a tmpfs of TMPFS_SIZE for the data directory; unmounted at cleanup."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("the full-disk tests mount a tmpfs, which needs root (not root here)")
        self.mnt = tempfile.mkdtemp(prefix="edgecache-tmpfs-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % TMPFS_SIZE, "tmpfs", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            os.rmdir(self.mnt)
            self.skipTest("cannot mount a tmpfs (%s): %s" % (r.returncode, r.stdout.decode(errors="replace").strip()))
        self.addCleanup(self._unmount)  # registered first: runs after the server is stopped
        self.data_dir = os.path.join(self.mnt, "data")
        self.filler = os.path.join(self.mnt, "filler")
        self.next_obj = 0

        self.o = self.origin()

        def handler(req):
            path = req.path.split("?", 1)[0]
            size = int(path.rsplit("/", 1)[1]) if path.startswith("/big/") else OBJ_SIZE
            return 200, {"Cache-Control": "max-age=3600", "Surrogate-Key": surrogate_keys(path)}, body_for(path, size)

        self.o.route_prefix("/o/", handler=handler)
        self.o.route_prefix("/big/", handler=handler)

    def _unmount(self):
        r = subprocess.run(["umount", self.mnt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", self.mnt])
        os.rmdir(self.mnt)

    def start(self, *args, disk_size=DISK_SIZE):
        self.e = self.edgecache([self.o], data_dir=self.data_dir,
                                args=["--disk-size", disk_size, "--memory-size", "64M"] + list(args))
        self.token = harness.create_token(self.data_dir)
        return self.e

    # --- helpers
    def stats(self):
        r = request(self.e.admin_port, "GET", "/stats", headers={"Fastly-Key": self.token})
        self.assertEqual(r.status, 200, r.describe())
        return json.loads(r.body)["disk"]

    def get(self, path):
        r = request(self.e.proxy_port, "GET", path, headers={"Host": HOST}, timeout=scaled(10))
        self.assertEqual(r.status, 200, "GET %s\n%s\n%s" % (path, r.describe(), self.e.stderr_tail()))
        size = int(path.rsplit("/", 1)[1]) if path.startswith("/big/") else OBJ_SIZE
        self.assertEqual(r.body, body_for(path, size), "GET %s: wrong body" % path)
        return r

    def new_object(self):
        """Fetch a new object (a MISS, stored), return its path."""
        path = "/o/%d" % self.next_obj
        self.next_obj += 1
        self.assertXCache(self.get(path), "MISS")
        return path

    def assert_hit_twice(self, path):
        """A new object's second GET is a HIT, whatever the disk did with it."""
        self.assertXCache(self.get(path), "HIT", "a new object on a full disk is not cached, not even in memory")

    def fill_filesystem(self):
        """Write a filler file until the file system is full; returns its size."""
        written = 0
        chunk = b"\0" * 65536
        with open(self.filler, "wb", buffering=0) as f:
            while True:
                try:
                    n = f.write(chunk)
                except OSError:
                    break
                written += n
                if n < len(chunk):
                    break
        for size in (4096, 512, 1):  # whatever is left of the last block
            try:
                with open(self.filler, "ab", buffering=0) as f:
                    while True:
                        written += f.write(b"\0" * size)
            except OSError:
                pass
        self.assertEqual(os.statvfs(self.mnt).f_bavail, 0, "the filler did not fill the file system")
        return written

    def purge_key(self, key):
        r = request(self.e.admin_port, "POST", "/service/%s/purge/%s" % (SID, key), headers={"Fastly-Key": self.token})
        self.assertEqual(r.status, 200, "key purge on a full disk: %s\n%s" % (r.describe(), self.e.stderr_tail()))

    def purge_all(self):
        r = request(self.e.admin_port, "POST", "/service/%s/purge_all" % SID, headers={"Fastly-Key": self.token})
        self.assertEqual(r.status, 200, "purge_all on a full disk: %s\n%s" % (r.describe(), self.e.stderr_tail()))

    def fetch_until(self, predicate, limit, what):
        """Fetch new objects until predicate(stats) holds; at most `limit` of them."""
        for _ in range(limit):
            st = self.stats()
            if predicate(st):
                return st
            self.new_object()
        st = self.stats()
        if predicate(st):
            return st
        self.fail("%s: not after %d new objects; disk stats %s\n%s" % (what, limit, st, self.e.stderr_tail()))

    def assert_purges_work(self):
        """A key purge takes a HIT out; purge-all empties the store (reclaim) and storing goes on."""
        victim = self.new_object()
        self.assert_hit_twice(victim)
        key = surrogate_keys(victim).split()[1]
        self.purge_key(key)
        self.assertXCache(self.get(victim), "MISS", "the key purge left its object cached")
        self.purge_all()
        self.assertXCache(self.get(victim), "MISS", "purge_all left an object cached")
        # reclaim of the old generation gives the space back: nothing old is left on disk
        st = wait_until(lambda: (lambda s: s if s["objects"] <= 1 else None)(self.stats()), timeout=30,
                        what="reclaim of the old generation after purge_all on a full disk")
        self.assertNotIn("reclaim of old generations stopped", self.e.stderr_text())
        # and new objects are stored on disk again
        puts = st["puts"]
        for _ in range(20):
            self.assert_hit_twice(self.new_object())
        st = wait_until(lambda: (lambda s: s if s["puts"] >= puts + 20 and s["objects"] >= 20 else None)(self.stats()),
                        timeout=30, what="new objects stored on disk after purge_all")
        return st


class ReservedStore(FullDiskCase):
    def test_reserved_store_keeps_working_on_a_full_disk(self):
        self.start()
        start = self.stats()
        map_size, budget = start["map_size"], start.get("budget", 32 << 20)
        filler = self.fill_filesystem()

        # fill the store to its budget on the 100% full file system: it evicts, it does not wedge
        st = self.fetch_until(lambda s: s["evictions"] > 0, 3 * budget // OBJ_SIZE,
                              "the store never reached its budget (no eviction)")
        stored_before_evicting = st["puts"]
        for _ in range(30):  # and goes on: every new object is stored (disk puts) and a HIT
            path = self.new_object()
            self.assert_hit_twice(path)
        st = wait_until(lambda: (lambda s: s if s["puts"] >= stored_before_evicting + 30 else None)(self.stats()),
                        timeout=30, what="puts on a full file system within the reserved budget")
        self.assertLessEqual(st["bytes"], budget, st)
        self.assertEqual(st["memory_only"], 0, "the reservation should leave the disk room for every put: %s" % st)

        self.assertGreaterEqual(start["enospc"], 1, "a file system smaller than --disk-size is not reported: %s" % start)
        self.assertIs(start["writemap"], False, "a map the file system cannot hold is mapped writable: %s" % start)
        self.assertLess(budget, map_size, "the budget is the map, on a file system that cannot hold it: %s" % start)
        self.assertGreater(budget, 8 << 20, "the budget left out the tmpfs's free space: %s" % start)

        st = self.assert_purges_work()
        print("\n      reserved: budget %d of a %d map on a %s tmpfs (filler %d bytes); %d objects of %d KiB "
              "stored before the first eviction" % (budget, map_size, TMPFS_SIZE, filler, stored_before_evicting,
                                                     OBJ_SIZE >> 10), flush=True)


class WriteMap(FullDiskCase):
    def test_writable_map_on_a_full_disk(self):
        self.start(disk_size="16M")  # 16 MiB map + 8 MiB journal + 1 MiB slack: room on the 32 MiB tmpfs
        start = self.stats()
        self.assertIs(start["writemap"], True, "the whole map fits, on a tmpfs: %s" % start)
        self.assertEqual(start["budget"], start["map_size"], start)
        self.assertEqual(start["enospc"], 0, start)
        data = os.stat(os.path.join(self.data_dir, "data.mdb"))
        self.assertGreaterEqual(data.st_blocks * 512, start["map_size"], "the map is not all allocated")
        self.fill_filesystem()

        st = self.fetch_until(lambda s: s["evictions"] > 0, 3 * start["map_size"] // OBJ_SIZE,
                              "the store never reached its budget (no eviction)")
        puts = st["puts"]
        paths = [self.new_object() for _ in range(30)]
        for path in paths:
            self.assert_hit_twice(path)
        st = wait_until(lambda: (lambda s: s if s["puts"] >= puts + 30 else None)(self.stats()), timeout=30,
                        what="puts through the writable map on a full file system")
        self.assertEqual((st["memory_only"], st["enospc"]), (0, 0), st)
        self.assertTrue(self.e.running, "edgecache died writing through its map:\n%s" % self.e.stderr_tail())

        # killed and started again on the full disk: the map is allocated already, so it is mapped writable
        # again, and what was written through it is there
        self.e.kill9()
        self.e.start()
        st = self.stats()
        self.assertIs(st["writemap"], True, st)
        for path in paths[-5:]:
            self.assertXCache(self.get(path), "HIT", "an object written through the map is lost on restart")
        self.assert_purges_work()
        self.assertTrue(self.e.running, "edgecache died writing through its map:\n%s" % self.e.stderr_tail())

    def test_no_writable_map_that_would_leave_the_journal_short(self):
        self.start(disk_size="24M")  # 24 MiB map + 8 MiB journal + 1 MiB slack: more than the tmpfs
        st = self.stats()
        self.assertIs(st["writemap"], False, st)
        path = self.new_object()
        self.assert_hit_twice(path)
        self.purge_key(surrogate_keys(path).split()[1])  # the journal had its room
        self.assertXCache(self.get(path), "MISS", "the key purge left its object cached")


class FreeSpaceBudget(FullDiskCase):
    def test_store_recovers_when_space_comes_back(self):
        self.start("--disk-reserve", "free-space")
        st = self.stats()
        first_budget = st["budget"]
        for _ in range(60):
            self.new_object()
        st = wait_until(lambda: (lambda s: s if s["puts"] >= 60 else None)(self.stats()), timeout=30,
                        what="the first objects stored")
        enospc_before = st["enospc"]
        self.fill_filesystem()

        # LMDB's own writes now fail for room: counted, handled like a full map
        st = self.fetch_until(lambda s: s["enospc"] > enospc_before, 2 * first_budget // OBJ_SIZE,
                              "no write refused by the full file system was reported (disk.enospc)")
        cut = st["budget"]
        self.assertLess(cut, first_budget, "a refused write did not cut the budget: %s" % st)
        # new objects keep coming from memory
        for _ in range(10):
            self.assert_hit_twice(self.new_object())
        # one too big for what is left of the budget: memory only, and a key purge still finds it
        big = "/big/%d" % max(3 << 20, cut // 4)
        self.assertXCache(self.get(big), "MISS")
        wait_until(lambda: self.stats()["memory_only"] >= 1, timeout=30,
                   what="an object the disk has no room for kept in memory (disk.memory_only)")
        self.assertXCache(self.get(big), "HIT", "an object the disk could not take was dropped from memory")
        self.purge_key(surrogate_keys(big).split()[1])
        self.assertXCache(self.get(big), "MISS", "a key purge left a memory-only object cached")

        self.assert_purges_work()

        # space comes back from outside: the budget grows and the store fills past the cut, no restart
        os.unlink(self.filler)
        st = self.fetch_until(lambda s: s["budget"] > cut + (4 << 20) and s["bytes"] > cut + (4 << 20),
                              3 * first_budget // OBJ_SIZE,
                              "the store did not grow again once the filler was deleted")
        self.assertTrue(self.e.running)
        print("\n      free-space: budget %d at start, cut to %d by the full file system, %d after the filler went "
              "(%d bytes stored)" % (first_budget, cut, st["budget"], st["bytes"]), flush=True)


class JournalRoom(FullDiskCase):
    """The purge journal's writes need room too: a journal with holes (as after a copy by a
    sparse-aware tool or a restore from backup) needs a block for each write into one."""

    def make_journal_sparse(self):
        """Stop the server and replace journal.log by one of the same size, all holes (read as an
        empty ring: the clean stop synced everything it held)."""
        self.assertEqual(self.e.stop(), 0)
        journal = os.path.join(self.data_dir, "journal.log")
        size = os.path.getsize(journal)
        os.unlink(journal)
        with open(journal, "wb") as f:
            f.truncate(size)
        self.assertLess(os.stat(journal).st_blocks * 512, size)
        return journal, size

    def purge_status(self, what):
        r = request(self.e.admin_port, "POST", "/service/%s/%s" % (SID, what), headers={"Fastly-Key": self.token})
        return r

    def test_journal_room_is_reserved_at_open(self):
        self.start()
        path = self.new_object()
        self.assert_hit_twice(path)
        journal, size = self.make_journal_sparse()
        self.e.start()
        self.assertGreaterEqual(os.stat(journal).st_blocks * 512, size, "the journal's holes were left at open")
        self.fill_filesystem()
        self.assertXCache(self.get(path), "HIT")
        self.purge_key(surrogate_keys(path).split()[1])  # 200 on the full disk
        self.assertXCache(self.get(path), "MISS", "the key purge left its object cached")

    def test_purge_that_cannot_be_journaled_is_503_not_ok(self):
        """No room even at open: a purge the journal cannot record is neither acknowledged nor applied."""
        self.start()
        path = self.new_object()
        self.assert_hit_twice(path)
        self.make_journal_sparse()
        self.fill_filesystem()
        self.e.start()
        self.assertIn("cannot reserve the room", self.e.stderr_text())
        self.assertXCache(self.get(path), "HIT")
        key = surrogate_keys(path).split()[1]
        r = self.purge_status("purge/" + key)
        self.assertEqual(r.status, 503, "a purge the journal could not record: %s" % r.describe())
        self.assertXCache(self.get(path), "HIT", "a purge answered with an error was applied anyway")
        r = self.purge_status("purge_all")
        self.assertEqual(r.status, 503, "a purge_all the journal could not record: %s" % r.describe())
        self.assertXCache(self.get(path), "HIT", "a purge_all answered with an error was applied anyway")
        # room again: the same purge is recorded, answered and applied
        os.unlink(self.filler)
        self.purge_key(key)
        self.assertXCache(self.get(path), "MISS", "the key purge left its object cached")

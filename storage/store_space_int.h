/*
 * storage/store_space_int.h — the room the disk store may use on its file system
 * (storage/store_space.c). Internal to storage/: the store (store_int.h) owns the only
 * store_space_t of a store; its unit test calls the pure budget function directly.
 *
 * Why it exists: LMDB's data file grows as pages are used, and every write transaction,
 * a delete or an eviction included, needs fresh pages for copy-on-write. On a file
 * system that fills before the map does, the writes fail with ENOSPC (or EIO for a
 * short write), and so do the deletes that would give room back: the store wedged.
 * The store's budget is therefore the room it has made sure of, not the map size:
 *   - STORE_SPACE_PREALLOCATE: the data file's blocks are allocated ahead of LMDB
 *     (fallocate with FALLOC_FL_KEEP_SIZE: the file's size, which LMDB and the
 *     soundness checks read, does not change) up to the map size, or as far as the
 *     file system's free space minus a slack allows. Writes inside that never need a
 *     new block, so deletes and evictions always have their room.
 *   - STORE_SPACE_FREE (file systems without fallocate, or by choice): the budget is the
 *     data file's allocated size plus the free space minus the slack. Another writer can
 *     take that space first, so a write may still fail for room; the store then caps
 *     the budget at the data it holds (store_space_full) and evicts inside its file.
 *   - STORE_SPACE_MAP: the map size is the budget (CLI commands and tests).
 * In both first modes a budget below the map size is retried at most once a second
 * (store_space_grow): when space comes back, the store grows again without a restart.
 *
 * Threads: the writer thread calls store_space_grow and store_space_full (store_open
 * calls store_space_open before it starts); any thread reads the budget and counters.
 */
#ifndef EDGECACHE_STORE_SPACE_INT_H
#define EDGECACHE_STORE_SPACE_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include "storage/store.h"

#define STORE_SPACE_RETRY_MS 1000 /* how often a short budget tries to grow */

typedef struct store_space {
    int mode; /* STORE_SPACE_*; PREALLOCATE falls back to FREE where fallocate is not supported */
    int fd;   /* the data file (LMDB's descriptor, borrowed) */
    uint64_t map_size, psize;
    _Atomic uint64_t budget; /* bytes of the data file the store may fill: <= map_size, a multiple of psize */
    uint64_t reserved;       /* PREALLOCATE: [0, reserved) of the file is allocated */
    int64_t next_grow_ms;    /* when store_space_grow may try again */
    _Atomic uint64_t enospc; /* times the file system had no room: a short reservation or a failed write */
    int short_said;          /* the log line about a short budget was written (once per shortage) */
} store_space_t;

/**
 * The slack left free on a file system of fs_size bytes for everything else that
 * writes there (logs, the lock file): 1/64 of it, from 1 MiB to 256 MiB.
 */
uint64_t store_space_slack(uint64_t fs_size);

/**
 * The budget of a data file on a file system: what it has allocated (`have`) plus the
 * space free to it (`fs_avail`) less store_space_slack(fs_size), at most map_size,
 * rounded down to whole pages of psize, and never below what it has allocated (that
 * room is the store's already). Pure.
 */
uint64_t store_space_budget(uint64_t map_size, uint64_t have, uint64_t fs_avail, uint64_t fs_size, uint64_t psize);

/**
 * Did a write that failed with rc (an errno value or an LMDB code) fail for room?
 * ENOSPC and EDQUOT do; so does EIO (LMDB's code for a short write) when the file
 * system has less than fs_avail_low bytes free for it. Pure.
 */
int store_space_refused(int rc, uint64_t fs_avail, uint64_t fs_avail_low);

/**
 * Set up sp for the data file fd of a map of map_size bytes in pages of psize, and
 * make the first reservation (PREALLOCATE) or measure the free space (FREE). Never
 * fails: a budget it could not reserve is smaller (logged once on stderr).
 */
void store_space_open(store_space_t *sp, int mode, int fd, uint64_t map_size, uint64_t psize);

/**
 * Allocate all of [0, map_size) of the data file fd, when its file system has room for
 * what is not allocated yet, plus `also` bytes (another file's room: the purge journal's)
 * and store_space_slack. 1 when the whole map is allocated, else 0 (what a failing
 * fallocate allocated stays the file's; store_space_open counts it).
 */
int store_space_allocate_all(int fd, uint64_t map_size, uint64_t also);

/** While the budget is below the map size: at most every STORE_SPACE_RETRY_MS, try to raise it. */
void store_space_grow(store_space_t *sp, int64_t now_ms);

/**
 * A write failed with rc. If it failed for room (store_space_refused), count it, cap
 * the budget at data_end (the end of the data LMDB holds: that room is allocated; not
 * in STORE_SPACE_MAP mode, which never grows back) and return 1; else 0.
 */
int store_space_full(store_space_t *sp, int rc, uint64_t data_end, int64_t now_ms);

/** The current budget (any thread). */
uint64_t store_space_budget_now(store_space_t *sp);

#endif

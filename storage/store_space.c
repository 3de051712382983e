/*
 * storage/store_space.c — the disk store's budget on its file system: reserve the data
 * file's room ahead of LMDB, or measure the free space, and grow again when space
 * comes back (see store_space_int.h for why).
 *
 * What it owns: nothing but the counters in store_space_t; the descriptor is LMDB's.
 *
 * Invariant: the budget never exceeds the map size, and in PREALLOCATE mode never
 * exceeds what is reserved ([0, reserved) is allocated on disk), so an LMDB that stays
 * within it never needs a block the file system could refuse.
 *
 * Threads: the writer thread (and store_open before it starts) changes it; the budget
 * and the counter are atomics any thread reads.
 */
#include "storage/store_space_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define STORE_SPACE_SLACK_MIN ((uint64_t)1 << 20)
#define STORE_SPACE_SLACK_MAX ((uint64_t)256 << 20)

uint64_t store_space_slack(uint64_t fs_size)
{
    uint64_t slack = fs_size / 64;
    return slack < STORE_SPACE_SLACK_MIN   ? STORE_SPACE_SLACK_MIN
           : slack > STORE_SPACE_SLACK_MAX ? STORE_SPACE_SLACK_MAX
                                           : slack;
}

uint64_t store_space_budget(uint64_t map_size, uint64_t have, uint64_t fs_avail, uint64_t fs_size, uint64_t psize)
{
    if (have >= map_size || fs_avail >= map_size - have)
        return map_size; /* all of it fits: the slack is for when the store cannot have everything */
    uint64_t slack = store_space_slack(fs_size);
    uint64_t budget = have + (fs_avail > slack ? fs_avail - slack : 0); /* < map_size: no overflow */
    if (psize > 0)
        budget -= budget % psize;
    return budget > have ? budget : have; /* allocated already: the store's, whatever the slack says */
}

int store_space_refused(int rc, uint64_t fs_avail, uint64_t fs_avail_low)
{
    return rc == ENOSPC || rc == EDQUOT || (rc == EIO && fs_avail < fs_avail_low);
}

/* what the file has allocated, and what its file system has free for it; -1 on error */
static int store_space_probe(int fd, uint64_t *have, uint64_t *fs_avail, uint64_t *fs_size)
{
    struct stat st;
    struct statvfs vfs;
    if (fstat(fd, &st) != 0 || fstatvfs(fd, &vfs) != 0)
        return -1;
    *have = (uint64_t)st.st_blocks * 512;
    *fs_avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    *fs_size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    return 0;
}

static void store_space_set(store_space_t *sp, uint64_t budget)
{
    atomic_store_explicit(&sp->budget, budget, memory_order_release);
}

uint64_t store_space_budget_now(store_space_t *sp)
{
    return atomic_load_explicit(&sp->budget, memory_order_acquire);
}

/*
 * A budget below the map size is said once, and counted as one refusal of the file
 * system, until the budget is the whole map again.
 */
static void store_space_say_short(store_space_t *sp, const char *why)
{
    uint64_t budget = store_space_budget_now(sp);
    if (budget >= sp->map_size) {
        if (sp->short_said)
            fprintf(stderr, "edgecache: store: the disk budget is the whole map again (%llu bytes)\n",
                    (unsigned long long)budget);
        sp->short_said = 0;
        return;
    }
    if (sp->short_said)
        return;
    sp->short_said = 1;
    atomic_fetch_add_explicit(&sp->enospc, 1, memory_order_relaxed);
    fprintf(stderr,
            "edgecache: store: %s: the disk budget is %llu of the map's %llu bytes; it grows again when space "
            "comes back\n",
            why, (unsigned long long)budget, (unsigned long long)sp->map_size);
}

/*
 * Reserve [sp->reserved, to) of the data file. On ENOSPC try halfway, a few times: the
 * free space may have shrunk since it was measured. Where the file system cannot
 * preallocate (or refuses for another reason), switch to STORE_SPACE_FREE rather than
 * keep a budget of what the file happens to hold.
 */
static void store_space_reserve(store_space_t *sp, uint64_t to)
{
    for (int attempt = 0; attempt < 4 && to > sp->reserved; attempt++) {
        if (fallocate(sp->fd, FALLOC_FL_KEEP_SIZE, (off_t)sp->reserved, (off_t)(to - sp->reserved)) == 0) {
            sp->reserved = to;
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != ENOSPC && errno != EDQUOT) { /* not supported here (EOPNOTSUPP), or not allowed */
            sp->mode = STORE_SPACE_FREE;
            fprintf(stderr,
                    "edgecache: store: cannot preallocate the data file (%s); the disk budget follows the file "
                    "system's free space\n",
                    strerror(errno));
            return;
        }
        uint64_t half = sp->reserved + (to - sp->reserved) / 2;
        to = half - half % sp->psize;
    }
}

/* Measure the file system and raise the budget as far as it allows (never lowers it). */
static void store_space_measure(store_space_t *sp)
{
    uint64_t have, avail, fs_size;
    if (store_space_probe(sp->fd, &have, &avail, &fs_size) != 0)
        return;
    if (sp->mode == STORE_SPACE_PREALLOCATE) {
        if (have > sp->reserved) /* reserved before a restart, or written past the reservation */
            sp->reserved = have < sp->map_size ? have - have % sp->psize : sp->map_size;
        store_space_reserve(sp, store_space_budget(sp->map_size, sp->reserved, avail, fs_size, sp->psize));
        if (sp->mode == STORE_SPACE_PREALLOCATE) {
            if (sp->reserved > store_space_budget_now(sp))
                store_space_set(sp, sp->reserved);
            return;
        }
    }
    /* STORE_SPACE_FREE */
    uint64_t want = store_space_budget(sp->map_size, have, avail, fs_size, sp->psize);
    if (want > store_space_budget_now(sp))
        store_space_set(sp, want);
}

int store_space_allocate_all(int fd, uint64_t map_size, uint64_t also)
{
    uint64_t have, avail, fs_size;
    if (store_space_probe(fd, &have, &avail, &fs_size) != 0)
        return 0;
    if (have < map_size && avail < map_size - have + also + store_space_slack(fs_size))
        return 0;
    while (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)map_size) != 0)
        if (errno != EINTR)
            return 0;
    return 1;
}

void store_space_open(store_space_t *sp, int mode, int fd, uint64_t map_size, uint64_t psize)
{
    memset(sp, 0, sizeof(*sp));
    sp->mode = mode;
    sp->fd = fd;
    sp->map_size = map_size;
    sp->psize = psize > 0 ? psize : 4096;
    if (mode == STORE_SPACE_MAP || fd < 0) {
        sp->mode = STORE_SPACE_MAP;
        store_space_set(sp, map_size);
        return;
    }
    store_space_set(sp, 0);
    store_space_measure(sp);
    store_space_say_short(sp, "the file system has less room than --disk-size");
}

void store_space_grow(store_space_t *sp, int64_t now_ms)
{
    if (sp->mode == STORE_SPACE_MAP || store_space_budget_now(sp) >= sp->map_size || now_ms < sp->next_grow_ms)
        return;
    sp->next_grow_ms = now_ms + STORE_SPACE_RETRY_MS;
    store_space_measure(sp);
    store_space_say_short(sp, "the file system still has less room than the map");
}

int store_space_full(store_space_t *sp, int rc, uint64_t data_end, int64_t now_ms)
{
    uint64_t have = 0, avail = 0, fs_size = 0;
    if (store_space_probe(sp->fd, &have, &avail, &fs_size) != 0)
        avail = 0;
    if (!store_space_refused(rc, avail, store_space_slack(fs_size)))
        return 0;
    atomic_fetch_add_explicit(&sp->enospc, 1, memory_order_relaxed);
    if (sp->mode == STORE_SPACE_MAP)
        return 1; /* the map is the budget there, and nothing would give a cut back: evict within it */
    data_end -= data_end % sp->psize;
    if (data_end < store_space_budget_now(sp))
        store_space_set(sp, data_end);
    sp->next_grow_ms = now_ms + STORE_SPACE_RETRY_MS;
    store_space_say_short(sp, "the file system is full");
    return 1;
}

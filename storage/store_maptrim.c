/*
 * storage/store_maptrim.c — keeps the data file's pages out of the process's resident set.
 *
 * LMDB reads through a shared map of data.mdb (read-only, or writable where store_open
 * chose MDB_WRITEMAP): every page a read, the writer's B-tree descent or (writable) its
 * copy-on-write has touched stays mapped in this process and counts in its RSS,
 * although the memory tier holds its own copy of every object it serves and the
 * kernel's page cache holds the page whether we map it or not. bench/run with 10,000 x
 * 1 KiB objects: 26.7 MiB of the map resident, half of the process's RSS.
 *
 * madvise(MADV_DONTNEED) on a shared file map only takes the pages out of this process's
 * page tables: they stay in the page cache (the data is the file's, and a writable map's
 * dirty pages stay dirty there, so nothing is lost), and the next access maps them
 * again from the page cache (a minor fault, no I/O). So a trim changes what the process
 * maps, not what the machine caches: bench/run reports the page cache of each server's
 * data files beside its RSS for that reason.
 *
 * When: the writer trims when it has nothing to do and pages may have been mapped since
 * the last trim (a commit or a read since): once nothing has been committed or read for
 * STORE_MAP_TRIM_QUIET_MS, or, under load that never pauses that long, once
 * STORE_MAP_TRIM_MAX_MS have passed since the last trim. A trim costs the threads serving
 * hits a TLB flush, and the next transactions their first touch of each page again (a
 * minor fault each): a purge storm pays that once per STORE_MAP_TRIM_MAX_MS, not after
 * each of its transactions, and the map holds at most what that long a time touched.
 * A reader has to wake the writer, which may be waiting for work with no timeout: the
 * first read after a trim (map_clean, set by the trim) does, under s->lock so that the
 * wake-up cannot fall between the writer's look at the counters and its wait; later
 * reads only count, until the next trim.
 *
 * Threads: the writer trims (store_map_trim_idle, under s->lock; the madvise outside it);
 * store_map_note_read runs on any reading thread.
 */
#include "storage/store_int.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define STORE_MAP_TRIM_QUIET_MS 200
#define STORE_MAP_TRIM_MAX_MS 2000

int store_map_locate(store_t *s)
{
    /* LMDB does not say where it mapped the file (MDB_envinfo's me_mapaddr is the fixed
     * address of MDB_FIXEDMAP only), but a read returns a pointer into the map: the
     * mapping of /proc/self/maps that holds it is the map */
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    uintptr_t inside = 0;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return -1;
    if (mdb_cursor_open(txn, s->dbi_meta, &cur) == 0) {
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0)
            inside = (uintptr_t)v.mv_data;
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    FILE *f = inside != 0 ? fopen("/proc/self/maps", "re") : NULL;
    if (f == NULL)
        return -1;
    char line[512];
    unsigned long lo, hi;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= inside && inside < hi) {
            s->map_addr = (void *)lo;
            s->map_len = hi - lo;
            break;
        }
    }
    fclose(f);
    return s->map_addr != NULL ? 0 : -1;
}

/* Unmap every page of the data file's map from this process (they stay in the page cache). */
static void store_map_trim(store_t *s)
{
    MDB_envinfo info;
    if (s->map_addr == NULL || mdb_env_info(s->env, &info) != 0)
        return;
    size_t len = (size_t)(info.me_last_pgno + 1) * s->psize;
    long page = sysconf(_SC_PAGESIZE);
    if (page > 0)
        len = (len + (size_t)page - 1) / (size_t)page * (size_t)page;
    if (len > s->map_len)
        len = s->map_len;
    /* cannot fail on a mapped, page-aligned range; if it did, the pages simply stay mapped */
    if (madvise(s->map_addr, len, MADV_DONTNEED) == 0)
        atomic_fetch_add_explicit(&s->st_map_trims, 1, memory_order_relaxed);
}

int64_t store_map_trim_idle(store_t *s)
{
    uint64_t commits = atomic_load_explicit(&s->st_commits, memory_order_relaxed);
    uint64_t reads = atomic_load_explicit(&s->map_reads, memory_order_relaxed);
    int64_t now = now_mono_ms();
    if (commits != s->trim_seen_commits || reads != s->trim_seen_reads) {
        s->trim_seen_commits = commits; /* activity since the writer last looked */
        s->trim_seen_reads = reads;
        s->trim_active_ms = now;
    }
    if (s->trimmed_once && commits == s->trim_commits && reads == s->trim_reads)
        return 0;
    if (s->trimmed_once) {
        int64_t quiet = s->trim_active_ms + STORE_MAP_TRIM_QUIET_MS, overdue = s->trim_last_ms + STORE_MAP_TRIM_MAX_MS;
        int64_t due = quiet < overdue ? quiet : overdue;
        if (now < due)
            return due - now;
    }
    pthread_mutex_unlock(&s->lock);
    store_map_trim(s);
    pthread_mutex_lock(&s->lock);
    s->trimmed_once = 1;
    s->trim_commits = commits;
    s->trim_reads = reads; /* read before the trim: a read during it is trimmed next time */
    s->trim_last_ms = now_mono_ms();
    atomic_store_explicit(&s->map_clean, 1, memory_order_release);
    return -1;
}

void store_map_note_read(store_t *s)
{
    atomic_fetch_add_explicit(&s->map_reads, 1, memory_order_relaxed);
    if (s->read_only || !atomic_load_explicit(&s->map_clean, memory_order_relaxed) ||
        !atomic_exchange_explicit(&s->map_clean, 0, memory_order_acq_rel))
        return;
    /* the first read since the trim: the writer may be waiting with no timeout. Readers
     * never hold s->lock (store_rtxn_begin's callers), and it is held only briefly */
    pthread_mutex_lock(&s->lock);
    pthread_cond_signal(&s->apply_wake);
    pthread_mutex_unlock(&s->lock);
}

/*
 * tests/unit/test_store_journal.c — the store's purge journal: crashes that lose the main
 * store's unsynced writes (purges, long keys and the bus sequence replayed), the batch in
 * transit during a journal write, direct journal writes refused, the journal's size and checkpoints, failed and timed
 * journal writes, and a full ring. The binary is linked with -Wl,--wrap=pwrite (Makefile)
 * so that the journal's writes fail or wait on demand. Every test works in its own
 * directory under the suite's /tmp base.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "storage/store.h"
#include "tests/unit/unit_store.h"
#include "tests/unit/unit_tmp.h"

/*
 * The purge journal's writes, under the tests' control. The binary is linked with
 * -Wl,--wrap=pwrite (Makefile), which sends the pwrite calls of the objects linked in
 * (the journal's are the only ones) here; LMDB's own writes come from its shared
 * library and are not affected.
 *
 * pwrite_fail_after: a write that lands and still reports failure (a disk that errors
 * after writing, a lost completion). The gate: while it is on, each write waits until
 * the test lets that many through (pwrite_gate_passes), which holds the journal thread
 * inside a chosen write, with the batch it took, for as long as a test needs.
 */
static _Atomic int pwrite_fail_after; /* the next pwrite this many bytes or longer lands, then fails */
static _Atomic int pwrite_gate_on, pwrite_gate_arrived, pwrite_gate_passes;
/* the next write to an O_DIRECT descriptor fails EINVAL, writing nothing (a device that wants larger alignment) */
static _Atomic int pwrite_refuse_direct;
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_DIRECT) != 0 && atomic_exchange(&pwrite_refuse_direct, 0)) {
        errno = EINVAL;
        return -1;
    }
    if (atomic_load(&pwrite_gate_on)) {
        int me = atomic_fetch_add(&pwrite_gate_arrived, 1) + 1;
        for (int i = 0; i < 20000 && atomic_load(&pwrite_gate_on) && atomic_load(&pwrite_gate_passes) < me; i++)
            sleep_ms(1); /* at most 20 s: a test that forgets to open it fails, it does not hang */
    }
    ssize_t w = __real_pwrite(fd, buf, n, off);
    int min = atomic_load(&pwrite_fail_after);
    if (w > 0 && min > 0 && n >= (size_t)min && atomic_compare_exchange_strong(&pwrite_fail_after, &min, 0)) {
        errno = EIO;
        return -1;
    }
    return w;
}

/* copy a file byte for byte (the simulated disk image of the main store) */
static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/*
 * A crash of the machine that loses every main-store write since its last sync: purges
 * are acknowledged once their journal record is synced, without a sync of the main
 * store, so the main store's file is put back to its synced image (as the disk would
 * hold it) while journal.log keeps what it had. Reopening must apply those purges
 * again, once, and must not undo anything stored after them.
 */
/*
 * The cluster's bus sequence (store_note_bus_seq) lives with the purges it covers: it is
 * durable when they are, committed in their transaction, and a crash that loses the main
 * store's unsynced writes gets it back from the journal together with them.
 */
START_TEST(test_bus_seq_replays_with_purges)
{
    char *dir = tmpdir_new();
    char *data = path_in(dir, "data.mdb"), *image = path_in(dir, "image.mdb"), *lock = path_in(dir, "lock.mdb");
    store_t *s = open_store(dir, 64 << 20, NULL);
    ck_assert_uint_eq(store_bus_seq(s), 0);
    cache_obj_t *a = make_obj("example.com/a", "ka", "", 100, 'a', 1);
    store_put(s, a);
    store_close(&s);
    copy_file(data, image);

    s = open_store(dir, 64 << 20, NULL);
    purge_record_t pr = {0};
    store_hold_begin(s);
    store_purge_surrogate_key(s, "ka", 2, 0, on_purge, &pr);
    store_note_bus_seq(s, 41, on_purge, &pr);
    store_hold_end(s);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 2);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert_uint_eq(store_bus_seq(s), 41);
    store_close(&s);

    copy_file(image, data); /* the crash: the main store lost both, the journal kept both */
    unlink(lock);
    s = open_store(dir, 64 << 20, NULL);
    ck_assert_uint_eq(store_bus_seq(s), 41);
    ck_assert(!present(s, a));
    /* a lower one may be recorded (a stream made anew) and survives a clean reopen */
    store_note_bus_seq(s, 3, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(store_bus_seq(s), 3);
    store_close(&s);
    s = open_store(dir, 64 << 20, NULL);
    ck_assert_uint_eq(store_bus_seq(s), 3);
    store_close(&s);
    obj_unref(&a);
    free(data);
    free(image);
    free(lock);
    tmpdir_free(dir);
}
END_TEST

/*
 * A device that refuses the journal's direct writes (EINVAL: it wants more alignment
 * than a sector): the append goes through the page cache instead, the purge is answered,
 * and its record is durable: a crash that loses the main store's writes replays it.
 */
START_TEST(test_journal_falls_back_from_direct_writes)
{
    char *dir = tmpdir_new();
    char *data = path_in(dir, "data.mdb"), *image = path_in(dir, "image.mdb"), *lock = path_in(dir, "lock.mdb");
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *a = make_obj("example.com/a", "kd", "", 100, 'a', 1);
    store_put(s, a);
    store_close(&s);
    copy_file(data, image);

    s = open_store(dir, 64 << 20, NULL);
    char *jpath = path_in(dir, "journal.log");
    int probe = open(jpath, O_RDWR | O_DIRECT); /* where the file system takes no direct I/O, nothing to refuse */
    if (probe >= 0)
        close(probe);
    atomic_store(&pwrite_refuse_direct, probe >= 0);
    purge_record_t pr = {0};
    store_purge_surrogate_key(s, "kd", 2, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(atomic_load(&pwrite_refuse_direct), 0); /* a direct write was tried, and refused */
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert(!present(s, a));
    store_close(&s);

    copy_file(image, data); /* the crash: the main store lost the purge, the journal kept it */
    unlink(lock);
    s = open_store(dir, 64 << 20, NULL);
    ck_assert(!present(s, a));
    store_close(&s);
    obj_unref(&a);
    free(jpath);
    free(data);
    free(image);
    free(lock);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_journal_replays_lost_purges)
{
    char *dir = tmpdir_new();
    char *data = path_in(dir, "data.mdb"), *image = path_in(dir, "image.mdb"), *lock = path_in(dir, "lock.mdb");
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *a = make_obj("example.com/a", "ka", "", 100, 'a', 1);
    cache_obj_t *b = make_obj("example.com/b", "kb", "", 100, 'b', 1);
    cache_obj_t *u = make_obj("example.com/u", "ku", "", 100, 'u', 1);
    cache_obj_t *soft = make_obj("example.com/soft", "ks", "", 100, 's', 1);
    cache_obj_t *all[] = {a, b, u, soft};
    for (int i = 0; i < 4; i++)
        store_put(s, all[i]);
    store_close(&s); /* synced: this is the image a crash would go back to */
    copy_file(data, image);

    s = open_store(dir, 64 << 20, NULL);
    purge_record_t pr = {0};
    store_purge_surrogate_key(s, "ka", 2, 0, on_purge, &pr);
    store_purge_key_url(s, "example.com/u", 13, 0, on_purge, &pr);
    store_purge_surrogate_key(s, "ks", 2, 1, on_purge, &pr);
    store_purge_surrogate_key(s, "nothing-tagged", 14, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 4);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert(!present(s, a));
    ck_assert(!present(s, u));
    store_close(&s);

    /* the crash: the main store's writes since the image are lost, the journal's are not */
    copy_file(image, data);
    unlink(lock);
    s = open_store(dir, 64 << 20, NULL);
    ck_assert(!present(s, a));
    ck_assert(!present(s, u));
    ck_assert(present(s, b));
    cache_obj_t *got = NULL;
    ck_assert_int_eq(get_obj(s, soft, &got), 0);
    ck_assert(live_flags(got) & OBJ_F_SOFT_PURGED);
    obj_unref(&got);

    /* fetched and stored after the purges were applied again: kept, and a later open must not purge it */
    cache_obj_t *a2 = make_obj("example.com/a2", "ka", "", 100, 'A', 1);
    store_put_since(s, a2, store_purge_epoch(s));
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, a2));
    store_close(&s);
    s = open_store(dir, 64 << 20, NULL);
    ck_assert(present(s, a2));
    ck_assert(present(s, b));
    store_close(&s);

    /* a purge-all is journaled too */
    copy_file(data, image);
    s = open_store(dir, 64 << 20, NULL);
    store_purge_all(s, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(store_generation(s), 2);
    store_close(&s);
    copy_file(image, data);
    unlink(lock);
    s = open_store(dir, 64 << 20, NULL);
    ck_assert_uint_eq(store_generation(s), 2);
    ck_assert(!present(s, b));
    ck_assert(!present(s, a2));
    store_close(&s);

    for (int i = 0; i < 4; i++)
        obj_unref(&all[i]);
    obj_unref(&a2);
    free(data);
    free(image);
    free(lock);
    tmpdir_free(dir);
}
END_TEST

/* a journaled purge of a long key is replayed after a crash too (its record holds the index key) */
START_TEST(test_journal_replays_long_key_purges)
{
    char *dir = tmpdir_new();
    char *data = path_in(dir, "data.mdb"), *image = path_in(dir, "image.mdb"), *lock = path_in(dir, "lock.mdb");
    char *k900 = long_key(900, 'j', '9');
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *a = make_obj("example.com/a", k900, "", 100, 'a', 1);
    cache_obj_t *b = make_obj("example.com/b", "kb", "", 100, 'b', 1);
    store_put(s, a);
    store_put(s, b);
    store_close(&s);
    copy_file(data, image);

    s = open_store(dir, 64 << 20, NULL);
    ck_assert_uint_eq(purge_key_now(s, k900), 1);
    store_close(&s);
    copy_file(image, data); /* the crash: the main store lost the delete, the journal kept the purge */
    unlink(lock);
    s = open_store(dir, 64 << 20, NULL);
    ck_assert(!present(s, a));
    ck_assert(present(s, b));
    store_close(&s);

    obj_unref(&a);
    obj_unref(&b);
    free(k900);
    free(data);
    free(image);
    free(lock);
    tmpdir_free(dir);
}
END_TEST

/*
 * The same for a put in the batch the journal thread has taken and is writing to the
 * journal, when the writer answers a purge meanwhile: the put is behind the purge, from
 * a fetch that began before it, in no queue the writer holds. Forced with the gate: the
 * soft purge's journal write is held until the put and another purge are queued; then
 * the journal thread takes those two and is held in their write while the writer
 * applies and answers the soft purge.
 */
typedef struct transit_seen {
    queued_seen_t q;
    _Atomic int answered; /* polled by the test while the writer answers */
} transit_seen_t;

static void on_transit_purge(void *arg, const store_purge_result_t *res)
{
    transit_seen_t *t = arg;
    on_queued_purge(&t->q, res);
    atomic_store(&t->answered, 1);
}

static void count_answer(void *arg, const store_purge_result_t *res)
{
    (void)res;
    atomic_fetch_add((_Atomic int *)arg, 1);
}

START_TEST(test_writer_answer_covers_the_batch_in_transit)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(64 << 20, 4);
    store_t *s = open_store(dir, 128 << 20, mem);
    cache_obj_t *x = make_obj("example.com/t/x", "tx", "", 100, 'x', 1);
    cache_obj_t *p = make_obj("example.com/t/p", "tx", "", 100, 'p', 1);
    store_put(s, x);
    ck_assert_int_eq(store_flush(s), 0);

    uint64_t since = store_purge_epoch(s); /* the racing fetch begins */
    transit_seen_t t = {.q = {.s = s, .mem = mem, .obj = p}};
    _Atomic int other = 0;
    atomic_store(&pwrite_gate_arrived, 0);
    atomic_store(&pwrite_gate_passes, 0);
    atomic_store(&pwrite_gate_on, 1);
    store_purge_surrogate_key(s, "tx", 2, 1, on_transit_purge, &t);
    ck_assert(wait_atomic_at_least(&pwrite_gate_arrived, 1)); /* its batch is taken, its write held */
    store_hold_begin(s);
    ck_assert_int_eq(mem_insert(mem, p), 0); /* the fetch ends: published, then queued */
    store_put_since(s, p, since);
    store_purge_surrogate_key(s, "t-other", 7, 0, count_answer, &other); /* so that their batch writes too */
    store_hold_end(s);
    atomic_store(&pwrite_gate_passes, 1);
    ck_assert(wait_atomic_at_least(&pwrite_gate_arrived, 2)); /* the put's batch is taken, its write held */
    ck_assert(wait_atomic_at_least(&t.answered, 1));
    int answered_meanwhile = atomic_load(&other) == 0; /* the other's write was still held */
    atomic_store(&pwrite_gate_on, 0);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_msg(answered_meanwhile, "the soft purge was not answered while the put was in transit");
    ck_assert_int_eq(t.q.calls, 1);
    ck_assert_int_eq(t.q.res.err, 0);
    ck_assert_msg(!t.q.in_mem, "a put in the batch in transit is in memory when the writer answers the purge");
    ck_assert(!present(s, p)); /* and the writer dropped it */
    ck_assert_int_eq(atomic_load(&other), 1);

    obj_unref(&x);
    obj_unref(&p);
    store_close(&s);
    mem_destroy(&mem);
    tmpdir_free(dir);
}
END_TEST

/* A new store's purge journal is a sixteenth of its map, from 8 MiB to 32 MiB; an
 * existing journal keeps its size when the store is reopened with another map. */
START_TEST(test_journal_size_follows_the_map)
{
    static const struct {
        size_t map, journal;
    } cases[] = {{1 << 20, 8 << 20}, {256 << 20, 16 << 20}, {(size_t)1 << 30, 32 << 20}, {(size_t)2 << 30, 32 << 20}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *dir = tmpdir_new(), path[4200];
        store_t *s = open_store(dir, cases[i].map, NULL);
        store_close(&s);
        struct stat st;
        snprintf(path, sizeof(path), "%s/journal.log", dir);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_msg((size_t)st.st_size == cases[i].journal, "map %zu: journal of %jd bytes, expected %zu", cases[i].map,
                      (intmax_t)st.st_size, cases[i].journal);
        if (i == 1) { /* reopened with a bigger map: the journal stays as it is */
            s = open_store(dir, (size_t)1 << 30, NULL);
            store_close(&s);
            ck_assert_int_eq(stat(path, &st), 0);
            ck_assert_uint_eq((uintmax_t)st.st_size, cases[i].journal);
        }
        tmpdir_free(dir);
    }
}
END_TEST

/* purges of `count` distinct 500-byte keys starting at `from`, flushed every 1,000 (one journal segment each) */
static void purge_long_keys(store_t *s, int from, int count, purge_record_t *pr)
{
    char key[500];
    memset(key, 'q', sizeof(key));
    for (int i = from; i < from + count; i++) {
        char num[16];
        snprintf(num, sizeof(num), "%07d", i);
        memcpy(key, num, 7);
        store_purge_surrogate_key(s, key, sizeof(key), 0, on_purge, pr);
        if ((i - from) % 1000 == 999)
            ck_assert_int_eq(store_flush(s), 0);
    }
    ck_assert_int_eq(store_flush(s), 0);
}

START_TEST(test_checkpoint_when_a_quarter_of_the_journal_waits)
{
    char *dir = tmpdir_new();
    /* an 8 MiB journal (16,384 sectors), and a timer that never fires during the test */
    store_options_t opt = {.dir = dir, .map_size = 64 << 20, .checkpoint_ms = 600000};
    char err[256];
    store_t *s = NULL;
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), 0);
    purge_record_t pr = {0};
    store_stats_t st;

    /* 3,000 purges: three segments of ~985 sectors, under a quarter of the ring */
    purge_long_keys(s, 0, 3000, &pr);
    ck_assert_int_eq(pr.calls, 3000);
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.checkpoints, 0);

    /* two more segments cross the quarter: the writer asks for a checkpoint at once */
    purge_long_keys(s, 3000, 2000, &pr);
    for (int i = 0; i < 1000 && (store_get_stats(s, &st), st.checkpoints == 0); i++)
        sleep_ms(10);
    ck_assert_msg(st.checkpoints >= 1, "no checkpoint after 5,000 journaled purges (a 10-minute timer)");
    ck_assert_int_eq(pr.calls, 5000);
    ck_assert_int_eq(pr.last.err, 0);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

/*
 * A purge whose journal write landed but reported failure is answered STORE_EIO and not
 * applied. Its record may be intact in the journal: the store must never replay it over
 * what was stored after it, neither at a clean reopen nor after a crash that loses the
 * main store's unsynced writes. Twice: with the later put in a batch of its own, and
 * queued right behind the purge, so that the commit that applies the put is the one
 * that must record the failed purge's seq as passed.
 */
START_TEST(test_failed_journal_write_is_not_replayed)
{
    for (int same_batch = 0; same_batch < 2; same_batch++) {
        char *dir = tmpdir_new();
        char *data = path_in(dir, "data.mdb"), *image = path_in(dir, "image.mdb"), *lock = path_in(dir, "lock.mdb");
        store_t *s = open_store(dir, 64 << 20, NULL);
        cache_obj_t *a = make_obj("example.com/a", "kf", "", 100, 'a', 1);
        cache_obj_t *b = make_obj("example.com/b", "kf", "", 100, 'b', 1);
        store_put(s, a);
        ck_assert_int_eq(store_flush(s), 0);

        atomic_store(&pwrite_fail_after, 512); /* the purge's segment: a sector or more */
        purge_record_t pr = {0};
        if (same_batch)
            store_hold_begin(s);
        store_purge_surrogate_key(s, "kf", 2, 0, on_purge, &pr);
        if (same_batch) {
            store_put(s, b);
            store_hold_end(s);
        }
        ck_assert_int_eq(store_flush(s), 0);
        ck_assert_int_eq(atomic_load(&pwrite_fail_after), 0); /* the write was made, and failed */
        ck_assert_int_eq(pr.calls, 1);
        ck_assert_int_eq(pr.last.err, STORE_EIO);
        ck_assert(present(s, a)); /* not applied */
        if (!same_batch) {        /* stored after the failed purge was answered, under the same key */
            store_put_since(s, b, store_purge_epoch(s));
            ck_assert_int_eq(store_flush(s), 0);
        }
        ck_assert(present(s, b));
        store_close(&s);
        copy_file(data, image); /* as the close synced it */

        s = open_store(dir, 64 << 20, NULL);
        ck_assert_msg(present(s, a) && present(s, b), "same batch %d: a purge answered STORE_EIO was replayed", same_batch);
        store_close(&s);

        /* the same from a crash: the main store as last synced, the journal as it is */
        copy_file(image, data);
        unlink(lock);
        s = open_store(dir, 64 << 20, NULL);
        ck_assert(present(s, a) && present(s, b));

        /* the next purge's write works, and it is applied */
        store_purge_surrogate_key(s, "kf", 2, 0, on_purge, &pr);
        ck_assert_int_eq(store_flush(s), 0);
        ck_assert_int_eq(pr.calls, 2);
        ck_assert_int_eq(pr.last.err, 0);
        ck_assert(!present(s, a) && !present(s, b));
        store_close(&s);

        obj_unref(&a);
        obj_unref(&b);
        free(data);
        free(image);
        free(lock);
        tmpdir_free(dir);
    }
}
END_TEST

/* The time of each synced journal write is counted (what the disk adds to a purge); a failed one is not. */
START_TEST(test_journal_write_time_is_counted)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.journal_commits, 0);
    ck_assert_uint_eq(st.journal_write_us, 0);
    ck_assert_uint_eq(st.journal_write_max_us, 0);

    /* a write the gate holds for 60 ms */
    purge_record_t pr = {0};
    atomic_store(&pwrite_gate_arrived, 0);
    atomic_store(&pwrite_gate_passes, 0);
    atomic_store(&pwrite_gate_on, 1);
    store_purge_surrogate_key(s, "slow", 4, 0, on_purge, &pr);
    ck_assert(wait_atomic_at_least(&pwrite_gate_arrived, 1));
    sleep_ms(60);
    atomic_store(&pwrite_gate_on, 0);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 1);
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.journal_commits, 1);
    ck_assert_uint_ge(st.journal_write_max_us, 60000);
    ck_assert_uint_lt(st.journal_write_max_us, 20000000);
    ck_assert_uint_eq(st.journal_write_us, st.journal_write_max_us);

    /* a quick one adds its own time and leaves the longest alone */
    uint64_t slow = st.journal_write_us;
    store_purge_surrogate_key(s, "quick", 5, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.journal_commits, 2);
    ck_assert_uint_eq(st.journal_write_max_us, slow);
    ck_assert_uint_ge(st.journal_write_us, slow);
    ck_assert_uint_lt(st.journal_write_us - slow, slow);

    /* a write that fails: answered STORE_EIO, neither a commit nor time */
    uint64_t before = st.journal_write_us;
    atomic_store(&pwrite_fail_after, 512);
    store_purge_surrogate_key(s, "fails", 5, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 3);
    ck_assert_int_eq(pr.last.err, STORE_EIO);
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.journal_commits, 2);
    ck_assert_uint_eq(st.journal_write_us, before);

    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

/* Many purges (found or not) go round the journal ring several times; a full ring falls back to a sync. */
START_TEST(test_journal_absent_and_full)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *o = make_obj("example.com/o", "ko", "", 100, 'o', 1);
    store_put(s, o);
    ck_assert_int_eq(store_flush(s), 0);
    /* enough single-key purges (one at a time: one segment each) to go round the ring several times */
    char key[600];
    memset(key, 'x', sizeof(key));
    purge_record_t pr = {0};
    for (int i = 0; i < 40000; i++) {
        char num[16];
        snprintf(num, sizeof(num), "%07d", i % 10000000);
        memcpy(key, num, 7);
        store_purge_surrogate_key(s, key, 500, 0, on_purge, &pr);
        if (i % 64 == 63)
            ck_assert_int_eq(store_flush(s), 0);
    }
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 40000);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert(present(s, o));
    store_purge_surrogate_key(s, "ko", 2, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(pr.last.objects, 1);
    store_close(&s);
    obj_unref(&o);
    tmpdir_free(dir);
}
END_TEST

static Suite *store_journal_suite(void)
{
    Suite *s = suite_create("store_journal");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_journal_replays_long_key_purges);
    tcase_add_test(tc, test_journal_falls_back_from_direct_writes);
    tcase_add_test(tc, test_journal_replays_lost_purges);
    tcase_add_test(tc, test_bus_seq_replays_with_purges);
    tcase_add_test(tc, test_failed_journal_write_is_not_replayed);
    tcase_add_test(tc, test_journal_absent_and_full);
    tcase_add_test(tc, test_journal_write_time_is_counted);
    tcase_add_test(tc, test_journal_size_follows_the_map);
    tcase_add_test(tc, test_writer_answer_covers_the_batch_in_transit);
    tcase_add_test(tc, test_checkpoint_when_a_quarter_of_the_journal_waits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("store-journal") != 0)
        return 1;
    SRunner *sr = srunner_create(store_journal_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

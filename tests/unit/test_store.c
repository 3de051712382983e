/*
 * tests/unit/test_store.c — the LMDB store: round trips, the surrogate-key and
 * variant indexes, hard and soft purges (and the memory tier they keep coherent),
 * generations and their background reclaim, eviction in a tiny map, reopening,
 * key/value records, corrupt records, read-only opens and concurrent readers, the
 * purge journal (crashes, failed writes) and purges answered before their commit.
 * Every test works in its own mkdtemp directory under /tmp and removes it.
 */
#include <check.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "common/now.h"
#include "storage/mem.h"
#include "storage/object.h"
#include "storage/object_int.h"
#include "storage/store.h"
#include "tests/unit/unit_obj_v1.h"
#include "tests/unit/unit_tmp.h"

/* ---- helpers ---- */

static store_t *open_store(const char *dir, size_t map_size, mem_tier_t *mem)
{
    store_options_t opt = {.dir = dir, .map_size = map_size, .mem = mem};
    char err[256];
    store_t *s = NULL;
    int rc = store_open(&s, &opt, err, sizeof(err));
    ck_assert_msg(rc == 0, "store_open: %d %s", rc, err);
    return s;
}

/* An object for `key` with surrogate keys, vary and a body of `body_len` bytes of `fill`. */
static cache_obj_t *make_obj(const char *key, const char *skeys, const char *vary, size_t body_len, char fill,
                             uint64_t generation)
{
    /* eviction is FIFO by response time in ms; keep it strictly increasing however fast we go */
    static int64_t last_ms;
    obj_meta_t meta = {.status = 200, .generation = generation, .ttl = 300};
    meta.request_time_ms = now_wall_ms();
    if (meta.request_time_ms <= last_ms)
        meta.request_time_ms = last_ms + 1;
    last_ms = meta.request_time_ms;
    meta.response_time_ms = meta.request_time_ms;
    obj_header_t hdr = {"content-type", 12, "text/plain", 10};
    obj_builder_t *b = obj_builder_begin(&meta, key, strlen(key), skeys, strlen(skeys), vary, strlen(vary), &hdr, 1, body_len);
    char buf[1024];
    memset(buf, fill, sizeof(buf));
    for (size_t off = 0; off < body_len; off += sizeof(buf))
        obj_builder_append(b, buf, body_len - off < sizeof(buf) ? body_len - off : sizeof(buf));
    return obj_builder_finish(b);
}

/* store_get by the object's own hash and key */
static int get_obj(store_t *s, const cache_obj_t *like, cache_obj_t **out)
{
    return store_get(s, like->hash, like->key, like->key_len, out);
}

static int present(store_t *s, const cache_obj_t *like)
{
    cache_obj_t *got = NULL;
    int rc = get_obj(s, like, &got);
    ck_assert_msg(rc == 0 || rc == STORE_ENOTFOUND, "store_get returned %d", rc);
    obj_unref(&got);
    return rc == 0;
}

/* the live (atomic) flags of an object */
static unsigned live_flags(cache_obj_t *obj)
{
    return atomic_load(&obj->flags);
}

typedef struct purge_record {
    int calls;
    store_purge_result_t last;
    uint64_t epoch_at_cb;
    store_t *store;
} purge_record_t;

static void on_purge(void *arg, const store_purge_result_t *res)
{
    purge_record_t *r = arg;
    r->calls++;
    r->last = *res;
    if (r->store != NULL)
        r->epoch_at_cb = store_purge_epoch(r->store);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

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
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
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

/* wait (at most 10 s) until *v reaches want */
static int wait_atomic_at_least(_Atomic int *v, int want)
{
    for (int i = 0; i < 10000 && atomic_load(v) < want; i++)
        sleep_ms(1);
    return atomic_load(v) >= want;
}

/* ---- tests ---- */

START_TEST(test_put_get_delete)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *o = make_obj("example.com/a", "", "", 5000, 'x', store_generation(s));
    cache_obj_t *got = NULL;

    ck_assert_int_eq(store_generation(s), 1);
    ck_assert_int_eq(get_obj(s, o, &got), STORE_ENOTFOUND);
    store_put(s, o);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(get_obj(s, o, &got), 0);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(got->key_len, o->key_len);
    ck_assert_mem_eq(got->key, o->key, o->key_len);
    ck_assert_uint_eq(got->body_len, 5000);
    ck_assert_mem_eq(got->body, o->body, 5000);
    ck_assert_uint_eq(got->meta.ttl, 300);
    ck_assert_int_eq(got->meta.response_time_ms, o->meta.response_time_ms);
    ck_assert_mem_eq(got->hash, o->hash, CACHE_HASH_LEN);
    obj_unref(&got);

    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.puts, 1);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_gt(st.bytes_used, 0);
    ck_assert_uint_eq(st.generation, 1);

    store_delete(s, o->hash);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(get_obj(s, o, &got), STORE_ENOTFOUND);
    ck_assert_ptr_null(got);
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.deletes, 1);
    ck_assert_uint_eq(st.objects, 0);

    obj_unref(&o);
    store_close(&s);
    ck_assert_ptr_null(s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_replace_updates_indexes)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *v1 = make_obj("example.com/r", "old", "", 10, '1', 1);
    cache_obj_t *v2 = make_obj("example.com/r", "new", "", 20, '2', 1);
    purge_record_t pr = {0};

    store_put(s, v1);
    store_put(s, v2);
    ck_assert_int_eq(store_flush(s), 0);
    cache_obj_t *got = NULL;
    ck_assert_int_eq(get_obj(s, v2, &got), 0);
    ck_assert_uint_eq(got->body_len, 20);
    obj_unref(&got);

    store_purge_surrogate_key(s, "old", 3, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_uint_eq(pr.last.objects, 0); /* the replaced record's index entry went with it */
    ck_assert(present(s, v2));
    store_purge_surrogate_key(s, "new", 3, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(pr.last.objects, 1);
    ck_assert(!present(s, v2));

    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.objects, 0);
    obj_unref(&v1);
    obj_unref(&v2);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_full_key_mismatch)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *o = make_obj("example.com/real", "", "", 10, 'x', 1);
    store_put(s, o);
    ck_assert_int_eq(store_flush(s), 0);

    /* a different key whose hash (pretend) collides: same hash, other full key */
    cache_obj_t *got = NULL;
    ck_assert_int_eq(store_get(s, o->hash, "example.com/fake", 16, &got), STORE_ENOTFOUND);
    ck_assert_ptr_null(got);
    ck_assert_int_eq(store_get(s, o->hash, "example.com/rea", 15, &got), STORE_ENOTFOUND);
    ck_assert_int_eq(store_get(s, o->hash, o->key, o->key_len, &got), 0);
    obj_unref(&got);

    obj_unref(&o);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_surrogate_key_purge)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(16 << 20, 4);
    store_t *s = open_store(dir, 64 << 20, mem);
    cache_obj_t *o1 = make_obj("example.com/1", "a b", "", 100, '1', 1);
    cache_obj_t *o2 = make_obj("example.com/2", "b c", "", 100, '2', 1);
    cache_obj_t *o3 = make_obj("example.com/3", "c", "", 100, '3', 1);
    cache_obj_t *o4 = make_obj("example.com/4", " a\ta  d ", "", 100, '4', 1); /* repeated key, odd spacing */
    cache_obj_t *o5 = make_obj("example.com/5", "", "", 100, '5', 1);
    cache_obj_t *all[] = {o1, o2, o3, o4, o5};
    purge_record_t pr = {0};

    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(mem_insert(mem, all[i]), 0);
        store_put(s, all[i]);
    }
    ck_assert_int_eq(store_flush(s), 0);

    store_purge_surrogate_key(s, "a", 1, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert_uint_eq(pr.last.objects, 2);
    ck_assert(!present(s, o1));
    ck_assert(present(s, o2));
    ck_assert(present(s, o3));
    ck_assert(!present(s, o4));
    ck_assert(present(s, o5));
    /* the memory tier no longer serves them either */
    cache_obj_t *m = mem_lookup(mem, o1->hash);
    ck_assert_ptr_null(m);
    m = mem_lookup(mem, o4->hash);
    ck_assert_ptr_null(m);
    m = mem_lookup(mem, o2->hash);
    ck_assert_ptr_eq(m, o2);
    obj_unref(&m);

    /* o1's other key "b" was removed with it: only o2 is left under "b" */
    store_purge_surrogate_key(s, "b", 1, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(pr.last.objects, 1);
    ck_assert(!present(s, o2));
    ck_assert(present(s, o3));
    /* o4's "d" went with o4 */
    store_purge_surrogate_key(s, "d", 1, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(pr.last.objects, 0);
    /* unknown key */
    store_purge_surrogate_key(s, "zzz", 3, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 4);
    ck_assert_uint_eq(pr.last.objects, 0);
    ck_assert(present(s, o3));
    ck_assert(present(s, o5));

    for (int i = 0; i < 5; i++)
        obj_unref(&all[i]);
    store_close(&s);
    mem_destroy(&mem);
    tmpdir_free(dir);
}
END_TEST

/* a key of len bytes: `fill` repeated, ending in `last` */
static char *long_key(size_t len, char fill, char last)
{
    char *k = malloc(len + 1);
    ck_assert_ptr_nonnull(k);
    memset(k, fill, len);
    k[len - 1] = last;
    k[len] = '\0';
    return k;
}

/* purge key k and wait; returns how many objects it purged */
static uint64_t purge_key_now(store_t *s, const char *k)
{
    purge_record_t pr = {0};
    store_purge_surrogate_key(s, k, strlen(k), 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_int_eq(pr.last.err, 0);
    return pr.last.objects;
}

/* issue 19 item 5: keys over LMDB's 511-byte key limit were neither indexed nor purged */
START_TEST(test_long_surrogate_keys_purge)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(16 << 20, 4);
    store_t *s = open_store(dir, 64 << 20, mem);
    char *k500 = long_key(500, 'a', '5'), *k600 = long_key(600, 'b', '6'), *k1024 = long_key(1024, 'c', '1');
    /* two long keys sharing their first 511 (indeed 699) bytes */
    char *p1 = long_key(700, 'p', '1'), *p2 = long_key(700, 'p', '2');
    char skeys[4096];
    snprintf(skeys, sizeof(skeys), "short %s %s %s", k500, k600, k1024);
    cache_obj_t *o_all = make_obj("example.com/all", skeys, "", 100, 'x', 1);
    cache_obj_t *o600 = make_obj("example.com/600", k600, "", 100, 'y', 1);
    cache_obj_t *o1024 = make_obj("example.com/1024", k1024, "", 100, 'z', 1);
    cache_obj_t *o500 = make_obj("example.com/500", k500, "", 100, 'w', 1);
    cache_obj_t *op1 = make_obj("example.com/p1", p1, "", 100, '1', 1);
    cache_obj_t *op2 = make_obj("example.com/p2", p2, "", 100, '2', 1);
    cache_obj_t *all[] = {o_all, o600, o1024, o500, op1, op2};
    for (size_t i = 0; i < 6; i++) {
        ck_assert_int_eq(mem_insert(mem, all[i]), 0);
        store_put(s, all[i]);
    }
    ck_assert_int_eq(store_flush(s), 0);

    /* a 600-byte key: both objects tagged with it go, from disk and memory */
    ck_assert_uint_eq(purge_key_now(s, k600), 2);
    ck_assert(!present(s, o600));
    ck_assert(!present(s, o_all));
    cache_obj_t *m = mem_lookup(mem, o600->hash);
    ck_assert_ptr_null(m);
    ck_assert(present(s, o1024));

    /* a 1,024-byte key (the longest the API takes) */
    ck_assert_uint_eq(purge_key_now(s, k1024), 1);
    ck_assert(!present(s, o1024));

    /* a 500-byte key is still indexed as itself */
    ck_assert_uint_eq(purge_key_now(s, k500), 1);
    ck_assert(!present(s, o500));

    /* the shared prefix does not make them one key */
    ck_assert_uint_eq(purge_key_now(s, p1), 1);
    ck_assert(!present(s, op1));
    ck_assert(present(s, op2));
    ck_assert_uint_eq(purge_key_now(s, p2), 1);
    ck_assert(!present(s, op2));

    /* o_all's other entries went with it: nothing is left under "short" */
    ck_assert_uint_eq(purge_key_now(s, "short"), 0);

    /* a put after a purge of a long key it does not carry is kept (the purge log's tag is the whole key's) */
    cache_obj_t *op2b = make_obj("example.com/p2b", p2, "", 100, '3', 1);
    uint64_t since = store_purge_epoch(s);
    ck_assert_uint_eq(purge_key_now(s, p1), 0);
    store_put_since(s, op2b, since);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, op2b));
    ck_assert_uint_eq(purge_key_now(s, p2), 1);

    obj_unref(&op2b);
    for (size_t i = 0; i < 6; i++)
        obj_unref(&all[i]);
    free(k500), free(k600), free(k1024), free(p1), free(p2);
    store_close(&s);
    mem_destroy(&mem);
    tmpdir_free(dir);
}
END_TEST

/* Fastly's rule for the Surrogate-Key value an origin sends: a key over 1,024 bytes, and
 * every key after it, is ignored; so is a key that does not end within the first 16 KB */
START_TEST(test_surrogate_key_limits_from_the_origin)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    char *k2000 = long_key(2000, 'd', 'x'), *k1024 = long_key(1024, 'e', 'x');
    char skeys[4096 + OBJ_SKEYS_MAX_LEN];
    snprintf(skeys, sizeof(skeys), "before %s after", k2000);
    cache_obj_t *o2000 = make_obj("example.com/2000", skeys, "", 100, 'a', 1);
    /* 15 keys of 1,024 bytes and a small one end before 16 KB; the next one crosses it */
    size_t n = 0;
    for (int i = 0; i < 15; i++)
        n += (size_t)snprintf(skeys + n, sizeof(skeys) - n, "%s ", k1024);
    n += (size_t)snprintf(skeys + n, sizeof(skeys) - n, "within ");
    ck_assert_uint_le(n, OBJ_SKEYS_MAX_LEN);
    snprintf(skeys + n, sizeof(skeys) - n, "%.*s crossing", (int)(OBJ_SKEYS_MAX_LEN - n - 2), k1024);
    cache_obj_t *o16k = make_obj("example.com/16k", skeys, "", 100, 'b', 1);
    store_put(s, o2000);
    store_put(s, o16k);
    ck_assert_int_eq(store_flush(s), 0);

    ck_assert_uint_eq(purge_key_now(s, k2000), 0); /* never indexed: not a key */
    ck_assert_uint_eq(purge_key_now(s, "after"), 0);
    ck_assert(present(s, o2000));
    ck_assert_uint_eq(purge_key_now(s, "crossing"), 0);
    ck_assert(present(s, o16k));
    ck_assert_uint_eq(purge_key_now(s, "within"), 1);
    ck_assert(!present(s, o16k));
    ck_assert_uint_eq(purge_key_now(s, "before"), 1);
    ck_assert(!present(s, o2000));

    obj_unref(&o2000);
    obj_unref(&o16k);
    free(k2000), free(k1024);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_url_purge_every_variant)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(16 << 20, 4);
    store_t *s = open_store(dir, 64 << 20, mem);
    cache_obj_t *plain = make_obj("example.com/v", "", "", 10, 'p', 1);
    cache_obj_t *gz = make_obj("example.com/v", "", "accept-encoding=gzip", 10, 'g', 1);
    cache_obj_t *br = make_obj("example.com/v", "k", "accept-encoding=br", 10, 'b', 1);
    cache_obj_t *other = make_obj("example.com/w", "k", "accept-encoding=br", 10, 'o', 1);
    cache_obj_t *all[] = {plain, gz, br, other};
    purge_record_t pr = {0};

    /* variants are stored under distinct hashes */
    ck_assert(memcmp(gz->hash, br->hash, CACHE_HASH_LEN) != 0);
    ck_assert(memcmp(gz->hash, plain->hash, CACHE_HASH_LEN) != 0);
    for (int i = 0; i < 4; i++) {
        mem_insert(mem, all[i]);
        store_put(s, all[i]);
    }
    ck_assert_int_eq(store_flush(s), 0);
    for (int i = 0; i < 4; i++)
        ck_assert(present(s, all[i]));

    store_purge_key_url(s, "example.com/v", 13, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_uint_eq(pr.last.objects, 3);
    ck_assert(!present(s, plain));
    ck_assert(!present(s, gz));
    ck_assert(!present(s, br));
    ck_assert(present(s, other));
    for (int i = 0; i < 3; i++) {
        cache_obj_t *m = mem_lookup(mem, all[i]->hash);
        ck_assert_ptr_null(m);
    }
    cache_obj_t *m = mem_lookup(mem, other->hash);
    ck_assert_ptr_eq(m, other);
    obj_unref(&m);

    /* br's surrogate key entry went with it: "k" now tags only `other` */
    store_purge_surrogate_key(s, "k", 1, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(pr.last.objects, 1);

    /* purging again finds nothing */
    store_purge_key_url(s, "example.com/v", 13, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(pr.last.objects, 0);

    for (int i = 0; i < 4; i++)
        obj_unref(&all[i]);
    store_close(&s);
    mem_destroy(&mem);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_soft_purge)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(16 << 20, 4);
    store_t *s = open_store(dir, 64 << 20, mem);
    cache_obj_t *a = make_obj("example.com/s1", "tag", "", 3000, 'a', 1);
    cache_obj_t *b = make_obj("example.com/s2", "tag", "lang=en", 10, 'b', 1);
    cache_obj_t *c = make_obj("example.com/s3", "other", "", 10, 'c', 1);
    cache_obj_t *all[] = {a, b, c};
    purge_record_t pr = {0};

    for (int i = 0; i < 3; i++) {
        mem_insert(mem, all[i]);
        store_put(s, all[i]);
    }
    ck_assert_int_eq(store_flush(s), 0);

    store_purge_surrogate_key(s, "tag", 3, 1, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert_uint_eq(pr.last.objects, 2);

    /* still there, marked, with the same freshness data and body */
    for (int i = 0; i < 2; i++) {
        cache_obj_t *got = NULL;
        ck_assert_int_eq(get_obj(s, all[i], &got), 0);
        ck_assert_uint_ne(got->meta.flags & OBJ_F_SOFT_PURGED, 0);
        ck_assert_uint_ne(live_flags(got) & OBJ_F_SOFT_PURGED, 0);
        ck_assert_int_eq(got->meta.response_time_ms, all[i]->meta.response_time_ms);
        ck_assert_int_eq(got->meta.request_time_ms, all[i]->meta.request_time_ms);
        ck_assert_uint_eq(got->meta.ttl, all[i]->meta.ttl);
        ck_assert_uint_eq(got->meta.initial_age, all[i]->meta.initial_age);
        ck_assert_uint_eq(got->body_len, all[i]->body_len);
        ck_assert_mem_eq(got->body, all[i]->body, all[i]->body_len);
        obj_unref(&got);
        /* the resident object itself carries the flag */
        cache_obj_t *m = mem_lookup(mem, all[i]->hash);
        ck_assert_ptr_eq(m, all[i]);
        ck_assert_uint_ne(live_flags(m) & OBJ_F_SOFT_PURGED, 0);
        obj_unref(&m);
    }
    cache_obj_t *got = NULL;
    ck_assert_int_eq(get_obj(s, c, &got), 0);
    ck_assert_uint_eq(live_flags(got) & OBJ_F_SOFT_PURGED, 0);
    obj_unref(&got);
    ck_assert_uint_eq(live_flags(c) & OBJ_F_SOFT_PURGED, 0);

    /* the index survives a soft purge: a hard purge of the same key still finds both */
    store_purge_surrogate_key(s, "tag", 3, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(pr.last.objects, 2);
    ck_assert(!present(s, a));
    ck_assert(!present(s, b));

    /* soft URL purge */
    store_purge_key_url(s, "example.com/s3", 14, 1, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(pr.last.objects, 1);
    ck_assert_int_eq(get_obj(s, c, &got), 0);
    ck_assert_uint_ne(got->meta.flags & OBJ_F_SOFT_PURGED, 0);
    obj_unref(&got);
    ck_assert_uint_ne(live_flags(c) & OBJ_F_SOFT_PURGED, 0);

    for (int i = 0; i < 3; i++)
        obj_unref(&all[i]);
    store_close(&s);
    mem_destroy(&mem);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_purge_epoch)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    purge_record_t pr = {.store = s};
    cache_obj_t *o = make_obj("example.com/e", "k", "", 10, 'e', 1);
    store_put(s, o);
    ck_assert_int_eq(store_flush(s), 0);

    uint64_t e0 = store_purge_epoch(s);
    store_purge_key_url(s, "example.com/e", 13, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    uint64_t e1 = store_purge_epoch(s);
    ck_assert_uint_gt(e1, e0);
    ck_assert_uint_eq(pr.epoch_at_cb, e1); /* bumped before the callback ran */
    store_purge_surrogate_key(s, "nothing-tagged", 14, 1, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    uint64_t e2 = store_purge_epoch(s);
    ck_assert_uint_gt(e2, e1);
    store_purge_all(s, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_gt(store_purge_epoch(s), e2);
    ck_assert_int_eq(pr.calls, 3);

    /* plain puts do not move it */
    uint64_t e3 = store_purge_epoch(s);
    cache_obj_t *p = make_obj("example.com/f", "", "", 10, 'f', store_generation(s));
    store_put(s, p);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(store_purge_epoch(s), e3);

    obj_unref(&o);
    obj_unref(&p);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_generation_purge_all)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(16 << 20, 4);
    store_t *s = open_store(dir, 64 << 20, mem);
    enum { N = 2500 }; /* more than one reclaim step deletes */
    cache_obj_t *first = NULL;
    for (int i = 0; i < N; i++) {
        char key[64];
        snprintf(key, sizeof(key), "example.com/old/%d", i);
        cache_obj_t *o = make_obj(key, "all", "", 50, 'o', 1);
        if (i == 0) {
            first = obj_ref(o);
            mem_insert(mem, o);
        }
        store_put(s, o);
        obj_unref(&o);
    }
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, first));

    purge_record_t pr = {0};
    store_purge_all(s, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert_uint_eq(pr.last.generation, 2);
    ck_assert_uint_eq(store_generation(s), 2);
    ck_assert(!present(s, first));
    cache_obj_t *m = mem_lookup(mem, first->hash);
    ck_assert_ptr_null(m);

    /* new puts are visible; a put made for the old generation is dropped */
    cache_obj_t *fresh = make_obj("example.com/new", "all", "", 50, 'n', store_generation(s));
    cache_obj_t *stale = make_obj("example.com/late", "", "", 50, 'l', 1);
    store_put(s, fresh);
    store_put(s, stale);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, fresh));
    ck_assert(!present(s, stale));

    /* reclaim deletes the old objects in the background: only `fresh` is left */
    store_stats_t st;
    for (int i = 0; i < 500; i++) {
        store_get_stats(s, &st);
        if (st.objects == 1)
            break;
        sleep_ms(10);
    }
    ck_assert_uint_eq(st.objects, 1);
    ck_assert(present(s, fresh));
    /* and their surrogate-key entries went with them */
    store_purge_surrogate_key(s, "all", 3, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(pr.last.objects, 1);

    obj_unref(&first);
    obj_unref(&fresh);
    obj_unref(&stale);
    store_close(&s);
    mem_destroy(&mem);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_eviction_tiny_map)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(64 << 20, 4);
    size_t map = 1 << 20;
    store_t *s = open_store(dir, map, mem);
    enum { N = 3000, KEEP = 8 };
    cache_obj_t *keep[KEEP] = {0}, *oldest = NULL;

    for (int i = 0; i < N; i++) {
        char key[64], tag[32];
        snprintf(key, sizeof(key), "example.com/big/%d", i);
        snprintf(tag, sizeof(tag), "t%d all", i % 7);
        cache_obj_t *o = make_obj(key, tag, i % 5 == 0 ? "v=1" : "", 4096, (char)('a' + i % 26), 1);
        if (i == 0)
            oldest = obj_ref(o);
        if (i >= N - KEEP)
            keep[i - (N - KEEP)] = obj_ref(o);
        if (i % 3 == 0)
            mem_insert(mem, o);
        store_put(s, o);
        obj_unref(&o);
        if (i % 500 == 499)
            ck_assert_int_eq(store_flush(s), 0);
    }
    ck_assert_int_eq(store_flush(s), 0);

    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.map_size, map);
    ck_assert_uint_gt(st.evictions, N / 2);
    ck_assert_uint_eq(st.map_full_errors, 0);
    ck_assert_uint_le(st.bytes_used, map * 0.86);
    ck_assert_uint_gt(st.objects, 10);
    ck_assert(!present(s, oldest));
    ck_assert_ptr_null(mem_lookup(mem, oldest->hash)); /* evicted from disk: gone from memory too */
    for (int i = 0; i < KEEP; i++) {
        cache_obj_t *got = NULL;
        ck_assert_int_eq(get_obj(s, keep[i], &got), 0);
        ck_assert_mem_eq(got->body, keep[i]->body, 4096);
        obj_unref(&got);
    }

    /* the store still takes purges and kv writes */
    purge_record_t pr = {0};
    store_purge_surrogate_key(s, "all", 3, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert_uint_eq(pr.last.objects, st.objects);
    ck_assert_int_eq(store_kv_put_sync(s, "config", "after", "full", 4), 0);
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.objects, 0);

    /* an object bigger than map/8 is refused by the disk; it serves from memory, where purges find it too */
    cache_obj_t *huge = make_obj("example.com/huge", "hugekey", "", map / 4, 'h', 1);
    mem_insert(mem, huge);
    store_put(s, huge);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(!present(s, huge));
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.map_full_errors, 1);
    ck_assert_uint_eq(st.memory_only, 1);
    cache_obj_t *resident = mem_lookup(mem, huge->hash);
    ck_assert_ptr_eq(resident, huge);
    obj_unref(&resident);
    purge_record_t hpr = {0};
    store_purge_surrogate_key(s, "hugekey", 7, 0, on_purge, &hpr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(hpr.last.err, 0);
    ck_assert_ptr_null(mem_lookup(mem, huge->hash));

    obj_unref(&huge);
    obj_unref(&oldest);
    for (int i = 0; i < KEEP; i++)
        obj_unref(&keep[i]);
    store_close(&s);
    mem_destroy(&mem);
    tmpdir_free(dir);
}
END_TEST

/* Eviction set to start only at 99%: commits run into MDB_MAP_FULL; the store recovers by itself. */
START_TEST(test_map_full_recovers)
{
    char *dir = tmpdir_new();
    store_options_t opt = {.dir = dir, .map_size = 1 << 20, .evict_high_water = 0.99, .evict_low_water = 0.98};
    char err[256];
    store_t *s = NULL;
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), 0);
    enum { N = 2000 };
    cache_obj_t *last = NULL;
    for (int i = 0; i < N; i++) {
        char key[64];
        snprintf(key, sizeof(key), "example.com/full/%d", i);
        cache_obj_t *o = make_obj(key, "all", "", 4096 + (size_t)(i % 3) * 1000, 'f', 1);
        store_put(s, o);
        if (i == N - 1)
            last = obj_ref(o);
        obj_unref(&o);
    }
    ck_assert_int_eq(store_flush(s), 0);
    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_gt(st.evictions, 0);
    ck_assert_uint_gt(st.objects, 0);
    ck_assert_uint_le(st.bytes_used, st.map_size);
    /* most puts made it (the ones that did not are counted) */
    ck_assert_uint_eq(st.puts + st.map_full_errors, N);
    ck_assert_uint_gt(st.puts, N / 2);

    /* purges and kv writes still work, and the data reads back */
    purge_record_t pr = {0};
    ck_assert_int_eq(store_kv_put_sync(s, "config", "k", "v", 1), 0);
    store_purge_surrogate_key(s, "all", 3, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert_uint_eq(pr.last.objects, st.objects);
    store_put(s, last);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, last));
    obj_unref(&last);
    store_close(&s);

    /* and the environment is consistent after a reopen */
    s = open_store(dir, 1 << 20, NULL);
    char *val = NULL;
    size_t len;
    ck_assert_int_eq(store_kv_get(s, "config", "k", &val, &len), 0);
    free(val);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

/* A map filled with records eviction cannot touch (kv): puts are dropped and counted, nothing breaks. */
START_TEST(test_map_full_of_kv)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 1 << 20, NULL);
    char val[2000];
    memset(val, 'v', sizeof(val));
    int stored = 0, rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++) {
        char key[32];
        snprintf(key, sizeof(key), "sample/%05d", i);
        rc = store_kv_put_sync(s, "stats", key, val, sizeof(val));
        if (rc == 0)
            stored++;
    }
    ck_assert_int_eq(rc, STORE_EIO); /* the map is full */
    ck_assert_int_gt(stored, 100);

    cache_obj_t *o = make_obj("example.com/nofit", "k", "", 4096, 'n', 1);
    for (int i = 0; i < 50; i++) {
        char key[64];
        snprintf(key, sizeof(key), "example.com/nofit/%d", i);
        cache_obj_t *p = make_obj(key, "k", "", 4096, 'n', 1);
        store_put(s, p);
        obj_unref(&p);
    }
    ck_assert_int_eq(store_flush(s), 0);
    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_ge(st.map_full_errors, 1);
    ck_assert_uint_eq(st.puts + st.map_full_errors, 50);
    purge_record_t pr = {0};
    store_purge_surrogate_key(s, "k", 1, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 1);

    /* room comes back by deleting kv records; then puts work again */
    for (int i = 0; i < stored / 2; i++) {
        char key[32];
        snprintf(key, sizeof(key), "sample/%05d", i);
        ck_assert_int_eq(store_kv_put_sync(s, "stats", key, NULL, 0), 0); /* deletes always have room */
    }
    store_put(s, o);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, o));
    store_close(&s);

    s = open_store(dir, 1 << 20, NULL);
    char *got = NULL;
    size_t len;
    char key[32];
    snprintf(key, sizeof(key), "sample/%05d", stored - 1);
    ck_assert_int_eq(store_kv_get(s, "stats", key, &got, &len), 0);
    ck_assert_uint_eq(len, sizeof(val));
    free(got);
    ck_assert(present(s, o));
    obj_unref(&o);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

static int collect_kv(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    char *buf = arg;
    size_t n = strlen(buf);
    snprintf(buf + n, 256 - n, "%.*s=%.*s;", (int)key_len, key, (int)val_len, (const char *)val);
    return 0;
}

static int stop_first(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    (void)key;
    (void)key_len;
    (void)val;
    (void)val_len;
    (*(int *)arg)++;
    return 1;
}

START_TEST(test_kv)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    char *val = NULL;
    size_t len = 0;

    ck_assert_int_eq(store_kv_get(s, "config", "settings", &val, &len), STORE_ENOTFOUND);
    ck_assert_ptr_null(val);
    ck_assert_int_eq(store_kv_put_sync(s, "config", "settings", "{\"ttl\":5}", 9), 0);
    ck_assert_int_eq(store_kv_put_sync(s, "config", "backend/b", "2", 1), 0);
    ck_assert_int_eq(store_kv_put_sync(s, "config", "backend/a", "1", 1), 0);
    ck_assert_int_eq(store_kv_put_sync(s, "tokens", "abc", "global", 6), 0);
    ck_assert_int_eq(store_kv_put_sync(s, "stats", "bw/1", "", 0), 0);

    ck_assert_int_eq(store_kv_get(s, "config", "settings", &val, &len), 0);
    ck_assert_uint_eq(len, 9);
    ck_assert_str_eq(val, "{\"ttl\":5}");
    free(val);
    ck_assert_int_eq(store_kv_get(s, "stats", "bw/1", &val, &len), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(val, "");
    free(val);
    /* databases are separate */
    ck_assert_int_eq(store_kv_get(s, "tokens", "settings", &val, &len), STORE_ENOTFOUND);

    char buf[256] = "";
    ck_assert_int_eq(store_kv_foreach(s, "config", collect_kv, buf), 0);
    ck_assert_str_eq(buf, "backend/a=1;backend/b=2;settings={\"ttl\":5};");
    int calls = 0;
    ck_assert_int_eq(store_kv_foreach(s, "config", stop_first, &calls), 0);
    ck_assert_int_eq(calls, 1);

    /* delete */
    ck_assert_int_eq(store_kv_put_sync(s, "config", "backend/a", NULL, 0), 0);
    ck_assert_int_eq(store_kv_put_sync(s, "config", "backend/a", NULL, 0), STORE_ENOTFOUND);
    ck_assert_int_eq(store_kv_get(s, "config", "backend/a", &val, &len), STORE_ENOTFOUND);

    /* only config, tokens and stats */
    ck_assert_int_lt(store_kv_put_sync(s, "objects", "x", "y", 1), 0);
    ck_assert_int_lt(store_kv_put_sync(s, "meta", "generation", "y", 1), 0);
    ck_assert_int_lt(store_kv_get(s, "meta", "schema_version", &val, &len), 0);
    ck_assert_int_lt(store_kv_foreach(s, "skeys", collect_kv, buf), 0);
    ck_assert_int_lt(store_kv_put_sync(s, "config", "", "y", 1), 0);
    ck_assert_uint_eq(store_generation(s), 1);

    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_ge(st.syncs, 5);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_reopen)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *old = make_obj("example.com/before", "k", "", 100, 'b', 1);
    store_put(s, old);
    ck_assert_int_eq(store_flush(s), 0);
    store_purge_all(s, NULL, NULL);
    cache_obj_t *o = make_obj("example.com/keep", "k", "x=1", 2000, 'k', 2);
    store_put(s, o);
    ck_assert_int_eq(store_kv_put_sync(s, "tokens", "t1", "purge_all", 9), 0);
    store_close(&s);

    s = open_store(dir, 64 << 20, NULL);
    ck_assert_uint_eq(store_generation(s), 2);
    cache_obj_t *got = NULL;
    ck_assert_int_eq(get_obj(s, o, &got), 0);
    ck_assert_mem_eq(got->body, o->body, 2000);
    obj_unref(&got);
    ck_assert(!present(s, old));
    char *val = NULL;
    size_t len;
    ck_assert_int_eq(store_kv_get(s, "tokens", "t1", &val, &len), 0);
    ck_assert_str_eq(val, "purge_all");
    free(val);
    /* indexes survive too */
    purge_record_t pr = {0};
    store_purge_key_url(s, "example.com/keep", 16, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(pr.last.objects, 1);
    store_close(&s);

    /* reopening with a different map size works */
    s = open_store(dir, 32 << 20, NULL);
    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.map_size, 32 << 20);
    ck_assert_uint_eq(st.generation, 2);
    store_close(&s);

    obj_unref(&old);
    obj_unref(&o);
    tmpdir_free(dir);
}
END_TEST

/* Reopening with a map smaller than the data already there keeps a map big enough for it. */
START_TEST(test_reopen_smaller_map)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 8 << 20, NULL);
    cache_obj_t *last = NULL;
    for (int i = 0; i < 1000; i++) {
        char key[64];
        snprintf(key, sizeof(key), "example.com/m/%d", i);
        cache_obj_t *o = make_obj(key, "", "", 4096, 'm', 1);
        store_put(s, o);
        if (i == 999)
            last = obj_ref(o);
        obj_unref(&o);
    }
    ck_assert_int_eq(store_flush(s), 0);
    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_gt(st.bytes_used, 2 << 20);
    store_close(&s);

    s = open_store(dir, 1 << 20, NULL);
    store_get_stats(s, &st);
    ck_assert_uint_gt(st.map_size, 1 << 20); /* LMDB keeps what the file needs */
    ck_assert(present(s, last));
    ck_assert_int_eq(store_flush(s), 0);
    store_get_stats(s, &st);
    ck_assert_uint_le(st.bytes_used, st.map_size * 0.86); /* the writer evicted at start */
    ck_assert(present(s, last));
    store_close(&s);
    obj_unref(&last);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_read_only)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *o = make_obj("example.com/ro", "", "", 10, 'r', 1);
    store_put(s, o);
    store_close(&s);

    store_options_t opt = {.dir = dir, .read_only = 1};
    char err[256];
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), 0);
    ck_assert(present(s, o));
    /* writes other than kv are not taken; kv writes go straight to LMDB */
    cache_obj_t *p = make_obj("example.com/ro2", "", "", 10, 'r', 1);
    store_put(s, p);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(!present(s, p));
    purge_record_t pr = {0};
    store_purge_all(s, on_purge, &pr);
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_int_ne(pr.last.err, 0);
    ck_assert_int_eq(store_kv_put_sync(s, "tokens", "cli", "global", 6), 0);
    ck_assert_int_eq(store_kv_put_sync(s, "tokens", "nope", NULL, 0), STORE_ENOTFOUND);

    /* a read-write open (another process, in real life) sees it */
    store_t *rw = open_store(dir, 64 << 20, NULL);
    char *val = NULL;
    size_t len;
    ck_assert_int_eq(store_kv_get(rw, "tokens", "cli", &val, &len), 0);
    ck_assert_str_eq(val, "global");
    free(val);
    store_close(&rw);
    store_close(&s);

    /* a read-only open of a directory that never held a store is refused */
    char *empty = tmpdir_new();
    opt.dir = empty;
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), STORE_ESCHEMA);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "schema version 0"));

    obj_unref(&o);
    obj_unref(&p);
    tmpdir_free(empty);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_corrupt_record)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *o = make_obj("example.com/c", "", "", 100, 'c', 1);
    cache_obj_t *ok = make_obj("example.com/ok", "", "", 100, 'o', 1);
    store_put(s, o);
    store_put(s, ok);
    store_close(&s);

    /* flip a body byte on disk behind the store's back */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    ck_assert_int_eq(mdb_env_open(env, dir, 0, 0644), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "objects", 0, &dbi), 0);
    MDB_val k = {CACHE_HASH_LEN, o->hash}, v;
    ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 1] ^= 0x55;
    MDB_val nv = {v.mv_size, copy};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &nv, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);

    s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *got = NULL;
    ck_assert_int_eq(get_obj(s, o, &got), STORE_ECORRUPT);
    ck_assert_ptr_null(got);
    ck_assert(present(s, ok));
    ck_assert_int_eq(store_flush(s), 0); /* the queued deletion is done */
    ck_assert_int_eq(get_obj(s, o, &got), STORE_ENOTFOUND);
    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_ge(st.corrupt_records, 1);
    ck_assert_uint_eq(st.objects, 1);

    /* the same hash can be stored again */
    store_put(s, o);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, o));

    obj_unref(&o);
    obj_unref(&ok);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

/* readers on several threads while the writer writes; each reader thread exits before the close */
typedef struct reader_arg {
    store_t *store;
    cache_obj_t **objs;
    int n;
    int hits;
} reader_arg_t;

static void *reader_main(void *p)
{
    reader_arg_t *a = p;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < a->n; i++) {
            cache_obj_t *got = NULL;
            int rc = get_obj(a->store, a->objs[i], &got);
            if (rc == 0) {
                a->hits++;
                if (got->body_len != a->objs[i]->body_len || memcmp(got->body, a->objs[i]->body, got->body_len) != 0)
                    a->hits = -1000000;
            }
            obj_unref(&got);
        }
    }
    return NULL;
}

START_TEST(test_concurrent_readers)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    enum { N = 200, T = 4 };
    cache_obj_t *objs[N];
    for (int i = 0; i < N; i++) {
        char key[64];
        snprintf(key, sizeof(key), "example.com/c/%d", i);
        objs[i] = make_obj(key, "x", "", 100 + (size_t)i, (char)i, 1);
    }
    for (int i = 0; i < N / 2; i++)
        store_put(s, objs[i]);
    ck_assert_int_eq(store_flush(s), 0);

    pthread_t th[T];
    reader_arg_t args[T];
    for (int t = 0; t < T; t++) {
        args[t] = (reader_arg_t){.store = s, .objs = objs, .n = N};
        pthread_create(&th[t], NULL, reader_main, &args[t]);
    }
    for (int i = N / 2; i < N; i++)
        store_put(s, objs[i]);
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_ge(args[t].hits, 20 * N / 2);
    }
    ck_assert_int_eq(store_flush(s), 0);
    /* the main thread reads too; its transaction is aborted by store_close */
    for (int i = 0; i < N; i++)
        ck_assert(present(s, objs[i]));
    store_close(&s);

    /* a second store in the same thread gets a fresh slot */
    s = open_store(dir, 64 << 20, NULL);
    ck_assert(present(s, objs[0]));
    store_close(&s);

    for (int i = 0; i < N; i++)
        obj_unref(&objs[i]);
    tmpdir_free(dir);
}
END_TEST

/*
 * A hard purge is answered once its journal record is durable, before the transaction
 * that deletes its objects commits. From the answer on, no read may return them: not
 * in the callback itself (which runs before that commit), and not on another thread
 * that checks each object right after its purge was answered, while the writer keeps
 * committing and emptying the set of answered purges.
 */
typedef struct answered {
    store_t *store;
    cache_obj_t *obj;
    _Atomic int done;
    int seen_in_cb; /* store_get found the object inside the callback */
    uint64_t objects;
} answered_t;

static void on_answered(void *arg, const store_purge_result_t *res)
{
    answered_t *a = arg;
    a->seen_in_cb = present(a->store, a->obj);
    a->objects = res->objects;
    atomic_store_explicit(&a->done, 1, memory_order_release);
}

typedef struct checker_arg {
    answered_t *ans;
    int n;
    _Atomic int *stop;
    int served_after_answer, checked;
} checker_arg_t;

static void *checker_main(void *arg)
{
    checker_arg_t *c = arg;
    while (!atomic_load(c->stop)) {
        for (int i = 0; i < c->n; i++) {
            if (!atomic_load_explicit(&c->ans[i].done, memory_order_acquire))
                continue;
            cache_obj_t *got = NULL;
            if (get_obj(c->ans[i].store, c->ans[i].obj, &got) == 0)
                c->served_after_answer++;
            obj_unref(&got);
            c->checked++;
        }
    }
    return NULL;
}

START_TEST(test_answered_purge_is_never_served)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    enum { N = 3000, T = 2 };
    static answered_t ans[N];
    for (int i = 0; i < N; i++) {
        char key[64], skey[32];
        snprintf(key, sizeof(key), "example.com/answered/%d", i);
        snprintf(skey, sizeof(skey), "k%d", i);
        ans[i] = (answered_t){.store = s, .obj = make_obj(key, skey, "", 200, 'a', 1)};
        store_put(s, ans[i].obj);
    }
    ck_assert_int_eq(store_flush(s), 0);

    _Atomic int stop = 0;
    pthread_t th[T];
    checker_arg_t args[T];
    for (int t = 0; t < T; t++) {
        args[t] = (checker_arg_t){.ans = ans, .n = N, .stop = &stop};
        pthread_create(&th[t], NULL, checker_main, &args[t]);
    }
    for (int i = 0; i < N; i++) {
        char skey[32];
        int len = snprintf(skey, sizeof(skey), "k%d", i);
        if (i % 2 == 0)
            store_purge_surrogate_key(s, skey, (size_t)len, 0, on_answered, &ans[i]);
        else
            store_purge_key_url(s, ans[i].obj->key, ans[i].obj->key_len, 0, on_answered, &ans[i]);
        if (i % 100 == 99)
            sleep_ms(1); /* let batches form and commit in between */
    }
    ck_assert_int_eq(store_flush(s), 0);
    atomic_store(&stop, 1);
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_eq(args[t].served_after_answer, 0);
        ck_assert_int_gt(args[t].checked, 0);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_msg(!ans[i].seen_in_cb, "object %d read back inside its purge's callback", i);
        ck_assert_uint_eq(ans[i].objects, 1);
        ck_assert(!present(s, ans[i].obj));
    }
    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.objects, 0);
    ck_assert_uint_eq(st.deletes, N);
    store_close(&s);
    for (int i = 0; i < N; i++)
        obj_unref(&ans[i].obj);
    tmpdir_free(dir);
}
END_TEST

/*
 * The journal thread is woken only when its queue was empty, by the thread that filled it,
 * after it let go of the lock (store_queue_locked). Several threads, each submitting one
 * purge and waiting for its answer before the next (as admin clients do), make the queue go
 * empty and non-empty thousands of times from both sides: a lost wake-up would leave one of
 * them waiting, and this fails (within 10 s) instead of hanging.
 */
typedef struct {
    store_t *s;
    int id, n, answered_all;
    _Atomic int answered;
} waker_t;

static void on_waker_answer(void *arg, const store_purge_result_t *res)
{
    waker_t *w = arg;
    if (res->err == 0)
        atomic_fetch_add(&w->answered, 1);
}

static void *waker_main(void *arg)
{
    waker_t *w = arg;
    for (int i = 0; i < w->n; i++) {
        char skey[48];
        int len = snprintf(skey, sizeof(skey), "waker-%d-%d", w->id, i);
        store_purge_surrogate_key(w->s, skey, (size_t)len, 0, on_waker_answer, w);
        if (!wait_atomic_at_least(&w->answered, i + 1))
            return NULL; /* answered_all stays 0 */
    }
    w->answered_all = 1;
    return NULL;
}

START_TEST(test_one_at_a_time_purges_from_many_threads_are_all_answered)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 16 << 20, NULL);
    enum { T = 4, N = 500 };
    static waker_t w[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        w[t] = (waker_t){.s = s, .id = t, .n = N};
        ck_assert_int_eq(pthread_create(&th[t], NULL, waker_main, &w[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(w[t].answered_all, "thread %d: purge %d of %d never answered", t, atomic_load(&w[t].answered), N);
    }
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

/*
 * The transaction after an answered purge fails (here: the file size limit stops the
 * main store's page writes; the journal record was written before it). The object stays
 * hidden, every later transaction fails with it rather than pass it by, and once writes
 * work again the next one applies it. Closed while it still fails, the next open
 * applies it from the journal.
 */
static void on_answered_limit_writes(void *arg, const store_purge_result_t *res)
{
    answered_t *a = arg;
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = 8192; /* below every LMDB page but the two meta pages */
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    on_answered(arg, res);
    (void)a;
}

static void unlimit_writes(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = rl.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

START_TEST(test_answered_purge_outlives_a_failed_commit)
{
    signal(SIGXFSZ, SIG_IGN); /* writes past the limit fail with EFBIG instead */
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *a = make_obj("example.com/fails/a", "ka", "", 3000, 'a', 1);
    cache_obj_t *b = make_obj("example.com/fails/b", "kb", "", 3000, 'b', 1);
    cache_obj_t *c = make_obj("example.com/fails/c", "kc", "", 3000, 'c', 1);
    store_put(s, a);
    store_put(s, b);
    store_put(s, c);
    ck_assert_int_eq(store_flush(s), 0);

    /* round 1: the commit fails, then writes work again */
    answered_t ans = {.store = s, .obj = a};
    store_purge_surrogate_key(s, "ka", 2, 0, on_answered_limit_writes, &ans);
    ck_assert_int_eq(store_flush(s), STORE_EIO); /* the purge's transaction, retried with the flush, fails */
    ck_assert(atomic_load(&ans.done));
    ck_assert(!ans.seen_in_cb);
    ck_assert(!present(s, a));
    ck_assert(present(s, b));
    ck_assert_int_eq(store_flush(s), STORE_EIO);
    ck_assert(!present(s, a));
    /* meanwhile another purge is answered after its own transaction: with its error */
    purge_record_t pr = {0};
    store_purge_surrogate_key(s, "kb", 2, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), STORE_EIO);
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_int_eq(pr.last.err, STORE_EIO);
    ck_assert(present(s, b));
    unlimit_writes();
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(!present(s, a));
    store_close(&s);
    s = open_store(dir, 64 << 20, NULL);
    ck_assert(!present(s, a));
    ck_assert(present(s, b));

    /* round 2: closed while it still fails; the journal has it */
    answered_t ans2 = {.store = s, .obj = b};
    store_purge_key_url(s, b->key, b->key_len, 0, on_answered_limit_writes, &ans2);
    ck_assert_int_eq(store_flush(s), STORE_EIO);
    ck_assert(!present(s, b));
    store_close(&s);
    unlimit_writes();
    s = open_store(dir, 64 << 20, NULL);
    ck_assert(!present(s, b));
    ck_assert(present(s, c));
    store_close(&s);

    signal(SIGXFSZ, SIG_DFL);
    obj_unref(&a);
    obj_unref(&b);
    obj_unref(&c);
    tmpdir_free(dir);
}
END_TEST

/* a fetch that began before a purge naming its URL or one of its keys must not be stored; others must */
START_TEST(test_purge_log_put_since)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(16 << 20, 4);
    store_t *s = open_store(dir, 64 << 20, mem);
    purge_record_t pr = {.store = s};

    uint64_t e0 = store_purge_epoch(s); /* "fetches" begin here */
    ck_assert_int_eq(store_purged_since(s, e0, "example.com/a", 13, "ka", 2), 0);

    /* queued before the puts, not yet committed: the writer applies it first */
    store_purge_key_url(s, "example.com/a", 13, 0, on_purge, &pr);
    store_purge_surrogate_key(s, "kb", 2, 0, on_purge, &pr);
    cache_obj_t *a = make_obj("example.com/a", "x", "", 10, 'a', 1);    /* its URL was purged */
    cache_obj_t *b = make_obj("example.com/b", "y kb", "", 10, 'b', 1); /* one of its keys was purged */
    cache_obj_t *c = make_obj("example.com/c", "kc", "", 10, 'c', 1);   /* unrelated: must be stored */
    mem_insert(mem, a);
    mem_insert(mem, b);
    store_put_since(s, a, e0);
    store_put_since(s, b, e0);
    store_put_since(s, c, e0);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 2);
    ck_assert(!present(s, a));
    ck_assert(!present(s, b));
    ck_assert(present(s, c));
    /* the dropped puts took their memory copies with them */
    cache_obj_t *m = mem_lookup(mem, a->hash);
    ck_assert_ptr_null(m);
    m = mem_lookup(mem, b->hash);
    ck_assert_ptr_null(m);

    /* what fetches ask once the purges committed */
    ck_assert_int_eq(store_purged_since(s, e0, "example.com/a", 13, NULL, 0), 1);
    ck_assert_int_eq(store_purged_since(s, e0, "example.com/z", 13, "q kb r", 6), 1);
    ck_assert_int_eq(store_purged_since(s, e0, "example.com/z", 13, "kbb k", 5), 0);
    ck_assert_int_eq(store_purged_since(s, e0, "example.com/c", 13, "kc", 2), 0);
    /* a fetch that began after the purges is not concerned */
    uint64_t e1 = store_purge_epoch(s);
    ck_assert_int_eq(store_purged_since(s, e1, "example.com/a", 13, "kb", 2), 0);
    store_put_since(s, a, e1);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, a));

    obj_unref(&a);
    obj_unref(&b);
    obj_unref(&c);
    store_close(&s);
    mem_destroy(&mem);
    tmpdir_free(dir);
}
END_TEST

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

static void *flush_thread(void *arg)
{
    return (void *)(intptr_t)store_flush(arg);
}

START_TEST(test_hold_batches_a_threads_ops)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(16 << 20, 4);
    store_t *s = open_store(dir, 64 << 20, mem);
    cache_obj_t *o1 = make_obj("example.com/h1", "h1", "", 100, '1', 1);
    cache_obj_t *o2 = make_obj("example.com/h2", "h2", "", 100, '2', 1);
    cache_obj_t *o3 = make_obj("example.com/h3", "h3", "", 100, '3', 1);
    purge_record_t pr1 = {0}, pr2 = {0}, pr3 = {0}, pr4 = {0};
    store_put(s, o1);
    store_put(s, o2);
    store_put(s, o3);
    ck_assert_int_eq(store_flush(s), 0);

    /* held purges wait for store_hold_end: a flush by another thread does not see them */
    store_hold_begin(s);
    store_purge_surrogate_key(s, "h1", 2, 0, on_purge, &pr1);
    store_purge_surrogate_key(s, "h2", 2, 0, on_purge, &pr2);
    pthread_t t;
    void *rc;
    ck_assert_int_eq(pthread_create(&t, NULL, flush_thread, s), 0);
    ck_assert_int_eq(pthread_join(t, &rc), 0);
    ck_assert_int_eq((int)(intptr_t)rc, 0);
    ck_assert_int_eq(pr1.calls + pr2.calls, 0);
    ck_assert(present(s, o1) && present(s, o2));
    store_hold_end(s);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr1.calls, 1);
    ck_assert_int_eq(pr2.calls, 1);
    ck_assert_int_eq(pr1.last.err, 0);
    ck_assert_uint_eq(pr1.last.objects + pr2.last.objects, 2);
    ck_assert(!present(s, o1) && !present(s, o2));

    /* a waited call on the holding thread releases what it holds first: order is kept */
    store_hold_begin(s);
    store_purge_surrogate_key(s, "h3", 2, 0, on_purge, &pr3);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr3.calls, 1);
    ck_assert_uint_eq(pr3.last.objects, 1);
    ck_assert(!present(s, o3));
    store_hold_end(s); /* nothing left to release */
    ck_assert_int_eq(pr3.calls, 1);
    store_close(&s);

    /* a store that takes no writes refuses held ops at store_hold_end, on this thread */
    store_options_t opt = {.dir = dir, .read_only = 1};
    char err[256];
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), 0);
    store_hold_begin(s);
    store_purge_surrogate_key(s, "h1", 2, 0, on_purge, &pr4);
    ck_assert_int_eq(pr4.calls, 0);
    store_hold_end(s);
    ck_assert_int_eq(pr4.calls, 1);
    ck_assert_int_eq(pr4.last.err, STORE_EIO);
    store_close(&s);

    obj_unref(&o1);
    obj_unref(&o2);
    obj_unref(&o3);
    mem_destroy(&mem);
    tmpdir_free(dir);
}
END_TEST

/* what a purge's callback saw of one object, and whether anything had committed since `commits` */
typedef struct queued_seen {
    store_t *s;
    mem_tier_t *mem;
    cache_obj_t *obj, *also; /* also: optional, checked in memory only */
    uint64_t commits;
    int calls, in_mem, on_disk, committed_before_answer, also_in_mem;
    store_purge_result_t res;
} queued_seen_t;

static void on_queued_purge(void *arg, const store_purge_result_t *res)
{
    queued_seen_t *q = arg;
    cache_obj_t *m = mem_lookup(q->mem, q->obj->hash);
    store_stats_t st;
    q->in_mem = m != NULL;
    obj_unref(&m);
    if (q->also != NULL) {
        m = mem_lookup(q->mem, q->also->hash);
        q->also_in_mem = m != NULL;
        obj_unref(&m);
    }
    q->on_disk = present(q->s, q->obj);
    store_get_stats(q->s, &st);
    q->committed_before_answer = st.commits != q->commits;
    q->res = *res;
    q->calls++;
}

/*
 * A purge answered before its transaction commits also hides the puts queued ahead of
 * it: they are in the memory tier already, and not yet in the snapshot the answer
 * looks at. So it does a put queued behind it whose fetch began before it (a fetch that
 * finished while the purge waited for its journal write). A plain put queued behind it
 * is new content and stays.
 */
START_TEST(test_answer_covers_queued_puts)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(16 << 20, 4);
    store_t *s = open_store(dir, 64 << 20, mem);
    cache_obj_t *old = make_obj("example.com/q/old", "qa", "", 100, 'o', 1);
    cache_obj_t *a = make_obj("example.com/q/a", "qz qa", "", 100, 'a', 1);
    cache_obj_t *u = make_obj("example.com/q/u", "qu", "", 100, 'u', 1);
    cache_obj_t *later = make_obj("example.com/q/later", "qa", "", 100, 'l', 1);
    cache_obj_t *racing = make_obj("example.com/q/racing", "qx qa", "", 100, 'r', 1);
    store_put(s, old);
    ck_assert_int_eq(store_flush(s), 0);
    store_stats_t st;
    store_get_stats(s, &st);
    uint64_t fetch_began = store_purge_epoch(s);
    queued_seen_t qa = {.s = s, .mem = mem, .obj = a, .also = racing, .commits = st.commits};
    queued_seen_t qu = {.s = s, .mem = mem, .obj = u, .commits = st.commits};

    store_hold_begin(s); /* one batch: the puts are queued, not committed, when the purges are answered */
    ck_assert_int_eq(mem_insert(mem, a), 0);
    store_put(s, a);
    ck_assert_int_eq(mem_insert(mem, u), 0);
    store_put(s, u);
    store_purge_surrogate_key(s, "qa", 2, 0, on_queued_purge, &qa);
    store_purge_key_url(s, u->key, u->key_len, 0, on_queued_purge, &qu);
    ck_assert_int_eq(mem_insert(mem, later), 0);
    store_put(s, later);
    ck_assert_int_eq(mem_insert(mem, racing), 0);
    store_put_since(s, racing, fetch_began);
    store_hold_end(s);
    ck_assert_int_eq(store_flush(s), 0);

    ck_assert_int_eq(qa.calls, 1);
    ck_assert_int_eq(qu.calls, 1);
    ck_assert_msg(!qa.committed_before_answer && !qu.committed_before_answer, "not answered before the commit");
    ck_assert_int_eq(qa.res.err, 0);
    ck_assert_msg(!qa.in_mem && !qa.on_disk, "queued put served after its key purge was answered (mem %d, disk %d)", qa.in_mem,
                  qa.on_disk);
    ck_assert_msg(!qu.in_mem && !qu.on_disk, "queued put served after its URL purge was answered (mem %d, disk %d)", qu.in_mem,
                  qu.on_disk);
    ck_assert_msg(!qa.also_in_mem, "a fetch that began before the purge is in memory after its answer");
    ck_assert_uint_eq(qa.res.objects, 3); /* old, from the snapshot; the queued a and racing */
    ck_assert_uint_eq(qu.res.objects, 1);
    ck_assert(!present(s, old) && !present(s, a) && !present(s, u) && !present(s, racing));
    ck_assert(present(s, later));
    cache_obj_t *m = mem_lookup(mem, later->hash);
    ck_assert_ptr_nonnull(m);
    obj_unref(&m);

    store_close(&s);
    s = open_store(dir, 64 << 20, mem);
    ck_assert(!present(s, old) && !present(s, a) && !present(s, u));
    ck_assert(present(s, later));
    store_close(&s);
    obj_unref(&old);
    obj_unref(&a);
    obj_unref(&u);
    obj_unref(&later);
    obj_unref(&racing);
    mem_destroy(&mem);
    tmpdir_free(dir);
}
END_TEST

/*
 * The same for purges answered after their commit (soft ones; hard ones behind more
 * queued puts than an early answer looks through): a put queued behind the purge from
 * a fetch that began before it is out of memory when the callback runs. And a purge
 * of a key too long to have been indexed purges nothing, and says so.
 */
START_TEST(test_writer_answers_cover_queued_puts)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(64 << 20, 4);
    store_t *s = open_store(dir, 128 << 20, mem);
    cache_obj_t *soft = make_obj("example.com/w/soft", "ws", "", 100, 's', 1);
    cache_obj_t *hard = make_obj("example.com/w/hard", "wh", "", 100, 'h', 1);
    enum { FILL = 1100 };
    static cache_obj_t *fill[FILL];

    /* soft: answered after its commit */
    uint64_t since = store_purge_epoch(s);
    queued_seen_t qs = {.s = s, .mem = mem, .obj = soft};
    store_hold_begin(s);
    store_purge_surrogate_key(s, "ws", 2, 1, on_queued_purge, &qs);
    ck_assert_int_eq(mem_insert(mem, soft), 0);
    store_put_since(s, soft, since);
    store_hold_end(s);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(qs.calls, 1);
    ck_assert_msg(!qs.in_mem, "a put behind a soft purge is in memory when it is answered");
    ck_assert(!present(s, soft));

    /* hard, behind more queued puts than an early answer looks through */
    since = store_purge_epoch(s);
    queued_seen_t qh = {.s = s, .mem = mem, .obj = hard};
    store_hold_begin(s);
    for (int i = 0; i < FILL; i++) {
        char key[64];
        snprintf(key, sizeof(key), "example.com/w/fill/%d", i);
        fill[i] = make_obj(key, "", "", 16, 'f', 1);
        store_put(s, fill[i]);
    }
    store_purge_surrogate_key(s, "wh", 2, 0, on_queued_purge, &qh);
    ck_assert_int_eq(mem_insert(mem, hard), 0);
    store_put_since(s, hard, since);
    store_hold_end(s);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(qh.calls, 1);
    ck_assert_msg(qh.committed_before_answer || qh.res.objects == 0, "expected an answer after the commit");
    ck_assert_msg(!qh.in_mem, "a put behind a hard purge is in memory when it is answered");
    ck_assert(!present(s, hard));

    /* a key longer than an LMDB key (issue 19 item 5: it used to be neither indexed nor
     * purged): indexed by its hash, and its purge takes the put queued ahead of it */
    char longkey[600];
    memset(longkey, 'l', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    cache_obj_t *tagged = make_obj("example.com/w/long", longkey, "", 16, 'l', 1);
    purge_record_t pr = {0};
    store_hold_begin(s);
    store_put(s, tagged);
    store_purge_surrogate_key(s, longkey, strlen(longkey), 0, on_purge, &pr);
    store_hold_end(s);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert_uint_eq(pr.last.objects, 1);
    ck_assert(!present(s, tagged));
    obj_unref(&tagged);

    store_close(&s);
    obj_unref(&soft);
    obj_unref(&hard);
    for (int i = 0; i < FILL; i++)
        obj_unref(&fill[i]);
    mem_destroy(&mem);
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

/*
 * The store under the server's protocol, with real threads: fetchers publish objects as
 * proxy.c's publish_object does (check the purge log since the fetch began, insert into
 * memory, queue the put, check again), a promoter copies disk hits into memory as
 * lookup_hash does, and a purger purges keys. Every step takes a ticket from one
 * counter. Once a purge is answered, no object whose fetch began before the purge was
 * submitted may be read from the memory tier or the store, ever again.
 */
enum { RACE_FETCHES = 3000, RACE_KEYS = 150 };

typedef struct race {
    store_t *s;
    mem_tier_t *mem;
    _Atomic uint64_t ticket;
    _Atomic int stop;
    cache_obj_t *obj[RACE_FETCHES];
    _Atomic uint64_t began[RACE_FETCHES];  /* the fetch's ticket; 0: not begun */
    _Atomic uint64_t submitted[RACE_KEYS]; /* the purge's ticket; 0: not submitted */
    _Atomic int answered[RACE_KEYS];
    _Atomic int violations, checks;
    char where[160];
} race_t;

typedef struct race_purge {
    race_t *r;
    int key;
} race_purge_t;

static void race_on_purge(void *arg, const store_purge_result_t *res)
{
    race_purge_t *p = arg;
    ck_assert_int_eq(res->err, 0);
    atomic_store(&p->r->answered[p->key], 1);
}

static void *race_fetcher(void *arg)
{
    race_t *r = arg;
    for (int i = 0; i < RACE_FETCHES; i++) {
        uint64_t since = store_purge_epoch(r->s);
        atomic_store(&r->began[i], atomic_fetch_add(&r->ticket, 1) + 1);
        cache_obj_t *o = r->obj[i];
        if (i % 7 == 0)
            sched_yield(); /* a slower origin now and then */
        if (store_purged_since(r->s, since, o->key, o->key_len, o->skeys, o->skeys_len))
            continue;
        mem_insert(r->mem, o);
        store_put_since(r->s, o, since);
        if (store_purged_since(r->s, since, o->key, o->key_len, o->skeys, o->skeys_len))
            mem_remove_if_same(r->mem, o->hash, o);
    }
    return NULL;
}

static void *race_promoter(void *arg)
{
    race_t *r = arg;
    for (unsigned n = 0; !atomic_load(&r->stop); n++) {
        cache_obj_t *o = r->obj[(n * 7919u) % RACE_FETCHES], *got = mem_lookup(r->mem, o->hash);
        if (got == NULL) {
            uint64_t epoch = store_purge_epoch(r->s);
            if (store_get(r->s, o->hash, o->key, o->key_len, &got) == 0) {
                mem_insert(r->mem, got);
                if (store_purge_epoch(r->s) != epoch)
                    mem_remove_if_same(r->mem, o->hash, got);
            }
        }
        obj_unref(&got);
    }
    return NULL;
}

static void *race_purger(void *arg)
{
    race_t *r = arg;
    static race_purge_t ps[RACE_KEYS];
    for (int k = 0; k < RACE_KEYS; k++) {
        char skey[32];
        int len = snprintf(skey, sizeof(skey), "rk%d", k);
        ps[k] = (race_purge_t){.r = r, .key = k};
        while (atomic_load(&r->began[(k + 1) * (RACE_FETCHES / RACE_KEYS) - 1]) == 0) /* its fetches under way */
            sched_yield();
        atomic_store(&r->submitted[k], atomic_fetch_add(&r->ticket, 1) + 1);
        store_purge_surrogate_key(r->s, skey, (size_t)len, 0, race_on_purge, &ps[k]);
    }
    return NULL;
}

static void race_check(race_t *r)
{
    for (int i = 0; i < RACE_FETCHES; i++) {
        int k = i % RACE_KEYS;
        uint64_t began = atomic_load(&r->began[i]);
        if (!atomic_load(&r->answered[k]) || began == 0 || began > atomic_load(&r->submitted[k]))
            continue;
        cache_obj_t *o = r->obj[i], *got = mem_lookup(r->mem, o->hash);
        int in_mem = got != NULL;
        obj_unref(&got);
        int on_disk = store_get(r->s, o->hash, o->key, o->key_len, &got) == 0;
        obj_unref(&got);
        atomic_fetch_add(&r->checks, 1);
        if ((in_mem || on_disk) && atomic_fetch_add(&r->violations, 1) == 0)
            snprintf(r->where, sizeof(r->where), "fetch %d (key rk%d) served after its purge (memory %d, disk %d)", i, k,
                     in_mem, on_disk);
    }
}

static void *race_checker(void *arg)
{
    race_t *r = arg;
    while (!atomic_load(&r->stop))
        race_check(r);
    return NULL;
}

START_TEST(test_purge_races_fetches_and_promotions)
{
    char *dir = tmpdir_new();
    static race_t r;
    memset(&r, 0, sizeof(r));
    r.mem = mem_create(64 << 20, 4);
    r.s = open_store(dir, 128 << 20, r.mem);
    for (int i = 0; i < RACE_FETCHES; i++) {
        char key[64], skeys[64];
        snprintf(key, sizeof(key), "example.com/race/%d", i);
        snprintf(skeys, sizeof(skeys), "all rk%d", i % RACE_KEYS);
        r.obj[i] = make_obj(key, skeys, "", 64, 'r', 1);
    }
    pthread_t fetcher, promoter, purger, checker;
    pthread_create(&fetcher, NULL, race_fetcher, &r);
    pthread_create(&promoter, NULL, race_promoter, &r);
    pthread_create(&checker, NULL, race_checker, &r);
    pthread_create(&purger, NULL, race_purger, &r);
    pthread_join(fetcher, NULL);
    pthread_join(purger, NULL);
    ck_assert_int_eq(store_flush(r.s), 0);
    sleep_ms(100); /* the promoter and checker go on over the settled store */
    atomic_store(&r.stop, 1);
    pthread_join(promoter, NULL);
    pthread_join(checker, NULL);
    race_check(&r);
    for (int k = 0; k < RACE_KEYS; k++)
        ck_assert(atomic_load(&r.answered[k]));
    ck_assert_msg(atomic_load(&r.violations) == 0, "%d violation(s); first: %s", atomic_load(&r.violations), r.where);
    ck_assert_int_gt(atomic_load(&r.checks), RACE_FETCHES);

    store_close(&r.s);
    r.s = open_store(dir, 128 << 20, NULL);
    mem_clear(r.mem);
    race_check(&r); /* and after a reopen */
    ck_assert_msg(atomic_load(&r.violations) == 0, "after reopen: %s", r.where);
    store_close(&r.s);
    for (int i = 0; i < RACE_FETCHES; i++)
        obj_unref(&r.obj[i]);
    mem_destroy(&r.mem);
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

/* obj's record re-encoded in version 1 (u32 lengths, names spelled out) and decoded:
 * an object as a binary from before version 2 stored it */
static cache_obj_t *as_version_1(const cache_obj_t *obj)
{
    size_t n;
    uint8_t *rec = unit_obj_encode_v1(obj, &n);
    int err;
    cache_obj_t *v1 = obj_decode(obj->hash, rec, n, &err);
    ck_assert_ptr_nonnull(v1);
    free(rec);
    return v1;
}

START_TEST(test_reads_records_of_version_1)
{
    /* a store written by a binary from before record version 2, reopened by this one */
    char *dir = tmpdir_new();
    store_t *s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *o = make_obj("example.com/old", "k1 k2", "", 3000, 'v', store_generation(s));
    cache_obj_t *v1 = as_version_1(o);
    ck_assert_uint_eq(v1->rec[OBJ_REC_OFF_VERSION], 1);
    ck_assert_uint_gt(v1->rec_len, o->rec_len);
    store_put(s, v1);
    ck_assert_int_eq(store_flush(s), 0);
    store_close(&s);

    s = open_store(dir, 64 << 20, NULL);
    cache_obj_t *got = NULL;
    ck_assert_int_eq(get_obj(s, o, &got), 0);
    ck_assert_uint_eq(got->rec[OBJ_REC_OFF_VERSION], 1);
    ck_assert_uint_eq(got->num_headers, 1);
    ck_assert_mem_eq(got->headers[0].name, "content-type", 12);
    ck_assert_mem_eq(got->headers[0].value, "text/plain", 10);
    ck_assert_uint_eq(got->body_len, 3000);
    ck_assert_mem_eq(got->body, o->body, 3000);
    obj_unref(&got);
    /* its surrogate keys were indexed from the version 1 record: a key purge finds it */
    ck_assert_uint_eq(purge_key_now(s, "k2"), 1);
    ck_assert(!present(s, o));
    obj_unref(&v1);
    obj_unref(&o);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_put_get_delete);
    tcase_add_test(tc, test_replace_updates_indexes);
    tcase_add_test(tc, test_full_key_mismatch);
    tcase_add_test(tc, test_surrogate_key_purge);
    tcase_add_test(tc, test_long_surrogate_keys_purge);
    tcase_add_test(tc, test_surrogate_key_limits_from_the_origin);
    tcase_add_test(tc, test_journal_replays_long_key_purges);
    tcase_add_test(tc, test_url_purge_every_variant);
    tcase_add_test(tc, test_soft_purge);
    tcase_add_test(tc, test_purge_epoch);
    tcase_add_test(tc, test_purge_log_put_since);
    tcase_add_test(tc, test_generation_purge_all);
    tcase_add_test(tc, test_eviction_tiny_map);
    tcase_add_test(tc, test_map_full_recovers);
    tcase_add_test(tc, test_map_full_of_kv);
    tcase_add_test(tc, test_kv);
    tcase_add_test(tc, test_reopen);
    tcase_add_test(tc, test_reopen_smaller_map);
    tcase_add_test(tc, test_reads_records_of_version_1);
    tcase_add_test(tc, test_read_only);
    tcase_add_test(tc, test_corrupt_record);
    tcase_add_test(tc, test_concurrent_readers);
    tcase_add_test(tc, test_answered_purge_is_never_served);
    tcase_add_test(tc, test_answered_purge_outlives_a_failed_commit);
    tcase_add_test(tc, test_journal_replays_lost_purges);
    tcase_add_test(tc, test_bus_seq_replays_with_purges);
    tcase_add_test(tc, test_failed_journal_write_is_not_replayed);
    tcase_add_test(tc, test_journal_absent_and_full);
    tcase_add_test(tc, test_journal_write_time_is_counted);
    tcase_add_test(tc, test_journal_size_follows_the_map);
    tcase_add_test(tc, test_hold_batches_a_threads_ops);
    tcase_add_test(tc, test_answer_covers_queued_puts);
    tcase_add_test(tc, test_writer_answers_cover_queued_puts);
    tcase_add_test(tc, test_writer_answer_covers_the_batch_in_transit);
    tcase_add_test(tc, test_purge_races_fetches_and_promotions);
    tcase_add_test(tc, test_one_at_a_time_purges_from_many_threads_are_all_answered);
    tcase_add_test(tc, test_checkpoint_when_a_quarter_of_the_journal_waits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("store") != 0)
        return 1;
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

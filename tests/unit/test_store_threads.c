/*
 * tests/unit/test_store_threads.c — the store under many threads: concurrent readers while
 * the writer writes, one-at-a-time purges from many threads that must all be answered,
 * purges racing fetches and memory-tier promotions, and the bound on puts queued behind a
 * writer that cannot go on. Every test works in its own
 * directory under the suite's /tmp base.
 */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include "storage/store.h"
#include "tests/unit/unit_store.h"
#include "tests/unit/unit_tmp.h"

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

static store_stats_t stats_of(store_t *s)
{
    store_stats_t st;
    store_get_stats(s, &st);
    return st;
}

/* a put gives its bytes back when the writer frees it, which may come just after the flush that waited for it */
static int backlog_drains(store_t *s)
{
    for (int i = 0; i < 10000; i++) {
        if (stats_of(s).put_backlog_bytes == 0)
            return 1;
        sleep_ms(1);
    }
    return 0;
}

/* puts queued behind a writer that cannot go on hold at most put_backlog bytes; the rest are refused */
START_TEST(test_put_backlog_is_bounded)
{
    char *dir = tmpdir_new();
    store_options_t opt = {.dir = dir, .map_size = 64 << 20, .put_backlog = 1 << 20};
    char err[256];
    store_t *s = NULL;
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), 0);
    cache_obj_t *held = make_obj("example.com/backlog/held", "kheld", "", 100, 'h', store_generation(s));
    ck_assert_int_eq(store_put(s, held), 0);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, held));
    ck_assert(backlog_drains(s));

    gate_t g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    store_purge_surrogate_key(s, "kheld", 5, 0, on_purge_hold, &g);
    gate_wait_entered(&g);

    /* 300 KiB each: three fit in 1 MiB, the fourth does not */
    cache_obj_t *o[5];
    char key[64];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "example.com/backlog/%d", i);
        o[i] = make_obj(key, "", "", 300 << 10, (char)('a' + i), store_generation(s));
    }
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(store_put(s, o[i]), 0);
    uint64_t queued = stats_of(s).put_backlog_bytes;
    ck_assert_uint_eq(queued, o[0]->rec_len + o[1]->rec_len + o[2]->rec_len);
    ck_assert_int_eq(store_put_since(s, o[3], store_purge_epoch(s)), STORE_EBACKLOG);
    ck_assert_int_eq(store_put(s, o[4]), STORE_EBACKLOG);
    store_stats_t st = stats_of(s);
    ck_assert_uint_eq(st.puts_refused_backlog, 2);
    ck_assert_uint_eq(st.put_backlog_bytes, queued); /* a refused put charges nothing */

    gate_open(&g);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(!present(s, held));
    for (int i = 0; i < 3; i++)
        ck_assert(present(s, o[i]));
    ck_assert(!present(s, o[3]));
    ck_assert(!present(s, o[4]));
    ck_assert(backlog_drains(s)); /* every written put gave its bytes back */

    /* an object larger than the whole backlog is taken when the queue is empty */
    cache_obj_t *big = make_obj("example.com/backlog/big", "", "", 2 << 20, 'B', store_generation(s));
    ck_assert_int_eq(store_put(s, big), 0);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, big));
    ck_assert(backlog_drains(s));
    ck_assert_uint_eq(stats_of(s).puts_refused_backlog, 2);

    store_close(&s);
    obj_unref(&big);
    for (int i = 0; i < 5; i++)
        obj_unref(&o[i]);
    obj_unref(&held);
    tmpdir_free(dir);
}
END_TEST

static Suite *store_threads_suite(void)
{
    Suite *s = suite_create("store_threads");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_concurrent_readers);
    tcase_add_test(tc, test_purge_races_fetches_and_promotions);
    tcase_add_test(tc, test_one_at_a_time_purges_from_many_threads_are_all_answered);
    tcase_add_test(tc, test_put_backlog_is_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("store-threads") != 0)
        return 1;
    SRunner *sr = srunner_create(store_threads_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

/*
 * tests/unit/test_store_answer.c — hard purges answered before their commit: an answered
 * purge's objects are never served (in the callback or on another thread), an answered
 * purge outlives a failed commit, held batches (store_hold_begin/end), and the answers
 * cover puts already queued behind them. Every test works in its own directory under the
 * suite's /tmp base.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include "storage/store.h"
#include "tests/unit/unit_store.h"
#include "tests/unit/unit_tmp.h"

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

static Suite *store_answer_suite(void)
{
    Suite *s = suite_create("store_answer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_answered_purge_is_never_served);
    tcase_add_test(tc, test_answered_purge_outlives_a_failed_commit);
    tcase_add_test(tc, test_hold_batches_a_threads_ops);
    tcase_add_test(tc, test_answer_covers_queued_puts);
    tcase_add_test(tc, test_writer_answers_cover_queued_puts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("store-answer") != 0)
        return 1;
    SRunner *sr = srunner_create(store_answer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

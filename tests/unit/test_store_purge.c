/*
 * tests/unit/test_store_purge.c — the store's purges: by surrogate key (long keys, the
 * origin's limits), by URL (every variant), soft purges (and the memory tier they keep
 * coherent), the purge epoch, the generation purge-all and its background reclaim, and the
 * purge log that keeps a fetch begun before a purge from being stored. Every test works in
 * its own directory under the suite's /tmp base.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include "storage/store.h"
#include "tests/unit/unit_store.h"
#include "tests/unit/unit_tmp.h"

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

static Suite *store_purge_suite(void)
{
    Suite *s = suite_create("store_purge");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_surrogate_key_purge);
    tcase_add_test(tc, test_long_surrogate_keys_purge);
    tcase_add_test(tc, test_surrogate_key_limits_from_the_origin);
    tcase_add_test(tc, test_url_purge_every_variant);
    tcase_add_test(tc, test_soft_purge);
    tcase_add_test(tc, test_purge_epoch);
    tcase_add_test(tc, test_purge_log_put_since);
    tcase_add_test(tc, test_generation_purge_all);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("store-purge") != 0)
        return 1;
    SRunner *sr = srunner_create(store_purge_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

/*
 * tests/unit/test_store_evict.c — eviction in a tiny map, and a map that fills up
 * (eviction set to start too late, or records eviction cannot touch): puts are refused and
 * counted, purges and kv writes still work, and the store recovers by itself. Every test
 * works in its own directory under the suite's /tmp base.
 */
#include <check.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include "storage/store.h"
#include "tests/unit/unit_store.h"
#include "tests/unit/unit_tmp.h"

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

static Suite *store_evict_suite(void)
{
    Suite *s = suite_create("store_evict");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_eviction_tiny_map);
    tcase_add_test(tc, test_map_full_recovers);
    tcase_add_test(tc, test_map_full_of_kv);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("store-evict") != 0)
        return 1;
    SRunner *sr = srunner_create(store_evict_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

/*
 * tests/unit/test_store_basic.c — the LMDB store's plain round trips: put, get and delete,
 * a replaced object's indexes, full-key mismatches, key/value records, reopening (with
 * another map size, or a smaller one), read-only opens, corrupt records and records of
 * version 1. Every test works in its own directory under the suite's /tmp base.
 */
#include <check.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include "storage/object_int.h"
#include "storage/store.h"
#include "tests/unit/unit_obj_v1.h"
#include "tests/unit/unit_store.h"
#include "tests/unit/unit_tmp.h"

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

static Suite *store_basic_suite(void)
{
    Suite *s = suite_create("store_basic");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_put_get_delete);
    tcase_add_test(tc, test_replace_updates_indexes);
    tcase_add_test(tc, test_full_key_mismatch);
    tcase_add_test(tc, test_kv);
    tcase_add_test(tc, test_reopen);
    tcase_add_test(tc, test_reopen_smaller_map);
    tcase_add_test(tc, test_reads_records_of_version_1);
    tcase_add_test(tc, test_read_only);
    tcase_add_test(tc, test_corrupt_record);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("store-basic") != 0)
        return 1;
    SRunner *sr = srunner_create(store_basic_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

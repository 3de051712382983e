/*
 * tests/unit/test_migrations.c — the schema migration runner: a fresh environment
 * gets the latest version (4) and every database; a version 1 store is upgraded to 4;
 * a version 3 store's objects get index entries for their surrogate keys over 511 bytes
 * (the purge journal's position and its checksum key in meta); a version 2 store's
 * journal is kept through the upgrade; a test-only step 4 runs exactly once and is
 * recorded; a failing step changes nothing; a newer store (version 99) is refused
 * by mig_run and by store_open and left untouched.
 * Every test works in its own mkdtemp directory under /tmp and removes it.
 */
#include <check.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/now.h"
#include "migrations/mig.h"
#include "storage/journal_int.h"
#include "storage/store.h"
#include "tests/unit/unit_tmp.h"

static MDB_env *env_open(const char *dir)
{
    MDB_env *env;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
    ck_assert_int_eq(mdb_env_set_mapsize(env, 8 << 20), 0);
    ck_assert_int_eq(mdb_env_open(env, dir, MDB_NOSYNC, 0644), 0);
    return env;
}

static size_t last_txnid(MDB_env *env)
{
    MDB_envinfo info;
    ck_assert_int_eq(mdb_env_info(env, &info), 0);
    return info.me_last_txnid;
}

/* Does database `name` exist? (and its flags) */
static int db_exists(MDB_env *env, const char *name, unsigned *flags)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    int rc = mdb_dbi_open(txn, name, 0, &dbi);
    if (rc == 0 && flags != NULL)
        mdb_dbi_flags(txn, dbi, flags);
    mdb_txn_abort(txn);
    return rc == 0;
}

/* Read meta[key] into buf; returns its size or -1. */
static int meta_get(MDB_env *env, const char *key, void *buf, size_t cap)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    int ret = -1;
    ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    if (mdb_dbi_open(txn, "meta", 0, &dbi) == 0) {
        MDB_val k = {strlen(key), (void *)key}, v;
        if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size <= cap) {
            memcpy(buf, v.mv_data, v.mv_size);
            ret = (int)v.mv_size;
        }
    }
    mdb_txn_abort(txn);
    return ret;
}

static void meta_put_version(MDB_env *env, unsigned version)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t b[4] = {(uint8_t)version, (uint8_t)(version >> 8), (uint8_t)(version >> 16), (uint8_t)(version >> 24)};
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
    MDB_val k = {14, "schema_version"}, v = {4, b};
    ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
}

/* ---- a test-only second step ---- */

static int v2_runs;

static int v2_up(MDB_txn *txn)
{
    MDB_dbi dbi;
    v2_runs++;
    int rc = mdb_dbi_open(txn, "v2extra", MDB_CREATE, &dbi);
    if (rc != 0)
        return rc;
    MDB_val k = {6, "marker"}, v = {2, "v2"};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int v2_fail_up(MDB_txn *txn)
{
    int rc = v2_up(txn); /* writes, then fails: the write must not survive */
    return rc != 0 ? rc : -12345;
}

static mig_step_t *steps_with(int (*up)(MDB_txn *), size_t *count)
{
    size_t n;
    const mig_step_t *builtin = mig_builtin(&n);
    mig_step_t *steps = calloc(n + 1, sizeof(*steps));
    memcpy(steps, builtin, n * sizeof(*steps));
    steps[n] = (mig_step_t){(unsigned)n + 1, "test-step", up};
    *count = n + 1;
    return steps;
}

/* A store in dir as a binary of schema version `version` left it. */
static void make_store_at(const char *dir, unsigned version)
{
    MDB_env *env = env_open(dir);
    size_t n;
    unsigned from, to;
    char err[256] = "";
    const mig_step_t *builtin = mig_builtin(&n);
    ck_assert_int_eq(mig_run(env, builtin, version, &from, &to, err, sizeof(err)), 0); /* its steps only */
    ck_assert_uint_eq(to, version);
    mdb_env_close(env);
}

/* The store in dir is at the latest version and its journal is written under the store's key. */
static void assert_v3_keyed(const char *dir)
{
    MDB_env *env = env_open(dir);
    unsigned v;
    uint8_t keyed[8] = {0};
    ck_assert_int_eq(mig_current_version(env, &v), 0);
    ck_assert_uint_eq(v, mig_latest());
    ck_assert_int_eq(meta_get(env, "journal_keyed", keyed, sizeof(keyed)), 8);
    ck_assert_uint_eq(keyed[0], 1);
    mdb_env_close(env);
}

/* ---- tests ---- */

START_TEST(test_fresh_gets_latest)
{
    char *dir = tmpdir_new();
    MDB_env *env = env_open(dir);
    unsigned v = 77, from = 77, to = 77;
    char err[256] = "";
    size_t n;
    const mig_step_t *steps = mig_builtin(&n);

    ck_assert_uint_eq(n, 5);
    ck_assert_uint_eq(mig_latest(), 5);
    ck_assert_str_eq(steps[0].name, "initial");
    ck_assert_str_eq(steps[1].name, "purge_journal");
    ck_assert_str_eq(steps[2].name, "journal_key");
    ck_assert_str_eq(steps[3].name, "long_skeys");
    ck_assert_str_eq(steps[4].name, "bus_seq");
    ck_assert_int_eq(mig_current_version(env, &v), 0);
    ck_assert_uint_eq(v, 0);

    ck_assert_int_eq(mig_run(env, steps, n, &from, &to, err, sizeof(err)), 0);
    ck_assert_uint_eq(from, 0);
    ck_assert_uint_eq(to, 5);
    ck_assert_int_eq(mig_current_version(env, &v), 0);
    ck_assert_uint_eq(v, 5);

    static const char *names[] = {"meta", "objects", "skeys", "variants", "evict", "config", "tokens", "stats"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        unsigned flags = 0;
        ck_assert_msg(db_exists(env, names[i], &flags), "database %s missing", names[i]);
        if (strcmp(names[i], "skeys") == 0 || strcmp(names[i], "variants") == 0)
            ck_assert_uint_ne(flags & MDB_DUPSORT, 0);
        else
            ck_assert_uint_eq(flags & MDB_DUPSORT, 0);
    }
    ck_assert(!db_exists(env, "nonesuch", NULL));
    uint8_t gen[8];
    ck_assert_int_eq(meta_get(env, "generation", gen, sizeof(gen)), 8);
    ck_assert_uint_eq(gen[0], 1);
    for (int i = 1; i < 8; i++)
        ck_assert_uint_eq(gen[i], 0);
    uint8_t ver[4];
    ck_assert_int_eq(meta_get(env, "schema_version", ver, sizeof(ver)), 4);
    ck_assert(ver[0] == 5 && ver[1] == 0 && ver[2] == 0 && ver[3] == 0);
    uint8_t jseq[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(meta_get(env, "journal_seq", jseq, sizeof(jseq)), 8);
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(jseq[i], 0);
    uint8_t jkey[16] = {0}, zero[16] = {0};
    ck_assert_int_eq(meta_get(env, "journal_key", jkey, sizeof(jkey)), 16);
    ck_assert(memcmp(jkey, zero, sizeof(zero)) != 0); /* random */

    /* up to date: nothing is written */
    size_t txnid = last_txnid(env);
    uint8_t bseq[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(meta_get(env, "bus_seq", bseq, sizeof(bseq)), 8);
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(bseq[i], 0);
    ck_assert_int_eq(mig_run(env, steps, n, &from, &to, err, sizeof(err)), 0);
    ck_assert_uint_eq(from, 5);
    ck_assert_uint_eq(to, 5);
    ck_assert_uint_eq(last_txnid(env), txnid);

    mdb_env_close(env);
    tmpdir_free(dir);
}
END_TEST

/* A store written by a version 1 binary: store_open upgrades it to the latest version and then works. */
START_TEST(test_real_upgrade_from_v1)
{
    char *dir = tmpdir_new();
    char err[256] = "";
    uint8_t jseq[8];

    make_store_at(dir, 1);
    MDB_env *env = env_open(dir);
    ck_assert_int_eq(meta_get(env, "journal_seq", jseq, sizeof(jseq)), -1);
    mdb_env_close(env);

    store_options_t opt = {.dir = dir, .map_size = 8 << 20};
    store_t *s = NULL;
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), 0);
    ck_assert_uint_eq(store_generation(s), 1);
    store_close(&s);

    assert_v3_keyed(dir);
    env = env_open(dir);
    ck_assert_int_eq(meta_get(env, "journal_seq", jseq, sizeof(jseq)), 8);
    mdb_env_close(env);
    tmpdir_free(dir);
}
END_TEST

/*
 * A version 2 store whose journal (under the old public key) holds a purge the store
 * had not applied: store_open migrates it to the latest version, applies the purge from the old journal,
 * and from then on reads the journal under the store's key only, so a segment written
 * with the public key is no longer believed.
 */
static void append_legacy_purge_all(const char *dir, uint64_t seq)
{
    journal_t *j = NULL;
    char err[256] = "";
    ck_assert_msg(journal_open(&j, dir, JOURNAL_MIN_SIZE, NULL, err, sizeof(err)) == 0, "%s", err);
    journal_rec_t rec = {.seq = seq, .kind = JOURNAL_ALL};
    ck_assert_int_eq(journal_append(j, &rec, 1, 0), 0);
    journal_close(&j);
}

START_TEST(test_upgrade_v2_keeps_its_journal)
{
    char *dir = tmpdir_new();
    char err[256] = "";
    make_store_at(dir, 2);
    append_legacy_purge_all(dir, 1); /* journaled, acknowledged, then the machine crashed */

    store_options_t opt = {.dir = dir, .map_size = 8 << 20};
    store_t *s = NULL;
    ck_assert_msg(store_open(&s, &opt, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(store_generation(s), 2); /* the purge-all was applied */
    store_close(&s);

    assert_v3_keyed(dir);

    /* a segment made with the public key now: not replayed */
    append_legacy_purge_all(dir, 50);
    ck_assert_msg(store_open(&s, &opt, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(store_generation(s), 2);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_upgrade_to_test_step_once)
{
    char *dir = tmpdir_new();
    MDB_env *env = env_open(dir);
    size_t n, count;
    unsigned from, to, v;
    char err[256] = "";
    const mig_step_t *builtin = mig_builtin(&n);
    mig_step_t *steps = steps_with(v2_up, &count);

    ck_assert_int_eq(mig_run(env, builtin, n, &from, &to, err, sizeof(err)), 0);
    ck_assert_uint_eq(to, 5);
    v2_runs = 0;
    ck_assert_int_eq(mig_run(env, steps, count, &from, &to, err, sizeof(err)), 0);
    ck_assert_uint_eq(from, 5);
    ck_assert_uint_eq(to, 6);
    ck_assert_int_eq(v2_runs, 1);
    ck_assert_int_eq(mig_current_version(env, &v), 0);
    ck_assert_uint_eq(v, 6);
    ck_assert(db_exists(env, "v2extra", NULL));

    /* again: already at 6, the step does not run */
    ck_assert_int_eq(mig_run(env, steps, count, &from, &to, err, sizeof(err)), 0);
    ck_assert_uint_eq(from, 6);
    ck_assert_uint_eq(to, 6);
    ck_assert_int_eq(v2_runs, 1);

    /* a binary that only knows v5 now refuses it */
    ck_assert_int_eq(mig_run(env, builtin, n, &from, &to, err, sizeof(err)), MIG_ENEWER);
    mdb_env_close(env);

    /* so does store_open */
    store_options_t opt = {.dir = dir, .map_size = 8 << 20};
    store_t *s = NULL;
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), STORE_ESCHEMA);
    ck_assert_ptr_null(s);

    /* a fresh environment runs both steps in one go */
    char *dir2 = tmpdir_new();
    env = env_open(dir2);
    v2_runs = 0;
    ck_assert_int_eq(mig_run(env, steps, count, &from, &to, err, sizeof(err)), 0);
    ck_assert_uint_eq(from, 0);
    ck_assert_uint_eq(to, 6);
    ck_assert_int_eq(v2_runs, 1);
    ck_assert(db_exists(env, "objects", NULL));
    mdb_env_close(env);

    free(steps);
    tmpdir_free(dir2);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_failing_step_changes_nothing)
{
    char *dir = tmpdir_new();
    MDB_env *env = env_open(dir);
    size_t n, count;
    unsigned from, to, v;
    char err[256] = "";
    const mig_step_t *builtin = mig_builtin(&n);
    mig_step_t *steps = steps_with(v2_fail_up, &count);

    ck_assert_int_eq(mig_run(env, builtin, n, NULL, NULL, err, sizeof(err)), 0);
    size_t txnid = last_txnid(env);
    v2_runs = 0;
    ck_assert_int_eq(mig_run(env, steps, count, &from, &to, err, sizeof(err)), MIG_EFAIL);
    ck_assert_int_eq(v2_runs, 1);
    ck_assert_uint_eq(from, 5);
    ck_assert_uint_eq(to, 5);
    ck_assert_ptr_nonnull(strstr(err, "migration 6 (test-step) failed"));
    ck_assert_int_eq(mig_current_version(env, &v), 0);
    ck_assert_uint_eq(v, 5);
    ck_assert(!db_exists(env, "v2extra", NULL));
    ck_assert_uint_eq(last_txnid(env), txnid);
    mdb_env_close(env);

    /* on a fresh environment, step 1's work is rolled back too */
    char *dir2 = tmpdir_new();
    env = env_open(dir2);
    ck_assert_int_eq(mig_run(env, steps, count, &from, &to, err, sizeof(err)), MIG_EFAIL);
    ck_assert_int_eq(mig_current_version(env, &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert(!db_exists(env, "meta", NULL));
    ck_assert(!db_exists(env, "objects", NULL));
    mdb_env_close(env);

    free(steps);
    tmpdir_free(dir2);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_bad_table)
{
    char *dir = tmpdir_new();
    MDB_env *env = env_open(dir);
    char err[256] = "";
    mig_step_t steps[] = {{1, "initial", v2_up}, {3, "gap", v2_up}}; /* no step 2 */
    v2_runs = 0;
    ck_assert_int_eq(mig_run(env, steps, 2, NULL, NULL, err, sizeof(err)), MIG_EFAIL);
    ck_assert_int_eq(v2_runs, 0);
    ck_assert_ptr_nonnull(strstr(err, "invalid"));
    mdb_env_close(env);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_newer_refused_untouched)
{
    char *dir = tmpdir_new();
    MDB_env *env = env_open(dir);
    size_t n;
    unsigned from = 0, to = 0, v;
    char err[256] = "";
    const mig_step_t *builtin = mig_builtin(&n);

    ck_assert_int_eq(mig_run(env, builtin, n, NULL, NULL, err, sizeof(err)), 0);
    meta_put_version(env, 99);
    size_t txnid = last_txnid(env);

    ck_assert_int_eq(mig_run(env, builtin, n, &from, &to, err, sizeof(err)), MIG_ENEWER);
    ck_assert_uint_eq(from, 99);
    ck_assert_ptr_nonnull(strstr(err, "99"));
    ck_assert_ptr_nonnull(strstr(err, "version 5"));
    ck_assert_uint_eq(last_txnid(env), txnid);
    ck_assert_int_eq(mig_current_version(env, &v), 0);
    ck_assert_uint_eq(v, 99);
    mdb_env_close(env);

    /* store_open refuses it with a clear message, read-write or read-only */
    store_options_t opt = {.dir = dir, .map_size = 8 << 20};
    store_t *s = NULL;
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), STORE_ESCHEMA);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "99"));
    ck_assert_ptr_nonnull(strstr(err, "newer"));
    opt.read_only = 1;
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), STORE_ESCHEMA);
    ck_assert_ptr_nonnull(strstr(err, "99"));

    env = env_open(dir);
    ck_assert_uint_eq(last_txnid(env), txnid);
    ck_assert_int_eq(mig_current_version(env, &v), 0);
    ck_assert_uint_eq(v, 99);
    mdb_env_close(env);
    tmpdir_free(dir);
}
END_TEST

/* the purge callback: records what the purge did */
static void on_purge_done(void *arg, const store_purge_result_t *res)
{
    *(store_purge_result_t *)arg = *res;
}

/*
 * A version 3 store holds an object tagged with keys over 511 bytes, indexed as version 3
 * did (only the keys of at most 511 bytes). Migration 4 indexes the long ones, so a purge
 * by such a key reaches what the old version cached (issue 19, item 5).
 */
START_TEST(test_upgrade_v3_indexes_long_keys)
{
    char *dir = tmpdir_new();
    char err[256] = "";
    char k600[601], k2000[2001], list[3000];
    memset(k600, 'l', 600);
    k600[600] = '\0';
    memset(k2000, 'x', 2000);
    k2000[2000] = '\0';
    snprintf(list, sizeof(list), "short %s tail", k600);
    make_store_at(dir, 3);

    obj_meta_t meta = {.status = 200, .generation = 1, .ttl = 300};
    meta.request_time_ms = meta.response_time_ms = now_wall_ms();
    obj_builder_t *b = obj_builder_begin(&meta, "example.com/old", 15, list, strlen(list), "", 0, NULL, 0, 2);
    obj_builder_append(b, "ok", 2);
    cache_obj_t *old = obj_builder_finish(b);
    /* a second object whose long key is over 1,024 bytes: not a key, not indexed */
    snprintf(list, sizeof(list), "%s", k2000);
    b = obj_builder_begin(&meta, "example.com/huge", 16, list, strlen(list), "", 0, NULL, 0, 2);
    obj_builder_append(b, "ok", 2);
    cache_obj_t *huge = obj_builder_finish(b);

    MDB_env *env = env_open(dir);
    MDB_txn *txn;
    MDB_dbi objects, skeys;
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "objects", 0, &objects), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, "skeys", MDB_DUPSORT | MDB_DUPFIXED, &skeys), 0);
    cache_obj_t *objs[] = {old, huge};
    for (int i = 0; i < 2; i++) {
        MDB_val k = {CACHE_HASH_LEN, objs[i]->hash}, v = {objs[i]->rec_len, objs[i]->rec};
        ck_assert_int_eq(mdb_put(txn, objects, &k, &v, 0), 0);
    }
    const char *short_keys[] = {"short", "tail"};
    for (int i = 0; i < 2; i++) {
        MDB_val k = {strlen(short_keys[i]), (void *)short_keys[i]}, v = {CACHE_HASH_LEN, old->hash};
        ck_assert_int_eq(mdb_put(txn, skeys, &k, &v, 0), 0);
    }
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    store_options_t opt = {.dir = dir, .map_size = 8 << 20};
    store_t *s = NULL;
    ck_assert_msg(store_open(&s, &opt, err, sizeof(err)) == 0, "%s", err);
    cache_obj_t *got = NULL;
    ck_assert_int_eq(store_get(s, old->hash, old->key, old->key_len, &got), 0);
    obj_unref(&got);
    store_purge_result_t res = {.err = -1};
    store_purge_surrogate_key(s, k2000, strlen(k2000), 0, on_purge_done, &res);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(res.err, 0);
    ck_assert_uint_eq(res.objects, 0);
    res.err = -1;
    store_purge_surrogate_key(s, k600, strlen(k600), 0, on_purge_done, &res);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(res.err, 0);
    ck_assert_uint_eq(res.objects, 1);
    ck_assert_int_eq(store_get(s, old->hash, old->key, old->key_len, &got), STORE_ENOTFOUND);
    ck_assert_int_eq(store_get(s, huge->hash, huge->key, huge->key_len, &got), 0);
    obj_unref(&got);
    /* its short keys' entries went with it */
    res.err = -1;
    store_purge_surrogate_key(s, "tail", 4, 0, on_purge_done, &res);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_uint_eq(res.objects, 0);
    store_close(&s);

    env = env_open(dir);
    unsigned v;
    ck_assert_int_eq(mig_current_version(env, &v), 0);
    ck_assert_uint_eq(v, mig_latest());
    mdb_env_close(env);
    obj_unref(&old);
    obj_unref(&huge);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_store_open_migrates)
{
    char *dir = tmpdir_new();
    store_options_t opt = {.dir = dir, .map_size = 8 << 20};
    store_t *s = NULL;
    char err[256] = "";
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), 0);
    ck_assert_uint_eq(store_generation(s), 1);
    store_close(&s);

    MDB_env *env = env_open(dir);
    unsigned v;
    ck_assert_int_eq(mig_current_version(env, &v), 0);
    ck_assert_uint_eq(v, mig_latest());
    mdb_env_close(env);
    tmpdir_free(dir);
}
END_TEST

static Suite *mig_suite(void)
{
    Suite *s = suite_create("migrations");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fresh_gets_latest);
    tcase_add_test(tc, test_real_upgrade_from_v1);
    tcase_add_test(tc, test_upgrade_v2_keeps_its_journal);
    tcase_add_test(tc, test_upgrade_to_test_step_once);
    tcase_add_test(tc, test_failing_step_changes_nothing);
    tcase_add_test(tc, test_bad_table);
    tcase_add_test(tc, test_newer_refused_untouched);
    tcase_add_test(tc, test_store_open_migrates);
    tcase_add_test(tc, test_upgrade_v3_indexes_long_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("mig") != 0)
        return 1;
    SRunner *sr = srunner_create(mig_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

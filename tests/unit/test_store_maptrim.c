/*
 * tests/unit/test_store_maptrim.c — the store unmaps the data file's pages from the
 * process (storage/store_maptrim.c): after writes, and after reads alone, the map's
 * resident pages (read from /proc/self/smaps) fall back to a few, and every object is
 * still read back whole from pages that had been unmapped.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/now.h"
#include "storage/object.h"
#include "storage/store.h"
#include "tests/unit/unit_tmp.h"

#define N_OBJECTS 600
#define BODY_LEN 3000 /* one record a page or so: N_OBJECTS pages of the map when all are mapped */

static store_t *open_store(const char *dir)
{
    store_options_t opt = {.dir = dir, .map_size = (size_t)64 << 20};
    char err[256];
    store_t *s = NULL;
    int rc = store_open(&s, &opt, err, sizeof(err));
    ck_assert_msg(rc == 0, "store_open: %d %s", rc, err);
    return s;
}

static cache_obj_t *make_obj(int i)
{
    char key[64], body[BODY_LEN];
    snprintf(key, sizeof(key), "example.com\n/o/%d", i);
    obj_meta_t meta = {
        .status = 200, .generation = 1, .ttl = 300, .request_time_ms = now_wall_ms(), .response_time_ms = now_wall_ms()};
    obj_header_t hdr = {"content-type", 12, "text/plain", 10};
    obj_builder_t *b = obj_builder_begin(&meta, key, strlen(key), "", 0, "", 0, &hdr, 1, sizeof(body));
    for (size_t j = 0; j < sizeof(body); j++)
        body[j] = (char)('a' + (i + j) % 26);
    obj_builder_append(b, body, sizeof(body));
    return obj_builder_finish(b);
}

/* Resident KiB of this process's mappings of a file whose path ends in /data.mdb under dir. */
static long map_rss_kib(const char *dir)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    ck_assert_ptr_nonnull(f);
    char line[1024], want[600];
    snprintf(want, sizeof(want), "%s/data.mdb", dir);
    long total = 0;
    int in_map = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi;
        long kib;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            size_t n = strlen(line);
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
                line[--n] = '\0';
            in_map = n >= strlen(want) && strcmp(line + n - strlen(want), want) == 0;
        } else if (in_map && sscanf(line, "Rss: %ld kB", &kib) == 1) {
            total += kib;
        }
    }
    fclose(f);
    return total;
}

/* Wait (for an event, with a generous deadline) until at most max_kib of the map is resident. */
static long wait_map_rss_at_most(const char *dir, long max_kib)
{
    int64_t deadline = now_mono_ms() + 30000;
    long rss;
    while ((rss = map_rss_kib(dir)) > max_kib && now_mono_ms() < deadline) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return rss;
}

static void check_all_read_back(store_t *s, cache_obj_t **objs)
{
    for (int i = 0; i < N_OBJECTS; i++) {
        cache_obj_t *got = NULL;
        ck_assert_int_eq(store_get(s, objs[i]->hash, objs[i]->key, objs[i]->key_len, &got), 0);
        ck_assert_uint_eq(got->body_len, BODY_LEN);
        ck_assert_int_eq(memcmp(got->body, objs[i]->body, BODY_LEN), 0);
        obj_unref(&got);
    }
}

/* N_OBJECTS objects made and put into s (objs holds a reference to each), and flushed */
static void put_all(store_t *s, cache_obj_t **objs)
{
    for (int i = 0; i < N_OBJECTS; i++) {
        objs[i] = make_obj(i);
        store_put(s, objs[i]);
    }
    ck_assert_int_eq(store_flush(s), 0);
}

START_TEST(test_writes_leave_the_map_unmapped)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir);
    cache_obj_t *objs[N_OBJECTS];
    put_all(s, objs);
    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.objects, N_OBJECTS);
    /* the puts mapped every leaf page they touched (about N_OBJECTS pages); the writer's
     * trim once it is idle unmaps them */
    long rss = wait_map_rss_at_most(dir, 64);
    store_get_stats(s, &st);
    ck_assert_msg(rss <= 64, "%ld KiB of data.mdb still mapped (%llu bytes used, %llu trims)", rss,
                  (unsigned long long)st.bytes_used, (unsigned long long)st.map_trims);
    ck_assert_uint_gt(st.map_trims, 0);
    /* read back from pages that were unmapped: the same bytes */
    check_all_read_back(s, objs);
    for (int i = 0; i < N_OBJECTS; i++)
        obj_unref(&objs[i]);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_reads_alone_are_unmapped)
{
    char *dir = tmpdir_new();
    store_t *s = open_store(dir);
    cache_obj_t *objs[N_OBJECTS];
    put_all(s, objs);
    store_close(&s);

    /* a restart that only reads: nothing is written, so only the reads can wake the writer */
    s = open_store(dir);
    ck_assert_int_le(wait_map_rss_at_most(dir, 64), 64); /* what opening mapped */
    for (int pass = 0; pass < 3; pass++)
        check_all_read_back(s, objs);
    /* N_OBJECTS records of a page each were mapped by the reads; the first read after each
     * trim wakes the writer, which trims again once its gap has passed: all of them */
    long bound = 64;
    long rss = wait_map_rss_at_most(dir, bound);
    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_msg(rss <= bound, "%ld KiB of data.mdb mapped after reads (%llu trims)", rss, (unsigned long long)st.map_trims);
    check_all_read_back(s, objs);
    for (int i = 0; i < N_OBJECTS; i++)
        obj_unref(&objs[i]);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

static Suite *maptrim_suite(void)
{
    Suite *s = suite_create("store_maptrim");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_writes_leave_the_map_unmapped);
    tcase_add_test(tc, test_reads_alone_are_unmapped);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("maptrim") != 0)
        return 1;
    SRunner *sr = srunner_create(maptrim_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

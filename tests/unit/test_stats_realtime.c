/*
 * tests/unit/test_stats_realtime.c — server/stats_realtime.c and admin-api/realtime_api.c's
 * document: Fastly's miss_histogram buckets at every span edge, the one-second ring (a
 * record per closed second, counts never lost when the clock steps back, the oldest dropped
 * past STATS_RT_KEEP + 1, reads after a second and of the newest N) and the JSON shape.
 *
 * The counters are driven through stats_note_purge, which needs no worker threads: each
 * tick's record holds exactly the purges noted since the previous tick.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "admin-api/stats_api.h"
#include "server/stats.h"
#include "server/stats_realtime.h"

static uint64_t purges_of(const stats_rt_sample_t *s)
{
    uint64_t n = 0;
    for (int k = 0; k < STATS_PURGE_KINDS; k++)
        n += s->d.purges[k];
    return n;
}

START_TEST(test_miss_histogram_buckets)
{
    /* µs -> Fastly's key (upper bound, ms) */
    static const struct {
        uint64_t us;
        uint32_t key;
    } cases[] = {
        {0, 1},
        {1, 1},
        {1000, 1},
        {1001, 2},
        {9999, 10},
        {10000, 10},
        {10001, 20},
        {20000, 20},
        {20001, 30},
        {250000, 250},
        {250001, 300},
        {1000000, 1000},
        {1000001, 1100},
        {3000000, 3000},
        {3000001, 3500},
        {10000000, 10000},
        {10000001, 11000},
        {20000000, 20000},
        {20000001, 25000},
        {60000000, 60000},
        {60000001, 60000},
        {UINT64_MAX / 2, 60000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned b = stats_miss_hist_bucket(cases[i].us);
        ck_assert_uint_lt(b, STATS_MISS_HIST_BUCKETS);
        ck_assert_msg(stats_miss_hist_bound_ms(b) == cases[i].key, "%llu us: key %u, expected %u",
                      (unsigned long long)cases[i].us, stats_miss_hist_bound_ms(b), cases[i].key);
    }
    /* the keys strictly increase, and each bucket holds its own upper bound */
    for (unsigned b = 0; b < STATS_MISS_HIST_BUCKETS; b++) {
        if (b > 0)
            ck_assert_uint_gt(stats_miss_hist_bound_ms(b), stats_miss_hist_bound_ms(b - 1));
        ck_assert_uint_eq(stats_miss_hist_bucket((uint64_t)stats_miss_hist_bound_ms(b) * 1000), b);
    }
    ck_assert_uint_eq(stats_miss_hist_bound_ms(STATS_MISS_HIST_BUCKETS - 1), 60000);
}
END_TEST

START_TEST(test_ring)
{
    static stats_rt_sample_t out[STATS_RT_KEEP + 8];
    int64_t t0 = 1800000000;
    stats_rt_tick(t0); /* baseline */
    ck_assert_int_eq(stats_rt_latest(), -1);

    stats_note_purge(STATS_PURGE_KEY, 10);
    stats_note_purge(STATS_PURGE_URL, 30);
    stats_rt_tick(t0 + 1); /* closes second t0 */
    ck_assert_int_eq(stats_rt_latest(), t0);
    ck_assert_uint_eq(stats_rt_read(-1, out, 10), 1);
    ck_assert_int_eq(out[0].recorded, t0);
    ck_assert_uint_eq(purges_of(&out[0]), 2);
    ck_assert_uint_eq(out[0].d.purge_latency_sum_us[STATS_PURGE_URL], 30);

    /* the clock steps back: nothing closed, and the purge waits for the next record */
    stats_note_purge(STATS_PURGE_ALL, 1);
    stats_rt_tick(t0);
    stats_rt_tick(t0 + 1);
    ck_assert_int_eq(stats_rt_latest(), t0);
    /* a jump forward: one record for the newest second, holding everything since */
    stats_note_purge(STATS_PURGE_ALL, 1);
    stats_rt_tick(t0 + 5);
    ck_assert_int_eq(stats_rt_latest(), t0 + 4);
    ck_assert_uint_eq(stats_rt_read(t0, out, 10), 1);
    ck_assert_uint_eq(purges_of(&out[0]), 2);

    /* more than the ring holds: the oldest go, reads return the newest */
    for (int i = 0; i < STATS_RT_KEEP + 10; i++) {
        stats_note_purge(STATS_PURGE_KEY, 1);
        stats_rt_tick(t0 + 6 + i);
    }
    int64_t last = t0 + 5 + STATS_RT_KEEP + 9;
    ck_assert_int_eq(stats_rt_latest(), last);
    size_t n = stats_rt_read(INT64_MIN, out, STATS_RT_KEEP + 8);
    ck_assert_uint_eq(n, STATS_RT_KEEP + 1);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(out[i].recorded, last - (int64_t)(n - 1 - i));
        ck_assert_uint_eq(purges_of(&out[i]), 1);
    }
    ck_assert_uint_eq(stats_rt_read(INT64_MIN, out, 3), 3);
    ck_assert_int_eq(out[0].recorded, last - 2);
    ck_assert_int_eq(out[2].recorded, last);
    ck_assert_uint_eq(stats_rt_read(last - 2, out, 10), 2);
    ck_assert_int_eq(out[0].recorded, last - 1);
    ck_assert_uint_eq(stats_rt_read(last, out, 10), 0);
}
END_TEST

START_TEST(test_document_shape)
{
    stats_rt_sample_t s[2];
    memset(s, 0, sizeof(s));
    s[0].recorded = 100;
    s[1].recorded = 101;
    s[1].d.requests = 5;
    s[1].d.hits = 3;
    s[1].d.miss = 2;
    s[1].d.header_size = 700;
    s[1].d.body_size = 9000;
    s[1].d.lat_sum_us[STATS_LAT_HIT] = 1500;
    s[1].d.miss_hist[stats_miss_hist_bucket(12500)] = 2;
    s[1].d.lat_count[STATS_LAT_HIT][stats_lat_bucket(40)] = 3;
    s[1].d.status_class[2] = 5;
    s[1].d.status_code[stats_code_index(200)] = 5;
    s[1].nbackends = 1;
    strcpy(s[1].backends[0].name, "origin \"one\"");
    s[1].backends[0].healthy = 1;
    s[1].backends[0].requests = 2;

    json_t *doc = admin_realtime_json(s, 2, 101);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "Timestamp")), 101);
    ck_assert(json_is_integer(json_object_get(doc, "AggregateDelay")));
    json_t *data = json_object_get(doc, "Data");
    ck_assert_uint_eq(json_array_size(data), 2);
    json_t *rec = json_array_get(data, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(rec, "recorded")), 101);
    json_t *agg = json_object_get(rec, "aggregated");
    json_t *dc = json_object_get(json_object_get(rec, "datacenter"), stats_rt_node_name());
    ck_assert_ptr_nonnull(dc);
    ck_assert(json_equal(agg, dc));
    ck_assert_int_eq(json_integer_value(json_object_get(agg, "requests")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(agg, "resp_header_bytes")), 700);
    ck_assert_int_eq(json_integer_value(json_object_get(agg, "resp_body_bytes")), 9000);
    ck_assert(json_real_value(json_object_get(agg, "hits_time")) == 0.0015);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(agg, "miss_histogram"), "20")), 2);
    ck_assert_uint_eq(json_object_size(json_object_get(agg, "miss_histogram")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(agg, "hits_histogram_us"), "50")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(agg, "status_200")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(agg, "status_2xx")), 5);
    json_t *b = json_object_get(json_object_get(agg, "backends"), "origin \"one\"");
    ck_assert(json_is_true(json_object_get(b, "healthy")));
    ck_assert_int_eq(json_integer_value(json_object_get(b, "requests")), 2);
    json_decref(doc);

    /* --node-name names the datacenter */
    stats_rt_set_node_name("edge_7");
    doc = admin_realtime_json(s, 1, 100);
    rec = json_array_get(json_object_get(doc, "Data"), 0);
    ck_assert_ptr_nonnull(json_object_get(json_object_get(rec, "datacenter"), "edge_7"));
    json_decref(doc);
}
END_TEST

static Suite *realtime_suite(void)
{
    Suite *s = suite_create("stats_realtime");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_miss_histogram_buckets);
    tcase_add_test(tc, test_ring);
    tcase_add_test(tc, test_document_shape);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(realtime_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

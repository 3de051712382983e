/*
 * tests/unit/test_stats_history.c — server/stats*.c and admin-api/stats_api.c: the 95th
 * percentile by the standard method on hand-made sample sets, histogram buckets and
 * percentile interpolation, SLA band edges, the degraded-minute rule, history records
 * (encoding, forward/backward compatibility, corrupt records), the sampler's minute records,
 * merging and retention in a real store, history aggregation and the SLA document (read once
 * per history change, by windows, bounded), and from/to parsing.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin-api/stats_api.h"
#include "server/stats.h"
#include "tests/unit/unit_stats.h"

/* ---------------------------------------------------------------- helpers */

static void put_minute(store_t *s, const stats_sample_t *m)
{
    char key[32];
    size_t len;
    snprintf(key, sizeof(key), "m%016llx", (unsigned long long)m->start);
    void *rec = stats_sample_encode(m, &len);
    ck_assert_int_eq(store_kv_put_sync(s, "stats", key, rec, len), 0);
    free(rec);
}

static void put_bw(store_t *s, int64_t start, uint64_t interval, uint64_t bytes)
{
    char key[32];
    size_t len;
    stats_bw_sample_t b = {.start = start, .interval = interval, .bytes = bytes};
    snprintf(key, sizeof(key), "b%016llx", (unsigned long long)start);
    void *rec = stats_bw_encode(&b, &len);
    ck_assert_int_eq(store_kv_put_sync(s, "stats", key, rec, len), 0);
    free(rec);
}

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

/* ---------------------------------------------------------------- 95th percentile */

START_TEST(test_p95_hand_made)
{
    /* 20 samples 1..20 (shuffled): the top one (20) is dropped, 19 is the answer */
    uint64_t a[20] = {7, 3, 20, 1, 15, 9, 11, 2, 19, 4, 6, 18, 5, 8, 10, 12, 13, 14, 16, 17};
    ck_assert_uint_eq(stats_p95_standard(a, 20), 19);

    /* 100 samples 1..100 in reverse: drop 5, highest remaining is 95 */
    uint64_t b[100];
    for (int i = 0; i < 100; i++)
        b[i] = (uint64_t)(100 - i);
    ck_assert_uint_eq(stats_p95_standard(b, 100), 95);

    /* a month of 5-minute samples at 100 Mbps with two bursts at 900 Mbps: bursts of 5% or less cost nothing */
    size_t n = 8640; /* 30 days */
    uint64_t *c = malloc(n * sizeof(*c));
    for (size_t i = 0; i < n; i++)
        c[i] = 100000000;
    for (size_t i = 0; i < n / 20; i++) /* 432 samples = exactly 5% */
        c[(i * 7919) % n] = 900000000;
    ck_assert_uint_eq(stats_p95_standard(c, n), 100000000);
    /* one more burst sample and the 95th percentile is a burst */
    for (size_t i = 0; i < n; i++)
        if (c[i] == 100000000) {
            c[i] = 900000000;
            break;
        }
    ck_assert_uint_eq(stats_p95_standard(c, n), 900000000);
    free(c);

    /* fewer than 20 samples: nothing is dropped */
    uint64_t d[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1000};
    ck_assert_uint_eq(stats_p95_standard(d, 10), 1000);
    /* 21..39 samples drop exactly one */
    uint64_t e[39];
    for (int i = 0; i < 39; i++)
        e[i] = (uint64_t)i;
    ck_assert_uint_eq(stats_p95_standard(e, 39), 37);
    ck_assert_uint_eq(stats_p95_standard(e, 0), 0);
    uint64_t one = 42;
    ck_assert_uint_eq(stats_p95_standard(&one, 1), 42);
}
END_TEST

/* ---------------------------------------------------------------- histograms */

START_TEST(test_histogram_buckets)
{
    ck_assert_uint_eq(stats_lat_bucket(0), 0);
    ck_assert_uint_eq(stats_lat_bucket(1), 0);
    ck_assert_uint_eq(stats_lat_bucket(2), 1);
    ck_assert_uint_eq(stats_lat_bucket(3), 2);
    ck_assert_uint_eq(stats_lat_bucket(4), 3);
    ck_assert_uint_eq(stats_lat_bucket(60000000), STATS_LAT_BUCKETS - 2);
    ck_assert_uint_eq(stats_lat_bucket(60000001), STATS_LAT_BUCKETS - 1);
    ck_assert_uint_eq(stats_lat_bucket(UINT64_MAX), STATS_LAT_BUCKETS - 1);
    /* bounds strictly increasing, every value lands in the bucket whose bound is the first >= it */
    for (unsigned i = 0; i + 1 < STATS_LAT_BUCKETS - 1; i++)
        ck_assert_uint_lt(stats_lat_bounds_us[i], stats_lat_bounds_us[i + 1]);
    for (unsigned i = 0; i < STATS_LAT_BUCKETS - 1; i++) {
        ck_assert_uint_eq(stats_lat_bucket(stats_lat_bounds_us[i]), i);
        ck_assert_uint_eq(stats_lat_bucket(stats_lat_bounds_us[i] + 1), i + 1);
    }
}
END_TEST

START_TEST(test_histogram_percentiles)
{
    uint64_t h[STATS_LAT_BUCKETS] = {0};
    ck_assert(stats_hist_percentile(h, 0.5) == 0);

    /* 100 samples in (100, 150] µs: linear inside the bucket */
    unsigned b = stats_lat_bucket(120);
    ck_assert_uint_eq(stats_lat_bounds_us[b], 150);
    h[b] = 100;
    ck_assert_double_eq_tol(stats_hist_percentile(h, 0.5), 125.0, 1e-9);
    ck_assert_double_eq_tol(stats_hist_percentile(h, 0.9), 145.0, 1e-9);
    ck_assert_double_eq_tol(stats_hist_percentile(h, 1.0), 150.0, 1e-9);

    /* 90 fast (<= 1 µs) and 10 slow in (5 s, 7 s]: p50 in the first bucket (from 0), p99 in the slow one */
    memset(h, 0, sizeof(h));
    h[0] = 90;
    h[stats_lat_bucket(6000000)] = 10;
    ck_assert_double_eq_tol(stats_hist_percentile(h, 0.5), 50.0 / 90.0, 1e-9);
    ck_assert_double_eq_tol(stats_hist_percentile(h, 0.9), 1.0, 1e-9);
    ck_assert_double_eq_tol(stats_hist_percentile(h, 0.99), 5000000.0 + 2000000.0 * 0.9, 1e-3);
    /* the overflow bucket reports the last bound */
    memset(h, 0, sizeof(h));
    h[STATS_LAT_BUCKETS - 1] = 3;
    ck_assert_double_eq_tol(stats_hist_percentile(h, 0.5), 60000000.0, 1e-9);
}
END_TEST

/* ---------------------------------------------------------------- SLA rules */

START_TEST(test_sla_band_edges)
{
    /* a 10000-minute period makes each band edge a whole number of minutes */
    ck_assert_int_eq(stats_sla_band(10000, 0), STATS_SLA_100_9999);
    ck_assert_int_eq(stats_sla_band(10000, 1), STATS_SLA_100_9999); /* exactly 99.99% */
    ck_assert_int_eq(stats_sla_band(10000, 2), STATS_SLA_9999_999);
    ck_assert_int_eq(stats_sla_band(10000, 10), STATS_SLA_9999_999); /* exactly 99.9% */
    ck_assert_int_eq(stats_sla_band(10000, 11), STATS_SLA_999_990);
    ck_assert_int_eq(stats_sla_band(10000, 100), STATS_SLA_999_990); /* exactly 99.0% */
    ck_assert_int_eq(stats_sla_band(10000, 101), STATS_SLA_990_980);
    ck_assert_int_eq(stats_sla_band(10000, 200), STATS_SLA_990_980); /* exactly 98.0% */
    ck_assert_int_eq(stats_sla_band(10000, 201), STATS_SLA_BELOW_980);
    ck_assert_int_eq(stats_sla_band(10000, 10000), STATS_SLA_BELOW_980);
    ck_assert_int_eq(stats_sla_band(0, 0), STATS_SLA_100_9999);
    /* a 30-day month: 43200 minutes; 4 degraded minutes = 99.9907% */
    ck_assert_int_eq(stats_sla_band(43200, 4), STATS_SLA_100_9999);
    ck_assert_int_eq(stats_sla_band(43200, 5), STATS_SLA_9999_999); /* 99.98843% */
    ck_assert_str_eq(stats_sla_band_name(STATS_SLA_100_9999), "100%-99.99%");
    ck_assert_str_eq(stats_sla_band_name(STATS_SLA_9999_999), "99.99%-99.9%");
    ck_assert_str_eq(stats_sla_band_name(STATS_SLA_999_990), "99.9%-99.0%");
    ck_assert_str_eq(stats_sla_band_name(STATS_SLA_990_980), "99.0%-98.0%");
    ck_assert_str_eq(stats_sla_band_name(STATS_SLA_BELOW_980), "below 98.0%");
}
END_TEST

START_TEST(test_degraded_minute_rule)
{
    ck_assert_int_eq(stats_minute_degraded(0, 0, 50000), 0);
    ck_assert_int_eq(stats_minute_degraded(100, 5, 50000), 0); /* exactly 5%: not more */
    ck_assert_int_eq(stats_minute_degraded(100, 6, 50000), 1);
    ck_assert_int_eq(stats_minute_degraded(1, 1, 50000), 1);
    ck_assert_int_eq(stats_minute_degraded(1000000, 50001, 50000), 1);
    ck_assert_int_eq(stats_minute_degraded(1000000, 50000, 50000), 0);
    ck_assert_int_eq(stats_minute_degraded(10, 1, 0), 1);        /* share 0: any error we cause */
    ck_assert_int_eq(stats_minute_degraded(10, 10, 1000000), 0); /* share 100%: never */
    ck_assert_int_eq(stats_minute_degraded(UINT64_MAX, UINT64_MAX / 2, 500000), 0);
    ck_assert_int_eq(stats_minute_degraded(UINT64_MAX, UINT64_MAX / 2 + 1, 500000), 1);
}
END_TEST

/* ---------------------------------------------------------------- records */

START_TEST(test_sample_records)
{
    stats_sample_t s = {.start = 1700000040, .duration = 60}, d;
    for (size_t i = 0; i < stats_num_sample_fields; i++)
        *(uint64_t *)((char *)&s + stats_sample_fields[i].offset) = 1000 + i;
    size_t len;
    uint8_t *rec = stats_sample_encode(&s, &len);
    ck_assert_int_eq(stats_sample_decode(rec, len, &d), 0);
    ck_assert_mem_eq(&s, &d, sizeof(s));

    /* untrusted: wrong magic, truncated, length not matching the field count */
    ck_assert_int_eq(stats_sample_decode(rec, len - 1, &d), -1);
    ck_assert_int_eq(stats_sample_decode(rec, 10, &d), -1);
    rec[0] ^= 1;
    ck_assert_int_eq(stats_sample_decode(rec, len, &d), -1);
    rec[0] ^= 1;

    /* a newer record with two more fields: they are ignored */
    uint8_t *bigger = calloc(1, len + 16);
    memcpy(bigger, rec, len);
    bigger[6] = (uint8_t)(stats_num_sample_fields + 2);
    ck_assert_int_eq(stats_sample_decode(bigger, len + 16, &d), 0);
    ck_assert_mem_eq(&s, &d, sizeof(s));
    /* an older record with only three fields: the rest are 0 */
    rec[6] = 3;
    ck_assert_int_eq(stats_sample_decode(rec, 24 + 3 * 8, &d), 0);
    ck_assert_uint_eq(d.requests, 1000);
    ck_assert_uint_eq(d.miss, 1002);
    ck_assert_uint_eq(d.pass, 0);
    ck_assert_uint_eq(d.pass_time_us, 0);
    free(bigger);
    free(rec);

    /* merging adds counters and durations, keeps the start */
    stats_sample_t a = {.start = 60, .duration = 20, .requests = 5, .hits = 1}, b = {.start = 60, .duration = 40, .requests = 7};
    stats_sample_add(&a, &b);
    ck_assert_uint_eq(a.duration, 60);
    ck_assert_uint_eq(a.requests, 12);
    ck_assert_uint_eq(a.hits, 1);
    ck_assert_int_eq(a.start, 60);

    stats_bw_sample_t bw = {.start = 300, .interval = 300, .bytes = 123456789}, bw2;
    rec = stats_bw_encode(&bw, &len);
    ck_assert_int_eq(stats_bw_decode(rec, len, &bw2), 0);
    ck_assert_mem_eq(&bw, &bw2, sizeof(bw));
    rec[16] = rec[17] = rec[18] = rec[19] = rec[20] = rec[21] = rec[22] = rec[23] = 0; /* interval 0 */
    ck_assert_int_eq(stats_bw_decode(rec, len, &bw2), -1);
    free(rec);
}
END_TEST

/* ---------------------------------------------------------------- the sampler in a real store */

START_TEST(test_sampler_history_and_retention)
{
    config_t cfg;
    store_t *s = open_store();
    init_stats(&cfg, s);
    int64_t st = stats_start_time(), open = st - st % 60;

    stats_tick(open + 60, 0); /* closes the first minute */
    stats_tick(open + 65, 1); /* final: the partial second minute */
    stats_tick(open + 70, 1); /* another final for the same minute merges into it */

    stats_sample_t *m = NULL;
    stats_bw_sample_t *b = NULL;
    size_t nm = 0, nb = 0;
    ck_assert_int_eq(stats_history_load(open, open + 120, &m, &nm, &b, &nb), 0);
    ck_assert_uint_eq(nm, 2);
    ck_assert_int_eq(m[0].start, open);
    ck_assert_uint_eq(m[0].duration, (uint64_t)(open + 60 - st));
    ck_assert_int_eq(m[1].start, open + 60);
    ck_assert_uint_eq(m[1].duration, 10); /* 5 s, then 5 more merged */
    free(m);
    free(b);

    /* a garbage record under a stats key is skipped, not fatal */
    ck_assert_int_eq(store_kv_put_sync(s, "stats", "m00000000000000f0", "junk", 4), 0);
    ck_assert_int_eq(stats_history_load(0, open + 120, &m, &nm, NULL, NULL), 0);
    ck_assert_uint_eq(nm, 2);
    free(m);

    /* 32 days later everything older than 31 days goes (garbage included) */
    stats_tick(open + 32 * 86400, 0);
    ck_assert_int_eq(stats_history_load(0, INT64_MAX, &m, &nm, &b, &nb), 0);
    ck_assert_uint_eq(nm, 0);
    ck_assert_uint_eq(nb, 0);
    free(m);
    free(b);
    char *val = NULL;
    ck_assert_int_eq(store_kv_get(s, "stats", "m00000000000000f0", &val, NULL), STORE_ENOTFOUND);

    stats_tick(open + 32 * 86400 + 60, 0);
    ck_assert_int_eq(stats_history_load(0, INT64_MAX, &m, &nm, &b, &nb), 0);
    ck_assert_uint_eq(nm, 1);
    ck_assert_int_eq(m[0].start, open + 32 * 86400);
    ck_assert_uint_eq(m[0].duration, 60);
    free(m);
    free(b);

    stats_stop();
    close_store(&s);
}
END_TEST

/* ---------------------------------------------------------------- history and SLA documents */

START_TEST(test_history_by_hour)
{
    config_t cfg;
    store_t *s = open_store();
    init_stats(&cfg, s);
    int64_t h0 = utc(2024, 3, 10, 14, 0);
    /* 3 minutes in hour 14, 2 in hour 15 */
    int64_t starts[5] = {h0, h0 + 60, h0 + 59 * 60, h0 + 3600, h0 + 3660};
    for (int i = 0; i < 5; i++) {
        stats_sample_t m = {.start = starts[i],
                            .duration = 60,
                            .requests = 10u * (unsigned)(i + 1),
                            .hits = 6,
                            .miss = 2,
                            .bandwidth = 1000,
                            .status_2xx = 9,
                            .synth_5xx = i == 4 ? 5 : 0};
        put_minute(s, &m);
    }
    char detail[200];
    json_t *doc = admin_stats_history_json(h0, h0 + 7200, "hour", detail, sizeof(detail));
    ck_assert_msg(doc != NULL, "%s", detail);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), "success");
    ck_assert(json_is_null(json_object_get(doc, "msg")));
    json_t *meta = json_object_get(doc, "meta");
    ck_assert_str_eq(json_string_value(json_object_get(meta, "by")), "hour");
    ck_assert_str_eq(json_string_value(json_object_get(meta, "from")), "Sun Mar 10 14:00:00 UTC 2024");
    json_t *data = json_object_get(doc, "data");
    ck_assert_uint_eq(json_array_size(data), 2);
    json_t *a = json_array_get(data, 0), *b = json_array_get(data, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(a, "start_time")), h0);
    ck_assert_int_eq(json_integer_value(json_object_get(a, "requests")), 10 + 20 + 30);
    ck_assert_int_eq(json_integer_value(json_object_get(a, "hits")), 18);
    ck_assert_int_eq(json_integer_value(json_object_get(a, "bandwidth")), 3000);
    ck_assert_double_eq_tol(json_real_value(json_object_get(a, "hit_ratio")), 0.75, 1e-12);
    ck_assert_int_eq(json_integer_value(json_object_get(a, "degraded_minutes")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(b, "start_time")), h0 + 3600);
    ck_assert_int_eq(json_integer_value(json_object_get(b, "requests")), 40 + 50);
    ck_assert_int_eq(json_integer_value(json_object_get(b, "degraded_minutes")), 1); /* 5 of 50 > 5% */
    json_decref(doc);

    /* by minute, a window that cuts the first hour */
    doc = admin_stats_history_json(h0 + 60, h0 + 3600, "minute", detail, sizeof(detail));
    ck_assert_ptr_nonnull(doc);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "data")), 2);
    json_decref(doc);

    ck_assert_ptr_null(admin_stats_history_json(h0, h0, "hour", detail, sizeof(detail)));
    ck_assert_ptr_null(admin_stats_history_json(h0, h0 + 60, "week", detail, sizeof(detail)));
    ck_assert_ptr_null(admin_stats_history_json(0, INT64_C(1) << 40, "minute", detail, sizeof(detail)));
    stats_stop();
    close_store(&s);
}
END_TEST

START_TEST(test_sla_document)
{
    config_t cfg;
    store_t *s = open_store();
    init_stats(&cfg, s);
    int64_t feb = utc(2024, 2, 1, 0, 0), mar = utc(2024, 3, 1, 0, 0);
    /* 40 five-minute samples: 38 at 1 MB, 2 spikes at 100 MB: p95 drops both spikes */
    for (int i = 0; i < 40; i++)
        put_bw(s, feb + 300 * i, 300, i == 7 || i == 30 ? 100000000 : 1000000);
    put_bw(s, mar, 300, 999999999); /* next month: not counted */
    /* 5 degraded minutes out of 29 * 1440 = 41760 */
    for (int i = 0; i < 8; i++) {
        stats_sample_t m = {.start = feb + 3600 + 60 * i, .duration = 60, .requests = 100, .synth_5xx = i < 5 ? 50 : 1};
        put_minute(s, &m);
    }
    char detail[200];
    json_t *o = admin_stats_sla_json(2024, 2, utc(2024, 6, 1, 0, 0), detail, sizeof(detail));
    ck_assert_msg(o != NULL, "%s", detail);
    ck_assert_str_eq(json_string_value(json_object_get(o, "month")), "2024-02");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "bandwidth_samples")), 40);
    uint64_t low = 1000000ull * 8 / 300, high = 100000000ull * 8 / 300;
    ck_assert_int_eq(json_integer_value(json_object_get(o, "p95_utilization_bps")), (json_int_t)low);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "max_utilization_bps")), (json_int_t)high);
    double avg = (38.0 * (double)low + 2.0 * (double)high) / 40.0;
    ck_assert_double_eq_tol(json_real_value(json_object_get(o, "average_utilization_bps")), avg, 0.001);
    ck_assert_double_eq_tol(json_real_value(json_object_get(o, "permitted_utilization_bps")), 5 * avg, 0.005);
    ck_assert(json_is_false(json_object_get(o, "utilization_spike")));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "minutes")), 41760);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "degraded_minutes")), 5);
    ck_assert_double_eq_tol(json_real_value(json_object_get(o, "availability_percent")), 100.0 * 41755 / 41760, 0.0001);
    ck_assert_str_eq(json_string_value(json_object_get(o, "sla_band")), "99.99%-99.9%");
    json_decref(o);

    /* a month not begun */
    ck_assert_ptr_null(admin_stats_sla_json(2030, 1, utc(2024, 6, 1, 0, 0), detail, sizeof(detail)));
    /* the current month counts only the minutes so far */
    o = admin_stats_sla_json(2024, 2, feb + 86400, detail, sizeof(detail));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "minutes")), 1440);
    json_decref(o);
    stats_stop();
    close_store(&s);
}
END_TEST

/* GET /stats carries the month's SLA: its summary of the history is read once per change of
 * the history (stats_tick), not on every call */
START_TEST(test_sla_summary_read_once_per_history_change)
{
    config_t cfg;
    store_t *s = open_store();
    char err[256];
    config_defaults(&cfg);
    cfg.threads = 2;
    cfg.stats_retention_days = 36500; /* the sampler step below must not drop 2024 */
    ck_assert_int_eq(stats_init(&cfg, s, NULL, err, sizeof(err)), 0);
    int64_t feb = utc(2024, 2, 1, 0, 0), now = utc(2024, 2, 10, 12, 0);
    for (int i = 0; i < 30; i++) {
        stats_sample_t m = {.start = feb + 60 * i, .duration = 60, .requests = 100, .synth_5xx = i < 3 ? 50 : 0};
        put_minute(s, &m);
    }
    put_bw(s, feb, 300, 1000000);
    uint64_t loads = stats_history_loads();
    json_t *a = admin_stats_current_json(now);
    json_t *b = admin_stats_current_json(now);
    ck_assert_uint_eq(stats_history_loads() - loads, 1);
    ck_assert(json_equal(json_object_get(a, "sla"), json_object_get(b, "sla")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a, "sla"), "degraded_minutes")), 3);
    json_decref(a);
    json_decref(b);
    /* the clock's part is never kept: later in the month, more minutes */
    a = admin_stats_current_json(now + 3600);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a, "sla"), "minutes")), (9 * 1440 + 13 * 60));
    ck_assert_uint_eq(stats_history_loads() - loads, 1);
    json_decref(a);

    /* a change of the history (a sampler step) is seen by the next call */
    stats_sample_t m = {.start = feb + 3600, .duration = 60, .requests = 10, .synth_5xx = 10};
    put_minute(s, &m);
    stats_tick((int64_t)time(NULL) + 120, 0);
    a = admin_stats_current_json(now);
    ck_assert_uint_eq(stats_history_loads() - loads, 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a, "sla"), "degraded_minutes")), 4);
    json_decref(a);
    /* another month evicts it and is itself exact */
    char detail[200];
    a = admin_stats_sla_json(2024, 1, now, detail, sizeof(detail));
    ck_assert_int_eq(json_integer_value(json_object_get(a, "degraded_minutes")), 0);
    json_decref(a);
    stats_stop();
    close_store(&s);
}
END_TEST

/* a read walks from the window's first record: what lies before it, other kinds of keys and a
 * window reaching before 1970 */
START_TEST(test_history_window_reads)
{
    config_t cfg;
    store_t *s = open_store();
    init_stats(&cfg, s);
    int64_t t0 = utc(2024, 5, 1, 0, 0);
    for (int i = 0; i < 20; i++) {
        stats_sample_t m = {.start = t0 + 60 * i, .duration = 60, .requests = (uint64_t)i};
        put_minute(s, &m);
        put_bw(s, t0 + 60 * i, 60, (uint64_t)i);
    }
    ck_assert_int_eq(store_kv_put_sync(s, "stats", "a-not-ours", "x", 1), 0);
    ck_assert_int_eq(store_kv_put_sync(s, "stats", "c-not-ours", "x", 1), 0);
    ck_assert_int_eq(store_kv_put_sync(s, "stats", "z-not-ours", "x", 1), 0);
    stats_sample_t *mins;
    stats_bw_sample_t *bws;
    size_t nm, nb;
    ck_assert_int_eq(stats_history_load(t0 + 300, t0 + 600, &mins, &nm, &bws, &nb), 0);
    ck_assert_uint_eq(nm, 5);
    ck_assert_uint_eq(nb, 5);
    ck_assert_int_eq(mins[0].start, t0 + 300);
    ck_assert_uint_eq(mins[4].requests, 9);
    ck_assert_int_eq(bws[0].start, t0 + 300);
    ck_assert_uint_eq(bws[4].bytes, 9);
    free(mins);
    free(bws);
    ck_assert_int_eq(stats_history_load(-(INT64_C(1) << 40), t0 + 120, &mins, &nm, NULL, NULL), 0);
    ck_assert_uint_eq(nm, 2);
    free(mins);
    ck_assert_int_eq(stats_history_load(t0 + 600, t0 + 300, &mins, &nm, &bws, &nb), 0);
    ck_assert_uint_eq(nm + nb, 0);
    stats_stop();
    close_store(&s);
}
END_TEST

/* an answer is bounded: 3 days of minutes, not a month (44,640 samples, 40 MB of JSON) */
START_TEST(test_history_answer_is_bounded)
{
    config_t cfg;
    store_t *s = open_store();
    init_stats(&cfg, s);
    int64_t now = utc(2024, 5, 20, 0, 0), first = now - (ADMIN_STATS_MAX_BUCKETS + 1) * 60;
    for (int64_t t = first; t < now; t += 60) {
        stats_sample_t m = {.start = t, .duration = 60, .requests = 1};
        put_minute(s, &m);
    }
    char detail[200];
    json_t *doc = admin_stats_history_json(first + 60, now, "minute", detail, sizeof(detail));
    ck_assert_msg(doc != NULL, "%s", detail);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "data")), ADMIN_STATS_MAX_BUCKETS);
    json_decref(doc);
    ck_assert_ptr_null(admin_stats_history_json(first, now, "minute", detail, sizeof(detail)));
    ck_assert_msg(strstr(detail, "narrow it") != NULL, "%s", detail);
    doc = admin_stats_history_json(first, now, "hour", detail, sizeof(detail));
    ck_assert_msg(doc != NULL, "%s", detail);
    ck_assert_uint_eq(json_array_size(json_object_get(doc, "data")), 73); /* 72 h and a minute */
    json_decref(doc);
    stats_stop();
    close_store(&s);
}
END_TEST

/* ---------------------------------------------------------------- time parsing */

START_TEST(test_parse_time)
{
    int64_t now = 1700000000, t;
    ck_assert_int_eq(admin_stats_parse_time("now", now, &t), 0);
    ck_assert_int_eq(t, now);
    ck_assert_int_eq(admin_stats_parse_time("1600000000", now, &t), 0);
    ck_assert_int_eq(t, 1600000000);
    ck_assert_int_eq(admin_stats_parse_time("2024-01-02", now, &t), 0);
    ck_assert_int_eq(t, utc(2024, 1, 2, 0, 0));
    ck_assert_int_eq(admin_stats_parse_time("2024-01-02 03:04", now, &t), 0);
    ck_assert_int_eq(t, utc(2024, 1, 2, 3, 4));
    ck_assert_int_eq(admin_stats_parse_time("2024-01-02T03:04:05Z", now, &t), 0);
    ck_assert_int_eq(t, utc(2024, 1, 2, 3, 4) + 5);
    ck_assert_int_eq(admin_stats_parse_time("2 hours ago", now, &t), 0);
    ck_assert_int_eq(t, now - 7200);
    ck_assert_int_eq(admin_stats_parse_time("1 day ago", now, &t), 0);
    ck_assert_int_eq(t, now - 86400);
    ck_assert_int_eq(admin_stats_parse_time("30 minutes ago", now, &t), 0);
    ck_assert_int_eq(t, now - 1800);
    /* Fastly's (Chronic's) words: today and yesterday from midnight UTC, numbers in words */
    ck_assert_int_eq(admin_stats_parse_time("yesterday", now, &t), 0);
    ck_assert_int_eq(t, now - now % 86400 - 86400);
    ck_assert_int_eq(admin_stats_parse_time("today", now, &t), 0);
    ck_assert_int_eq(t, now - now % 86400);
    ck_assert_int_eq(admin_stats_parse_time("two weeks ago", now, &t), 0);
    ck_assert_int_eq(t, now - 14 * 86400);
    ck_assert_int_eq(admin_stats_parse_time("an hour ago", now, &t), 0);
    ck_assert_int_eq(t, now - 3600);
    const char *bad[] = {"",    "tomorrow",    "2024-13-01",           "2024-01-02 25:00", "2 fortnights ago", "2 hours",
                         "-5",  "2024-01-02x", "99999999999999999999", "1 hour ago!",      "twenty hours ago", "ahour ago",
                         "two", "an"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(admin_stats_parse_time(bad[i], now, &t) == -1, "accepted '%s'", bad[i]);
}
END_TEST

static Suite *stats_history_suite(void)
{
    Suite *s = suite_create("stats_history");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_p95_hand_made);
    tcase_add_test(tc, test_histogram_buckets);
    tcase_add_test(tc, test_histogram_percentiles);
    tcase_add_test(tc, test_sla_band_edges);
    tcase_add_test(tc, test_degraded_minute_rule);
    tcase_add_test(tc, test_sample_records);
    tcase_add_test(tc, test_sampler_history_and_retention);
    tcase_add_test(tc, test_history_by_hour);
    tcase_add_test(tc, test_sla_document);
    tcase_add_test(tc, test_sla_summary_read_once_per_history_change);
    tcase_add_test(tc, test_history_window_reads);
    tcase_add_test(tc, test_history_answer_is_bounded);
    tcase_add_test(tc, test_parse_time);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stats_history_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

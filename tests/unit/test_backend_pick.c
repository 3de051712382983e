/*
 * tests/unit/test_backend_pick.c — the backend module's arithmetic of choosing
 * (server/backend*.c), without a store or a network: the health window's threshold and its
 * edges, smooth weighted round robin (exact shares, spread, eligibility, zero weights) and
 * rendezvous hashing (stable, moving little when the set changes, following the weights).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/backend.h"
#include "server/backend_int.h"
#include "tests/unit/unit_backend.h"

/* ---------------------------------------------------------------- health window */

START_TEST(window_threshold_math)
{
    backend_window_t w;
    /* Varnish/Fastly defaults: window 5, threshold 3, initial 2: sick until one good probe */
    backend_window_init(&w, 5, 3, 2);
    ck_assert_uint_eq(backend_window_successes(&w), 2);
    ck_assert_int_eq(backend_window_healthy(&w), 0);
    ck_assert_int_eq(backend_window_record(&w, 1), 1);
    ck_assert_uint_eq(backend_window_successes(&w), 3);
    /* all good, then failing: healthy until fewer than 3 of the last 5 are good */
    for (int i = 0; i < 5; ++i)
        backend_window_record(&w, 1);
    ck_assert_uint_eq(backend_window_successes(&w), 5);
    ck_assert_int_eq(backend_window_record(&w, 0), 1); /* 4 of 5 */
    ck_assert_int_eq(backend_window_record(&w, 0), 1); /* 3 of 5 */
    ck_assert_int_eq(backend_window_record(&w, 0), 0); /* 2 of 5: window - threshold + 1 = 3 failures */
    ck_assert_int_eq(backend_window_record(&w, 0), 0);
    ck_assert_int_eq(backend_window_record(&w, 0), 0);
    ck_assert_uint_eq(backend_window_successes(&w), 0);
    /* recovery takes `threshold` good probes */
    ck_assert_int_eq(backend_window_record(&w, 1), 0);
    ck_assert_int_eq(backend_window_record(&w, 1), 0);
    ck_assert_int_eq(backend_window_record(&w, 1), 1);
    /* the oldest result leaves the window: alternating results keep a steady count */
    backend_window_init(&w, 4, 2, 0);
    for (int i = 0; i < 20; ++i)
        backend_window_record(&w, i % 2);
    ck_assert_uint_eq(backend_window_successes(&w), 2);
    ck_assert_int_eq(backend_window_healthy(&w), 1);
}
END_TEST

START_TEST(window_edges)
{
    backend_window_t w;
    backend_window_init(&w, 64, 64, 64);
    ck_assert_uint_eq(backend_window_successes(&w), 64);
    ck_assert_int_eq(backend_window_healthy(&w), 1);
    ck_assert_int_eq(backend_window_record(&w, 0), 0);
    ck_assert_uint_eq(backend_window_successes(&w), 63);
    backend_window_init(&w, 1, 1, 1);
    ck_assert_int_eq(backend_window_healthy(&w), 1);
    ck_assert_int_eq(backend_window_record(&w, 0), 0);
    ck_assert_int_eq(backend_window_record(&w, 1), 1);
    /* initial larger than what fits is clipped to the window */
    backend_window_init(&w, 3, 3, 10);
    ck_assert_uint_eq(backend_window_successes(&w), 3);
}
END_TEST

/* ---------------------------------------------------------------- weighted round robin */

START_TEST(wrr_follows_weights_exactly)
{
    uint32_t weights[3] = {100, 200, 300};
    unsigned char eligible[3] = {1, 1, 1};
    int64_t cur[3] = {0};
    unsigned counts[3] = {0};
    for (int i = 0; i < 600; ++i) {
        size_t k = backend_wrr_pick(cur, weights, eligible, 3);
        ck_assert_uint_lt(k, 3);
        counts[k]++;
    }
    ck_assert_uint_eq(counts[0], 100);
    ck_assert_uint_eq(counts[1], 200);
    ck_assert_uint_eq(counts[2], 300);
}
END_TEST

START_TEST(wrr_is_smooth)
{
    /* smooth: with weights 5,1,1 the heavy one never takes more than 5 turns in a row, and the
     * light ones appear in every window of 7 */
    uint32_t weights[3] = {5, 1, 1};
    unsigned char eligible[3] = {1, 1, 1};
    int64_t cur[3] = {0};
    size_t seq[70];
    for (int i = 0; i < 70; ++i)
        seq[i] = backend_wrr_pick(cur, weights, eligible, 3);
    for (int start = 0; start + 7 <= 70; start += 7) {
        unsigned c[3] = {0};
        for (int i = start; i < start + 7; ++i)
            c[seq[i]]++;
        ck_assert_uint_eq(c[0], 5);
        ck_assert_uint_eq(c[1], 1);
        ck_assert_uint_eq(c[2], 1);
    }
    int run = 0, max_run = 0;
    for (int i = 0; i < 70; ++i) {
        run = seq[i] == 0 ? run + 1 : 0;
        max_run = run > max_run ? run : max_run;
    }
    ck_assert_int_le(max_run, 5);
    ck_assert_int_ge(max_run, 2);
}
END_TEST

START_TEST(wrr_eligibility_and_zero_weights)
{
    uint32_t weights[4] = {10, 0, 10, 10};
    unsigned char eligible[4] = {1, 1, 0, 1};
    int64_t cur[4] = {0};
    unsigned counts[4] = {0};
    for (int i = 0; i < 100; ++i)
        counts[backend_wrr_pick(cur, weights, eligible, 4)]++;
    ck_assert_uint_eq(counts[0], 50);
    ck_assert_uint_eq(counts[1], 0); /* weight 0: no traffic while another can take it */
    ck_assert_uint_eq(counts[2], 0); /* not eligible (unhealthy) */
    ck_assert_uint_eq(counts[3], 50);
    /* only zero weights left: they share equally */
    unsigned char only_zero[4] = {0, 1, 0, 0};
    ck_assert_uint_eq(backend_wrr_pick(cur, weights, only_zero, 4), 1);
    uint32_t zeros[2] = {0, 0};
    unsigned char both[2] = {1, 1};
    int64_t c2[2] = {0};
    unsigned zc[2] = {0};
    for (int i = 0; i < 10; ++i)
        zc[backend_wrr_pick(c2, zeros, both, 2)]++;
    ck_assert_uint_eq(zc[0], 5);
    ck_assert_uint_eq(zc[1], 5);
    /* nothing eligible */
    unsigned char none[4] = {0, 0, 0, 0};
    ck_assert_uint_eq(backend_wrr_pick(cur, weights, none, 4), SIZE_MAX);
}
END_TEST

/* ---------------------------------------------------------------- rendezvous hashing */

START_TEST(hash_is_stable_and_moves_little)
{
    enum { N = 4, KEYS = 4000 };
    const char *names[N] = {"a", "b", "c", "d"};
    uint64_t nh[N];
    uint32_t weights[N] = {100, 100, 100, 100};
    unsigned char all[N] = {1, 1, 1, 1}, without_c[N] = {1, 1, 0, 1};
    static size_t before[KEYS];
    unsigned counts[N] = {0};

    for (int i = 0; i < N; ++i)
        nh[i] = backend_name_hash(names[i], strlen(names[i]));
    for (unsigned k = 0; k < KEYS; ++k) {
        uint8_t h[CACHE_HASH_LEN];
        key_hash(k, h);
        before[k] = backend_rendezvous_pick(h, nh, weights, all, N);
        ck_assert_uint_lt(before[k], N);
        ck_assert_uint_eq(backend_rendezvous_pick(h, nh, weights, all, N), before[k]); /* deterministic */
        counts[before[k]]++;
    }
    for (int i = 0; i < N; ++i) /* roughly even: 1000 each, allow +-20% */
        ck_assert_msg(counts[i] > 800 && counts[i] < 1200, "backend %d got %u of %d keys", i, counts[i], KEYS);
    /* one goes away: only its keys move, and they spread over the others */
    unsigned moved = 0, moved_to[N] = {0};
    for (unsigned k = 0; k < KEYS; ++k) {
        uint8_t h[CACHE_HASH_LEN];
        key_hash(k, h);
        size_t after = backend_rendezvous_pick(h, nh, weights, without_c, N);
        ck_assert_uint_ne(after, 2);
        if (before[k] != 2) {
            ck_assert_uint_eq(after, before[k]);
        } else {
            moved++;
            moved_to[after]++;
        }
    }
    ck_assert_uint_eq(moved, counts[2]);
    ck_assert_uint_gt(moved_to[0], moved / 5);
    ck_assert_uint_gt(moved_to[1], moved / 5);
    ck_assert_uint_gt(moved_to[3], moved / 5);
    /* and coming back restores the original mapping */
    for (unsigned k = 0; k < KEYS; ++k) {
        uint8_t h[CACHE_HASH_LEN];
        key_hash(k, h);
        ck_assert_uint_eq(backend_rendezvous_pick(h, nh, weights, all, N), before[k]);
    }
}
END_TEST

START_TEST(hash_follows_weights)
{
    enum { KEYS = 6000 };
    uint64_t nh[2] = {backend_name_hash(H2O_STRLIT("light")), backend_name_hash(H2O_STRLIT("heavy"))};
    uint32_t weights[2] = {100, 200};
    unsigned char all[2] = {1, 1};
    unsigned counts[2] = {0};
    for (unsigned k = 0; k < KEYS; ++k) {
        uint8_t h[CACHE_HASH_LEN];
        key_hash(k, h);
        counts[backend_rendezvous_pick(h, nh, weights, all, 2)]++;
    }
    ck_assert_msg(counts[1] > 3600 && counts[1] < 4400, "weight 2/3 got %u of %d", counts[1], KEYS);
    unsigned char none[2] = {0, 0};
    uint8_t h[CACHE_HASH_LEN] = {0};
    ck_assert_uint_eq(backend_rendezvous_pick(h, nh, weights, none, 2), SIZE_MAX);
}
END_TEST

static Suite *backend_pick_suite(void)
{
    Suite *s = suite_create("backend_pick");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, window_threshold_math);
    tcase_add_test(tc, window_edges);
    tcase_add_test(tc, wrr_follows_weights_exactly);
    tcase_add_test(tc, wrr_is_smooth);
    tcase_add_test(tc, wrr_eligibility_and_zero_weights);
    tcase_add_test(tc, hash_is_stable_and_moves_little);
    tcase_add_test(tc, hash_follows_weights);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(backend_pick_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

/*
 * tests/unit/test_frontend.c — server/frontend.c's rule of who takes new connections
 * (--accept-spread): a worker after the first watches the listeners only while every
 * worker before it is busy. The threads and their listeners are the integration tests'
 * (test_accept_spread.py); this is the rule itself, on made-up loads.
 */
#include "server/frontend.h"

#include <check.h>
#include <stdlib.h>

/* a worker with 10 connections open */
static frontend_load_t load(uint32_t permille, int64_t at_ms)
{
    frontend_load_t l = {permille, at_ms, 10, 0};
    return l;
}

START_TEST(busy_from_its_share_of_a_core)
{
    int64_t now = 1000000;
    /* at 50%: 500 permille and more is busy, less is not */
    ck_assert_int_eq(frontend_load_is_busy(load(499, now), now, 50), 0);
    ck_assert_int_eq(frontend_load_is_busy(load(500, now), now, 50), 1);
    ck_assert_int_eq(frontend_load_is_busy(load(1000, now), now, 50), 1);
    ck_assert_int_eq(frontend_load_is_busy(load(0, now), now, 50), 0);
    /* at 100% only a worker that used a whole core; at 1% almost any work */
    ck_assert_int_eq(frontend_load_is_busy(load(999, now), now, 100), 0);
    ck_assert_int_eq(frontend_load_is_busy(load(1000, now), now, 100), 1);
    ck_assert_int_eq(frontend_load_is_busy(load(9, now), now, 1), 0);
    ck_assert_int_eq(frontend_load_is_busy(load(10, now), now, 1), 1);
    /* at 0%, every worker is busy: all of them watch, always */
    ck_assert_int_eq(frontend_load_is_busy(load(0, now), now, 0), 1);
}
END_TEST

START_TEST(no_load_without_connections_for_20_ms)
{
    /* the CPU of connections that are all gone is no load: a client that closes its connections and opens new
     * ones a moment later (wrk run after wrk run) finds the first worker free */
    int64_t now = 1000000;
    frontend_load_t l = {1000, now, 0, now - 20};
    ck_assert_int_eq(frontend_load_is_busy(l, now, 50), 0);
    /* a shorter gap is one between short connections (a handshake storm): the worker is as busy as its CPU */
    l.idle_since_ms = now - 19;
    ck_assert_int_eq(frontend_load_is_busy(l, now, 50), 1);
    l.cpu_permille = 100;
    ck_assert_int_eq(frontend_load_is_busy(l, now, 50), 0);
    /* with connections open, the CPU decides, however long ago the last idle spell was */
    l.cpu_permille = 1000;
    l.open = 1;
    l.idle_since_ms = now - 60000;
    ck_assert_int_eq(frontend_load_is_busy(l, now, 50), 1);
    /* but stuck is stuck, and 0% is every worker */
    l.open = 0;
    ck_assert_int_eq(frontend_load_is_busy(l, now + 301, 50), 1);
    ck_assert_int_eq(frontend_load_is_busy(l, now, 0), 1);
}
END_TEST

START_TEST(busy_when_stuck_in_one_turn)
{
    /* a worker that closed no window for more than 300 ms is in one long turn (a page fault on a cold read, say):
     * its connections wait anyway, and new ones must not wait for it */
    int64_t at = 5000;
    ck_assert_int_eq(frontend_load_is_busy(load(0, at), at + 100, 50), 0);
    ck_assert_int_eq(frontend_load_is_busy(load(0, at), at + 300, 50), 0);
    ck_assert_int_eq(frontend_load_is_busy(load(0, at), at + 301, 50), 1);
    ck_assert_int_eq(frontend_load_is_busy(load(0, at), at + 60000, 100), 1);
    /* a window closed "after" now (another thread's clock read a moment later) is fresh, not stuck */
    ck_assert_int_eq(frontend_load_is_busy(load(0, at + 5), at, 50), 0);
}
END_TEST

START_TEST(no_workers_before_start)
{
    unsigned n = 99;
    frontend_worker_info_t *wi = frontend_worker_snapshot(&n);
    ck_assert_ptr_nonnull(wi);
    ck_assert_uint_eq(n, 0);
    free(wi);
}
END_TEST

static Suite *frontend_suite(void)
{
    Suite *s = suite_create("frontend");
    TCase *tc = tcase_create("accept_spread");
    tcase_add_test(tc, busy_from_its_share_of_a_core);
    tcase_add_test(tc, no_load_without_connections_for_20_ms);
    tcase_add_test(tc, busy_when_stuck_in_one_turn);
    tcase_add_test(tc, no_workers_before_start);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(frontend_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

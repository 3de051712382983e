/*
 * tests/unit/test_cluster_stall.c — when a node's consumer counts as stuck
 * (cluster/cluster_stall.c): three ticks behind the stream with nothing applied, a longer
 * wait after each set-up that did not help, none while the store is failing, and a wait of
 * CLUSTER_STALL_LEADERLESS_MS, said once, while NATS names the consumer no leader.
 */
#include <check.h>
#include <string.h>
#include "cluster/cluster_int.h"

/* up to n ticks a second apart from *now, behind the stream (last against applied), until one is not NONE */
static int ticks_at(cluster_stall_t *st, int n, int64_t *now, uint64_t last, uint64_t applied)
{
    int r = CLUSTER_STALL_NONE;
    for (int i = 0; i < n && r == CLUSTER_STALL_NONE; i++) {
        *now += 1000;
        r = cluster_stall_tick(st, last, applied, 0, *now);
    }
    return r;
}

static int ticks(cluster_stall_t *st, int n, int64_t *now)
{
    return ticks_at(st, n, now, 10, 4);
}

/* a fresh stall, a second a tick, without a leader: past its third tick, waiting for one */
static void waiting_for_a_leader(cluster_stall_t *st, int64_t *now)
{
    memset(st, 0, sizeof(*st));
    *now = 0;
    cluster_stall_tick(st, 10, 4, 0, *now);
    st->leaderless = 1;
    ck_assert_int_eq(ticks(st, 3, now), CLUSTER_STALL_WAIT_LEADER);
}

START_TEST(three_ticks_with_nothing_applied_are_a_stall)
{
    cluster_stall_t st;
    memset(&st, 0, sizeof(st));
    int64_t now = 0;
    ck_assert_int_eq(cluster_stall_tick(&st, 10, 4, 0, now), CLUSTER_STALL_NONE); /* the first: 4 is news */
    ck_assert_int_eq(ticks(&st, 2, &now), CLUSTER_STALL_NONE);
    ck_assert_int_eq(ticks(&st, 1, &now), CLUSTER_STALL_SETUP);
    /* a set-up that did not help: twice as long before the next, and so on to a minute */
    ck_assert_int_eq(ticks(&st, 5, &now), CLUSTER_STALL_NONE);
    ck_assert_int_eq(ticks(&st, 1, &now), CLUSTER_STALL_SETUP);
    ck_assert_int_eq(ticks(&st, 11, &now), CLUSTER_STALL_NONE);
    ck_assert_int_eq(ticks(&st, 1, &now), CLUSTER_STALL_SETUP);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(ticks(&st, 1000, &now), CLUSTER_STALL_SETUP);
    ck_assert_int_eq(st.limit, 60);
    /* something applied: back to three */
    ck_assert_int_eq(cluster_stall_tick(&st, 10, 5, 0, now += 1000), CLUSTER_STALL_NONE);
    ck_assert_int_eq(st.limit, CLUSTER_STALL_TICKS);
}
END_TEST

START_TEST(level_with_the_stream_or_applying_is_no_stall)
{
    cluster_stall_t st;
    memset(&st, 0, sizeof(st));
    int64_t now = 0;
    for (int i = 0; i < 100; i++) /* level: nothing to deliver */
        ck_assert_int_eq(cluster_stall_tick(&st, 7, 7, 0, now += 1000), CLUSTER_STALL_NONE);
    for (uint64_t a = 8; a < 100; a++) /* behind, but applying every tick */
        ck_assert_int_eq(cluster_stall_tick(&st, 200, a, 0, now += 1000), CLUSTER_STALL_NONE);
    for (int i = 0; i < 100; i++) /* behind because the store fails: not the consumer's fault */
        ck_assert_int_eq(cluster_stall_tick(&st, 200, 99, 1, now += 1000), CLUSTER_STALL_NONE);
}
END_TEST

START_TEST(without_a_leader_it_waits_for_the_election)
{
    cluster_stall_t st;
    memset(&st, 0, sizeof(st));
    int64_t now = 0;
    cluster_stall_tick(&st, 10, 4, 0, now);
    st.leaderless = 1; /* the consumer's info timed out: its ticks come 3 s apart (the info's 2 s wait) */
    now += 3000;
    ck_assert_int_eq(cluster_stall_tick(&st, 10, 4, 0, now), CLUSTER_STALL_NONE);
    now += 3000;
    ck_assert_int_eq(cluster_stall_tick(&st, 10, 4, 0, now), CLUSTER_STALL_NONE);
    int64_t since = now - 3000;
    now += 3000;
    ck_assert_int_eq(cluster_stall_tick(&st, 10, 4, 0, now), CLUSTER_STALL_WAIT_LEADER); /* said once */
    while ((now += 3000) - since < CLUSTER_STALL_LEADERLESS_MS)
        ck_assert_int_eq(cluster_stall_tick(&st, 10, 4, 0, now), CLUSTER_STALL_NONE);
    /* no leader all that while: set up again after all */
    ck_assert_int_eq(cluster_stall_tick(&st, 10, 4, 0, now), CLUSTER_STALL_SETUP);

    /* a leader elected, and it delivers: no stall, and the next wait is said again */
    waiting_for_a_leader(&st, &now);
    st.leaderless = 0;
    ck_assert_int_eq(cluster_stall_tick(&st, 10, 10, 0, now += 1000), CLUSTER_STALL_NONE);
    st.leaderless = 1;
    ck_assert_int_eq(ticks_at(&st, 2, &now, 12, 10), CLUSTER_STALL_NONE);
    ck_assert_int_eq(ticks_at(&st, 1, &now, 12, 10), CLUSTER_STALL_WAIT_LEADER);

    /* a leader elected that still delivers nothing: the ticks of a fresh stall, then set up */
    waiting_for_a_leader(&st, &now);
    st.leaderless = 0;
    ck_assert_int_eq(ticks(&st, CLUSTER_STALL_TICKS - 1, &now), CLUSTER_STALL_NONE);
    ck_assert_int_eq(ticks(&st, 1, &now), CLUSTER_STALL_SETUP);

    /* a leader elected, then gone again past the wait's bound: set up, not waited for again */
    waiting_for_a_leader(&st, &now);
    st.leaderless = 0;
    ck_assert_int_eq(ticks(&st, 1, &now), CLUSTER_STALL_NONE);
    st.leaderless = 1;
    ck_assert_int_eq(ticks(&st, CLUSTER_STALL_TICKS - 2, &now), CLUSTER_STALL_NONE);
    ck_assert_int_eq(ticks(&st, 1, &now), CLUSTER_STALL_WAIT_LEADER);
    now += CLUSTER_STALL_LEADERLESS_MS;
    ck_assert_int_eq(ticks(&st, 1, &now), CLUSTER_STALL_SETUP);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cluster_stall");
    TCase *t = tcase_create("pure");
    tcase_add_test(t, three_ticks_with_nothing_applied_are_a_stall);
    tcase_add_test(t, level_with_the_stream_or_applying_is_no_stall);
    tcase_add_test(t, without_a_leader_it_waits_for_the_election);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

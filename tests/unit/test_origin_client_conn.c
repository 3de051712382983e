/*
 * tests/unit/test_origin_client_conn.c — server/origin_client.c's connections against a
 * scripted origin (tests/unit/unit_origin_client.h): refused and timed-out connects, the
 * first-byte and between-bytes timeouts, keep-alive reuse and Connection: close, a dead
 * pooled connection retried (only for a request that may be), cancels from outside and from
 * inside each callback, and callbacks that stop the exchange: no callback after the end, and
 * the connection closed whenever it cannot be reused. The connection tests run twice: with
 * finished connections handed back to h2o's pool, and kept on the loop (server/origin_idle.c,
 * as in the proxy's workers), which has tests of its own: a kept connection the origin
 * closes, one left idle too long, and those of a pool that goes away.
 */
#include <check.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "tests/unit/unit_origin_client.h"

/* ---------------------------------------------------------------- connections and timeouts */

START_TEST(test_connect_refused)
{
    uint16_t port;
    int fd = listen_loopback(1, &port);
    close(fd); /* nothing listens there any more */
    pool_init_port(port);
    result_t *r = request(GET_REQ, 0);
    ck_assert_ptr_nonnull(r->connect_err);
    ck_assert_ptr_null(strstr(r->connect_err, "timeout"));
    ck_assert_int_eq(r->connect_calls, 1);
    ck_assert_int_eq(r->head_calls, 0);
    free_result(r);
}
END_TEST

START_TEST(test_connect_timeout)
{
    /* a listener that never accepts, with its queue full: further SYNs are dropped */
    uint16_t port;
    int lfd = listen_loopback(0, &port);
    int fillers[8], nfill = 0, queue_full = 0;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    while (nfill < 8 && !queue_full) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        fillers[nfill++] = fd;
        connect(fd, (struct sockaddr *)&sin, sizeof(sin));
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 200) == 0)
            queue_full = 1;
    }
    if (!queue_full) {
        fprintf(stderr, "test_connect_timeout: SKIPPED (loopback never dropped a SYN)\n");
    } else {
        set_timeouts(200, 2000, 2000);
        pool_init_port(port);
        int64_t t0 = now_ms();
        result_t *r = request(GET_REQ, 0);
        ck_assert_ptr_nonnull(r->connect_err);
        ck_assert_str_eq(r->connect_err, "connect timeout");
        ck_assert_int_ge(now_ms() - t0, 150);
        ck_assert_int_lt(now_ms() - t0, 3000);
        free_result(r);
    }
    for (int i = 0; i != nfill; ++i)
        close(fillers[i]);
    close(lfd);
}
END_TEST

START_TEST(test_first_byte_timeout)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    s->ex[0].no_response = 1;
    s->ex[0].after = AFTER_HOLD;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Le", AFTER_HOLD); /* a head that stops half way */
    origin_start();
    set_timeouts(2000, 200, 2000);
    for (int i = 0; i != 2; ++i) {
        int64_t t0 = now_ms();
        result_t *r = request(GET_REQ, 0);
        ck_assert_ptr_nonnull(r->head_err);
        ck_assert_str_eq(r->head_err, "first byte timeout");
        ck_assert_int_ge(now_ms() - t0, 150);
        free_result(r);
        wait_client_closed(i + 1);
    }
}
END_TEST

START_TEST(test_between_bytes_timeout)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    /* slow but steady: every gap is shorter than the timeout, the whole body longer */
    const char *p[] = {"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", "a", "b", "c", "d", "e", "f", NULL};
    memcpy(s->ex[0].pieces, p, sizeof(p));
    s->ex[0].delay_ms = 100;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", AFTER_HOLD);
    origin_start();
    set_timeouts(2000, 2000, 400);
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "abcdef");
    free_result(r);

    /* the connection is pooled: the next one runs on a new connection only because the origin's
     * script for connection 0 ends; make the pool forget it (and the loop, where it is kept) */
    if (E.kept)
        origin_idle_forget_pool(&E.pool);
    h2o_socketpool_dispose(&E.pool);
    pool_init_port(E.origin.port);
    r = request(GET_REQ, 0);
    ck_assert_ptr_null(r->head_err);
    ck_assert_ptr_nonnull(r->body_err);
    ck_assert_str_eq(r->body_err, "between bytes timeout");
    ck_assert_str_eq(r->body, "hello");
    free_result(r);
}
END_TEST

START_TEST(test_keepalive_reuse_and_close)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 3;
    s->n = 3;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none";
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo";
    s->ex[2].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthree";
    s = &E.origin.scripts[1];
    s->n = 2;
    s->ex[0].pieces[0] = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nfour";
    s->ex[1].pieces[0] = "HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nfive";
    script1(2, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nsix", AFTER_KEEP);
    origin_start();
    static const char *const bodies[] = {"one", "two", "three", "four", "five", "six"};
    static const int accepts[] = {1, 1, 1, 2, 2, 3};
    for (int i = 0; i != 6; ++i) {
        result_t *r = request(GET_REQ, 0);
        assert_ok(r, 200, bodies[i]);
        free_result(r);
        ck_assert_int_eq(atomic_load(&E.origin.accepts), accepts[i]);
    }
    ck_assert_int_eq(atomic_load(&E.origin.requests), 6);
}
END_TEST

static void dead_pooled_connection(enum after how, const char *second_request, int expect_retry)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 2;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst";
    /* the origin drops the idle connection just as the next request arrives on it */
    s->ex[1].no_response = 1;
    s->ex[1].after = how;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond", AFTER_KEEP);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "first");
    free_result(r);
    r = request(second_request, 0);
    ck_assert_int_eq(r->connect_calls, 1);
    if (expect_retry) {
        assert_ok(r, 200, "second");
        ck_assert_int_eq(r->head_calls, 1);
        ck_assert_int_eq(atomic_load(&E.origin.accepts), 2);
        ck_assert_int_eq(atomic_load(&E.origin.requests), 3);
    } else {
        ck_assert_ptr_nonnull(r->head_err);
        ck_assert_ptr_null(strstr(r->head_err, "timeout"));
        ck_assert_int_eq(atomic_load(&E.origin.accepts), 1);
    }
    free_result(r);
}

START_TEST(test_dead_pooled_connection_closed_retried)
{
    dead_pooled_connection(AFTER_CLOSE, GET_REQ, 1);
}
END_TEST

START_TEST(test_dead_pooled_connection_reset_retried)
{
    dead_pooled_connection(AFTER_RST, GET_REQ, 1);
}
END_TEST

START_TEST(test_dead_pooled_connection_post_not_retried)
{
    dead_pooled_connection(AFTER_CLOSE, "POST /form HTTP/1.1\r\nHost: origin\r\nContent-Length: 0\r\n\r\n", 0);
}
END_TEST

START_TEST(test_fresh_connection_closed_not_retried)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    s->ex[0].no_response = 1;
    s->ex[0].after = AFTER_CLOSE;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", AFTER_KEEP);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    ck_assert_ptr_nonnull(r->head_err);
    ck_assert_str_eq(r->head_err, "connection closed before the response");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 1);
}
END_TEST

/* ---------------------------------------------------------------- cancel and early stops */

START_TEST(test_cancel_mid_body)
{
    static char big[65536];
    memset(big, 'z', sizeof(big));
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
    s->ex[0].pieces[1] = big;
    s->ex[0].lens[1] = sizeof(big);
    s->ex[0].after = AFTER_HOLD;
    origin_start();
    result_t *r = new_result(GET_REQ);
    r->cancel_after = 1;
    start(r);
    wait_done(r);
    ck_assert_ptr_null(r->body_err);
    ck_assert_int_ge(r->body_len, 1);
    run_loop_ms(100);
    ck_assert_int_eq(r->calls_after_end, 0);
    wait_client_closed(1);
    free_result(r);
}
END_TEST

START_TEST(test_cancel_while_connecting)
{
    /* a listener nobody accepts on: the connection is still pending when it is cancelled */
    uint16_t port;
    int lfd = listen_loopback(16, &port);
    pool_init_port(port);
    result_t *r = new_result(GET_REQ);
    start(r);
    origin_client_cancel(r->client);
    run_loop_ms(100);
    ck_assert_int_eq(r->connect_calls + r->head_calls + r->body_calls, 0);
    free_result(r);
    close(lfd);
}
END_TEST

START_TEST(test_cancel_from_outside_and_in_callbacks)
{
    for (int i = 0; i != 3; ++i) {
        conn_script_t *s = &E.origin.scripts[i];
        s->n = 1;
        s->ex[0].no_response = i == 0;
        s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello";
        s->ex[0].after = AFTER_HOLD;
    }
    E.origin.nscripts = 3;
    origin_start();

    /* while waiting for the head (connection 0 never answers): no callback after the cancel */
    result_t *r = new_result(GET_REQ);
    start(r);
    int64_t deadline = now_ms() + 3000;
    while (atomic_load(&E.origin.requests) < 1 && now_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    ck_assert_int_eq(r->connect_calls, 1);
    origin_client_cancel(r->client);
    run_loop_ms(100);
    ck_assert_int_eq(r->head_calls + r->body_calls, 0);
    free_result(r);
    wait_client_closed(1);

    /* from inside the connect callback: the request is never sent */
    r = new_result(GET_REQ);
    r->cancel_in_connect = 1;
    start(r);
    wait_done(r);
    ck_assert_int_eq(r->head_calls, 0);
    free_result(r);
    wait_client_closed(2);
    ck_assert_int_eq(atomic_load(&E.origin.requests), 1);

    /* from inside the head callback: no body callback */
    r = new_result(GET_REQ);
    r->cancel_in_head = 1;
    start(r);
    wait_done(r);
    ck_assert_int_eq(r->head_calls, 1);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->body_calls, 0);
    free_result(r);
    wait_client_closed(3);
}
END_TEST

START_TEST(test_callbacks_stopping)
{
    static char big[65536];
    memset(big, 'q', sizeof(big));
    script1(0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", AFTER_HOLD);
    conn_script_t *s = &E.origin.scripts[1];
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
    s->ex[0].pieces[1] = big;
    s->ex[0].lens[1] = sizeof(big);
    s->ex[0].after = AFTER_HOLD;
    E.origin.nscripts = 2;
    origin_start();

    /* the connect callback returns NULL: the request is never sent, the connection closed */
    result_t *r = new_result(GET_REQ);
    r->connect_returns_null = 1;
    start(r);
    wait_done(r);
    ck_assert_int_eq(r->head_calls, 0);
    free_result(r);
    wait_client_closed(1);
    ck_assert_int_eq(atomic_load(&E.origin.requests), 0);

    /* the body callback returns non-zero: nothing more, the connection closed */
    r = new_result(GET_REQ);
    r->stop_body = 1;
    start(r);
    wait_done(r);
    ck_assert_int_eq(r->body_calls, 1);
    ck_assert_ptr_null(r->body_err);
    free_result(r);
    wait_client_closed(2);
}
END_TEST

/* ---------------------------------------------------------------- connections kept on the loop */

/* runs the loop until this thread keeps `n` connections (or 3 s) */
static void wait_kept(size_t n)
{
    int64_t deadline = now_ms() + 3000;
    while (origin_idle_count() != n && now_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    ck_assert_uint_eq(origin_idle_count(), n);
}

/* the first exchange, answered "one": its connection is kept */
static void first_exchange_kept(void)
{
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "one");
    free_result(r);
    ck_assert_uint_eq(origin_idle_count(), 1);
}

static void kept_connection_dropped(enum after how)
{
    origin_idle_thread_dispose(); /* an idle time far past wait_kept's bound: only what the origin did can close it */
    origin_idle_thread_init(E.loop, 60000);
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none";
    s->ex[0].after = how;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", AFTER_KEEP);
    origin_start();
    first_exchange_kept();
    atomic_store(&E.origin.close_now, 1);
    wait_kept(0); /* seen while idle: the socket is gone before any request needs it */
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "two");
    ck_assert_int_eq(r->connect_calls, 1);
    ck_assert_int_eq(r->head_calls, 1);
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 2);
    ck_assert_int_eq(atomic_load(&E.origin.requests), 2); /* nothing was sent on the dead one */
}

START_TEST(test_kept_connection_closed_by_origin)
{
    kept_connection_dropped(AFTER_CLOSE_WHEN_TOLD);
}
END_TEST

/* a hostile or broken origin writes on an idle connection: nothing of it is read as a response */
START_TEST(test_kept_connection_stray_bytes)
{
    kept_connection_dropped(AFTER_STRAY_WHEN_TOLD);
}
END_TEST

/*
 * The response to a request on a kept connection is in before the loop runs again: the
 * socket, still reading, takes it in before the loop reports the request written (h2o runs
 * a socket's read before its write notice). It must be answered, not left waiting.
 */
START_TEST(test_kept_connection_response_before_write_notice)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 2;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none";
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo";
    set_timeouts(2000, 1000, 1000);
    origin_start();
    first_exchange_kept();
    result_t *r = new_result(GET_REQ);
    start(r); /* the request is written at once; its notice waits for the loop */
    int64_t deadline = now_ms() + 3000;
    while (atomic_load(&E.origin.responses) < 2 && now_ms() < deadline)
        sleep_ms(1);
    ck_assert_int_eq(atomic_load(&E.origin.responses), 2);
    wait_done(r);
    assert_ok(r, 200, "two");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 1);
}
END_TEST

START_TEST(test_kept_connection_times_out)
{
    origin_idle_thread_dispose();
    origin_idle_thread_init(E.loop, 50);
    script1(0, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", AFTER_KEEP);
    E.origin.nscripts = 1;
    origin_start();
    first_exchange_kept();
    wait_kept(0);
    wait_client_closed(1);
}
END_TEST

START_TEST(test_kept_connections_go_with_their_pool)
{
    script1(0, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", AFTER_KEEP);
    E.origin.nscripts = 1;
    origin_start();
    first_exchange_kept();
    origin_idle_forget_pool(&E.pool);
    ck_assert_uint_eq(origin_idle_count(), 0);
    wait_client_closed(1);
    /* the pool counts it as given back: disposing the pool now must not trip over it */
    h2o_socketpool_dispose(&E.pool);
    E.pool_ready = 0;
}
END_TEST

static Suite *origin_client_conn_suite(void)
{
    Suite *s = suite_create("origin_client_conn");
    TCase *tc = tcase_create("connections");
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_connect_refused);
    tcase_add_test(tc, test_connect_timeout);
    tcase_add_test(tc, test_first_byte_timeout);
    tcase_add_test(tc, test_between_bytes_timeout);
    tcase_add_test(tc, test_keepalive_reuse_and_close);
    tcase_add_test(tc, test_dead_pooled_connection_closed_retried);
    tcase_add_test(tc, test_dead_pooled_connection_reset_retried);
    tcase_add_test(tc, test_dead_pooled_connection_post_not_retried);
    tcase_add_test(tc, test_fresh_connection_closed_not_retried);
    tcase_add_test(tc, test_cancel_mid_body);
    tcase_add_test(tc, test_cancel_while_connecting);
    tcase_add_test(tc, test_cancel_from_outside_and_in_callbacks);
    tcase_add_test(tc, test_callbacks_stopping);
    suite_add_tcase(s, tc);
    TCase *kept = tcase_create("kept");
    tcase_add_checked_fixture(kept, env_setup_kept, env_teardown);
    tcase_set_timeout(kept, 30);
    tcase_add_test(kept, test_connect_refused);
    tcase_add_test(kept, test_first_byte_timeout);
    tcase_add_test(kept, test_between_bytes_timeout);
    tcase_add_test(kept, test_keepalive_reuse_and_close);
    tcase_add_test(kept, test_dead_pooled_connection_closed_retried);
    tcase_add_test(kept, test_dead_pooled_connection_reset_retried);
    tcase_add_test(kept, test_dead_pooled_connection_post_not_retried);
    tcase_add_test(kept, test_fresh_connection_closed_not_retried);
    tcase_add_test(kept, test_cancel_mid_body);
    tcase_add_test(kept, test_cancel_while_connecting);
    tcase_add_test(kept, test_cancel_from_outside_and_in_callbacks);
    tcase_add_test(kept, test_callbacks_stopping);
    tcase_add_test(kept, test_kept_connection_closed_by_origin);
    tcase_add_test(kept, test_kept_connection_stray_bytes);
    tcase_add_test(kept, test_kept_connection_response_before_write_notice);
    tcase_add_test(kept, test_kept_connection_times_out);
    tcase_add_test(kept, test_kept_connections_go_with_their_pool);
    suite_add_tcase(s, kept);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(origin_client_conn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

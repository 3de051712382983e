/*
 * tests/unit/test_origin_client_framing.c — server/origin_client.c reading responses from a
 * scripted origin (tests/unit/unit_origin_client.h): bodies by Content-Length, chunked (cut
 * at awkward places) and until close, HEAD, 304 and 204, 1xx skipped, invalid or conflicting
 * Content-Lengths, unknown Transfer-Encodings, truncated bodies, bad chunked encoding, bytes
 * after a response, garbage and oversized heads: what is accepted, what error each refusal
 * names, and that a connection with doubtful framing is never reused.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "tests/unit/unit_origin_client.h"

/* ---------------------------------------------------------------- framing */

START_TEST(test_content_length_body)
{
    script1(0, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Custom:  v v  \r\n\r\nhello", AFTER_KEEP);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "hello");
    ck_assert_int_eq(r->minor, 1);
    ck_assert_str_eq(r->msg, "OK");
    ck_assert_int_eq(r->content_type_is_token, 1);
    ck_assert_ptr_nonnull(strstr(r->headers, "content-type: text/plain\n"));
    ck_assert_ptr_nonnull(strstr(r->headers, "x-custom: v v\n"));
    ck_assert_uint_eq(r->content_length, 5);
    ck_assert_int_eq(r->connect_calls, 1);
    ck_assert_int_eq(r->head_calls, 1);
    ck_assert_str_eq(E.origin.last_request, GET_REQ);
    free_result(r);
}
END_TEST

START_TEST(test_chunked_awkward_splits)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 2;
    /* pieces cut inside the header name, the size line, the data, the CRLFs and the trailer */
    const char *p[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chu", "nked\r\n\r\n5", "\r\nhel", "lo\r", "\n6;ext=1\r\n world\r\n1",
        "0\r\n0123456789abcdef\r\n0\r\nTrai",        "ler: x\r\n\r",  "\n",      NULL};
    memcpy(s->ex[0].pieces, p, sizeof(p));
    s->ex[0].delay_ms = 5;
    s->ex[0].after = AFTER_KEEP;
    /* the same connection again, one byte at a time */
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\ntransfer-encoding: CHUNKED\r\n\r\n3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
    s->ex[1].split = 1;
    s->ex[1].delay_ms = 1;
    s->ex[1].after = AFTER_KEEP;
    origin_start();

    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "hello world0123456789abcdef");
    ck_assert_uint_eq(r->content_length, SIZE_MAX);
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "abc0123456789");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 1);
}
END_TEST

START_TEST(test_body_left_unconsumed_accumulates)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 1;
    const char *p[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                       "4\r\naaaa\r\n",
                       "4\r\nbbbb\r\n",
                       "4\r\ncccc\r\n",
                       "0\r\n\r\n",
                       NULL};
    memcpy(s->ex[0].pieces, p, sizeof(p));
    s->ex[0].delay_ms = 10;
    origin_start();
    result_t *r = new_result(GET_REQ);
    r->keep_unconsumed = 1;
    start(r);
    wait_done(r);
    assert_ok(r, 200, "aaaabbbbcccc");
    ck_assert_uint_eq(r->max_buffered, 12);
    ck_assert_int_ge(r->body_calls, 2);
    free_result(r);
}
END_TEST

START_TEST(test_until_close_body)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nabc";
    s->ex[0].pieces[1] = "def";
    s->ex[0].delay_ms = 10;
    s->ex[0].after = AFTER_CLOSE;
    script1(1, "HTTP/1.0 200 OK\r\n\r\nold style", AFTER_CLOSE);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "abcdef");
    ck_assert_uint_eq(r->content_length, SIZE_MAX);
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "old style");
    ck_assert_int_eq(r->minor, 0);
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 2);
}
END_TEST

START_TEST(test_head_request_has_no_body)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 2;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    origin_start();
    result_t *r = request("HEAD / HTTP/1.1\r\nHost: origin\r\n\r\n", 1);
    ck_assert_ptr_null(r->head_err);
    ck_assert_int_eq(r->head_eos, 1);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->body_calls, 0);
    ck_assert_ptr_nonnull(strstr(r->headers, "content-length: 100\n"));
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "abc");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 1); /* reused */
}
END_TEST

START_TEST(test_304_204_and_empty_length)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 3;
    s->ex[0].pieces[0] = "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n";
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    s->ex[2].pieces[0] = "HTTP/1.1 204 No Content\r\n\r\nJUNK"; /* bytes after a bodyless response */
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", AFTER_KEEP);
    origin_start();
    static const int statuses[] = {304, 200, 204};
    for (int i = 0; i != 3; ++i) {
        result_t *r = request(GET_REQ, 0);
        ck_assert_ptr_null(r->head_err);
        ck_assert_int_eq(r->head_eos, 1);
        ck_assert_int_eq(r->status, statuses[i]);
        ck_assert_int_eq(r->body_calls, 0);
        free_result(r);
    }
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 1);
    result_t *r = request(GET_REQ, 0); /* the 204's connection had junk: a new one */
    assert_ok(r, 200, "ok");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 2);
}
END_TEST

START_TEST(test_1xx_skipped)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 100 Continue\r\n\r\n";
    s->ex[0].pieces[1] = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    s->ex[0].delay_ms = 10;
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "ok");
    ck_assert_int_eq(r->head_calls, 1);
    ck_assert_ptr_null(strstr(r->headers, "link"));
    free_result(r);
}
END_TEST

/* each response on its own connection; returns the head error (or NULL) */
static void expect_head_errors(const char *const *responses, size_t n, const char *expected)
{
    for (size_t i = 0; i != n; ++i)
        script1(i, responses[i], AFTER_HOLD);
    origin_start();
    for (size_t i = 0; i != n; ++i) {
        result_t *r = request(GET_REQ, 0);
        ck_assert_msg(r->head_err != NULL && strcmp(r->head_err, expected) == 0, "response %zu: got %s, want %s", i,
                      r->head_err ? r->head_err : "(none)", expected);
        ck_assert_int_eq(r->body_calls, 0);
        free_result(r);
        wait_client_closed((int)i + 1); /* never pooled */
    }
}

START_TEST(test_invalid_content_length)
{
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\nhello",
    };
    expect_head_errors(responses, sizeof(responses) / sizeof(responses[0]), "invalid content-length");
}
END_TEST

START_TEST(test_conflicting_content_lengths)
{
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
    };
    expect_head_errors(responses, 2, "invalid content-length");
}
END_TEST

START_TEST(test_identical_content_lengths_accepted)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 2;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello";
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 003\r\n\r\nabc";
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "hello");
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "abc");
    ck_assert_uint_eq(r->content_length, 3);
    free_result(r);
}
END_TEST

START_TEST(test_unknown_transfer_encoding)
{
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxxxx",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\nContent-Length: 2\r\n\r\nok",
    };
    expect_head_errors(responses, sizeof(responses) / sizeof(responses[0]), "unsupported transfer-encoding");
}
END_TEST

START_TEST(test_te_wins_over_content_length)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    s->ex[0].after = AFTER_KEEP;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", AFTER_KEEP);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "hello");
    ck_assert_uint_eq(r->content_length, SIZE_MAX);
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "ok");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 2); /* the doubly framed connection was not reused */
}
END_TEST

START_TEST(test_truncated_bodies)
{
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", /* no last chunk */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    };
    static const char *const bodies[] = {"hello", "hello", "hel"};
    for (size_t i = 0; i != 3; ++i)
        script1(i, responses[i], AFTER_CLOSE);
    origin_start();
    for (size_t i = 0; i != 3; ++i) {
        result_t *r = request(GET_REQ, 0);
        ck_assert_ptr_null(r->head_err);
        ck_assert_int_eq(r->status, 200);
        ck_assert_msg(r->body_err != NULL && strcmp(r->body_err, "truncated body") == 0, "%zu: %s", i,
                      r->body_err ? r->body_err : "(none)");
        ck_assert_str_eq(r->body, bodies[i]);
        free_result(r);
    }
}
END_TEST

START_TEST(test_invalid_chunked_encoding)
{
    script1(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", AFTER_HOLD);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    ck_assert_ptr_null(r->head_err);
    ck_assert_ptr_nonnull(r->body_err);
    ck_assert_str_eq(r->body_err, "invalid chunked encoding");
    free_result(r);
    wait_client_closed(1);
}
END_TEST

START_TEST(test_extra_bytes_dropped_not_reused)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 3;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
    s->ex[0].after = AFTER_KEEP;
    script1(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nGARBAGE", AFTER_KEEP);
    script1(2, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes", AFTER_KEEP);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "hello");
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "ok");
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "yes");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 3);
}
END_TEST

START_TEST(test_garbage_heads)
{
    static const char *const responses[] = {
        "FOO BAR\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 999 Nine\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "\x01\x02\x03\xff\r\n\r\n",
        "\r\n\r\n",
    };
    expect_head_errors(responses, sizeof(responses) / sizeof(responses[0]), "invalid response head");
}
END_TEST

START_TEST(test_obs_fold_and_101_refused)
{
    script1(0, "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 0\r\n\r\n", AFTER_HOLD);
    script1(1, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", AFTER_HOLD);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    ck_assert_str_eq(r->head_err, "invalid response head (obsolete line folding)");
    free_result(r);
    r = request(GET_REQ, 0);
    ck_assert_str_eq(r->head_err, "unexpected 101 response");
    free_result(r);
}
END_TEST

START_TEST(test_status_line_without_reason)
{
    script1(0, "HTTP/1.1 200\r\nContent-Length: 2\n\nok", AFTER_KEEP); /* bare LFs too */
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "ok");
    ck_assert_str_eq(r->msg, "");
    free_result(r);
}
END_TEST

START_TEST(test_huge_heads)
{
    static char big_value[70000 + 200], many[101 * 16 + 100], exactly100[100 * 16 + 100], endless[70000];
    int n = snprintf(big_value, sizeof(big_value), "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(big_value + n, 'a', 70000);
    strcpy(big_value + n + 70000, "\r\nContent-Length: 0\r\n\r\n");
    n = snprintf(many, sizeof(many), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i != 100; ++i)
        n += snprintf(many + n, sizeof(many) - (size_t)n, "X-H%03d: v\r\n", i);
    snprintf(many + n, sizeof(many) - (size_t)n, "Content-Length: 0\r\n\r\n"); /* the 101st */
    n = snprintf(exactly100, sizeof(exactly100), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i != 99; ++i)
        n += snprintf(exactly100 + n, sizeof(exactly100) - (size_t)n, "X-H%03d: v\r\n", i);
    snprintf(exactly100 + n, sizeof(exactly100) - (size_t)n, "Content-Length: 0\r\n\r\n");
    memset(endless, 'x', sizeof(endless) - 1);
    memcpy(endless, "HTTP/1.1 200 OK\r\nX: ", 20);

    script1(0, big_value, AFTER_HOLD);
    script1(1, many, AFTER_HOLD);
    script1(2, endless, AFTER_HOLD);
    script1(3, exactly100, AFTER_KEEP);
    origin_start();
    for (int i = 0; i != 3; ++i) {
        result_t *r = request(GET_REQ, 0);
        ck_assert_msg(r->head_err != NULL && strcmp(r->head_err, "response head too large") == 0, "%d: %s", i,
                      r->head_err ? r->head_err : "(none)");
        free_result(r);
    }
    result_t *r = request(GET_REQ, 0);
    ck_assert_ptr_null(r->head_err);
    ck_assert_int_eq(r->head_eos, 1);
    ck_assert_uint_eq(r->num_headers, 100);
    free_result(r);
}
END_TEST

static Suite *origin_client_framing_suite(void)
{
    Suite *s = suite_create("origin_client_framing");
    TCase *tc = tcase_create("framing");
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_content_length_body);
    tcase_add_test(tc, test_chunked_awkward_splits);
    tcase_add_test(tc, test_body_left_unconsumed_accumulates);
    tcase_add_test(tc, test_until_close_body);
    tcase_add_test(tc, test_head_request_has_no_body);
    tcase_add_test(tc, test_304_204_and_empty_length);
    tcase_add_test(tc, test_1xx_skipped);
    tcase_add_test(tc, test_invalid_content_length);
    tcase_add_test(tc, test_conflicting_content_lengths);
    tcase_add_test(tc, test_identical_content_lengths_accepted);
    tcase_add_test(tc, test_unknown_transfer_encoding);
    tcase_add_test(tc, test_te_wins_over_content_length);
    tcase_add_test(tc, test_truncated_bodies);
    tcase_add_test(tc, test_invalid_chunked_encoding);
    tcase_add_test(tc, test_extra_bytes_dropped_not_reused);
    tcase_add_test(tc, test_garbage_heads);
    tcase_add_test(tc, test_obs_fold_and_101_refused);
    tcase_add_test(tc, test_status_line_without_reason);
    tcase_add_test(tc, test_huge_heads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(origin_client_framing_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

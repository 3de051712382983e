/*
 * tests/unit/test_http_fields.c — combining repeated field lines (RFC 9110 5.3) and the
 * per-hop fields: the fixed list and those a Connection line names (RFC 9110 7.6.1).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include "server/http_fields.h"

static h2o_mem_pool_t pool;
static h2o_headers_t headers;

static void setup(void)
{
    h2o_mem_init_pool(&pool);
    memset(&headers, 0, sizeof(headers));
}

static void teardown(void)
{
    h2o_mem_clear_pool(&pool);
}

static void add(const char *name, const char *value)
{
    h2o_add_header_by_str(&pool, &headers, name, strlen(name), 1, NULL, value, strlen(value));
}

static void expect(size_t i, const char *name, const char *value)
{
    ck_assert_uint_lt(i, headers.size);
    const h2o_header_t *h = &headers.entries[i];
    ck_assert_msg(h->name->len == strlen(name) && memcmp(h->name->base, name, h->name->len) == 0,
                  "line %zu: name %.*s, want %s", i, (int)h->name->len, h->name->base, name);
    ck_assert_msg(h->value.len == strlen(value) && memcmp(h->value.base, value, h->value.len) == 0,
                  "line %zu: value \"%.*s\", want \"%s\"", i, (int)h->value.len, h->value.base, value);
}

START_TEST(test_combine_keeps_order_of_first_lines)
{
    add("accept-encoding", "gzip");
    add("x-lang", "en");
    add("accept-encoding", "br");
    add("cookie", "a=1");
    add("x-one", "1");
    add("cookie", "b=2");
    add("accept-encoding", "");
    add("x-lang", "fr");
    http_fields_combine(&pool, &headers);
    ck_assert_uint_eq(headers.size, 4);
    expect(0, "accept-encoding", "gzip, br, ");
    expect(1, "x-lang", "en, fr");
    expect(2, "cookie", "a=1; b=2");
    expect(3, "x-one", "1");
    /* a second pass changes nothing */
    http_fields_combine(&pool, &headers);
    ck_assert_uint_eq(headers.size, 4);
    expect(0, "accept-encoding", "gzip, br, ");
}
END_TEST

START_TEST(test_combine_nothing_to_do)
{
    http_fields_combine(&pool, &headers);
    ck_assert_uint_eq(headers.size, 0);
    add("a", "1");
    add("b", "2");
    http_fields_combine(&pool, &headers);
    ck_assert_uint_eq(headers.size, 2);
    expect(0, "a", "1");
    expect(1, "b", "2");
}
END_TEST

START_TEST(test_combine_many_lines)
{
    /* HTTP/2 can bring thousands of lines cheaply: the combination must not be quadratic in
     * anything but memory it needs anyway */
    for (int i = 0; i < 5000; i++)
        add(i % 2 ? "x-a" : "x-b", "v");
    http_fields_combine(&pool, &headers);
    ck_assert_uint_eq(headers.size, 2);
    ck_assert_uint_eq(headers.entries[0].value.len, 2500 + 2 * 2499);
}
END_TEST

START_TEST(test_connection_names)
{
    const char *v = " keep-alive ,X-Secret,, \tx-other\t";
    ck_assert(http_fields_connection_names(v, strlen(v), H2O_STRLIT("x-secret")));
    ck_assert(http_fields_connection_names(v, strlen(v), H2O_STRLIT("x-other")));
    ck_assert(http_fields_connection_names(v, strlen(v), H2O_STRLIT("keep-alive")));
    ck_assert(!http_fields_connection_names(v, strlen(v), H2O_STRLIT("x-secre")));
    ck_assert(!http_fields_connection_names(v, strlen(v), H2O_STRLIT("secret")));
    ck_assert(!http_fields_connection_names("", 0, H2O_STRLIT("x")));
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection",   "transfer-encoding",  "te",
                                      "trailer",    "upgrade",    "proxy-authenticate", "proxy-authorization"};
    for (size_t i = 0; i != sizeof(hop) / sizeof(hop[0]); ++i) {
        ck_assert_msg(http_fields_is_hop_by_hop(hop[i], strlen(hop[i])), "%s", hop[i]);
        ck_assert_msg(!http_fields_is_hop_by_hop(hop[i], strlen(hop[i]) - 1), "%s cut short", hop[i]);
    }
    ck_assert(http_fields_is_hop_by_hop(H2O_STRLIT("Keep-Alive")));
    ck_assert(!http_fields_is_hop_by_hop(H2O_STRLIT("cookie")));
    ck_assert(!http_fields_is_hop_by_hop(H2O_STRLIT("tf")));
    ck_assert(!http_fields_is_hop_by_hop(H2O_STRLIT("x-upgrade")));
}
END_TEST

START_TEST(test_all_named)
{
    ck_assert(http_fields_all_named(&headers));
    add("x-a", "1");
    ck_assert(http_fields_all_named(&headers));
    h2o_add_header_by_str(&pool, &headers, "", 0, 0, NULL, H2O_STRLIT("folded"));
    ck_assert(!http_fields_all_named(&headers));
}
END_TEST

START_TEST(test_remove_connection_listed)
{
    add("connection", "close, X-Secret");
    add("x-secret", "s");
    add("x-kept", "k");
    add("connection", "x-other");
    add("x-other", "o");
    add("X-Secret", "again");
    http_fields_remove_connection_listed(&headers);
    ck_assert_uint_eq(headers.size, 3);
    expect(0, "connection", "close, X-Secret");
    expect(1, "x-kept", "k");
    expect(2, "connection", "x-other");
    /* no Connection line: nothing goes */
    teardown();
    setup();
    add("x-secret", "s");
    http_fields_remove_connection_listed(&headers);
    ck_assert_uint_eq(headers.size, 1);
}
END_TEST

#define HEAD_HOSTS(lit) http_fields_head_count(lit, sizeof(lit) - 1, "host", 4)

START_TEST(test_head_count)
{
    ck_assert_uint_eq(HEAD_HOSTS("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 1);
    ck_assert_uint_eq(HEAD_HOSTS("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nHOST: b\r\n\r\n"), 2); /* any case */
    ck_assert_uint_eq(HEAD_HOSTS("GET / HTTP/1.1\r\nhost:a\r\nhost:a\r\nhost:a\r\n\r\n"), 3);
    ck_assert_uint_eq(HEAD_HOSTS("GET / HTTP/1.1\nHost: a\nHost: b\n\n"), 2);             /* bare LF */
    ck_assert_uint_eq(HEAD_HOSTS("\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 2); /* a leading empty line */
    ck_assert_uint_eq(HEAD_HOSTS("GET / HTTP/1.1\r\n\r\n"), 0);
    ck_assert_uint_eq(HEAD_HOSTS("GET /?Host: HTTP/1.1\r\nHost: a\r\n\r\n"), 1);      /* the request line is no field */
    ck_assert_uint_eq(HEAD_HOSTS("GET / HTTP/1.1\r\nHost: a\r\n\r\nHost: b\r\n"), 1); /* a body, the next request */
    ck_assert_uint_eq(HEAD_HOSTS("GET / HTTP/1.1\r\nX-Host: a\r\nHosts: b\r\nHos: c\r\nHost\r\n\r\n"), 0);
    ck_assert_uint_eq(HEAD_HOSTS("GET / HTTP/1.1\r\nHost : a\r\n Host: b\r\n\r\n"), 0);    /* not the name host */
    ck_assert_uint_eq(HEAD_HOSTS("GET / HTTP/1.1\r\nX: a:b\r\nHost: x:80\r\nHost: y"), 2); /* no end: the last line counts */
    ck_assert_uint_eq(http_fields_head_count("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n", 20, "host", 4), 0); /* cut */
    ck_assert_uint_eq(http_fields_head_count("", 0, "host", 4), 0);
    ck_assert_uint_eq(HEAD_HOSTS("GET / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n"), 0);
    static const char cl[] = "GET / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n";
    ck_assert_uint_eq(http_fields_head_count(cl, sizeof(cl) - 1, "content-length", 14), 2);
}
END_TEST

static Suite *http_fields_suite(void)
{
    Suite *s = suite_create("http_fields");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_combine_keeps_order_of_first_lines);
    tcase_add_test(tc, test_combine_nothing_to_do);
    tcase_add_test(tc, test_combine_many_lines);
    tcase_add_test(tc, test_connection_names);
    tcase_add_test(tc, test_remove_connection_listed);
    tcase_add_test(tc, test_all_named);
    tcase_add_test(tc, test_head_count);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_fields_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * tests/unit/test_range_vary.c — the Range parser (RFC 9110 14.1.2, single byte ranges)
 * and the Accept-Encoding folding the cache keys Vary variants on.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "server/cache_policy.h"

static int range(const char *v, uint64_t len, uint64_t *first, uint64_t *last)
{
    /* untrusted bytes: pass an exact-length copy, so a read past the end is caught by ASan */
    size_t n = strlen(v);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, v, n);
    int rc = policy_parse_range(copy, n, len, first, last);
    free(copy);
    return rc;
}

START_TEST(test_range_satisfiable)
{
    uint64_t a, b;
    ck_assert_int_eq(range("bytes=0-9", 100, &a, &b), 1);
    ck_assert_uint_eq(a, 0);
    ck_assert_uint_eq(b, 9);
    ck_assert_int_eq(range("bytes=90-", 100, &a, &b), 1); /* open-ended */
    ck_assert_uint_eq(a, 90);
    ck_assert_uint_eq(b, 99);
    ck_assert_int_eq(range("bytes=-5", 100, &a, &b), 1); /* suffix */
    ck_assert_uint_eq(a, 95);
    ck_assert_uint_eq(b, 99);
    ck_assert_int_eq(range("bytes=-500", 100, &a, &b), 1); /* suffix longer than the body: all of it */
    ck_assert_uint_eq(a, 0);
    ck_assert_uint_eq(b, 99);
    ck_assert_int_eq(range("bytes=50-1000", 100, &a, &b), 1); /* last clamped */
    ck_assert_uint_eq(b, 99);
    ck_assert_int_eq(range("Bytes=1-1", 100, &a, &b), 1); /* the unit is case-insensitive */
    ck_assert_uint_eq(a, 1);
    ck_assert_uint_eq(b, 1);
    ck_assert_int_eq(range(" bytes= 3-4 ", 100, &a, &b), 1);
}
END_TEST

START_TEST(test_range_unsatisfiable)
{
    uint64_t a, b;
    ck_assert_int_eq(range("bytes=100-", 100, &a, &b), -1);
    ck_assert_int_eq(range("bytes=200-300", 100, &a, &b), -1);
    ck_assert_int_eq(range("bytes=-0", 100, &a, &b), -1);
    ck_assert_int_eq(range("bytes=0-", 0, &a, &b), -1);
    ck_assert_int_eq(range("bytes=-1", 0, &a, &b), -1);
}
END_TEST

START_TEST(test_range_ignored)
{
    uint64_t a, b;
    const char *ignored[] = {"",
                             "bytes",
                             "bytes=",
                             "bytes=-",
                             "bytes=5-4",
                             "bytes=a-b",
                             "items=0-1",
                             "bytes=0-1,3-4",
                             "bytes=1-2-3",
                             "bytes=0-9x",
                             "bytes 0-9",
                             "bytes=99999999999999999999999-",
                             "bytes=0-99999999999999999999999"};
    for (size_t i = 0; i != sizeof(ignored) / sizeof(ignored[0]); ++i)
        ck_assert_msg(range(ignored[i], 100, &a, &b) == 0, "'%s' must be ignored", ignored[i]);
}
END_TEST

static const char *ae(const char *v)
{
    return policy_normalize_accept_encoding(v, strlen(v));
}

START_TEST(test_accept_encoding)
{
    ck_assert_str_eq(ae("gzip"), "gzip");
    ck_assert_str_eq(ae("gzip, deflate"), "gzip");
    ck_assert_str_eq(ae("x-gzip"), "gzip");
    ck_assert_str_eq(ae("br"), "br");
    ck_assert_str_eq(ae("gzip, deflate, br"), "br");
    ck_assert_str_eq(ae("gzip;q=0.5, br;q=1.0"), "br"); /* parameters do not hide a coding */
    ck_assert_str_eq(ae("BR"), "br");
    ck_assert_str_eq(ae("br;q=0, gzip"), "gzip"); /* q=0: not acceptable */
    ck_assert_str_eq(ae("br;q=0.000, gzip;q=0"), "");
    ck_assert_str_eq(ae("br; q=0.1"), "br");
    ck_assert_str_eq(ae("identity"), "");
    ck_assert_str_eq(ae("deflate"), "");
    ck_assert_str_eq(ae(""), "");
    ck_assert_str_eq(ae("gzipped, brotli"), ""); /* whole coding names only */
    ck_assert_str_eq(ae(" , ,"), "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("range_vary");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_range_satisfiable);
    tcase_add_test(tc, test_range_unsatisfiable);
    tcase_add_test(tc, test_range_ignored);
    tcase_add_test(tc, test_accept_encoding);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

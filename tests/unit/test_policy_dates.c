/*
 * tests/unit/test_policy_dates.c — server/cache_policy.c's HTTP dates against RFC 9110 5.6.7:
 * the three formats, two-digit years, what is not a date, the IMF-fixdate formatter over a
 * spread of instants, and its fast paths (the hand-written formatter and the per-thread memo
 * of the last date) against snprintf and parse + format.
 */
#include "server/cache_policy.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tests/unit/unit_policy.h"

/* ================================================================ HTTP dates */

static int64_t date_or_fail(const char *s, int64_t now)
{
    int64_t t = 0;
    ck_assert_msg(policy_parse_http_date_at(s, strlen(s), now, &t) == 0, "'%s' should parse", s);
    return t;
}

START_TEST(date_three_formats)
{
    /* RFC 9110 5.6.7's example, in all three forms */
    ck_assert_int_eq(date_or_fail("Sun, 06 Nov 1994 08:49:37 GMT", T0), T0);
    ck_assert_int_eq(date_or_fail("Sunday, 06-Nov-94 08:49:37 GMT", T0), T0);
    ck_assert_int_eq(date_or_fail("Sun Nov  6 08:49:37 1994", T0), T0);
    ck_assert_int_eq(date_or_fail("Sun Nov 16 08:49:37 1994", T0), T0 + 10 * 86400);

    int64_t t;
    ck_assert_int_eq(policy_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t), 0);
    ck_assert_int_eq(t, T0);

    ck_assert_int_eq(date_or_fail("Thu, 01 Jan 1970 00:00:00 GMT", T0), 0);
    ck_assert_int_eq(date_or_fail("Wed, 31 Dec 1969 23:59:59 GMT", T0), -1);
    ck_assert_int_eq(date_or_fail("Sat, 29 Feb 2020 12:00:00 GMT", T0), 1582977600);
    ck_assert_int_eq(date_or_fail("Fri, 31 Dec 9999 23:59:59 GMT", T0), 253402300799);
    ck_assert_int_eq(date_or_fail("Tue, 19 Jan 2038 03:14:08 GMT", T0), 2147483648);
    /* leap second normalises into the next minute */
    ck_assert_int_eq(date_or_fail("Sun, 06 Nov 1994 08:49:60 GMT", T0), T0 + 23);
    /* case-insensitive names, surrounding whitespace */
    ck_assert_int_eq(date_or_fail("sun, 06 NOV 1994 08:49:37 gmt", T0), T0);
    ck_assert_int_eq(date_or_fail("  Sun, 06 Nov 1994 08:49:37 GMT \t", T0), T0);
}
END_TEST

START_TEST(date_two_digit_year)
{
    int64_t now = date_or_fail("Sun, 01 Jun 2025 00:00:00 GMT", 0);
    /* RFC 9110 5.6.7: more than 50 years in the future → the previous century */
    ck_assert_int_eq(date_or_fail("Sunday, 06-Nov-94 08:49:37 GMT", now), T0);
    ck_assert_int_eq(date_or_fail("Saturday, 01-Jan-00 00:00:00 GMT", now), 946684800);
    ck_assert_int_eq(date_or_fail("Wednesday, 01-Jan-75 00:00:00 GMT", now), date_or_fail("Tue, 01 Jan 2075 00:00:00 GMT", 0));
    ck_assert_int_eq(date_or_fail("Thursday, 01-Jan-76 00:00:00 GMT", now), date_or_fail("Thu, 01 Jan 1976 00:00:00 GMT", 0));
    /* near the end of a century the next one is nearer */
    int64_t late = date_or_fail("Thu, 01 Jan 2099 00:00:00 GMT", 0);
    ck_assert_int_eq(date_or_fail("Saturday, 01-Jan-01 00:00:00 GMT", late), date_or_fail("Sat, 01 Jan 2101 00:00:00 GMT", 0));
}
END_TEST

START_TEST(date_invalid)
{
    static const char *const bad[] = {
        "",
        "0",
        "-1",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 2021 08:49:37 GMT",
        "Foo, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Noz 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT x",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT",
        "Sun, 06  Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov  6 08:49:37 1994 GMT",
        "1994-11-06T08:49:37Z",
        "Sun, 06 Nov 1994 08:49:37 GMT\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t = 12345;
        ck_assert_msg(policy_parse_http_date_at(bad[i], strlen(bad[i]), T0, &t) == -1, "'%s' should be invalid", bad[i]);
    }
    int64_t t;
    ck_assert_int_eq(policy_parse_http_date_at(NULL, 0, T0, &t), -1);
    /* the length bounds the parse: no NUL needed, nothing read past len */
    ck_assert_int_eq(policy_parse_http_date_at("Sun, 06 Nov 1994 08:49:37 GMTXYZ", 29, T0, &t), 0);
    ck_assert_int_eq(t, T0);
    ck_assert_int_eq(policy_parse_http_date_at("Sun, 06 Nov 1994 08:49:37 GMT", 28, T0, &t), -1);
}
END_TEST

START_TEST(date_format)
{
    char buf[30];
    ck_assert_uint_eq(policy_format_http_date(T0, buf), 29);
    ck_assert_str_eq(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    policy_format_http_date(0, buf);
    ck_assert_str_eq(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    policy_format_http_date(-1, buf);
    ck_assert_str_eq(buf, "Wed, 31 Dec 1969 23:59:59 GMT");
    policy_format_http_date(951782400, buf);
    ck_assert_str_eq(buf, "Tue, 29 Feb 2000 00:00:00 GMT");
    ck_assert_uint_eq(policy_format_http_date(INT64_MAX, buf), 29);
    ck_assert_str_eq(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
    ck_assert_uint_eq(policy_format_http_date(INT64_MIN, buf), 29);
    ck_assert_str_eq(buf, "Mon, 01 Jan 0001 00:00:00 GMT");
    /* round trip over a spread of instants */
    for (int64_t t = -2208988800; t < 4102444800; t += 7777777) {
        int64_t back;
        policy_format_http_date(t, buf);
        ck_assert_int_eq(policy_parse_http_date_at(buf, 29, t, &back), 0);
        ck_assert_int_eq(back, t);
    }
}
END_TEST

/* the hand-written formatter writes what snprintf wrote, and the per-thread memo of the last
 * IMF-fixdate gives what parse + format give, whatever came before it */
START_TEST(http_date_fast_paths_agree)
{
    static const char *const mon[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const char *const wdays[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    char got[30], want[40];
    for (int64_t t = -62135596800LL; t < 253402300799LL; t += 86400LL * 365 / 7 + 3671) {
        ck_assert_uint_eq(policy_format_http_date(t, got), 29);
        struct tm tm;
        time_t tt = (time_t)t;
        gmtime_r(&tt, &tm);
        snprintf(want, sizeof(want), "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday], tm.tm_mday, mon[tm.tm_mon],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        ck_assert_str_eq(got, want);
    }
    static const char *const fields[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT", /* canonical */
        "Mon, 06 Nov 1994 08:49:37 GMT", /* wrong weekday: the canonical form corrects it */
        "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 GMT",  "Sun, 06 Nov 1994 08:49:99 GMT", /* 29 bytes, not a date */
        "Sun, 06 Nov 1994 08:49:37 GMT",  "not a date",
        "Thu, 01 Jan 1970 00:00:00 GMT",  "Sun, 06 Nov 1994 08:49:37 GMT",
    };
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            int64_t t;
            int want_rc = policy_parse_http_date(fields[i], strlen(fields[i]), &t) == 0 ? 0 : -1;
            memset(got, 0, sizeof(got));
            ck_assert_int_eq(policy_http_date_fixdate(fields[i], strlen(fields[i]), got), want_rc);
            if (want_rc == 0) {
                policy_format_http_date(t, want);
                ck_assert_str_eq(got, want);
            }
        }
    }
}
END_TEST

static Suite *policy_dates_suite(void)
{
    Suite *s = suite_create("cache_policy_dates");
    TCase *tc = tcase_create("dates");
    tcase_add_test(tc, date_three_formats);
    tcase_add_test(tc, date_two_digit_year);
    tcase_add_test(tc, date_invalid);
    tcase_add_test(tc, date_format);
    tcase_add_test(tc, http_date_fast_paths_agree);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policy_dates_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

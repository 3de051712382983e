/*
 * tests/unit/test_policy.c — server/cache_policy.c against RFC 9111 / RFC 9110 / RFC 9213.
 * Each case names the rule it checks.
 */
#include "server/cache_policy.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 ((int64_t)784111777) /* Sun, 06 Nov 1994 08:49:37 GMT */
#define CAP 2147483648u         /* RFC 9111 1.2.2 */

static const policy_settings_t settings = {.default_ttl = 120, .max_heuristic_ttl = 3600, .default_grace = 30};

static policy_cc_t cc_of(const char *v)
{
    policy_cc_t cc;
    policy_cc_init(&cc);
    policy_cc_parse(&cc, v, strlen(v));
    return cc;
}

/* "name: value" lines (NULL-terminated) into policy headers; names lower-cased by the caller */
static size_t make_headers(const char *const *lines, policy_header_t *out, size_t cap)
{
    size_t n = 0;
    for (; lines != NULL && lines[n] != NULL; n++) {
        ck_assert_uint_lt(n, cap);
        const char *colon = strchr(lines[n], ':');
        ck_assert_ptr_nonnull(colon);
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        out[n] = (policy_header_t){lines[n], (size_t)(colon - lines[n]), v, strlen(v)};
    }
    return n;
}

typedef struct req_opts {
    int not_get;
    int auth;
    int64_t request_time; /* 0: T0 */
} req_opts_t;

static policy_decision_t decide_ex(int status, const char *const *lines, req_opts_t o)
{
    policy_header_t h[32];
    size_t n = make_headers(lines, h, 32);
    policy_request_info_t req = {!o.not_get, o.auth, o.request_time ? o.request_time : T0, T0};
    policy_decision_t d;
    memset(&d, 0xa5, sizeof(d)); /* every field must be written */
    policy_decide(status, h, n, &req, &settings, &d);
    if (!d.storable)
        ck_assert_ptr_nonnull(d.not_stored_reason);
    return d;
}

static policy_decision_t decide(int status, const char *const *lines)
{
    return decide_ex(status, lines, (req_opts_t){0, 0, 0});
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ================================================================ Cache-Control parser */

START_TEST(cc_basic_and_case)
{
    policy_cc_t cc = cc_of("max-age=60, public");
    ck_assert_uint_eq(cc.max_age, 60);
    ck_assert(cc.public_);
    ck_assert_uint_eq(cc.s_maxage, POLICY_UNSET);
    ck_assert(!cc.no_store && !cc.private_ && !cc.max_age_invalid);

    cc = cc_of("MAX-AGE=61, No-Store, PRIVATE, S-MaxAge=7, Must-Revalidate, PROXY-REVALIDATE, No-Transform, "
               "Immutable, Only-If-Cached, NO-CACHE");
    ck_assert_uint_eq(cc.max_age, 61);
    ck_assert_uint_eq(cc.s_maxage, 7);
    ck_assert(cc.no_store && cc.private_ && cc.must_revalidate && cc.proxy_revalidate && cc.no_transform &&
              cc.immutable && cc.only_if_cached && cc.no_cache);
    ck_assert(!cc.public_);

    cc = cc_of("stale-while-revalidate=30, stale-if-error=600");
    ck_assert_uint_eq(cc.stale_while_revalidate, 30);
    ck_assert_uint_eq(cc.stale_if_error, 600);
    ck_assert_uint_eq(cc.max_age, POLICY_UNSET);
}
END_TEST

START_TEST(cc_whitespace_and_empty_elements)
{
    policy_cc_t cc = cc_of("  max-age=60 ,\t s-maxage = 30 ,,  ");
    ck_assert_uint_eq(cc.max_age, 60);
    ck_assert_uint_eq(cc.s_maxage, 30);
    ck_assert(!cc.max_age_invalid && !cc.s_maxage_invalid);

    cc = cc_of(",,, no-cache ,,");
    ck_assert(cc.no_cache);
    cc = cc_of("");
    ck_assert_uint_eq(cc.max_age, POLICY_UNSET);
    ck_assert(!cc.no_cache && !cc.no_store && !cc.max_age_invalid);
    policy_cc_init(&cc);
    policy_cc_parse(&cc, NULL, 0);
    ck_assert_uint_eq(cc.max_age, POLICY_UNSET);
}
END_TEST

START_TEST(cc_quoted_strings)
{
    /* RFC 9111 5.2: recipients accept the quoted form of an argument too */
    policy_cc_t cc = cc_of("max-age=\"10\"");
    ck_assert_uint_eq(cc.max_age, 10);
    ck_assert(!cc.max_age_invalid);
    /* a quoted-pair inside: "1\0" is "10" */
    cc = cc_of("max-age=\"1\\0\"");
    ck_assert_uint_eq(cc.max_age, 10);
    /* commas inside a quoted-string do not split the list */
    cc = cc_of("no-cache=\"set-cookie, max-age=999\", max-age=5");
    ck_assert(cc.no_cache);
    ck_assert_uint_eq(cc.max_age, 5);
    /* an escaped quote does not close the string */
    cc = cc_of("private=\"a\\\"b, no-store\", must-revalidate");
    ck_assert(cc.private_ && cc.must_revalidate);
    ck_assert(!cc.no_store);
    /* unknown extension with a quoted value containing a comma and a directive name */
    cc = cc_of("ext=\"x, no-store\", s-maxage=9");
    ck_assert(!cc.no_store);
    ck_assert_uint_eq(cc.s_maxage, 9);
    /* an unterminated quoted-string swallows the rest of the field */
    cc = cc_of("max-age=5, foo=\"abc, no-store");
    ck_assert_uint_eq(cc.max_age, 5);
    ck_assert(!cc.no_store);
}
END_TEST

START_TEST(cc_invalid_values)
{
    static const char *const bad[] = {
        "max-age=abc", "max-age=\"\"", "max-age=", "max-age", "max-age=-1", "max-age=1.5", "max-age=10 junk",
        "max-age=10junk", "max-age=0x10", "max-age=\"10", "max-age= \"1 0\"", "max-age=+5", "max-age=5;x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        policy_cc_t cc = cc_of(bad[i]);
        ck_assert_msg(cc.max_age_invalid, "'%s' should be invalid", bad[i]);
        ck_assert_msg(cc.max_age == POLICY_UNSET, "'%s' should leave max_age unset", bad[i]);
    }
    policy_cc_t cc = cc_of("s-maxage=abc, max-age=5");
    ck_assert(cc.s_maxage_invalid);
    ck_assert_uint_eq(cc.s_maxage, POLICY_UNSET);
    ck_assert_uint_eq(cc.max_age, 5);
    ck_assert(!cc.max_age_invalid);
    /* invalid stale-* directives are ignored, not "invalid" */
    cc = cc_of("stale-while-revalidate=abc, stale-if-error");
    ck_assert_uint_eq(cc.stale_while_revalidate, POLICY_UNSET);
    ck_assert_uint_eq(cc.stale_if_error, POLICY_UNSET);
    /* restrictive directives are honoured even when malformed; permissive ones are not */
    cc = cc_of("no-store junk, public junk, private=, immutable \"x\"");
    ck_assert(cc.no_store && cc.private_);
    ck_assert(!cc.public_ && !cc.immutable);
    /* garbage elements are skipped */
    cc = cc_of("=5, \"x\", ;; , max-age=7");
    ck_assert_uint_eq(cc.max_age, 7);
    ck_assert(!cc.max_age_invalid);
    /* unknown directives are ignored */
    cc = cc_of("foo, bar=baz, max-age=5, community=\"UCI\"");
    ck_assert_uint_eq(cc.max_age, 5);
}
END_TEST

START_TEST(cc_duplicates)
{
    policy_cc_t cc = cc_of("max-age=10, max-age=10");
    ck_assert_uint_eq(cc.max_age, 10);
    ck_assert(!cc.max_age_invalid);
    cc = cc_of("max-age=10, max-age=20");
    ck_assert(cc.max_age_invalid);
    ck_assert_uint_eq(cc.max_age, POLICY_UNSET);
    /* once invalid, always invalid */
    cc = cc_of("max-age=10, max-age=20, max-age=10");
    ck_assert(cc.max_age_invalid);
    cc = cc_of("max-age=10, max-age=x");
    ck_assert(cc.max_age_invalid);
    cc = cc_of("s-maxage=1, s-maxage=2");
    ck_assert(cc.s_maxage_invalid);
    /* duplicates across header lines merge the same way */
    policy_cc_init(&cc);
    policy_cc_parse(&cc, "max-age=10", 10);
    policy_cc_parse(&cc, "no-store", 8);
    ck_assert_uint_eq(cc.max_age, 10);
    ck_assert(cc.no_store);
    policy_cc_parse(&cc, "max-age=11", 10);
    ck_assert(cc.max_age_invalid);
    /* stale-* duplicates keep the smaller value */
    cc = cc_of("stale-while-revalidate=30, stale-while-revalidate=10, stale-if-error=5, stale-if-error=50");
    ck_assert_uint_eq(cc.stale_while_revalidate, 10);
    ck_assert_uint_eq(cc.stale_if_error, 5);
}
END_TEST

START_TEST(cc_overflow_capped)
{
    ck_assert_uint_eq(cc_of("max-age=2147483647").max_age, 2147483647u);
    ck_assert_uint_eq(cc_of("max-age=2147483648").max_age, CAP);
    ck_assert_uint_eq(cc_of("max-age=2147483649").max_age, CAP);
    ck_assert_uint_eq(cc_of("max-age=4294967295").max_age, CAP);
    ck_assert_uint_eq(cc_of("max-age=99999999999999999999999999999999999999").max_age, CAP);
    ck_assert_uint_eq(cc_of("s-maxage=\"99999999999999999999\"").s_maxage, CAP);
    ck_assert_uint_eq(cc_of("stale-if-error=18446744073709551616").stale_if_error, CAP);
    ck_assert_uint_eq(cc_of("max-age=0000000000000000000000000000042").max_age, 42);
    ck_assert_uint_eq(cc_of("max-age=0").max_age, 0);
    ck_assert(!cc_of("max-age=99999999999999999999").max_age_invalid);
}
END_TEST

START_TEST(cc_must_understand)
{
    policy_cc_t cc = cc_of("must-understand, no-store");
    ck_assert(cc.must_understand && cc.no_store);
}
END_TEST

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
    ck_assert_int_eq(date_or_fail("Wednesday, 01-Jan-75 00:00:00 GMT", now),
                     date_or_fail("Tue, 01 Jan 2075 00:00:00 GMT", 0));
    ck_assert_int_eq(date_or_fail("Thursday, 01-Jan-76 00:00:00 GMT", now),
                     date_or_fail("Thu, 01 Jan 1976 00:00:00 GMT", 0));
    /* near the end of a century the next one is nearer */
    int64_t late = date_or_fail("Thu, 01 Jan 2099 00:00:00 GMT", 0);
    ck_assert_int_eq(date_or_fail("Saturday, 01-Jan-01 00:00:00 GMT", late),
                     date_or_fail("Sat, 01 Jan 2101 00:00:00 GMT", 0));
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
        ck_assert_msg(policy_parse_http_date_at(bad[i], strlen(bad[i]), T0, &t) == -1, "'%s' should be invalid",
                      bad[i]);
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

/* ================================================================ freshness precedence */

typedef struct ttl_case {
    const char *what;
    const char *lines[8];
    uint32_t ttl;
} ttl_case_t;

#define D0 "date: Sun, 06 Nov 1994 08:49:37 GMT"
#define EXP50 "expires: Sun, 06 Nov 1994 08:50:27 GMT"   /* T0 + 50 */
#define EXPM10 "expires: Sun, 06 Nov 1994 08:49:27 GMT"  /* T0 - 10 */
#define LM1000 "last-modified: Sun, 06 Nov 1994 08:32:57 GMT" /* T0 - 1000 */

static const ttl_case_t ttl_cases[] = {
    /* each source wins over every later one */
    {"surrogate-control wins",
     {"surrogate-control: max-age=10", "cdn-cache-control: max-age=20, s-maxage=25",
      "cache-control: s-maxage=30, max-age=40", EXP50, LM1000, D0},
     10},
    {"cdn-cache-control s-maxage next",
     {"cdn-cache-control: max-age=20, s-maxage=25", "cache-control: s-maxage=30, max-age=40", EXP50, LM1000, D0},
     25},
    {"cdn-cache-control max-age", {"cdn-cache-control: max-age=20", "cache-control: s-maxage=30, max-age=40", EXP50, D0},
     20},
    {"cache-control s-maxage", {"cache-control: max-age=40, s-maxage=30", EXP50, LM1000, D0}, 30},
    {"cache-control max-age", {"cache-control: max-age=40", EXP50, LM1000, D0}, 40},
    {"expires - date", {EXP50, LM1000, D0}, 50},
    {"heuristic 10% of date - last-modified", {LM1000, D0}, 100},
    {"heuristic capped", {"last-modified: Sat, 01 Jan 1994 00:00:00 GMT", D0}, 3600},
    {"default ttl", {D0}, 120},
    {"default ttl without any header", {NULL}, 120},

    /* RFC 9213: a usable CDN-Cache-Control makes us ignore Cache-Control and Expires */
    {"cdn-cc ignores cc and expires", {"cdn-cache-control: no-transform", "cache-control: max-age=40", EXP50, D0}, 120},
    {"cdn-cc ignores cc, heuristic", {"cdn-cache-control: public", "cache-control: max-age=40", LM1000, D0}, 100},
    {"empty cdn-cc is not used", {"cdn-cache-control: ", "cache-control: max-age=40", D0}, 40},
    {"malformed cdn-cc is not used", {"cdn-cache-control: =x", "cache-control: max-age=40", D0}, 40},

    /* invalid freshness information means stale (RFC 9111 4.2.1) */
    {"invalid max-age is stale", {"cache-control: max-age=abc", EXP50, D0}, 0},
    {"duplicate max-age is stale", {"cache-control: max-age=40", "cache-control: max-age=41", EXP50, D0}, 0},
    {"invalid s-maxage is stale", {"cache-control: s-maxage=abc, max-age=40", D0}, 0},
    {"valid s-maxage beats invalid max-age", {"cache-control: max-age=abc, s-maxage=40", D0}, 40},
    {"invalid surrogate max-age is stale", {"surrogate-control: max-age=x", "cache-control: max-age=40", D0}, 0},
    {"invalid cdn max-age is stale", {"cdn-cache-control: max-age=\"\"", "cache-control: max-age=40", D0}, 0},
    {"expires 0 is stale", {"expires: 0", LM1000, D0}, 0},
    {"expires garbage is stale", {"expires: tomorrow", D0}, 0},
    {"expires in the past", {EXPM10, D0}, 0},
    {"two different expires are stale", {EXP50, "expires: Sun, 06 Nov 1994 08:51:00 GMT", D0}, 0},
    {"two equal expires", {EXP50, EXP50, D0}, 50},
    {"max-age overrides an expired expires", {"cache-control: max-age=40", EXPM10, D0}, 40},
    {"max-age=0", {"cache-control: max-age=0", EXP50, D0}, 0},

    /* Date absent or invalid: response_time (T0) stands in */
    {"expires without date", {EXP50}, 50},
    {"expires with invalid date", {EXP50, "date: yesterday"}, 50},
    {"expires - date, not - response_time", {"expires: Sun, 06 Nov 1994 08:50:27 GMT",
                                             "date: Sun, 06 Nov 1994 08:47:57 GMT"}, 150},
    {"heuristic without date", {LM1000}, 100},
    {"last-modified after date", {"last-modified: Mon, 07 Nov 1994 00:00:00 GMT", D0}, 120},
    {"last-modified equals date", {"last-modified: Sun, 06 Nov 1994 08:49:37 GMT", D0}, 0},
    {"invalid last-modified", {"last-modified: never", D0}, 120},

    /* Surrogate-Control specifics */
    {"targeted surrogate directive skipped", {"surrogate-control: max-age=60;edge1", "cache-control: max-age=40", D0}, 40},
    {"surrogate max-age=N+M", {"surrogate-control: max-age=60+30", D0}, 60},
    {"surrogate without max-age falls through", {"surrogate-control: content=\"ESI/1.0\"", "cache-control: max-age=40", D0}, 40},
    {"capped lifetime", {"cache-control: max-age=99999999999", D0}, CAP},
    {"expires far future capped", {"expires: Fri, 31 Dec 9999 23:59:59 GMT", D0}, CAP},
};

START_TEST(ttl_precedence)
{
    const ttl_case_t *c = &ttl_cases[_i];
    policy_decision_t d = decide(200, c->lines);
    ck_assert_msg(d.storable, "%s: not stored (%s)", c->what, d.not_stored_reason);
    ck_assert_msg(d.ttl == c->ttl, "%s: ttl %u, expected %u", c->what, d.ttl, c->ttl);
}
END_TEST

/* ================================================================ storability */

typedef struct store_case {
    const char *what;
    int status;
    const char *lines[6];
    int not_get, auth;
    const char *reason; /* NULL: storable */
} store_case_t;

static const store_case_t store_cases[] = {
    {"plain 200", 200, {D0}, 0, 0, NULL},
    {"no-store", 200, {"cache-control: max-age=60, no-store"}, 0, 0, "no-store"},
    {"no-store on a second line", 200, {"cache-control: max-age=60", "cache-control: NO-STORE"}, 0, 0, "no-store"},
    {"private", 200, {"cache-control: private, max-age=60"}, 0, 0, "private"},
    {"qualified private", 200, {"cache-control: private=\"set-cookie\", max-age=60"}, 0, 0, "private"},
    {"qualified no-cache is stored", 200, {"cache-control: no-cache=\"set-cookie\", max-age=60"}, 0, 0, NULL},
    {"set-cookie", 200, {"cache-control: max-age=60", "set-cookie: a=b"}, 0, 0, "set-cookie"},
    {"vary *", 200, {"cache-control: max-age=60", "vary: *"}, 0, 0, "vary"},
    {"vary list with *", 200, {"vary: Accept-Encoding, *"}, 0, 0, "vary"},
    {"vary header list", 200, {"vary: Accept-Encoding, Accept-Language"}, 0, 0, NULL},
    {"POST", 200, {"cache-control: max-age=60"}, 1, 0, "method"},
    {"authorization", 200, {"cache-control: max-age=60"}, 0, 1, "authorization"},
    {"authorization, no headers", 200, {NULL}, 0, 1, "authorization"},
    {"authorization + public", 200, {"cache-control: public"}, 0, 1, NULL},
    {"authorization + s-maxage", 200, {"cache-control: s-maxage=10"}, 0, 1, NULL},
    {"authorization + must-revalidate", 200, {"cache-control: must-revalidate, max-age=5"}, 0, 1, NULL},
    {"authorization + proxy-revalidate", 200, {"cache-control: proxy-revalidate, max-age=5"}, 0, 1, "authorization"},
    {"authorization + cdn-cc public", 200, {"cdn-cache-control: public"}, 0, 1, NULL},
    {"500 without freshness", 500, {D0, LM1000}, 0, 0, "status"},
    {"500 with max-age", 500, {"cache-control: max-age=10"}, 0, 0, NULL},
    {"500 with expires", 500, {EXP50, D0}, 0, 0, NULL},
    {"500 marked public", 500, {"cache-control: public"}, 0, 0, NULL},
    {"302 without freshness", 302, {D0}, 0, 0, "status"},
    {"302 with max-age", 302, {"cache-control: max-age=5"}, 0, 0, NULL},
    {"404 heuristic", 404, {LM1000, D0}, 0, 0, NULL},
    {"404 default", 404, {D0}, 0, 0, NULL},
    {"410 default", 410, {NULL}, 0, 0, NULL},
    {"206 partial", 206, {"cache-control: max-age=60"}, 0, 0, "partial"},
    {"304", 304, {"cache-control: max-age=60"}, 0, 0, "status"},
    {"1xx", 103, {"cache-control: max-age=60"}, 0, 0, "status"},
    {"600", 600, {"cache-control: max-age=60"}, 0, 0, "status"},
    {"0", 0, {NULL}, 0, 0, "status"},
    {"surrogate no-store", 200, {"surrogate-control: no-store", "cache-control: max-age=60"}, 0, 0, "no-store"},
    {"surrogate no-store-remote", 200, {"surrogate-control: no-store-remote"}, 0, 0, "no-store"},
    {"cdn-cc no-store", 200, {"cdn-cache-control: no-store", "cache-control: max-age=60"}, 0, 0, "no-store"},
    {"cdn-cc overrides cc no-store", 200, {"cdn-cache-control: max-age=60", "cache-control: no-store"}, 0, 0, NULL},
    {"cdn-cc overrides cc private", 200, {"cdn-cache-control: max-age=60", "cache-control: private"}, 0, 0, NULL},
    {"surrogate max-age does not override cc private", 200,
     {"surrogate-control: max-age=60", "cache-control: private"}, 0, 0, "private"},
    {"surrogate max-age does not override cc no-store", 200,
     {"surrogate-control: max-age=60", "cache-control: no-store"}, 0, 0, "no-store"},
    {"must-understand, understood status", 200, {"cache-control: no-store, must-understand, max-age=60"}, 0, 0, NULL},
    {"must-understand, unknown status", 299, {"cache-control: no-store, must-understand, max-age=60"}, 0, 0, "status"},
    {"must-understand does not lift surrogate no-store", 200,
     {"cache-control: no-store, must-understand, max-age=60", "surrogate-control: no-store"}, 0, 0, "no-store"},
    {"unknown final status with freshness", 299, {"cache-control: max-age=60"}, 0, 0, NULL},
    {"invalid max-age on a 500 is stored stale", 500, {"cache-control: max-age=x"}, 0, 0, NULL},
};

START_TEST(storability)
{
    const store_case_t *c = &store_cases[_i];
    policy_decision_t d = decide_ex(c->status, c->lines, (req_opts_t){c->not_get, c->auth, 0});
    if (c->reason == NULL) {
        ck_assert_msg(d.storable, "%s: not stored (%s)", c->what, d.not_stored_reason);
        ck_assert(!d.not_stored_by_request);
    } else {
        ck_assert_msg(!d.storable, "%s: stored, expected '%s'", c->what, c->reason);
        ck_assert_msg(strcmp(d.not_stored_reason, c->reason) == 0, "%s: reason '%s', expected '%s'", c->what,
                      d.not_stored_reason, c->reason);
        /* only the request's own reasons may be told apart from the response's (hit-for-pass) */
        int by_request = strcmp(c->reason, "method") == 0 || strcmp(c->reason, "authorization") == 0 ||
                         strcmp(c->reason, "partial") == 0 || c->status == 304;
        ck_assert_msg(d.not_stored_by_request == by_request, "%s: not_stored_by_request %d", c->what,
                      d.not_stored_by_request);
        ck_assert_uint_eq(d.ttl, 0);
        ck_assert_uint_eq(d.stale_if_error, 0);
    }
}
END_TEST

START_TEST(storability_details)
{
    policy_decision_t d = decide(500, L("cache-control: public", D0));
    ck_assert_uint_eq(d.ttl, 120);
    d = decide(404, L(LM1000, D0));
    ck_assert_uint_eq(d.ttl, 100);
    d = decide(500, L("cache-control: max-age=x"));
    ck_assert_uint_eq(d.ttl, 0);
    d = decide(200, L("cache-control: no-store, must-understand, max-age=60"));
    ck_assert_uint_eq(d.ttl, 60);
}
END_TEST

/* ================================================================ revalidation, stale windows */

START_TEST(revalidation_flags)
{
    policy_decision_t d = decide(200, L("cache-control: no-cache", D0));
    ck_assert(d.storable && d.no_cache && !d.must_revalidate);
    ck_assert_uint_eq(d.ttl, 120);
    ck_assert_uint_eq(d.stale_while_revalidate, 0);
    ck_assert_uint_eq(d.stale_if_error, 0);

    d = decide(200, L("cache-control: max-age=60, stale-while-revalidate=30, stale-if-error=600"));
    ck_assert(!d.no_cache && !d.must_revalidate);
    ck_assert_uint_eq(d.stale_while_revalidate, 30);
    ck_assert_uint_eq(d.stale_if_error, 600);

    d = decide(200, L("cache-control: max-age=60"));
    ck_assert_uint_eq(d.stale_while_revalidate, 0);
    ck_assert_uint_eq(d.stale_if_error, 30); /* settings.default_grace */

    d = decide(200, L("cache-control: max-age=60, must-revalidate, stale-if-error=600"));
    ck_assert(d.must_revalidate);
    ck_assert_uint_eq(d.stale_if_error, 0);
    d = decide(200, L("cache-control: max-age=60, proxy-revalidate, stale-while-revalidate=9"));
    ck_assert(d.must_revalidate);
    ck_assert_uint_eq(d.stale_while_revalidate, 0);

    /* s-maxage implies proxy-revalidate (RFC 9111 5.2.2.10): explicit stale-* kept, no default grace */
    d = decide(200, L("cache-control: s-maxage=60, stale-while-revalidate=30"));
    ck_assert(d.must_revalidate);
    ck_assert_uint_eq(d.stale_while_revalidate, 30);
    ck_assert_uint_eq(d.stale_if_error, 0);

    /* Surrogate-Control: plain Cache-Control's revalidation directives are for browsers */
    d = decide(200, L("surrogate-control: max-age=60, stale-if-error=99", "cache-control: no-cache, must-revalidate"));
    ck_assert(d.storable && !d.no_cache && !d.must_revalidate);
    ck_assert_uint_eq(d.ttl, 60);
    ck_assert_uint_eq(d.stale_if_error, 99);
    d = decide(200, L("surrogate-control: max-age=60", "cache-control: max-age=0, stale-while-revalidate=5"));
    ck_assert_uint_eq(d.ttl, 60);
    ck_assert_uint_eq(d.stale_while_revalidate, 5);
    d = decide(200, L("surrogate-control: max-age=60, no-cache"));
    ck_assert(d.no_cache);
    d = decide(200, L("surrogate-control: max-age=60, must-revalidate"));
    ck_assert(d.must_revalidate);
    /* without a surrogate max-age, Cache-Control's no-cache applies */
    d = decide(200, L("surrogate-control: stale-if-error=5", "cache-control: no-cache, max-age=9"));
    ck_assert(d.no_cache);

    /* CDN-Cache-Control replaces Cache-Control */
    d = decide(200, L("cdn-cache-control: max-age=60, must-revalidate"));
    ck_assert(d.must_revalidate);
    d = decide(200, L("cdn-cache-control: max-age=60", "cache-control: no-cache, must-revalidate"));
    ck_assert(!d.no_cache && !d.must_revalidate);
    d = decide(200, L("cdn-cache-control: max-age=60, stale-while-revalidate=7",
                      "cache-control: stale-while-revalidate=70"));
    ck_assert_uint_eq(d.stale_while_revalidate, 7);
}
END_TEST

/* ================================================================ age */

START_TEST(initial_age)
{
    /* RFC 9111 4.2.3 */
    policy_decision_t d = decide(200, L("cache-control: max-age=60"));
    ck_assert_uint_eq(d.initial_age, 0);
    d = decide(200, L("date: Sun, 06 Nov 1994 08:49:27 GMT")); /* apparent_age 10 */
    ck_assert_uint_eq(d.initial_age, 10);
    /* corrected_age_value = age + response_delay = 30 + 2 beats apparent_age 10 */
    d = decide_ex(200, L("date: Sun, 06 Nov 1994 08:49:27 GMT", "age: 30"), (req_opts_t){0, 0, T0 - 2});
    ck_assert_uint_eq(d.initial_age, 32);
    /* apparent_age 10 beats corrected_age_value 3 + 2 */
    d = decide_ex(200, L("date: Sun, 06 Nov 1994 08:49:27 GMT", "age: 3"), (req_opts_t){0, 0, T0 - 2});
    ck_assert_uint_eq(d.initial_age, 10);
    /* response_delay counts even without Age */
    d = decide_ex(200, L(D0), (req_opts_t){0, 0, T0 - 7});
    ck_assert_uint_eq(d.initial_age, 7);
    /* invalid Age is ignored */
    d = decide(200, L(D0, "age: abc"));
    ck_assert_uint_eq(d.initial_age, 0);
    d = decide(200, L(D0, "age: -5"));
    ck_assert_uint_eq(d.initial_age, 0);
    /* a list: the first member counts; if it is invalid the field is ignored (RFC 9111 5.1) */
    d = decide(200, L(D0, "age: 5, 100"));
    ck_assert_uint_eq(d.initial_age, 5);
    d = decide(200, L(D0, "age: abc, 100"));
    ck_assert_uint_eq(d.initial_age, 0);
    /* several lines: the first */
    d = decide(200, L(D0, "age: 8", "age: 80"));
    ck_assert_uint_eq(d.initial_age, 8);
    /* overflow caps at 2^31 */
    d = decide(200, L(D0, "age: 99999999999999999999"));
    ck_assert_uint_eq(d.initial_age, CAP);
    d = decide_ex(200, L(D0, "age: 2147483647"), (req_opts_t){0, 0, T0 - 100});
    ck_assert_uint_eq(d.initial_age, CAP);
    /* Date in the future: apparent_age 0; request after response (clock step): delay 0 */
    d = decide_ex(200, L("date: Mon, 07 Nov 1994 00:00:00 GMT"), (req_opts_t){0, 0, T0 + 50});
    ck_assert_uint_eq(d.initial_age, 0);
    /* absurd clocks do not overflow anything */
    {
        policy_header_t h[2];
        size_t n = make_headers(L(D0, "expires: Sun, 06 Nov 1994 08:50:27 GMT"), h, 2);
        policy_request_info_t req = {1, 0, INT64_MIN, INT64_MAX};
        policy_decide(200, h, n, &req, &settings, &d);
        ck_assert(d.storable);
        ck_assert_uint_eq(d.initial_age, CAP);
        ck_assert_uint_eq(d.ttl, 50);
        req = (policy_request_info_t){1, 0, INT64_MAX, INT64_MIN};
        policy_decide(200, h, n, &req, &settings, &d);
        ck_assert_uint_eq(d.initial_age, 0);
    }
    /* ancient Date: capped */
    d = decide(200, L("date: Mon, 01 Jan 0001 00:00:00 GMT"));
    ck_assert_uint_eq(d.initial_age, CAP);
}
END_TEST

START_TEST(current_age)
{
    ck_assert_uint_eq(policy_current_age(10, 1000, 1000), 10);
    ck_assert_uint_eq(policy_current_age(10, 1000, 1999), 10);
    ck_assert_uint_eq(policy_current_age(10, 1000, 2000), 11);
    ck_assert_uint_eq(policy_current_age(10, 1000, 5999), 14);
    ck_assert_uint_eq(policy_current_age(10, 5000, 1000), 10); /* clock went back */
    ck_assert_uint_eq(policy_current_age(0, -5000, 5000), 10);
    ck_assert_uint_eq(policy_current_age(UINT32_MAX - 5, 0, 10000000), UINT32_MAX - 1);
    ck_assert_uint_eq(policy_current_age(UINT32_MAX, 0, 0), UINT32_MAX - 1);
    ck_assert_uint_eq(policy_current_age(0, INT64_MIN, INT64_MAX), UINT32_MAX - 1);
    ck_assert_uint_eq(policy_current_age(CAP, 0, (int64_t)1000 * CAP), UINT32_MAX - 1);
}
END_TEST

/* untrusted bytes: every prefix of some nasty fields parses without crashing or reading past len */
START_TEST(parsers_bounded)
{
    static const char *const fields[] = {
        "max-age=\"12\\", "no-cache=\"a,b\\\"c\", max-age=1", "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "s-maxage = \"9\" ;x, , private=\"",
    };
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        size_t len = strlen(fields[f]);
        for (size_t n = 0; n <= len; n++) {
            char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan catches an over-read */
            memcpy(copy, fields[f], n);
            policy_cc_t cc;
            int64_t t;
            policy_cc_init(&cc);
            policy_cc_parse(&cc, copy, n);
            (void)policy_parse_http_date_at(copy, n, T0, &t);
            policy_header_t h[] = {{"cache-control", 13, copy, n}, {"expires", 7, copy, n}, {"age", 3, copy, n},
                                   {"vary", 4, copy, n},           {"date", 4, copy, n},    {"surrogate-control", 17, copy, n}};
            policy_request_info_t req = {1, 0, T0, T0};
            policy_decision_t d;
            policy_decide(200, h, 6, &req, &settings, &d);
            free(copy);
        }
    }
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("cache_policy");
    TCase *tc = tcase_create("cc");
    tcase_add_test(tc, cc_basic_and_case);
    tcase_add_test(tc, cc_whitespace_and_empty_elements);
    tcase_add_test(tc, cc_quoted_strings);
    tcase_add_test(tc, cc_invalid_values);
    tcase_add_test(tc, cc_duplicates);
    tcase_add_test(tc, cc_overflow_capped);
    tcase_add_test(tc, cc_must_understand);
    suite_add_tcase(s, tc);

    tc = tcase_create("dates");
    tcase_add_test(tc, date_three_formats);
    tcase_add_test(tc, date_two_digit_year);
    tcase_add_test(tc, date_invalid);
    tcase_add_test(tc, date_format);
    suite_add_tcase(s, tc);

    tc = tcase_create("decide");
    tcase_add_loop_test(tc, ttl_precedence, 0, (int)(sizeof(ttl_cases) / sizeof(ttl_cases[0])));
    tcase_add_loop_test(tc, storability, 0, (int)(sizeof(store_cases) / sizeof(store_cases[0])));
    tcase_add_test(tc, storability_details);
    tcase_add_test(tc, revalidation_flags);
    tcase_add_test(tc, initial_age);
    tcase_add_test(tc, current_age);
    tcase_add_test(tc, parsers_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * tests/unit/test_policy_decide.c — server/cache_policy.c's decision on a response against
 * RFC 9111 / RFC 9213: which source of freshness wins, what is storable and why not,
 * negative caching (CPDoS), the revalidation flags and stale windows, initial and current
 * age, a CDN-Cache-Control too long to join, and every parser on every prefix of nasty
 * fields (untrusted bytes, nothing read past their length). Each case names the rule it checks.
 */
#include "server/cache_policy.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/unit/unit_policy.h"

static const policy_settings_t settings = {.default_ttl = 120, .max_heuristic_ttl = 3600, .default_grace = 30};

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

/* ================================================================ freshness precedence */

typedef struct ttl_case {
    const char *what;
    const char *lines[8];
    uint32_t ttl;
} ttl_case_t;

#define D0 "date: Sun, 06 Nov 1994 08:49:37 GMT"
#define EXP50 "expires: Sun, 06 Nov 1994 08:50:27 GMT"        /* T0 + 50 */
#define EXPM10 "expires: Sun, 06 Nov 1994 08:49:27 GMT"       /* T0 - 10 */
#define LM1000 "last-modified: Sun, 06 Nov 1994 08:32:57 GMT" /* T0 - 1000 */

static const ttl_case_t ttl_cases[] = {
    /* each source wins over every later one */
    {"surrogate-control wins",
     {"surrogate-control: max-age=10", "cdn-cache-control: max-age=20, s-maxage=25", "cache-control: s-maxage=30, max-age=40",
      EXP50, LM1000, D0},
     10},
    {"cdn-cache-control s-maxage next",
     {"cdn-cache-control: max-age=20, s-maxage=25", "cache-control: s-maxage=30, max-age=40", EXP50, LM1000, D0},
     25},
    {"cdn-cache-control max-age", {"cdn-cache-control: max-age=20", "cache-control: s-maxage=30, max-age=40", EXP50, D0}, 20},
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
    /* RFC 9213 2.1: a CDN-Cache-Control that is not an RFC 8941 Dictionary, or whose directive has
     * the wrong type, is ignored as a whole and the next source of the precedence applies */
    {"cdn-cc trailing empty member", {"cdn-cache-control: max-age=60, ,", "cache-control: max-age=40", D0}, 40},
    {"cdn-cc max-age a string", {"cdn-cache-control: max-age=\"60\"", "cache-control: max-age=40", D0}, 40},
    {"cdn-cc empty string", {"cdn-cache-control: max-age=\"\"", "cache-control: max-age=40", D0}, 40},
    {"cdn-cc negative max-age", {"cdn-cache-control: max-age=-1", "cache-control: max-age=40", D0}, 40},
    {"cdn-cc decimal max-age", {"cdn-cache-control: max-age=1.5", "cache-control: max-age=40", D0}, 40},
    {"cdn-cc upper-case key", {"cdn-cache-control: Max-Age=60", "cache-control: max-age=40", D0}, 40},
    {"cdn-cc bad token syntax", {"cdn-cache-control: max-age=60, foo=b@r", "cache-control: max-age=40", D0}, 40},
    {"cdn-cc wrong type falls to s-maxage", {"cdn-cache-control: s-maxage=?1", "cache-control: s-maxage=30, max-age=40", D0}, 30},
    {"cdn-cc wrong type falls to expires", {"cdn-cache-control: max-age=1.5", EXP50, D0}, 50},
    {"cdn-cc wrong type falls to heuristic", {"cdn-cache-control: max-age=\"60\"", LM1000, D0}, 100},
    {"cdn-cc wrong type falls to default", {"cdn-cache-control: no-store=?0", D0}, 120},
    {"cdn-cc parameters are fine", {"cdn-cache-control: max-age=60;a=1", "cache-control: max-age=40", D0}, 60},
    /* RFC 8941 4.2: several lines are one comma-joined field */
    {"cdn-cc lines combined",
     {"cdn-cache-control: max-age=60", "cdn-cache-control: s-maxage=25", "cache-control: max-age=40", D0},
     25},
    {"cdn-cc repeated key across lines: last wins",
     {"cdn-cache-control: max-age=60", "cdn-cache-control: max-age=20", "cache-control: max-age=40", D0},
     20},
    {"cdn-cc bad second line spoils the field",
     {"cdn-cache-control: max-age=60", "cdn-cache-control: s-maxage=1.5", "cache-control: max-age=40", D0},
     40},
    {"cdn-cc lines joined before parsing",
     {"cdn-cache-control: max-age=60, x=\"a", "cdn-cache-control: b\"", "cache-control: max-age=40", D0},
     60},
    {"cdn-cc empty line adds nothing",
     {"cdn-cache-control: ", "cdn-cache-control: max-age=20", "cache-control: max-age=40", D0},
     20},

    /* invalid freshness information means stale (RFC 9111 4.2.1) */
    {"invalid max-age is stale", {"cache-control: max-age=abc", EXP50, D0}, 0},
    {"duplicate max-age is stale", {"cache-control: max-age=40", "cache-control: max-age=41", EXP50, D0}, 0},
    {"invalid s-maxage is stale", {"cache-control: s-maxage=abc, max-age=40", D0}, 0},
    {"valid s-maxage beats invalid max-age", {"cache-control: max-age=abc, s-maxage=40", D0}, 40},
    {"invalid surrogate max-age is stale", {"surrogate-control: max-age=x", "cache-control: max-age=40", D0}, 0},
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
    {"expires - date, not - response_time", {"expires: Sun, 06 Nov 1994 08:50:27 GMT", "date: Sun, 06 Nov 1994 08:47:57 GMT"}, 150},
    {"heuristic without date", {LM1000}, 100},
    {"last-modified after date", {"last-modified: Mon, 07 Nov 1994 00:00:00 GMT", D0}, 120},
    {"last-modified equals date", {"last-modified: Sun, 06 Nov 1994 08:49:37 GMT", D0}, 0},
    {"invalid last-modified", {"last-modified: never", D0}, 120},

    /* Surrogate-Control specifics */
    {"targeted surrogate directive skipped", {"surrogate-control: max-age=60;edge1", "cache-control: max-age=40", D0}, 40},
    {"surrogate max-age=N+M", {"surrogate-control: max-age=60+30", D0}, 60},
    {"surrogate max-age after an unterminated quote is stale",
     {"surrogate-control: max-age=60;edge1=\"x, max-age=5", "cache-control: max-age=40", D0},
     0},
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
    /* negative_ttl is 0 in these settings: an error without freshness is not stored (CPDoS) */
    {"404 heuristic, negative_ttl 0", 404, {LM1000, D0}, 0, 0, "status"},
    {"404 without freshness, negative_ttl 0", 404, {D0}, 0, 0, "status"},
    {"410 without freshness, negative_ttl 0", 410, {NULL}, 0, 0, "status"},
    {"404 with max-age", 404, {"cache-control: max-age=60"}, 0, 0, NULL},
    {"206 partial", 206, {"cache-control: max-age=60"}, 0, 0, "partial"},
    {"304", 304, {"cache-control: max-age=60"}, 0, 0, "status"},
    {"1xx", 103, {"cache-control: max-age=60"}, 0, 0, "status"},
    {"600", 600, {"cache-control: max-age=60"}, 0, 0, "status"},
    {"0", 0, {NULL}, 0, 0, "status"},
    {"surrogate no-store", 200, {"surrogate-control: no-store", "cache-control: max-age=60"}, 0, 0, "no-store"},
    {"surrogate no-store after an unterminated quote",
     200,
     {"surrogate-control: max-age=60;edge1=\"x, no-store", "cache-control: max-age=40"},
     0,
     0,
     "no-store"},
    {"cc private after an unterminated quote", 200, {"cache-control: max-age=60, community=\"UCI, private"}, 0, 0, "private"},
    {"surrogate no-store-remote", 200, {"surrogate-control: no-store-remote"}, 0, 0, "no-store"},
    {"cdn-cc no-store", 200, {"cdn-cache-control: no-store", "cache-control: max-age=60"}, 0, 0, "no-store"},
    {"cdn-cc private string", 200, {"cdn-cache-control: private=\"x-a\"", "cache-control: max-age=60"}, 0, 0, "private"},
    {"ignored cdn-cc: cc no-store applies", 200, {"cdn-cache-control: max-age=60, ,", "cache-control: no-store"}, 0, 0, "no-store"},
    {"ignored cdn-cc: cc private applies", 200, {"cdn-cache-control: max-age=\"60\"", "cache-control: private"}, 0, 0, "private"},
    {"ignored cdn-cc no-store: cc applies", 200, {"cdn-cache-control: no-store=?0", "cache-control: max-age=60"}, 0, 0, NULL},
    {"cdn-cc overrides cc no-store", 200, {"cdn-cache-control: max-age=60", "cache-control: no-store"}, 0, 0, NULL},
    {"cdn-cc overrides cc private", 200, {"cdn-cache-control: max-age=60", "cache-control: private"}, 0, 0, NULL},
    {"surrogate max-age does not override cc private", 200, {"surrogate-control: max-age=60", "cache-control: private"}, 0, 0, "private"},
    {"surrogate max-age does not override cc no-store",
     200,
     {"surrogate-control: max-age=60", "cache-control: no-store"},
     0,
     0,
     "no-store"},
    {"must-understand, understood status", 200, {"cache-control: no-store, must-understand, max-age=60"}, 0, 0, NULL},
    {"must-understand, unknown status", 299, {"cache-control: no-store, must-understand, max-age=60"}, 0, 0, "status"},
    {"must-understand does not lift surrogate no-store",
     200,
     {"cache-control: no-store, must-understand, max-age=60", "surrogate-control: no-store"},
     0,
     0,
     "no-store"},
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
        ck_assert_msg(d.not_stored_by_request == by_request, "%s: not_stored_by_request %d", c->what, d.not_stored_by_request);
        ck_assert_uint_eq(d.ttl, 0);
        ck_assert_uint_eq(d.stale_if_error, 0);
    }
}
END_TEST

START_TEST(storability_details)
{
    policy_decision_t d = decide(500, L("cache-control: public", D0));
    ck_assert_uint_eq(d.ttl, 120);
    d = decide(200, L(LM1000, D0));
    ck_assert_uint_eq(d.ttl, 100);
    d = decide(500, L("cache-control: max-age=x"));
    ck_assert_uint_eq(d.ttl, 0);
    d = decide(200, L("cache-control: no-store, must-understand, max-age=60"));
    ck_assert_uint_eq(d.ttl, 60);
}
END_TEST

/* ================================================================ negative caching (CPDoS) */

typedef struct negative_case {
    const char *what;
    int status;
    const char *lines[4];
    uint32_t negative_ttl;
    int storable;
    uint32_t ttl;
} negative_case_t;

#define SC60 "surrogate-control: max-age=60"
#define CDN60 "cdn-cache-control: max-age=60"

static const negative_case_t negative_cases[] = {
    /* no freshness of their own: not stored at negative_ttl 0, stored negative_ttl when set */
    {"404, 0", 404, {D0}, 0, 0, 0},
    {"405, 0", 405, {D0}, 0, 0, 0},
    {"410, 0", 410, {D0}, 0, 0, 0},
    {"414, 0", 414, {D0}, 0, 0, 0},
    {"501, 0", 501, {D0}, 0, 0, 0},
    {"500, 0", 500, {D0}, 0, 0, 0},
    {"400, 0", 400, {D0}, 0, 0, 0},
    {"404, 15", 404, {D0}, 15, 1, 15},
    {"405, 15", 405, {D0}, 15, 1, 15},
    {"410, 15", 410, {NULL}, 15, 1, 15},
    {"414, 15", 414, {D0}, 15, 1, 15},
    {"501, 15", 501, {D0}, 15, 1, 15},
    {"404 above default_ttl, 600", 404, {D0}, 600, 1, 600},
    /* not heuristically cacheable (RFC 9111 4.2.2): negative_ttl does not make them storable */
    {"500, 15", 500, {D0}, 15, 0, 0},
    {"400, 15", 400, {D0}, 15, 0, 0},
    {"431, 15", 431, {D0}, 15, 0, 0},
    /* the Last-Modified heuristic on an error is capped at negative_ttl (and not stored at 0) */
    {"404 heuristic 100, 0", 404, {LM1000, D0}, 0, 0, 0},
    {"404 heuristic 100, 15", 404, {LM1000, D0}, 15, 1, 15},
    {"404 heuristic 100, 500", 404, {LM1000, D0}, 500, 1, 100},
    /* explicit freshness is the origin's choice, whatever the status and negative_ttl */
    {"404 max-age, 0", 404, {"cache-control: max-age=60", D0}, 0, 1, 60},
    {"404 max-age, 15", 404, {"cache-control: max-age=60", D0}, 15, 1, 60},
    {"405 s-maxage, 0", 405, {"cache-control: s-maxage=60", D0}, 0, 1, 60},
    {"410 expires, 0", 410, {EXP50, D0}, 0, 1, 50},
    {"404 surrogate-control, 0", 404, {SC60, "cache-control: no-cache", D0}, 0, 1, 60},
    {"404 cdn-cache-control, 0", 404, {CDN60, D0}, 0, 1, 60},
    {"500 max-age, 0", 500, {"cache-control: max-age=10", D0}, 0, 1, 10},
    {"404 invalid max-age is stored stale, 0", 404, {"cache-control: max-age=x", D0}, 0, 1, 0},
    {"404 public, 0", 404, {"cache-control: public", D0}, 0, 1, 120},
    {"500 public, 0", 500, {"cache-control: public", D0}, 0, 1, 120},
    {"404 cdn-cc public, 0", 404, {"cdn-cache-control: public", D0}, 0, 1, 120},
    /* no lifetime: no-cache is not freshness */
    {"404 no-cache, 0", 404, {"cache-control: no-cache", D0}, 0, 0, 0},
    {"404 no-cache, 15", 404, {"cache-control: no-cache", D0}, 15, 1, 15},
    /* success statuses are not affected */
    {"200, 0", 200, {D0}, 0, 1, 120},
    {"200 heuristic, 0", 200, {LM1000, D0}, 0, 1, 100},
    {"301, 15", 301, {D0}, 15, 1, 120},
};

START_TEST(negative_caching)
{
    const negative_case_t *c = &negative_cases[_i];
    policy_settings_t st = settings;
    st.negative_ttl = c->negative_ttl;
    policy_header_t h[8];
    size_t n = make_headers(c->lines, h, 8);
    policy_request_info_t req = {1, 0, T0, T0};
    policy_decision_t d;
    memset(&d, 0xa5, sizeof(d));
    policy_decide(c->status, h, n, &req, &st, &d);
    ck_assert_msg(d.storable == c->storable, "%s: storable %d, expected %d", c->what, d.storable, c->storable);
    if (c->storable) {
        ck_assert_msg(d.ttl == c->ttl, "%s: ttl %u, expected %u", c->what, d.ttl, c->ttl);
    } else {
        ck_assert_msg(strcmp(d.not_stored_reason, "status") == 0, "%s: reason %s", c->what, d.not_stored_reason);
        /* a response reason: the proxy decides hit-for-pass on it (and skips it for errors) */
        ck_assert(!d.not_stored_by_request);
        ck_assert_uint_eq(d.ttl, 0);
    }
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
    d = decide(200, L("cdn-cache-control: max-age=60, stale-while-revalidate=7", "cache-control: stale-while-revalidate=70"));
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

/* a CDN-Cache-Control longer than we join is ignored like an unparseable one */
START_TEST(cdn_cc_too_long)
{
    static char big[6000];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof(big) - n, "cdn-cache-control: max-age=60");
    while (n + 8 < sizeof(big))
        n += (size_t)snprintf(big + n, sizeof(big) - n, ", x%04zu", n % 10000);
    /* parsed on its own, it is a fine dictionary */
    const char *v = big + strlen("cdn-cache-control: ");
    policy_cc_t cc;
    ck_assert_int_eq(policy_cdn_cc_parse(v, strlen(v), &cc), 0);
    ck_assert_uint_eq(cc.max_age, 60);
    policy_decision_t d = decide(200, L(big, "cache-control: max-age=40", D0));
    ck_assert_uint_eq(d.ttl, 40);
    /* the same members split over lines that fit still count */
    d = decide(200, L("cdn-cache-control: max-age=60", "cdn-cache-control: x1, x2", "cache-control: max-age=40", D0));
    ck_assert_uint_eq(d.ttl, 60);
}
END_TEST

/* untrusted bytes: every prefix of some nasty fields parses without crashing or reading past len */
START_TEST(parsers_bounded)
{
    static const char *const fields[] = {
        "max-age=\"12\\",
        "no-cache=\"a,b\\\"c\", max-age=1",
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "s-maxage = \"9\" ;x, , private=\"",
        "a=(1 \"x\\\"\";p=:aGk=:);q=?1, b=-1.250, c=*t/k:n",
        "max-age=60;a, no-cache=\"x\", z=(",
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
            (void)policy_sf_dict_parse(copy, n, NULL, NULL);
            (void)policy_cdn_cc_parse(copy, n, &cc);
            policy_header_t h[] = {{"cache-control", 13, copy, n},
                                   {"expires", 7, copy, n},
                                   {"age", 3, copy, n},
                                   {"vary", 4, copy, n},
                                   {"date", 4, copy, n},
                                   {"surrogate-control", 17, copy, n},
                                   {"cdn-cache-control", 17, copy, n},
                                   {"cdn-cache-control", 17, copy, n}};
            policy_request_info_t req = {1, 0, T0, T0};
            policy_decision_t d;
            policy_decide(200, h, 8, &req, &settings, &d);
            free(copy);
        }
    }
}
END_TEST

static Suite *policy_decide_suite(void)
{
    Suite *s = suite_create("cache_policy_decide");
    TCase *tc = tcase_create("decide");
    tcase_add_loop_test(tc, ttl_precedence, 0, (int)(sizeof(ttl_cases) / sizeof(ttl_cases[0])));
    tcase_add_loop_test(tc, storability, 0, (int)(sizeof(store_cases) / sizeof(store_cases[0])));
    tcase_add_test(tc, storability_details);
    tcase_add_loop_test(tc, negative_caching, 0, (int)(sizeof(negative_cases) / sizeof(negative_cases[0])));
    tcase_add_test(tc, revalidation_flags);
    tcase_add_test(tc, initial_age);
    tcase_add_test(tc, current_age);
    tcase_add_test(tc, cdn_cc_too_long);
    tcase_add_test(tc, parsers_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policy_decide_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * tests/unit/test_policy_cc.c — server/cache_policy.c's field parsers against RFC 9111,
 * RFC 8941 and RFC 9213: Cache-Control (case, whitespace, quoted strings, invalid values,
 * duplicates, overflow), RFC 8941 Dictionaries (the RFC's examples and what must not
 * parse) and CDN-Cache-Control's directive types. Each case names the rule it checks.
 */
#include "server/cache_policy.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/unit/unit_policy.h"

static policy_cc_t cc_of(const char *v)
{
    policy_cc_t cc;
    policy_cc_init(&cc);
    policy_cc_parse(&cc, v, strlen(v));
    return cc;
}

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
    ck_assert(cc.no_store && cc.private_ && cc.must_revalidate && cc.proxy_revalidate && cc.no_transform && cc.immutable &&
              cc.only_if_cached && cc.no_cache);
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
    /* after an unterminated quoted-string nobody knows where it was meant to end: restrictive
     * directives in the rest are honoured, a max-age there makes max-age invalid (stale), and
     * permissive ones are not applied */
    cc = cc_of("max-age=5, foo=\"abc, no-store");
    ck_assert_uint_eq(cc.max_age, 5);
    ck_assert(cc.no_store);
    cc = cc_of("community=\"UCI, private, must-revalidate, public, immutable");
    ck_assert(cc.private_ && cc.must_revalidate);
    ck_assert(!cc.public_ && !cc.immutable);
    cc = cc_of("no-cache=\"set-cookie, max-age=60");
    ck_assert(cc.no_cache && cc.max_age_invalid);
    ck_assert_uint_eq(cc.max_age, POLICY_UNSET);
    /* the same when the quote opens in garbage, or in junk after a directive */
    cc = cc_of("=\", no-store");
    ck_assert(cc.no_store);
    cc = cc_of("max-age=5 \"x, no-cache, proxy-revalidate");
    ck_assert(cc.no_cache && cc.proxy_revalidate && cc.max_age_invalid);
    /* a control byte ends a quoted-string as unterminated too */
    cc = cc_of("ext=\"a\x01b\", no-store");
    ck_assert(cc.no_store);
    /* a quote that is closed still hides what is inside it */
    cc = cc_of("ext=\"a, no-store\", max-age=5");
    ck_assert(!cc.no_store);
    ck_assert_uint_eq(cc.max_age, 5);
}
END_TEST

START_TEST(cc_invalid_values)
{
    static const char *const bad[] = {
        "max-age=abc",    "max-age=\"\"", "max-age=",     "max-age",          "max-age=-1", "max-age=1.5", "max-age=10 junk",
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

/* ================================================================ RFC 8941 Dictionary */

#define SF_MAX 16

typedef struct sf_seen {
    size_t n;
    policy_sf_member_t m[SF_MAX];
} sf_seen_t;

static void sf_collect(const policy_sf_member_t *m, void *ctx)
{
    sf_seen_t *seen = ctx;
    ck_assert_uint_lt(seen->n, SF_MAX);
    seen->m[seen->n++] = *m;
}

/* parse s; returns policy_sf_dict_parse's result with the members in *seen */
static int sf_parse(const char *s, sf_seen_t *seen)
{
    memset(seen, 0, sizeof(*seen));
    int n = policy_sf_dict_parse(s, strlen(s), sf_collect, seen);
    ck_assert_int_eq(n < 0 ? 0 : n, (int)seen->n); /* members are reported only when it parses */
    return n;
}

static int sf_span_is(const char *p, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(p, lit, len) == 0;
}

static void sf_expect(const sf_seen_t *seen, size_t i, const char *key, policy_sf_type_t type, int64_t number,
                      const char *item, const char *params)
{
    ck_assert_uint_lt(i, seen->n);
    const policy_sf_member_t *m = &seen->m[i];
    ck_assert_msg(sf_span_is(m->key, m->key_len, key), "member %zu: key '%.*s', expected '%s'", i, (int)m->key_len, m->key, key);
    ck_assert_msg(m->type == type, "member %zu (%s): type %d, expected %d", i, key, (int)m->type, (int)type);
    ck_assert_msg(m->number == number, "member %zu (%s): number %lld, expected %lld", i, key, (long long)m->number,
                  (long long)number);
    ck_assert_msg(sf_span_is(m->item, m->item_len, item), "member %zu (%s): item '%.*s', expected '%s'", i, key,
                  (int)m->item_len, m->item, item);
    ck_assert_msg(sf_span_is(m->params, m->params_len, params), "member %zu (%s): params '%.*s', expected '%s'", i, key,
                  (int)m->params_len, m->params, params);
}

START_TEST(sf_dict_rfc8941_examples)
{
    sf_seen_t s;
    /* RFC 8941 3.2 */
    ck_assert_int_eq(sf_parse("en=\"Applepie\", da=:w4ZibGV0w6ZydGUK:", &s), 2);
    sf_expect(&s, 0, "en", POLICY_SF_STRING, 0, "\"Applepie\"", "");
    sf_expect(&s, 1, "da", POLICY_SF_BYTES, 0, ":w4ZibGV0w6ZydGUK:", "");
    ck_assert_int_eq(sf_parse("a=?0, b, c; foo=bar", &s), 3);
    sf_expect(&s, 0, "a", POLICY_SF_BOOLEAN, 0, "?0", "");
    sf_expect(&s, 1, "b", POLICY_SF_BOOLEAN, 1, "", "");
    sf_expect(&s, 2, "c", POLICY_SF_BOOLEAN, 1, "", "; foo=bar");
    ck_assert_int_eq(sf_parse("rating=1.5, feelings=(joy sadness)", &s), 2);
    sf_expect(&s, 0, "rating", POLICY_SF_DECIMAL, 1500, "1.5", "");
    sf_expect(&s, 1, "feelings", POLICY_SF_INNER_LIST, 2, "(joy sadness)", "");
    ck_assert_int_eq(sf_parse("a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid", &s), 4);
    sf_expect(&s, 2, "c", POLICY_SF_INTEGER, 4, "4", ";aa=bb");
    sf_expect(&s, 3, "d", POLICY_SF_INNER_LIST, 2, "(5 6)", ";valid");
    /* 3.3.3 strings with escapes, 3.3.4 tokens with ":" and "/" */
    ck_assert_int_eq(sf_parse("s=\"a\\\"b\\\\c\", t=foo/bar:baz, u=*x", &s), 3);
    sf_expect(&s, 0, "s", POLICY_SF_STRING, 0, "\"a\\\"b\\\\c\"", "");
    sf_expect(&s, 1, "t", POLICY_SF_TOKEN, 0, "foo/bar:baz", "");
    sf_expect(&s, 2, "u", POLICY_SF_TOKEN, 0, "*x", "");
    /* 3.3.1 / 3.3.2 the limits of Integer and Decimal */
    ck_assert_int_eq(sf_parse("a=999999999999999, b=-999999999999999, c=123456789012.123, d=-1.05, e=0.001", &s), 5);
    sf_expect(&s, 0, "a", POLICY_SF_INTEGER, 999999999999999LL, "999999999999999", "");
    sf_expect(&s, 1, "b", POLICY_SF_INTEGER, -999999999999999LL, "-999999999999999", "");
    sf_expect(&s, 2, "c", POLICY_SF_DECIMAL, 123456789012123LL, "123456789012.123", "");
    sf_expect(&s, 3, "d", POLICY_SF_DECIMAL, -1050, "-1.05", "");
    sf_expect(&s, 4, "e", POLICY_SF_DECIMAL, 1, "0.001", "");
    /* leading zeroes are fine (4.2.4 reads digits) */
    ck_assert_int_eq(sf_parse("a=0060", &s), 1);
    sf_expect(&s, 0, "a", POLICY_SF_INTEGER, 60, "0060", "");
    /* byte sequences: empty, padded, unpadded (4.2.7: SHOULD NOT fail without padding) */
    ck_assert_int_eq(sf_parse("a=::, b=:aGVsbG8=:, c=:aGVsbG8:", &s), 3);
    /* keys: "*" first, then the whole key alphabet */
    ck_assert_int_eq(sf_parse("*a=1, a_b-c.d*9=2", &s), 2);
    sf_expect(&s, 1, "a_b-c.d*9", POLICY_SF_INTEGER, 2, "2", "");
    /* inner lists: empty, spaces, item parameters, list parameters */
    ck_assert_int_eq(sf_parse("a=(), b=(  1  \"x\";p=?1  ), c=(tok);q=1.5;r", &s), 3);
    sf_expect(&s, 0, "a", POLICY_SF_INNER_LIST, 0, "()", "");
    sf_expect(&s, 1, "b", POLICY_SF_INNER_LIST, 2, "(  1  \"x\";p=?1  )", "");
    sf_expect(&s, 2, "c", POLICY_SF_INNER_LIST, 1, "(tok)", ";q=1.5;r");
    /* whitespace: SP around the value, OWS around the commas, SP after ";" */
    ck_assert_int_eq(sf_parse("  a=1 ,\tb=2\t,  c;  x=1  ", &s), 3);
    sf_expect(&s, 2, "c", POLICY_SF_BOOLEAN, 1, "", ";  x=1");
    ck_assert_int_eq(sf_parse("a=1,b=2", &s), 2);
    /* a repeated key is reported each time; the last one is the dictionary's value */
    ck_assert_int_eq(sf_parse("a=1, a=2", &s), 2);
    sf_expect(&s, 1, "a", POLICY_SF_INTEGER, 2, "2", "");
    /* empty field value: an empty dictionary */
    ck_assert_int_eq(sf_parse("", &s), 0);
    ck_assert_int_eq(sf_parse("   ", &s), 0);
    ck_assert_int_eq(policy_sf_dict_parse(NULL, 0, NULL, NULL), 0);
    ck_assert_int_eq(policy_sf_dict_parse("a, b", 4, NULL, NULL), 2);
}
END_TEST

START_TEST(sf_dict_invalid)
{
    static const char *const bad[] = {
        /* list syntax */
        "a=1, ,",
        "a=1,",
        ",a=1",
        "a=1,,b=2",
        "a=1 b=2",
        "a=1;",
        "a ;x",
        "\ta=1",
        "=1",
        "a=",
        "a==1",
        /* keys: lower-case only, no leading digit or "_" */
        "Max-Age=60",
        "max-Age=60",
        "1a=1",
        "_a=1",
        "-a=1",
        "a@b=1",
        "a;X=1",
        /* integers and decimals */
        "a=1000000000000000",
        "a=-1000000000000000",
        "a=1234567890123.1",
        "a=1.1234",
        "a=1.",
        "a=-",
        "a=-.5",
        "a=.5",
        "a=+5",
        "a=1.2.3",
        "a=--1",
        "a=1e3",
        "a=0x10",
        /* strings */
        "a=\"abc",
        "a=\"\\x\"",
        "a=\"tab\there\"",
        "a=\"\xc3\xa9\"",
        "a=\"a\\\"",
        "a='x'",
        /* tokens and byte sequences */
        "a=1foo",
        "a=:aGVsbG8=",
        "a=:aGVsbG!8=:",
        "a=:a:",
        "a=:aGVsbG8=x:",
        "a=:aGVs===:",
        "a=:aGVsbG8=.:",
        "a=:aGVsbA=:",
        /* booleans */
        "a=?",
        "a=?2",
        "a=?01",
        "a=?true",
        /* inner lists */
        "a=(1",
        "a=(1,2)",
        "a=((1))",
        "a=(1)(2)",
        "a=(1;)",
        "a=(1\t2)",
        "a=( 1 2 ) x",
        /* parameters */
        "a;=1",
        "a;b=",
        "a;b=(1)",
        "a=1;b=?2",
        /* non-ASCII and control bytes */
        "a=1, b=\xff",
        "\xef\xbb\xbf"
        "a=1",
        "a=1\r\n",
        "a=1\x01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sf_seen_t s;
        ck_assert_msg(sf_parse(bad[i], &s) == -1, "'%s' should not parse", bad[i]);
        ck_assert_uint_eq(s.n, 0);
    }
    /* an embedded NUL is a byte like any other: not ASCII text, so not a dictionary */
    ck_assert_int_eq(policy_sf_dict_parse("a=1\0", 4, NULL, NULL), -1);
    ck_assert_int_eq(policy_sf_dict_parse("a=\"\0\"", 5, NULL, NULL), -1);
    /* ... in a key too (found by fuzz_sf_dict: a NUL matched strchr's terminator) */
    ck_assert_int_eq(policy_sf_dict_parse("a\0b=1", 5, NULL, NULL), -1);
    ck_assert_int_eq(policy_sf_dict_parse("max-age\0=1", 10, NULL, NULL), -1);
    ck_assert_int_eq(policy_sf_dict_parse("a;p\0=1", 7, NULL, NULL), -1);
}
END_TEST

static int cdn_of(const char *v, policy_cc_t *cc)
{
    return policy_cdn_cc_parse(v, strlen(v), cc);
}

START_TEST(cdn_cc_types)
{
    policy_cc_t cc;
    ck_assert_int_eq(cdn_of("max-age=60", &cc), 0);
    ck_assert_uint_eq(cc.max_age, 60);
    ck_assert_uint_eq(cc.s_maxage, POLICY_UNSET);
    /* RFC 9213 2.1: parameters on directives are ignored */
    ck_assert_int_eq(cdn_of("max-age=60;a=1;b, s-maxage=9;x=\"y\"", &cc), 0);
    ck_assert_uint_eq(cc.max_age, 60);
    ck_assert_uint_eq(cc.s_maxage, 9);
    /* RFC 8941 4.2.2: a repeated key overwrites (not "stale" as a repeated Cache-Control max-age) */
    ck_assert_int_eq(cdn_of("max-age=60, max-age=10", &cc), 0);
    ck_assert_uint_eq(cc.max_age, 10);
    ck_assert_int_eq(cdn_of("max-age=1.5, max-age=10", &cc), 0);
    ck_assert_uint_eq(cc.max_age, 10);
    /* every directive we read, with its type */
    ck_assert_int_eq(cdn_of("s-maxage=0, stale-while-revalidate=5, stale-if-error=6, must-revalidate, "
                            "proxy-revalidate, public, immutable, no-transform, must-understand, no-store, "
                            "no-cache, private",
                            &cc),
                     0);
    ck_assert_uint_eq(cc.s_maxage, 0);
    ck_assert_uint_eq(cc.stale_while_revalidate, 5);
    ck_assert_uint_eq(cc.stale_if_error, 6);
    ck_assert(cc.must_revalidate && cc.proxy_revalidate && cc.public_ && cc.immutable && cc.no_transform &&
              cc.must_understand && cc.no_store && cc.no_cache && cc.private_);
    ck_assert(!cc.max_age_invalid && !cc.s_maxage_invalid);
    /* no-cache / private: true or a String of field names; ?1 is true */
    ck_assert_int_eq(cdn_of("no-cache=\"set-cookie, x-a\", private=\"x\", no-store=?1", &cc), 0);
    ck_assert(cc.no_cache && cc.private_ && cc.no_store);
    /* too large for us: capped like delta-seconds */
    ck_assert_int_eq(cdn_of("max-age=999999999999999", &cc), 0);
    ck_assert_uint_eq(cc.max_age, CAP);
    /* unknown directives of any type are ignored, and still make the field non-empty
     * (RFC 9213 3.1's "CDN-Cache-Control: none") */
    ck_assert_int_eq(cdn_of("none", &cc), 0);
    ck_assert_uint_eq(cc.max_age, POLICY_UNSET);
    ck_assert_int_eq(cdn_of("foo=(1 2), bar=1.5, baz=\"q\", qux=:AAAA:, max-age=5, only-if-cached=7", &cc), 0);
    ck_assert_uint_eq(cc.max_age, 5);
    ck_assert(!cc.only_if_cached);

    static const char *const ignored[] = {
        "",
        " ",
        /* not a dictionary */
        "max-age=60, ,",
        "Max-Age=60",
        "max-age=60 junk",
        "max-age = 60",
        "max-age=60,",
        "max-age=\"60",
        "max-age=60, no-store junk",
        "=x",
        /* a known directive of the wrong type (RFC 9213 2.1's inferred constraints) */
        "max-age=\"60\"",
        "max-age=-1",
        "max-age=1.5",
        "max-age=60.0",
        "max-age=(60)",
        "max-age=?1",
        "max-age",
        "max-age=abc",
        "max-age=:AAAA:",
        "s-maxage=\"1\"",
        "stale-while-revalidate=-5",
        "stale-if-error=1.0",
        "no-store=?0",
        "no-store=1",
        "no-store=\"x\"",
        "must-revalidate=yes",
        "public=?0",
        "private=?0",
        "private=token",
        "no-cache=1",
        "no-cache=(a b)",
        /* the last value of a repeated key is the one judged */
        "max-age=10, max-age=1.5",
        "max-age=10, public, max-age=\"10\"",
    };
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
        ck_assert_msg(cdn_of(ignored[i], &cc) == -1, "CDN-Cache-Control '%s' should be ignored", ignored[i]);
        /* nothing of an ignored field leaks into the struct */
        ck_assert(cc.max_age == POLICY_UNSET && cc.s_maxage == POLICY_UNSET && !cc.no_store && !cc.private_);
    }
}
END_TEST

static Suite *policy_cc_suite(void)
{
    Suite *s = suite_create("cache_policy_cc");
    TCase *tc = tcase_create("cc");
    tcase_add_test(tc, cc_basic_and_case);
    tcase_add_test(tc, cc_whitespace_and_empty_elements);
    tcase_add_test(tc, cc_quoted_strings);
    tcase_add_test(tc, cc_invalid_values);
    tcase_add_test(tc, cc_duplicates);
    tcase_add_test(tc, cc_overflow_capped);
    tcase_add_test(tc, cc_must_understand);
    suite_add_tcase(s, tc);

    tc = tcase_create("sf");
    tcase_add_test(tc, sf_dict_rfc8941_examples);
    tcase_add_test(tc, sf_dict_invalid);
    tcase_add_test(tc, cdn_cc_types);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policy_cc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * tests/unit/test_cache_key.c — the cache key (server/cache_key.c): the authority check,
 * the absolute-form split, the key's format and buffer contract, the query rules, and the
 * property that matters for cache poisoning: two (host, path-with-query) pairs never share
 * a key unless they are the same pair after the key's intended normalisation.
 *
 * The property test compares keys, not hashes, and checks them against an oracle written
 * apart from the code under test: the normalised pair, encoded with length prefixes.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/cache_key.h"

static const cache_key_rules_t plain_rules = {.include_host = 1};

/* untrusted bytes: an exact-length heap copy, so a read past the end is caught by ASan */
static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p, s, n);
    return p;
}

static int valid(const char *s, size_t n)
{
    char *copy = dup_exact(s, n);
    int r = cache_key_authority_valid(copy, n);
    free(copy);
    return r;
}

#define VALID(lit) valid(lit, sizeof(lit) - 1)

START_TEST(test_authority_valid)
{
    const char *ok[] = {
        "example.com",      "EXAMPLE.com:8080", "127.0.0.1",     "127.0.0.1:80",     "[::1]", "[::1]:8080", "[2001:db8::1]",
        "[::ffff:1.2.3.4]", "a-b_c~d.e",        "a!$&'()*+,;=b", "xn--bcher-kva.ch", "a%41b", "a:",         "a:0",
        "a:65535",          "localhost",        "999.1.1.1"};
    for (size_t i = 0; i != sizeof(ok) / sizeof(ok[0]); ++i)
        ck_assert_msg(valid(ok[i], strlen(ok[i])) == 1, "should be valid: %s", ok[i]);

    const char *bad[] = {"",        "a/b",      "a?b",       "a#b",  "user@a", "a b",      "a\tb",  ":80",          "a:8o",
                         "a:65536", "a:123456", "a:-1",      "[::1", "[::1]x", "[zz::1]",  "[]",    "[::1%25eth0]", "[v1.x]",
                         "a\\b",    "a\"b",     "a%2",       "a%zz", "a%",     "\xc3\xa9", "a:b:c", "a\x7f",        "a\r\nb",
                         "a<b",     "a|b",      "[1.2.3.4]", " a",   "a "};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        ck_assert_msg(valid(bad[i], strlen(bad[i])) == 0, "should be invalid: %s", bad[i]);

    /* bytes past a NUL must not be hidden from the check (inet_pton would stop there) */
    ck_assert_int_eq(VALID("[::1\0x]"), 0);
    ck_assert_int_eq(VALID("a\0b"), 0);
    ck_assert_int_eq(VALID("a\0"), 0);
}
END_TEST

static int split(const char *t, size_t *ao, size_t *al, size_t *po)
{
    char *copy = dup_exact(t, strlen(t));
    int r = cache_key_split_absolute(copy, strlen(t), ao, al, po);
    free(copy);
    return r;
}

START_TEST(test_split_absolute)
{
    size_t ao, al, po;
    ck_assert_int_eq(split("http://a.example/p?q", &ao, &al, &po), 0);
    ck_assert_uint_eq(ao, 7);
    ck_assert_uint_eq(al, 9);
    ck_assert_uint_eq(po, 16);
    ck_assert_int_eq(split("HTTPS://h:8443", &ao, &al, &po), 0);
    ck_assert_uint_eq(ao, 8);
    ck_assert_uint_eq(al, 6);
    ck_assert_uint_eq(po, 14); /* no path: the end */
    ck_assert_int_eq(split("http://h?x=1", &ao, &al, &po), 0);
    ck_assert_uint_eq(al, 1);
    ck_assert_uint_eq(po, 8); /* the rest starts with '?' */
    ck_assert_int_eq(split("http://u@h/x", &ao, &al, &po), 0);
    ck_assert_uint_eq(al, 3); /* "u@h": the validator refuses it */
    ck_assert_int_eq(split("http://h#f/x", &ao, &al, &po), 0);
    ck_assert_uint_eq(al, 3); /* "h#f": refused as well */
    ck_assert_int_eq(split("http:///x", &ao, &al, &po), 0);
    ck_assert_uint_eq(al, 0);
    ck_assert_int_eq(split("/x", &ao, &al, &po), -1);
    ck_assert_int_eq(split("ftp://h/x", &ao, &al, &po), -1);
    ck_assert_int_eq(split("http:/h", &ao, &al, &po), -1);
    ck_assert_int_eq(split("http", &ao, &al, &po), -1);
    ck_assert_int_eq(split("", &ao, &al, &po), -1);
}
END_TEST

/* the key as a malloc'd string (NUL-terminated for the assertions), with the buffer contract checked */
static char *key_of_scheme(const cache_key_rules_t *rules, int https, const char *host, size_t host_len, const char *path,
                           size_t path_len, size_t *len_out)
{
    char *h = dup_exact(host, host_len), *p = dup_exact(path, path_len);
    size_t cap = cache_key_max_len(host_len, path_len);
    char *buf = malloc(cap + 1);
    ck_assert_ptr_nonnull(buf);
    size_t n = cache_key_build_scheme(rules, https, h, host_len, p, path_len, buf, cap);
    ck_assert_uint_le(n, cap);
    buf[n] = '\0';
    /* an exact buffer gives the same bytes; one byte less is reported as too small */
    char *exact = malloc(n ? n : 1);
    ck_assert_uint_eq(cache_key_build_scheme(rules, https, h, host_len, p, path_len, exact, n), n);
    ck_assert(n == 0 || memcmp(exact, buf, n) == 0);
    free(exact);
    if (n > 0) {
        char *small = malloc(n - 1 ? n - 1 : 1);
        ck_assert_uint_gt(cache_key_build_scheme(rules, https, h, host_len, p, path_len, small, n - 1), n - 1);
        free(small);
    }
    free(h);
    free(p);
    *len_out = n;
    return buf;
}

static char *key_of(const cache_key_rules_t *rules, const char *host, size_t host_len, const char *path, size_t path_len,
                    size_t *len_out)
{
    return key_of_scheme(rules, 0, host, host_len, path, path_len, len_out);
}

static void expect_key(const cache_key_rules_t *rules, const char *host, const char *path, const char *want)
{
    size_t n;
    char *k = key_of(rules, host, strlen(host), path, strlen(path), &n);
    ck_assert_msg(n == strlen(want) && memcmp(k, want, n) == 0, "key of (%s, %s): got \"%s\", want \"%s\"", host, path, k, want);
    free(k);
}

START_TEST(test_key_format)
{
    expect_key(&plain_rules, "Example.COM:80", "/a/b?x=1", "example.com\n/a/b?x=1");
    expect_key(&plain_rules, "example.com:8080", "/", "example.com:8080\n/");
    expect_key(&plain_rules, "[::1]:80", "/", "[::1]\n/");
    expect_key(&plain_rules, ":80", "/", ":80\n/"); /* ":80" alone is no port of a host */
    expect_key(&plain_rules, "", "/x", "\n/x");
    /* the attack from the issue: two different keys */
    expect_key(&plain_rules, "www.example.com/assets/v2", "/app.js", "www.example.com%2Fassets%2Fv2\n/app.js");
    expect_key(&plain_rules, "www.example.com", "/assets/v2/app.js", "www.example.com\n/assets/v2/app.js");
    /* '%' and the separator are escaped in the host, never in the path */
    expect_key(&plain_rules, "a%41\nb", "/p\n%", "a%2541%0Ab\n/p\n%");
    const cache_key_rules_t no_host = {.include_host = 0};
    expect_key(&no_host, "example.com", "/a", "\n/a");
    expect_key(&no_host, "other.example", "/a", "\n/a");
}
END_TEST

START_TEST(test_key_scheme)
{
    const cache_key_rules_t with_scheme = {.include_host = 1, .include_scheme = 1};
    size_t n;
    char *k = key_of_scheme(&with_scheme, 1, "Example.com", 11, "/a", 2, &n);
    ck_assert_uint_eq(n, strlen("https://example.com\n/a"));
    ck_assert(memcmp(k, "https://example.com\n/a", n) == 0);
    free(k);
    expect_key(&with_scheme, "example.com", "/a", "http://example.com\n/a"); /* cache_key_build: the http case */
    /* without the rule the scheme changes nothing */
    k = key_of_scheme(&plain_rules, 1, "example.com", 11, "/a", 2, &n);
    ck_assert(n == strlen("example.com\n/a") && memcmp(k, "example.com\n/a", n) == 0);
    free(k);
    /* a host that spells a scheme cannot forge a key of the other form: its '/' is escaped */
    expect_key(&plain_rules, "https://example.com", "/a", "https:%2F%2Fexample.com\n/a");
    const cache_key_rules_t no_host = {.include_scheme = 1};
    k = key_of_scheme(&no_host, 1, "example.com", 11, "/a", 2, &n);
    ck_assert(n == strlen("https://\n/a") && memcmp(k, "https://\n/a", n) == 0);
    free(k);
}
END_TEST

START_TEST(test_key_query_rules)
{
    static const char *const ignore[] = {"utm_source", "fbclid"};
    const cache_key_rules_t rules = {.include_host = 1, .sort_query = 1, .ignore_params = ignore, .num_ignore_params = 2};
    expect_key(&rules, "h", "/p?b=2&utm_source=x&a=1", "h\n/p?a=1&b=2");
    expect_key(&rules, "h", "/p?utm_source", "h\n/p");
    expect_key(&rules, "h", "/p?&&a&&", "h\n/p?a");
    expect_key(&rules, "h", "/p?fbclid=1&utm_source=2", "h\n/p");
    expect_key(&rules, "h", "/p", "h\n/p");
    const cache_key_rules_t unsorted = {.include_host = 1, .ignore_params = ignore, .num_ignore_params = 2};
    expect_key(&unsorted, "h", "/p?b=2&fbclid=x&a=1", "h\n/p?b=2&a=1");
    /* a query of more than 64 kept parameters is kept as it came */
    char path[1024] = "/q?";
    for (int i = 0; i < 70; i++)
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "%sz%d", i ? "&" : "", 70 - i);
    char want[1100];
    snprintf(want, sizeof(want), "h\n%s", path);
    expect_key(&rules, "h", path, want);
    /* a long path goes through the heap copy, not the stack buffer */
    char *longpath = malloc(5000);
    memset(longpath, 'a', 4999);
    longpath[0] = '/';
    longpath[2000] = '?';
    longpath[2001] = 'b';
    longpath[2002] = '&';
    longpath[4999] = '\0';
    size_t n;
    char *k = key_of(&rules, "h", 1, longpath, strlen(longpath), &n);
    ck_assert_uint_eq(n, 2 + 4999);
    free(k);
    free(longpath);
}
END_TEST

/* ---------------------------------------------------------------- the property */

/* bytes the generator draws from: separators of every kind, NUL, high bytes, case, ":80" */
static const unsigned char alphabet[] = {'/', ':', '\0', 0x80, 0xff, '?', '&', '=', '%', '\n', 'A',  'a',
                                         'b', '8', '0',  '.',  '[',  ']', '@', ' ', 'B', '#',  0xc3, 'u'};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    /* xorshift64*: reproducible, so a failure can be replayed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32) % n;
}

static size_t random_bytes(unsigned char *out, size_t max)
{
    size_t n = rnd((uint32_t)max + 1);
    for (size_t i = 0; i != n; ++i)
        out[i] = alphabet[rnd(sizeof(alphabet))];
    return n;
}

typedef struct entry {
    char *key;
    size_t key_len;
    char *norm; /* the oracle's normalised pair */
    size_t norm_len;
    char *desc; /* the pair, for a failure message */
} entry_t;

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        b->cap = (b->len + len + 1) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

/* one field of the oracle's encoding: its length in decimal, ':', its bytes (injective) */
static void put_field(buf_t *b, const void *data, size_t len)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%zu:", len);
    put(b, num, (size_t)n);
    put(b, data, len);
}

static int ignored(const cache_key_rules_t *rules, const char *p, size_t len)
{
    size_t name_len = 0;
    while (name_len < len && p[name_len] != '=')
        ++name_len;
    for (size_t i = 0; i != rules->num_ignore_params; ++i)
        if (strlen(rules->ignore_params[i]) == name_len && memcmp(rules->ignore_params[i], p, name_len) == 0)
            return 1;
    return 0;
}

typedef struct span {
    const char *p;
    size_t len;
} span_t;

static int span_cmp(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/*
 * What the key is meant to identify, written out independently: the host lower-cased (ASCII
 * letters only) without a trailing ":80" (when something precedes it), or nothing without
 * include_host; then the path with its query as it is, or, when the rules rewrite queries,
 * the path before '?' and the list of non-empty, not ignored parameters (sorted when asked).
 */
static void oracle(const cache_key_rules_t *rules, int https, const char *host, size_t host_len, const char *path,
                   size_t path_len, buf_t *out)
{
    out->len = 0;
    if (rules->include_scheme)
        put_field(out, https ? "https" : "http", https ? 5 : 4);
    if (!rules->include_host)
        host_len = 0;
    if (host_len > 3 && memcmp(host + host_len - 3, ":80", 3) == 0)
        host_len -= 3;
    char *lower = malloc(host_len + 1);
    for (size_t i = 0; i != host_len; ++i)
        lower[i] = host[i] >= 'A' && host[i] <= 'Z' ? (char)(host[i] + 32) : host[i];
    put_field(out, lower, host_len);
    free(lower);
    if (!rules->sort_query && rules->num_ignore_params == 0) {
        put_field(out, path, path_len);
        return;
    }
    /* "/p" and "/p?" (or "/p?&", or only ignored parameters) are the same URL to the rules */
    const char *q = memchr(path, '?', path_len);
    put_field(out, path, q != NULL ? (size_t)(q - path) : path_len);
    span_t params[256];
    size_t n = 0;
    const char *p = q != NULL ? q + 1 : path + path_len, *end = path + path_len;
    while (q != NULL && p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t len = (size_t)((amp != NULL ? amp : end) - p);
        if (len != 0 && !ignored(rules, p, len)) {
            ck_assert_uint_lt(n, 64); /* the generator stays below the rewrite's limit */
            params[n++] = (span_t){p, len};
        }
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    if (rules->sort_query)
        qsort(params, n, sizeof(params[0]), span_cmp);
    for (size_t i = 0; i != n; ++i)
        put_field(out, params[i].p, params[i].len);
}

static char *describe(const char *host, size_t host_len, const char *path, size_t path_len)
{
    char *d = malloc(4 * (host_len + path_len) + 16), *o = d;
    for (size_t i = 0; i != host_len + path_len; ++i) {
        unsigned char c = (unsigned char)(i < host_len ? host[i] : path[i - host_len]);
        if (i == host_len)
            o += sprintf(o, " | ");
        o += c >= 0x20 && c < 0x7f && c != '\\' ? sprintf(o, "%c", c) : sprintf(o, "\\x%02x", c);
    }
    *o = '\0';
    return d;
}

static void add_pair(const cache_key_rules_t *rules, entry_t *e, const char *host, size_t host_len, const char *path,
                     size_t path_len)
{
    int https = rules->include_scheme ? rand() & 1 : 0;
    e->key = key_of_scheme(rules, https, host, host_len, path, path_len, &e->key_len);
    buf_t b = {0};
    oracle(rules, https, host, host_len, path, path_len, &b);
    e->norm = b.p != NULL ? b.p : calloc(1, 1);
    e->norm_len = b.len;
    e->desc = describe(host, host_len, path, path_len);
}

static int entry_cmp(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c != 0 ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int entry_norm_cmp(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    size_t n = x->norm_len < y->norm_len ? x->norm_len : y->norm_len;
    int c = memcmp(x->norm, y->norm, n);
    return c != 0 ? c : (x->norm_len > y->norm_len) - (x->norm_len < y->norm_len);
}

/*
 * Thousands of pairs: random strings split at every position (exactly the pairs a key that
 * glues host and path together confuses), and independent random hosts and paths with a
 * query. Sorted by key; any two equal keys must come from the same normalised pair, and
 * two pairs with the same normalised form must get the same key.
 */
static void check_no_collision(const cache_key_rules_t *rules)
{
    enum { STRINGS = 1500, LEN = 14, PAIRS = 4000 };
    size_t cap = STRINGS * (LEN + 1) + PAIRS, n = 0;
    entry_t *entries = calloc(cap, sizeof(*entries));
    unsigned char s[64], h[64], p[64];
    for (int i = 0; i != STRINGS; ++i) {
        size_t len = random_bytes(s, LEN);
        for (size_t at = 0; at <= len; ++at)
            add_pair(rules, &entries[n++], (const char *)s, at, (const char *)s + at, len - at);
    }
    for (int i = 0; i != PAIRS; ++i) {
        size_t hl = random_bytes(h, 12), pl = random_bytes(p, 20);
        add_pair(rules, &entries[n++], (const char *)h, hl, (const char *)p, pl);
    }
    ck_assert_uint_le(n, cap);
    qsort(entries, n, sizeof(*entries), entry_cmp);
    size_t distinct_keys = 0;
    for (size_t i = 0; i != n; ++i) {
        if (i == 0 || entry_cmp(&entries[i - 1], &entries[i]) != 0) {
            ++distinct_keys;
            continue;
        }
        ck_assert_msg(entries[i - 1].norm_len == entries[i].norm_len &&
                          memcmp(entries[i - 1].norm, entries[i].norm, entries[i].norm_len) == 0,
                      "two different pairs share a key: [%s] and [%s]", entries[i - 1].desc, entries[i].desc);
    }
    /* the other way round: the same normalised pair always gets the same key */
    qsort(entries, n, sizeof(*entries), entry_norm_cmp);
    for (size_t i = 1; i != n; ++i)
        if (entry_norm_cmp(&entries[i - 1], &entries[i]) == 0)
            ck_assert_msg(entry_cmp(&entries[i - 1], &entries[i]) == 0, "one pair, two keys: [%s] and [%s]",
                          entries[i - 1].desc, entries[i].desc);
    ck_assert_uint_gt(distinct_keys, n / 4); /* the generator did make different pairs */
    for (size_t i = 0; i != n; ++i) {
        free(entries[i].key);
        free(entries[i].norm);
        free(entries[i].desc);
    }
    free(entries);
}

START_TEST(test_no_two_pairs_share_a_key)
{
    check_no_collision(&plain_rules);
}
END_TEST

START_TEST(test_no_two_pairs_share_a_key_with_query_rules)
{
    static const char *const ignore[] = {"a", "b=", "A"};
    const cache_key_rules_t sorted = {.include_host = 1, .sort_query = 1, .ignore_params = ignore, .num_ignore_params = 3};
    check_no_collision(&sorted);
    const cache_key_rules_t unsorted = {.include_host = 1, .ignore_params = ignore, .num_ignore_params = 1};
    check_no_collision(&unsorted);
    const cache_key_rules_t no_host = {.include_host = 0, .sort_query = 1};
    check_no_collision(&no_host);
}
END_TEST

/* with the scheme in the key, http and https objects of one URL never share a key, and no pair of one scheme takes another's */
START_TEST(test_no_two_pairs_share_a_key_with_scheme)
{
    const cache_key_rules_t with_scheme = {.include_host = 1, .include_scheme = 1};
    check_no_collision(&with_scheme);
    static const char *const ignore[] = {"a"};
    const cache_key_rules_t rewritten = {
        .include_host = 1, .include_scheme = 1, .sort_query = 1, .ignore_params = ignore, .num_ignore_params = 1};
    check_no_collision(&rewritten);
}
END_TEST

static Suite *cache_key_suite(void)
{
    Suite *s = suite_create("cache_key");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_authority_valid);
    tcase_add_test(tc, test_split_absolute);
    tcase_add_test(tc, test_key_format);
    tcase_add_test(tc, test_key_query_rules);
    tcase_add_test(tc, test_no_two_pairs_share_a_key);
    tcase_add_test(tc, test_no_two_pairs_share_a_key_with_query_rules);
    tcase_add_test(tc, test_key_scheme);
    tcase_add_test(tc, test_no_two_pairs_share_a_key_with_scheme);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cache_key_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

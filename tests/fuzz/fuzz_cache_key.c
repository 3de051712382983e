/*
 * tests/fuzz/fuzz_cache_key.c — the cache key (cache_key_build, server/cache_key.c) under
 * every cache-key rule: include_host, sort_query and ignored query parameters. The key is a
 * pure function of its rules and inputs, so no store or proxy is set up.
 *
 * Input: byte 0 picks the rules (bit 0: include the host, bit 1: sort the query, bits 2-3:
 * how many of "utm_source", "fbclid", "x" are ignored), byte 1 is the host length (capped by
 * what follows), then the host bytes (Host / :authority), then the path with its query.
 *
 * Invariants: the key never overruns the buffer it is given (exact-size heap blocks, so ASan
 * sees one byte too many) and cache_key_max_len is always enough; the buffer contract (a cap
 * of the returned length gives the same bytes, a smaller one is reported by a return > cap);
 * determinism; the key reads back: its first '\n' ends the host part, which unescapes to the
 * host lower-cased without ":80" (nothing without include_host), and the rest is the path
 * (rewritten by the query rules, when they apply, with no ignored parameter left); so moving
 * one byte between host and path changes the key; the host's case never matters. With
 * include_scheme (bit 4 picks https, bit 5 http) the key is "https://" or "http://" followed
 * by the key without it, so the two schemes never share a key.
 */
#include <string.h>
#include "server/cache_key.h"
#include "tests/fuzz/fuzz.h"

static const char *const ignorable[3] = {"utm_source", "fbclid", "x"};

static char *xmalloc(size_t n)
{
    char *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

/* the key with the largest buffer it may need; *out is malloc'd (caller frees) */
static size_t key_of(const cache_key_rules_t *r, const char *host, size_t host_len, const char *path, size_t path_len, char **out)
{
    size_t cap = cache_key_max_len(host_len, path_len);
    *out = xmalloc(cap);
    size_t n = cache_key_build(r, host, host_len, path, path_len, *out, cap);
    FUZZ_CHECK(n <= cap);
    return n;
}

static int ignored_name(const cache_key_rules_t *r, const char *p, size_t len)
{
    const char *eq = memchr(p, '=', len);
    size_t name_len = eq != NULL ? (size_t)(eq - p) : len;
    for (size_t i = 0; i < r->num_ignore_params; i++)
        if (strlen(ignorable[i]) == name_len && memcmp(ignorable[i], p, name_len) == 0)
            return 1;
    return 0;
}

/* non-empty, not ignored parameters of the query: what a rewrite keeps */
static size_t kept_params(const cache_key_rules_t *r, const char *path, size_t path_len)
{
    const char *q = memchr(path, '?', path_len), *end = path + path_len;
    size_t n = 0;
    for (const char *p = q != NULL ? q + 1 : end; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t len = (size_t)((amp != NULL ? amp : end) - p);
        n += len != 0 && !ignored_name(r, p, len);
        p += len + 1;
    }
    return n;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* the host part of a key decodes to the normalised host */
static void check_host_part(const char *key, size_t host_part, const char *host, size_t host_len)
{
    size_t o = 0;
    for (size_t i = 0; i < host_part; o++) {
        unsigned char c;
        if (key[i] == '%') {
            FUZZ_CHECK(i + 2 < host_part && hexval(key[i + 1]) >= 0 && hexval(key[i + 2]) >= 0);
            c = (unsigned char)(hexval(key[i + 1]) * 16 + hexval(key[i + 2]));
            i += 3;
        } else {
            FUZZ_CHECK(key[i] != '\n');
            c = (unsigned char)key[i++];
        }
        FUZZ_CHECK(o < host_len);
        unsigned char want = (unsigned char)host[o];
        if (want >= 'A' && want <= 'Z')
            want = (unsigned char)(want + 32);
        FUZZ_CHECK(c == want);
    }
    FUZZ_CHECK(o == host_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    cache_key_rules_t r = {.include_host = (data[0] & 1) != 0,
                           .sort_query = (data[0] & 2) != 0,
                           .ignore_params = ignorable,
                           .num_ignore_params = (data[0] >> 2) & 3};
    size_t host_len = data[1];
    if (host_len > size - 2)
        host_len = size - 2;
    size_t path_len = size - 2 - host_len;
    char *host = xmalloc(host_len), *path = xmalloc(path_len);
    memcpy(host, data + 2, host_len);
    memcpy(path, data + 2 + host_len, path_len);

    char *big;
    size_t n = key_of(&r, host, host_len, path, path_len, &big);

    /* the contract: an exact buffer gives the same bytes; one byte less is reported */
    char *exact = xmalloc(n);
    FUZZ_CHECK(cache_key_build(&r, host, host_len, path, path_len, exact, n) == n);
    FUZZ_CHECK(n == 0 || memcmp(exact, big, n) == 0);
    free(exact);
    if (n > 0) {
        char *small = xmalloc(n - 1);
        FUZZ_CHECK(cache_key_build(&r, host, host_len, path, path_len, small, n - 1) > n - 1);
        free(small);
    }

    /* it reads back: host part, '\n', path part */
    const char *nl = memchr(big, '\n', n);
    FUZZ_CHECK(nl != NULL);
    size_t host_part = (size_t)(nl - big);
    size_t norm_host_len = r.include_host ? host_len : 0;
    if (norm_host_len > 3 && memcmp(host + norm_host_len - 3, ":80", 3) == 0)
        norm_host_len -= 3;
    check_host_part(big, host_part, host, norm_host_len);
    const char *kpath = nl + 1;
    size_t kpath_len = n - host_part - 1;
    int rewrites = memchr(path, '?', path_len) != NULL && (r.sort_query || r.num_ignore_params != 0);
    if (!rewrites) {
        FUZZ_CHECK(kpath_len == path_len && (path_len == 0 || memcmp(kpath, path, path_len) == 0));
    } else if (kept_params(&r, path, path_len) <= 64) { /* beyond 64 the query is kept as it came */
        const char *q = memchr(kpath, '?', kpath_len), *end = kpath + kpath_len;
        for (const char *p = q != NULL ? q + 1 : end; p < end;) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            size_t len = (size_t)((amp != NULL ? amp : end) - p);
            FUZZ_CHECK(len != 0 && !ignored_name(&r, p, len));
            p += len + 1;
        }
    }

    /* the glued-key confusion: one byte moved from the path to the host gives another key */
    if (r.include_host && !rewrites && path_len > 0) {
        char *host2 = xmalloc(host_len + 1), *again;
        memcpy(host2, host, host_len);
        host2[host_len] = path[0];
        size_t m = key_of(&r, host2, host_len + 1, path + 1, path_len - 1, &again);
        FUZZ_CHECK(!(m == n && memcmp(again, big, n) == 0));
        free(again);
        free(host2);
    }

    /* the host's case never matters; without include_host the host does not matter at all */
    char *other = xmalloc(host_len), *again;
    for (size_t i = 0; i < host_len; i++)
        other[i] = (host[i] >= 'a' && host[i] <= 'z') ? (char)(host[i] - 32) : host[i];
    size_t m = key_of(&r, other, host_len, path, path_len, &again);
    FUZZ_CHECK(m == n && memcmp(again, big, n) == 0);
    free(again);
    if (!r.include_host) {
        m = key_of(&r, "elsewhere.test", 14, path, path_len, &again);
        FUZZ_CHECK(m == n && memcmp(again, big, n) == 0);
        free(again);
    }
    free(other);

    /* include_scheme: the scheme, then exactly the key without it */
    if (data[0] & 0x30) {
        int https = (data[0] & 0x10) != 0;
        cache_key_rules_t rs = r;
        rs.include_scheme = 1;
        size_t cap = cache_key_max_len(host_len, path_len);
        char *with = xmalloc(cap);
        size_t w = cache_key_build_scheme(&rs, https, host, host_len, path, path_len, with, cap);
        const char *scheme = https ? "https://" : "http://";
        size_t sl = strlen(scheme);
        FUZZ_CHECK(w <= cap && w == sl + n && memcmp(with, scheme, sl) == 0 && memcmp(with + sl, big, n) == 0);
        /* and never the other scheme's key, nor a key without a scheme */
        char *twin = xmalloc(cap);
        size_t t = cache_key_build_scheme(&rs, !https, host, host_len, path, path_len, twin, cap);
        FUZZ_CHECK(!(t == w && memcmp(twin, with, w) == 0));
        FUZZ_CHECK(memchr(big, '/', host_part) == NULL); /* no key without a scheme has "//" before its '\n' */
        free(twin);
        free(with);
    }
    free(big);
    free(host);
    free(path);
    return 0;
}

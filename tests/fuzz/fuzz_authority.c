/*
 * tests/fuzz/fuzz_authority.c — the Host / :authority check (cache_key_authority_valid) and
 * the absolute-form split (cache_key_split_absolute), server/cache_key.c.
 *
 * Input: the authority bytes, as a client would put them in Host.
 *
 * Invariants: the check agrees with a second, independent reading of RFC 3986
 * host [ ":" port ] written here (reg-name of unreserved / sub-delims / pct-encoded, or
 * "[" IPv6address "]" as inet_pton reads it; port of at most 5 digits up to 65535); an
 * accepted authority holds none of the bytes that would let it carry a path, a query, a
 * fragment or userinfo, no whitespace, control or non-ASCII byte; its cache key's host part
 * is itself lower-cased with only '%' escaped; "http://<authority>/x" splits back into exactly
 * the authority whenever it holds no '/' or '?'.
 */
#include <arpa/inet.h>
#include <string.h>
#include "server/cache_key.h"
#include "tests/fuzz/fuzz.h"

static int unreserved_or_sub_delim(unsigned char c)
{
    return strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=", c) != NULL && c != 0;
}

static int hex(unsigned char c)
{
    return c != 0 && strchr("0123456789abcdefABCDEF", c) != NULL;
}

/* the independent reading */
static int oracle(const uint8_t *a, size_t len)
{
    size_t host_end;
    if (len == 0)
        return 0;
    if (a[0] == '[') {
        const uint8_t *close = memchr(a, ']', len);
        if (close == NULL)
            return 0;
        size_t inner = (size_t)(close - a) - 1;
        char text[128];
        if (inner == 0 || inner >= sizeof(text) || memchr(a + 1, '\0', inner) != NULL || memchr(a + 1, '%', inner) != NULL)
            return 0;
        memcpy(text, a + 1, inner);
        text[inner] = '\0';
        struct in6_addr addr;
        if (inet_pton(AF_INET6, text, &addr) != 1)
            return 0;
        host_end = inner + 2;
    } else {
        size_t i = 0;
        for (; i < len && a[i] != ':';) {
            if (a[i] == '%' && i + 2 < len + 0 && hex(a[i + 1]) && hex(a[i + 2]))
                i += 3;
            else if (unreserved_or_sub_delim(a[i]))
                i++;
            else
                return 0;
        }
        if (i == 0)
            return 0;
        host_end = i;
    }
    if (host_end == len)
        return 1;
    if (a[host_end] != ':' || len - host_end - 1 > 5)
        return 0;
    unsigned long port = 0;
    for (size_t i = host_end + 1; i < len; i++) {
        if (a[i] < '0' || a[i] > '9')
            return 0;
        port = port * 10 + (unsigned long)(a[i] - '0');
    }
    return port <= 65535;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *a = malloc(size ? size : 1);
    if (a == NULL)
        abort();
    memcpy(a, data, size);
    int valid = cache_key_authority_valid(a, size);
    FUZZ_CHECK(valid == 0 || valid == 1);
    FUZZ_CHECK(valid == oracle(data, size));

    if (valid) {
        for (size_t i = 0; i < size; i++) {
            unsigned char c = (unsigned char)a[i];
            FUZZ_CHECK(c > 0x20 && c < 0x7f && strchr("/?#@\\\"<>^`{|}", c) == NULL);
        }
        /* the key's host part is the authority itself, lower-cased, with '%' escaped */
        const cache_key_rules_t rules = {.include_host = 1};
        size_t cap = cache_key_max_len(size, 1);
        char *key = malloc(cap);
        if (key == NULL)
            abort();
        size_t n = cache_key_build(&rules, a, size, "/", 1, key, cap);
        FUZZ_CHECK(n <= cap && n >= 2 && key[n - 2] == '\n' && key[n - 1] == '/');
        size_t host_len = size > 3 && memcmp(a + size - 3, ":80", 3) == 0 ? size - 3 : size, o = 0;
        for (size_t i = 0; i < host_len; i++) {
            char c = a[i] >= 'A' && a[i] <= 'Z' ? (char)(a[i] + 32) : a[i];
            if (c == '%') {
                FUZZ_CHECK(o + 3 <= n && memcmp(key + o, "%25", 3) == 0);
                o += 3;
            } else {
                FUZZ_CHECK(o < n && key[o] == c);
                o++;
            }
        }
        FUZZ_CHECK(o == n - 2);
        free(key);
    }

    /* as the authority of an absolute-form target */
    char *t = malloc(size + 9);
    if (t == NULL)
        abort();
    memcpy(t, "http://", 7);
    memcpy(t + 7, a, size);
    memcpy(t + 7 + size, "/x", 2);
    size_t ao, al, po;
    FUZZ_CHECK(cache_key_split_absolute(t, size + 9, &ao, &al, &po) == 0);
    FUZZ_CHECK(ao == 7 && ao + al == po && po <= size + 9);
    if (memchr(a, '/', size) == NULL && memchr(a, '?', size) == NULL)
        FUZZ_CHECK(al == size && po == size + 7);
    if (valid)
        FUZZ_CHECK(al == size);
    free(t);
    free(a);
    return 0;
}

/*
 * tests/fuzz/fuzz_cache_key.c — the cache-key normalizer (proxy_cache_key) under every
 * cache-key rule of the config: include_host, sort_query and ignore_query_params.
 *
 * The rules live in the proxy's process-wide state, so the first input sets it up once the
 * way main() does: a throw-away store in a temporary directory (removed at exit) and
 * proxy_init with a config_t of ours, whose cache-key fields each input then rewrites.
 *
 * Input: byte 0 picks the rules (bit 0: include the host, bit 1: sort the query, bits 2-3:
 * how many of "utm_source", "fbclid", "x" are ignored), byte 1 is the host length (capped by
 * what follows), then the host bytes (Host / :authority), then the path with its query.
 *
 * Invariants: the key never overruns the buffer it is given, whatever the cap (every buffer
 * is an exact-size heap block, so ASan sees one byte too many); proxy.h's contract — a cap of
 * the returned length is enough and gives the same bytes, a smaller cap is reported as
 * truncation (return > cap); determinism; the host's case never matters (RFC 9110 4.2.3) and
 * without include_host the host does not matter at all; no ignored parameter survives a
 * rewritten query (proxy.c keeps a query of more than 64 parameters as it came, by design,
 * so those are not checked).
 */
#include <ftw.h>
#include <string.h>
#include <unistd.h>
#include "server/proxy.h"
#include "storage/store.h"
#include "tests/fuzz/fuzz.h"

static const char *const ignorable[3] = {"utm_source", "fbclid", "x"};
static config_t g_cfg;
static store_t *g_store;
static char g_dir[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    store_close(&g_store);
    nftw(g_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup_once(void)
{
    char err[512];
    if (g_store != NULL)
        return;
    snprintf(g_dir, sizeof(g_dir), "/tmp/edgecache-fuzz-key-XXXXXX");
    FUZZ_CHECK(mkdtemp(g_dir) != NULL);
    config_defaults(&g_cfg);
    g_cfg.num_backends = 0;
    store_options_t opt = {.dir = g_dir, .map_size = 16u << 20};
    if (store_open(&g_store, &opt, err, sizeof(err)) != 0 || proxy_init(&g_cfg, g_store, NULL, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_cache_key: set-up failed: %s\n", err);
        abort();
    }
    for (size_t i = 0; i < 3; i++)
        snprintf(g_cfg.cache_key_ignore_params[i], sizeof(g_cfg.cache_key_ignore_params[i]), "%s", ignorable[i]);
    atexit(teardown);
}

static char *xmalloc(size_t n)
{
    char *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

/* the key with a generous buffer; *out is malloc'd (caller frees) */
static size_t key_of(const char *host, size_t host_len, const char *path, size_t path_len, char **out)
{
    size_t cap = 2 * (host_len + path_len) + 64;
    *out = xmalloc(cap);
    size_t n = proxy_cache_key(*out, cap, host, host_len, path, path_len);
    FUZZ_CHECK(n <= cap);
    return n;
}

static int ignored_name(const char *p, size_t len)
{
    const char *eq = memchr(p, '=', len);
    size_t name_len = eq != NULL ? (size_t)(eq - p) : len;
    for (size_t i = 0; i < g_cfg.num_cache_key_ignore_params; i++)
        if (strlen(ignorable[i]) == name_len && memcmp(ignorable[i], p, name_len) == 0)
            return 1;
    return 0;
}

/* non-empty, not ignored parameters of the path's query: what a rewrite would keep */
static size_t kept_params(const char *path, size_t path_len)
{
    const char *q = memchr(path, '?', path_len), *end = path + path_len;
    size_t n = 0;
    for (const char *p = q != NULL ? q + 1 : end; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t len = (size_t)((amp != NULL ? amp : end) - p);
        n += len != 0 && !ignored_name(p, len);
        p += len + 1;
    }
    return n;
}

/* no parameter of the query in the key's path part (after the host) is one the rules ignore */
static void check_ignored_gone(const char *key, size_t n, size_t host_part)
{
    FUZZ_CHECK(host_part <= n);
    const char *q = memchr(key + host_part, '?', n - host_part), *end = key + n;
    if (q == NULL || g_cfg.num_cache_key_ignore_params == 0)
        return;
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t len = (size_t)((amp != NULL ? amp : end) - p);
        FUZZ_CHECK(len == 0 || !ignored_name(p, len));
        p += len + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    setup_once();
    g_cfg.cache_key_include_host = (data[0] & 1) != 0;
    g_cfg.cache_key_sort_query = (data[0] & 2) != 0;
    g_cfg.num_cache_key_ignore_params = (data[0] >> 2) & 3;

    size_t host_len = data[1];
    if (host_len > size - 2)
        host_len = size - 2;
    size_t path_len = size - 2 - host_len;
    char *host = xmalloc(host_len), *path = xmalloc(path_len);
    memcpy(host, data + 2, host_len);
    memcpy(path, data + 2 + host_len, path_len);

    char *big;
    size_t n = key_of(host, host_len, path, path_len, &big);

    /* proxy.h: "writes at most cap bytes; returns the full length (if > cap the key was truncated)" */
    char *exact = xmalloc(n);
    FUZZ_CHECK(proxy_cache_key(exact, n, host, host_len, path, path_len) == n);
    FUZZ_CHECK(n == 0 || memcmp(exact, big, n) == 0);
    free(exact);
    if (n > 0) {
        char *small = xmalloc(n - 1);
        FUZZ_CHECK(proxy_cache_key(small, n - 1, host, host_len, path, path_len) > n - 1);
        free(small);
    }
    /* the host part of the key: the host, lower-cased, without ":80" (it may hold any byte) */
    size_t host_part = 0;
    if (g_cfg.cache_key_include_host)
        host_part = host_len > 3 && memcmp(host + host_len - 3, ":80", 3) == 0 ? host_len - 3 : host_len;
    if (kept_params(path, path_len) <= 64) /* beyond 64 the query is deliberately kept as it came */
        check_ignored_gone(big, n, host_part);

    /* the host's case never matters; without include_host the host does not matter at all */
    char *other = xmalloc(host_len);
    for (size_t i = 0; i < host_len; i++)
        other[i] = (host[i] >= 'a' && host[i] <= 'z') ? (char)(host[i] - 32) : host[i];
    char *again;
    size_t m = key_of(other, host_len, path, path_len, &again);
    FUZZ_CHECK(m == n && memcmp(again, big, n) == 0);
    free(again);
    if (!g_cfg.cache_key_include_host) {
        m = key_of("elsewhere.test", 14, path, path_len, &again);
        FUZZ_CHECK(m == n && memcmp(again, big, n) == 0);
        free(again);
    }
    free(other);
    free(big);
    free(host);
    free(path);
    return 0;
}

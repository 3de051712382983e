/*
 * server/proxy_invalidate.c — what keeps a URL out of the cache for a while: invalidation by
 * unsafe methods (RFC 9111 4.4), the tombstones that cover an invalidation until it commits,
 * and the hit-for-pass table.
 *
 *   - A 2xx/3xx answer to a method not known to be safe (anything but GET, HEAD, OPTIONS,
 *     TRACE) invalidates the URL and a same-host Location/Content-Location: out of memory at
 *     once, out of LMDB through the store's writer (store_purge_key_url), not waited for.
 *   - Until the writer commits such an invalidation, a tombstone per hash keeps a read of
 *     LMDB (which may still find the old object) from re-entering memory, and keeps the URL's
 *     variants (whose hashes only the writer knows) from being served from memory.
 *   - Hit-for-pass: a URL whose response refused storing for its own reasons is remembered for
 *     HIT_FOR_PASS_MS, and requests for it pass straight through without collapsing.
 *
 * Both tables are fixed-size, one slot per hash modulo the size (a later entry takes an
 * earlier one's slot), each under its own mutex. Worker threads, but tombstone_on_committed,
 * which runs on the store's writer thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/alloc.h"
#include "common/now.h"
#include "server/cache_key.h"
#include "server/proxy.h"
#include "server/proxy_int.h"

#define HIT_FOR_PASS_MS 120000

#define HFP_SLOTS 4096
static struct hfp_slot {
    uint8_t hash[CACHE_HASH_LEN];
    _Atomic int64_t expires_ms;
} g_hfp[HFP_SLOTS];
static pthread_mutex_t g_hfp_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Invalidations by unsafe methods are not waited for: until the writer commits one (the
 * purge epoch moves), a read of LMDB may still find the old object. A tombstone per hash,
 * holding the epoch at invalidation time, keeps such a read from re-entering memory.
 */
#define TOMBSTONE_SLOTS 1024
static struct tombstone {
    uint8_t hash[CACHE_HASH_LEN];
    uint64_t epoch;
    int64_t expires_ms;
} g_tombstones[TOMBSTONE_SLOTS];
static pthread_mutex_t g_tombstone_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_tombstones_pending; /* invalidations not yet committed: 0 keeps lookups lock-free */

/* ---------------------------------------------------------------- hit-for-pass */

static struct hfp_slot *hfp_slot_of(const uint8_t hash[CACHE_HASH_LEN])
{
    uint32_t i;
    memcpy(&i, hash + 4, sizeof(i));
    return &g_hfp[i % HFP_SLOTS];
}

/* remember that this URL's responses are not storable: later requests skip collapsing */
void proxy_hfp_mark(const uint8_t hash[CACHE_HASH_LEN])
{
    struct hfp_slot *s = hfp_slot_of(hash);
    pthread_mutex_lock(&g_hfp_lock);
    memcpy(s->hash, hash, CACHE_HASH_LEN);
    atomic_store(&s->expires_ms, now_wall_ms() + HIT_FOR_PASS_MS);
    pthread_mutex_unlock(&g_hfp_lock);
}

void proxy_hfp_clear(const uint8_t hash[CACHE_HASH_LEN])
{
    struct hfp_slot *s = hfp_slot_of(hash);
    pthread_mutex_lock(&g_hfp_lock);
    if (memcmp(s->hash, hash, CACHE_HASH_LEN) == 0)
        atomic_store(&s->expires_ms, 0);
    pthread_mutex_unlock(&g_hfp_lock);
}

int proxy_hfp_active(const uint8_t hash[CACHE_HASH_LEN])
{
    struct hfp_slot *s = hfp_slot_of(hash);
    if (atomic_load_explicit(&s->expires_ms, memory_order_relaxed) < now_wall_ms())
        return 0; /* the common case: no lock */
    pthread_mutex_lock(&g_hfp_lock);
    int active = memcmp(s->hash, hash, CACHE_HASH_LEN) == 0 && atomic_load(&s->expires_ms) >= now_wall_ms();
    pthread_mutex_unlock(&g_hfp_lock);
    return active;
}

static struct tombstone *tombstone_slot(const uint8_t hash[CACHE_HASH_LEN])
{
    uint32_t i;
    memcpy(&i, hash + 8, sizeof(i));
    return &g_tombstones[i % TOMBSTONE_SLOTS];
}

static void tombstone_mark(const uint8_t hash[CACHE_HASH_LEN], uint64_t epoch)
{
    struct tombstone *t = tombstone_slot(hash);
    pthread_mutex_lock(&g_tombstone_lock);
    memcpy(t->hash, hash, CACHE_HASH_LEN);
    t->epoch = epoch;
    t->expires_ms = now_wall_ms() + 10000; /* a bound in case the commit never comes */
    pthread_mutex_unlock(&g_tombstone_lock);
    atomic_fetch_add(&g_tombstones_pending, 1);
}

/* writer thread, after the invalidation committed: LMDB no longer has the object */
static void tombstone_on_committed(void *arg, const store_purge_result_t *res)
{
    uint8_t *hash = arg;
    (void)res;
    struct tombstone *t = tombstone_slot(hash);
    pthread_mutex_lock(&g_tombstone_lock);
    if (memcmp(t->hash, hash, CACHE_HASH_LEN) == 0)
        t->expires_ms = 0;
    pthread_mutex_unlock(&g_tombstone_lock);
    atomic_fetch_sub(&g_tombstones_pending, 1);
    free(hash);
}

int proxy_tombstones_pending(void)
{
    return atomic_load_explicit(&g_tombstones_pending, memory_order_acquire) != 0;
}

/* 1 when an object read from LMDB may be one an uncommitted invalidation is about to delete */
int proxy_tombstone_blocks(const uint8_t hash[CACHE_HASH_LEN], uint64_t epoch)
{
    struct tombstone *t = tombstone_slot(hash);
    (void)epoch;
    pthread_mutex_lock(&g_tombstone_lock);
    int blocks = memcmp(t->hash, hash, CACHE_HASH_LEN) == 0 && t->expires_ms > now_wall_ms();
    pthread_mutex_unlock(&g_tombstone_lock);
    return blocks;
}

/* RFC 9111 4.4: the cached responses for this key are no longer trustworthy */
static void invalidate_key(const char *key, size_t key_len)
{
    uint8_t hash[CACHE_HASH_LEN];
    obj_key_hash(key, key_len, hash);
    tombstone_mark(hash, store_purge_epoch(proxy_globals.store));
    mem_remove(proxy_globals.mem, hash);
    uint8_t *arg = alloc_xmalloc(CACHE_HASH_LEN, "proxy");
    memcpy(arg, hash, CACHE_HASH_LEN);
    store_purge_key_url(proxy_globals.store, key, key_len, 0, tombstone_on_committed, arg);
}

/* Location / Content-Location naming a URL of the same host (absolute path or absolute URL) */
static void invalidate_location(fetch_t *f, const char *v, size_t vlen)
{
    const char *path = NULL;
    size_t path_len = 0;
    if (vlen > 0 && v[0] == '/' && !(vlen > 1 && v[1] == '/')) {
        path = v;
        path_len = vlen;
    } else {
        size_t skip = vlen > 7 && strncasecmp(v, "http://", 7) == 0    ? 7
                      : vlen > 8 && strncasecmp(v, "https://", 8) == 0 ? 8
                                                                       : 0;
        if (skip == 0)
            return;
        const char *host = v + skip;
        const char *slash = memchr(host, '/', vlen - skip);
        size_t host_len = slash != NULL ? (size_t)(slash - host) : vlen - skip;
        if (host_len != f->rc.authority_len || strncasecmp(host, f->rc.authority, host_len) != 0)
            return;
        path = slash != NULL ? slash : "/";
        path_len = slash != NULL ? vlen - skip - host_len : 1;
    }
    size_t cap = cache_key_max_len(f->rc.authority_len, path_len);
    char *key = alloc_xmalloc(cap + 1, "proxy");
    for (int https = 0; https <= proxy_cache_key_has_scheme(); ++https) { /* with the scheme in the key: both objects */
        size_t key_len = proxy_cache_key_scheme(key, cap, https, f->rc.authority, f->rc.authority_len, path, path_len);
        if (key_len <= cap && (key_len != f->key_len || memcmp(key, f->key, key_len) != 0))
            invalidate_key(key, key_len);
    }
    free(key);
}

void proxy_invalidate_after_unsafe(fetch_t *f, const h2o_header_t *headers, size_t num_headers)
{
    invalidate_key(f->key, f->key_len);
    if (proxy_cache_key_has_scheme()) /* the URL's object under the other scheme changed as well */
        invalidate_location(f, f->rc.path, f->rc.path_len);
    for (size_t i = 0; i != num_headers; ++i)
        if (proxy_name_is(headers[i].name->base, headers[i].name->len, "location") ||
            proxy_name_is(headers[i].name->base, headers[i].name->len, "content-location"))
            invalidate_location(f, headers[i].value.base, headers[i].value.len);
}

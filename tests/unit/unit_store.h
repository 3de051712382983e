/*
 * tests/unit/unit_store.h — what the store's suites (test_store_basic.c, _purge, _evict,
 * _answer, _threads, _journal) share: a store opened or the test fails, objects built with
 * strictly increasing response times (eviction is FIFO by them), presence checks, the
 * purge callback that records its result, a wait on an atomic counter, long surrogate keys
 * purged and waited for, what a purge's callback saw of an object queued before it, and a
 * purge callback that holds the store's thread until the test opens its gate.
 * Header-only: static inline functions, one copy per suite.
 */
#ifndef EDGECACHE_UNIT_STORE_H
#define EDGECACHE_UNIT_STORE_H

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/now.h"
#include "storage/mem.h"
#include "storage/object.h"
#include "storage/store.h"

static inline store_t *open_store(const char *dir, size_t map_size, mem_tier_t *mem)
{
    store_options_t opt = {.dir = dir, .map_size = map_size, .mem = mem};
    char err[256];
    store_t *s = NULL;
    int rc = store_open(&s, &opt, err, sizeof(err));
    ck_assert_msg(rc == 0, "store_open: %d %s", rc, err);
    return s;
}

/* An object for `key` with surrogate keys, vary and a body of `body_len` bytes of `fill`. */
static inline cache_obj_t *make_obj(const char *key, const char *skeys, const char *vary, size_t body_len, char fill,
                                    uint64_t generation)
{
    /* eviction is FIFO by response time in ms; keep it strictly increasing however fast we go */
    static int64_t last_ms;
    obj_meta_t meta = {.status = 200, .generation = generation, .ttl = 300};
    meta.request_time_ms = now_wall_ms();
    if (meta.request_time_ms <= last_ms)
        meta.request_time_ms = last_ms + 1;
    last_ms = meta.request_time_ms;
    meta.response_time_ms = meta.request_time_ms;
    obj_header_t hdr = {"content-type", 12, "text/plain", 10};
    obj_builder_t *b = obj_builder_begin(&meta, key, strlen(key), skeys, strlen(skeys), vary, strlen(vary), &hdr, 1, body_len);
    char buf[1024];
    memset(buf, fill, sizeof(buf));
    for (size_t off = 0; off < body_len; off += sizeof(buf))
        obj_builder_append(b, buf, body_len - off < sizeof(buf) ? body_len - off : sizeof(buf));
    return obj_builder_finish(b);
}

/* store_get by the object's own hash and key */
static inline int get_obj(store_t *s, const cache_obj_t *like, cache_obj_t **out)
{
    return store_get(s, like->hash, like->key, like->key_len, out);
}

static inline int present(store_t *s, const cache_obj_t *like)
{
    cache_obj_t *got = NULL;
    int rc = get_obj(s, like, &got);
    ck_assert_msg(rc == 0 || rc == STORE_ENOTFOUND, "store_get returned %d", rc);
    obj_unref(&got);
    return rc == 0;
}

/* the live (atomic) flags of an object */
static inline unsigned live_flags(cache_obj_t *obj)
{
    return atomic_load(&obj->flags);
}

typedef struct purge_record {
    int calls;
    store_purge_result_t last;
    uint64_t epoch_at_cb;
    store_t *store;
} purge_record_t;

static inline void on_purge(void *arg, const store_purge_result_t *res)
{
    purge_record_t *r = arg;
    r->calls++;
    r->last = *res;
    if (r->store != NULL)
        r->epoch_at_cb = store_purge_epoch(r->store);
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* wait (at most 10 s) until *v reaches want */
static inline int wait_atomic_at_least(_Atomic int *v, int want)
{
    for (int i = 0; i < 10000 && atomic_load(v) < want; i++)
        sleep_ms(1);
    return atomic_load(v) >= want;
}

/* a key of len bytes: `fill` repeated, ending in `last` */
static inline char *long_key(size_t len, char fill, char last)
{
    char *k = malloc(len + 1);
    ck_assert_ptr_nonnull(k);
    memset(k, fill, len);
    k[len - 1] = last;
    k[len] = '\0';
    return k;
}

/* purge key k and wait; returns how many objects it purged */
static inline uint64_t purge_key_now(store_t *s, const char *k)
{
    purge_record_t pr = {0};
    store_purge_surrogate_key(s, k, strlen(k), 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_int_eq(pr.last.err, 0);
    return pr.last.objects;
}

/* what a purge's callback saw of one object, and whether anything had committed since `commits` */
typedef struct queued_seen {
    store_t *s;
    mem_tier_t *mem;
    cache_obj_t *obj, *also; /* also: optional, checked in memory only */
    uint64_t commits;
    int calls, in_mem, on_disk, committed_before_answer, also_in_mem;
    store_purge_result_t res;
} queued_seen_t;

static inline void on_queued_purge(void *arg, const store_purge_result_t *res)
{
    queued_seen_t *q = arg;
    cache_obj_t *m = mem_lookup(q->mem, q->obj->hash);
    store_stats_t st;
    q->in_mem = m != NULL;
    obj_unref(&m);
    if (q->also != NULL) {
        m = mem_lookup(q->mem, q->also->hash);
        q->also_in_mem = m != NULL;
        obj_unref(&m);
    }
    q->on_disk = present(q->s, q->obj);
    store_get_stats(q->s, &st);
    q->committed_before_answer = st.commits != q->commits;
    q->res = *res;
    q->calls++;
}

/* A purge callback that holds the store's thread it runs on (the journal thread, or the
 * writer for a purge answered after its commit) until the test lets it go: nothing queued
 * behind it reaches the disk meanwhile, as behind a stalled disk. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered, open;
} gate_t;

static inline void on_purge_hold(void *arg, const store_purge_result_t *res)
{
    gate_t *g = arg;
    (void)res;
    pthread_mutex_lock(&g->lock);
    g->entered = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static inline void gate_wait_entered(gate_t *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->entered)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static inline void gate_open(gate_t *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

#endif

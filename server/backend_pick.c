/*
 * server/backend_pick.c — the choice of a backend for a fetch: each worker's instances of
 * the live set (socket pools and timeouts), the balancing algorithms (weighted round robin,
 * rendezvous hashing, first healthy, shields first) and the references a fetch holds.
 *
 * What it owns.
 *   - Per worker (backend_g.workers[w->index], touched only by that worker's thread): its
 *     reference to the set it last saw, one instance per backend version (socket pool and
 *     timeouts for it), socket pools keyed by pool_key (shared by versions with the same
 *     address, port, max_conn and TLS identity, so edits keep pooled connections, and a TLS
 *     connection never serves a cleartext backend nor one that checks another name), and
 *     h2o_timeout_t objects per distinct duration, shared by value.
 *
 * Invariants.
 *   - A fetch holds a backend_t reference (backend_pick .. backend_release) and its worker
 *     instance counts it in `users`; an instance, and the pool and timeouts it uses, are
 *     freed only when it is out of the worker's current set AND has no users. The freeing
 *     happens only in the worker's tick timer, never inside backend_pick/backend_release:
 *     those can run inside an origin-client callback, after which the client may still hand
 *     its socket back to the pool (h2o_socketpool_dispose with a socket checked out crashes).
 *   - An h2o_timeout_t is disposed only when nothing refers to it and its entry list is
 *     empty; otherwise it is left for a later tick (or leaked at exit).
 *   - A worker takes a new set only when backend_g.gen moved (worker_refresh).
 *
 * Threads. backend_pick / _report / _release / backend_worker_*: worker threads (each on its
 * own backend_worker_t). backend_workers_alloc: the main thread, in backend_module_init,
 * before any worker starts. The balancing functions are pure and run anywhere.
 */
#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include <h2o/socketpool.h>
#include "common/alloc.h"
#include "server/backend.h"
#include "server/backend_int.h"
#include "server/origin_idle.h"
#include "server/worker.h"

#define WORKER_TICK_MS 1000 /* how often a worker picks up a new set and frees old instances */

/* ================================================================ balancing */

static int any_positive_weight(const uint32_t *weights, const unsigned char *eligible, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (eligible[i] && weights[i] > 0)
            return 1;
    return 0;
}

size_t backend_wrr_pick(int64_t *current, const uint32_t *weights, const unsigned char *eligible, size_t n)
{
    int weighted = any_positive_weight(weights, eligible, n);
    int64_t total = 0;
    size_t best = SIZE_MAX;

    for (size_t i = 0; i != n; ++i) {
        int64_t wt = weighted ? (int64_t)weights[i] : 1;
        if (!eligible[i] || wt == 0) {
            current[i] = 0;
            continue;
        }
        current[i] += wt;
        total += wt;
        if (best == SIZE_MAX || current[i] > current[best])
            best = i;
    }
    if (best != SIZE_MAX)
        current[best] -= total;
    return best;
}

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser: every input bit affects every output bit */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t backend_name_hash(const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i != len; ++i) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

size_t backend_rendezvous_pick(const uint8_t hash[CACHE_HASH_LEN], const uint64_t *name_hashes, const uint32_t *weights,
                               const unsigned char *eligible, size_t n)
{
    uint64_t k0, k1;
    memcpy(&k0, hash, 8);
    memcpy(&k1, hash + 8, 8);
    uint64_t key = mix64(k0 ^ mix64(k1));
    int weighted = any_positive_weight(weights, eligible, n);
    double best_score = -1.0;
    size_t best = SIZE_MAX;

    for (size_t i = 0; i != n; ++i) {
        double wt = weighted ? (double)weights[i] : 1.0;
        if (!eligible[i] || wt == 0)
            continue;
        uint64_t x = mix64(key ^ name_hashes[i]);
        double u = ((double)(x >> 11) + 0.5) / 9007199254740992.0; /* uniform in (0, 1) */
        double score = wt / -log(u);
        if (score > best_score) {
            best_score = score;
            best = i;
        }
    }
    return best;
}

/* ================================================================ per-worker state */

typedef struct worker_timeout {
    struct worker_timeout *next;
    h2o_timeout_t t;
    uint32_t ms;
    unsigned refs;
} worker_timeout_t;

typedef struct worker_pool {
    struct worker_pool *next;
    uint64_t key;
    h2o_socketpool_t pool;
    unsigned refs;
} worker_pool_t;

typedef struct worker_inst {
    struct worker_inst *next;
    backend_t *b; /* own reference */
    worker_pool_t *pool;
    worker_timeout_t *t_connect, *t_first_byte, *t_between_bytes;
    origin_client_timeouts_t timeouts;
    size_t users; /* picks not released yet */
    int current;  /* in the worker's current set */
} worker_inst_t;

typedef struct backend_worker {
    int ready;
    worker_t *w;
    h2o_loop_t *loop;
    backend_set_t *set; /* own reference */
    uint64_t gen;
    worker_inst_t *by_pos[BACKEND_MAX];
    int64_t wrr[BACKEND_MAX];
    worker_inst_t *insts;
    worker_pool_t *pools;
    worker_timeout_t *timeouts;
    h2o_timeout_t tick;
    h2o_timeout_entry_t tick_entry;
} backend_worker_t;

static _Thread_local backend_worker_t *t_worker;

void backend_workers_alloc(unsigned n)
{
    backend_g.num_workers = n;
    backend_g.workers = alloc_xcalloc(backend_g.num_workers + 1, sizeof(*backend_g.workers), "backend");
}

/* ================================================================ workers */

static worker_timeout_t *worker_timeout_get(backend_worker_t *ws, uint32_t ms)
{
    worker_timeout_t *t;
    for (t = ws->timeouts; t != NULL; t = t->next)
        if (t->ms == ms)
            break;
    if (t == NULL) {
        t = alloc_xcalloc(1, sizeof(*t), "backend");
        t->ms = ms;
        h2o_timeout_init(ws->loop, &t->t, ms);
        t->next = ws->timeouts;
        ws->timeouts = t;
    }
    t->refs++;
    return t;
}

static worker_pool_t *worker_pool_get(backend_worker_t *ws, const backend_t *b)
{
    worker_pool_t *p;
    for (p = ws->pools; p != NULL; p = p->next)
        if (p->key == b->pool_key)
            break;
    if (p == NULL) {
        p = alloc_xcalloc(1, sizeof(*p), "backend");
        p->key = b->pool_key;
        /* is_ssl marks the pool: origin_client checks that its connections get a TLS context */
        h2o_socketpool_init_by_address(&p->pool, (struct sockaddr *)&b->sa, b->salen, b->tls != NULL, b->conf.max_conn);
        h2o_socketpool_set_timeout(&p->pool, ws->loop, BACKEND_POOL_IDLE_MS);
        p->next = ws->pools;
        ws->pools = p;
    }
    p->refs++;
    return p;
}

static worker_inst_t *worker_inst_find(backend_worker_t *ws, uint64_t id)
{
    for (worker_inst_t *in = ws->insts; in != NULL; in = in->next)
        if (in->b->id == id)
            return in;
    return NULL;
}

static worker_inst_t *worker_inst_create(backend_worker_t *ws, backend_t *b)
{
    worker_inst_t *in = alloc_xcalloc(1, sizeof(*in), "backend");
    in->b = backend_ref(b);
    if (b->resolved)
        in->pool = worker_pool_get(ws, b);
    in->t_connect = worker_timeout_get(ws, b->conf.connect_timeout);
    in->t_first_byte = worker_timeout_get(ws, b->conf.first_byte_timeout);
    in->t_between_bytes = worker_timeout_get(ws, b->conf.between_bytes_timeout);
    in->timeouts.connect = &in->t_connect->t;
    in->timeouts.first_byte = &in->t_first_byte->t;
    in->timeouts.between_bytes = &in->t_between_bytes->t;
    in->next = ws->insts;
    ws->insts = in;
    return in;
}

/* take the newest set if it changed (cheap when it did not) */
static void worker_refresh(backend_worker_t *ws)
{
    if (ws->set != NULL && atomic_load_explicit(&backend_g.gen, memory_order_acquire) == ws->gen)
        return;
    uint64_t gen;
    backend_set_t *s = backend_set_acquire(&gen);
    if (s == NULL)
        return;
    for (worker_inst_t *in = ws->insts; in != NULL; in = in->next)
        in->current = 0;
    for (size_t i = 0; i != s->n; ++i) {
        worker_inst_t *in = worker_inst_find(ws, s->b[i]->id);
        if (in == NULL)
            in = worker_inst_create(ws, s->b[i]);
        in->current = 1;
        ws->by_pos[i] = in;
        ws->wrr[i] = 0;
    }
    backend_set_unref(ws->set);
    ws->set = s;
    ws->gen = gen;
}

/* free what the current set no longer needs and no fetch holds. Never from inside a pick or a
 * release: an origin client may still hand a socket back to the pool when its callback returns. */
static void worker_gc(backend_worker_t *ws)
{
    for (worker_inst_t **pp = &ws->insts; *pp != NULL;) {
        worker_inst_t *in = *pp;
        if (in->current || in->users != 0) {
            pp = &in->next;
            continue;
        }
        *pp = in->next;
        if (in->pool != NULL)
            in->pool->refs--;
        in->t_connect->refs--;
        in->t_first_byte->refs--;
        in->t_between_bytes->refs--;
        backend_unref(in->b);
        free(in);
    }
    for (worker_pool_t **pp = &ws->pools; *pp != NULL;) {
        worker_pool_t *p = *pp;
        if (p->refs != 0) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        origin_idle_forget_pool(&p->pool); /* they count as lent out: h2o's dispose would crash on them */
        h2o_socketpool_dispose(&p->pool);
        free(p);
    }
    for (worker_timeout_t **pp = &ws->timeouts; *pp != NULL;) {
        worker_timeout_t *t = *pp;
        if (t->refs != 0 || !h2o_linklist_is_empty(&t->t._entries)) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        h2o_timeout_dispose(ws->loop, &t->t);
        free(t);
    }
}

static void on_worker_tick(h2o_timeout_entry_t *entry)
{
    backend_worker_t *ws = H2O_STRUCT_FROM_MEMBER(backend_worker_t, tick_entry, entry);
    worker_refresh(ws);
    worker_gc(ws);
    h2o_timeout_link(ws->loop, &ws->tick, &ws->tick_entry);
}

void backend_worker_init(struct worker *w)
{
    assert(backend_g.initialised && w->index < backend_g.num_workers);
    backend_worker_t *ws = &backend_g.workers[w->index];
    assert(!ws->ready);
    memset(ws, 0, sizeof(*ws));
    ws->w = w;
    ws->loop = w->loop;
    h2o_timeout_init(ws->loop, &ws->tick, WORKER_TICK_MS);
    ws->tick_entry.cb = on_worker_tick;
    h2o_timeout_link(ws->loop, &ws->tick, &ws->tick_entry);
    ws->ready = 1;
    t_worker = ws;
    worker_refresh(ws);
}

void backend_worker_dispose(struct worker *w)
{
    assert(w->index < backend_g.num_workers);
    backend_worker_t *ws = &backend_g.workers[w->index];
    if (!ws->ready)
        return;
    h2o_timeout_unlink(&ws->tick_entry);
    h2o_timeout_dispose(ws->loop, &ws->tick);
    for (worker_inst_t *in = ws->insts; in != NULL; in = in->next)
        in->current = 0;
    worker_gc(ws);
    /* what is left is held by fetches that outlived the drain: deliberately not freed */
    backend_set_unref(ws->set);
    ws->set = NULL;
    ws->ready = 0;
    if (t_worker == ws)
        t_worker = NULL;
}

int backend_pick(struct worker *w, const uint8_t hash[CACHE_HASH_LEN], const backend_t *exclude, backend_pick_t *out)
{
    assert(w->index < backend_g.num_workers);
    backend_worker_t *ws = &backend_g.workers[w->index];
    assert(ws->ready);
    worker_refresh(ws);
    backend_set_t *s = ws->set;
    if (s == NULL || s->n == 0)
        return -1;

    unsigned char eligible[BACKEND_MAX];
    uint32_t weights[BACKEND_MAX];
    uint64_t name_hashes[BACKEND_MAX];
    int any_shield = 0;
    for (size_t i = 0; i != s->n; ++i) {
        const backend_t *b = s->b[i];
        eligible[i] = backend_usable(b) && (exclude == NULL || b->state != exclude->state) &&
                      atomic_load_explicit(&b->state->inflight, memory_order_relaxed) < b->conf.max_conn;
        weights[i] = b->conf.weight;
        name_hashes[i] = b->name_hash;
        if (eligible[i] && b->conf.shield[0] != '\0')
            any_shield = 1;
    }
    /* tiers: healthy shields take every fetch; the origins directly only when no shield can */
    for (size_t i = 0; i != s->n; ++i)
        if (eligible[i] && (s->b[i]->conf.shield[0] != '\0') != any_shield)
            eligible[i] = 0;

    size_t idx = SIZE_MAX;
    switch (s->lb) {
    case BACKEND_LB_HASH:
        /* without a key to hash, round robin */
        idx = hash != NULL ? backend_rendezvous_pick(hash, name_hashes, weights, eligible, s->n)
                           : backend_wrr_pick(ws->wrr, weights, eligible, s->n);
        break;
    case BACKEND_LB_ROUND_ROBIN: idx = backend_wrr_pick(ws->wrr, weights, eligible, s->n); break;
    case BACKEND_LB_FIRST:
        for (size_t i = 0; i != s->n && idx == SIZE_MAX; ++i)
            if (eligible[i])
                idx = i;
        break;
    }
    if (idx == SIZE_MAX)
        return -1;

    worker_inst_t *in = ws->by_pos[idx];
    assert(in != NULL && in->b == s->b[idx] && in->pool != NULL);
    in->users++;
    backend_t *b = backend_ref(s->b[idx]);
    atomic_fetch_add_explicit(&b->state->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->state->inflight, 1, memory_order_relaxed);
    out->backend = b;
    out->pool = &in->pool->pool;
    out->timeouts = &in->timeouts;
    out->host_header = b->conf.override_host[0] != '\0' ? b->conf.override_host : NULL;
    out->host_header_len = out->host_header != NULL ? strlen(out->host_header) : 0;
    out->tls = b->tls;
    return 0;
}

void backend_report(backend_t *b, int ok)
{
    assert(b->magic == BACKEND_MAGIC);
    if (!ok)
        atomic_fetch_add_explicit(&b->state->errors, 1, memory_order_relaxed);
}

void backend_release(backend_t **bp)
{
    backend_t *b = *bp;
    if (b == NULL)
        return;
    *bp = NULL;
    backend_worker_t *ws = t_worker;
    if (ws != NULL && ws->ready) {
        worker_inst_t *in = worker_inst_find(ws, b->id);
        assert(in != NULL && in->users > 0);
        in->users--; /* freed, if it must be, by the next tick */
    }
    atomic_fetch_sub_explicit(&b->state->inflight, 1, memory_order_relaxed);
    backend_unref(b);
}

const char *backend_name(const backend_t *b)
{
    assert(b->magic == BACKEND_MAGIC);
    return b->conf.name;
}

/*
 * server/backend.c — origin servers: the live set of backends, load balancing, health
 * checks (a prober thread), origin shielding and purge forwarding to the shield. The
 * configuration as values (Fastly's fields from JSON and forms, validation, the persisted
 * document) is server/backend_config.c's.
 *
 * What it owns.
 *   - The live configuration (backend_config_t, what the admin API edits and the store's
 *     `config` db holds under "backends") and, built from it, an immutable, refcounted
 *     backend_set_t: one backend_t per configured backend. A change builds a new set and
 *     swaps it in under g.lock, bumping g.gen; nobody ever modifies a published set.
 *   - backend_t: one version of one backend (its settings, resolved address). A backend
 *     whose settings did not change is carried into the next set as the same object.
 *     Every version of a backend name shares one backend_state_t: counters, the health
 *     window and the prober's schedule, so an edit of the weight keeps the health state.
 *   - Per worker (g.workers[w->index], touched only by that worker's thread): its reference
 *     to the set it last saw, one instance per backend version (socket pool and timeouts for
 *     it), socket pools keyed by pool_key (shared by versions with the same address, port and
 *     max_conn, so edits keep pooled connections), and h2o_timeout_t objects per distinct
 *     duration, shared by value.
 *   - The prober thread: its own h2o evloop, running health probes and purge forwards
 *     through origin_client.
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
 *   - Readers take the set cheaply: a worker compares g.gen (one atomic load) with the
 *     generation it holds and only on a change takes g.lock to swap its reference.
 *   - Health: `healthy` is an atomic flag read by workers; the window behind it is changed
 *     under state->lock by the prober (a probe result) and by a commit (a reset when the
 *     address or health check changed; health_gen then moves so that a probe started
 *     before the reset is ignored).
 *
 * Threads. backend_module_init / _start / _stop: main thread. backend_config_commit and the
 * other config functions: the admin thread (serialised by g.commit_lock). backend_pick /
 * _report / _release / backend_worker_*: worker threads. Probes and forwards: the prober
 * thread. backend_stats_snapshot and backend_config_get: any thread.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <h2o.h>
#include <h2o/socketpool.h>
#include "server/backend.h"
#include "server/frontend.h"
#include "server/backend_int.h"
#include "server/worker.h"

#define BACKEND_MAGIC 0xbac4e9d1u
#define POOL_IDLE_TIMEOUT_MS 2000      /* keep-alive connections to origins idle this long are closed */
#define WORKER_TICK_MS 1000            /* how often a worker picks up a new set and frees old instances */
#define PROBER_WAIT_MS 10              /* the prober loop's longest sleep (it polls its job list) */
#define FORWARD_TIMEOUT_MS 10000       /* a purge forwarded to the shield must be answered within this */

/* ================================================================ small helpers */

void backend_fatal_oom(void)
{
    fprintf(stderr, "edgecache: fatal: out of memory\n");
    abort();
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        backend_fatal_oom();
    return p;
}

void backend_set_detail(char *detail, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (detail == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(detail, cap, fmt, ap);
    va_end(ap);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ================================================================ health window */

static uint64_t window_mask(uint32_t window)
{
    return window >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << window) - 1);
}

void backend_window_init(backend_window_t *w, uint32_t window, uint32_t threshold, uint32_t initial)
{
    assert(window >= 1 && window <= BACKEND_WINDOW_MAX);
    w->window = window;
    w->threshold = threshold;
    w->bits = (initial >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << initial) - 1)) & window_mask(window);
}

int backend_window_record(backend_window_t *w, int ok)
{
    w->bits = ((w->bits << 1) | (ok ? 1u : 0u)) & window_mask(w->window);
    return backend_window_healthy(w);
}

uint32_t backend_window_successes(const backend_window_t *w)
{
    return (uint32_t)__builtin_popcountll(w->bits & window_mask(w->window));
}

int backend_window_healthy(const backend_window_t *w)
{
    return backend_window_successes(w) >= w->threshold;
}

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

/* ================================================================ runtime objects */

typedef struct backend_state {
    atomic_uint refs;
    char name[BACKEND_NAME_MAX + 1];
    _Atomic uint64_t requests, errors, probes, probe_failures, probe_latency_us;
    atomic_uint inflight;       /* fetches holding a pick (all workers): max_conn bounds it */
    _Atomic int64_t last_probe_ms;
    atomic_int healthy;         /* the window's verdict; meaningless without a health check */
    _Atomic int64_t next_probe_at; /* monotonic ms; 0 = probe at once */
    pthread_mutex_t lock;       /* window and health_gen */
    backend_window_t window;
    uint64_t health_gen;
    int probe_inflight;         /* prober thread only */
} backend_state_t;

struct backend {
    uint32_t magic;
    atomic_uint refs;
    uint64_t id;       /* unique per version: worker instances are keyed by it */
    uint64_t pool_key; /* shared by versions with the same address, port and max_conn */
    backend_conf_t conf;
    int has_hc;
    backend_healthcheck_conf_t hc; /* copy of the named health check */
    int resolved;                  /* 0: the address did not resolve; never used */
    struct sockaddr_storage sa;
    socklen_t salen;
    uint64_t name_hash;
    backend_state_t *state; /* own reference */
};

typedef struct backend_set {
    atomic_uint refs;
    uint64_t gen;
    backend_lb_t lb;
    size_t n;
    backend_t *b[BACKEND_MAX]; /* own references */
} backend_set_t;

static void state_unref(backend_state_t *st)
{
    if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&st->lock);
        free(st);
    }
}

static backend_t *backend_ref(backend_t *b)
{
    assert(b->magic == BACKEND_MAGIC);
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

static void backend_unref(backend_t *b)
{
    assert(b->magic == BACKEND_MAGIC);
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        state_unref(b->state);
        b->magic = 0;
        free(b);
    }
}

static int backend_usable(const backend_t *b)
{
    return b->resolved && (!b->has_hc || atomic_load_explicit(&b->state->healthy, memory_order_relaxed));
}

static void set_unref(backend_set_t *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        for (size_t i = 0; i != s->n; ++i)
            backend_unref(s->b[i]);
        free(s);
    }
}

/* ================================================================ module state */

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
    size_t users;  /* picks not released yet */
    int current;   /* in the worker's current set */
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

static struct {
    int initialised;
    const config_t *cfg;
    store_t *store;
    pthread_mutex_t lock;        /* current, config (short sections only) */
    pthread_mutex_t commit_lock; /* one commit at a time (held across resolution and the sync) */
    backend_set_t *current;
    _Atomic uint64_t gen;
    backend_config_t *config;    /* the live configuration */
    uint64_t next_id;            /* under commit_lock */
    unsigned num_workers;
    backend_worker_t *workers;
    int have_shield_admin;
    struct sockaddr_storage shield_admin_sa;
    socklen_t shield_admin_salen;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .commit_lock = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local backend_worker_t *t_worker;

/* a new reference to the current set (NULL before init) */
static backend_set_t *set_acquire(uint64_t *gen)
{
    pthread_mutex_lock(&g.lock);
    backend_set_t *s = g.current;
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    *gen = atomic_load(&g.gen);
    pthread_mutex_unlock(&g.lock);
    return s;
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *sa, socklen_t *salen, char *why, size_t why_len)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];
    int rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
        backend_set_detail(why, why_len, "%s", gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int hc_equal(const backend_t *old, const backend_config_t *c, const backend_conf_t *bc)
{
    const backend_healthcheck_conf_t *h =
        bc->healthcheck[0] != '\0' ? backend_config_find_healthcheck(c, bc->healthcheck) : NULL;
    if ((h != NULL) != (old->has_hc != 0))
        return 0;
    return h == NULL || memcmp(h, &old->hc, sizeof(*h)) == 0;
}

static backend_t *find_in_set(backend_set_t *s, const char *name)
{
    for (size_t i = 0; s != NULL && i != s->n; ++i)
        if (strcmp(s->b[i]->conf.name, name) == 0)
            return s->b[i];
    return NULL;
}

/* the health state a (new) backend starts with; call with st->lock held or before publication */
static void state_reset_health(backend_state_t *st, const backend_t *b)
{
    if (b->has_hc) {
        backend_window_init(&st->window, b->hc.window, b->hc.threshold, b->hc.initial);
        atomic_store(&st->healthy, backend_window_healthy(&st->window));
    } else {
        atomic_store(&st->healthy, 1);
    }
    st->health_gen++;
    atomic_store(&st->next_probe_at, 0);
}

/*
 * Build the set for configuration c from the current one (old, may be NULL). strict: an
 * address that does not resolve is an error (detail "address: ..."); otherwise the backend
 * is kept but never used. *resets lists the new backends whose state needs a health reset
 * at publication. Called under commit_lock.
 */
static int set_build(const backend_config_t *c, backend_set_t *old, int strict, backend_set_t **out, backend_t **resets,
                     size_t *num_resets, char *detail, size_t detail_len)
{
    backend_set_t *s = xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->lb = c->load_balancing;
    *num_resets = 0;

    for (size_t i = 0; i != c->num_backends; ++i) {
        const backend_conf_t *bc = &c->backends[i];
        backend_t *prev = find_in_set(old, bc->name);
        if (prev != NULL && memcmp(&prev->conf, bc, sizeof(*bc)) == 0 && hc_equal(prev, c, bc) && prev->resolved) {
            s->b[s->n++] = backend_ref(prev); /* unchanged: the same object, pools and all */
            continue;
        }
        backend_t *b = xcalloc(1, sizeof(*b));
        b->magic = BACKEND_MAGIC;
        atomic_init(&b->refs, 1);
        b->id = ++g.next_id;
        b->conf = *bc;
        b->name_hash = backend_name_hash(bc->name, strlen(bc->name));
        const backend_healthcheck_conf_t *h =
            bc->healthcheck[0] != '\0' ? backend_config_find_healthcheck(c, bc->healthcheck) : NULL;
        if (h != NULL) {
            b->has_hc = 1;
            b->hc = *h;
        }
        char why[200];
        if (resolve(bc->address, bc->port, &b->sa, &b->salen, why, sizeof(why)) == 0) {
            b->resolved = 1;
        } else if (strict) {
            backend_set_detail(detail, detail_len, "address: cannot resolve '%s': %s", bc->address, why);
            free(b);
            set_unref(s);
            return BACKEND_EINVAL;
        } else {
            fprintf(stderr, "edgecache: backend '%s': cannot resolve '%s' (%s); it gets no traffic until updated\n", bc->name,
                    bc->address, why);
        }
        int same_address = prev != NULL && strcmp(prev->conf.address, bc->address) == 0 && prev->conf.port == bc->port;
        b->pool_key = same_address && prev->conf.max_conn == bc->max_conn && prev->resolved ? prev->pool_key : b->id;
        if (prev != NULL) {
            b->state = prev->state;
            atomic_fetch_add_explicit(&b->state->refs, 1, memory_order_relaxed);
            if (!same_address || !hc_equal(prev, c, bc))
                resets[(*num_resets)++] = b;
        } else {
            backend_state_t *st = xcalloc(1, sizeof(*st));
            atomic_init(&st->refs, 1);
            pthread_mutex_init(&st->lock, NULL);
            snprintf(st->name, sizeof(st->name), "%s", bc->name);
            b->state = st;
            state_reset_health(st, b); /* not published yet */
        }
        s->b[s->n++] = b;
    }
    *out = s;
    return 0;
}

/* swap in s (takes the reference) and c (copied); called under commit_lock */
static void publish(backend_set_t *s, const backend_config_t *c, backend_t **resets, size_t num_resets)
{
    for (size_t i = 0; i != num_resets; ++i) {
        pthread_mutex_lock(&resets[i]->state->lock);
        state_reset_health(resets[i]->state, resets[i]);
        pthread_mutex_unlock(&resets[i]->state->lock);
    }
    pthread_mutex_lock(&g.lock);
    backend_set_t *old = g.current;
    s->gen = atomic_load(&g.gen) + 1;
    g.current = s;
    *g.config = *c;
    atomic_store(&g.gen, s->gen);
    pthread_mutex_unlock(&g.lock);
    set_unref(old);
}

static int persist(const backend_config_t *c)
{
    json_t *doc = backend_config_to_json(c);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL)
        backend_fatal_oom();
    int rc = store_kv_put_sync(g.store, "config", BACKEND_STORE_KEY, text, strlen(text));
    free(text);
    return rc == 0 ? 0 : BACKEND_EIO;
}

backend_config_t *backend_config_get(void)
{
    backend_config_t *c = malloc(sizeof(*c));
    if (c == NULL)
        backend_fatal_oom();
    pthread_mutex_lock(&g.lock);
    if (g.config != NULL)
        *c = *g.config;
    pthread_mutex_unlock(&g.lock);
    if (!g.initialised) {
        free(c);
        return NULL;
    }
    return c;
}

int backend_config_commit(const backend_config_t *next, char *detail, size_t detail_len)
{
    backend_set_t *s = NULL;
    backend_t *resets[BACKEND_MAX];
    size_t num_resets = 0;
    int rc;

    if (!g.initialised) {
        backend_set_detail(detail, detail_len, "backends: not initialised");
        return BACKEND_EIO;
    }
    if ((rc = backend_config_validate(next, detail, detail_len)) != 0)
        return rc;
    pthread_mutex_lock(&g.commit_lock);
    backend_set_t *old;
    uint64_t gen_unused;
    old = set_acquire(&gen_unused);
    rc = set_build(next, old, 1, &s, resets, &num_resets, detail, detail_len);
    set_unref(old);
    if (rc != 0)
        goto done;
    if ((rc = persist(next)) != 0) {
        backend_set_detail(detail, detail_len, "store: write failed; nothing was changed");
        set_unref(s);
        goto done;
    }
    publish(s, next, resets, num_resets);
done:
    pthread_mutex_unlock(&g.commit_lock);
    return rc;
}

/* ================================================================ module life */

/* one line when --backend flags name other backends than the store has: they only seed a fresh store */
static void warn_ignored_flags(const backend_config_t *c, const config_t *cfg)
{
    int differ = cfg->num_backends != 0 && cfg->num_backends > c->num_backends;
    for (size_t i = 0; !differ && i != cfg->num_backends; ++i)
        differ = strcmp(c->backends[i].address, cfg->backends[i].host) != 0 || c->backends[i].port != cfg->backends[i].port;
    if (differ)
        fprintf(stderr, "edgecache: note: the store already has a backend configuration; --backend/\"backends\" only seed a "
                        "fresh store (change backends with the admin API)\n");
}

static int shield_admin_resolve(const config_t *cfg, char *err, size_t errlen)
{
    char why[200];
    if (cfg->shield_admin.port == 0)
        return 0;
    if (resolve(cfg->shield_admin.host, cfg->shield_admin.port, &g.shield_admin_sa, &g.shield_admin_salen, why, sizeof(why)) !=
        0) {
        backend_set_detail(err, errlen, "--shield-admin: cannot resolve '%s': %s", cfg->shield_admin.host, why);
        return -1;
    }
    g.have_shield_admin = 1;
    return 0;
}

int backend_module_init(const config_t *cfg, store_t *store, char *err, size_t errlen)
{
    backend_config_t *c = xcalloc(1, sizeof(*c));
    backend_set_t *s = NULL;
    backend_t *resets[BACKEND_MAX];
    size_t num_resets;
    char detail[400], *text = NULL;
    size_t len = 0;
    int dirty = 0, rc;

    assert(!g.initialised);
    g.cfg = cfg;
    g.store = store;
    g.have_shield_admin = 0;
    rc = store_kv_get(store, "config", BACKEND_STORE_KEY, &text, &len);
    if (rc == 0) {
        json_error_t jerr;
        json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        free(text);
        if (doc == NULL) {
            backend_set_detail(err, errlen, "the stored backend configuration is not JSON: %s", jerr.text);
            goto fail;
        }
        rc = backend_config_from_json(c, doc, detail, sizeof(detail));
        json_decref(doc);
        if (rc != 0) {
            backend_set_detail(err, errlen, "the stored backend configuration is invalid: %s", detail);
            goto fail;
        }
        warn_ignored_flags(c, cfg);
    } else if (rc == STORE_ENOTFOUND) {
        backend_config_seed(c, cfg); /* a fresh store: --backend flags / the config file */
        dirty = 1;
    } else {
        backend_set_detail(err, errlen, "cannot read the backend configuration from the store");
        goto fail;
    }
    if (!c->load_balancing_stored)
        c->load_balancing = (backend_lb_t)cfg->load_balancing;
    if (cfg->shield.port != 0) {
        int forced = backend_config_force_shield(c, &cfg->shield);
        if (forced < 0) {
            backend_set_detail(err, errlen, "--shield: no room for one more backend (at most %d)", BACKEND_MAX);
            goto fail;
        }
        dirty |= forced;
    }
    if (backend_config_validate(c, detail, sizeof(detail)) != 0) {
        backend_set_detail(err, errlen, "--backend: %s", detail);
        goto fail;
    }
    if (shield_admin_resolve(cfg, err, errlen) != 0)
        goto fail;
    if (c->num_backends == 0)
        fprintf(stderr, "edgecache: warning: no backends configured; misses will get 503 (give --backend on a fresh store, "
                        "or add one with the admin API)\n");
    if (dirty && persist(c) != 0) {
        backend_set_detail(err, errlen, "cannot save the backend configuration in the store");
        goto fail;
    }
    pthread_mutex_lock(&g.commit_lock);
    rc = set_build(c, NULL, 0, &s, resets, &num_resets, detail, sizeof(detail));
    assert(rc == 0); /* not strict: cannot fail */
    g.config = xcalloc(1, sizeof(*g.config));
    g.num_workers = cfg->threads;
    g.workers = xcalloc(g.num_workers + 1, sizeof(*g.workers));
    publish(s, c, resets, num_resets);
    g.initialised = 1;
    pthread_mutex_unlock(&g.commit_lock);
    free(c);
    return 0;

fail:
    free(c);
    return -1;
}

/* ================================================================ workers */

static worker_timeout_t *worker_timeout_get(backend_worker_t *ws, uint32_t ms)
{
    worker_timeout_t *t;
    for (t = ws->timeouts; t != NULL; t = t->next)
        if (t->ms == ms)
            break;
    if (t == NULL) {
        t = xcalloc(1, sizeof(*t));
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
        p = xcalloc(1, sizeof(*p));
        p->key = b->pool_key;
        h2o_socketpool_init_by_address(&p->pool, (struct sockaddr *)&b->sa, b->salen, 0, b->conf.max_conn);
        h2o_socketpool_set_timeout(&p->pool, ws->loop, POOL_IDLE_TIMEOUT_MS);
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
    worker_inst_t *in = xcalloc(1, sizeof(*in));
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
    if (ws->set != NULL && atomic_load_explicit(&g.gen, memory_order_acquire) == ws->gen)
        return;
    uint64_t gen;
    backend_set_t *s = set_acquire(&gen);
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
    set_unref(ws->set);
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
    assert(g.initialised && w->index < g.num_workers);
    backend_worker_t *ws = &g.workers[w->index];
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
    assert(w->index < g.num_workers);
    backend_worker_t *ws = &g.workers[w->index];
    if (!ws->ready)
        return;
    h2o_timeout_unlink(&ws->tick_entry);
    h2o_timeout_dispose(ws->loop, &ws->tick);
    for (worker_inst_t *in = ws->insts; in != NULL; in = in->next)
        in->current = 0;
    worker_gc(ws);
    /* what is left is held by fetches that outlived the drain: deliberately not freed */
    set_unref(ws->set);
    ws->set = NULL;
    ws->ready = 0;
    if (t_worker == ws)
        t_worker = NULL;
}

int backend_pick(struct worker *w, const uint8_t hash[CACHE_HASH_LEN], const backend_t *exclude, backend_pick_t *out)
{
    assert(w->index < g.num_workers);
    backend_worker_t *ws = &g.workers[w->index];
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
    case BACKEND_LB_ROUND_ROBIN:
        idx = backend_wrr_pick(ws->wrr, weights, eligible, s->n);
        break;
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

/* ================================================================ stats */

size_t backend_stats_snapshot(backend_stat_t *out, size_t max)
{
    uint64_t gen;
    backend_set_t *s = set_acquire(&gen);
    if (s == NULL)
        return 0;
    for (size_t i = 0; i != s->n && i != max; ++i) {
        const backend_t *b = s->b[i];
        backend_state_t *st = b->state;
        backend_stat_t *o = &out[i];
        memset(o, 0, sizeof(*o));
        snprintf(o->name, sizeof(o->name), "%s", b->conf.name);
        snprintf(o->address, sizeof(o->address), strchr(b->conf.address, ':') != NULL ? "[%s]:%u" : "%s:%u",
                 b->conf.address, (unsigned)b->conf.port);
        o->requests = atomic_load_explicit(&st->requests, memory_order_relaxed);
        o->errors = atomic_load_explicit(&st->errors, memory_order_relaxed);
        o->inflight = atomic_load_explicit(&st->inflight, memory_order_relaxed);
        o->healthy = backend_usable(b);
        o->has_healthcheck = b->has_hc;
        o->shield = b->conf.shield[0] != '\0';
        o->last_probe_ms = atomic_load_explicit(&st->last_probe_ms, memory_order_relaxed);
        o->probe_latency_us = atomic_load_explicit(&st->probe_latency_us, memory_order_relaxed);
        o->probes = atomic_load_explicit(&st->probes, memory_order_relaxed);
        o->probe_failures = atomic_load_explicit(&st->probe_failures, memory_order_relaxed);
    }
    size_t n = s->n;
    set_unref(s);
    return n;
}

/* ================================================================ the prober thread */

typedef struct prober_timeout {
    struct prober_timeout *next;
    h2o_timeout_t t;
    uint32_t ms;
} prober_timeout_t;

/* one health probe or one purge forward: an origin_client exchange on the prober's loop */
typedef struct probe {
    h2o_linklist_t link; /* P.active, then P.finished */
    struct probe *next_pending;
    int is_forward;
    int finished;
    origin_client_t *client; /* NULL once the client is gone */
    h2o_socketpool_t pool;
    int pool_ready;
    h2o_timeout_entry_t watchdog;
    origin_client_timeouts_t timeouts;
    h2o_iovec_t reqbuf; /* malloc'd */
    int is_head;
    int64_t started_us;
    /* a health probe */
    backend_t *b; /* own reference */
    uint64_t health_gen;
    uint32_t expected;
    /* a forward */
    store_purge_cb cb;
    void *arg;
} probe_t;

static struct {
    pthread_mutex_t lock; /* accepting, pending */
    int accepting;
    probe_t *pending, **pending_tail; /* forwards not started yet */
    pthread_t thread;
    int started;
    atomic_int stop;
    h2o_evloop_t *loop;
    /* prober thread only */
    backend_set_t *set;
    uint64_t gen;
    prober_timeout_t *timeouts;
    h2o_linklist_t active, finished;
} P = {.lock = PTHREAD_MUTEX_INITIALIZER};

static h2o_timeout_t *prober_timeout(uint32_t ms)
{
    prober_timeout_t *t;
    for (t = P.timeouts; t != NULL; t = t->next)
        if (t->ms == ms)
            return &t->t;
    t = xcalloc(1, sizeof(*t));
    t->ms = ms;
    h2o_timeout_init(P.loop, &t->t, ms);
    t->next = P.timeouts;
    P.timeouts = t;
    return &t->t;
}

static void probe_record(probe_t *p, int ok, uint64_t latency_us)
{
    backend_state_t *st = p->b->state;
    int was = -1, now = 0;
    uint32_t successes = 0, window = 0;

    pthread_mutex_lock(&st->lock);
    if (st->health_gen == p->health_gen) { /* else the health check changed meanwhile: ignore */
        was = atomic_load(&st->healthy);
        now = backend_window_record(&st->window, ok);
        atomic_store(&st->healthy, now);
        successes = backend_window_successes(&st->window);
        window = st->window.window;
    }
    pthread_mutex_unlock(&st->lock);
    st->probe_inflight = 0;
    if (was < 0)
        return;
    atomic_fetch_add_explicit(&st->probes, 1, memory_order_relaxed);
    if (!ok)
        atomic_fetch_add_explicit(&st->probe_failures, 1, memory_order_relaxed);
    atomic_store_explicit(&st->probe_latency_us, latency_us, memory_order_relaxed);
    atomic_store_explicit(&st->last_probe_ms, wall_ms(), memory_order_relaxed);
    if (was != now)
        fprintf(stderr, "edgecache: backend '%s' is now %s (%u of the last %u probes ok)\n", st->name,
                now ? "healthy" : "unhealthy", successes, window);
}

/* the exchange is over (status 0: no response); the client is gone or about to free itself */
static void job_finish(probe_t *p, int status, const char *errstr)
{
    if (p->finished)
        return;
    p->finished = 1;
    p->client = NULL;
    h2o_timeout_unlink(&p->watchdog);
    h2o_linklist_unlink(&p->link);
    h2o_linklist_insert(&P.finished, &p->link);
    uint64_t latency = status != 0 ? (uint64_t)(mono_us() - p->started_us) : 0;
    if (p->is_forward) {
        store_purge_result_t res = {0};
        if (status < 200 || status > 299) {
            res.err = BACKEND_EFORWARD;
            if (status != 0)
                fprintf(stderr, "edgecache: purge forwarded to the shield: answered %d\n", status);
            else
                fprintf(stderr, "edgecache: purge forwarded to the shield: %s\n", errstr != NULL ? errstr : "failed");
        }
        p->cb(p->arg, &res);
    } else {
        probe_record(p, status != 0 && (uint32_t)status == p->expected, latency);
    }
}

static origin_client_body_cb job_on_head(origin_client_t *client, const char *errstr, int minor_version, int status,
                                         h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers)
{
    probe_t *p = origin_client_data(client);
    (void)minor_version, (void)msg, (void)headers, (void)num_headers;
    p->client = NULL; /* it frees itself: after eos or an error, and because we return NULL */
    if (errstr == NULL || errstr == origin_client_error_is_eos)
        job_finish(p, status, NULL);
    else
        job_finish(p, 0, errstr);
    return NULL; /* the body is not needed */
}

static origin_client_head_cb job_on_connect(origin_client_t *client, const char *errstr, h2o_iovec_t **reqbufs,
                                            size_t *reqbufcnt, int *method_is_head)
{
    probe_t *p = origin_client_data(client);
    if (errstr != NULL) {
        p->client = NULL;
        job_finish(p, 0, errstr);
        return NULL;
    }
    *reqbufs = &p->reqbuf;
    *reqbufcnt = 1;
    *method_is_head = p->is_head;
    return job_on_head;
}

static void job_on_watchdog(h2o_timeout_entry_t *entry)
{
    probe_t *p = H2O_STRUCT_FROM_MEMBER(probe_t, watchdog, entry);
    origin_client_t *client = p->client;
    p->client = NULL;
    if (client != NULL)
        origin_client_cancel(client);
    job_finish(p, 0, "timeout");
}

static void job_start(probe_t *p, const struct sockaddr_storage *sa, socklen_t salen, uint32_t timeout_ms)
{
    h2o_socketpool_init_by_address(&p->pool, (struct sockaddr *)sa, salen, 0, 1);
    h2o_socketpool_set_timeout(&p->pool, P.loop, 1000);
    p->pool_ready = 1;
    h2o_timeout_t *t = prober_timeout(timeout_ms);
    p->timeouts.connect = t;
    p->timeouts.first_byte = t;
    p->timeouts.between_bytes = t;
    p->watchdog.cb = job_on_watchdog;
    h2o_timeout_link(P.loop, t, &p->watchdog);
    h2o_linklist_insert(&P.active, &p->link);
    p->started_us = mono_us();
    origin_client_connect(&p->client, p, P.loop, &p->pool, &p->timeouts, job_on_connect);
}

static void job_free(probe_t *p)
{
    if (p->pool_ready)
        h2o_socketpool_dispose(&p->pool);
    if (p->b != NULL)
        backend_unref(p->b);
    free(p->reqbuf.base);
    free(p);
}

static void probe_start(backend_t *b)
{
    backend_state_t *st = b->state;
    probe_t *p = xcalloc(1, sizeof(*p));
    char host[BACKEND_HOST_MAX + 16];

    p->b = backend_ref(b);
    pthread_mutex_lock(&st->lock);
    p->health_gen = st->health_gen;
    pthread_mutex_unlock(&st->lock);
    st->probe_inflight = 1;
    p->expected = b->hc.expected_response;
    p->is_head = strcmp(b->hc.method, "HEAD") == 0;
    if (b->hc.host[0] != '\0')
        snprintf(host, sizeof(host), "%s", b->hc.host);
    else if (b->conf.override_host[0] != '\0')
        snprintf(host, sizeof(host), "%s", b->conf.override_host);
    else if (strchr(b->conf.address, ':') != NULL)
        snprintf(host, sizeof(host), "[%s]:%u", b->conf.address, (unsigned)b->conf.port);
    else if (b->conf.port != 80)
        snprintf(host, sizeof(host), "%s:%u", b->conf.address, (unsigned)b->conf.port);
    else
        snprintf(host, sizeof(host), "%s", b->conf.address);
    size_t cap = strlen(b->hc.method) + strlen(b->hc.path) + strlen(host) + 128;
    p->reqbuf.base = malloc(cap);
    if (p->reqbuf.base == NULL)
        backend_fatal_oom();
    int n = snprintf(p->reqbuf.base, cap, "%s %s HTTP/1.1\r\nhost: %s\r\nuser-agent: edgecache-healthcheck\r\nconnection: close\r\n\r\n",
                     b->hc.method, b->hc.path, host);
    assert(n > 0 && (size_t)n < cap);
    p->reqbuf.len = (size_t)n;
    job_start(p, &b->sa, b->salen, b->hc.timeout);
}

static void prober_schedule(void)
{
    if (P.set == NULL || atomic_load(&g.gen) != P.gen) {
        set_unref(P.set);
        P.set = set_acquire(&P.gen);
    }
    if (P.set == NULL)
        return;
    int64_t now = mono_ms();
    for (size_t i = 0; i != P.set->n; ++i) {
        backend_t *b = P.set->b[i];
        backend_state_t *st = b->state;
        if (!b->has_hc || !b->resolved || st->probe_inflight)
            continue;
        int64_t at = atomic_load(&st->next_probe_at);
        if (at != 0 && now < at)
            continue;
        atomic_store(&st->next_probe_at, now + (int64_t)b->hc.check_interval);
        probe_start(b);
    }
}

static void prober_free_finished(void)
{
    while (!h2o_linklist_is_empty(&P.finished)) {
        probe_t *p = H2O_STRUCT_FROM_MEMBER(probe_t, link, P.finished.next);
        h2o_linklist_unlink(&p->link);
        job_free(p);
    }
}

static probe_t *take_pending(void)
{
    pthread_mutex_lock(&P.lock);
    probe_t *list = P.pending;
    P.pending = NULL;
    P.pending_tail = &P.pending;
    pthread_mutex_unlock(&P.lock);
    return list;
}

static void *prober_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "ec-health"); /* shown by top -H, ps -L, perf */
    while (!atomic_load(&P.stop)) {
        prober_free_finished();
        for (probe_t *p = take_pending(), *next; p != NULL; p = next) {
            next = p->next_pending;
            job_start(p, &g.shield_admin_sa, g.shield_admin_salen, FORWARD_TIMEOUT_MS);
        }
        prober_schedule();
        h2o_evloop_run(P.loop, PROBER_WAIT_MS);
    }

    /* shutting down: no new forwards; everything pending or running fails now */
    pthread_mutex_lock(&P.lock);
    P.accepting = 0;
    pthread_mutex_unlock(&P.lock);
    for (probe_t *p = take_pending(), *next; p != NULL; p = next) {
        store_purge_result_t res = {.err = BACKEND_EFORWARD};
        next = p->next_pending;
        p->cb(p->arg, &res);
        job_free(p);
    }
    while (!h2o_linklist_is_empty(&P.active)) {
        probe_t *p = H2O_STRUCT_FROM_MEMBER(probe_t, link, P.active.next);
        origin_client_t *client = p->client;
        p->client = NULL;
        if (client != NULL)
            origin_client_cancel(client);
        job_finish(p, 0, "shutting down");
    }
    prober_free_finished();
    h2o_evloop_run(P.loop, 0); /* lets closed sockets be freed */
    while (P.timeouts != NULL) {
        prober_timeout_t *t = P.timeouts;
        P.timeouts = t->next;
        assert(h2o_linklist_is_empty(&t->t._entries));
        h2o_timeout_dispose(P.loop, &t->t);
        free(t);
    }
    set_unref(P.set);
    P.set = NULL;
    frontend_drain_thread_caches();
    return NULL;
}

int backend_module_start(char *err, size_t errlen)
{
    assert(g.initialised && !P.started);
    P.loop = h2o_evloop_create();
    h2o_linklist_init_anchor(&P.active);
    h2o_linklist_init_anchor(&P.finished);
    atomic_store(&P.stop, 0);
    P.set = NULL;
    P.gen = 0;
    pthread_mutex_lock(&P.lock);
    P.pending = NULL;
    P.pending_tail = &P.pending;
    P.accepting = 1;
    pthread_mutex_unlock(&P.lock);
    if ((errno = pthread_create(&P.thread, NULL, prober_main, NULL)) != 0) {
        backend_set_detail(err, errlen, "cannot start the health-check thread: %s", strerror(errno));
        pthread_mutex_lock(&P.lock);
        P.accepting = 0;
        pthread_mutex_unlock(&P.lock);
        h2o_evloop_destroy(P.loop);
        P.loop = NULL;
        return -1;
    }
    P.started = 1;
    return 0;
}

void backend_module_stop(void)
{
    if (P.started) {
        atomic_store(&P.stop, 1);
        pthread_join(P.thread, NULL);
        h2o_evloop_destroy(P.loop);
        P.loop = NULL;
        P.started = 0;
    }
    if (!g.initialised)
        return;
    /* the workers are gone: drop the module's own references */
    pthread_mutex_lock(&g.commit_lock);
    pthread_mutex_lock(&g.lock);
    backend_set_t *s = g.current;
    g.current = NULL;
    free(g.config);
    g.config = NULL;
    g.initialised = 0;
    pthread_mutex_unlock(&g.lock);
    pthread_mutex_unlock(&g.commit_lock);
    set_unref(s);
    free(g.workers);
    g.workers = NULL;
    g.num_workers = 0;
}

/* ================================================================ purge forwarding */

static int header_value_ok(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return 0;
    return 1;
}

int backend_forward_purge(const char *path, size_t path_len, const char *surrogate_key, size_t surrogate_key_len,
                          const char *body, size_t body_len, int soft, store_purge_cb cb, void *arg)
{
    const config_t *cfg = g.cfg;
    if (!g.initialised || !g.have_shield_admin)
        return 1;
    /* the admin request's own target and Surrogate-Key, as h2o took them: no controls, and
     * any length the admin took (h2o bounds them; the buffer is sized from them). A purge
     * path held to a host name's 255 bytes, and a header to 64 KB, made every purge of a
     * longer key or URL, or of a full batch of long keys, a 502 once the local purge was done */
    int target_ok = 1;
    for (size_t i = 0; i != path_len && target_ok; ++i)
        target_ok = (unsigned char)path[i] > 0x20 && path[i] != 0x7f;
    if (path_len == 0 || path[0] != '/' || !target_ok ||
        (surrogate_key != NULL && !header_value_ok(surrogate_key, surrogate_key_len)))
        return BACKEND_EINVAL;
    if (surrogate_key == NULL)
        surrogate_key_len = 0;
    if (body == NULL)
        body_len = 0;

    probe_t *p = xcalloc(1, sizeof(*p));
    p->is_forward = 1;
    p->cb = cb;
    p->arg = arg;
    size_t cap = path_len + surrogate_key_len + body_len + sizeof(cfg->shield_token) + sizeof(cfg->shield_admin.host) + 256;
    char *buf = malloc(cap), *w = buf;
    if (buf == NULL)
        backend_fatal_oom();
    w += sprintf(w, "POST %.*s HTTP/1.1\r\nhost: %s%s%s:%u\r\n", (int)path_len, path,
                 strchr(cfg->shield_admin.host, ':') != NULL ? "[" : "", cfg->shield_admin.host,
                 strchr(cfg->shield_admin.host, ':') != NULL ? "]" : "", (unsigned)cfg->shield_admin.port);
    if (cfg->shield_token[0] != '\0')
        w += sprintf(w, "fastly-key: %s\r\n", cfg->shield_token);
    if (surrogate_key_len != 0)
        w += sprintf(w, "surrogate-key: %.*s\r\n", (int)surrogate_key_len, surrogate_key);
    if (soft)
        w += sprintf(w, "fastly-soft-purge: 1\r\n");
    if (body_len != 0)
        w += sprintf(w, "content-type: application/json\r\n");
    w += sprintf(w, "content-length: %zu\r\nuser-agent: edgecache-purge-forward\r\nconnection: close\r\n\r\n", body_len);
    memcpy(w, body != NULL ? body : "", body_len);
    w += body_len;
    assert((size_t)(w - buf) <= cap);
    p->reqbuf = h2o_iovec_init(buf, (size_t)(w - buf));

    pthread_mutex_lock(&P.lock);
    if (!P.accepting) {
        pthread_mutex_unlock(&P.lock);
        job_free(p);
        return BACKEND_EFORWARD;
    }
    *P.pending_tail = p;
    P.pending_tail = &p->next_pending;
    pthread_mutex_unlock(&P.lock);
    return 0;
}

/*
 * server/backend_prober.c — the prober thread: health checks of the backends that have one,
 * and purges forwarded to the shield's admin API. Both are origin_client exchanges (a
 * "job") on the prober's own h2o evloop.
 *
 * What it owns.
 *   - The thread, its loop, its h2o_timeout_t per distinct duration, its reference to the
 *     set it last saw (taken again when backend_g.gen moves), and the jobs: active ones,
 *     finished ones waiting to be freed at the top of the loop, and forwards submitted by
 *     other threads and not started yet (P.pending, under P.lock).
 *   - The health window (pure functions): the last probe results of a backend as bits.
 *
 * Invariants.
 *   - A job finishes exactly once (job_finish): a forward's callback runs then, on this
 *     thread, and a probe's result is recorded. A probe result counts only if the backend's
 *     health_gen is still the one the probe started with (a commit that reset the health
 *     state meanwhile moved it); the window changes under state->lock.
 *   - A backend has at most one probe in flight (state->probe_inflight, this thread only);
 *     the next is due check_interval after the previous one started.
 *   - Once the thread stops accepting (shutdown), a forward is refused at submission, and
 *     every pending or running one fails with BACKEND_EFORWARD: a callback is never lost.
 *
 * Threads. The prober thread runs everything here but backend_module_start /
 * backend_prober_stop (the main thread), backend_forward_purge (any thread: it only
 * queues the job under P.lock) and the health window functions (pure; a commit in
 * server/backend.c resets a window too, under state->lock).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <h2o.h>
#include <h2o/socketpool.h>
#include "common/alloc.h"
#include "common/now.h"
#include "server/backend.h"
#include "server/backend_int.h"
#include "server/frontend.h"

#define PROBER_WAIT_MS 10        /* the prober loop's longest sleep (it polls its job list) */
#define FORWARD_TIMEOUT_MS 10000 /* a purge forwarded to the shield must be answered within this */

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
    t = alloc_xcalloc(1, sizeof(*t), "backend");
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
    atomic_store_explicit(&st->last_probe_ms, now_wall_ms(), memory_order_relaxed);
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
    uint64_t latency = status != 0 ? (uint64_t)(now_mono_us() - p->started_us) : 0;
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

static void job_start(probe_t *p, const struct sockaddr_storage *sa, socklen_t salen, uint32_t timeout_ms, origin_tls_t *tls)
{
    h2o_socketpool_init_by_address(&p->pool, (struct sockaddr *)sa, salen, tls != NULL, 1);
    h2o_socketpool_set_timeout(&p->pool, P.loop, 1000);
    p->pool_ready = 1;
    h2o_timeout_t *t = prober_timeout(timeout_ms);
    p->timeouts.connect = t;
    p->timeouts.first_byte = t;
    p->timeouts.between_bytes = t;
    p->watchdog.cb = job_on_watchdog;
    h2o_timeout_link(P.loop, t, &p->watchdog);
    h2o_linklist_insert(&P.active, &p->link);
    p->started_us = now_mono_us();
    origin_client_connect(&p->client, p, P.loop, &p->pool, &p->timeouts, tls, job_on_connect);
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
    probe_t *p = alloc_xcalloc(1, sizeof(*p), "backend");
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
        alloc_die("backend", 0);
    int n = snprintf(p->reqbuf.base, cap,
                     "%s %s HTTP/1.1\r\nhost: %s\r\nuser-agent: edgecache-healthcheck\r\nconnection: close\r\n\r\n",
                     b->hc.method, b->hc.path, host);
    assert(n > 0 && (size_t)n < cap);
    p->reqbuf.len = (size_t)n;
    job_start(p, &b->sa, b->salen, b->hc.timeout, b->tls); /* a TLS backend is probed over TLS, verified alike */
}

static void prober_schedule(void)
{
    if (P.set == NULL || atomic_load(&backend_g.gen) != P.gen) {
        backend_set_unref(P.set);
        P.set = backend_set_acquire(&P.gen);
    }
    if (P.set == NULL)
        return;
    int64_t now = now_mono_ms();
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
            job_start(p, &backend_g.shield_admin_sa, backend_g.shield_admin_salen, FORWARD_TIMEOUT_MS, NULL);
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
    backend_set_unref(P.set);
    P.set = NULL;
    frontend_drain_thread_caches();
    return NULL;
}

int backend_module_start(char *err, size_t errlen)
{
    assert(backend_g.initialised && !P.started);
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
        errbuf_printf(err, errlen, "cannot start the health-check thread: %s", strerror(errno));
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

void backend_prober_stop(void)
{
    if (P.started) {
        atomic_store(&P.stop, 1);
        pthread_join(P.thread, NULL);
        h2o_evloop_destroy(P.loop);
        P.loop = NULL;
        P.started = 0;
    }
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
    const config_t *cfg = backend_g.cfg;
    if (!backend_g.initialised || !backend_g.have_shield_admin)
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

    probe_t *p = alloc_xcalloc(1, sizeof(*p), "backend");
    p->is_forward = 1;
    p->cb = cb;
    p->arg = arg;
    size_t cap = path_len + surrogate_key_len + body_len + sizeof(cfg->shield_token) + sizeof(cfg->shield_admin.host) + 256;
    char *buf = malloc(cap), *w = buf;
    if (buf == NULL)
        alloc_die("backend", 0);
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

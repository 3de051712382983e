/*
 * server/stats.c — request statistics: per-thread counters and their sums, the h2o logger
 * that feeds them (and the access log), the readers, and the module's life cycle. The
 * history kept in the store and its sampler thread are stats_history.c; the SLA arithmetic
 * is stats_sla.c.
 *
 * What it owns: one stats_worker_t per worker thread (an array allocated by stats_init,
 * 64-byte aligned entries), the table of the workers it has seen (filled by the logger's
 * on_context_init on each worker's own thread, published with a release store), the purge
 * counters (shared atomics: purges are rare). cfg, store and mem are borrowed.
 *
 * Invariants. A stats_worker_t is written only by its own worker thread, with a relaxed
 * load and a relaxed store (no read-modify-write, so no lock prefix on the hit path); any
 * thread reads it with relaxed loads. Each counter is therefore exact and monotonic, while a
 * snapshot of many counters is not one instant: readers must not assume that, e.g., the
 * status classes add up to `responses` at every moment (they do once traffic stops).
 *
 * Threads: stats_record_request and the note_* helpers run on worker threads; readers (the
 * admin thread, the metrics listener, the sampler) call stats_snapshot and the getters;
 * stats_init/start/stop run on the main thread.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include "server/accesslog.h"
#include "server/stats.h"
#include "server/stats_int.h"
#include "server/stats_realtime.h"
#include "server/worker.h"
#include "common/now.h"

static const char ENV_BACKEND[] = "edgecache.backend";
static const char ENV_SYNTH[] = "edgecache.synth";
static const char ENV_START[] = "edgecache.start"; /* the monotonic µs at the handler's entry, 8 bytes */

const uint64_t stats_lat_bounds_us[STATS_LAT_BUCKETS - 1] = {
    1,        2,        3,        5,        7,                  /* µs */
    10,       15,       20,       30,       50,       70,       /* */
    100,      150,      200,      300,      500,      700,      /* */
    1000,     1500,     2000,     3000,     5000,     7000,     /* ms */
    10000,    15000,    20000,    30000,    50000,    70000,    /* */
    100000,   150000,   200000,   300000,   500000,   700000,   /* */
    1000000,  1500000,  2000000,  3000000,  5000000,  7000000,  /* s */
    10000000, 15000000, 20000000, 30000000, 50000000, 60000000, /* */
};

const int stats_codes[STATS_NUM_CODES] = {200, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404,
                                          405, 410, 412, 413, 416, 429, 500, 501, 502, 503, 504, 505};

/* per-worker state the logger keeps besides the counters */
typedef struct stats_thread {
    h2o_timeout_entry_t flush_timer; /* access-log flush, on the worker's one-second timeout */
    h2o_context_t *ctx;
} stats_thread_t;

typedef struct stats_logger {
    h2o_logger_t super;
} stats_logger_t;

static struct {
    const config_t *cfg;
    store_t *store;
    mem_tier_t *mem;
    unsigned nthreads;
    stats_worker_t *workers;
    worker_t *_Atomic *seen; /* worker_t of each index, once its loop has started */
    stats_thread_t *threads;
    int64_t start_time;
    uint32_t minute_seconds, sample_interval, degraded_ppm;

    _Atomic uint64_t purges[STATS_PURGE_KINDS], purge_sum_us[STATS_PURGE_KINDS], purge_max_us[STATS_PURGE_KINDS];
} g;

/* set (release) once stats_init has filled `g`, cleared by stats_stop before it frees: readers on
 * threads started before stats_init (the admin thread) check it with acquire before touching `g` */
static atomic_int g_ready;

static int ready(void)
{
    return atomic_load_explicit(&g_ready, memory_order_acquire);
}

/* ---------------------------------------------------------------- small helpers */

static inline void bump(_Atomic uint64_t *c, uint64_t n)
{
    /* single writer: a plain load and store, no locked read-modify-write */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline uint64_t rd(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---------------------------------------------------------------- histograms, codes */

unsigned stats_lat_bucket(uint64_t us)
{
    unsigned lo = 0, hi = STATS_LAT_BUCKETS - 1; /* answer in [lo, hi]; hi = overflow */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (us <= stats_lat_bounds_us[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

double stats_hist_percentile(const uint64_t counts[STATS_LAT_BUCKETS], double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < STATS_LAT_BUCKETS; i++)
        total += counts[i];
    if (total == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    double rank = q * (double)total;
    uint64_t cum = 0;
    for (unsigned i = 0; i < STATS_LAT_BUCKETS; i++) {
        if (counts[i] == 0 || (double)(cum + counts[i]) < rank) {
            cum += counts[i];
            continue;
        }
        if (i == STATS_LAT_BUCKETS - 1)
            return (double)stats_lat_bounds_us[STATS_LAT_BUCKETS - 2];
        double lower = i == 0 ? 0 : (double)stats_lat_bounds_us[i - 1], upper = (double)stats_lat_bounds_us[i];
        return lower + (upper - lower) * ((rank - (double)cum) / (double)counts[i]);
    }
    return (double)stats_lat_bounds_us[STATS_LAT_BUCKETS - 2]; /* not reached: cum reaches total */
}

int stats_code_index(int status)
{
    switch (status) {
    case 200: return 0;
    case 204: return 1;
    case 206: return 2;
    case 301: return 3;
    case 302: return 4;
    case 304: return 5;
    case 307: return 6;
    case 308: return 7;
    case 400: return 8;
    case 401: return 9;
    case 403: return 10;
    case 404: return 11;
    case 405: return 12;
    case 410: return 13;
    case 412: return 14;
    case 413: return 15;
    case 416: return 16;
    case 429: return 17;
    case 500: return 18;
    case 501: return 19;
    case 502: return 20;
    case 503: return 21;
    case 504: return 22;
    case 505: return 23;
    default: return -1;
    }
}

const char *stats_purge_kind_name(stats_purge_kind_t kind)
{
    switch (kind) {
    case STATS_PURGE_URL: return "url";
    case STATS_PURGE_KEY: return "key";
    case STATS_PURGE_ALL: return "all";
    case STATS_PURGE_SOFT: return "soft";
    case STATS_PURGE_KINDS: break;
    }
    return "unknown";
}

/* ---------------------------------------------------------------- life cycle */

int stats_init(const config_t *cfg, store_t *store, mem_tier_t *mem, char *err, size_t errlen)
{
    assert(g.workers == NULL);
    if (cfg->threads == 0) {
        snprintf(err, errlen, "stats: no worker threads");
        return -1;
    }
    g.cfg = cfg;
    g.store = store;
    g.mem = mem;
    g.nthreads = cfg->threads;
    g.workers = aligned_alloc(64, sizeof(stats_worker_t) * g.nthreads);
    if (g.workers == NULL)
        alloc_die("stats", sizeof(stats_worker_t) * g.nthreads);
    memset(g.workers, 0, sizeof(stats_worker_t) * g.nthreads);
    g.seen = alloc_xmalloc(sizeof(*g.seen) * g.nthreads, "stats");
    for (unsigned i = 0; i < g.nthreads; i++)
        atomic_init(&g.seen[i], NULL);
    g.threads = alloc_xmalloc(sizeof(*g.threads) * g.nthreads, "stats");
    memset(g.threads, 0, sizeof(*g.threads) * g.nthreads);
    for (int k = 0; k < STATS_PURGE_KINDS; k++) {
        atomic_store(&g.purges[k], 0);
        atomic_store(&g.purge_sum_us[k], 0);
        atomic_store(&g.purge_max_us[k], 0);
    }
    g.minute_seconds = cfg->stats_minute_seconds != 0 ? cfg->stats_minute_seconds : 60;
    g.sample_interval = cfg->stats_sample_interval != 0 ? cfg->stats_sample_interval : 300;
    uint32_t retention_days = cfg->stats_retention_days != 0 ? cfg->stats_retention_days : 31;
    g.degraded_ppm = cfg->sla_degraded_ppm;
    g.start_time = (int64_t)time(NULL);

    stats_history_init(store, g.start_time, g.minute_seconds, g.sample_interval, retention_days);
    atomic_store_explicit(&g_ready, 1, memory_order_release);
    return 0;
}

int stats_start(char *err, size_t errlen)
{
    assert(g.workers != NULL);
    if (stats_sampler_start(err, errlen) != 0)
        return -1;
    return stats_rt_start(err, errlen);
}

void stats_stop(void)
{
    if (g.workers == NULL)
        return;
    stats_rt_stop();
    stats_history_stop();
    atomic_store_explicit(&g_ready, 0, memory_order_release);
    free(g.workers);
    g.workers = NULL;
    free((void *)g.seen);
    g.seen = NULL;
    free(g.threads);
    g.threads = NULL;
    g.nthreads = 0;
}

/* ---------------------------------------------------------------- the logger */

static void on_flush_timer(h2o_timeout_entry_t *entry)
{
    stats_thread_t *t = H2O_STRUCT_FROM_MEMBER(stats_thread_t, flush_timer, entry);
    unsigned index = (unsigned)(t - g.threads);
    assert(index < g.nthreads);
    accesslog_flush(index);
    h2o_timeout_link(t->ctx->loop, &t->ctx->one_sec_timeout, &t->flush_timer);
}

static worker_t *worker_of_ctx(h2o_context_t *ctx)
{
    worker_t *w = H2O_STRUCT_FROM_MEMBER(worker_t, ctx, ctx);
    assert(w->magic == WORKER_MAGIC);
    return w;
}

static void note_worker(worker_t *w)
{
    assert(w->index < g.nthreads);
    if (atomic_load_explicit(&g.seen[w->index], memory_order_relaxed) != w)
        atomic_store_explicit(&g.seen[w->index], w, memory_order_release);
}

static void logger_on_context_init(h2o_logger_t *self, h2o_context_t *ctx)
{
    (void)self;
    if (g.workers == NULL)
        return;
    worker_t *w = worker_of_ctx(ctx);
    note_worker(w);
    if (accesslog_enabled()) {
        stats_thread_t *t = &g.threads[w->index];
        t->ctx = ctx;
        t->flush_timer.cb = on_flush_timer;
        h2o_timeout_link(ctx->loop, &ctx->one_sec_timeout, &t->flush_timer);
    }
}

static void logger_on_context_dispose(h2o_logger_t *self, h2o_context_t *ctx)
{
    (void)self;
    if (g.workers == NULL)
        return;
    worker_t *w = worker_of_ctx(ctx);
    stats_thread_t *t = &g.threads[w->index];
    if (t->ctx == ctx && h2o_timeout_is_linked(&t->flush_timer))
        h2o_timeout_unlink(&t->flush_timer);
    accesslog_flush(w->index);
}

static void logger_log_access(h2o_logger_t *self, h2o_req_t *req)
{
    (void)self;
    stats_record_request(req);
}

void stats_register_logger(h2o_pathconf_t *pathconf)
{
    stats_logger_t *l = (stats_logger_t *)h2o_create_logger(pathconf, sizeof(*l));
    l->super.on_context_init = logger_on_context_init;
    l->super.on_context_dispose = logger_on_context_dispose;
    l->super.log_access = logger_log_access;
}

/* ---------------------------------------------------------------- per request */

/* the value of the last header named `name` (lower case), case-insensitively; NULL if none */
static const h2o_iovec_t *last_header(const h2o_headers_t *headers, const char *name, size_t len)
{
    const h2o_iovec_t *found = NULL;
    for (size_t i = 0; i != headers->size; ++i) {
        const h2o_header_t *h = &headers->entries[i];
        if (h->name->len == len && h2o_lcstris(h->name->base, len, name, len))
            found = &h->value;
    }
    return found;
}

/* HIT / MISS / PASS from the X-Cache value ("HIT", "MISS, HIT" ... the first token); -1 if none.
 * REVALIDATED (the stored body, after the origin's 304) counts as a hit, as the hit counter does. */
static int cache_kind(const h2o_iovec_t *v)
{
    if (v == NULL)
        return -1;
    size_t n = 0;
    while (n < v->len && v->base[n] != ',' && v->base[n] != ' ')
        ++n;
    if (h2o_lcstris(v->base, n, H2O_STRLIT("hit")) || h2o_lcstris(v->base, n, H2O_STRLIT("revalidated")))
        return STATS_LAT_HIT;
    if (h2o_lcstris(v->base, n, H2O_STRLIT("miss")))
        return STATS_LAT_MISS;
    if (h2o_lcstris(v->base, n, H2O_STRLIT("pass")))
        return STATS_LAT_PASS;
    return -1;
}

/* how many decimal digits v takes (not snprintf: this runs for every response) */
static uint64_t decimal_digits(size_t v)
{
    uint64_t n = 1;
    while (v >= 10) {
        v /= 10;
        ++n;
    }
    return n;
}

/*
 * The size of the response header block exactly as h2o 2.2's HTTP/1.1 writer (flatten_headers)
 * lays it out: "HTTP/1.1 <status> <reason>", "Date: <29 bytes>", "Connection: keep-alive|close",
 * "Content-Length: N" when the length is known, "Server: ..." when a server name is set, every
 * response header (Transfer-Encoding included: the chunked filter adds it there), the blank
 * line. h2o 2.2 does not count header bytes itself; over HTTP/2 this is an estimate.
 */
static uint64_t header_bytes(h2o_req_t *req)
{
    uint64_t n = sizeof("HTTP/1.1 200 \r\n") - 1 + (req->res.reason != NULL ? strlen(req->res.reason) : 0);
    n += sizeof("Date: Sun, 22 Nov 2026 06:35:53 GMT\r\n") - 1;
    n += req->http1_is_persistent ? sizeof("Connection: keep-alive\r\n") - 1 : sizeof("Connection: close\r\n") - 1;
    if (req->res.content_length != SIZE_MAX)
        n += sizeof("Content-Length: \r\n") - 1 + decimal_digits(req->res.content_length);
    if (req->conn->ctx->globalconf->server_name.len != 0)
        n += sizeof("Server: \r\n") - 1 + req->conn->ctx->globalconf->server_name.len;
    for (size_t i = 0; i != req->res.headers.size; ++i)
        n += req->res.headers.entries[i].name->len + 2 + req->res.headers.entries[i].value.len + 2;
    return n + 2;
}

static int64_t elapsed_us(struct timeval *from, struct timeval *until)
{
    if (h2o_timeval_is_null(from) || h2o_timeval_is_null(until))
        return -1;
    int64_t d = h2o_timeval_subtract(from, until);
    return d < 0 ? 0 : d;
}

void stats_note_request_start(h2o_req_t *req)
{
    int64_t now = now_mono_us();
    char *p = h2o_mem_alloc_pool(&req->pool, sizeof(now));
    memcpy(p, &now, sizeof(now)); /* the pool promises no alignment */
    *h2o_req_getenv(req, ENV_START, sizeof(ENV_START) - 1, 1) = h2o_iovec_init(p, sizeof(now));
}

/* the monotonic µs stats_note_request_start noted for req, or -1 */
static int64_t request_start_us(h2o_req_t *req)
{
    int64_t t;
    const h2o_iovec_t *v = req->env.size != 0 ? h2o_req_getenv(req, ENV_START, sizeof(ENV_START) - 1, 0) : NULL;
    if (v == NULL || v->len != sizeof(t))
        return -1;
    memcpy(&t, v->base, sizeof(t));
    return t;
}

void stats_record_request(h2o_req_t *req)
{
    if (g.workers == NULL)
        return;
    worker_t *w = worker_of_ctx(req->conn->ctx);
    note_worker(w);
    stats_worker_t *s = &g.workers[w->index];
    int status = req->res.status;
    const h2o_iovec_t *xc = last_header(&req->res.headers, H2O_STRLIT("x-cache"));
    int kind = cache_kind(xc);

    /* the handler's own monotonic start to now, the last byte's write completion (h2o runs the
     * loggers as it disposes of a finished request); h2o's timestamps are the event loop's
     * cached millisecond clock, which makes every hit 0, so they are only the fallback for a
     * request the handler never saw */
    int64_t total = request_start_us(req);
    if (total >= 0)
        total = now_mono_us() - total;
    else
        total = elapsed_us(&req->timestamps.request_begin_at, &req->timestamps.response_end_at);
    if (total < 0) {
        /* no end (the client went away): up to now */
        struct timeval now;
        gettimeofday(&now, NULL);
        total = elapsed_us(&req->timestamps.request_begin_at, &now);
        if (total < 0)
            total = 0;
    }
    int64_t ttfb = elapsed_us(&req->timestamps.request_begin_at, &req->timestamps.response_start_at);
    if (ttfb > total) /* h2o's millisecond loop clock, against our own microseconds: never past the end */
        ttfb = total;

    uint64_t body = req->bytes_sent, head = 0;
    if (status >= 100 && status <= 599) {
        bump(&s->responses, 1);
        bump(&s->status_class[status / 100], 1);
        int ci = stats_code_index(status);
        if (ci >= 0)
            bump(&s->status_code[ci], 1);
        if (!h2o_timeval_is_null(&req->timestamps.response_start_at))
            head = header_bytes(req);
    }
    bump(&s->body_size, body);
    bump(&s->header_size, head);
    bump(&s->bandwidth, body + head);
    if (kind >= 0) {
        bump(&s->lat_count[kind][stats_lat_bucket((uint64_t)total)], 1);
        bump(&s->lat_sum_us[kind], (uint64_t)total);
        if (kind == STATS_LAT_MISS)
            bump(&s->miss_hist[stats_miss_hist_bucket((uint64_t)total)], 1);
        if (kind == STATS_LAT_PASS && (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
                                       h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))))
            bump(&s->uncacheable, 1);
    }
    if (req->env.size != 0 && h2o_req_getenv(req, ENV_SYNTH, sizeof(ENV_SYNTH) - 1, 0) != NULL) {
        bump(&s->synth, 1);
        if (status >= 500 && status <= 599)
            bump(&s->synth_5xx, 1);
    }

    if (accesslog_enabled()) {
        int revalidated = xc != NULL && xc->len >= 11 && h2o_lcstris(xc->base, 11, H2O_STRLIT("revalidated"));
        accesslog_entry_t e = {.cache_status = revalidated              ? "REVALIDATED"
                                               : kind == STATS_LAT_HIT  ? "HIT"
                                               : kind == STATS_LAT_MISS ? "MISS"
                                               : kind == STATS_LAT_PASS ? "PASS"
                                                                        : NULL,
                               .ttfb_us = ttfb,
                               .total_us = total};
        const h2o_iovec_t *b = req->env.size != 0 ? h2o_req_getenv(req, ENV_BACKEND, sizeof(ENV_BACKEND) - 1, 0) : NULL;
        if (b != NULL && b->len != 0) {
            e.backend = b->base;
            e.backend_len = b->len;
        }
        accesslog_write_request(w->index, req, &e);
    }
}

void stats_note_synthetic(h2o_req_t *req)
{
    h2o_iovec_t *v = h2o_req_getenv(req, ENV_SYNTH, sizeof(ENV_SYNTH) - 1, 1);
    *v = h2o_iovec_init(H2O_STRLIT("1"));
}

void stats_note_backend(h2o_req_t *req, const char *name)
{
    if (name == NULL)
        return;
    h2o_iovec_t *v = h2o_req_getenv(req, ENV_BACKEND, sizeof(ENV_BACKEND) - 1, 1);
    *v = h2o_strdup(&req->pool, name, SIZE_MAX);
}

void stats_note_origin_bytes(unsigned worker_index, size_t bytes)
{
    if (g.workers == NULL)
        return;
    assert(worker_index < g.nthreads);
    bump(&g.workers[worker_index].origin_bytes, bytes);
}

void stats_note_purge(stats_purge_kind_t kind, uint64_t latency_us)
{
    if ((unsigned)kind >= STATS_PURGE_KINDS)
        return;
    atomic_fetch_add_explicit(&g.purges[kind], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g.purge_sum_us[kind], latency_us, memory_order_relaxed);
    uint64_t cur = atomic_load_explicit(&g.purge_max_us[kind], memory_order_relaxed);
    while (latency_us > cur && !atomic_compare_exchange_weak_explicit(&g.purge_max_us[kind], &cur, latency_us,
                                                                      memory_order_relaxed, memory_order_relaxed))
        ;
}

void stats_note_purge_req(stats_purge_kind_t kind, h2o_req_t *req, unsigned count)
{
    int64_t us = request_start_us(req);
    if (us >= 0) {
        us = now_mono_us() - us;
    } else {
        struct timeval now;
        gettimeofday(&now, NULL);
        us = elapsed_us(&req->timestamps.request_begin_at, &now);
    }
    for (unsigned i = 0; i < count; i++)
        stats_note_purge(kind, us < 0 ? 0 : (uint64_t)us);
}

/* ---------------------------------------------------------------- readers */

void stats_snapshot(stats_totals_t *out)
{
    memset(out, 0, sizeof(*out));
    for (int k = 0; k < STATS_PURGE_KINDS; k++) {
        out->purges[k] = rd(&g.purges[k]);
        out->purge_latency_sum_us[k] = rd(&g.purge_sum_us[k]);
        out->purge_latency_max_us[k] = rd(&g.purge_max_us[k]);
    }
    if (!ready())
        return;
    for (unsigned i = 0; i < g.nthreads; i++) {
        worker_t *w = atomic_load_explicit(&g.seen[i], memory_order_acquire);
        if (w != NULL) {
            worker_counters_t *c = &w->counters;
            out->requests += rd(&c->requests);
            out->hits += rd(&c->hits);
            out->miss += rd(&c->misses);
            out->pass += rd(&c->passes);
            out->errors += rd(&c->errors);
            out->purge_requests += rd(&c->purges);
            out->origin_fetches += rd(&c->origin_fetches);
            out->stale_served += rd(&c->stale_served);
            out->collapsed += rd(&c->collapsed);
            out->revalidations += rd(&c->revalidations);
            out->revalidated_304 += rd(&c->revalidated_304);
            out->stalled_clients_closed += rd(&c->stalled_clients_closed);
            out->body_budget_closed += rd(&c->body_budget_closed);
        }
        stats_worker_t *s = &g.workers[i];
        out->responses += rd(&s->responses);
        for (int k = 1; k <= 5; k++)
            out->status_class[k] += rd(&s->status_class[k]);
        for (int k = 0; k < STATS_NUM_CODES; k++)
            out->status_code[k] += rd(&s->status_code[k]);
        out->bandwidth += rd(&s->bandwidth);
        out->body_size += rd(&s->body_size);
        out->header_size += rd(&s->header_size);
        out->synth += rd(&s->synth);
        out->synth_5xx += rd(&s->synth_5xx);
        out->uncacheable += rd(&s->uncacheable);
        out->origin_bytes += rd(&s->origin_bytes);
        for (int k = 0; k < STATS_LAT_KINDS; k++) {
            for (int b = 0; b < STATS_LAT_BUCKETS; b++)
                out->lat_count[k][b] += rd(&s->lat_count[k][b]);
            out->lat_sum_us[k] += rd(&s->lat_sum_us[k]);
        }
        for (int b = 0; b < STATS_MISS_HIST_BUCKETS; b++)
            out->miss_hist[b] += rd(&s->miss_hist[b]);
    }
}

int64_t stats_start_time(void)
{
    return ready() ? g.start_time : 0;
}

uint32_t stats_minute_seconds(void)
{
    return ready() && g.minute_seconds != 0 ? g.minute_seconds : 60;
}

uint32_t stats_sample_interval(void)
{
    return ready() && g.sample_interval != 0 ? g.sample_interval : 300;
}

uint32_t stats_degraded_share_ppm(void)
{
    return ready() ? g.degraded_ppm : 50000;
}

mem_tier_t *stats_mem(void)
{
    return ready() ? g.mem : NULL;
}

store_t *stats_store(void)
{
    return ready() ? g.store : NULL;
}

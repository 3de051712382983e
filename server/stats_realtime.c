/*
 * server/stats_realtime.c — the real-time figures: a thread that, just after each second
 * boundary of the wall clock, sums the per-thread counters (stats_snapshot), subtracts the
 * previous sum and keeps the difference as that second's sample in a ring of the last
 * STATS_RT_KEEP + 1 seconds; and Fastly's miss_histogram buckets.
 *
 * What it owns: the ring and the previous snapshot (under `lock`), the thread. The workers
 * never touch any of it: their counters are the single-writer ones of stats.c, so the hit
 * path pays nothing for real-time figures.
 *
 * Invariant: samples in the ring have strictly increasing `recorded` seconds. Counts are
 * never lost: a tick that cannot close a new second (the clock stepped back, two ticks in
 * one second) leaves its increase to the next sample.
 *
 * Threads: the real-time thread runs stats_rt_tick; any thread reads (stats_rt_read,
 * stats_rt_latest); stats_rt_start/stop run on the main thread.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "server/purge.h"
#include "server/stats_realtime.h"

#define RING (STATS_RT_KEEP + 1)

static struct {
    pthread_mutex_t lock; /* guards everything below but the thread's own fields */
    stats_rt_sample_t ring[RING];
    size_t head, count; /* ring[head] is the oldest of `count` samples */
    int have_prev;
    int64_t prev_sec;
    stats_totals_t prev;
    stats_rt_backend_t prev_backends[STATS_RT_BACKENDS];
    size_t prev_nbackends;

    pthread_t thread;
    int thread_started;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    int stopping;

    pthread_once_t node_once;
    char node[64];
} rt = {.lock = PTHREAD_MUTEX_INITIALIZER,
        .stop_lock = PTHREAD_MUTEX_INITIALIZER,
        .stop_cond = PTHREAD_COND_INITIALIZER,
        .node_once = PTHREAD_ONCE_INIT};

/* ---------------------------------------------------------------- Fastly's miss_histogram */

/* the spans of Fastly's buckets: (previous end, end], `step` ms wide */
static const struct {
    uint32_t end, step;
} spans[] = {{10, 1}, {250, 10}, {1000, 50}, {3000, 100}, {10000, 500}, {20000, 1000}, {60000, 5000}};

unsigned stats_miss_hist_bucket(uint64_t us)
{
    uint64_t ms = us / 1000 + (us % 1000 != 0);
    uint32_t start = 0;
    unsigned base = 0;
    if (ms == 0)
        ms = 1;
    for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
        if (ms <= spans[i].end)
            return base + (unsigned)((ms - start + spans[i].step - 1) / spans[i].step) - 1;
        base += (spans[i].end - start) / spans[i].step;
        start = spans[i].end;
    }
    return STATS_MISS_HIST_BUCKETS - 1;
}

uint32_t stats_miss_hist_bound_ms(unsigned bucket)
{
    uint32_t start = 0;
    for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
        unsigned n = (spans[i].end - start) / spans[i].step;
        if (bucket < n)
            return start + (bucket + 1) * spans[i].step;
        bucket -= n;
        start = spans[i].end;
    }
    return 60000;
}

/* ---------------------------------------------------------------- the ring */

static void node_init(void)
{
    purge_node_name(rt.node, sizeof(rt.node));
}

const char *stats_rt_node_name(void)
{
    pthread_once(&rt.node_once, node_init);
    return rt.node;
}

void stats_rt_set_node_name(const char *name)
{
    pthread_once(&rt.node_once, node_init);
    if (name != NULL && name[0] != '\0')
        snprintf(rt.node, sizeof(rt.node), "%s", name);
}

/* the increase of every counter from p to n into d (a counter that went down, which only a
 * reset could do, counts as 0) */
static void totals_delta(stats_totals_t *d, const stats_totals_t *n, const stats_totals_t *p)
{
    /* stats_totals_t is all uint64_t: subtract it as an array */
    const uint64_t *nv = (const uint64_t *)n, *pv = (const uint64_t *)p;
    uint64_t *dv = (uint64_t *)d;
    _Static_assert(sizeof(stats_totals_t) % sizeof(uint64_t) == 0, "stats_totals_t holds only uint64_t");
    for (size_t i = 0; i < sizeof(stats_totals_t) / sizeof(uint64_t); i++)
        dv[i] = nv[i] >= pv[i] ? nv[i] - pv[i] : 0;
    memcpy(d->purge_latency_max_us, n->purge_latency_max_us, sizeof(d->purge_latency_max_us));
}

static const stats_rt_backend_t *prev_backend(const char *name)
{
    for (size_t i = 0; i < rt.prev_nbackends; i++)
        if (strcmp(rt.prev_backends[i].name, name) == 0)
            return &rt.prev_backends[i];
    return NULL;
}

void stats_rt_tick(int64_t now)
{
    static stats_totals_t snap; /* one tick at a time (under rt.lock): off the thread's stack */
    backend_stat_t bs[STATS_RT_BACKENDS];
    mem_stats_t ms = {0};
    store_stats_t ss = {0};
    size_t nb = backend_stats_snapshot(bs, STATS_RT_BACKENDS);
    if (nb > STATS_RT_BACKENDS)
        nb = STATS_RT_BACKENDS;
    if (stats_mem() != NULL)
        mem_get_stats(stats_mem(), &ms);
    if (stats_store() != NULL)
        store_get_stats(stats_store(), &ss);

    pthread_mutex_lock(&rt.lock);
    stats_snapshot(&snap);
    int64_t sec = now - 1;
    if (!rt.have_prev || sec <= rt.prev_sec) {
        if (!rt.have_prev) {
            rt.prev = snap;
            rt.prev_sec = sec;
            rt.have_prev = 1;
        }
        pthread_mutex_unlock(&rt.lock);
        return;
    }
    if (rt.count == RING) {
        rt.head = (rt.head + 1) % RING;
        rt.count--;
    }
    stats_rt_sample_t *s = &rt.ring[(rt.head + rt.count) % RING];
    rt.count++;
    memset(s, 0, sizeof(*s));
    s->recorded = sec;
    totals_delta(&s->d, &snap, &rt.prev);
    s->mem_objects = ms.objects;
    s->mem_bytes = ms.bytes;
    s->disk_objects = ss.objects;
    s->disk_bytes = ss.bytes_used;
    s->nbackends = nb;
    for (size_t i = 0; i < nb; i++) {
        stats_rt_backend_t *b = &s->backends[i];
        _Static_assert(sizeof(b->name) == sizeof(bs[i].name), "one name size");
        memcpy(b->name, bs[i].name, sizeof(b->name));
        b->healthy = bs[i].healthy != 0;
        const stats_rt_backend_t *p = prev_backend(b->name);
        /* prev_backends hold running totals; samples hold the second's increase */
        uint64_t preq = p != NULL ? p->requests : 0, perr = p != NULL ? p->errors : 0;
        b->requests = bs[i].requests >= preq ? bs[i].requests - preq : 0;
        b->errors = bs[i].errors >= perr ? bs[i].errors - perr : 0;
    }
    for (size_t i = 0; i < nb; i++) {
        memcpy(rt.prev_backends[i].name, bs[i].name, sizeof(rt.prev_backends[i].name));
        rt.prev_backends[i].requests = bs[i].requests;
        rt.prev_backends[i].errors = bs[i].errors;
    }
    rt.prev_nbackends = nb;
    rt.prev = snap;
    rt.prev_sec = sec;
    pthread_mutex_unlock(&rt.lock);
}

int64_t stats_rt_latest(void)
{
    pthread_mutex_lock(&rt.lock);
    int64_t t = rt.count != 0 ? rt.ring[(rt.head + rt.count - 1) % RING].recorded : -1;
    pthread_mutex_unlock(&rt.lock);
    return t;
}

size_t stats_rt_read(int64_t after, stats_rt_sample_t *out, size_t max)
{
    pthread_mutex_lock(&rt.lock);
    size_t first = rt.count; /* index (from the oldest) of the first sample newer than `after` */
    for (size_t i = 0; i < rt.count; i++)
        if (rt.ring[(rt.head + i) % RING].recorded > after) {
            first = i;
            break;
        }
    size_t n = rt.count - first;
    if (n > max) {
        first += n - max;
        n = max;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = rt.ring[(rt.head + first + i) % RING];
    pthread_mutex_unlock(&rt.lock);
    return n;
}

/* ---------------------------------------------------------------- the thread */

static void *rt_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "ec-realtime");
    pthread_mutex_lock(&rt.stop_lock);
    while (!rt.stopping) {
        struct timespec now, until;
        clock_gettime(CLOCK_REALTIME, &now);
        /* a few milliseconds past the boundary, so that time(NULL) in the tick is the new second */
        until.tv_sec = now.tv_sec + 1;
        until.tv_nsec = 5 * 1000 * 1000;
        int rc = 0;
        while (!rt.stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&rt.stop_cond, &rt.stop_lock, &until);
        if (rt.stopping)
            break;
        pthread_mutex_unlock(&rt.stop_lock);
        stats_rt_tick((int64_t)time(NULL));
        pthread_mutex_lock(&rt.stop_lock);
    }
    pthread_mutex_unlock(&rt.stop_lock);
    return NULL;
}

int stats_rt_start(char *err, size_t errlen)
{
    assert(!rt.thread_started);
    pthread_mutex_lock(&rt.lock);
    rt.head = rt.count = 0;
    rt.have_prev = 0;
    rt.prev_nbackends = 0;
    pthread_mutex_unlock(&rt.lock);
    stats_rt_tick((int64_t)time(NULL)); /* the baseline */
    rt.stopping = 0;
    int rc = pthread_create(&rt.thread, NULL, rt_main, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "stats: cannot start the real-time thread: %s", strerror(rc));
        return -1;
    }
    rt.thread_started = 1;
    return 0;
}

void stats_rt_stop(void)
{
    if (!rt.thread_started)
        return;
    pthread_mutex_lock(&rt.stop_lock);
    rt.stopping = 1;
    pthread_cond_signal(&rt.stop_cond);
    pthread_mutex_unlock(&rt.stop_lock);
    pthread_join(rt.thread, NULL);
    rt.thread_started = 0;
}

/*
 * server/stats_history.c — the statistics history kept in the store's `stats` database: the
 * per-minute samples and the SLA bandwidth samples, their records, the sampler thread that
 * writes them, retention, and the reads behind GET /stats?from=&to= and /stats/sla.
 *
 * What it owns: the sampler thread and its state (the totals at the last closed minute and
 * at the last closed bandwidth interval, under tick_lock). The store is borrowed (given by
 * stats_init through stats_history_init). Keys are text: "m" + 16 hex digits of the
 * period's start in unix seconds for minutes, "b" + 16 hex digits for bandwidth samples, so
 * that LMDB's key order is time order. Values are small binary records: magic, version,
 * field count, start, duration or interval, then little-endian u64 fields.
 *
 * Invariants. A closed period is added to any record already there for the same start, so
 * that the final partial write of stats_stop and a later run's write of the same period
 * add up. Records in the store are validated on every read (the store is untrusted input):
 * a record with a wrong magic, version or length is skipped, never asserted on. Every change
 * of the history goes through stats_tick (or stats_history_init), which bumps the history's
 * generation after it: a summary computed at one generation holds until it moves. A read
 * walks from the window's first key, never from the first record.
 *
 * Threads: the sampler thread runs stats_tick once per closed period; readers (the admin
 * thread) call stats_history_load; stats_history_init, stats_sampler_start and
 * stats_history_stop run on the main thread (from stats_init, stats_start, stats_stop).
 * stats_tick's state is guarded by tick_lock (the sampler and, in unit tests, the caller).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/alloc.h"
#include "server/stats.h"
#include "server/stats_int.h"
#include "storage/le.h"

#define STATS_SAMPLE_MAGIC 0x4543534du /* "ECSM" */
#define STATS_BW_MAGIC 0x45435342u     /* "ECSB" */
#define STATS_RECORD_VERSION 1
#define STATS_RECORD_HEAD 24 /* magic u32, version u16, nfields u16, start i64, duration/interval u64 */
#define STATS_RETENTION_BATCH 256
#define STATS_KEY_LEN 18 /* prefix, 16 hex digits, NUL */

/* the history's state: the sampler's `stopping` under `lock`, the periods under `tick_lock` */
static struct {
    store_t *store; /* borrowed; NULL until stats_init */
    uint32_t minute_seconds, sample_interval, retention_days;

    /* the sampler */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock; /* guards `stopping` for the condition variable */
    pthread_cond_t cond;
    int stopping;
    pthread_mutex_t tick_lock; /* guards everything below */
    stats_totals_t min_prev;
    int64_t min_open, min_covered_from;
    uint64_t bw_prev;
    int64_t bw_open;
    int write_error_reported;
} hist = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .tick_lock = PTHREAD_MUTEX_INITIALIZER};

#define SF(name)                              \
    {                                         \
#name, offsetof(stats_sample_t, name) \
    }
/* fields after pass_time_us were appended later: older records have fewer, which decode as 0 */
const stats_sample_field_t stats_sample_fields[] = {
    SF(requests),     SF(hits),        SF(miss),         SF(pass),         SF(errors),         SF(synth),
    SF(synth_5xx),    SF(uncacheable), SF(bandwidth),    SF(body_size),    SF(header_size),    SF(status_1xx),
    SF(status_2xx),   SF(status_3xx),  SF(status_4xx),   SF(status_5xx),   SF(origin_fetches), SF(origin_bytes),
    SF(stale_served), SF(purges),      SF(hits_time_us), SF(miss_time_us), SF(pass_time_us),   SF(revalidations),
    SF(status_200),   SF(status_204),  SF(status_206),   SF(status_301),   SF(status_302),     SF(status_304),
    SF(status_400),   SF(status_401),  SF(status_403),   SF(status_404),   SF(status_416),     SF(status_429),
    SF(status_500),   SF(status_501),  SF(status_502),   SF(status_503),   SF(status_504),     SF(status_505),
};
#undef SF
const size_t stats_num_sample_fields = sizeof(stats_sample_fields) / sizeof(stats_sample_fields[0]);

static uint64_t *sample_field(stats_sample_t *s, size_t i)
{
    return (uint64_t *)((char *)s + stats_sample_fields[i].offset);
}

/* bumped after every change of the history (a write, retention, a new store): readers that
 * summarise it (the SLA of GET /stats) keep their result until it moves */
static atomic_uint_fast64_t history_generation;
static atomic_uint_fast64_t history_loads;

uint64_t stats_history_generation(void)
{
    return atomic_load_explicit(&history_generation, memory_order_acquire);
}

uint64_t stats_history_loads(void)
{
    return atomic_load_explicit(&history_loads, memory_order_relaxed);
}

/* ---------------------------------------------------------------- records */

void *stats_sample_encode(const stats_sample_t *s, size_t *len)
{
    size_t n = stats_num_sample_fields;
    uint8_t *rec = alloc_xmalloc(STATS_RECORD_HEAD + 8 * n, "stats");
    le_put_u32(rec, STATS_SAMPLE_MAGIC);
    le_put_u16(rec + 4, STATS_RECORD_VERSION);
    le_put_u16(rec + 6, (uint16_t)n);
    le_put_u64(rec + 8, (uint64_t)s->start);
    le_put_u64(rec + 16, s->duration);
    for (size_t i = 0; i < n; i++)
        le_put_u64(rec + STATS_RECORD_HEAD + 8 * i, *sample_field((stats_sample_t *)s, i));
    *len = STATS_RECORD_HEAD + 8 * n;
    return rec;
}

int stats_sample_decode(const void *rec_, size_t len, stats_sample_t *out)
{
    const uint8_t *rec = rec_;
    memset(out, 0, sizeof(*out));
    if (rec == NULL || len < STATS_RECORD_HEAD || le_get_u32(rec) != STATS_SAMPLE_MAGIC ||
        le_get_u16(rec + 4) != STATS_RECORD_VERSION)
        return -1;
    size_t n = le_get_u16(rec + 6);
    if (len != STATS_RECORD_HEAD + 8 * n)
        return -1;
    out->start = (int64_t)le_get_u64(rec + 8);
    out->duration = le_get_u64(rec + 16);
    for (size_t i = 0; i < n && i < stats_num_sample_fields; i++)
        *sample_field(out, i) = le_get_u64(rec + STATS_RECORD_HEAD + 8 * i);
    return 0;
}

void stats_sample_add(stats_sample_t *a, const stats_sample_t *b)
{
    a->duration += b->duration;
    for (size_t i = 0; i < stats_num_sample_fields; i++)
        *sample_field(a, i) += *sample_field((stats_sample_t *)b, i);
}

void *stats_bw_encode(const stats_bw_sample_t *s, size_t *len)
{
    uint8_t *rec = alloc_xmalloc(STATS_RECORD_HEAD + 8, "stats");
    le_put_u32(rec, STATS_BW_MAGIC);
    le_put_u16(rec + 4, STATS_RECORD_VERSION);
    le_put_u16(rec + 6, 1);
    le_put_u64(rec + 8, (uint64_t)s->start);
    le_put_u64(rec + 16, s->interval);
    le_put_u64(rec + 24, s->bytes);
    *len = STATS_RECORD_HEAD + 8;
    return rec;
}

int stats_bw_decode(const void *rec_, size_t len, stats_bw_sample_t *out)
{
    const uint8_t *rec = rec_;
    memset(out, 0, sizeof(*out));
    if (rec == NULL || len < STATS_RECORD_HEAD + 8 || le_get_u32(rec) != STATS_BW_MAGIC ||
        le_get_u16(rec + 4) != STATS_RECORD_VERSION)
        return -1;
    size_t n = le_get_u16(rec + 6);
    if (n < 1 || len != STATS_RECORD_HEAD + 8 * n)
        return -1;
    out->start = (int64_t)le_get_u64(rec + 8);
    out->interval = le_get_u64(rec + 16);
    out->bytes = le_get_u64(rec + 24);
    if (out->interval == 0)
        return -1;
    return 0;
}

/* "m" or "b" + 16 lower-case hex digits of the start */
static void record_key(char key[STATS_KEY_LEN], char prefix, int64_t start)
{
    snprintf(key, STATS_KEY_LEN, "%c%016" PRIx64, prefix, (uint64_t)start);
}

/* parse a key written by record_key; 0 or -1 */
static int parse_key(const char *key, size_t len, char *prefix, int64_t *start)
{
    uint64_t v = 0;
    if (len != STATS_KEY_LEN - 1)
        return -1;
    for (size_t i = 1; i < len; i++) {
        char c = key[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return -1;
        v = (v << 4) | d;
    }
    *prefix = key[0];
    *start = (int64_t)v;
    return 0;
}

/* ---------------------------------------------------------------- life cycle */

void stats_history_init(store_t *store, int64_t start_time, uint32_t minute_seconds, uint32_t sample_interval,
                        uint32_t retention_days)
{
    hist.store = store;
    hist.minute_seconds = minute_seconds;
    hist.sample_interval = sample_interval;
    hist.retention_days = retention_days;
    pthread_mutex_lock(&hist.tick_lock);
    memset(&hist.min_prev, 0, sizeof(hist.min_prev));
    hist.min_open = start_time - start_time % hist.minute_seconds;
    hist.min_covered_from = start_time;
    hist.bw_prev = 0;
    hist.bw_open = start_time - start_time % hist.sample_interval;
    hist.write_error_reported = 0;
    atomic_fetch_add_explicit(&history_generation, 1, memory_order_release);
    pthread_mutex_unlock(&hist.tick_lock);
    hist.stopping = 0;
}

/* the sampler: sleep until the next period boundary (wall clock), close what ended */
static void *sampler_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "ec-stats"); /* shown by top -H, ps -L, perf */
    pthread_mutex_lock(&hist.lock);
    while (!hist.stopping) {
        int64_t now = (int64_t)time(NULL);
        int64_t next_min = now - now % hist.minute_seconds + hist.minute_seconds;
        int64_t next_bw = now - now % hist.sample_interval + hist.sample_interval;
        struct timespec until = {.tv_sec = (time_t)(next_min < next_bw ? next_min : next_bw), .tv_nsec = 0};
        int rc = 0;
        while (!hist.stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&hist.cond, &hist.lock, &until);
        if (hist.stopping)
            break;
        pthread_mutex_unlock(&hist.lock);
        stats_tick((int64_t)time(NULL), 0);
        pthread_mutex_lock(&hist.lock);
    }
    pthread_mutex_unlock(&hist.lock);
    return NULL;
}

int stats_sampler_start(char *err, size_t errlen)
{
    assert(!hist.thread_started);
    int rc = pthread_create(&hist.thread, NULL, sampler_main, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "stats: cannot start the sampler thread: %s", strerror(rc));
        return -1;
    }
    hist.thread_started = 1;
    return 0;
}

void stats_history_stop(void)
{
    if (hist.thread_started) {
        pthread_mutex_lock(&hist.lock);
        hist.stopping = 1;
        pthread_cond_signal(&hist.cond);
        pthread_mutex_unlock(&hist.lock);
        pthread_join(hist.thread, NULL);
        hist.thread_started = 0;
    }
    if (hist.store != NULL)
        stats_tick((int64_t)time(NULL), 1);
}

/* ---------------------------------------------------------------- history: reading */

typedef struct load_ctx {
    char prefix; /* the kind of record this walk reads: 'm' or 'b' */
    int64_t from, to;
    stats_sample_t *mins;
    size_t nmins, capmins;
    stats_bw_sample_t *bws;
    size_t nbws, capbws;
    int want_mins, want_bws;
} load_ctx_t;

static int load_one(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    load_ctx_t *c = arg;
    char prefix;
    int64_t start;
    if (key_len == 0 || key[0] != c->prefix)
        return 1; /* the walk began at this kind's first wanted key: its keys are all behind us */
    if (parse_key(key, key_len, &prefix, &start) != 0)
        return 0; /* not ours */
    if (start >= c->to)
        return 1; /* keys are in time order: nothing later is wanted */
    if (start < c->from)
        return 0;
    if (prefix == 'm' && c->want_mins) {
        stats_sample_t s;
        if (stats_sample_decode(val, val_len, &s) != 0 || s.start != start)
            return 0;
        if (c->nmins == c->capmins) {
            c->capmins = c->capmins != 0 ? 2 * c->capmins : 64;
            c->mins = alloc_xrealloc(c->mins, c->capmins * sizeof(*c->mins), "stats");
        }
        c->mins[c->nmins++] = s;
    } else if (prefix == 'b' && c->want_bws) {
        stats_bw_sample_t b;
        if (stats_bw_decode(val, val_len, &b) != 0 || b.start != start)
            return 0;
        if (c->nbws == c->capbws) {
            c->capbws = c->capbws != 0 ? 2 * c->capbws : 64;
            c->bws = alloc_xrealloc(c->bws, c->capbws * sizeof(*c->bws), "stats");
        }
        c->bws[c->nbws++] = b;
    }
    return 0;
}

int stats_history_load(int64_t from, int64_t to, stats_sample_t **mins, size_t *nmins, stats_bw_sample_t **bws, size_t *nbws)
{
    /* keys hold the start as an unsigned number: a window reaching before 1970 starts there */
    load_ctx_t c = {.from = from > 0 ? from : 0, .to = to, .want_mins = mins != NULL, .want_bws = bws != NULL};
    char key[STATS_KEY_LEN];
    if (mins != NULL)
        *mins = NULL, *nmins = 0;
    if (bws != NULL)
        *bws = NULL, *nbws = 0;
    store_t *store = stats_store(); /* NULL before stats_init and after stats_stop */
    if (store == NULL)
        return STORE_EIO;
    atomic_fetch_add_explicit(&history_loads, 1, memory_order_relaxed);
    /* one walk per kind, each from the window's first key (a month of minutes is ~44,000
     * records: a window of 30 minutes must not read them all) */
    int ret = 0;
    if (c.want_bws && c.from < c.to) {
        c.prefix = 'b';
        record_key(key, 'b', c.from);
        ret = store_kv_foreach_from(store, "stats", key, load_one, &c);
    }
    if (ret == 0 && c.want_mins && c.from < c.to) {
        c.prefix = 'm';
        record_key(key, 'm', c.from);
        ret = store_kv_foreach_from(store, "stats", key, load_one, &c);
    }
    if (ret != 0) {
        free(c.mins);
        free(c.bws);
        return ret;
    }
    if (mins != NULL)
        *mins = c.mins, *nmins = c.nmins;
    if (bws != NULL)
        *bws = c.bws, *nbws = c.nbws;
    return 0;
}

/* ---------------------------------------------------------------- history: writing */

static void report_write_error(int ret)
{
    if (!hist.write_error_reported) {
        fprintf(stderr, "edgecache: stats: could not write the history (store error %d); will keep trying\n", ret);
        hist.write_error_reported = 1;
    }
}

/* write a minute sample, adding to a record already there for the same start */
static void write_minute(const stats_sample_t *s)
{
    char key[STATS_KEY_LEN], *old = NULL;
    size_t old_len = 0, len;
    stats_sample_t merged = *s;
    record_key(key, 'm', s->start);
    if (store_kv_get(hist.store, "stats", key, &old, &old_len) == 0) {
        stats_sample_t prev;
        if (stats_sample_decode(old, old_len, &prev) == 0 && prev.start == s->start)
            stats_sample_add(&merged, &prev);
        free(old);
    }
    void *rec = stats_sample_encode(&merged, &len);
    int ret = store_kv_put_sync(hist.store, "stats", key, rec, len);
    free(rec);
    if (ret != 0)
        report_write_error(ret);
}

static void write_bw(const stats_bw_sample_t *b)
{
    char key[STATS_KEY_LEN], *old = NULL;
    size_t old_len = 0, len;
    stats_bw_sample_t merged = *b;
    record_key(key, 'b', b->start);
    if (store_kv_get(hist.store, "stats", key, &old, &old_len) == 0) {
        stats_bw_sample_t prev;
        if (stats_bw_decode(old, old_len, &prev) == 0 && prev.start == b->start)
            merged.bytes += prev.bytes;
        free(old);
    }
    void *rec = stats_bw_encode(&merged, &len);
    int ret = store_kv_put_sync(hist.store, "stats", key, rec, len);
    free(rec);
    if (ret != 0)
        report_write_error(ret);
}

static void sample_from_delta(stats_sample_t *s, const stats_totals_t *now, const stats_totals_t *prev)
{
#define D(field) (now->field - prev->field)
    s->requests = D(requests);
    s->hits = D(hits);
    s->miss = D(miss);
    s->pass = D(pass);
    s->errors = D(errors);
    s->synth = D(synth);
    s->synth_5xx = D(synth_5xx);
    s->uncacheable = D(uncacheable);
    s->bandwidth = D(bandwidth);
    s->body_size = D(body_size);
    s->header_size = D(header_size);
    s->status_1xx = D(status_class[1]);
    s->status_2xx = D(status_class[2]);
    s->status_3xx = D(status_class[3]);
    s->status_4xx = D(status_class[4]);
    s->status_5xx = D(status_class[5]);
    s->origin_fetches = D(origin_fetches);
    s->origin_bytes = D(origin_bytes);
    s->stale_served = D(stale_served);
    s->purges = 0;
    for (int k = 0; k < STATS_PURGE_KINDS; k++)
        s->purges += D(purges[k]);
    s->hits_time_us = D(lat_sum_us[STATS_LAT_HIT]);
    s->miss_time_us = D(lat_sum_us[STATS_LAT_MISS]);
    s->pass_time_us = D(lat_sum_us[STATS_LAT_PASS]);
    s->revalidations = D(revalidations);
    /* the per-code counters Fastly's historical stats name, by their index in stats_codes */
#define C(code) D(status_code[stats_code_index(code)])
    s->status_200 = C(200), s->status_204 = C(204), s->status_206 = C(206), s->status_301 = C(301);
    s->status_302 = C(302), s->status_304 = C(304), s->status_400 = C(400), s->status_401 = C(401);
    s->status_403 = C(403), s->status_404 = C(404), s->status_416 = C(416), s->status_429 = C(429);
    s->status_500 = C(500), s->status_501 = C(501), s->status_502 = C(502), s->status_503 = C(503);
    s->status_504 = C(504), s->status_505 = C(505);
#undef C
#undef D
}

typedef struct retention_ctx {
    int64_t cutoff;
    char keys[STATS_RETENTION_BATCH][STATS_KEY_LEN];
    size_t n;
} retention_ctx_t;

static int collect_old(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    retention_ctx_t *c = arg;
    char prefix;
    int64_t start;
    (void)val, (void)val_len;
    if (parse_key(key, key_len, &prefix, &start) != 0 || (prefix != 'm' && prefix != 'b'))
        return 0;
    if (start >= c->cutoff)
        return prefix == 'm'; /* the rest of 'm' is newer; 'b' keys are followed by the 'm' ones */
    memcpy(c->keys[c->n], key, key_len);
    c->keys[c->n][key_len] = '\0';
    return ++c->n == STATS_RETENTION_BATCH;
}

static void apply_retention(int64_t now)
{
    retention_ctx_t *c = alloc_xmalloc(sizeof(*c), "stats");
    c->cutoff = now - (int64_t)hist.retention_days * 86400;
    c->n = 0;
    if (store_kv_foreach(hist.store, "stats", collect_old, c) == 0)
        for (size_t i = 0; i < c->n; i++)
            (void)store_kv_put_sync(hist.store, "stats", c->keys[i], NULL, 0);
    free(c);
}

void stats_tick(int64_t now, int final)
{
    if (hist.store == NULL)
        return;
    pthread_mutex_lock(&hist.tick_lock);
    int64_t ms = hist.minute_seconds, bi = hist.sample_interval;
    int64_t cur_min = now - now % ms, cur_bw = now - now % bi;
    int closed_minute = 0;

    if (cur_min > hist.min_open || final) {
        stats_totals_t snap;
        stats_sample_t s = {0};
        stats_snapshot(&snap);
        sample_from_delta(&s, &snap, &hist.min_prev);
        s.start = hist.min_open;
        int64_t end = cur_min > hist.min_open ? hist.min_open + ms : now;
        s.duration = end > hist.min_covered_from ? (uint64_t)(end - hist.min_covered_from) : 0;
        write_minute(&s);
        hist.min_prev = snap;
        if (cur_min > hist.min_open) {
            hist.min_open = cur_min;
            hist.min_covered_from = cur_min;
        } else {
            hist.min_covered_from = now;
        }
        closed_minute = 1;
    }
    if (cur_bw > hist.bw_open || final) {
        stats_totals_t snap;
        stats_snapshot(&snap);
        stats_bw_sample_t b = {.start = hist.bw_open, .interval = (uint64_t)bi, .bytes = snap.bandwidth - hist.bw_prev};
        if (cur_bw > hist.bw_open || b.bytes != 0)
            write_bw(&b);
        hist.bw_prev = snap.bandwidth;
        if (cur_bw > hist.bw_open)
            hist.bw_open = cur_bw;
    }
    if (closed_minute && !final)
        apply_retention(now);
    /* after the writes: a reader that saw the old generation reads again and finds them */
    atomic_fetch_add_explicit(&history_generation, 1, memory_order_release);
    pthread_mutex_unlock(&hist.tick_lock);
}

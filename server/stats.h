/*
 * server/stats.h — request statistics: per-thread counters and latency histograms,
 * the per-minute history and the SLA bandwidth samples kept in the store's `stats`
 * database, and the pure computations behind /stats, /stats/sla and /metrics.
 *
 * The hit path pays one call per request, on its own thread, with no lock and no shared
 * atomic read-modify-write: each worker thread writes only its own stats_worker_t (plain
 * relaxed load + store of its own counters); readers sum every thread's counters with
 * relaxed loads. The call is made by an h2o logger (stats_register_logger), which h2o runs
 * when a request is disposed, before the request's pool is freed, so the final status,
 * the response headers (X-Cache), the timestamps and bytes_sent are all still readable.
 * Latency is the request's own monotonic time, in microseconds, from the proxy handler's
 * entry (stats_note_request_start) to that moment, the completion of the last write.
 *
 * A sampler thread (stats_start / stats_stop) turns the running totals into one record per
 * minute and one bandwidth record per sample interval (default 5 minutes), written with
 * store_kv_put_sync, trimmed to the retention (default 31 days). Keys are text (the store's
 * key/value API takes C strings): "m" + 16 hex digits of the period's start in unix
 * seconds for minutes, "b" + 16 hex digits for bandwidth samples, so that LMDB's key order
 * is time order. Values are small binary records (magic, version, field count, then
 * little-endian u64 fields; see stats_history.c) validated on every read.
 */
#ifndef EDGECACHE_STATS_H
#define EDGECACHE_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include "server/config.h"
#include "storage/mem.h"
#include "storage/store.h"

#ifndef EDGECACHE_VERSION
#define EDGECACHE_VERSION "0.1.0"
#endif

/* ---- latency histograms ---- */

/* 47 finite upper bounds (microseconds, 1 µs .. 60 s, roughly 1-1.5-2-3-5-7 per decade) and
 * one overflow bucket. Bucket i holds latencies v with bound[i-1] < v <= bound[i]. */
#define STATS_LAT_BUCKETS 48
extern const uint64_t stats_lat_bounds_us[STATS_LAT_BUCKETS - 1];

typedef enum stats_lat_kind {
    STATS_LAT_HIT,  /* X-Cache: HIT */
    STATS_LAT_MISS, /* X-Cache: MISS (including the errors we synthesize) */
    STATS_LAT_PASS, /* X-Cache: PASS */
    STATS_LAT_KINDS
} stats_lat_kind_t;

/** The bucket index (0..STATS_LAT_BUCKETS-1) of a latency in microseconds. */
unsigned stats_lat_bucket(uint64_t us);

/**
 * The q-quantile (0 < q <= 1) of a histogram, in microseconds, as Prometheus'
 * histogram_quantile computes it: rank = q * total, the first bucket whose cumulative count
 * reaches the rank, linear interpolation inside it (from 0 for the first bucket). A rank in
 * the overflow bucket gives the last finite bound. Returns 0 for an empty histogram.
 */
double stats_hist_percentile(const uint64_t counts[STATS_LAT_BUCKETS], double q);

/* Fastly's miss_histogram: upper bounds in milliseconds, 1..10 by 1, ..250 by 10, ..1000 by 50,
 * ..3000 by 100, ..10000 by 500, ..20000 by 1000, ..60000 by 5000; a miss over 60 s counts in
 * the 60000 bucket, as Fastly's real-time API documents. */
#define STATS_MISS_HIST_BUCKETS 101

/** The miss_histogram bucket (0..STATS_MISS_HIST_BUCKETS-1) of a latency in microseconds
 * (rounded up to whole milliseconds, at least 1). */
unsigned stats_miss_hist_bucket(uint64_t us);

/** The upper bound in milliseconds of a miss_histogram bucket: Fastly's key for it. */
uint32_t stats_miss_hist_bound_ms(unsigned bucket);

/* ---- per-code counters ---- */

#define STATS_NUM_CODES 24
/** The status codes counted one by one (others only by class). */
extern const int stats_codes[STATS_NUM_CODES];
/** Index of a code in stats_codes, or -1. */
int stats_code_index(int status);

/* ---- per-thread counters ---- */

/*
 * One per worker thread, written only by that thread (relaxed load + relaxed store, no
 * read-modify-write), read by anyone with relaxed loads. 64-byte aligned so that two
 * threads' counters never share a cache line.
 */
typedef struct stats_worker {
    _Alignas(64) _Atomic uint64_t responses; /* requests that got a status (100..599) */
    _Atomic uint64_t status_class[6];        /* [1] = 1xx ... [5] = 5xx; [0] unused */
    _Atomic uint64_t status_code[STATS_NUM_CODES];
    _Atomic uint64_t bandwidth;    /* header + body bytes to clients */
    _Atomic uint64_t body_size;    /* body bytes to clients */
    _Atomic uint64_t header_size;  /* header bytes to clients (as HTTP/1.1 serializes them) */
    _Atomic uint64_t synth;        /* responses we generated ourselves (stats_note_synthetic) */
    _Atomic uint64_t synth_5xx;    /* ... with a 5xx status: errors not from the origin */
    _Atomic uint64_t uncacheable;  /* GET/HEAD answered PASS: the response could not be cached */
    _Atomic uint64_t origin_bytes; /* body bytes received from origins (stats_note_origin_bytes) */
    _Atomic uint64_t lat_count[STATS_LAT_KINDS][STATS_LAT_BUCKETS];
    _Atomic uint64_t lat_sum_us[STATS_LAT_KINDS];
    _Atomic uint64_t miss_hist[STATS_MISS_HIST_BUCKETS]; /* misses by Fastly's miss_histogram bucket */
} stats_worker_t;

/* ---- purges ---- */

typedef enum stats_purge_kind {
    STATS_PURGE_URL,  /* one URL (admin POST /purge/..., PURGE on the proxy) */
    STATS_PURGE_KEY,  /* one surrogate key (a batch counts each key) */
    STATS_PURGE_ALL,  /* purge_all */
    STATS_PURGE_SOFT, /* a soft URL or key purge (counted here, not under url/key) */
    STATS_PURGE_KINDS
} stats_purge_kind_t;

/** "url", "key", "all", "soft". */
const char *stats_purge_kind_name(stats_purge_kind_t kind);

/* ---- a snapshot of everything (summed over the threads) ---- */

typedef struct stats_totals {
    /* from the workers' counters (server/worker.h) */
    uint64_t requests, hits, miss, pass, errors, purge_requests, origin_fetches, stale_served, collapsed, revalidations,
        revalidated_304, stalled_clients_closed, body_budget_closed;
    /* from stats_worker_t */
    uint64_t responses, status_class[6], status_code[STATS_NUM_CODES];
    uint64_t bandwidth, body_size, header_size, synth, synth_5xx, uncacheable, origin_bytes;
    uint64_t lat_count[STATS_LAT_KINDS][STATS_LAT_BUCKETS];
    uint64_t lat_sum_us[STATS_LAT_KINDS];
    uint64_t miss_hist[STATS_MISS_HIST_BUCKETS];
    /* purges acknowledged, by kind */
    uint64_t purges[STATS_PURGE_KINDS], purge_latency_sum_us[STATS_PURGE_KINDS], purge_latency_max_us[STATS_PURGE_KINDS];
} stats_totals_t;

/* ---- the history ---- */

/* one sample: a minute (or a stretch of one, merged on write) of the totals' deltas */
typedef struct stats_sample {
    int64_t start;     /* unix seconds, a multiple of the minute length */
    uint64_t duration; /* seconds covered (the minute length, or less around a restart) */
    uint64_t requests, hits, miss, pass, errors, synth, synth_5xx, uncacheable, bandwidth, body_size, header_size;
    uint64_t status_1xx, status_2xx, status_3xx, status_4xx, status_5xx;
    uint64_t origin_fetches, origin_bytes, stale_served, purges;
    uint64_t hits_time_us, miss_time_us, pass_time_us;
    /* added after the first records: a record without them reads them as 0 */
    uint64_t revalidations;
    uint64_t status_200, status_204, status_206, status_301, status_302, status_304, status_400, status_401, status_403,
        status_404, status_416, status_429, status_500, status_501, status_502, status_503, status_504, status_505;
} stats_sample_t;

/* one SLA bandwidth sample: bytes sent to clients during one sample interval */
typedef struct stats_bw_sample {
    int64_t start;     /* unix seconds, a multiple of the interval */
    uint64_t interval; /* the nominal interval in seconds (the utilization's denominator) */
    uint64_t bytes;
} stats_bw_sample_t;

/* the names and offsets of the stats_sample_t counters after `duration`, in record order;
 * used to encode, merge, aggregate and print samples generically */
typedef struct stats_sample_field {
    const char *name;
    size_t offset;
} stats_sample_field_t;
extern const stats_sample_field_t stats_sample_fields[];
extern const size_t stats_num_sample_fields;

/** Encode a sample as a record (malloc'd, *len bytes). */
void *stats_sample_encode(const stats_sample_t *s, size_t *len);
/** Decode a record (untrusted bytes). Fields newer than this binary are ignored, missing ones
 * are 0. Returns 0 or -1 for a malformed record. */
int stats_sample_decode(const void *rec, size_t len, stats_sample_t *out);
/** Add b's counters and duration into a (start is kept). */
void stats_sample_add(stats_sample_t *a, const stats_sample_t *b);

void *stats_bw_encode(const stats_bw_sample_t *s, size_t *len);
int stats_bw_decode(const void *rec, size_t len, stats_bw_sample_t *out);

/* ---- the SLA computations (pure) ---- */

/**
 * The 95th percentile by the standard (burstable billing) method: order the samples, drop
 * the top 5% (floor(n / 20) samples), take the highest remaining. Sorts vals in place.
 * Returns 0 for n == 0.
 */
uint64_t stats_p95_standard(uint64_t *vals, size_t n);

/** 1 when a minute with these counts is degraded: requests > 0 and
 * synth_5xx / requests > share_ppm / 1e6 (strictly more). Integer arithmetic. */
int stats_minute_degraded(uint64_t requests, uint64_t synth_5xx, uint32_t share_ppm);

typedef enum stats_sla_band {
    STATS_SLA_100_9999,  /* 100% >= a >= 99.99% */
    STATS_SLA_9999_999,  /* 99.99% > a >= 99.9% */
    STATS_SLA_999_990,   /* 99.9% > a >= 99.0% */
    STATS_SLA_990_980,   /* 99.0% > a >= 98.0% */
    STATS_SLA_BELOW_980, /* a < 98.0% */
} stats_sla_band_t;

/** The band of availability (total - degraded) / total, computed exactly with integers;
 * total == 0 counts as 100%. */
stats_sla_band_t stats_sla_band(uint64_t total_minutes, uint64_t degraded_minutes);
/** "100%-99.99%", "99.99%-99.9%", "99.9%-99.0%", "99.0%-98.0%", "below 98.0%". */
const char *stats_sla_band_name(stats_sla_band_t band);

/* ---- life cycle (main thread) ---- */

/**
 * Allocate the per-thread counters for cfg->threads workers and remember cfg, store and mem
 * (borrowed; they must outlive stats_stop). Call before frontend_start. Returns 0 or -1 with
 * a message.
 */
int stats_init(const config_t *cfg, store_t *store, mem_tier_t *mem, char *err, size_t errlen);

/**
 * Register the h2o logger that records every request of the proxy listener (and writes the
 * access log line, see server/accesslog.h) on pathconf: call right after proxy_register on
 * the same pathconf, before the workers start. The logger also arms a 1-second timer on
 * each worker's loop that flushes that thread's access-log buffer.
 */
void stats_register_logger(h2o_pathconf_t *pathconf);

/** Start the sampler thread (history, bandwidth samples, retention). Returns 0 or -1. */
int stats_start(char *err, size_t errlen);

/**
 * Stop the sampler, write the current partial minute and bandwidth interval (merged with
 * what a later run writes for the same period), free the counters. Call after the workers
 * and the admin listener have stopped, before store_close.
 */
void stats_stop(void);

/* ---- the request path (worker threads) ---- */

/**
 * Note req's start: one monotonic clock read (vDSO) kept in req's pool. The proxy handler
 * calls it first thing; stats_record_request measures the request's latency from here to
 * the completion of its last write to the socket. Worker thread of req.
 */
void stats_note_request_start(h2o_req_t *req);

/**
 * Account one finished request: status class and code, bytes to the client, latency into
 * the hit/miss/pass histogram, uncacheable and synthetic counters, and the access-log line.
 * Called by the logger; req is borrowed and must still have its pool (headers) intact.
 */
void stats_record_request(h2o_req_t *req);

/** Mark req's response as generated by us (an error page, not the origin's): counted as
 * `synth` and, for a 5xx, towards the SLA's degraded minutes. Worker thread of req. */
void stats_note_synthetic(h2o_req_t *req);

/** Name the backend that served req, for the access log (copied into req's pool). */
void stats_note_backend(h2o_req_t *req, const char *name);

/** Count body bytes received from an origin. Call on the thread of worker `worker_index`
 * (it writes that thread's own counters). */
void stats_note_origin_bytes(unsigned worker_index, size_t bytes);

/** Count an acknowledged purge and its latency (request to acknowledgement). Any thread
 * (shared atomics: purges are not the hit path). */
void stats_note_purge(stats_purge_kind_t kind, uint64_t latency_us);

/** stats_note_purge for `count` purges acknowledged now for req: the latency is measured
 * from req's start. Thread of req. */
void stats_note_purge_req(stats_purge_kind_t kind, h2o_req_t *req, unsigned count);

/* ---- readers (any thread) ---- */

/** Sum every thread's counters (relaxed reads: each counter is exact, the set is not a
 * single instant). */
void stats_snapshot(stats_totals_t *out);

/** Process start (unix seconds) and the configured values the API reports. */
int64_t stats_start_time(void);
uint32_t stats_minute_seconds(void);
uint32_t stats_sample_interval(void);
uint32_t stats_degraded_share_ppm(void);
mem_tier_t *stats_mem(void);
store_t *stats_store(void);

/**
 * The minute samples with from <= start < to and the bandwidth samples with
 * from <= start < to, in time order. *mins and *bws are malloc'd (caller frees; may be
 * NULL when the count is 0); either output may be NULL when not wanted. Malformed records
 * are skipped. Returns 0 or STORE_EIO.
 */
int stats_history_load(int64_t from, int64_t to, stats_sample_t **mins, size_t *nmins, stats_bw_sample_t **bws, size_t *nbws);

/** A number that changes whenever the history may have changed (every stats_tick, and
 * stats_init): a summary of the history computed at one value stays true while it holds.
 * Any thread. */
uint64_t stats_history_generation(void);

/** How many times stats_history_load has read the store since the process started (the
 * cost of the stats endpoints, for tests). Any thread. */
uint64_t stats_history_loads(void);

/**
 * One sampler step at wall-clock time now (unix seconds): close every minute and
 * bandwidth interval that ended at or before now, write their records, apply retention.
 * `final` also writes the current, unfinished periods (stats_stop). Sampler thread, or a
 * unit test with no sampler running.
 */
void stats_tick(int64_t now, int final);

#endif

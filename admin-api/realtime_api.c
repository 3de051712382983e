/*
 * admin-api/realtime_api.c — Fastly's real-time analytics API on the admin listener:
 *
 *   GET /v1/channel/<sid>/ts/0            the last complete second (one record)
 *   GET /v1/channel/<sid>/ts/h            the last 120 seconds
 *   GET /v1/channel/<sid>/ts/h/limit/<N>  the last N of those
 *   GET /v1/channel/<sid>/ts/<t>          every second after t (unix seconds)
 *
 * answered as Fastly does: {"Timestamp": <newest second>, "AggregateDelay": 1, "Data":
 * [{"recorded": <second>, "aggregated": {...}, "datacenter": {"<node>": {...}}}]}, with
 * Fastly's measurement names (requests, hits, miss, pass, errors, synth, resp_header_bytes,
 * resp_body_bytes, hits_time, miss_time, pass_time in seconds, miss_histogram keyed by
 * milliseconds, status_2xx, status_200, ...) and a few of edgecache's own beside them
 * (purges, latency histograms in microseconds, objects and bytes in memory and on disk,
 * backends). Fastly's clients keep the names they know and drop the others.
 *
 * ts/<t> with nothing newer than t yet is a long poll, as Fastly's is: the answer waits on
 * the admin loop's 100 ms timer for the next second's record (at most RT_WAIT_POLLS ticks),
 * so a client that asks again at once with the Timestamp it got (the Fastly CLI does, with
 * no pause of its own) gets one answer a second instead of spinning. Nothing blocks the loop,
 * and a listener that is stopping has its waiting requests answered at the next tick.
 *
 * What it owns: a waiting request's state, in the request's pool (its timer is unlinked
 * when the pool goes). The figures are server/stats_realtime.h's. Admin threads only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "admin-api/admin_int.h"
#include "admin-api/stats_api.h"
#include "server/stats_realtime.h"

#define RT_WAIT_POLLS 25 /* x 100 ms: a long poll answers within 2.5 s */

/* Fastly's per-code measurements edgecache counts */
static const int fastly_codes[] = {200, 204, 206, 301, 302, 304, 400, 401, 403, 404, 416, 429, 500, 501, 502, 503, 504, 505};

/* ---------------------------------------------------------------- the document */

static void set_u64(json_t *o, const char *key, uint64_t v)
{
    json_object_set_new(o, key, json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v)));
}

/* a latency histogram in µs as {"<upper bound µs>": count, ..., "+Inf": count}, empty buckets left out */
static json_t *lat_hist_json(const uint64_t counts[STATS_LAT_BUCKETS])
{
    json_t *o = json_object();
    char key[32];
    for (unsigned i = 0; i < STATS_LAT_BUCKETS; i++) {
        if (counts[i] == 0)
            continue;
        if (i == STATS_LAT_BUCKETS - 1)
            snprintf(key, sizeof(key), "+Inf");
        else
            snprintf(key, sizeof(key), "%llu", (unsigned long long)stats_lat_bounds_us[i]);
        set_u64(o, key, counts[i]);
    }
    return o;
}

json_t *admin_realtime_measurements_json(const stats_rt_sample_t *s)
{
    const stats_totals_t *d = &s->d;
    json_t *o = json_object();
    char key[32];
    set_u64(o, "requests", d->requests);
    set_u64(o, "hits", d->hits);
    set_u64(o, "miss", d->miss);
    set_u64(o, "pass", d->pass);
    set_u64(o, "synth", d->synth);
    set_u64(o, "errors", d->errors);
    set_u64(o, "uncacheable", d->uncacheable);
    set_u64(o, "resp_header_bytes", d->header_size);
    set_u64(o, "header_size", d->header_size);
    set_u64(o, "resp_body_bytes", d->body_size);
    set_u64(o, "body_size", d->body_size);
    set_u64(o, "bandwidth", d->bandwidth);
    json_object_set_new(o, "hits_time", json_real((double)d->lat_sum_us[STATS_LAT_HIT] / 1e6));
    json_object_set_new(o, "miss_time", json_real((double)d->lat_sum_us[STATS_LAT_MISS] / 1e6));
    json_object_set_new(o, "pass_time", json_real((double)d->lat_sum_us[STATS_LAT_PASS] / 1e6));
    json_t *mh = json_object();
    for (unsigned i = 0; i < STATS_MISS_HIST_BUCKETS; i++) {
        if (d->miss_hist[i] == 0)
            continue;
        snprintf(key, sizeof(key), "%u", (unsigned)stats_miss_hist_bound_ms(i));
        set_u64(mh, key, d->miss_hist[i]);
    }
    json_object_set_new(o, "miss_histogram", mh);
    for (int k = 1; k <= 5; k++) {
        snprintf(key, sizeof(key), "status_%dxx", k);
        set_u64(o, key, d->status_class[k]);
    }
    for (size_t i = 0; i < sizeof(fastly_codes) / sizeof(fastly_codes[0]); i++) {
        int ci = stats_code_index(fastly_codes[i]);
        snprintf(key, sizeof(key), "status_%d", fastly_codes[i]);
        set_u64(o, key, ci >= 0 ? d->status_code[ci] : 0);
    }
    set_u64(o, "origin_fetches", d->origin_fetches);
    set_u64(o, "origin_revalidations", d->revalidations);
    set_u64(o, "origin_fetch_resp_body_bytes", d->origin_bytes);

    /* edgecache's own */
    uint64_t purges = 0, purge_us = 0;
    for (int k = 0; k < STATS_PURGE_KINDS; k++) {
        purges += d->purges[k];
        purge_us += d->purge_latency_sum_us[k];
    }
    set_u64(o, "purges", purges);
    json_object_set_new(o, "purge_time", json_real((double)purge_us / 1e6));
    set_u64(o, "stale_served", d->stale_served);
    set_u64(o, "collapsed", d->collapsed);
    json_object_set_new(o, "hits_histogram_us", lat_hist_json(d->lat_count[STATS_LAT_HIT]));
    json_object_set_new(o, "miss_histogram_us", lat_hist_json(d->lat_count[STATS_LAT_MISS]));
    json_object_set_new(o, "pass_histogram_us", lat_hist_json(d->lat_count[STATS_LAT_PASS]));
    set_u64(o, "objects_in_memory", s->mem_objects);
    set_u64(o, "bytes_in_memory", s->mem_bytes);
    set_u64(o, "objects_on_disk", s->disk_objects);
    set_u64(o, "bytes_on_disk", s->disk_bytes);
    json_t *backends = json_object();
    for (size_t i = 0; i < s->nbackends; i++) {
        json_t *b = json_object();
        json_object_set_new(b, "healthy", json_boolean(s->backends[i].healthy));
        set_u64(b, "requests", s->backends[i].requests);
        set_u64(b, "errors", s->backends[i].errors);
        json_object_set_new(backends, s->backends[i].name, b); /* a repeated name: the last one */
    }
    json_object_set_new(o, "backends", backends);
    return o;
}

json_t *admin_realtime_json(const stats_rt_sample_t *samples, size_t n, int64_t timestamp)
{
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *m = admin_realtime_measurements_json(&samples[i]);
        json_t *dc = json_object();
        json_object_set_new(dc, stats_rt_node_name(), json_deep_copy(m));
        json_t *rec = json_object();
        set_u64(rec, "recorded", (uint64_t)samples[i].recorded);
        json_object_set_new(rec, "aggregated", m); /* one node: the aggregate is its figures */
        json_object_set_new(rec, "datacenter", dc);
        json_array_append_new(data, rec);
    }
    json_t *doc = json_object();
    set_u64(doc, "Timestamp", timestamp > 0 ? (uint64_t)timestamp : 0);
    set_u64(doc, "AggregateDelay", 1);
    json_object_set_new(doc, "Data", data);
    return doc;
}

/* answer with the samples newer than `after` (the newest `max` of them) */
static void send_samples(h2o_req_t *req, int64_t after, size_t max)
{
    stats_rt_sample_t *s = malloc(sizeof(*s) * STATS_RT_KEEP);
    if (s == NULL) {
        admin_send_json_error(req, 503, "Service unavailable", "out of memory");
        return;
    }
    if (max > STATS_RT_KEEP)
        max = STATS_RT_KEEP;
    size_t n = stats_rt_read(after, s, max);
    /* the newest second the client has now: where its next ts/<t> goes on from */
    int64_t ts = n != 0 ? s[n - 1].recorded : after;
    if (n == 0 && (after < 0 || after > stats_rt_latest()))
        ts = stats_rt_latest();
    json_t *doc = admin_realtime_json(s, n, ts);
    free(s);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(doc);
    if (text == NULL) {
        admin_send_json_error(req, 500, "Internal error", "the statistics could not be encoded");
        return;
    }
    admin_send_json(req, 200, text, strlen(text));
    free(text);
}

/* ---------------------------------------------------------------- the long poll */

typedef struct rt_wait {
    h2o_timeout_entry_t timer;
    admin_t *admin;
    h2o_req_t *req;
    int64_t after; /* answer with what is newer than this; -1: the newest one second (ts/0) */
    unsigned polls;
} rt_wait_t;

static void wait_dispose(void *p)
{
    rt_wait_t *w = p;
    if (h2o_timeout_is_linked(&w->timer))
        h2o_timeout_unlink(&w->timer);
}

static void wait_answer(rt_wait_t *w)
{
    if (w->after < 0)
        send_samples(w->req, -1, 1);
    else
        send_samples(w->req, w->after, STATS_RT_KEEP);
}

static void on_wait_tick(h2o_timeout_entry_t *entry)
{
    rt_wait_t *w = H2O_STRUCT_FROM_MEMBER(rt_wait_t, timer, entry);
    int64_t latest = stats_rt_latest();
    /* a stopping admin listener waits for its connections to close: answer now */
    if ((latest >= 0 && latest > w->after) || ++w->polls >= RT_WAIT_POLLS || atomic_load(&w->admin->stopping)) {
        wait_answer(w);
        return;
    }
    h2o_context_t *ctx = w->req->conn->ctx;
    h2o_timeout_link(ctx->loop, &ctx->hundred_ms_timeout, &w->timer);
}

/* answer now when there is something newer than `after`, else wait for it */
static void answer_or_wait(admin_t *admin, h2o_req_t *req, int64_t after)
{
    int64_t latest = stats_rt_latest();
    /* a t ahead of the newest second by more than the one being gathered: the client's
     * clock or a stale value; answer at once with where the data is */
    if ((latest >= 0 && latest > after) || (latest >= 0 && after > latest + 1)) {
        wait_answer(&(rt_wait_t){.req = req, .after = after});
        return;
    }
    rt_wait_t *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), wait_dispose);
    memset(w, 0, sizeof(*w));
    w->timer.cb = on_wait_tick;
    w->admin = admin;
    w->req = req;
    w->after = after;
    h2o_context_t *ctx = req->conn->ctx;
    h2o_timeout_link(ctx->loop, &ctx->hundred_ms_timeout, &w->timer);
}

/* ---------------------------------------------------------------- the route */

#define PREFIX "/v1/channel/"

/* split /v1/channel/<sid>/ts/<rest>: 0, or -1 when the path is not one of these */
static int split_path(const char *path, size_t len, h2o_iovec_t *sid, h2o_iovec_t *rest)
{
    size_t pl = sizeof(PREFIX) - 1;
    if (len <= pl || memcmp(path, PREFIX, pl) != 0)
        return -1;
    const char *s = path + pl, *end = path + len;
    const char *slash = memchr(s, '/', (size_t)(end - s));
    if (slash == NULL || slash == s || (size_t)(end - slash) <= 4 || memcmp(slash, "/ts/", 4) != 0)
        return -1;
    *sid = h2o_iovec_init(s, (size_t)(slash - s));
    *rest = h2o_iovec_init(slash + 4, (size_t)(end - slash - 4));
    return 0;
}

static int rt_match(const char *path, size_t len, unsigned *methods)
{
    h2o_iovec_t sid, rest;
    *methods = ADMIN_M_GET; /* and HEAD */
    return split_path(path, len, &sid, &rest) == 0;
}

static unsigned rt_scopes(const char *path, size_t len, unsigned method)
{
    (void)path, (void)len, (void)method;
    return ADMIN_SCOPE_GLOBAL | ADMIN_SCOPE_GLOBAL_READ;
}

/* a decimal of 1..12 digits; 0 or -1 */
static int parse_decimal(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    if (len == 0 || len > 12)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static void rt_handle(admin_t *admin, h2o_req_t *req, unsigned method, const char *path, size_t len)
{
    (void)method;
    h2o_iovec_t sid, rest;
    char decoded[sizeof(admin->cfg->service_id)];
    if (split_path(path, len, &sid, &rest) != 0) {
        admin_send_json_error(req, 404, "Not found", "no such endpoint");
        return;
    }
    ssize_t n = admin_percent_decode(sid.base, sid.len, decoded, sizeof(decoded) - 1);
    if (n < 0 || (size_t)n != strlen(admin->cfg->service_id) || memcmp(decoded, admin->cfg->service_id, (size_t)n) != 0) {
        admin_send_json_error(req, 404, "Record not found", "no such service: this node serves its --service-id only");
        return;
    }
    admin_rt_ask_t ask;
    int64_t after;
    size_t limit;
    const char *detail;
    if (admin_realtime_parse_ts(rest.base, rest.len, &ask, &after, &limit, &detail) != 0) {
        admin_send_json_error(req, 400, "Bad request", detail);
        return;
    }
    switch (ask) {
    case ADMIN_RT_HOUR: send_samples(req, INT64_MIN, limit); break;
    case ADMIN_RT_LAST: answer_or_wait(admin, req, -1); break;
    case ADMIN_RT_AFTER: answer_or_wait(admin, req, after); break;
    }
}

int admin_realtime_parse_ts(const char *rest, size_t len, admin_rt_ask_t *ask, int64_t *after, size_t *limit, const char **detail)
{
    int64_t v;
    *after = 0;
    *limit = STATS_RT_KEEP;
    if (h2o_memis(rest, len, H2O_STRLIT("h"))) {
        *ask = ADMIN_RT_HOUR;
        return 0;
    }
    if (len > 8 && memcmp(rest, "h/limit/", 8) == 0) {
        /* 12 digits at most: a "limit" of 10^40 is refused, never wrapped */
        if (parse_decimal(rest + 8, len - 8, &v) != 0 || v < 1) {
            *detail = "limit: expected a positive whole number of entries";
            return -1;
        }
        *ask = ADMIN_RT_HOUR;
        *limit = v > STATS_RT_KEEP ? STATS_RT_KEEP : (size_t)v;
        return 0;
    }
    if (parse_decimal(rest, len, &v) != 0) {
        *detail = "timestamp: expected unix seconds, 0, h or h/limit/<N>";
        return -1;
    }
    *ask = v == 0 ? ADMIN_RT_LAST : ADMIN_RT_AFTER;
    *after = v;
    return 0;
}

const admin_ext_route_t admin_realtime_route = {"realtime", rt_match, rt_scopes, rt_handle};

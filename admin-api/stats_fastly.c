/*
 * admin-api/stats_fastly.c — Fastly's historical stats API over the history the stats module
 * keeps (server/stats_history.c), with Fastly's paths, parameters and shapes:
 *
 *   GET /stats?from=&to=&by=&region=                    data: {"<sid>": [sample, ...]}
 *   GET /stats/service/<sid>?...                        data: [sample, ...]
 *   GET /stats/aggregate?...                            data: [sample, ...] (all services)
 *   GET /stats/field/<field>?...                        data: {"<sid>": [{service_id, start_time, <field>}]}
 *   GET /stats/service/<sid>/field/<field>?...          data: [{service_id, start_time, <field>}]
 *   GET /stats/regions                                  data: ["local"]
 *
 * each as {"status":"success","meta":{"from","to","by","region"},"msg":null,"data":...}.
 * A sample carries Fastly's field names where edgecache has the figure (requests, hits, miss,
 * pass, errors, synth, uncacheable, hit_ratio, bandwidth, body_size, header_size,
 * resp_body_bytes, resp_header_bytes, edge_*, hits_time, miss_time, pass_time in seconds,
 * status_1xx..5xx and the per-code ones, origin_fetches, origin_revalidations,
 * origin_fetch_resp_body_bytes, service_id, start_time) and a few of its own (synth_5xx,
 * stale_served, purges, origin_bytes, degraded_minutes, duration).
 *
 * Regions: a node is one region, named "local". region=all or region=local give the data; a
 * region Fastly names (usa, europe, ...) gives no samples, as Fastly answers for a region
 * without traffic; any other name is a 400.
 *
 * Bounds: a window may span at most MAX_HISTORY_WINDOW periods, and the records it holds may
 * make at most ADMIN_STATS_MAX_BUCKETS samples (counted before any JSON is built): beyond
 * either, a 400 asks to narrow it or group by a longer period.
 *
 * What it owns: nothing beyond a call. Threads: the route runs on the admin thread, under the
 * router's config_lock; one LMDB read transaction over the stats database per answer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "admin-api/admin_int.h"
#include "admin-api/metrics_int.h"
#include "admin-api/stats_api.h"
#include "server/stats.h"

#define REGION "local"
/* periods a window may span (most hold no data: the answer is bounded by ADMIN_STATS_MAX_BUCKETS) */
#define MAX_HISTORY_WINDOW 100000

static const char *const fastly_regions[] = {
    "usa", "europe", "anzac", "asia", "asia_india", "asia_southkorea", "africa_std", "mexico", "southamerica_std"};

/* ---------------------------------------------------------------- samples */

static void set_u64(json_t *o, const char *key, uint64_t v)
{
    json_object_set_new(o, key, json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v)));
}

/* one bucket of the history in Fastly's sample shape; sid NULL for the aggregate */
static json_t *sample_json(const stats_sample_t *b, uint64_t degraded, const char *sid)
{
    json_t *o = json_object();
    if (sid != NULL)
        json_object_set_new(o, "service_id", json_string(sid));
    set_u64(o, "start_time", (uint64_t)b->start);
    /* every counter under the name the history gives it (Fastly's, for most), times in seconds */
    for (size_t i = 0; i < stats_num_sample_fields; i++) {
        const char *name = stats_sample_fields[i].name;
        uint64_t v = *(const uint64_t *)((const char *)b + stats_sample_fields[i].offset);
        size_t nl = strlen(name);
        if (nl > 3 && strcmp(name + nl - 3, "_us") == 0) {
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)(nl - 3), name); /* hits_time_us -> hits_time */
            json_object_set_new(o, key, json_real((double)v / 1e6));
        } else if (strcmp(name, "revalidations") == 0) {
            set_u64(o, "origin_revalidations", v);
        } else {
            set_u64(o, name, v);
        }
    }
    /* Fastly's other names for the same figures */
    set_u64(o, "resp_body_bytes", b->body_size);
    set_u64(o, "resp_header_bytes", b->header_size);
    set_u64(o, "edge_requests", b->requests);
    set_u64(o, "edge_resp_body_bytes", b->body_size);
    set_u64(o, "edge_resp_header_bytes", b->header_size);
    set_u64(o, "edge_hit_requests", b->hits);
    set_u64(o, "edge_miss_requests", b->miss);
    set_u64(o, "origin_fetch_resp_body_bytes", b->origin_bytes);
    json_object_set_new(o, "hit_ratio",
                        b->hits + b->miss != 0 ? json_real((double)b->hits / (double)(b->hits + b->miss)) : json_null());
    set_u64(o, "degraded_minutes", degraded);
    set_u64(o, "duration", b->duration);
    return o;
}

/* 1 when `field` names a figure of the samples */
static int field_known(const char *field)
{
    json_t *probe = sample_json(&(stats_sample_t){0}, 0, "x");
    int known = json_object_get(probe, field) != NULL && strcmp(field, "service_id") != 0 && strcmp(field, "start_time") != 0;
    json_decref(probe);
    return known;
}

/* the history of [from, to) grouped by `size` seconds as samples (new array), or NULL with detail */
static json_t *history_samples(int64_t from, int64_t to, int64_t size, const char *sid, const char *field, int *status,
                               char *detail, size_t detail_len)
{
    stats_sample_t *mins = NULL;
    size_t n = 0, buckets = 0;
    *status = 500;
    if (stats_history_load(from, to, &mins, &n, NULL, NULL) != 0) {
        snprintf(detail, detail_len, "store: could not read the history");
        return NULL;
    }
    /* the samples there will be (one per period with data), before a byte of JSON is built */
    for (size_t i = 0; i < n; i++)
        buckets += i == 0 || mins[i].start - mins[i].start % size != mins[i - 1].start - mins[i - 1].start % size;
    if (buckets > ADMIN_STATS_MAX_BUCKETS) {
        free(mins);
        *status = 400;
        snprintf(detail, detail_len, "from: the window holds more than %d samples; narrow it or group by a longer period",
                 ADMIN_STATS_MAX_BUCKETS);
        return NULL;
    }
    uint32_t ppm = stats_degraded_share_ppm();
    json_t *data = json_array();
    stats_sample_t acc = {0};
    uint64_t degraded = 0;
    int open = 0;
    for (size_t i = 0; i <= n; i++) {
        int64_t bstart = i < n ? mins[i].start - mins[i].start % size : 0;
        if (open && (i == n || bstart != acc.start)) {
            json_t *s = sample_json(&acc, degraded, sid);
            if (field != NULL) {
                json_t *one = json_object();
                if (sid != NULL)
                    json_object_set(one, "service_id", json_object_get(s, "service_id"));
                json_object_set(one, "start_time", json_object_get(s, "start_time"));
                json_object_set(one, field, json_object_get(s, field));
                json_decref(s);
                s = one;
            }
            json_array_append_new(data, s);
            open = 0;
        }
        if (i == n)
            break;
        if (!open) {
            memset(&acc, 0, sizeof(acc));
            acc.start = bstart;
            degraded = 0;
            open = 1;
        }
        stats_sample_add(&acc, &mins[i]);
        degraded += (uint64_t)stats_minute_degraded(mins[i].requests, mins[i].synth_5xx, ppm);
    }
    free(mins);
    return data;
}

static int64_t by_seconds(const char *by)
{
    if (strcmp(by, "minute") == 0)
        return stats_minute_seconds();
    if (strcmp(by, "hour") == 0)
        return 3600;
    if (strcmp(by, "day") == 0)
        return 86400;
    return -1;
}

static json_t *envelope(json_t *data, int64_t from, int64_t to, const char *by, const char *region)
{
    char f[64], t[64];
    time_t tf = (time_t)from, tt = (time_t)to;
    struct tm tm;
    gmtime_r(&tf, &tm);
    strftime(f, sizeof(f), "%a %b %d %H:%M:%S UTC %Y", &tm); /* the shape of Fastly's meta.from/to */
    gmtime_r(&tt, &tm);
    strftime(t, sizeof(t), "%a %b %d %H:%M:%S UTC %Y", &tm);
    json_t *meta = json_object();
    json_object_set_new(meta, "from", json_string(f));
    json_object_set_new(meta, "to", json_string(t));
    json_object_set_new(meta, "by", json_string(by));
    json_object_set_new(meta, "region", json_string(region));
    json_t *doc = json_object();
    json_object_set_new(doc, "status", json_string("success"));
    json_object_set_new(doc, "meta", meta);
    json_object_set_new(doc, "msg", json_null());
    json_object_set_new(doc, "data", data);
    return doc;
}

json_t *admin_stats_history_json(int64_t from, int64_t to, const char *by, char *detail, size_t detail_len)
{
    int64_t size = by_seconds(by);
    if (size < 0) {
        snprintf(detail, detail_len, "by: expected minute, hour or day");
        return NULL;
    }
    if (from >= to) {
        snprintf(detail, detail_len, "from: must be before to");
        return NULL;
    }
    if ((to - from) / size > MAX_HISTORY_WINDOW) {
        snprintf(detail, detail_len, "from: the window holds more than %d %s periods; narrow it or group by a longer period",
                 MAX_HISTORY_WINDOW, by);
        return NULL;
    }
    int status;
    json_t *data = history_samples(from, to, size, NULL, NULL, &status, detail, detail_len);
    return data != NULL ? envelope(data, from, to, by, "all") : NULL;
}

/* ---------------------------------------------------------------- the requests */

void admin_stats_fastly_send(admin_t *admin, h2o_req_t *req, admin_stats_fastly_kind_t kind, const char *field)
{
    char from_s[128], to_s[128], by[16], region[32], detail[200];
    int64_t now = (int64_t)time(NULL), from, to;
    const char *sid = admin->cfg->service_id;
    int hf = admin_stats_query_param(req, "from", from_s, sizeof(from_s));
    int ht = admin_stats_query_param(req, "to", to_s, sizeof(to_s));
    int hb = admin_stats_query_param(req, "by", by, sizeof(by));
    int hr = admin_stats_query_param(req, "region", region, sizeof(region));
    if (hf < 0 || ht < 0 || hb < 0 || hr < 0) {
        admin_send_json_error(req, 400, "Bad request",
                              hf < 0   ? "from: malformed"
                              : ht < 0 ? "to: malformed"
                              : hb < 0 ? "by: malformed"
                                       : "region: malformed");
        return;
    }
    if (!hb)
        snprintf(by, sizeof(by), "day");
    if (!hr)
        snprintf(region, sizeof(region), "all");
    int64_t size = by_seconds(by);
    if (size < 0) {
        admin_send_json_error(req, 400, "Bad request", "by: expected minute, hour or day");
        return;
    }
    int elsewhere = 0; /* a Fastly region this node is not in: no traffic there */
    for (size_t i = 0; i < sizeof(fastly_regions) / sizeof(fastly_regions[0]); i++)
        elsewhere |= strcmp(region, fastly_regions[i]) == 0;
    if (!elsewhere && strcmp(region, "all") != 0 && strcmp(region, REGION) != 0) {
        admin_send_json_error(req, 400, "Bad request", "region: expected all, " REGION " (this node) or a Fastly region");
        return;
    }
    if (field != NULL && !field_known(field)) {
        admin_send_json_error(req, 400, "Bad request", "field: not a figure edgecache keeps (see GET /stats/service/<sid>)");
        return;
    }
    to = now;
    if (ht && admin_stats_parse_time(to_s, now, &to) != 0) {
        admin_send_json_error(req, 400, "Bad request",
                              "to: expected unix seconds, YYYY-MM-DD[ HH:MM[:SS]], now, today, yesterday or 'N units ago'");
        return;
    }
    /* Fastly's defaults: a month of days, a day of hours, 30 minutes of minutes */
    from = to - (size == 86400 ? 30 * 86400 : size == 3600 ? 86400 : 30 * 60);
    if (hf && admin_stats_parse_time(from_s, now, &from) != 0) {
        admin_send_json_error(req, 400, "Bad request",
                              "from: expected unix seconds, YYYY-MM-DD[ HH:MM[:SS]], now, today, yesterday or 'N units ago'");
        return;
    }
    if (from >= to) {
        admin_send_json_error(req, 400, "Bad request", "from: must be before to");
        return;
    }
    if ((to - from) / size > MAX_HISTORY_WINDOW) {
        snprintf(detail, sizeof(detail), "from: the window holds more than %d %s periods; narrow it or group by a longer period",
                 MAX_HISTORY_WINDOW, by);
        admin_send_json_error(req, 400, "Bad request", detail);
        return;
    }

    int status = 500;
    json_t *samples = elsewhere ? json_array()
                                : history_samples(from, to, size, kind == ADMIN_STATS_AGGREGATE ? NULL : sid, field, &status,
                                                  detail, sizeof(detail));
    if (samples == NULL) {
        admin_send_json_error(req, status, status == 400 ? "Bad request" : "Internal error", detail);
        return;
    }
    json_t *data = samples;
    if (kind == ADMIN_STATS_ALL || kind == ADMIN_STATS_FIELD) { /* keyed by service id */
        data = json_object();
        json_object_set_new(data, sid, samples);
    }
    json_t *doc = envelope(data, from, to, by, region);
    char *s = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(doc);
    if (s == NULL) {
        admin_send_json_error(req, 500, "Internal error", "the statistics could not be encoded");
        return;
    }
    admin_send_json(req, 200, s, strlen(s));
    free(s);
}

/* ---------------------------------------------------------------- the route */

/* /stats/service/<sid>[/field/<f>], /stats/aggregate, /stats/field/<f>, /stats/regions */
static int parse_path(const char *path, size_t len, admin_stats_fastly_kind_t *kind, h2o_iovec_t *sid, h2o_iovec_t *field)
{
    static const char svc[] = "/stats/service/", fld[] = "/stats/field/";
    *sid = *field = h2o_iovec_init(NULL, 0);
    if (h2o_memis(path, len, H2O_STRLIT("/stats/aggregate"))) {
        *kind = ADMIN_STATS_AGGREGATE;
        return 1;
    }
    if (h2o_memis(path, len, H2O_STRLIT("/stats/regions"))) {
        *kind = ADMIN_STATS_REGIONS;
        return 1;
    }
    if (len > sizeof(fld) - 1 && memcmp(path, fld, sizeof(fld) - 1) == 0) {
        *field = h2o_iovec_init(path + sizeof(fld) - 1, len - (sizeof(fld) - 1));
        *kind = ADMIN_STATS_FIELD;
        return memchr(field->base, '/', field->len) == NULL;
    }
    if (len > sizeof(svc) - 1 && memcmp(path, svc, sizeof(svc) - 1) == 0) {
        const char *s = path + sizeof(svc) - 1, *end = path + len;
        const char *slash = memchr(s, '/', (size_t)(end - s));
        *sid = h2o_iovec_init(s, (size_t)((slash != NULL ? slash : end) - s));
        *kind = ADMIN_STATS_SERVICE;
        if (slash == NULL)
            return sid->len != 0;
        if ((size_t)(end - slash) <= 7 || memcmp(slash, "/field/", 7) != 0)
            return 0;
        *field = h2o_iovec_init(slash + 7, (size_t)(end - slash - 7));
        *kind = ADMIN_STATS_SERVICE_FIELD;
        return sid->len != 0 && memchr(field->base, '/', field->len) == NULL;
    }
    return 0;
}

static int fastly_match(const char *path, size_t len, unsigned *methods)
{
    admin_stats_fastly_kind_t kind;
    h2o_iovec_t sid, field;
    *methods = ADMIN_M_GET; /* and HEAD */
    return parse_path(path, len, &kind, &sid, &field);
}

static unsigned fastly_scopes(const char *path, size_t len, unsigned method)
{
    (void)path, (void)len, (void)method;
    return ADMIN_SCOPE_GLOBAL | ADMIN_SCOPE_GLOBAL_READ;
}

static void fastly_handle(admin_t *admin, h2o_req_t *req, unsigned method, const char *path, size_t len)
{
    (void)method;
    admin_stats_fastly_kind_t kind;
    h2o_iovec_t sid, field;
    char sid_buf[sizeof(admin->cfg->service_id)], field_buf[64];
    if (!parse_path(path, len, &kind, &sid, &field)) {
        admin_send_json_error(req, 404, "Not found", "no such endpoint");
        return;
    }
    if (kind == ADMIN_STATS_REGIONS) {
        json_t *doc = json_object();
        json_object_set_new(doc, "status", json_string("success"));
        json_object_set_new(doc, "meta", json_object());
        json_object_set_new(doc, "msg", json_null());
        json_object_set_new(doc, "data", json_pack("[s]", REGION));
        admin_send_json_value(req, 200, doc);
        return;
    }
    if (sid.base != NULL) {
        ssize_t n = admin_percent_decode(sid.base, sid.len, sid_buf, sizeof(sid_buf) - 1);
        if (n < 0 || (size_t)n != strlen(admin->cfg->service_id) || memcmp(sid_buf, admin->cfg->service_id, (size_t)n) != 0) {
            admin_send_json_error(req, 404, "Record not found", "no such service: this node serves its --service-id only");
            return;
        }
    }
    const char *f = NULL;
    if (field.base != NULL) {
        ssize_t n = admin_percent_decode(field.base, field.len, field_buf, sizeof(field_buf) - 1);
        if (n <= 0) {
            admin_send_json_error(req, 400, "Bad request", "field: malformed");
            return;
        }
        field_buf[n] = '\0';
        if (strlen(field_buf) != (size_t)n) {
            admin_send_json_error(req, 400, "Bad request", "field: malformed");
            return;
        }
        f = field_buf;
    }
    admin_stats_fastly_send(admin, req, kind, f);
}

const admin_ext_route_t admin_stats_fastly_route = {"stats-fastly", fastly_match, fastly_scopes, fastly_handle};

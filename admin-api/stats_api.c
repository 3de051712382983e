/*
 * admin-api/stats_api.c — GET /stats (edgecache's own document) and /stats/sla on the admin
 * listener, and the route that also hands GET /metrics to the Prometheus renderer
 * (metrics.c) and GET /stats with history parameters to Fastly's historical API
 * (stats_fastly.c). The token-free metrics listener is metrics_listener.c.
 *
 * What it owns: the SLA summary of the last month asked for (sla_cache); nothing else
 * (every document is built from server/stats.h's snapshot and history, the memory tier's
 * and the store's counters and server/backend.h's per-backend snapshot, then sent and freed).
 *
 * Threads: the route (admin_stats_route) runs on the admin thread; the documents can be
 * built on any thread. Nothing here blocks the admin loop beyond one LMDB read transaction
 * over the stats database (history, SLA). The SLA's summary of a month's history is kept
 * (sla_cache) until the history changes, about once a minute, so that GET /stats costs the
 * same with a month of history as with none and can be polled every second.
 *
 * Query values are untrusted: they are percent-decoded into bounded buffers and parsed
 * strictly; anything unexpected is a 400 naming the parameter.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "admin-api/admin_int.h"
#include "admin-api/stats_api.h"
#include "admin-api/admin_ext.h"
#include "admin-api/metrics_int.h"
#include "cluster/cluster_stats.h"
#include "server/backend.h"
#include "server/frontend.h"
#include "server/inflow.h"
#include "server/stats.h"

/* ---------------------------------------------------------------- small helpers */

static json_t *jint(uint64_t v)
{
    return json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v));
}

static void set_u64(json_t *o, const char *key, uint64_t v)
{
    json_object_set_new(o, key, jint(v));
}

static void set_real(json_t *o, const char *key, double v)
{
    json_object_set_new(o, key, isfinite(v) ? json_real(v) : json_null());
}

/* send a document with reals printed to 12 significant digits (1.5, not 1.5000000000000002); steals doc */
static void send_doc(h2o_req_t *req, json_t *doc)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(doc);
    if (s == NULL) { /* it holds history read back from the store: an error answer, never an abort */
        admin_send_json_error(req, 500, "Internal error", "the statistics could not be encoded");
        return;
    }
    admin_send_json(req, 200, s, strlen(s));
    free(s);
}

static double round3(double v)
{
    return round(v * 1000.0) / 1000.0;
}

static json_t *ratio(uint64_t hits, uint64_t miss)
{
    if (hits + miss == 0)
        return json_null();
    return json_real((double)hits / (double)(hits + miss));
}

/* ---------------------------------------------------------------- time parsing */

static int parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int admin_stats_parse_time(const char *s, int64_t now, int64_t *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 64)
        return -1;
    if (strcmp(s, "now") == 0) {
        *out = now;
        return 0;
    }
    if (strcmp(s, "today") == 0 || strcmp(s, "yesterday") == 0) {
        *out = now - now % 86400 - (s[0] == 'y' ? 86400 : 0);
        return 0;
    }
    /* unix seconds */
    size_t digits = strspn(s, "0123456789");
    if (digits == len) {
        if (len > 12)
            return -1;
        *out = (int64_t)strtoll(s, NULL, 10);
        return 0;
    }
    /* "N unit(s) ago", N in digits or words ("two weeks ago", "an hour ago") */
    long n = -1;
    const char *unit = NULL;
    if (digits > 0 && digits <= 6 && s[digits] == ' ') {
        n = strtol(s, NULL, 10);
        unit = s + digits + 1;
    } else {
        static const char *const words[] = {"a",   "an",    "one",   "two",  "three", "four",   "five",
                                            "six", "seven", "eight", "nine", "ten",   "eleven", "twelve"};
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
            size_t wl = strlen(words[i]);
            if (strncmp(s, words[i], wl) == 0 && s[wl] == ' ') {
                n = i < 2 ? 1 : (long)i - 1;
                unit = s + wl + 1;
                break;
            }
        }
    }
    if (unit != NULL) {
        static const struct {
            const char *name;
            int64_t secs;
        } units[] = {{"second", 1},  {"minute", 60},      {"hour", 3600},
                     {"day", 86400}, {"week", 7 * 86400}, {"month", 30 * 86400}};
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t ul = strlen(units[i].name);
            if (strncmp(unit, units[i].name, ul) != 0)
                continue;
            const char *rest = unit + ul;
            if (*rest == 's')
                rest++;
            if (strcmp(rest, " ago") != 0)
                return -1;
            *out = now - (int64_t)n * units[i].secs;
            return 0;
        }
        return -1;
    }
    /* YYYY-MM-DD[( |T)HH:MM[:SS]][Z] */
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, se = 0;
    if (parse_digits(&p, 4, &y) != 0 || *p++ != '-' || parse_digits(&p, 2, &mo) != 0 || *p++ != '-' ||
        parse_digits(&p, 2, &d) != 0)
        return -1;
    if (*p == ' ' || *p == 'T') {
        p++;
        if (parse_digits(&p, 2, &h) != 0 || *p++ != ':' || parse_digits(&p, 2, &mi) != 0)
            return -1;
        if (*p == ':') {
            p++;
            if (parse_digits(&p, 2, &se) != 0)
                return -1;
        }
    }
    if (*p == 'Z')
        p++;
    if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = se};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t;
    return 0;
}

/* ---------------------------------------------------------------- the current totals */

static json_t *latency_json(const uint64_t counts[STATS_LAT_BUCKETS], uint64_t sum_us)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < STATS_LAT_BUCKETS; i++)
        n += counts[i];
    json_t *o = json_object();
    set_u64(o, "count", n);
    set_real(o, "avg", n != 0 ? round3((double)sum_us / (double)n / 1000.0) : 0);
    set_real(o, "p50", round3(stats_hist_percentile(counts, 0.50) / 1000.0));
    set_real(o, "p90", round3(stats_hist_percentile(counts, 0.90) / 1000.0));
    set_real(o, "p99", round3(stats_hist_percentile(counts, 0.99) / 1000.0));
    set_real(o, "p999", round3(stats_hist_percentile(counts, 0.999) / 1000.0));
    return o;
}

static json_t *backends_json(void)
{
    backend_stat_t *bs = calloc(ADMIN_MAX_BACKENDS_SHOWN, sizeof(*bs));
    if (bs == NULL)
        abort();
    size_t n = backend_stats_snapshot(bs, ADMIN_MAX_BACKENDS_SHOWN);
    json_t *arr = json_array();
    for (size_t i = 0; i < n && i < ADMIN_MAX_BACKENDS_SHOWN; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(bs[i].name));
        json_object_set_new(o, "address", json_string(bs[i].address));
        set_u64(o, "requests", bs[i].requests);
        set_u64(o, "errors", bs[i].errors);
        json_object_set_new(o, "healthy", json_boolean(bs[i].healthy));
        json_object_set_new(o, "healthcheck", json_boolean(bs[i].has_healthcheck));
        json_object_set_new(o, "shield", json_boolean(bs[i].shield));
        if (bs[i].last_probe_ms != 0) {
            set_real(o, "last_probe_latency_ms", round3((double)bs[i].probe_latency_us / 1000.0));
            set_u64(o, "last_probe_time", (uint64_t)(bs[i].last_probe_ms / 1000));
        } else {
            json_object_set_new(o, "last_probe_latency_ms", json_null());
            json_object_set_new(o, "last_probe_time", json_null());
        }
        set_u64(o, "probes", bs[i].probes);
        set_u64(o, "probe_failures", bs[i].probe_failures);
        json_array_append_new(arr, o);
    }
    free(bs);
    return arr;
}

/* the proxy's workers: which take new connections (--accept-spread), how many each took, and its CPU share */
static json_t *workers_json(void)
{
    unsigned n;
    frontend_worker_info_t *wi = frontend_worker_snapshot(&n);
    json_t *a = json_array();
    for (unsigned i = 0; i != n; ++i) {
        json_t *w = json_object();
        json_object_set_new(w, "accepting", json_boolean(wi[i].accepting));
        set_u64(w, "connections_accepted", wi[i].accepted);
        set_u64(w, "connections_open", wi[i].open);
        set_real(w, "cpu_percent", (double)wi[i].cpu_permille / 10.0);
        json_array_append_new(a, w);
    }
    free(wi);
    return a;
}

static void month_of(int64_t t, int *year, int *month)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    *year = tm.tm_year + 1900;
    *month = tm.tm_mon + 1;
}

json_t *admin_stats_current_json(int64_t now)
{
    stats_totals_t t;
    mem_stats_t ms = {0};
    store_stats_t ss = {0};
    stats_snapshot(&t);
    if (stats_mem() != NULL)
        mem_get_stats(stats_mem(), &ms);
    if (stats_store() != NULL)
        store_get_stats(stats_store(), &ss);

    json_t *o = json_object();
    set_u64(o, "requests", t.requests);
    set_u64(o, "hits", t.hits);
    set_u64(o, "miss", t.miss);
    set_u64(o, "pass", t.pass);
    set_u64(o, "errors", t.errors);
    json_object_set_new(o, "hit_ratio", ratio(t.hits, t.miss));
    set_u64(o, "synth", t.synth);
    set_u64(o, "uncacheable", t.uncacheable);
    set_u64(o, "stale_served", t.stale_served);
    set_u64(o, "revalidations", t.revalidations);
    set_u64(o, "revalidated_304", t.revalidated_304);
    set_u64(o, "collapsed", t.collapsed);
    set_u64(o, "bandwidth", t.bandwidth);
    set_u64(o, "body_size", t.body_size);
    set_u64(o, "header_size", t.header_size);
    set_u64(o, "origin_fetches", t.origin_fetches);
    set_u64(o, "origin_bytes", t.origin_bytes);
    set_u64(o, "purge_requests", t.purge_requests);
    set_u64(o, "stalled_clients_closed", t.stalled_clients_closed);
    set_u64(o, "errors_not_origin", t.synth_5xx);
    char key[32];
    for (int k = 1; k <= 5; k++) {
        snprintf(key, sizeof(key), "status_%dxx", k);
        set_u64(o, key, t.status_class[k]);
    }
    for (int k = 0; k < STATS_NUM_CODES; k++) {
        snprintf(key, sizeof(key), "status_%d", stats_codes[k]);
        set_u64(o, key, t.status_code[k]);
    }

    json_t *lat = json_object();
    json_object_set_new(lat, "hits", latency_json(t.lat_count[STATS_LAT_HIT], t.lat_sum_us[STATS_LAT_HIT]));
    json_object_set_new(lat, "miss", latency_json(t.lat_count[STATS_LAT_MISS], t.lat_sum_us[STATS_LAT_MISS]));
    json_object_set_new(lat, "pass", latency_json(t.lat_count[STATS_LAT_PASS], t.lat_sum_us[STATS_LAT_PASS]));
    json_object_set_new(o, "latency_ms", lat);

    json_t *purges = json_object();
    for (int k = 0; k < STATS_PURGE_KINDS; k++) {
        json_t *p = json_object();
        set_u64(p, "count", t.purges[k]);
        set_real(p, "avg_latency_ms",
                 t.purges[k] != 0 ? round3((double)t.purge_latency_sum_us[k] / (double)t.purges[k] / 1000.0) : 0);
        set_real(p, "max_latency_ms", round3((double)t.purge_latency_max_us[k] / 1000.0));
        json_object_set_new(purges, stats_purge_kind_name((stats_purge_kind_t)k), p);
    }
    json_object_set_new(o, "purges", purges);

    json_t *mem = json_object();
    set_u64(mem, "objects", ms.objects);
    set_u64(mem, "bytes", ms.bytes);
    set_u64(mem, "budget", ms.budget);
    set_u64(mem, "evictions", ms.evictions);
    json_object_set_new(o, "memory", mem);
    json_t *disk = json_object();
    set_u64(disk, "objects", ss.objects);
    set_u64(disk, "bytes", ss.bytes_used);
    set_u64(disk, "map_size", ss.map_size);
    set_u64(disk, "budget", ss.budget);
    set_u64(disk, "enospc", ss.enospc);
    set_u64(disk, "memory_only", ss.memory_only);
    set_u64(disk, "put_backlog_bytes", ss.put_backlog_bytes);
    set_u64(disk, "put_backlog_limit", ss.put_backlog_limit);
    set_u64(disk, "puts_refused_backlog", ss.puts_refused_backlog);
    set_u64(disk, "puts", ss.puts);
    set_u64(disk, "evictions", ss.evictions);
    set_u64(disk, "journal_commits", ss.journal_commits);
    set_real(disk, "journal_write_ms", round3((double)ss.journal_write_us / 1000.0));
    set_real(disk, "journal_write_avg_ms",
             ss.journal_commits != 0 ? round3((double)ss.journal_write_us / (double)ss.journal_commits / 1000.0) : 0);
    set_real(disk, "journal_write_max_ms", round3((double)ss.journal_write_max_us / 1000.0));
    json_object_set_new(disk, "journal_direct", json_boolean(ss.journal_direct));
    json_object_set_new(disk, "writemap", json_boolean(ss.writemap));
    set_u64(disk, "checkpoints", ss.checkpoints);
    set_u64(disk, "map_trims", ss.map_trims);
    set_u64(disk, "syncs", ss.syncs);
    set_u64(disk, "purges_awaiting_checkpoint", ss.journal_unsynced);
    json_object_set_new(o, "disk", disk);
    json_t *bodies = json_object(); /* request bodies in memory (server/inflow.h) */
    set_u64(bodies, "arriving_bytes", inflow_arriving_bytes());
    set_u64(bodies, "held_bytes", inflow_held_bytes());
    set_u64(bodies, "budget", inflow_budget());
    set_u64(bodies, "connections_closed", t.body_budget_closed);
    json_object_set_new(o, "request_bodies", bodies);
    set_u64(o, "objects_in_memory", ms.objects);
    set_u64(o, "bytes_in_memory", ms.bytes);
    set_u64(o, "objects_on_disk", ss.objects);
    set_u64(o, "bytes_on_disk", ss.bytes_used);
    set_u64(o, "evictions", ms.evictions + ss.evictions);

    json_object_set_new(o, "backends", backends_json());
    json_object_set_new(o, "workers", workers_json());
    json_object_set_new(o, "cluster", cluster_stats_json()); /* null when not a cluster (cluster/cluster_stats.c) */

    int y, m;
    char detail[64];
    month_of(now, &y, &m);
    json_t *sla = admin_stats_sla_json(y, m, now, detail, sizeof(detail));
    json_object_set_new(o, "sla", sla != NULL ? sla : json_null());

    int64_t start = stats_start_time();
    set_u64(o, "uptime", now > start ? (uint64_t)(now - start) : 0);
    json_object_set_new(o, "version", json_string(EDGECACHE_VERSION));
    set_u64(o, "start_time", (uint64_t)start);
    return o;
}

/* ---------------------------------------------------------------- SLA */

/* what the SLA of a month takes from its history: all of it but what depends on the clock */
typedef struct sla_summary {
    size_t nm, nb;
    uint64_t degraded, p95, max;
    double avg;
} sla_summary_t;

/* The last month summarised, for the history generation it was read at: GET /stats carries
 * the current month's SLA, and a month of history is ~44,000 minute records to read and
 * decode (milliseconds of the admin thread per call), while the history changes once a
 * minute. Any admin thread: under `lock`. */
static struct {
    pthread_mutex_t lock;
    int valid, year, month;
    uint32_t ppm;
    uint64_t generation;
    sla_summary_t s;
} sla_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int sla_summary(int year, int month, int64_t from, int64_t to, uint32_t ppm, sla_summary_t *out)
{
    /* read before the history: a write during the read moves it, and the next call reads again */
    uint64_t gen = stats_history_generation();
    pthread_mutex_lock(&sla_cache.lock);
    int hit = sla_cache.valid && sla_cache.year == year && sla_cache.month == month && sla_cache.ppm == ppm &&
              sla_cache.generation == gen;
    if (hit)
        *out = sla_cache.s;
    pthread_mutex_unlock(&sla_cache.lock);
    if (hit)
        return 0;

    stats_sample_t *mins = NULL;
    stats_bw_sample_t *bws = NULL;
    size_t nm = 0, nb = 0;
    if (stats_history_load(from, to, &mins, &nm, &bws, &nb) != 0)
        return -1;
    /* utilization, bits per second per sample */
    uint64_t *bps = malloc((nb != 0 ? nb : 1) * sizeof(*bps));
    if (bps == NULL)
        abort();
    double sum = 0;
    uint64_t max = 0;
    for (size_t i = 0; i < nb; i++) {
        bps[i] = bws[i].bytes * 8 / bws[i].interval;
        sum += (double)bps[i];
        if (bps[i] > max)
            max = bps[i];
    }
    sla_summary_t s = {.nm = nm, .nb = nb, .max = max, .avg = nb != 0 ? sum / (double)nb : 0};
    s.p95 = stats_p95_standard(bps, nb);
    for (size_t i = 0; i < nm; i++)
        s.degraded += (uint64_t)stats_minute_degraded(mins[i].requests, mins[i].synth_5xx, ppm);
    free(bps);
    free(mins);
    free(bws);
    pthread_mutex_lock(&sla_cache.lock);
    sla_cache.valid = 1;
    sla_cache.year = year;
    sla_cache.month = month;
    sla_cache.ppm = ppm;
    sla_cache.generation = gen;
    sla_cache.s = s;
    pthread_mutex_unlock(&sla_cache.lock);
    *out = s;
    return 0;
}

json_t *admin_stats_sla_json(int year, int month, int64_t now, char *detail, size_t detail_len)
{
    struct tm a = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = 1};
    struct tm b = {.tm_year = (month == 12 ? year + 1 : year) - 1900, .tm_mon = month == 12 ? 0 : month, .tm_mday = 1};
    int64_t from = (int64_t)timegm(&a), to = (int64_t)timegm(&b);
    if (from > now) {
        snprintf(detail, detail_len, "month: %04d-%02d has not begun", year, month);
        return NULL;
    }
    int64_t end = to < now ? to : now;
    uint32_t ppm = stats_degraded_share_ppm();
    sla_summary_t sum;
    if (sla_summary(year, month, from, to, ppm, &sum) != 0) {
        snprintf(detail, detail_len, "store: could not read the history");
        return NULL;
    }
    size_t nm = sum.nm, nb = sum.nb;
    uint64_t max = sum.max, p95 = sum.p95, degraded = sum.degraded;
    double avg = sum.avg, permitted = 5 * avg;

    /* availability: the minutes of the month so far (the clock's part, never cached) */
    uint64_t minute = stats_minute_seconds();
    uint64_t total = end > from ? (uint64_t)(end - from + (int64_t)minute - 1) / minute : 0;
    if (degraded > total)
        total = degraded;
    double avail = total != 0 ? 100.0 * (double)(total - degraded) / (double)total : 100.0;

    char mbuf[16];
    snprintf(mbuf, sizeof(mbuf), "%04d-%02d", year, month);
    json_t *o = json_object();
    json_object_set_new(o, "month", json_string(mbuf));
    set_u64(o, "from", (uint64_t)from);
    set_u64(o, "to", (uint64_t)end);
    set_u64(o, "sample_interval", stats_sample_interval());
    set_u64(o, "bandwidth_samples", nb);
    set_real(o, "average_utilization_bps", round3(avg));
    set_u64(o, "p95_utilization_bps", p95);
    set_real(o, "permitted_utilization_bps", round3(permitted));
    set_u64(o, "max_utilization_bps", max);
    json_object_set_new(o, "utilization_spike", json_boolean(nb != 0 && (double)p95 > permitted));
    set_u64(o, "minutes", total);
    set_u64(o, "minutes_with_data", nm);
    set_u64(o, "degraded_minutes", degraded);
    set_real(o, "degraded_threshold_percent", (double)ppm / 10000.0);
    set_real(o, "availability_percent", round(avail * 10000.0) / 10000.0);
    json_object_set_new(o, "sla_band", json_string(stats_sla_band_name(stats_sla_band(total, degraded))));
    return o;
}

/* ---------------------------------------------------------------- the admin route */

int admin_stats_query_param(h2o_req_t *req, const char *name, char *buf, size_t cap)
{
    const char *q = memchr(req->path.base, '?', req->path.len);
    if (q == NULL)
        return 0;
    const char *p = q + 1, *end = req->path.base + req->path.len;
    size_t nl = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *kend = eq != NULL ? eq : e;
        if ((size_t)(kend - p) == nl && memcmp(p, name, nl) == 0) {
            const char *v = eq != NULL ? eq + 1 : e;
            size_t vl = (size_t)(e - v);
            char raw[256];
            if (vl >= sizeof(raw))
                return -1;
            for (size_t i = 0; i < vl; i++)
                raw[i] = v[i] == '+' ? ' ' : v[i];
            ssize_t n = admin_percent_decode(raw, vl, buf, cap - 1);
            if (n < 0)
                return -1;
            buf[n] = '\0';
            return 1;
        }
        p = e + 1;
    }
    return 0;
}

/* GET /stats: edgecache's own document; with history parameters, Fastly's GET /stats */
static void handle_stats(admin_t *admin, h2o_req_t *req)
{
    char v[8];
    if (admin_stats_query_param(req, "from", v, sizeof(v)) != 0 || admin_stats_query_param(req, "to", v, sizeof(v)) != 0 ||
        admin_stats_query_param(req, "by", v, sizeof(v)) != 0 || admin_stats_query_param(req, "region", v, sizeof(v)) != 0) {
        admin_stats_fastly_send(admin, req, ADMIN_STATS_ALL, NULL);
        return;
    }
    send_doc(req, admin_stats_current_json((int64_t)time(NULL)));
}

static void handle_sla(h2o_req_t *req)
{
    char month[32], detail[200];
    int64_t now = (int64_t)time(NULL);
    int y, m;
    int hm = admin_stats_query_param(req, "month", month, sizeof(month));
    if (hm < 0) {
        admin_send_json_error(req, 400, "Bad request", "month: malformed");
        return;
    }
    if (hm == 0) {
        time_t tt = (time_t)now;
        struct tm tm;
        gmtime_r(&tt, &tm);
        y = tm.tm_year + 1900;
        m = tm.tm_mon + 1;
    } else {
        const char *p = month;
        if (parse_digits(&p, 4, &y) != 0 || *p++ != '-' || parse_digits(&p, 2, &m) != 0 || *p != '\0' || y < 1970 || m < 1 ||
            m > 12) {
            admin_send_json_error(req, 400, "Bad request", "month: expected YYYY-MM");
            return;
        }
    }
    json_t *doc = admin_stats_sla_json(y, m, now, detail, sizeof(detail));
    if (doc == NULL) {
        admin_send_json_error(req, 400, "Bad request", detail);
        return;
    }
    send_doc(req, doc);
}

/* ---- the admin_ext.h route (the router does 405, auth and scopes) ---- */

enum stats_endpoint { EP_NONE, EP_STATS, EP_SLA, EP_METRICS };

static enum stats_endpoint stats_endpoint_of(const char *path, size_t len)
{
    if (h2o_memis(path, len, H2O_STRLIT("/stats")) || h2o_memis(path, len, H2O_STRLIT("/stats/")))
        return EP_STATS;
    if (h2o_memis(path, len, H2O_STRLIT("/stats/sla")))
        return EP_SLA;
    if (h2o_memis(path, len, H2O_STRLIT("/metrics")))
        return EP_METRICS;
    return EP_NONE;
}

static int stats_match(const char *path, size_t len, unsigned *methods)
{
    *methods = ADMIN_M_GET; /* and HEAD */
    return stats_endpoint_of(path, len) != EP_NONE;
}

static unsigned stats_scopes(const char *path, size_t len, unsigned method)
{
    (void)path, (void)len, (void)method;
    return ADMIN_SCOPE_GLOBAL | ADMIN_SCOPE_GLOBAL_READ;
}

static void stats_handle(admin_t *admin, h2o_req_t *req, unsigned method, const char *path, size_t len)
{
    (void)method;
    switch (stats_endpoint_of(path, len)) {
    case EP_STATS: handle_stats(admin, req); break;
    case EP_SLA: handle_sla(req); break;
    case EP_METRICS: admin_metrics_send(req); break;
    case EP_NONE: admin_send_json_error(req, 404, "Not found", "no such endpoint"); break;
    }
}

const admin_ext_route_t admin_stats_route = {"stats", stats_match, stats_scopes, stats_handle};

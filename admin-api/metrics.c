/*
 * admin-api/metrics.c — the Prometheus exposition of GET /metrics (text format 0.0.4): the
 * renderer and the one answer that carries it, on the admin listener (behind a global or
 * global:read token) and on the token-free metrics listener (metrics_listener.c) alike.
 *
 * What it owns: nothing that outlives a call. admin_metrics_render reads server/stats.h's
 * snapshot, the memory tier's and the store's counters and server/backend.h's per-backend
 * snapshot, and returns a new malloc'd text; admin_metrics_send copies it into the
 * request's pool and frees it.
 *
 * Every sample line is a name, optional labels and a value: label values are escaped
 * (admin_prom_escape_label) and values formatted (admin_prom_format_value) here, so the
 * text always parses, whatever a backend is called.
 *
 * Threads: any. The admin loops and the metrics listener's thread call it concurrently;
 * every reader it calls is safe from any thread.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "admin-api/metrics_int.h"
#include "admin-api/stats_api.h"
#include "cluster/cluster_stats.h"
#include "server/backend.h"
#include "server/frontend.h"
#include "server/inflow.h"
#include "server/stats.h"

size_t admin_prom_escape_label(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        char c = in[i];
        if (c == '\\')
            rep = "\\\\";
        else if (c == '"')
            rep = "\\\"";
        else if (c == '\n')
            rep = "\\n";
        size_t need = rep != NULL ? 2 : 1;
        if (o + need >= cap)
            break;
        if (rep != NULL) {
            out[o++] = rep[0];
            out[o++] = rep[1];
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return o;
}

void admin_prom_format_value(double v, char *buf, size_t cap)
{
    if (isnan(v))
        snprintf(buf, cap, "NaN");
    else if (isinf(v))
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact as an integer */
        snprintf(buf, cap, "%.0f", v);
    else /* the fewest digits that read back as v: 0.046739, not 0.046739000000000003 */
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(buf, cap, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
}

void admin_prom_format_us(uint64_t us, char *buf, size_t cap)
{
    uint64_t frac = us % 1000000;
    int digits = 6;
    if (frac == 0) {
        snprintf(buf, cap, "%llu", (unsigned long long)(us / 1000000));
        return;
    }
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    snprintf(buf, cap, "%llu.%0*llu", (unsigned long long)(us / 1000000), digits, (unsigned long long)frac);
}

typedef struct text {
    char *p;
    size_t len, cap;
} text_t;

static void text_printf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(text_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = 2 * t->cap + (size_t)n + 1;
        t->p = realloc(t->p, t->cap);
        if (t->p == NULL)
            abort();
    }
}

static void prom_head(text_t *t, const char *name, const char *type, const char *help)
{
    text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_u64(text_t *t, const char *name, const char *type, const char *help, uint64_t v)
{
    prom_head(t, name, type, help);
    text_printf(t, "%s %llu\n", name, (unsigned long long)v);
}

static void prom_histogram(text_t *t, const char *label, const uint64_t counts[STATS_LAT_BUCKETS], uint64_t sum_us)
{
    uint64_t cum = 0;
    char le[32];
    for (unsigned i = 0; i < STATS_LAT_BUCKETS - 1; i++) {
        cum += counts[i];
        admin_prom_format_us(stats_lat_bounds_us[i], le, sizeof(le));
        text_printf(t, "edgecache_request_duration_seconds_bucket{cache=\"%s\",le=\"%s\"} %llu\n", label, le,
                    (unsigned long long)cum);
    }
    cum += counts[STATS_LAT_BUCKETS - 1];
    text_printf(t, "edgecache_request_duration_seconds_bucket{cache=\"%s\",le=\"+Inf\"} %llu\n", label, (unsigned long long)cum);
    char v[64];
    admin_prom_format_us(sum_us, v, sizeof(v));
    text_printf(t, "edgecache_request_duration_seconds_sum{cache=\"%s\"} %s\n", label, v);
    text_printf(t, "edgecache_request_duration_seconds_count{cache=\"%s\"} %llu\n", label, (unsigned long long)cum);
}

char *admin_metrics_render(size_t *len)
{
    stats_totals_t s;
    mem_stats_t ms = {0};
    store_stats_t ss = {0};
    text_t t = {.p = malloc(16384), .len = 0, .cap = 16384};
    char v[64];
    if (t.p == NULL)
        abort();
    stats_snapshot(&s);
    if (stats_mem() != NULL)
        mem_get_stats(stats_mem(), &ms);
    if (stats_store() != NULL)
        store_get_stats(stats_store(), &ss);

    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
#define C(field, name, help) {name, help, offsetof(stats_totals_t, field)}
        C(requests, "edgecache_requests_total", "Requests received on the proxy listener."),
        C(hits, "edgecache_hits_total", "Requests answered from the cache."),
        C(miss, "edgecache_misses_total", "Requests fetched from an origin and stored."),
        C(pass, "edgecache_passes_total", "Requests passed to an origin without storing the response."),
        C(errors, "edgecache_errors_total", "Requests that ended in an error (origin unreachable, timed out, invalid)."),
        C(synth, "edgecache_synthetic_responses_total", "Responses generated by edgecache itself."),
        C(synth_5xx, "edgecache_errors_not_origin_total", "5xx responses generated by edgecache, not by an origin."),
        C(uncacheable, "edgecache_uncacheable_total", "GET/HEAD requests whose response could not be cached."),
        C(stale_served, "edgecache_stale_served_total", "Stale objects served (stale-while-revalidate, stale-if-error)."),
        C(revalidations, "edgecache_revalidations_total", "Conditional requests sent to an origin."),
        C(revalidated_304, "edgecache_revalidated_304_total", "Revalidations answered 304 Not Modified."),
        C(collapsed, "edgecache_collapsed_total", "Requests that waited on a fetch already in flight."),
        C(origin_fetches, "edgecache_origin_fetches_total", "Fetches started towards an origin."),
        C(origin_bytes, "edgecache_origin_bytes_total", "Body bytes received from origins."),
        C(bandwidth, "edgecache_bandwidth_bytes_total", "Header and body bytes sent to clients."),
        C(body_size, "edgecache_body_bytes_total", "Body bytes sent to clients."),
        C(header_size, "edgecache_header_bytes_total", "Header bytes sent to clients."),
        C(purge_requests, "edgecache_purge_requests_total", "PURGE requests received on the proxy listener."),
        C(stalled_clients_closed, "edgecache_stalled_clients_closed_total",
          "Connections closed because the client stopped reading."),
#undef C
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        prom_u64(&t, counters[i].name, "counter", counters[i].help, *(const uint64_t *)((const char *)&s + counters[i].off));

    prom_head(&t, "edgecache_responses_total", "counter", "Responses sent to clients, by status class.");
    for (int k = 1; k <= 5; k++)
        text_printf(&t, "edgecache_responses_total{class=\"%dxx\"} %llu\n", k, (unsigned long long)s.status_class[k]);
    prom_head(&t, "edgecache_responses_by_code_total", "counter", "Responses sent to clients, by status code (common codes).");
    for (int k = 0; k < STATS_NUM_CODES; k++)
        text_printf(&t, "edgecache_responses_by_code_total{code=\"%d\"} %llu\n", stats_codes[k],
                    (unsigned long long)s.status_code[k]);

    prom_head(&t, "edgecache_request_duration_seconds", "histogram",
              "Time from a request's arrival at the proxy handler to its last byte handed to the socket, by cache "
              "status (monotonic clock, microsecond resolution; buckets from 1 us to 60 s).");
    prom_histogram(&t, "hit", s.lat_count[STATS_LAT_HIT], s.lat_sum_us[STATS_LAT_HIT]);
    prom_histogram(&t, "miss", s.lat_count[STATS_LAT_MISS], s.lat_sum_us[STATS_LAT_MISS]);
    prom_histogram(&t, "pass", s.lat_count[STATS_LAT_PASS], s.lat_sum_us[STATS_LAT_PASS]);

    prom_head(&t, "edgecache_purges_total", "counter", "Purges acknowledged, by kind.");
    for (int k = 0; k < STATS_PURGE_KINDS; k++)
        text_printf(&t, "edgecache_purges_total{kind=\"%s\"} %llu\n", stats_purge_kind_name((stats_purge_kind_t)k),
                    (unsigned long long)s.purges[k]);
    prom_head(&t, "edgecache_purge_duration_seconds", "summary", "Time from a purge request to its acknowledgement.");
    for (int k = 0; k < STATS_PURGE_KINDS; k++) {
        admin_prom_format_us(s.purge_latency_sum_us[k], v, sizeof(v));
        text_printf(&t, "edgecache_purge_duration_seconds_sum{kind=\"%s\"} %s\n", stats_purge_kind_name((stats_purge_kind_t)k),
                    v);
        text_printf(&t, "edgecache_purge_duration_seconds_count{kind=\"%s\"} %llu\n",
                    stats_purge_kind_name((stats_purge_kind_t)k), (unsigned long long)s.purges[k]);
    }

    prom_u64(&t, "edgecache_memory_objects", "gauge", "Objects in the memory tier.", ms.objects);
    prom_u64(&t, "edgecache_memory_bytes", "gauge", "Bytes of the objects in the memory tier.", ms.bytes);
    prom_u64(&t, "edgecache_memory_budget_bytes", "gauge", "Byte budget of the memory tier.", ms.budget);
    prom_u64(&t, "edgecache_disk_objects", "gauge", "Objects in the disk store.", ss.objects);
    prom_u64(&t, "edgecache_disk_bytes", "gauge", "Bytes in use in the disk store.", ss.bytes_used);
    prom_u64(&t, "edgecache_disk_map_bytes", "gauge", "Size of the disk store's map (--disk-size).", ss.map_size);
    prom_u64(&t, "edgecache_disk_budget_bytes", "gauge",
             "Bytes the disk store may fill: the map, or less when the file system has less room.", ss.budget);
    prom_u64(&t, "edgecache_disk_enospc_total", "counter",
             "Times the file system had no room for the disk store (a budget short of the map, a write refused).", ss.enospc);
    prom_u64(&t, "edgecache_disk_memory_only_objects", "gauge",
             "Objects kept in the memory tier that the disk had no room for.", ss.memory_only);
    prom_u64(&t, "edgecache_disk_put_backlog_bytes", "gauge", "Bytes of the objects queued for the disk store.",
             ss.put_backlog_bytes);
    prom_u64(&t, "edgecache_disk_put_backlog_limit_bytes", "gauge",
             "Bytes of objects that may be queued for the disk store (--disk-put-backlog).", ss.put_backlog_limit);
    prom_u64(&t, "edgecache_disk_puts_refused_total", "counter",
             "Objects not cached because the queue for the disk store was full (a disk behind the origin).",
             ss.puts_refused_backlog);
    prom_u64(&t, "edgecache_request_body_arriving_bytes", "gauge",
             "Bytes of request bodies still arriving, beyond each connection's allowance.", inflow_arriving_bytes());
    prom_u64(&t, "edgecache_request_body_held_bytes", "gauge", "Bytes of request bodies held while origins answer.",
             inflow_held_bytes());
    prom_u64(&t, "edgecache_request_body_budget_bytes", "gauge",
             "Bytes of request bodies that may be in memory, arriving and held (--request-body-memory).", inflow_budget());
    prom_u64(&t, "edgecache_request_body_budget_closed_total", "counter",
             "Client connections closed because their request bodies would pass the budget.", s.body_budget_closed);
    prom_head(&t, "edgecache_evictions_total", "counter", "Objects evicted to stay within budget, by tier.");
    text_printf(&t, "edgecache_evictions_total{tier=\"memory\"} %llu\n", (unsigned long long)ms.evictions);
    text_printf(&t, "edgecache_evictions_total{tier=\"disk\"} %llu\n", (unsigned long long)ss.evictions);
    prom_u64(&t, "edgecache_purge_journal_commits_total", "counter",
             "Purge journal segments written and synced (one per batch of purges).", ss.journal_commits);
    prom_head(&t, "edgecache_purge_journal_write_seconds", "summary",
              "Time the synced purge journal writes took: what the disk adds to a durable purge.");
    admin_prom_format_us(ss.journal_write_us, v, sizeof(v));
    text_printf(&t, "edgecache_purge_journal_write_seconds_sum %s\n", v);
    text_printf(&t, "edgecache_purge_journal_write_seconds_count %llu\n", (unsigned long long)ss.journal_commits);
    prom_head(&t, "edgecache_purge_journal_write_max_seconds", "gauge", "The longest synced purge journal write.");
    admin_prom_format_us(ss.journal_write_max_us, v, sizeof(v));
    text_printf(&t, "edgecache_purge_journal_write_max_seconds %s\n", v);
    prom_u64(&t, "edgecache_purge_journal_direct", "gauge",
             "1 when the purge journal's writes go to the device directly (O_DIRECT), 0 through the page cache.",
             (uint64_t)(ss.journal_direct != 0));
    prom_u64(&t, "edgecache_disk_writemap", "gauge",
             "1 when the disk store's data file is mapped writable (its whole map allocated on disk), 0 read-only.",
             (uint64_t)(ss.writemap != 0));
    prom_u64(&t, "edgecache_disk_checkpoints_total", "counter", "Background syncs of the disk store.", ss.checkpoints);
    prom_u64(&t, "edgecache_disk_syncs_total", "counter", "Syncs of the disk store made on the write path (config, tokens).",
             ss.syncs);
    prom_u64(&t, "edgecache_purges_awaiting_checkpoint", "gauge",
             "Purges durable in the journal whose deletes the disk store has not synced yet.", ss.journal_unsynced);

    backend_stat_t *bs = calloc(ADMIN_MAX_BACKENDS_SHOWN, sizeof(*bs));
    if (bs == NULL)
        abort();
    size_t nb = backend_stats_snapshot(bs, ADMIN_MAX_BACKENDS_SHOWN);
    if (nb > ADMIN_MAX_BACKENDS_SHOWN)
        nb = ADMIN_MAX_BACKENDS_SHOWN;
    static const char *const bnames[] = {"edgecache_backend_requests_total", "edgecache_backend_errors_total",
                                         "edgecache_backend_healthy", "edgecache_backend_probe_latency_seconds"};
    static const char *const btypes[] = {"counter", "counter", "gauge", "gauge"};
    static const char *const bhelp[] = {"Fetches started towards the backend.", "Failed fetches from the backend.",
                                        "1 when the backend takes traffic.",
                                        "Response time of the backend's last health probe."};
    for (int m = 0; m < 4; m++) {
        prom_head(&t, bnames[m], btypes[m], bhelp[m]);
        for (size_t i = 0; i < nb; i++) {
            char name[3 * sizeof(bs[i].name)], addr[3 * sizeof(bs[i].address)];
            admin_prom_escape_label(bs[i].name, strlen(bs[i].name), name, sizeof(name));
            admin_prom_escape_label(bs[i].address, strlen(bs[i].address), addr, sizeof(addr));
            double val = m == 0   ? (double)bs[i].requests
                         : m == 1 ? (double)bs[i].errors
                         : m == 2 ? (double)(bs[i].healthy != 0)
                                  : (double)bs[i].probe_latency_us / 1e6;
            if (m == 3 && bs[i].last_probe_ms == 0)
                continue; /* no probe yet: no sample */
            admin_prom_format_value(val, v, sizeof(v));
            text_printf(&t, "%s{backend=\"%s\",address=\"%s\"} %s\n", bnames[m], name, addr, v);
        }
    }
    free(bs);

    unsigned nw;
    frontend_worker_info_t *wi = frontend_worker_snapshot(&nw);
    static const char *const wnames[] = {"edgecache_worker_accepting", "edgecache_worker_connections_accepted_total",
                                         "edgecache_worker_connections_open", "edgecache_worker_cpu_share"};
    static const char *const wtypes[] = {"gauge", "counter", "gauge", "gauge"};
    static const char *const whelp[] = {"1 when the worker takes new connections (--accept-spread).",
                                        "Connections the worker accepted.", "Connections of the worker not closed yet.",
                                        "Share of a core the worker used over its last window (100 ms or more)."};
    for (int m = 0; m < 4; m++) {
        prom_head(&t, wnames[m], wtypes[m], whelp[m]);
        for (unsigned i = 0; i < nw; i++) {
            double val = m == 0   ? (double)(wi[i].accepting != 0)
                         : m == 1 ? (double)wi[i].accepted
                         : m == 2 ? (double)wi[i].open
                                  : wi[i].cpu_permille / 1000.0;
            admin_prom_format_value(val, v, sizeof(v));
            text_printf(&t, "%s{worker=\"%u\"} %s\n", wnames[m], i, v);
        }
    }
    free(wi);

    {
        char cbuf[4096]; /* the cluster's lines (cluster/cluster_stats.c); none when not a cluster */
        if (cluster_metrics_format(cbuf, sizeof(cbuf)) > 0)
            text_printf(&t, "%s", cbuf);
    }
    int64_t now = (int64_t)time(NULL), start = stats_start_time();
    prom_u64(&t, "edgecache_start_time_seconds", "gauge", "Unix time the process started.", (uint64_t)start);
    prom_u64(&t, "edgecache_uptime_seconds", "gauge", "Seconds since the process started.",
             now > start ? (uint64_t)(now - start) : 0);
    prom_head(&t, "edgecache_build_info", "gauge", "The running version (always 1).");
    text_printf(&t, "edgecache_build_info{version=\"%s\"} 1\n", EDGECACHE_VERSION);

    *len = t.len;
    return t.p;
}

/* ---------------------------------------------------------------- the answer */

void admin_metrics_send(h2o_req_t *req)
{
    size_t len;
    char *text = admin_metrics_render(&len);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT(ADMIN_METRICS_CONTENT_TYPE));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    req->res.content_length = len;
    h2o_send_inline(req, text, len); /* copies into the request's pool */
    free(text);
}

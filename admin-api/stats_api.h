/*
 * admin-api/stats_api.h — the stats endpoints of the admin listener:
 *
 *   GET /stats                          current totals (JSON)
 *   GET /stats?from=&to=&by=&region=    history, Fastly's historical-stats shape (stats_fastly.c,
 *                                       with /stats/service/<sid>, /stats/aggregate, /stats/field/..)
 *   GET /v1/channel/<sid>/ts/...        Fastly's real-time analytics (realtime_api.c)
 *   GET /stats/sla?month=YYYY-MM        SLA figures for a month (default: this month)
 *   GET /metrics                        Prometheus text exposition format 0.0.4
 *
 * All need a `global` or `global:read` token (401 without a valid one, 403 for other
 * scopes). Optionally GET /metrics is also served without a token on its own address
 * (--metrics-listen), by an h2o listener of its own (one thread and event loop, serving its
 * connections concurrently; admin-api/metrics_listener.c).
 */
#ifndef EDGECACHE_STATS_API_H
#define EDGECACHE_STATS_API_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include <jansson.h>
#include "admin-api/admin.h"
#include "admin-api/admin_ext.h"
#include "server/config.h"
#include "server/stats_realtime.h"

/**
 * GET /stats, /stats/sla and /metrics as an admin_ext.h route for the router's table (the
 * router answers 405, 401 and 403; global or global:read). Admin thread.
 */
extern const admin_ext_route_t admin_stats_route;

/**
 * Fastly's historical stats API: GET /stats/service/<sid>[/field/<f>], /stats/aggregate,
 * /stats/field/<f>, /stats/regions, as an admin_ext.h route (global or global:read); GET
 * /stats with from/to/by/region goes to admin_stats_fastly_send too. admin-api/stats_fastly.c.
 */
extern const admin_ext_route_t admin_stats_fastly_route;

typedef enum admin_stats_fastly_kind {
    ADMIN_STATS_ALL,           /* /stats?...: data keyed by service id */
    ADMIN_STATS_SERVICE,       /* /stats/service/<sid>: data an array */
    ADMIN_STATS_AGGREGATE,     /* /stats/aggregate: an array, without service_id */
    ADMIN_STATS_FIELD,         /* /stats/field/<f>: keyed by service id, one field a sample */
    ADMIN_STATS_SERVICE_FIELD, /* /stats/service/<sid>/field/<f> */
    ADMIN_STATS_REGIONS,       /* /stats/regions */
} admin_stats_fastly_kind_t;

/**
 * Answer req with the history in Fastly's shape for `kind` (not ADMIN_STATS_REGIONS), read
 * from req's query (from, to, by, region; 400 naming the parameter when one is wrong);
 * `field` (borrowed) for the field kinds, else NULL. Admin thread.
 */
void admin_stats_fastly_send(admin_t *admin, h2o_req_t *req, admin_stats_fastly_kind_t kind, const char *field);

/**
 * Fastly's real-time analytics API, GET /v1/channel/<sid>/ts/<0|h|h/limit/N|t> (the
 * service id must be --service-id's, else 404), as an admin_ext.h route (global or
 * global:read). admin-api/realtime_api.c. Admin thread.
 */
extern const admin_ext_route_t admin_realtime_route;

/** One second's measurements as Fastly's real-time API names them, plus edgecache's own
 * (new reference). Any thread. */
json_t *admin_realtime_measurements_json(const stats_rt_sample_t *s);

/** The real-time document {"Timestamp", "AggregateDelay", "Data": [...]} for n samples
 * (borrowed), each under "aggregated" and under "datacenter" keyed by this node's name
 * (new reference). Any thread. */
json_t *admin_realtime_json(const stats_rt_sample_t *samples, size_t n, int64_t timestamp);

/* ---- the documents (any thread; new references / malloc'd text) ---- */

/** The current totals as GET /stats returns them (new reference). */
json_t *admin_stats_current_json(int64_t now);

/* The most samples one historical answer holds (3 days of minutes with data, 180 days of
 * hours): a sample is ~900 bytes of JSON and ~9 KB of jansson tree while it is built, so 31
 * days by minute (44,640 samples) took 40 MB of text, 450 MB of memory and most of a second
 * of the admin thread. Counted on the records read, before any JSON is built. Fastly too
 * "will not process exceedingly large queries". */
#define ADMIN_STATS_MAX_BUCKETS 4320

/**
 * The history document for [from, to) grouped by `by` ("minute", "hour" or "day"): a new
 * reference, or NULL with a message in detail when the window is invalid or its data would
 * make more than ADMIN_STATS_MAX_BUCKETS samples.
 */
json_t *admin_stats_history_json(int64_t from, int64_t to, const char *by, char *detail, size_t detail_len);

/** The SLA figures for a UTC month (month 1..12) as of `now` (new reference), or NULL with a
 * message in detail (a month that has not begun). */
json_t *admin_stats_sla_json(int year, int month, int64_t now, char *detail, size_t detail_len);

/** The Prometheus exposition (malloc'd, *len bytes, NUL-terminated). */
char *admin_metrics_render(size_t *len);

/* ---- parsing and formatting helpers (pure; exposed for the unit tests) ---- */

/**
 * Parse a from/to value as Fastly accepts them: "now", "today" and "yesterday" (00:00 UTC),
 * unix seconds, "YYYY-MM-DD" (00:00 UTC), "YYYY-MM-DD HH:MM[:SS]" or with a 'T' (UTC), and
 * "N second(s)|minute(s)|hour(s)|day(s)|week(s)|month(s) ago" where N is digits, "a", "an"
 * or a number word up to "twelve". Returns 0 or -1.
 */
int admin_stats_parse_time(const char *s, int64_t now, int64_t *out);

/* what the part of a real-time path after "/ts/" asks for */
typedef enum admin_rt_ask {
    ADMIN_RT_LAST,  /* "0": the last complete second */
    ADMIN_RT_HOUR,  /* "h" or "h/limit/<N>": the newest `limit` of the seconds kept */
    ADMIN_RT_AFTER, /* "<t>": every second after t (unix seconds), a long poll when none is yet */
} admin_rt_ask_t;

/**
 * Parse the part of GET /v1/channel/<sid>/ts/<rest> after "/ts/" (untrusted, not NUL-
 * terminated): sets *ask, *after (ADMIN_RT_AFTER) and *limit (ADMIN_RT_HOUR: 1..STATS_RT_KEEP,
 * a larger N is the whole ring). Returns 0, or -1 with a 400's detail in *detail (static text).
 */
int admin_realtime_parse_ts(const char *rest, size_t len, admin_rt_ask_t *ask, int64_t *after, size_t *limit,
                            const char **detail);

/** Escape a Prometheus label value (\ " and newline) into out (cap bytes, NUL-terminated,
 * truncated when it does not fit). Returns the length written. */
size_t admin_prom_escape_label(const char *in, size_t len, char *out, size_t cap);

/** Format a sample value: integers exactly, others with the fewest significant digits (6 to
 * 17) that read back as the same double, "+Inf", "-Inf", "NaN". */
void admin_prom_format_value(double v, char *buf, size_t cap);

/** Format microseconds as seconds in exact decimal, without trailing zeros ("0.046739", "60",
 * "0.0015"): what the duration sums and bucket bounds are kept in. */
void admin_prom_format_us(uint64_t us, char *buf, size_t cap);

/* ---- the token-free /metrics listener ---- */

/**
 * When cfg->metrics_listen.host is set, bind it (port 0 picks one) and start the listener
 * thread; prints "edgecache: metrics listener on HOST:PORT" on stderr. Returns 0 (also when
 * not configured) or -1 with a message.
 */
int admin_metrics_listener_start(const config_t *cfg, char *err, size_t errlen);

/** The bound port, 0 when not running. */
uint16_t admin_metrics_listener_port(void);

/** Stop and join the listener thread (no-op when not running). Main thread. */
void admin_metrics_listener_stop(void);

#endif

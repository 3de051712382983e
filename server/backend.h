/*
 * server/backend.h — origin servers: the live set of backends (Fastly's fields), load
 * balancing, health checks, and origin shielding.
 *
 * The set is changed by the admin API (and seeded from --backend on a fresh store); it
 * is persisted in the store's `config` database. A change applies at once without
 * dropping in-flight requests: a fetch holds a reference to the backend it uses.
 */
#ifndef EDGECACHE_BACKEND_H
#define EDGECACHE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include <jansson.h>
#include "server/config.h"
#include "server/origin_client.h"
#include "server/origin_tls.h"
#include "storage/object.h"
#include "storage/store.h"

struct worker;
typedef struct backend backend_t;

typedef struct backend_pick {
    backend_t *backend;                       /* a new reference: backend_release() when the fetch ends */
    h2o_socketpool_t *pool;                   /* this worker's pool for it; valid while the reference is held */
    const origin_client_timeouts_t *timeouts; /* this worker's timeouts for it; same lifetime */
    const char *host_header;                  /* override_host, or NULL to send the client's Host */
    size_t host_header_len;
    origin_tls_t *tls; /* the backend's TLS context, NULL for cleartext; valid while the reference is held */
} backend_pick_t;

/**
 * Load the backends and health checks from the store; on a fresh store seed them from
 * cfg->backends (names "backend1", ...). Borrows cfg and store for the process lifetime.
 * Returns 0 or -1 with a one-line message.
 */
int backend_module_init(const config_t *cfg, store_t *store, char *err, size_t errlen);

/** Start the health-check prober (its own thread and loop). */
int backend_module_start(char *err, size_t errlen);

/** Stop the prober; call after the workers stopped. */
void backend_module_stop(void);

/** Per-worker set-up / tear-down, on the worker's own thread. */
void backend_worker_init(struct worker *w);
void backend_worker_dispose(struct worker *w);

/**
 * Choose a healthy backend for a fetch of `hash` on worker w (weighted round robin by
 * default; consistent hash of `hash` or first-healthy by setting). `exclude` (may be NULL)
 * is skipped (a retry after a failed connect). Returns 0 and fills *out, or -1 when no
 * backend is healthy (the caller serves stale or 503).
 */
int backend_pick(struct worker *w, const uint8_t hash[CACHE_HASH_LEN], const backend_t *exclude, backend_pick_t *out);

/** Account the outcome of a fetch: ok=1 success, ok=0 an error (connect, timeout, 5xx from us). */
void backend_report(backend_t *b, int ok);

/** Drop the reference taken by backend_pick; sets *b to NULL. */
void backend_release(backend_t **b);

/** The backend's name (borrowed, valid while a reference is held). */
const char *backend_name(const backend_t *b);

/* ---------------------------------------------------------------- additions (helper, issue 5) */

/* errors: negative, outside errno's range */
#define BACKEND_EINVAL (-30970) /* a value failed validation; the detail names the field */
#define BACKEND_ENOTFOUND (-30971)
#define BACKEND_EIO (-30972)      /* the store could not persist the change; nothing was applied */
#define BACKEND_EFORWARD (-30973) /* a purge could not be forwarded to the shield (or it refused it) */

#define BACKEND_MAX CONFIG_MAX_BACKENDS
#define BACKEND_POOL_IDLE_MS 2000 /* keep-alive connections to origins idle this long are closed */
#define BACKEND_MAX_HEALTHCHECKS 64
#define BACKEND_NAME_MAX 128
#define BACKEND_HOST_MAX 255
#define BACKEND_PATH_MAX 1024
#define BACKEND_COMMENT_MAX 255
#define BACKEND_WINDOW_MAX 64

typedef enum backend_lb {
    BACKEND_LB_ROUND_ROBIN = CONFIG_LB_ROUND_ROBIN,
    BACKEND_LB_HASH = CONFIG_LB_HASH,
    BACKEND_LB_FIRST = CONFIG_LB_FIRST,
} backend_lb_t;

/* one backend as configured, with Fastly's field names (times in milliseconds) */
typedef struct backend_conf {
    char name[BACKEND_NAME_MAX + 1];
    char address[BACKEND_HOST_MAX + 1];       /* host name or numeric address */
    uint16_t port;                            /* default 80 */
    uint32_t weight;                          /* default 100; 0 = no traffic while another is usable */
    uint32_t connect_timeout;                 /* default 1000 */
    uint32_t first_byte_timeout;              /* default 15000 */
    uint32_t between_bytes_timeout;           /* default 10000 */
    uint32_t max_conn;                        /* default 200: fetches in flight at once (all threads); a backend at
                                           its limit is skipped like an unhealthy one */
    char override_host[BACKEND_HOST_MAX + 1]; /* "" = send the client's Host */
    char healthcheck[BACKEND_NAME_MAX + 1];   /* name of a health check, "" = none (always healthy) */
    char shield[BACKEND_NAME_MAX + 1];        /* non-empty: this backend is a shield node (another edgecache) */
    char comment[BACKEND_COMMENT_MAX + 1];
    origin_tls_conf_t tls; /* use_ssl, ssl_*, min/max_tls_version (server/origin_tls.h) */
} backend_conf_t;

/* one health check as configured (Fastly's field names; times in milliseconds) */
typedef struct backend_healthcheck_conf {
    char name[BACKEND_NAME_MAX + 1];
    char path[BACKEND_PATH_MAX + 1]; /* default "/" */
    char host[BACKEND_HOST_MAX + 1]; /* "" = the backend's override_host, else its address */
    char method[16];                 /* default "HEAD" */
    uint32_t expected_response;      /* default 200 */
    uint32_t check_interval;         /* default 5000 */
    uint32_t timeout;                /* default 500 */
    uint32_t window;                 /* default 5, 1..BACKEND_WINDOW_MAX */
    uint32_t threshold;              /* default 3, 1..window */
    uint32_t initial;                /* default 2, 0..window: successes assumed at start */
    char comment[BACKEND_COMMENT_MAX + 1];
} backend_healthcheck_conf_t;

/* the whole origin configuration: what is persisted (config db, key "backends") and swapped in; it owns
 * the PEM strings of backends[0 .. num_backends - 1] (backend_config_free), the entries past those are
 * unused room (never read, never released) */
typedef struct backend_config {
    backend_lb_t load_balancing;
    int load_balancing_stored; /* set through the API: wins over the config file's value */
    size_t num_backends;
    backend_conf_t backends[BACKEND_MAX];
    size_t num_healthchecks;
    backend_healthcheck_conf_t healthchecks[BACKEND_MAX_HEALTHCHECKS];
} backend_config_t;

/** Fill in Fastly's defaults (name and address empty). *c must own no PEM strings (fresh, or released). */
void backend_conf_defaults(backend_conf_t *c);

/** Make *dst a copy of *src with its own TLS PEM strings. *dst must own none (fresh, or released). */
void backend_conf_copy(backend_conf_t *dst, const backend_conf_t *src);

/** Free the TLS PEM strings *c owns (set to NULL); the rest of *c is left as it is. */
void backend_conf_release(backend_conf_t *c);

/** 1 when a and b are the same configuration (the PEM fields compared by content), else 0. */
int backend_conf_equal(const backend_conf_t *a, const backend_conf_t *b);
void backend_healthcheck_defaults(backend_healthcheck_conf_t *h);

/**
 * Apply the fields of a JSON object (a request body, or a form body turned into one by
 * backend_form_to_json) to *c. Integers may be JSON integers or decimal strings; nullable
 * strings (override_host, healthcheck, shield, comment) accept null or "" for none; shield
 * also accepts true/false. "service_id" and "version" (read-only, as Fastly echoes them) are
 * ignored. All or nothing: on error *c is unchanged and detail says "<field>: why" (unknown
 * field, wrong type, out of range). Does not check references or duplicates
 * (backend_config_validate does). Returns 0 or BACKEND_EINVAL. Borrows obj.
 */
int backend_conf_apply_json(backend_conf_t *c, const json_t *obj, char *detail, size_t detail_len);
int backend_healthcheck_apply_json(backend_healthcheck_conf_t *h, const json_t *obj, char *detail, size_t detail_len);

/**
 * Check a backend object of the config file's "backends" list: Fastly's defaults, then its
 * fields (backend_conf_apply_json), and an address. Copies the address and port out (host
 * cap bytes). Returns 0 or BACKEND_EINVAL with detail naming the field. Borrows obj.
 */
int backend_conf_check_object(const json_t *obj, char *host, size_t cap, uint16_t *port, char *detail, size_t detail_len);

/** A new JSON object with every field (Fastly's shape; "" strings as null; a client key shown as
 * ORIGIN_TLS_KEY_REDACTED). New reference. */
json_t *backend_conf_to_json(const backend_conf_t *c);
json_t *backend_healthcheck_to_json(const backend_healthcheck_conf_t *h);

/**
 * Parse an application/x-www-form-urlencoded body ("a=1&b=x+y", percent escapes) into a new
 * JSON object of strings (*out, new reference). A repeated field, a malformed escape, a NUL or
 * a field without '=' is an error. Returns 0 or BACKEND_EINVAL with detail.
 */
int backend_form_to_json(const char *body, size_t len, json_t **out, char *detail, size_t detail_len);

/** "round_robin" | "hash" | "first" -> *out. Returns 0 or BACKEND_EINVAL. */
int backend_lb_parse(const char *s, backend_lb_t *out);
const char *backend_lb_name(backend_lb_t lb);

/**
 * Check a whole configuration: names unique (backends and health checks separately),
 * every backend's healthcheck names an existing health check, values in range. detail names
 * the field ("backend 'b1': healthcheck: no health check named 'x'"). Returns 0 or BACKEND_EINVAL.
 */
int backend_config_validate(const backend_config_t *c, char *detail, size_t detail_len);

/** A new copy of the live configuration (the caller owns it: backend_config_free), or NULL before init. Any thread. */
backend_config_t *backend_config_get(void);

/** Free a configuration and the PEM strings of its entries in use (c may be NULL). */
void backend_config_free(backend_config_t *c);

/**
 * Make `next` the live configuration: validate it, resolve every address, persist it
 * (synchronously, in the store's config db), then swap it in for every worker. In-flight
 * fetches keep the backend they hold; backends whose address and health check did not change
 * keep their health state, counters and pooled connections. All or nothing: on any error
 * nothing changes. Borrows next. Returns 0, BACKEND_EINVAL (detail names the field: an
 * address that does not resolve is "address: ..."), or BACKEND_EIO. Serialised internally;
 * call from the admin thread (it blocks on name resolution and the sync).
 */
int backend_config_commit(const backend_config_t *next, char *detail, size_t detail_len);

/* per-backend figures for /stats */
typedef struct backend_stat {
    char name[BACKEND_NAME_MAX + 1];
    char address[BACKEND_HOST_MAX + 16]; /* "host:port" */
    uint64_t requests;                   /* fetches started (picks) */
    uint64_t errors;                     /* backend_report(b, 0) */
    uint64_t inflight;                   /* fetches in flight now (bounded by max_conn) */
    int healthy;                         /* 1 when it takes traffic */
    int has_healthcheck;
    int shield;                /* 1 for a shield backend */
    int64_t last_probe_ms;     /* wall clock (unix ms) of the last finished probe, 0 = none yet */
    uint64_t probe_latency_us; /* response time of that probe (0 when it failed before an answer) */
    uint64_t probes, probe_failures;
} backend_stat_t;

/**
 * Copy up to max entries (in configuration order) into out. Returns the number of backends
 * (which may exceed max: call again with a larger array). Any thread (a short lock, never
 * held while anything blocks).
 */
size_t backend_stats_snapshot(backend_stat_t *out, size_t max);

/**
 * Forward a purge received by the admin API to the shield's admin API (--shield-admin, with
 * --shield-token as Fastly-Key; over TLS with --shield-admin-tls, its certificate verified): a POST of `path` (as received, query included, e.g.
 * "/service/<sid>/purge/<key>"; for a PURGE on the proxy listener, "/purge/<host><path>"),
 * with the Surrogate-Key header value and body when given (both may be NULL / 0; the body is
 * sent as application/json) and Fastly-Soft-Purge: 1 when soft. Everything is copied.
 * Returns 1 when no shield admin is configured (nothing to do; cb is never called), 0 when
 * the forward started: cb then runs exactly once, on the prober thread (it must not block;
 * post to your loop, as with store_purge_cb), with res->err 0 when the shield answered 2xx,
 * else BACKEND_EFORWARD. Returns BACKEND_EINVAL (cb not called) for bytes that cannot be sent
 * in a request head (control characters, spaces in the path). Any thread.
 */
int backend_forward_purge(const char *path, size_t path_len, const char *surrogate_key, size_t surrogate_key_len,
                          const char *body, size_t body_len, int soft, store_purge_cb cb, void *arg);

#endif

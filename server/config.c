/*
 * server/config.c — settings from the command line and the JSON config file: the option
 * table, defaults and help, the validators, and the command line (the file itself is read by
 * server/config_file.c).
 *
 * What it owns: nothing beyond the caller's config_t. It runs once, on the main thread,
 * before any worker exists; nothing here is thread-safe and nothing needs to be.
 *
 * Precedence is defaults < file < flags: config_parse_args first walks argv only to find
 * --config (and --help), loads that file into cfg, then applies every flag in order, so a
 * flag wins wherever it stands. The first --backend flag replaces the file's backend list,
 * later ones append.
 *
 * Every value, from a flag or from the file, goes through the same validators, and every
 * error is a single line that names the flag or key and quotes the bad value. On error cfg
 * may be partly updated; the caller exits (status 2) without using it.
 */
#include "common/errbuf.h"
#include "server/config_int.h"
#include "server/header_rules.h"
#include "server/origin_tls.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_THREADS_MAX 256
#define CONFIG_ADMIN_THREADS_MAX 64 /* = ADMIN_MAX_THREADS */
#define CONFIG_TTL_MAX 2147483647u  /* 2^31 - 1 */
#define CONFIG_SIZE_MIN ((uint64_t)1 << 20)
#define CONFIG_DISK_MAX ((uint64_t)1 << 40)
#define CONFIG_BODY_MAX ((uint64_t)1 << 30) /* h2o's own default limit: a body is held in memory whole */

const opt_def_t config_opt_defs[] = {
    {OPT_LISTEN, "--listen", "listen", "HOST:PORT", "address of the proxy listener"},
    {OPT_ADMIN_LISTEN, "--admin-listen", "admin_listen", "HOST:PORT", "address of the admin API listener"},
    {OPT_BACKEND, "--backend", "backends", "HOST:PORT", "origin server; repeatable, at most 64; replaces the file's list"},
    {OPT_DATA_DIR, "--data-dir", "data_dir", "DIR", "directory of the LMDB store"},
    {OPT_MEMORY_SIZE, "--memory-size", "memory_size", "SIZE", "memory tier budget, e.g. 256M (K/M/G/T, min 1M)"},
    {OPT_DISK_SIZE, "--disk-size", "disk_size", "SIZE", "disk store budget (LMDB map size), 1M to 1T"},
    {OPT_DISK_RESERVE, "--disk-reserve", "disk_reserve", "MODE",
     "preallocate (reserve the data file's room) or free-space (the budget follows the free space)"},
    {OPT_DEFAULT_TTL, "--default-ttl", "default_ttl", "SECONDS", "TTL when a response gives no freshness"},
    {OPT_THREADS, "--threads", "threads", "N", "worker threads, 1-256"},
    {OPT_ADMIN_THREADS, "--admin-threads", "admin_threads", "N", "admin API threads, 1-64"},
    {OPT_CONFIG, "--config", NULL, "FILE", "JSON config file; flags override its values"},
    {OPT_SERVICE_ID, "--service-id", "service_id", "ID", "service id of the Fastly-compatible purge API"},
    {OPT_DEFAULT_GRACE, "--default-grace", "default_grace", "SECONDS",
     "serve stale this long on origin errors, absent stale-if-error"},
    {OPT_MAX_HEURISTIC_TTL, "--max-heuristic-ttl", "max_heuristic_ttl", "SECONDS", "cap of the Last-Modified heuristic TTL"},
    {OPT_NEGATIVE_TTL, "--negative-ttl", "negative_ttl", "SECONDS", "TTL of a 4xx/5xx that gives no freshness (0: not stored)"},
    {OPT_ORIGIN_TIMEOUT, "--origin-timeout", "origin_timeout", "MS", "timeouts of the backends --backend seeds (fresh store)"},
    {OPT_SHUTDOWN_TIMEOUT, "--shutdown-timeout", "shutdown_timeout", "MS", "how long to drain connections on SIGTERM"},
    {OPT_MAX_REQUEST_BODY, "--max-request-body", "max_request_body", "SIZE",
     "largest request body accepted (413 above), 0 to 1G"},
    {OPT_REQUEST_BODY_MEMORY, "--request-body-memory", "request_body_memory", "SIZE",
     "request bodies held at once, all requests together (503 above)"},
    {OPT_LOAD_BALANCING, "--load-balancing", "load_balancing", "MODE",
     "round_robin (weighted), hash (of the cache key) or first (first healthy backend)"},
    {OPT_SHIELD, "--shield", "shield", "HOST:PORT", "fetch misses through this edgecache node (origin shield)"},
    {OPT_SHIELD_ADMIN, "--shield-admin", "shield_admin", "HOST:PORT", "the shield's admin API: purges are forwarded there"},
    {OPT_SHIELD_TOKEN, "--shield-token", "shield_token", "TOKEN", "token for the shield's admin API (purge scope)"},
    {OPT_SHIELD_TLS, "--shield-tls", "shield_tls", "CA.pem|system",
     "reach the shield over TLS, its certificate verified with this CA file or the system's trust store"},
    {OPT_SHIELD_ADMIN_TLS, "--shield-admin-tls", "shield_admin_tls", "CA.pem|system",
     "forward purges to --shield-admin over TLS, its certificate verified as --shield-tls's"},
    {OPT_ACCESS_LOG, "--access-log", "access_log", "FILE", "access log file (\"-\" = standard output); SIGHUP reopens it"},
    {OPT_STATS_SAMPLE_INTERVAL, "--stats-sample-interval", "stats_sample_interval", "SECONDS",
     "period of the SLA bandwidth samples, 1-86400"},
    {OPT_STATS_RETENTION_DAYS, "--stats-retention-days", "stats_retention_days", "DAYS",
     "how long the stats history is kept, 1-3660"},
    {OPT_STATS_MINUTE_SECONDS, "--stats-minute-seconds", "stats_minute_seconds", "SECONDS",
     "length of one history \"minute\", 1-60 (for tests)"},
    {OPT_SLA_DEGRADED_PERCENT, "--sla-degraded-percent", "sla_degraded_percent", "PERCENT",
     "a minute with more than this share of our own 5xx is degraded, 0-100"},
    {OPT_METRICS_LISTEN, "--metrics-listen", "metrics_public_listen", "HOST:PORT",
     "also serve GET /metrics here, without a token"},
    {OPT_TLS_LISTEN, "--tls-listen", "tls_listen", "HOST:PORT", "HTTPS listener (h2 and http/1.1 by ALPN); repeatable"},
    {OPT_TLS_CERT, "--tls-cert", "tls_certs", "HOST=CERT,KEY",
     "PEM certificate (chain after it) and key for SNI name HOST, *.NAME or default; repeatable"},
    {OPT_ADMIN_TLS_LISTEN, "--admin-tls-listen", "admin_tls_listen", "HOST:PORT", "admin API over HTTPS"},
    {OPT_ADMIN_TLS_CERT, "--admin-tls-cert", "admin_tls_cert", "CERT,KEY", "certificate and key of --admin-tls-listen"},
    {OPT_CLUSTER, "--cluster", "cluster", "nats://HOST:PORT[,...]",
     "join a cache network: every purge goes through this NATS JetStream cluster to every node"},
    {OPT_NODE_NAME, "--node-name", "node_name", "NAME", "this node's name in the cluster: 1-32 of [A-Za-z0-9_]"},
    {OPT_CLUSTER_RETENTION, "--cluster-retention", "cluster_retention", "DURATION",
     "how long the purge stream keeps a purge (a node down longer purges all): e.g. 7d, 12h, 3600s"},
    {OPT_CLUSTER_ON_UNAVAILABLE, "--cluster-on-unavailable", "cluster_on_unavailable", "reject|local",
     "when the stream cannot store a purge: answer 503, or apply it here and queue its publish"},
    {OPT_CLUSTER_CREDS, "--cluster-creds", "cluster_creds", "FILE", "NATS credentials file (.creds: user JWT and NKey seed)"},
    {OPT_CLUSTER_NKEY, "--cluster-nkey", "cluster_nkey", "FILE", "NATS user NKey seed file (nkey authentication)"},
    {OPT_CLUSTER_TLS_CA, "--cluster-tls-ca", "cluster_tls_ca", "CA.pem",
     "talk to NATS over TLS, its servers' certificates verified with this CA"},
    {OPT_CLUSTER_TLS_CERT, "--cluster-tls-cert", "cluster_tls_cert", "CERT,KEY",
     "client certificate and key for NATS (TLS client authentication)"},
    {OPT_CLUSTER_TLS_HOSTNAME, "--cluster-tls-hostname", "cluster_tls_hostname", "NAME",
     "the name NATS servers' certificates must carry"},
    {OPT_HELP, "--help", NULL, NULL, "print this help and exit"},
};
#define NUM_OPTS (sizeof(config_opt_defs) / sizeof(config_opt_defs[0]))
const size_t config_num_opts = NUM_OPTS;

/* bounded copy; 0 or -1 if it does not fit */
static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* ---------------------------------------------------------------- value parsers */

/* decimal digits only (no sign, no spaces), at most max */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0, mult = 1;
    const char *p = s;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    switch (*p) {
    case 'k':
    case 'K':
        mult = (uint64_t)1 << 10;
        p++;
        break;
    case 'm':
    case 'M':
        mult = (uint64_t)1 << 20;
        p++;
        break;
    case 'g':
    case 'G':
        mult = (uint64_t)1 << 30;
        p++;
        break;
    case 't':
    case 'T':
        mult = (uint64_t)1 << 40;
        p++;
        break;
    default: break;
    }
    if (*p == 'b' || *p == 'B') /* "256MB", "4096B" */
        p++;
    if (*p != '\0')
        return -1;
    if (v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int host_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '/' && c != '[' && c != ']' && c != '@' && c != ',';
}

int config_parse_addr(const char *s, config_addr_t *out)
{
    const char *host, *host_end, *colon;
    uint64_t port;

    if (s == NULL)
        return -1;
    if (s[0] == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL || host_end[1] != ':')
            return -1;
        colon = host_end + 1;
        for (const char *p = host; p < host_end; p++)
            if (!(host_char_ok((unsigned char)*p) || *p == ':'))
                return -1;
    } else {
        host = s;
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        host_end = colon;
        for (const char *p = host; p < host_end; p++)
            if (!host_char_ok((unsigned char)*p) || *p == ':') /* bare IPv6 needs brackets */
                return -1;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0 || host_len >= sizeof(out->host))
        return -1;
    if (strlen(colon + 1) > 5 || parse_uint(colon + 1, 65535, &port) != 0)
        return -1;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (uint16_t)port;
    return 0;
}

/* ---------------------------------------------------------------- defaults, help */

void config_defaults(config_t *cfg)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->listen.host, "127.0.0.1");
    cfg->listen.port = 8080;
    strcpy(cfg->admin_listen.host, "127.0.0.1");
    cfg->admin_listen.port = 8081;
    cfg->num_backends = 0;
    strcpy(cfg->data_dir, "./edgecache-data");
    cfg->memory_size = (uint64_t)256 << 20;
    cfg->disk_size = (uint64_t)1 << 30;
    cfg->disk_reserve = CONFIG_DISK_PREALLOCATE;
    cfg->default_ttl = 120;
    cfg->threads = cores < 1 ? 1 : cores > CONFIG_THREADS_MAX ? CONFIG_THREADS_MAX : (unsigned)cores;
    /* one loop answered ~70k purges/s with the client on the same 2 cores (all made durable by the one journal
     * thread behind it); two busy loops stacked on one core wait up to a scheduler tick (4 ms) for each other
     * (bench/purge's p99: 3-4 ms with two, 1.1 ms with one), and every extra loop competes with the workers */
    cfg->admin_threads = 1;
    cfg->config_file[0] = '\0';
    strcpy(cfg->service_id, "edgecache");
    cfg->max_heuristic_ttl = 86400;
    cfg->default_grace = 0;
    cfg->negative_ttl = 0;
    cfg->origin_timeout_ms = 15000;
    cfg->shutdown_timeout_ms = 5000;
    cfg->max_request_body = (uint64_t)8 << 20;
    cfg->request_body_memory = (uint64_t)256 << 20;
    cfg->cache_key_include_host = 1;
    cfg->stats_sample_interval = 300;
    cfg->stats_retention_days = 31;
    cfg->stats_minute_seconds = 60;
    cfg->sla_degraded_ppm = 50000;
    cfg->cluster_retention_s = 7 * 86400;
}

/* the default of one option as --help shows it */
static void format_default(const config_t *d, opt_id_t id, char *buf, size_t cap)
{
    buf[0] = '\0';
    switch (id) {
    case OPT_LISTEN: snprintf(buf, cap, "%.100s:%u", d->listen.host, d->listen.port); break;
    case OPT_ADMIN_LISTEN: snprintf(buf, cap, "%.100s:%u", d->admin_listen.host, d->admin_listen.port); break;
    case OPT_BACKEND: snprintf(buf, cap, "none"); break;
    case OPT_DATA_DIR: snprintf(buf, cap, "%.100s", d->data_dir); break;
    case OPT_MEMORY_SIZE: snprintf(buf, cap, "256M"); break;
    case OPT_DISK_SIZE: snprintf(buf, cap, "1G"); break;
    case OPT_DISK_RESERVE: snprintf(buf, cap, "preallocate"); break;
    case OPT_DEFAULT_TTL: snprintf(buf, cap, "%u", d->default_ttl); break;
    case OPT_THREADS: snprintf(buf, cap, "number of online cores, %u here", d->threads); break;
    case OPT_ADMIN_THREADS: snprintf(buf, cap, "%u", d->admin_threads); break;
    case OPT_CONFIG: snprintf(buf, cap, "none"); break;
    case OPT_SERVICE_ID: snprintf(buf, cap, "%.100s", d->service_id); break;
    case OPT_DEFAULT_GRACE: snprintf(buf, cap, "%u", d->default_grace); break;
    case OPT_MAX_HEURISTIC_TTL: snprintf(buf, cap, "%u", d->max_heuristic_ttl); break;
    case OPT_NEGATIVE_TTL: snprintf(buf, cap, "%u", d->negative_ttl); break;
    case OPT_ORIGIN_TIMEOUT: snprintf(buf, cap, "%u", d->origin_timeout_ms); break;
    case OPT_SHUTDOWN_TIMEOUT: snprintf(buf, cap, "%u", d->shutdown_timeout_ms); break;
    case OPT_MAX_REQUEST_BODY: snprintf(buf, cap, "8M"); break;
    case OPT_REQUEST_BODY_MEMORY: snprintf(buf, cap, "256M"); break;
    case OPT_LOAD_BALANCING: snprintf(buf, cap, "round_robin"); break;
    case OPT_SHIELD:
    case OPT_SHIELD_ADMIN:
    case OPT_SHIELD_TOKEN:
    case OPT_SHIELD_TLS:
    case OPT_SHIELD_ADMIN_TLS: snprintf(buf, cap, "none"); break;
    case OPT_ACCESS_LOG: snprintf(buf, cap, "off"); break;
    case OPT_STATS_SAMPLE_INTERVAL: snprintf(buf, cap, "%u", d->stats_sample_interval); break;
    case OPT_STATS_RETENTION_DAYS: snprintf(buf, cap, "%u", d->stats_retention_days); break;
    case OPT_STATS_MINUTE_SECONDS: snprintf(buf, cap, "%u", d->stats_minute_seconds); break;
    case OPT_SLA_DEGRADED_PERCENT: snprintf(buf, cap, "%u", d->sla_degraded_ppm / 10000); break;
    case OPT_METRICS_LISTEN: snprintf(buf, cap, "off"); break;
    case OPT_TLS_LISTEN:
    case OPT_ADMIN_TLS_LISTEN:
    case OPT_TLS_CERT:
    case OPT_ADMIN_TLS_CERT: snprintf(buf, cap, "none"); break;
    case OPT_CLUSTER: snprintf(buf, cap, "none: a single node"); break;
    case OPT_NODE_NAME: snprintf(buf, cap, "none"); break;
    case OPT_CLUSTER_RETENTION: snprintf(buf, cap, "7d"); break;
    case OPT_CLUSTER_ON_UNAVAILABLE: snprintf(buf, cap, "reject"); break;
    case OPT_CLUSTER_CREDS:
    case OPT_CLUSTER_NKEY:
    case OPT_CLUSTER_TLS_CERT: snprintf(buf, cap, "none"); break;
    case OPT_CLUSTER_TLS_CA: snprintf(buf, cap, "none: plain TCP"); break;
    case OPT_CLUSTER_TLS_HOSTNAME: snprintf(buf, cap, "each server's host in --cluster"); break;
    case OPT_HELP: break;
    }
}

void config_print_help(void *stream)
{
    FILE *f = stream != NULL ? (FILE *)stream : stdout;
    config_t d;
    char def[128], left[64];

    config_defaults(&d);
    fputs("Usage:\n"
          "  edgecache [OPTIONS]\n"
          "  edgecache migrate --status --data-dir DIR\n"
          "  edgecache token create|list|revoke ...   (manage admin API tokens)\n"
          "  edgecache check [--quick] --data-dir DIR (verify the store: exit 0 sound, 2 damaged)\n"
          "\n"
          "A persistent, disk-backed HTTP caching reverse proxy. Options take `--name VALUE` or\n"
          "`--name=VALUE`; they override the values of --config FILE, which override the defaults.\n"
          "\n"
          "Options:\n",
          f);
    for (size_t k = 0; k < NUM_OPTS; k++) {
        const opt_def_t *o = &config_opt_defs[k];
        snprintf(left, sizeof(left), "%s%s%s%s", o->id == OPT_HELP ? "-h, " : "", o->flag, o->arg != NULL ? " " : "",
                 o->arg != NULL ? o->arg : "");
        format_default(&d, o->id, def, sizeof(def));
        if (def[0] != '\0')
            fprintf(f, "  %-32s %s (default: %s)\n", left, o->help, def);
        else
            fprintf(f, "  %-32s %s\n", left, o->help);
    }
    fputs("\nConfig file keys (JSON object): listen, admin_listen, backends (array of \"HOST:PORT\"),\n"
          "data_dir, memory_size (bytes or \"256M\"), disk_size, disk_reserve, default_ttl, threads,\n"
          "service_id, max_heuristic_ttl, default_grace, negative_ttl, origin_timeout, shutdown_timeout,\n"
          "max_request_body, request_body_memory, load_balancing, shield, shield_admin, shield_token,\n"
          "shield_tls, shield_admin_tls, access_log, stats_sample_interval, stats_retention_days,\n"
          "stats_minute_seconds, sla_degraded_percent, metrics_public_listen, tls_listen (a string or an\n"
          "array), tls_certs (array of \"HOST=CERT,KEY\" or {\"host\",\"cert\",\"key\"}), admin_tls_listen,\n"
          "admin_tls_cert.\n",
          f);
}

/* ---------------------------------------------------------------- applying one value */

/*
 * --shield-tls / --shield-admin-tls CA.pem|system: *on set and *ca the PEM (malloc'd; NULL for the
 * system's trust store). The CA is read and checked now: a bad file is a start-up error, not a
 * shield that never verifies. 0, or -1 with one line naming `who`.
 */
static int shield_tls_value(const char *who, const char *val, int *on, char **ca, char *err, size_t errlen)
{
    origin_tls_conf_t *tls = calloc(1, sizeof(*tls));
    char detail[300], *text = calloc(1, ORIGIN_TLS_PEM_MAX + 1);
    FILE *f = strcmp(val, "system") != 0 ? fopen(val, "r") : NULL;
    size_t got = 0;
    int rc = -1;
    if (tls == NULL || text == NULL)
        abort();
    origin_tls_conf_defaults(tls);
    tls->use_ssl = 1;
    if (strcmp(val, "system") == 0) {
        rc = 0;
    } else if (f == NULL) {
        errbuf_printf(err, errlen, "%s: cannot read '%.200s': %s", who, val, strerror(errno));
    } else if ((got = fread(text, 1, ORIGIN_TLS_PEM_MAX + 1, f)) == ORIGIN_TLS_PEM_MAX + 1 || got == 0 || ferror(f) ||
               memchr(text, '\0', got) != NULL) {
        errbuf_printf(err, errlen, "%s: '%.200s' is not a PEM file of at most %d bytes", who, val, ORIGIN_TLS_PEM_MAX);
    } else {
        origin_tls_conf_set_pem(&tls->ssl_ca_cert, text, got);
        if (origin_tls_conf_check(tls, detail, sizeof(detail)) != 0)
            errbuf_printf(err, errlen, "%s: '%.200s': %s", who, val,
                          detail + (strncmp(detail, "ssl_ca_cert: ", 13) == 0 ? 13 : 0));
        else
            rc = 0;
    }
    if (f != NULL)
        fclose(f);
    if (rc == 0) {
        free(*ca);
        *ca = tls->ssl_ca_cert; /* NULL for "system" */
        tls->ssl_ca_cert = NULL;
        *on = 1;
    }
    origin_tls_conf_release(tls);
    free(tls);
    free(text);
    return rc;
}

/*
 * Apply one textual value for option `o`. `who` names it in messages ("--threads" or
 * "edgecache.json: key 'threads'"). For --backend, the caller has decided whether the
 * list was reset.
 */
int config_apply_value(config_t *cfg, const opt_def_t *o, const char *who, const char *val, char *err, size_t errlen)
{
    uint64_t n;
    config_addr_t addr;

    switch (o->id) {
    case OPT_LISTEN:
    case OPT_ADMIN_LISTEN:
        if (config_parse_addr(val, &addr) != 0) {
            errbuf_printf(err, errlen, "%s: invalid address '%s' (expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080)", who,
                          val);
            return -1;
        }
        *(o->id == OPT_LISTEN ? &cfg->listen : &cfg->admin_listen) = addr;
        return 0;
    case OPT_BACKEND:
        if (config_parse_addr(val, &addr) != 0 || addr.port == 0) {
            errbuf_printf(err, errlen, "%s: invalid address '%s' (expected HOST:PORT with a port 1-65535)", who, val);
            return -1;
        }
        if (cfg->num_backends >= CONFIG_MAX_BACKENDS) {
            errbuf_printf(err, errlen, "%s: too many backends (at most %d)", who, CONFIG_MAX_BACKENDS);
            return -1;
        }
        cfg->backends[cfg->num_backends++] = addr;
        return 0;
    case OPT_DATA_DIR:
        if (val[0] == '\0' || copy_str(cfg->data_dir, sizeof(cfg->data_dir), val) != 0) {
            errbuf_printf(err, errlen, "%s: invalid directory '%.64s%s' (expected a path of 1-%zu bytes)", who, val,
                          strlen(val) > 64 ? "..." : "", sizeof(cfg->data_dir) - 1);
            return -1;
        }
        return 0;
    case OPT_MEMORY_SIZE:
    case OPT_DISK_SIZE:
        if (config_parse_size(val, &n) != 0) {
            errbuf_printf(err, errlen, "%s: invalid size '%s' (use e.g. %s)", who, val,
                          o->id == OPT_MEMORY_SIZE ? "256M" : "1G");
            return -1;
        }
        if (n < CONFIG_SIZE_MIN) {
            errbuf_printf(err, errlen, "%s: invalid size '%s' (must be at least 1M)", who, val);
            return -1;
        }
        if (o->id == OPT_DISK_SIZE && n > CONFIG_DISK_MAX) {
            errbuf_printf(err, errlen, "%s: invalid size '%s' (must be between 1M and 1T)", who, val);
            return -1;
        }
        *(o->id == OPT_MEMORY_SIZE ? &cfg->memory_size : &cfg->disk_size) = n;
        return 0;
    case OPT_MAX_REQUEST_BODY:
    case OPT_REQUEST_BODY_MEMORY: {
        uint64_t max = o->id == OPT_MAX_REQUEST_BODY ? CONFIG_BODY_MAX : CONFIG_DISK_MAX;
        if (config_parse_size(val, &n) != 0 || n > max) {
            errbuf_printf(err, errlen, "%s: invalid size '%s' (expected 0 to %s, e.g. %s)", who, val,
                          o->id == OPT_MAX_REQUEST_BODY ? "1G" : "1T", o->id == OPT_MAX_REQUEST_BODY ? "8M" : "256M");
            return -1;
        }
        *(o->id == OPT_MAX_REQUEST_BODY ? &cfg->max_request_body : &cfg->request_body_memory) = n;
        return 0;
    }
    case OPT_THREADS:
    case OPT_ADMIN_THREADS: {
        unsigned max = o->id == OPT_THREADS ? CONFIG_THREADS_MAX : CONFIG_ADMIN_THREADS_MAX;
        if (parse_uint(val, max, &n) != 0 || n < 1) {
            errbuf_printf(err, errlen, "%s: invalid value '%s' (expected an integer 1-%u)", who, val, max);
            return -1;
        }
        *(o->id == OPT_THREADS ? &cfg->threads : &cfg->admin_threads) = (unsigned)n;
        return 0;
    }
    case OPT_DEFAULT_TTL:
    case OPT_DEFAULT_GRACE:
    case OPT_MAX_HEURISTIC_TTL:
    case OPT_NEGATIVE_TTL:
        if (parse_uint(val, CONFIG_TTL_MAX, &n) != 0) {
            errbuf_printf(err, errlen, "%s: invalid value '%s' (expected seconds 0-%u)", who, val, CONFIG_TTL_MAX);
            return -1;
        }
        *(o->id == OPT_DEFAULT_TTL         ? &cfg->default_ttl
          : o->id == OPT_DEFAULT_GRACE     ? &cfg->default_grace
          : o->id == OPT_MAX_HEURISTIC_TTL ? &cfg->max_heuristic_ttl
                                           : &cfg->negative_ttl) = (uint32_t)n;
        return 0;
    case OPT_ORIGIN_TIMEOUT:
        if (parse_uint(val, CONFIG_TTL_MAX, &n) != 0 || n < 1) {
            errbuf_printf(err, errlen, "%s: invalid value '%s' (expected milliseconds 1-%u)", who, val, CONFIG_TTL_MAX);
            return -1;
        }
        cfg->origin_timeout_ms = (uint32_t)n;
        return 0;
    case OPT_SHUTDOWN_TIMEOUT:
        if (parse_uint(val, CONFIG_TTL_MAX, &n) != 0) {
            errbuf_printf(err, errlen, "%s: invalid value '%s' (expected milliseconds 0-%u)", who, val, CONFIG_TTL_MAX);
            return -1;
        }
        cfg->shutdown_timeout_ms = (uint32_t)n;
        return 0;
    case OPT_SERVICE_ID: {
        size_t len = strlen(val);
        int ok = len > 0 && len < sizeof(cfg->service_id);
        for (size_t i = 0; ok && i < len; i++)
            ok = val[i] > 0x20 && val[i] < 0x7f && val[i] != '/' && val[i] != '?' && val[i] != '#';
        if (!ok) {
            errbuf_printf(err, errlen, "%s: invalid service id '%.64s' (expected 1-%zu printable characters, no '/')", who,
                          val, sizeof(cfg->service_id) - 1);
            return -1;
        }
        memcpy(cfg->service_id, val, len + 1);
        return 0;
    }
    case OPT_DISK_RESERVE:
        if (strcmp(val, "preallocate") == 0) {
            cfg->disk_reserve = CONFIG_DISK_PREALLOCATE;
        } else if (strcmp(val, "free-space") == 0) {
            cfg->disk_reserve = CONFIG_DISK_FREE_SPACE;
        } else {
            errbuf_printf(err, errlen, "%s: invalid mode '%.64s' (expected preallocate or free-space)", who, val);
            return -1;
        }
        return 0;
    case OPT_LOAD_BALANCING:
        if (strcmp(val, "round_robin") == 0) {
            cfg->load_balancing = CONFIG_LB_ROUND_ROBIN;
        } else if (strcmp(val, "hash") == 0) {
            cfg->load_balancing = CONFIG_LB_HASH;
        } else if (strcmp(val, "first") == 0) {
            cfg->load_balancing = CONFIG_LB_FIRST;
        } else {
            errbuf_printf(err, errlen, "%s: invalid mode '%.64s' (expected round_robin, hash or first)", who, val);
            return -1;
        }
        return 0;
    case OPT_SHIELD:
    case OPT_SHIELD_ADMIN:
        if (config_parse_addr(val, &addr) != 0 || addr.port == 0) {
            errbuf_printf(err, errlen, "%s: invalid address '%s' (expected HOST:PORT with a port 1-65535)", who, val);
            return -1;
        }
        *(o->id == OPT_SHIELD ? &cfg->shield : &cfg->shield_admin) = addr;
        return 0;
    case OPT_SHIELD_TOKEN: {
        size_t len = strlen(val);
        int ok = len > 0 && len < sizeof(cfg->shield_token);
        for (size_t i = 0; ok && i < len; i++)
            ok = val[i] > 0x20 && val[i] < 0x7f;
        if (!ok) {
            errbuf_printf(err, errlen, "%s: invalid token (expected 1-%zu printable characters without spaces)", who,
                          sizeof(cfg->shield_token) - 1);
            return -1;
        }
        memcpy(cfg->shield_token, val, len + 1);
        return 0;
    }
    case OPT_SHIELD_TLS: return shield_tls_value(who, val, &cfg->shield_tls, &cfg->shield_tls_ca, err, errlen);
    case OPT_SHIELD_ADMIN_TLS:
        return shield_tls_value(who, val, &cfg->shield_admin_tls, &cfg->shield_admin_tls_ca, err, errlen);
    case OPT_ACCESS_LOG:
        if (val[0] == '\0' || copy_str(cfg->access_log, sizeof(cfg->access_log), val) != 0) {
            errbuf_printf(err, errlen, "%s: invalid path '%.64s%s' (expected a path of 1-%zu bytes, or \"-\")", who, val,
                          strlen(val) > 64 ? "..." : "", sizeof(cfg->access_log) - 1);
            return -1;
        }
        return 0;
    case OPT_STATS_SAMPLE_INTERVAL:
    case OPT_STATS_RETENTION_DAYS:
    case OPT_STATS_MINUTE_SECONDS: {
        uint64_t max = o->id == OPT_STATS_SAMPLE_INTERVAL ? 86400 : o->id == OPT_STATS_RETENTION_DAYS ? 3660 : 60;
        if (parse_uint(val, max, &n) != 0 || n < 1) {
            errbuf_printf(err, errlen, "%s: invalid value '%s' (expected an integer 1-%u)", who, val, (unsigned)max);
            return -1;
        }
        *(o->id == OPT_STATS_SAMPLE_INTERVAL  ? &cfg->stats_sample_interval
          : o->id == OPT_STATS_RETENTION_DAYS ? &cfg->stats_retention_days
                                              : &cfg->stats_minute_seconds) = (uint32_t)n;
        return 0;
    }
    case OPT_SLA_DEGRADED_PERCENT: {
        /* "5", "0.5", "12.25": a percentage with at most four decimals, 0-100, kept in ppm */
        uint64_t whole = 0, frac = 0, scale = 10000;
        const char *p = val;
        int digits = 0, ok = 1;
        for (; *p >= '0' && *p <= '9' && whole <= 100; p++, digits++)
            whole = whole * 10 + (uint64_t)(*p - '0');
        if (*p == '.') {
            for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
                if (scale == 1)
                    ok = *p == '0'; /* more decimals than ppm can hold must be zeros */
                else
                    frac += (uint64_t)(*p - '0') * (scale /= 10);
                if (!ok)
                    break;
            }
        }
        uint64_t ppm = whole * 10000 + frac;
        if (!ok || digits == 0 || *p != '\0' || ppm > 1000000) {
            errbuf_printf(err, errlen, "%s: invalid percentage '%.64s' (expected a number 0-100, e.g. 5 or 0.5)", who, val);
            return -1;
        }
        cfg->sla_degraded_ppm = (uint32_t)ppm;
        return 0;
    }
    case OPT_METRICS_LISTEN:
        if (config_parse_addr(val, &addr) != 0) {
            errbuf_printf(err, errlen, "%s: invalid address '%s' (expected HOST:PORT, e.g. 127.0.0.1:9100)", who, val);
            return -1;
        }
        cfg->metrics_listen = addr; /* on when the host is set; port 0 picks one (printed at start) */
        return 0;
    case OPT_TLS_LISTEN:
    case OPT_TLS_CERT:
    case OPT_ADMIN_TLS_LISTEN:
    case OPT_ADMIN_TLS_CERT: return config_apply_tls_value(cfg, o, who, val, err, errlen);
    case OPT_CLUSTER:
    case OPT_CLUSTER_CREDS:
    case OPT_CLUSTER_NKEY:
    case OPT_CLUSTER_TLS_CA:
    case OPT_CLUSTER_TLS_CERT:
    case OPT_CLUSTER_TLS_HOSTNAME: return config_apply_cluster_value(cfg, o, who, val, err, errlen);
    case OPT_NODE_NAME: {
        size_t len = strlen(val);
        int ok = len >= 1 && len < sizeof(cfg->node_name);
        for (size_t i = 0; ok && i < len; i++)
            ok = (val[i] >= 'a' && val[i] <= 'z') || (val[i] >= 'A' && val[i] <= 'Z') || (val[i] >= '0' && val[i] <= '9') ||
                 val[i] == '_';
        if (!ok) { /* it names a NATS durable consumer and is a field of purge ids: no '.', '-', '*' or '>' */
            errbuf_printf(err, errlen, "%s: invalid node name '%.40s' (expected 1-%zu of A-Z a-z 0-9 _)", who, val,
                          sizeof(cfg->node_name) - 1);
            return -1;
        }
        memcpy(cfg->node_name, val, len + 1);
        return 0;
    }
    case OPT_CLUSTER_RETENTION: {
        size_t len = strlen(val);
        uint64_t unit = 1;
        char num[24];
        if (len > 0 && strchr("smhd", val[len - 1]) != NULL) {
            unit = val[len - 1] == 'm' ? 60 : val[len - 1] == 'h' ? 3600 : val[len - 1] == 'd' ? 86400 : 1;
            len--;
        }
        if (len == 0 || len >= sizeof(num)) {
            errbuf_printf(err, errlen, "%s: invalid duration '%.40s' (expected e.g. 7d, 12h, 30m or 3600s)", who, val);
            return -1;
        }
        memcpy(num, val, len);
        num[len] = '\0';
        if (parse_uint(num, 3660 * 86400 / unit, &n) != 0 || n * unit < 60) {
            errbuf_printf(err, errlen, "%s: invalid duration '%.40s' (expected 60s to 3660d, e.g. 7d)", who, val);
            return -1;
        }
        cfg->cluster_retention_s = n * unit;
        return 0;
    }
    case OPT_CLUSTER_ON_UNAVAILABLE:
        if (strcmp(val, "reject") != 0 && strcmp(val, "local") != 0) {
            errbuf_printf(err, errlen, "%s: invalid value '%.40s' (expected reject or local)", who, val);
            return -1;
        }
        cfg->cluster_on_unavailable = strcmp(val, "local") == 0 ? CONFIG_CLUSTER_LOCAL : CONFIG_CLUSTER_REJECT;
        return 0;
    case OPT_CONFIG:
    case OPT_HELP: break;
    }
    return 0;
}

/* ---------------------------------------------------------------- the command line */

/*
 * Split argv[*i] into an option and its value. Returns the option (NULL with err set when
 * unknown or malformed); *val is NULL for options without a value. Advances *i past a
 * separate value argument.
 */
static const opt_def_t *next_option(int argc, char **argv, int *i, const char **val, char *err, size_t errlen)
{
    const char *a = argv[*i];
    const char *eq;
    size_t name_len;

    *val = NULL;
    if (strcmp(a, "-h") == 0)
        a = "--help";
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
        if (a[0] == '-' && a[1] != '\0')
            errbuf_printf(err, errlen, "unknown option '%s' (see --help)", a);
        else
            errbuf_printf(err, errlen, "unexpected argument '%s' (see --help)", a);
        return NULL;
    }
    eq = strchr(a, '=');
    name_len = eq != NULL ? (size_t)(eq - a) : strlen(a);
    for (size_t k = 0; k < NUM_OPTS; k++) {
        const opt_def_t *o = &config_opt_defs[k];
        if (strlen(o->flag) != name_len || strncmp(o->flag, a, name_len) != 0)
            continue;
        if (o->arg == NULL) {
            if (eq != NULL) {
                errbuf_printf(err, errlen, "%s: does not take a value", o->flag);
                return NULL;
            }
            return o;
        }
        if (eq != NULL) {
            *val = eq + 1;
        } else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
            *val = argv[++*i];
        }
        if (*val == NULL || (*val)[0] == '\0') {
            errbuf_printf(err, errlen, "%s: missing value", o->flag);
            return NULL;
        }
        return o;
    }
    errbuf_printf(err, errlen, "unknown option '%.*s' (see --help)", (int)name_len, a);
    return NULL;
}

int config_parse_args(config_t *cfg, int argc, char **argv, int first, char *err, size_t errlen)
{
    const char *config_path = NULL;
    const char *val;
    const opt_def_t *o;
    int backends_reset = 0, tls_listen_reset = 0, tls_certs_reset = 0;
    char scratch[8];

    /* pass 1: find --help and --config; errors are reported in order by pass 2 */
    for (int i = first; i < argc; i++) {
        if ((o = next_option(argc, argv, &i, &val, scratch, sizeof(scratch))) == NULL)
            continue;
        if (o->id == OPT_HELP) {
            config_print_help(stdout);
            return 1;
        }
        if (o->id == OPT_CONFIG)
            config_path = val;
    }
    if (config_path != NULL) {
        if (copy_str(cfg->config_file, sizeof(cfg->config_file), config_path) != 0) {
            errbuf_printf(err, errlen, "--config: path too long");
            return -1;
        }
        if (config_load_file(cfg, config_path, err, errlen) != 0)
            return -1;
    }

    /* pass 2: every flag, in order */
    for (int i = first; i < argc; i++) {
        if ((o = next_option(argc, argv, &i, &val, err, errlen)) == NULL)
            return -1;
        if (o->id == OPT_CONFIG || o->id == OPT_HELP)
            continue;
        if (o->id == OPT_BACKEND && !backends_reset) {
            cfg->num_backends = 0; /* flags replace the file's list */
            free(cfg->backends_json);
            cfg->backends_json = NULL;
            backends_reset = 1;
        }
        if (o->id == OPT_TLS_LISTEN && !tls_listen_reset) {
            cfg->num_tls_listen = 0; /* as --backend: flags replace the file's list */
            tls_listen_reset = 1;
        }
        if (o->id == OPT_TLS_CERT && !tls_certs_reset) {
            cfg->num_tls_certs = 0;
            tls_certs_reset = 1;
        }
        if (config_apply_value(cfg, o, o->flag, val, err, errlen) != 0)
            return -1;
    }
    if (cfg->shield_tls && cfg->shield.port == 0) {
        errbuf_printf(err, errlen, "--shield-tls: there is no --shield to reach over TLS");
        return -1;
    }
    if (cfg->shield_admin_tls && cfg->shield_admin.port == 0) {
        errbuf_printf(err, errlen, "--shield-admin-tls: there is no --shield-admin to reach over TLS");
        return -1;
    }
    if (cfg->cluster_urls[0] != '\0' && cfg->node_name[0] == '\0') {
        errbuf_printf(err, errlen, "--node-name: required with --cluster (each node's own name, e.g. edge1)");
        return -1;
    }
    if (config_check_cluster(cfg, err, errlen) != 0)
        return -1;
    if (cfg->request_body_memory < cfg->max_request_body) {
        /* else a body within the limit could never be taken */
        errbuf_printf(err, errlen, "--request-body-memory: %" PRIu64 " bytes is less than --max-request-body (%" PRIu64 ")",
                      cfg->request_body_memory, cfg->max_request_body);
        return -1;
    }
    return config_check_tls(cfg, err, errlen);
}

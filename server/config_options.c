/*
 * server/config_options.c — what the settings are: the option table (every flag, its
 * config-file key, its placeholder and its one-line help), the defaults, and --help.
 *
 * What it owns: config_opt_defs, the one list of options; the command line
 * (server/config.c) and the JSON file reader (server/config_file.c) both find an option
 * here, and a value of either goes through config_apply_value (config.c). Nothing here
 * checks a value.
 *
 * Invariant: --help prints from the same table that the command line and the file are
 * matched against, so it lists every option and no other. format_default reads most
 * defaults from config_defaults, but writes the sizes and modes by hand (256M, 1G,
 * preallocate, round_robin, 7d ...): a change of one of those defaults goes there too.
 *
 * Threads: the main thread, before any worker exists.
 */
#include "server/config_int.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

const opt_def_t config_opt_defs[] = {
    {OPT_LISTEN, "--listen", "listen", "HOST:PORT", "address of the proxy listener"},
    {OPT_ADMIN_LISTEN, "--admin-listen", "admin_listen", "HOST:PORT", "address of the admin API listener"},
    {OPT_BACKEND, "--backend", "backends", "HOST:PORT", "origin server; repeatable, at most 64; replaces the file's list"},
    {OPT_DATA_DIR, "--data-dir", "data_dir", "DIR", "directory of the LMDB store"},
    {OPT_MEMORY_SIZE, "--memory-size", "memory_size", "SIZE", "memory tier budget, e.g. 256M (K/M/G/T, min 1M)"},
    {OPT_DISK_SIZE, "--disk-size", "disk_size", "SIZE", "disk store budget (LMDB map size), 1M to 1T"},
    {OPT_DISK_RESERVE, "--disk-reserve", "disk_reserve", "MODE",
     "preallocate (reserve the data file's room) or free-space (the budget follows the free space)"},
    {OPT_DISK_PUT_BACKLOG, "--disk-put-backlog", "disk_put_backlog", "SIZE",
     "objects queued for the disk at most (more: served, not cached)"},
    {OPT_DEFAULT_TTL, "--default-ttl", "default_ttl", "SECONDS", "TTL when a response gives no freshness"},
    {OPT_THREADS, "--threads", "threads", "N", "worker threads, 1-256"},
    {OPT_ADMIN_THREADS, "--admin-threads", "admin_threads", "N", "admin API threads, 1-64"},
    {OPT_ACCEPT_SPREAD, "--accept-spread", "accept_spread", "PERCENT",
     "a worker past the first takes new connections while all before it use PERCENT of a core (0: always)"},
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
     "request bodies in memory: arriving (connection closed above) and held while origins answer (503 above)"},
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
    cfg->accept_spread = 50; /* server/frontend.c: the first worker takes new connections until it is half busy */
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
    case OPT_DISK_PUT_BACKLOG: snprintf(buf, cap, "256M or --memory-size, the less"); break;
    case OPT_DEFAULT_TTL: snprintf(buf, cap, "%u", d->default_ttl); break;
    case OPT_THREADS: snprintf(buf, cap, "number of online cores, %u here", d->threads); break;
    case OPT_ADMIN_THREADS: snprintf(buf, cap, "%u", d->admin_threads); break;
    case OPT_ACCEPT_SPREAD: snprintf(buf, cap, "%u", d->accept_spread); break;
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
          "data_dir, memory_size (bytes or \"256M\"), disk_size, disk_reserve, disk_put_backlog, default_ttl, threads,\n"
          "admin_threads, accept_spread, service_id, max_heuristic_ttl, default_grace, negative_ttl,\n"
          "origin_timeout, shutdown_timeout, max_request_body, request_body_memory, load_balancing, shield,\n"
          "shield_admin, shield_token,\n"
          "shield_tls, shield_admin_tls, access_log, stats_sample_interval, stats_retention_days,\n"
          "stats_minute_seconds, sla_degraded_percent, metrics_public_listen, tls_listen (a string or an\n"
          "array), tls_certs (array of \"HOST=CERT,KEY\" or {\"host\",\"cert\",\"key\"}), admin_tls_listen,\n"
          "admin_tls_cert.\n",
          f);
}

/*
 * server/config.h — settings from the command line and the JSON config file.
 *
 * Precedence: built-in defaults < config file (--config FILE) < flags.
 * Every bad value is reported as one line naming the setting; the caller exits 2.
 */
#ifndef EDGECACHE_CONFIG_H
#define EDGECACHE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_BACKENDS 64
#define CONFIG_MAX_IGNORED_PARAMS 32
#define CONFIG_MAX_TLS_LISTEN 8
#define CONFIG_MAX_TLS_CERTS 32

typedef struct config_addr {
    char host[256]; /* numeric address or name, e.g. "127.0.0.1" */
    uint16_t port;
} config_addr_t;

/* one --tls-cert HOST=CERT.pem,KEY.pem (--admin-tls-cert has no HOST: host is "") */
typedef struct config_tls_cert {
    char host[256];  /* a DNS name, "*.example.com", or "default" / "*" (the default certificate) */
    char cert[1024]; /* PEM: the certificate, then its chain */
    char key[1024];  /* PEM: its private key */
} config_tls_cert_t;

typedef struct config {
    config_addr_t listen;                        /* --listen, default 127.0.0.1:8080 */
    config_addr_t admin_listen;                  /* --admin-listen, default 127.0.0.1:8081 */
    config_addr_t backends[CONFIG_MAX_BACKENDS]; /* --backend HOST:PORT, repeatable */
    size_t num_backends;
    /* the file's "backends" when an element is an object of Fastly's backend fields (TLS ones included):
     * the array as JSON text (malloc'd, checked); NULL otherwise, and when --backend flags replaced it */
    char *backends_json;
    char data_dir[4096];          /* --data-dir, default "./edgecache-data" */
    uint64_t memory_size;         /* --memory-size BYTES (K/M/G suffixes), default 256M */
    uint64_t disk_size;           /* --disk-size BYTES, default 1G */
    int disk_reserve;             /* --disk-reserve preallocate|free-space: CONFIG_DISK_* (default preallocate) */
    uint64_t disk_put_backlog;    /* --disk-put-backlog BYTES; 0 (not given): config_put_backlog's default */
    uint32_t default_ttl;         /* --default-ttl SECONDS, default 120 */
    unsigned threads;             /* --threads N, default: number of online cores */
    unsigned admin_threads;       /* --admin-threads N, default 1 */
    unsigned accept_spread;       /* --accept-spread PERCENT, default 50: a worker after the first accepts new
                                     connections only while each one before it uses this share of a core (0: all,
                                     always); server/frontend.c */
    char config_file[4096];       /* --config FILE, "" when none */
    char service_id[128];         /* --service-id, default "edgecache" */
    uint32_t max_heuristic_ttl;   /* config "max_heuristic_ttl", default 86400 */
    uint32_t default_grace;       /* --default-grace / "default_grace", seconds, default 0 */
    uint32_t negative_ttl;        /* --negative-ttl / "negative_ttl": TTL of a 4xx/5xx without freshness of its
                                   own, seconds, default 0 (not stored) */
    uint32_t origin_timeout_ms;   /* --origin-timeout MS / "origin_timeout", default 15000 */
    uint32_t shutdown_timeout_ms; /* --shutdown-timeout MS, default 5000 */
    uint64_t max_request_body;    /* --max-request-body BYTES / "max_request_body": larger bodies get 413 from h2o,
                                     which holds a whole body in memory before the proxy sees it; default 8M */
    uint64_t request_body_memory; /* --request-body-memory BYTES / "request_body_memory": request bodies still
                                     arriving, all connections together (server/inflow.c closes a connection that
                                     would pass it), and apart from them those the proxy holds while origins
                                     answer (a body beyond it gets 503); default 256M, at least max_request_body */
    /* caching semantics: config file keys only (the admin API changes some at run time) */
    int cookie_policy_strip;    /* "cookie_policy": "pass" (0, default: Set-Cookie responses pass) | "strip" (1) */
    int obey_client_no_cache;   /* "obey_client_no_cache": false (ignore client no-cache/max-age=0, as Fastly) */
    int keep_surrogate_headers; /* "keep_surrogate_headers": false (strip Surrogate-Control/-Key downstream) */
    int cache_key_include_host; /* "cache_key": {"include_host": true} */
    int cache_key_sort_query;   /* "cache_key": {"sort_query": false} */
    char cache_key_ignore_params[CONFIG_MAX_IGNORED_PARAMS][64]; /* "cache_key": {"ignore_query_params": [...]} */
    size_t num_cache_key_ignore_params;
    char *header_rules_json; /* "header_rules": the array as JSON text (malloc'd, validated); NULL when none */
    /* origins (server/backend.h) */
    int load_balancing;         /* --load-balancing / "load_balancing": CONFIG_LB_* (default round_robin); applies at
                                      every start unless the admin API stored another value */
    config_addr_t shield;       /* --shield / "shield": another edgecache node to fetch misses through; port 0 = none */
    config_addr_t shield_admin; /* --shield-admin / "shield_admin": that node's admin listener, for forwarding purges */
    char shield_token[512];     /* --shield-token / "shield_token": a purge (or global) token of the shield's admin API */
    /* --shield-tls CA.pem|system / "shield_tls": the shield link over TLS, verified with that CA (the PEM, malloc'd
     * and checked; NULL for the system's trust store); shield_tls 0: the store's settings for the shield backend */
    int shield_tls;
    char *shield_tls_ca;
    /* --shield-admin-tls CA.pem|system / "shield_admin_tls": purges forwarded to shield_admin over TLS, as shield_tls */
    int shield_admin_tls;
    char *shield_admin_tls_ca;
    /* stats and observability (server/stats.h, server/accesslog.h) */
    char access_log[4096];          /* --access-log FILE / "access_log": "-" = stdout; "" = off (default) */
    uint32_t stats_sample_interval; /* --stats-sample-interval SECONDS: SLA bandwidth sample period, default 300 */
    uint32_t stats_retention_days;  /* --stats-retention-days DAYS: history kept in the store, default 31 */
    uint32_t stats_minute_seconds;  /* --stats-minute-seconds SECONDS: length of a history "minute", default 60
                                       (a test knob: tests use 1 so history appears at once) */
    uint32_t sla_degraded_ppm;      /* --sla-degraded-percent P / "sla_degraded_percent": a minute in which more than P%
                                       of requests got a 5xx we caused (not the origin's) is degraded; kept in parts
                                       per million, default 5% (50000) */
    config_addr_t metrics_listen;   /* --metrics-listen / "metrics_public_listen": serve GET /metrics without a token on
                                       this address; off (default) when host is ""; port 0 picks one */
    /* TLS (server/tls.h) */
    config_addr_t tls_listen[CONFIG_MAX_TLS_LISTEN]; /* --tls-listen / "tls_listen", repeatable */
    size_t num_tls_listen;
    config_tls_cert_t tls_certs[CONFIG_MAX_TLS_CERTS]; /* --tls-cert / "tls_certs": the first, or the one named
                                                          "default" or "*", answers names no other matches */
    size_t num_tls_certs;
    config_addr_t admin_tls_listen;   /* --admin-tls-listen / "admin_tls_listen": off when host is "" */
    config_tls_cert_t admin_tls_cert; /* --admin-tls-cert CERT,KEY / "admin_tls_cert" */
    int cache_key_include_scheme;     /* "cache_key": {"include_scheme": false}: https and http objects apart */
    /* the cluster (cluster/cluster.h): on when cluster_urls is not empty */
    char cluster_urls[1024];      /* --cluster / "cluster": "nats://HOST:PORT[,nats://...]"; "" = a single node */
    char node_name[33];           /* --node-name / "node_name": [A-Za-z0-9_]{1,32}, required with --cluster */
    uint64_t cluster_retention_s; /* --cluster-retention / "cluster_retention": the purge stream's MaxAge, default 7d */
    int cluster_on_unavailable;   /* --cluster-on-unavailable / "cluster_on_unavailable": CONFIG_CLUSTER_* */
    /* how the node proves itself to NATS and checks NATS (server/config_cluster.c); "" = not given. A user and
     * password or a token can also be in the --cluster URLs (nats://USER:PASS@HOST:PORT), never shown again */
    char cluster_creds[1024];           /* --cluster-creds / "cluster_creds": a NATS .creds file (user JWT and seed) */
    char cluster_nkey[1024];            /* --cluster-nkey / "cluster_nkey": a user NKey seed file */
    char cluster_tls_ca[1024];          /* --cluster-tls-ca / "cluster_tls_ca": TLS to NATS, servers verified with it */
    config_tls_cert_t cluster_tls_cert; /* --cluster-tls-cert CERT,KEY / "cluster_tls_cert": client certificate */
    char cluster_tls_hostname[256];     /* --cluster-tls-hostname / "cluster_tls_hostname": the name the servers'
                                           certificates must carry; "" = each server's host in --cluster */
} config_t;

#define CONFIG_CLUSTER_REJECT 0 /* no quorum: the purge is answered 503, nothing applied */
#define CONFIG_CLUSTER_LOCAL 1  /* no quorum: applied here, its publish queued, the answer says so */

#define CONFIG_LB_ROUND_ROBIN 0 /* weighted round robin over healthy backends */
#define CONFIG_LB_HASH 1        /* consistent (rendezvous) hash of the cache key */
#define CONFIG_LB_FIRST 2       /* the first healthy backend wins */

/* --disk-reserve: how the disk store makes sure of its room (storage/store.h STORE_SPACE_*) */
#define CONFIG_DISK_PREALLOCATE 0 /* allocate the data file up to --disk-size (or what the file system has) */
#define CONFIG_DISK_FREE_SPACE 1  /* no preallocation: the budget follows the file system's free space */

/** Fill cfg with the built-in defaults. */
void config_defaults(config_t *cfg);

/**
 * Parse flags (argv[first..argc)), loading --config FILE first if given so that flags
 * win. Returns 0 on success, 1 when --help was printed to stdout (exit 0), or -1 with a
 * one-line message in err (e.g. "--memory-size: invalid size 'abc' (use e.g. 256M)").
 */
int config_parse_args(config_t *cfg, int argc, char **argv, int first, char *err, size_t errlen);

/**
 * Load a JSON config file into cfg (keys: listen, admin_listen, backends [array of
 * "HOST:PORT" or of objects with Fastly's backend fields], data_dir, memory_size [number or "256M"], disk_size, default_ttl, threads,
 * service_id, max_heuristic_ttl, default_grace, negative_ttl, origin_timeout, load_balancing, shield, shield_admin,
 * shield_token). Unknown keys and wrong types are errors. Returns 0 or -1 with a message naming the key in err.
 */
int config_load_file(config_t *cfg, const char *path, char *err, size_t errlen);

/** Parse "256M", "1G", "4096", "64k" into bytes. Returns 0 or -1. */
int config_parse_size(const char *s, uint64_t *out);

/**
 * Bytes of objects that may wait for the disk's writer (store_options_t.put_backlog):
 * --disk-put-backlog, or else 256 MiB, or --memory-size if that is less. Objects queued
 * for the disk may have left the memory tier already, so a backlog as large as the memory
 * tier at most doubles what objects can take; a small node is not sized for 256 MiB more.
 */
uint64_t config_put_backlog(const config_t *cfg);

/** Parse "HOST:PORT" (IPv6 as "[::1]:80"). Returns 0 or -1. */
int config_parse_addr(const char *s, config_addr_t *out);

/**
 * Parse a --tls-cert value "HOST=CERT.pem,KEY.pem" (with_host) or an --admin-tls-cert value
 * "CERT.pem,KEY.pem" (!with_host) into *out: HOST is a DNS name (letters, digits, '-', '.'),
 * optionally "*." followed by one, or "default" or "*"; lower-cased. The key path is what
 * follows the last ','. Does not touch the files. Returns 0, or -1 with a reason in err
 * (no flag name: the caller adds it).
 */
int config_parse_tls_cert(const char *val, int with_host, config_tls_cert_t *out, char *err, size_t errlen);

/** Print the --help text to the stream (FILE *). */
void config_print_help(void *stream);

#endif

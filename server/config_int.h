/*
 * server/config_int.h — what the parts of the configuration share: the option table,
 * defaults and help (server/config_options.c), the validators and the command line
 * (server/config.c), the JSON file reader (server/config_file.c), and the TLS and cluster
 * options (server/config_tls.c, server/config_cluster.c). Main thread only, before any
 * worker exists.
 */
#ifndef EDGECACHE_CONFIG_INT_H
#define EDGECACHE_CONFIG_INT_H

#include <stddef.h>
#include <string.h>
#include "server/config.h"

/** The most worker threads --threads takes; the default (one per online core) is capped there too. */
#define CONFIG_THREADS_MAX 256

/* the flags; `file_key` is the JSON name (NULL: flag only) */
typedef enum opt_id {
    OPT_LISTEN,
    OPT_ADMIN_LISTEN,
    OPT_BACKEND,
    OPT_DATA_DIR,
    OPT_MEMORY_SIZE,
    OPT_DISK_SIZE,
    OPT_DISK_RESERVE,
    OPT_DISK_PUT_BACKLOG,
    OPT_DEFAULT_TTL,
    OPT_THREADS,
    OPT_ADMIN_THREADS,
    OPT_ACCEPT_SPREAD,
    OPT_CONFIG,
    OPT_SERVICE_ID,
    OPT_DEFAULT_GRACE,
    OPT_MAX_HEURISTIC_TTL,
    OPT_NEGATIVE_TTL,
    OPT_ORIGIN_TIMEOUT,
    OPT_SHUTDOWN_TIMEOUT,
    OPT_MAX_REQUEST_BODY,
    OPT_REQUEST_BODY_MEMORY,
    OPT_LOAD_BALANCING,
    OPT_SHIELD,
    OPT_SHIELD_ADMIN,
    OPT_SHIELD_TOKEN,
    OPT_SHIELD_TLS,
    OPT_SHIELD_ADMIN_TLS,
    OPT_ACCESS_LOG,
    OPT_STATS_SAMPLE_INTERVAL,
    OPT_STATS_RETENTION_DAYS,
    OPT_STATS_MINUTE_SECONDS,
    OPT_SLA_DEGRADED_PERCENT,
    OPT_METRICS_LISTEN,
    OPT_TLS_LISTEN,
    OPT_TLS_CERT,
    OPT_ADMIN_TLS_LISTEN,
    OPT_ADMIN_TLS_CERT,
    OPT_CLUSTER,
    OPT_NODE_NAME,
    OPT_CLUSTER_RETENTION,
    OPT_CLUSTER_ON_UNAVAILABLE,
    OPT_CLUSTER_CREDS,
    OPT_CLUSTER_NKEY,
    OPT_CLUSTER_TLS_CA,
    OPT_CLUSTER_TLS_CERT,
    OPT_CLUSTER_TLS_HOSTNAME,
    OPT_HELP,
} opt_id_t;

typedef struct opt_def {
    opt_id_t id;
    const char *flag;     /* "--listen" */
    const char *file_key; /* "listen", or NULL */
    const char *arg;      /* placeholder in --help, NULL: takes no value */
    const char *help;
} opt_def_t;

/** [s, s+n) into dst (cap bytes with the NUL); -1 if it does not fit. */
static inline int config_copy_span(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

/** The option table (server/config_options.c), in --help order; config_num_opts entries. */
extern const opt_def_t config_opt_defs[];
extern const size_t config_num_opts;

/**
 * Validate `val` for option `o` and store it in cfg; `who` names the flag or key in the
 * error. 0, or -1 with one line in err. The one path every value takes, flag or file.
 */
int config_apply_value(config_t *cfg, const opt_def_t *o, const char *who, const char *val, char *err, size_t errlen);

/**
 * config_apply_value for the TLS options (server/config_tls.c): --tls-listen and --tls-cert
 * append (a name given twice is an error), --admin-tls-listen and --admin-tls-cert set.
 * 0, or -1 with one line naming `who` in err.
 */
int config_apply_tls_value(config_t *cfg, const opt_def_t *o, const char *who, const char *val, char *err, size_t errlen);

/**
 * The checks across TLS settings once all are read: a listener without a certificate, and a
 * certificate without its listener (--tls-cert without --tls-listen, --admin-tls-cert without
 * --admin-tls-listen). 0 or -1 with err.
 */
int config_check_tls(const config_t *cfg, char *err, size_t errlen);

/**
 * config_apply_value for --cluster and the NATS credentials and TLS options
 * (server/config_cluster.c). Error messages never echo a password or token given in a URL.
 */
int config_apply_cluster_value(config_t *cfg, const opt_def_t *o, const char *who, const char *val, char *err, size_t errlen);

/** After all values: the cluster options that only make sense together. 0 or -1 with err. */
int config_check_cluster(const config_t *cfg, char *err, size_t errlen);

#endif

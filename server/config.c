/*
 * server/config.c — settings from the command line and the JSON config file: the
 * validators and the command line (the option table, defaults and --help are in
 * server/config_options.c; the file itself is read by server/config_file.c).
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
#include "storage/store.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define CONFIG_ADMIN_THREADS_MAX 64 /* = ADMIN_MAX_THREADS */
#define CONFIG_TTL_MAX 2147483647u  /* 2^31 - 1 */
#define CONFIG_SIZE_MIN ((uint64_t)1 << 20)
#define CONFIG_DISK_MAX ((uint64_t)1 << 40)
#define CONFIG_BODY_MAX ((uint64_t)1 << 30) /* h2o's own default limit: a body is held in memory whole */

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

uint64_t config_put_backlog(const config_t *cfg)
{
    if (cfg->disk_put_backlog != 0)
        return cfg->disk_put_backlog;
    return cfg->memory_size < STORE_PUT_BACKLOG_DEFAULT ? cfg->memory_size : STORE_PUT_BACKLOG_DEFAULT;
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
    case OPT_DISK_PUT_BACKLOG:
        if (config_parse_size(val, &n) != 0 || n < CONFIG_SIZE_MIN || n > CONFIG_DISK_MAX) {
            errbuf_printf(err, errlen, "%s: invalid size '%s' (expected 1M to 1T, e.g. 256M)", who, val);
            return -1;
        }
        cfg->disk_put_backlog = n;
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
    case OPT_ACCEPT_SPREAD:
        if (parse_uint(val, 100, &n) != 0) {
            errbuf_printf(err, errlen, "%s: invalid value '%s' (expected a percentage 0-100)", who, val);
            return -1;
        }
        cfg->accept_spread = (unsigned)n;
        return 0;
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
    for (size_t k = 0; k < config_num_opts; k++) {
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

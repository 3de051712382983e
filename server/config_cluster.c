/*
 * server/config_cluster.c — the cluster's settings: --cluster (the NATS URLs, which may carry
 * a user and password or a token), --cluster-creds, --cluster-nkey, --cluster-tls-ca,
 * --cluster-tls-cert, --cluster-tls-hostname (and their config-file keys).
 *
 * A URL's user information is a secret: no message made here quotes it (a URL is shown with
 * "***" in its place), and nothing else prints cfg->cluster_urls. Only the text is checked
 * here; whether the files exist and hold what they should is cluster_start's check, before
 * anything listens. Main thread, before any worker exists.
 */
#include <string.h>
#include "common/errbuf.h"
#include "server/config_int.h"

/* val with each URL's user information replaced by "***", cut to fit buf */
static void redact_urls(const char *val, char *buf, size_t cap)
{
    size_t o = 0;
    for (const char *p = val; *p != '\0' && o + 1 < cap;) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *scheme = strstr(p, "://"), *at = NULL;
        for (const char *q = p; q < p + n; q++)
            if (*q == '@')
                at = q;
        const char *from = p;
        if (at != NULL) {
            size_t head = scheme != NULL && scheme < at ? (size_t)(scheme + 3 - p) : 0;
            for (size_t i = 0; i < head && o + 1 < cap; i++)
                buf[o++] = p[i];
            for (const char *r = "***"; *r != '\0' && o + 1 < cap; r++)
                buf[o++] = *r;
            from = at;
        }
        for (const char *q = from; q < p + n + (end != NULL) && o + 1 < cap; q++)
            buf[o++] = *q;
        p += n + (end != NULL);
    }
    buf[o] = '\0';
}

/* user information: printable, no space, and nothing that would end the URL or the list */
static int userinfo_ok(const char *s, size_t n)
{
    if (n == 0 || n > 512)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f || s[i] == ',' || s[i] == '/' || s[i] == '@')
            return 0;
    return 1;
}

/* "nats://[USER:PASS@|TOKEN@]HOST:PORT" or "tls://...", comma-separated, each one checked so that cnats gets nothing
 * it would choke on */
static int apply_urls(config_t *cfg, const char *who, const char *val, char *err, size_t errlen)
{
    size_t len = strlen(val);
    int ok = len > 0 && len < sizeof(cfg->cluster_urls);
    for (const char *p = val; ok && *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p), skip = 0;
        char host[300];
        config_addr_t addr;
        if (n > 7 && strncmp(p, "nats://", 7) == 0)
            skip = 7;
        else if (n > 6 && strncmp(p, "tls://", 6) == 0)
            skip = 6;
        ok = skip != 0;
        const char *at = NULL;
        for (const char *q = p + skip; ok && q < p + n; q++)
            if (*q == '@')
                at = q;
        if (ok && at != NULL) {
            ok = userinfo_ok(p + skip, (size_t)(at - (p + skip)));
            skip = (size_t)(at + 1 - p);
        }
        ok = ok && n > skip && config_copy_span(host, sizeof(host), p + skip, n - skip) == 0;
        ok = ok && config_parse_addr(host, &addr) == 0 && addr.port != 0;
        p += n;
        if (*p == ',')
            ok = ok && *++p != '\0';
    }
    if (!ok) {
        char shown[160];
        redact_urls(val, shown, sizeof(shown));
        errbuf_printf(err, errlen, "%s: invalid cluster '%s' (expected nats://[USER:PASSWORD@]HOST:PORT[,...], or tls://...)",
                      who, shown);
        return -1;
    }
    memcpy(cfg->cluster_urls, val, len + 1);
    return 0;
}

int config_apply_cluster_value(config_t *cfg, const opt_def_t *o, const char *who, const char *val, char *err, size_t errlen)
{
    char why[256];
    char *dst = NULL;
    size_t cap = 0;
    switch (o->id) {
    case OPT_CLUSTER: return apply_urls(cfg, who, val, err, errlen);
    case OPT_CLUSTER_CREDS: dst = cfg->cluster_creds, cap = sizeof(cfg->cluster_creds); break;
    case OPT_CLUSTER_NKEY: dst = cfg->cluster_nkey, cap = sizeof(cfg->cluster_nkey); break;
    case OPT_CLUSTER_TLS_CA: dst = cfg->cluster_tls_ca, cap = sizeof(cfg->cluster_tls_ca); break;
    case OPT_CLUSTER_TLS_HOSTNAME: {
        size_t len = strlen(val);
        int ok = len > 0 && len < sizeof(cfg->cluster_tls_hostname);
        for (size_t i = 0; ok && i < len; i++)
            ok = (val[i] >= 'a' && val[i] <= 'z') || (val[i] >= 'A' && val[i] <= 'Z') || (val[i] >= '0' && val[i] <= '9') ||
                 val[i] == '.' || val[i] == '-' || val[i] == ':';
        if (!ok) {
            errbuf_printf(err, errlen, "%s: invalid host name '%.64s'", who, val);
            return -1;
        }
        memcpy(cfg->cluster_tls_hostname, val, len + 1);
        return 0;
    }
    case OPT_CLUSTER_TLS_CERT:
        if (config_parse_tls_cert(val, 0, &cfg->cluster_tls_cert, why, sizeof(why)) != 0) {
            errbuf_printf(err, errlen, "%s: %s", who, why);
            return -1;
        }
        return 0;
    default: return 0;
    }
    if (val[0] == '\0' || config_copy_span(dst, cap, val, strlen(val)) != 0) {
        errbuf_printf(err, errlen, "%s: invalid file name (empty, or longer than %zu bytes)", who, cap - 1);
        return -1;
    }
    return 0;
}

int config_check_cluster(const config_t *cfg, char *err, size_t errlen)
{
    static const struct {
        opt_id_t id;
        const char *flag;
    } needs_cluster[] = {{OPT_CLUSTER_CREDS, "--cluster-creds"},
                         {OPT_CLUSTER_NKEY, "--cluster-nkey"},
                         {OPT_CLUSTER_TLS_CA, "--cluster-tls-ca"},
                         {OPT_CLUSTER_TLS_CERT, "--cluster-tls-cert"},
                         {OPT_CLUSTER_TLS_HOSTNAME, "--cluster-tls-hostname"}};
    const char *given[] = {cfg->cluster_creds, cfg->cluster_nkey, cfg->cluster_tls_ca, cfg->cluster_tls_cert.cert,
                           cfg->cluster_tls_hostname};
    for (size_t i = 0; i < sizeof(given) / sizeof(given[0]); i++) {
        if (given[i][0] != '\0' && cfg->cluster_urls[0] == '\0') {
            errbuf_printf(err, errlen, "%s: there is no --cluster to use it with", needs_cluster[i].flag);
            return -1;
        }
    }
    if (cfg->cluster_creds[0] != '\0' && cfg->cluster_nkey[0] != '\0') {
        errbuf_printf(err, errlen, "--cluster-nkey: give either --cluster-creds or --cluster-nkey, not both");
        return -1;
    }
    int tls_url = 0;
    for (const char *p = cfg->cluster_urls; *p != '\0'; p++)
        if ((p == cfg->cluster_urls || p[-1] == ',') && strncmp(p, "tls://", 6) == 0)
            tls_url = 1;
    if (cfg->cluster_tls_ca[0] == '\0' &&
        (tls_url || cfg->cluster_tls_cert.cert[0] != '\0' || cfg->cluster_tls_hostname[0] != '\0')) {
        errbuf_printf(err, errlen, "--cluster-tls-ca: required for TLS to NATS (the CA that signed the servers' certificates)");
        return -1;
    }
    return 0;
}

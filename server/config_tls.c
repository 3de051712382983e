/*
 * server/config_tls.c — the TLS settings: --tls-listen, --tls-cert HOST=CERT,KEY,
 * --admin-tls-listen, --admin-tls-cert CERT,KEY (and their config-file keys).
 *
 * Only the text is checked here (addresses, names, that a name is not given twice, that a
 * listener has a certificate and a certificate its listener); whether the files exist, are PEM
 * and match is server/tls.c's check at start-up, before anything listens. Main thread, before
 * any worker exists.
 */
#include <string.h>
#include "common/errbuf.h"
#include "server/config_int.h"

/* a DNS name: labels of letters, digits and '-', joined by single dots; lower-cased in place */
static int dns_name_ok(char *name)
{
    size_t label = 0, len = strlen(name);
    if (len == 0 || len > 253)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z')
            name[i] = (char)(c - 'A' + 'a');
        else if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
        if (++label > 63)
            return 0;
    }
    return label != 0;
}

int config_parse_tls_cert(const char *val, int with_host, config_tls_cert_t *out, char *err, size_t errlen)
{
    const char *paths = val;
    memset(out, 0, sizeof(*out));
    if (with_host) {
        const char *eq = strchr(val, '=');
        if (eq == NULL || eq == val) {
            errbuf_printf(err, errlen, "expected HOST=CERT.pem,KEY.pem, got '%.64s'", val);
            return -1;
        }
        if (config_copy_span(out->host, sizeof(out->host), val, (size_t)(eq - val)) != 0) {
            errbuf_printf(err, errlen, "host name too long");
            return -1;
        }
        int ok = strcmp(out->host, "default") == 0 || strcmp(out->host, "*") == 0 ||
                 (strncmp(out->host, "*.", 2) == 0 ? dns_name_ok(out->host + 2) : dns_name_ok(out->host));
        if (!ok) {
            errbuf_printf(err, errlen, "invalid host name '%.64s' (expected a DNS name, *.NAME, default or *)", out->host);
            return -1;
        }
        paths = eq + 1;
    }
    const char *comma = strrchr(paths, ',');
    if (comma == NULL || comma == paths || comma[1] == '\0') {
        errbuf_printf(err, errlen, "expected %sCERT.pem,KEY.pem, got '%.64s'", with_host ? "HOST=" : "", val);
        return -1;
    }
    if (config_copy_span(out->cert, sizeof(out->cert), paths, (size_t)(comma - paths)) != 0 ||
        config_copy_span(out->key, sizeof(out->key), comma + 1, strlen(comma + 1)) != 0) {
        errbuf_printf(err, errlen, "path too long (at most %zu bytes)", sizeof(out->cert) - 1);
        return -1;
    }
    return 0;
}

/* the default certificate's two spellings name one thing */
static int same_tls_name(const char *a, const char *b)
{
    int a_default = strcmp(a, "default") == 0 || strcmp(a, "*") == 0;
    int b_default = strcmp(b, "default") == 0 || strcmp(b, "*") == 0;
    return a_default || b_default ? a_default && b_default : strcmp(a, b) == 0;
}

int config_apply_tls_value(config_t *cfg, const opt_def_t *o, const char *who, const char *val, char *err, size_t errlen)
{
    config_addr_t addr;
    config_tls_cert_t cert;
    char why[256];

    switch (o->id) {
    case OPT_TLS_LISTEN:
    case OPT_ADMIN_TLS_LISTEN:
        if (config_parse_addr(val, &addr) != 0) {
            errbuf_printf(err, errlen, "%s: invalid address '%s' (expected HOST:PORT, e.g. 0.0.0.0:443 or [::]:443)", who, val);
            return -1;
        }
        if (o->id == OPT_ADMIN_TLS_LISTEN) {
            cfg->admin_tls_listen = addr;
            return 0;
        }
        if (cfg->num_tls_listen >= CONFIG_MAX_TLS_LISTEN) {
            errbuf_printf(err, errlen, "%s: too many TLS listeners (at most %d)", who, CONFIG_MAX_TLS_LISTEN);
            return -1;
        }
        cfg->tls_listen[cfg->num_tls_listen++] = addr;
        return 0;
    case OPT_TLS_CERT:
    case OPT_ADMIN_TLS_CERT:
        if (config_parse_tls_cert(val, o->id == OPT_TLS_CERT, &cert, why, sizeof(why)) != 0) {
            errbuf_printf(err, errlen, "%s: %s", who, why);
            return -1;
        }
        if (o->id == OPT_ADMIN_TLS_CERT) {
            cfg->admin_tls_cert = cert;
            return 0;
        }
        for (size_t i = 0; i != cfg->num_tls_certs; ++i) {
            if (same_tls_name(cfg->tls_certs[i].host, cert.host)) {
                errbuf_printf(err, errlen, "%s: name '%s' is listed twice", who, cert.host);
                return -1;
            }
        }
        if (cfg->num_tls_certs >= CONFIG_MAX_TLS_CERTS) {
            errbuf_printf(err, errlen, "%s: too many certificates (at most %d)", who, CONFIG_MAX_TLS_CERTS);
            return -1;
        }
        cfg->tls_certs[cfg->num_tls_certs++] = cert;
        return 0;
    default: break;
    }
    return 0;
}

int config_check_tls(const config_t *cfg, char *err, size_t errlen)
{
    if (cfg->num_tls_listen != 0 && cfg->num_tls_certs == 0) {
        errbuf_printf(err, errlen, "--tls-listen: no certificate (give at least one --tls-cert HOST=CERT.pem,KEY.pem)");
        return -1;
    }
    if (cfg->admin_tls_listen.host[0] != '\0' && cfg->admin_tls_cert.cert[0] == '\0') {
        errbuf_printf(err, errlen, "--admin-tls-listen: no certificate (give --admin-tls-cert CERT.pem,KEY.pem)");
        return -1;
    }
    /* a certificate no listener serves is a forgotten listener: said at start, not found out from a
     * refused connection. The admin listener never takes --tls-cert: it has --admin-tls-cert. */
    if (cfg->num_tls_certs != 0 && cfg->num_tls_listen == 0) {
        errbuf_printf(err, errlen,
                      "--tls-cert: no --tls-listen to serve it on (the admin API's HTTPS listener takes "
                      "--admin-tls-cert)");
        return -1;
    }
    if (cfg->admin_tls_cert.cert[0] != '\0' && cfg->admin_tls_listen.host[0] == '\0') {
        errbuf_printf(err, errlen, "--admin-tls-cert: no --admin-tls-listen to serve it on");
        return -1;
    }
    return 0;
}

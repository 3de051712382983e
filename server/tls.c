/*
 * server/tls.c — the certificates of the HTTPS listeners, SNI, and their reload.
 *
 * What it owns: two "sites", the proxy's (--tls-cert, any number of names) and the admin
 * API's (--admin-tls-cert, one). A site has a front SSL_CTX that h2o creates every
 * connection's SSL from and that never changes for the life of the process: it holds the
 * protocol settings (TLS 1.2 and 1.3, Mozilla's intermediate ciphers), the session-ticket
 * callback (server/tls_ticket.c) and the SNI callback, but no certificate. The certificates
 * live in the site's current set: one SSL_CTX per certificate, each with the same protocol
 * settings, the ALPN callback (h2, http/1.1; the admin site's http/1.1 only) and, when the certificate names a responder,
 * the OCSP stapling callback (server/tls_ocsp.c).
 *
 * The SNI callback runs for every handshake, with or without a server name, on the loop
 * thread doing the handshake: under the site's read lock it picks the set's context for the
 * name and moves the connection onto it with SSL_set_SSL_CTX, which takes a reference of
 * its own on that context. So the invariant of a reload is: a context of the set is freed by
 * the set only while no SNI callback holds the read lock, and every connection that uses it
 * has its own reference. A reload (SIGHUP, main thread) reads and checks every file into a
 * new set with no lock held, then takes the write lock only to swap the set pointer, and
 * frees the old set after releasing it: the old contexts then live exactly as long as the
 * connections on them, and a bad file leaves the old set serving.
 *
 * A certificate is checked at start (tls_init) before anything listens or the store opens:
 * readable, PEM, a key that matches, or one line naming the setting and exit status 2.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <h2o.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "common/alloc.h"
#include "common/errbuf.h"
#include "server/tls.h"
#include "server/tls_int.h"

/* Mozilla's "intermediate" TLS 1.2 suites (TLS 1.3 keeps OpenSSL's defaults, all good) */
#define TLS_CIPHERS_12                                                                         \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS "X25519:P-256:P-384"
#define TLS_SID_CTX "edgecache"

typedef struct tls_certset {
    size_t count;
    SSL_CTX **ctxs;                 /* one per certificate, in the order of `certs` */
    const config_tls_cert_t *certs; /* borrowed: the config's, for the names */
} tls_certset_t;

typedef struct tls_site {
    const char *setting; /* "--tls-cert", "--admin-tls-cert": names it in messages */
    const config_tls_cert_t *certs;
    size_t num_certs;
    int http1_only; /* the admin site: no h2 by ALPN */
    SSL_CTX *front;
    pthread_rwlock_t lock; /* readers: SNI callbacks; writer: the swap of `set` */
    tls_certset_t *set;
} tls_site_t;

static tls_site_t g_proxy, g_admin;

/* ---------------------------------------------------------------- picking a certificate */

/* the default certificate of a list: one named "default" or "*", else the first */
static size_t default_cert(const config_tls_cert_t *certs, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (strcmp(certs[i].host, "default") == 0 || strcmp(certs[i].host, "*") == 0)
            return i;
    return 0;
}

size_t tls_pick_cert(const config_tls_cert_t *certs, size_t n, const char *name)
{
    if (name == NULL || name[0] == '\0' || n == 0)
        return default_cert(certs, n);
    for (size_t i = 0; i != n; ++i)
        if (strcasecmp(certs[i].host, name) == 0)
            return i;
    /* "*.example.com" covers exactly one label more than example.com, as in RFC 6125 */
    const char *dot = strchr(name, '.');
    if (dot != NULL && dot != name && dot[1] != '\0') {
        for (size_t i = 0; i != n; ++i)
            if (strncmp(certs[i].host, "*.", 2) == 0 && strcasecmp(certs[i].host + 2, dot + 1) == 0)
                return i;
    }
    return default_cert(certs, n);
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    tls_site_t *site = arg;
    (void)alert;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    pthread_rwlock_rdlock(&site->lock);
    tls_certset_t *set = site->set;
    if (set != NULL && set->count != 0) {
        SSL_CTX *ctx = set->ctxs[tls_pick_cert(set->certs, set->count, name)];
        if (SSL_get_SSL_CTX(ssl) != ctx)
            SSL_set_SSL_CTX(ssl, ctx); /* takes its own reference: the set may go once we unlock */
    }
    pthread_rwlock_unlock(&site->lock);
    return SSL_TLSEXT_ERR_OK;
}

/* ---------------------------------------------------------------- contexts */

/* the admin site's ALPN: h2 would let one connection hold 100 request bodies at once (h2o
 * 2.2.5 reads each whole before the token is looked at); see admin-api/admin.c */
static const h2o_iovec_t http1_alpn[] = {{H2O_STRLIT("http/1.1")}, {NULL, 0}};

/* what every context of ours shares: protocols, ciphers, no compression, one session id context */
static SSL_CTX *ctx_new_common(int http1_only)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1 || SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 ||
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SID_CTX, sizeof(TLS_SID_CTX) - 1) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* resumption is by tickets only (keys shared by every thread): no per-process session cache to bound */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    h2o_ssl_register_alpn_protocols(ctx, http1_only ? http1_alpn : h2o_http2_alpn_protocols);
    return ctx;
}

/* the last OpenSSL error as text (and the queue emptied) */
static const char *ossl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        snprintf(buf, cap, "unknown error");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

/* is the file readable? errno's words in err when not */
static int readable(const char *path, const char *who, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        errbuf_printf(err, errlen, "%s: %s: %s", who, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

/* one certificate's context: chain, key, their match, OCSP; NULL with err */
static SSL_CTX *cert_ctx_new(const char *setting, const config_tls_cert_t *c, int http1_only, char *err, size_t errlen)
{
    char who[1200], why[256];
    if (c->host[0] != '\0')
        snprintf(who, sizeof(who), "%s %s", setting, c->host);
    else
        snprintf(who, sizeof(who), "%s", setting);
    if (readable(c->cert, who, err, errlen) != 0 || readable(c->key, who, err, errlen) != 0)
        return NULL;
    SSL_CTX *ctx = ctx_new_common(http1_only);
    if (ctx == NULL) {
        errbuf_printf(err, errlen, "%s: cannot create a TLS context: %s", who, ossl_reason(why, sizeof(why)));
        return NULL;
    }
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
        errbuf_printf(err, errlen, "%s: %s: not a PEM certificate (%s)", who, c->cert, ossl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH || ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH)
            errbuf_printf(err, errlen, "%s: %s: key does not match the certificate %s", who, c->key, c->cert);
        else
            errbuf_printf(err, errlen, "%s: %s: not a PEM private key (%s)", who, c->key, ossl_reason(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        errbuf_printf(err, errlen, "%s: %s: key does not match the certificate %s", who, c->key, c->cert);
        goto fail;
    }
    if (tls_ocsp_attach(ctx) != 0) {
        errbuf_printf(err, errlen, "%s: cannot set up OCSP stapling: %s", who, ossl_reason(why, sizeof(why)));
        goto fail;
    }
    ERR_clear_error();
    return ctx;

fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

static void certset_free(tls_certset_t *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i != set->count; ++i)
        SSL_CTX_free(set->ctxs[i]); /* a connection still on it keeps its own reference */
    free(set->ctxs);
    free(set);
}

static tls_certset_t *certset_load(const tls_site_t *site, char *err, size_t errlen)
{
    tls_certset_t *set = alloc_xcalloc(1, sizeof(*set), "tls");
    set->ctxs = alloc_xcalloc(site->num_certs, sizeof(*set->ctxs), "tls");
    set->certs = site->certs;
    for (size_t i = 0; i != site->num_certs; ++i) {
        if ((set->ctxs[i] = cert_ctx_new(site->setting, &site->certs[i], site->http1_only, err, errlen)) == NULL) {
            certset_free(set);
            return NULL;
        }
        set->count = i + 1;
    }
    return set;
}

static int site_init(tls_site_t *site, const char *setting, const config_tls_cert_t *certs, size_t n, int http1_only,
                     char *err, size_t errlen)
{
    char why[256];
    site->setting = setting;
    site->http1_only = http1_only;
    site->certs = certs;
    site->num_certs = n;
    pthread_rwlock_init(&site->lock, NULL);
    if ((site->set = certset_load(site, err, errlen)) == NULL)
        return -1;
    if ((site->front = ctx_new_common(http1_only)) == NULL) {
        errbuf_printf(err, errlen, "%s: cannot create a TLS context: %s", setting, ossl_reason(why, sizeof(why)));
        return -1;
    }
    SSL_CTX_set_tlsext_servername_callback(site->front, on_servername);
    SSL_CTX_set_tlsext_servername_arg(site->front, site);
    tls_ticket_install(site->front);
    return 0;
}

static void site_dispose(tls_site_t *site)
{
    if (site->setting == NULL)
        return;
    certset_free(site->set);
    SSL_CTX_free(site->front);
    pthread_rwlock_destroy(&site->lock);
    memset(site, 0, sizeof(*site));
}

/* ---------------------------------------------------------------- the module */

int tls_init(const config_t *cfg, char *err, size_t errlen)
{
    if (cfg->num_tls_listen != 0 && site_init(&g_proxy, "--tls-cert", cfg->tls_certs, cfg->num_tls_certs, 0, err, errlen) != 0)
        goto fail;
    if (cfg->admin_tls_listen.host[0] != '\0' &&
        site_init(&g_admin, "--admin-tls-cert", &cfg->admin_tls_cert, 1, 1, err, errlen) != 0)
        goto fail;
    if (tls_ocsp_start(err, errlen) != 0)
        goto fail;
    return 0;

fail:
    tls_shutdown();
    return -1;
}

SSL_CTX *tls_proxy_ssl_ctx(void)
{
    return g_proxy.front;
}

SSL_CTX *tls_admin_ssl_ctx(void)
{
    return g_admin.front;
}

int tls_reload(size_t *count, char *err, size_t errlen)
{
    tls_site_t *sites[] = {&g_proxy, &g_admin};
    tls_certset_t *fresh[2] = {NULL, NULL};
    *count = 0;
    /* every file first, with no lock held: a bad one changes nothing */
    for (size_t i = 0; i != 2; ++i) {
        if (sites[i]->setting == NULL)
            continue;
        if ((fresh[i] = certset_load(sites[i], err, errlen)) == NULL) {
            certset_free(fresh[0]);
            return -1;
        }
        *count += fresh[i]->count;
    }
    for (size_t i = 0; i != 2; ++i) {
        if (fresh[i] == NULL)
            continue;
        pthread_rwlock_wrlock(&sites[i]->lock);
        tls_certset_t *old = sites[i]->set;
        sites[i]->set = fresh[i];
        pthread_rwlock_unlock(&sites[i]->lock);
        certset_free(old); /* no SNI callback can still be reading it: they hold the read lock while they do */
    }
    return tls_ocsp_start(err, errlen); /* the new certificates' responders, if the thread was not running */
}

void tls_shutdown(void)
{
    tls_ocsp_stop();
    site_dispose(&g_proxy);
    site_dispose(&g_admin);
    tls_ticket_shutdown();
}

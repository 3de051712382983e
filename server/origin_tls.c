/*
 * server/origin_tls.c — TLS to origins (see origin_tls.h): Fastly's TLS fields of a backend
 * read from JSON and checked, the OpenSSL client context built from them, and the verdict on
 * each handshake.
 *
 * What it owns. origin_tls_t: one SSL_CTX (one reference of OpenSSL's own count: every SSL made
 * from it holds another, so pooled and in-flight connections keep their context when the
 * backend is reconfigured), the SNI to send, and the state of the rate-limited log line.
 *
 * Verification. With ssl_check_cert the context has SSL_VERIFY_PEER, the trust anchors (the
 * backend's ssl_ca_cert, else the system store), and the name to check set on its
 * X509_VERIFY_PARAM (X509_VERIFY_PARAM_set1_host, or set1_ip_asc for an IP address): OpenSSL
 * checks chain, dates and name during the handshake and fails it, with a verify result h2o
 * reports as X509_verify_cert_error_string ("certificate has expired", "hostname mismatch"...).
 * The name checked is ssl_cert_hostname, else override_host, else the address; the SNI sent is
 * ssl_sni_hostname, else that same name, and none at all when it is an IP address (RFC 6066).
 * libh2o 2.2.5 checks the certificate against the SNI name by itself too (lib/common/socket.c,
 * openssl_hostname_validation), but only when SSL_connect finishes with nothing left to send
 * (a full TLS 1.2 handshake, not TLS 1.3), and against the SNI, which may rightly differ from
 * the certificate name: its "certificate name mismatch" / "invalid certificate" / "no
 * certificate" verdicts come after a completed handshake and are replaced by ours (with
 * SSL_VERIFY_PEER a completed handshake is a verified one; without it nothing is checked,
 * by the operator's choice, logged when the context is built). "No certificate" stays an
 * error while certificates are checked (a cipher list naming anonymous suites).
 *
 * Threads. Contexts are built on the admin or main thread and used by every worker and the
 * prober (OpenSSL 3 makes SSL_new on a shared SSL_CTX thread-safe); the verdicts run on the
 * thread of the connection.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "common/alloc.h"
#include "common/errbuf.h"
#include "common/now.h"
#include "server/origin_tls.h"
#include "server/text.h"

#define ORIGIN_TLS_MAGIC 0x07150c1au
#define LOG_INTERVAL_MS 1000

struct origin_tls {
    uint32_t magic;
    atomic_uint refs;
    SSL_CTX *ctx;
    int check_cert;
    char sni[ORIGIN_TLS_HOST_MAX + 1];  /* "" = none */
    char name[ORIGIN_TLS_HOST_MAX + 1]; /* the certificate name checked */
    char backend[160];
    char peer[ORIGIN_TLS_HOST_MAX + 16];
    _Atomic int64_t last_log_ms;
    atomic_uint suppressed;
};

/* ================================================================ fields */

void origin_tls_conf_defaults(origin_tls_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->ssl_check_cert = 1;
}

static char *pem_dup(const char *pem, size_t len)
{
    if (pem == NULL || len == 0)
        return NULL;
    char *p = alloc_xmalloc(len + 1, "origin tls");
    memcpy(p, pem, len);
    p[len] = '\0';
    return p;
}

void origin_tls_conf_set_pem(char **field, const char *pem, size_t len)
{
    char *p = pem_dup(pem, len); /* before the free: pem may be *field's own text */
    free(*field);
    *field = p;
}

void origin_tls_conf_copy(origin_tls_conf_t *dst, const origin_tls_conf_t *src)
{
    *dst = *src;
    dst->ssl_ca_cert = src->ssl_ca_cert != NULL ? pem_dup(src->ssl_ca_cert, strlen(src->ssl_ca_cert)) : NULL;
    dst->ssl_client_cert = src->ssl_client_cert != NULL ? pem_dup(src->ssl_client_cert, strlen(src->ssl_client_cert)) : NULL;
    dst->ssl_client_key = src->ssl_client_key != NULL ? pem_dup(src->ssl_client_key, strlen(src->ssl_client_key)) : NULL;
}

void origin_tls_conf_release(origin_tls_conf_t *c)
{
    free(c->ssl_ca_cert);
    free(c->ssl_client_cert);
    free(c->ssl_client_key);
    c->ssl_ca_cert = c->ssl_client_cert = c->ssl_client_key = NULL;
}

static int pem_equal(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int origin_tls_conf_equal(const origin_tls_conf_t *a, const origin_tls_conf_t *b)
{
    return memcmp(a, b, offsetof(origin_tls_conf_t, ssl_ca_cert)) == 0 && pem_equal(a->ssl_ca_cert, b->ssl_ca_cert) &&
           pem_equal(a->ssl_client_cert, b->ssl_client_cert) && pem_equal(a->ssl_client_key, b->ssl_client_key);
}

static int get_bool(const json_t *v, int *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = (int)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
            *out = 1;
        else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
            *out = 0;
        else
            return -1;
        return 0;
    }
    return -1;
}

static int host_ok(const char *s, size_t len)
{
    if (len == 0 || len > ORIGIN_TLS_HOST_MAX)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
              ch == '_' || ch == ':'))
            return 0;
    }
    return 1;
}

/* PEM text: printable ASCII and line ends, with a BEGIN line (parsed for real by the check) */
static int pem_ok(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\n' && ch != '\r' && ch != '\t') || ch >= 0x7f)
            return 0;
    }
    return strstr(s, "-----BEGIN ") != NULL;
}

static int ciphers_ok(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

/* a nullable string field into a cleared buffer */
static int set_str(const char *field, const json_t *v, char *out, size_t cap, int (*ok)(const char *, size_t),
                   const char *what, char *detail, size_t detail_len)
{
    if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        memset(out, 0, cap);
        return 0;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t len = s != NULL ? json_string_length(v) : 0;
    if (s == NULL || strlen(s) != len || len >= cap || !ok(s, len)) {
        errbuf_printf(detail, detail_len, "%s: must be %s (or null)", field, what);
        return -1;
    }
    memset(out, 0, cap);
    memcpy(out, s, len);
    return 0;
}

/* a nullable PEM field: checked as set_str does, then a malloc'd copy (NULL when none) */
static int set_pem(const char *field, const json_t *v, char **out, size_t max, const char *what, char *detail, size_t detail_len)
{
    if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        origin_tls_conf_set_pem(out, NULL, 0);
        return 0;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t len = s != NULL ? json_string_length(v) : 0;
    if (s == NULL || strlen(s) != len || len > max || !pem_ok(s, len)) {
        errbuf_printf(detail, detail_len, "%s: must be %s (or null)", field, what);
        return -1;
    }
    origin_tls_conf_set_pem(out, s, len);
    return 0;
}

static int set_version(const char *field, const json_t *v, uint8_t *out, char *detail, size_t detail_len)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (json_is_null(v) || (s != NULL && s[0] == '\0'))
        *out = 0;
    else if (s != NULL && strcmp(s, "1.2") == 0)
        *out = ORIGIN_TLS_V12;
    else if (s != NULL && strcmp(s, "1.3") == 0)
        *out = ORIGIN_TLS_V13;
    else if (s != NULL && (strcmp(s, "1.0") == 0 || strcmp(s, "1.1") == 0 || strcmp(s, "1") == 0)) {
        errbuf_printf(detail, detail_len, "%s: TLS %s is not supported (\"1.2\" or \"1.3\")", field, s);
        return -1;
    } else {
        errbuf_printf(detail, detail_len, "%s: must be \"1.2\", \"1.3\" or null", field);
        return -1;
    }
    return 0;
}

int origin_tls_conf_apply_field(origin_tls_conf_t *c, const char *key, const json_t *v, int *rc, char *detail, size_t detail_len)
{
#define PEM_WHAT "PEM text (-----BEGIN ...)"
    *rc = 0;
    if (strcmp(key, "use_ssl") == 0 || strcmp(key, "ssl_check_cert") == 0) {
        int b;
        if (get_bool(v, &b) != 0) {
            errbuf_printf(detail, detail_len, "%s: must be true or false", key);
            *rc = -1;
        } else {
            *(key[0] == 'u' ? &c->use_ssl : &c->ssl_check_cert) = b;
        }
    } else if (strcmp(key, "ssl_cert_hostname") == 0) {
        *rc = set_str(key, v, c->ssl_cert_hostname, sizeof(c->ssl_cert_hostname), host_ok, "a host name or IP address", detail,
                      detail_len);
    } else if (strcmp(key, "ssl_sni_hostname") == 0) {
        *rc = set_str(key, v, c->ssl_sni_hostname, sizeof(c->ssl_sni_hostname), host_ok, "a host name", detail, detail_len);
    } else if (strcmp(key, "ssl_hostname") == 0) {
        /* Fastly's older field: both names at once; null (as Fastly echoes it) changes nothing */
        if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
            return 1;
        if ((*rc = set_str(key, v, c->ssl_cert_hostname, sizeof(c->ssl_cert_hostname), host_ok, "a host name", detail,
                           detail_len)) == 0)
            memcpy(c->ssl_sni_hostname, c->ssl_cert_hostname, sizeof(c->ssl_sni_hostname));
    } else if (strcmp(key, "min_tls_version") == 0) {
        *rc = set_version(key, v, &c->min_tls_version, detail, detail_len);
    } else if (strcmp(key, "max_tls_version") == 0) {
        *rc = set_version(key, v, &c->max_tls_version, detail, detail_len);
    } else if (strcmp(key, "ssl_ciphers") == 0) {
        *rc = set_str(key, v, c->ssl_ciphers, sizeof(c->ssl_ciphers), ciphers_ok,
                      "an OpenSSL cipher list without spaces (at most 1024 characters)", detail, detail_len);
    } else if (strcmp(key, "ssl_ca_cert") == 0) {
        *rc = set_pem(key, v, &c->ssl_ca_cert, ORIGIN_TLS_PEM_MAX, PEM_WHAT ", at most 16384 bytes", detail, detail_len);
    } else if (strcmp(key, "ssl_client_cert") == 0) {
        *rc = set_pem(key, v, &c->ssl_client_cert, ORIGIN_TLS_PEM_MAX, PEM_WHAT ", at most 16384 bytes", detail, detail_len);
    } else if (strcmp(key, "ssl_client_key") == 0) {
        if (json_is_string(v) && strcmp(json_string_value(v), ORIGIN_TLS_KEY_REDACTED) == 0) {
            /* a GET answer sent back as it was: the key stays */
            if (c->ssl_client_key == NULL) {
                errbuf_printf(detail, detail_len, "ssl_client_key: no key is set to keep; send the key's PEM text");
                *rc = -1;
            }
        } else {
            *rc = set_pem(key, v, &c->ssl_client_key, ORIGIN_TLS_KEY_MAX, PEM_WHAT ", at most 8192 bytes", detail, detail_len);
        }
    } else {
        return 0;
    }
    return 1;
#undef PEM_WHAT
}

static json_t *str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *version_json(uint8_t v)
{
    return v == ORIGIN_TLS_V12 ? json_string("1.2") : v == ORIGIN_TLS_V13 ? json_string("1.3") : json_null();
}

void origin_tls_conf_to_json(const origin_tls_conf_t *c, json_t *o, int with_key)
{
    json_object_set_new(o, "use_ssl", json_boolean(c->use_ssl));
    json_object_set_new(o, "ssl_check_cert", json_boolean(c->ssl_check_cert));
    json_object_set_new(o, "ssl_cert_hostname", str_or_null(c->ssl_cert_hostname));
    json_object_set_new(o, "ssl_sni_hostname", str_or_null(c->ssl_sni_hostname));
    json_object_set_new(o, "min_tls_version", version_json(c->min_tls_version));
    json_object_set_new(o, "max_tls_version", version_json(c->max_tls_version));
    json_object_set_new(o, "ssl_ciphers", str_or_null(c->ssl_ciphers));
    json_object_set_new(o, "ssl_ca_cert", str_or_null(c->ssl_ca_cert));
    json_object_set_new(o, "ssl_client_cert", str_or_null(c->ssl_client_cert));
    json_object_set_new(o, "ssl_client_key",
                        with_key || c->ssl_client_key == NULL ? str_or_null(c->ssl_client_key)
                                                              : json_string(ORIGIN_TLS_KEY_REDACTED));
}

/* ================================================================ the context */

/* an encrypted key is refused rather than prompting on the terminal (OpenSSL's default callback) */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* OpenSSL's reason for the newest error, for a detail */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    return r != NULL ? r : "not understood";
}

/* every certificate of a PEM text, in order, to fn; the count, or -1 when one does not parse */
static int pem_certs(const char *pem, int (*fn)(SSL_CTX *, X509 *, int), SSL_CTX *ctx)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)strlen(pem));
    int n = 0;
    X509 *x;
    if (bio == NULL)
        alloc_die("origin tls", 0);
    while ((x = PEM_read_bio_X509(bio, NULL, no_password, NULL)) != NULL) {
        int rc = fn(ctx, x, n);
        X509_free(x);
        if (rc != 0) {
            n = -1;
            break;
        }
        ++n;
    }
    if (n >= 0) {
        unsigned long e = ERR_peek_last_error();
        /* the reader ends with "no start line": anything else is a damaged certificate */
        if (n == 0 || (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)))
            n = -1;
    }
    BIO_free(bio);
    return n;
}

static int add_trust_anchor(SSL_CTX *ctx, X509 *x, int i)
{
    (void)i;
    return X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x) == 1 ? 0 : -1;
}

static int add_client_cert(SSL_CTX *ctx, X509 *x, int i)
{
    return (i == 0 ? SSL_CTX_use_certificate(ctx, x) : SSL_CTX_add1_chain_cert(ctx, x)) == 1 ? 0 : -1;
}

static int ip_literal(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* the context for c; `name` (NULL when only checking) is what the certificate must carry.
 * system_store: load the system's trust anchors when c gives none. */
static SSL_CTX *build_ctx(const origin_tls_conf_t *c, const char *name, int system_store, char *detail, size_t len)
{
    static const int versions[] = {[ORIGIN_TLS_V12] = TLS1_2_VERSION, [ORIGIN_TLS_V13] = TLS1_3_VERSION};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        alloc_die("origin tls", 0);
    ERR_clear_error();
    if (c->min_tls_version != 0 && c->max_tls_version != 0 && c->min_tls_version > c->max_tls_version) {
        errbuf_printf(detail, len, "min_tls_version: must not be above max_tls_version");
        goto fail;
    }
    /* TLS 1.0 and 1.1 are never offered: modern defaults, as OpenSSL 3's security levels want */
    SSL_CTX_set_min_proto_version(ctx, versions[c->min_tls_version != 0 ? c->min_tls_version : ORIGIN_TLS_V12]);
    if (c->max_tls_version != 0)
        SSL_CTX_set_max_proto_version(ctx, versions[c->max_tls_version]);
    if (c->ssl_ciphers[0] != '\0' && SSL_CTX_set_cipher_list(ctx, c->ssl_ciphers) != 1) {
        errbuf_printf(detail, len, "ssl_ciphers: OpenSSL takes no cipher from this list (%s)", ssl_reason());
        goto fail;
    }
    if (c->ssl_ca_cert != NULL && pem_certs(c->ssl_ca_cert, add_trust_anchor, ctx) < 0) {
        errbuf_printf(detail, len, "ssl_ca_cert: not PEM certificates (%s)", ssl_reason());
        goto fail;
    }
    if ((c->ssl_client_cert != NULL) != (c->ssl_client_key != NULL)) {
        errbuf_printf(detail, len, "%s: required with %s", c->ssl_client_cert != NULL ? "ssl_client_key" : "ssl_client_cert",
                      c->ssl_client_cert != NULL ? "ssl_client_cert" : "ssl_client_key");
        goto fail;
    }
    if (c->ssl_client_cert != NULL) {
        if (pem_certs(c->ssl_client_cert, add_client_cert, ctx) < 0) {
            errbuf_printf(detail, len, "ssl_client_cert: not a PEM certificate chain (%s)", ssl_reason());
            goto fail;
        }
        BIO *bio = BIO_new_mem_buf(c->ssl_client_key, (int)strlen(c->ssl_client_key));
        if (bio == NULL)
            alloc_die("origin tls", 0);
        EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
        BIO_free(bio);
        if (key == NULL) {
            errbuf_printf(detail, len, "ssl_client_key: not an unencrypted PEM private key (%s)", ssl_reason());
            goto fail;
        }
        int ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
        EVP_PKEY_free(key);
        if (!ok) {
            errbuf_printf(detail, len, "ssl_client_key: does not match ssl_client_cert");
            goto fail;
        }
    }
    if (c->ssl_check_cert) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (c->ssl_ca_cert == NULL && system_store && SSL_CTX_set_default_verify_paths(ctx) != 1) {
            errbuf_printf(detail, len, "ssl_ca_cert: the system's trust store cannot be read (%s); give one", ssl_reason());
            goto fail;
        }
        if (name != NULL && name[0] == '\0') { /* OpenSSL takes "" as "no name to check": never that */
            errbuf_printf(detail, len, "ssl_cert_hostname: required (override_host names no host)");
            goto fail;
        }
        if (name != NULL) {
            X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
            X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if ((ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name) : X509_VERIFY_PARAM_set1_host(param, name, 0)) !=
                1) {
                errbuf_printf(detail, len, "ssl_cert_hostname: '%s' cannot be checked against a certificate", name);
                goto fail;
            }
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

int origin_tls_conf_check(const origin_tls_conf_t *c, char *detail, size_t detail_len)
{
    if (!c->use_ssl && c->ssl_ca_cert == NULL && c->ssl_client_cert == NULL && c->ssl_client_key == NULL &&
        c->ssl_ciphers[0] == '\0' && c->min_tls_version == 0 && c->max_tls_version == 0)
        return 0;
    /* the same build the connections use, without the system store (a check need not read it) */
    SSL_CTX *ctx = build_ctx(c, NULL, 0, detail, detail_len);
    if (ctx == NULL)
        return -1;
    SSL_CTX_free(ctx);
    return 0;
}

int origin_tls_new(const origin_tls_conf_t *c, const char *backend_name, const char *peer, const char *default_name,
                   origin_tls_t **out, char *detail, size_t detail_len)
{
    const char *name = c->ssl_cert_hostname[0] != '\0' ? c->ssl_cert_hostname : default_name;
    const char *sni = c->ssl_sni_hostname[0] != '\0' ? c->ssl_sni_hostname : name;
    SSL_CTX *ctx = build_ctx(c, name, 1, detail, detail_len);
    if (ctx == NULL)
        return -1;
    origin_tls_t *t = alloc_xcalloc(1, sizeof(*t), "origin tls");
    t->magic = ORIGIN_TLS_MAGIC;
    atomic_init(&t->refs, 1);
    t->ctx = ctx;
    t->check_cert = c->ssl_check_cert;
    if (!ip_literal(sni))
        snprintf(t->sni, sizeof(t->sni), "%s", sni);
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->backend, sizeof(t->backend), "%s", backend_name);
    snprintf(t->peer, sizeof(t->peer), "%s", peer);
    if (!c->ssl_check_cert)
        fprintf(stderr, "edgecache: warning: backend '%s': ssl_check_cert is false: the certificate of %s is not verified\n",
                t->backend, t->peer);
    *out = t;
    return 0;
}

origin_tls_t *origin_tls_ref(origin_tls_t *t)
{
    assert(t->magic == ORIGIN_TLS_MAGIC);
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void origin_tls_unref(origin_tls_t **tp)
{
    origin_tls_t *t = *tp;
    *tp = NULL;
    if (t == NULL)
        return;
    assert(t->magic == ORIGIN_TLS_MAGIC);
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        SSL_CTX_free(t->ctx);
        t->magic = 0;
        free(t);
    }
}

/* ================================================================ connections */

void origin_tls_handshake(origin_tls_t *t, h2o_socket_t *sock, h2o_socket_cb cb)
{
    assert(t->magic == ORIGIN_TLS_MAGIC);
    /* h2o takes a NULL name for a server handshake; "" makes it a client that sends no SNI
     * (OpenSSL refuses an empty host name, and h2o ignores that refusal) */
    h2o_socket_ssl_handshake(sock, t->ctx, t->sni, cb);
}

/* one line a second per backend at most; the others are counted and reported with the next */
static void log_failure(origin_tls_t *t, const char *what, const char *reason)
{
    int64_t now = now_mono_ms(), last = atomic_load_explicit(&t->last_log_ms, memory_order_relaxed);
    if ((last != 0 && now - last < LOG_INTERVAL_MS) ||
        !atomic_compare_exchange_strong_explicit(&t->last_log_ms, &last, now, memory_order_relaxed, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&t->suppressed, 1, memory_order_relaxed);
        return;
    }
    unsigned more = atomic_exchange_explicit(&t->suppressed, 0, memory_order_relaxed);
    char shown[200];
    fprintf(stderr, "edgecache: backend '%s' (%s): TLS %s: %s (certificate name '%s')", t->backend, t->peer, what,
            text_escape(shown, sizeof(shown), reason, strlen(reason)), t->name);
    if (more != 0)
        fprintf(stderr, " [%u more failures since the last line]", more);
    fputc('\n', stderr);
}

const char *origin_tls_handshake_verdict(origin_tls_t *t, const char *err, char *buf, size_t len)
{
    assert(t->magic == ORIGIN_TLS_MAGIC);
    const char *reason = err;
    if (err == NULL)
        return NULL;
    /* h2o's own name check, after a completed handshake: ours (OpenSSL's) replaced it (see the essay) */
    if (err == h2o_socket_error_ssl_cert_name_mismatch || err == h2o_socket_error_ssl_cert_invalid ||
        (err == h2o_socket_error_ssl_no_cert && !t->check_cert)) {
        ERR_clear_error();
        return NULL;
    }
    if (err == h2o_socket_error_ssl_no_cert)
        reason = "the origin sent no certificate";
    else if (strcmp(err, "ssl handshake failure") == 0 && ERR_peek_last_error() != 0)
        reason = ssl_reason(); /* h2o's words say nothing: OpenSSL's say why ("tlsv1 alert protocol version") */
    errbuf_printf(buf, len, "TLS handshake failed: %s", reason);
    ERR_clear_error();
    log_failure(t, "handshake failed", reason);
    return buf;
}

const char *origin_tls_io_error(origin_tls_t *t, const char *what, const char *h2o_err, char *buf, size_t len)
{
    assert(t->magic == ORIGIN_TLS_MAGIC);
    /* a reset can come before h2o decodes the alert that preceded it: then h2o's words are all we have */
    static const char lost[] = "the origin ended the connection before any response (after a TLS 1.3 handshake, "
                               "so does a refused client certificate)";
    const char *reason = ERR_peek_last_error() != 0 ? ssl_reason() : h2o_err != NULL ? h2o_err : lost;
    errbuf_printf(buf, len, "TLS error (%s): %s", what, reason);
    ERR_clear_error();
    char said[160];
    errbuf_printf(said, sizeof(said), "error (%s)", what);
    log_failure(t, said, reason);
    return buf;
}

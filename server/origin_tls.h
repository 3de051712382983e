/*
 * server/origin_tls.h — TLS to origins: Fastly's TLS fields of a backend as values, the
 * OpenSSL client context built from them, and the verdict on a finished handshake.
 *
 * A backend with use_ssl gets one origin_tls_t per version of its configuration (built when
 * the backend is configured, shared by versions whose TLS settings did not change), which
 * every connection to it is made with. It is reference counted; an SSL connection also holds
 * its own reference to the SSL_CTX (OpenSSL's), so a pooled or in-flight connection outlives a
 * configuration change safely.
 */
#ifndef EDGECACHE_ORIGIN_TLS_H
#define EDGECACHE_ORIGIN_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include <jansson.h>

#define ORIGIN_TLS_HOST_MAX 255
#define ORIGIN_TLS_CIPHERS_MAX 1024
#define ORIGIN_TLS_PEM_MAX 16384 /* ssl_ca_cert, ssl_client_cert: a few certificates */
#define ORIGIN_TLS_KEY_MAX 8192  /* ssl_client_key: an RSA-4096 key is about 3.3 KB */

/* min_tls_version / max_tls_version: 0 = not set (OpenSSL's default range), else 12 or 13 */
#define ORIGIN_TLS_V12 12
#define ORIGIN_TLS_V13 13

/* Fastly's TLS fields of a backend (strings: "" = not set). The fixed fields are compared with
 * memcmp, so whole buffers are cleared before a string is stored. The PEM fields are malloc'd
 * (NULL = not set) and owned by the value: a configuration uses a few KB of its 40 KB of room, and
 * the backend set holds one copy per backend (inline, they made the whole configuration ~2.9 MB).
 * Copy with origin_tls_conf_copy, compare with origin_tls_conf_equal, release with
 * origin_tls_conf_release; a plain struct copy moves ownership (the source must then be dropped,
 * not released). */
typedef struct origin_tls_conf {
    int use_ssl;        /* default false */
    int ssl_check_cert; /* default true */
    uint8_t min_tls_version, max_tls_version;
    char ssl_cert_hostname[ORIGIN_TLS_HOST_MAX + 1]; /* checked against the certificate; "" = override_host, else address */
    char ssl_sni_hostname[ORIGIN_TLS_HOST_MAX + 1];  /* sent as SNI; "" = the certificate name (none when an IP address) */
    char ssl_ciphers[ORIGIN_TLS_CIPHERS_MAX + 1];    /* OpenSSL cipher list (TLS 1.2); "" = OpenSSL's default */
    /* the PEM fields last: origin_tls_conf_equal compares what is before them with memcmp */
    char *ssl_ca_cert;     /* PEM, at most ORIGIN_TLS_PEM_MAX bytes; NULL = the system's trust store */
    char *ssl_client_cert; /* PEM, leaf first then its chain, at most ORIGIN_TLS_PEM_MAX bytes; NULL = none */
    char *ssl_client_key;  /* PEM, unencrypted, at most ORIGIN_TLS_KEY_MAX bytes; NULL = none */
} origin_tls_conf_t;

/* what a GET answer shows for a configured ssl_client_key; sent back, it keeps the key */
#define ORIGIN_TLS_KEY_REDACTED "(redacted)"

/** Fastly's defaults: no TLS, certificates checked. *c must hold no PEM (fresh, or released). */
void origin_tls_conf_defaults(origin_tls_conf_t *c);

/** Make *dst a copy of *src with its own PEM strings. *dst must hold none (fresh, or released). */
void origin_tls_conf_copy(origin_tls_conf_t *dst, const origin_tls_conf_t *src);

/** Free the PEM strings *c owns and set them to NULL (the rest is left as it is). */
void origin_tls_conf_release(origin_tls_conf_t *c);

/** 1 when a and b are the same settings (the PEM fields compared by content), else 0. */
int origin_tls_conf_equal(const origin_tls_conf_t *a, const origin_tls_conf_t *b);

/**
 * Set a PEM field of *c (one of &c->ssl_ca_cert, &c->ssl_client_cert, &c->ssl_client_key) to a
 * copy of the len bytes at pem (NULL or len 0: not set), freeing what it held. No check: the
 * callers check the text (origin_tls_conf_check).
 */
void origin_tls_conf_set_pem(char **field, const char *pem, size_t len);

/**
 * Apply one field of a backend's JSON object if `key` is a TLS field: returns 1 and sets *rc
 * (0, or BACKEND_EINVAL-style -1 with detail "<field>: why"), or returns 0 when key is not one
 * (nothing touched). Booleans accept true/false, 0/1 and "true"/"false"/"1"/"0" (form bodies);
 * strings accept null or "" for none. `ssl_hostname` (Fastly's deprecated field) sets both
 * ssl_cert_hostname and ssl_sni_hostname; its null changes nothing. Borrows v.
 */
int origin_tls_conf_apply_field(origin_tls_conf_t *c, const char *key, const json_t *v, int *rc, char *detail,
                                size_t detail_len);

/**
 * Check a whole TLS configuration (after every field was applied): PEM that parses, a client
 * key that matches its certificate (both or neither), min <= max, a cipher list OpenSSL takes.
 * Does nothing for use_ssl false beyond the syntax already checked. Returns 0 or -1 with detail
 * naming the field. Any thread; leaves OpenSSL's error queue empty.
 */
int origin_tls_conf_check(const origin_tls_conf_t *c, char *detail, size_t detail_len);

/** Add the TLS fields to obj (Fastly's names; "" as null). with_key 0 shows a set key as ORIGIN_TLS_KEY_REDACTED. */
void origin_tls_conf_to_json(const origin_tls_conf_t *c, json_t *obj, int with_key);

typedef struct origin_tls origin_tls_t;

/**
 * Build the client context of a backend: its CA (or the system store), client certificate,
 * versions, ciphers and the name its certificate must carry. `backend_name` and `peer` ("host:port")
 * name it in log lines; `default_name` is the backend's override_host (without a port), else its
 * address. Logs once when certificate checks are off. Returns 0 and *out (a new reference), or -1
 * with detail naming the field. Any thread.
 */
int origin_tls_new(const origin_tls_conf_t *c, const char *backend_name, const char *peer, const char *default_name,
                   origin_tls_t **out, char *detail, size_t detail_len);

/** One more reference (returned). Any thread. */
origin_tls_t *origin_tls_ref(origin_tls_t *t);

/** Drop a reference (*t may be NULL); the last one frees the context. Sets *t to NULL. Any thread. */
void origin_tls_unref(origin_tls_t **t);

/**
 * Start the client handshake on a newly connected socket (h2o_socket_ssl_handshake with our
 * context and SNI). `cb` is called once, with h2o's error or NULL; pass that error to
 * origin_tls_handshake_verdict. Borrows t until cb has run.
 */
void origin_tls_handshake(origin_tls_t *t, h2o_socket_t *sock, h2o_socket_cb cb);

/**
 * The verdict on a finished handshake, given h2o's error: NULL when the connection may carry
 * requests, else an error string (one of OpenSSL's verify or reason strings, or written to buf)
 * valid until buf is reused; a failure is logged, naming the backend and the reason (at most
 * one line a second per backend, with a count of those left out). Call right after h2o's
 * callback on the same thread: it reads OpenSSL's error queue.
 */
const char *origin_tls_handshake_verdict(origin_tls_t *t, const char *h2o_err, char *buf, size_t len);

/**
 * An error on an established TLS connection: the reason from OpenSSL's error queue ("tlsv13
 * alert certificate required"), else h2o's error `h2o_err` (may be NULL: a connection lost
 * right after its handshake), written to buf as "TLS error (<what>): <reason>" and logged as
 * above. `what` says what was being done. Returns buf.
 */
const char *origin_tls_io_error(origin_tls_t *t, const char *what, const char *h2o_err, char *buf, size_t len);

#endif

/*
 * server/tls_ocsp.c — OCSP stapling for certificates that name a responder.
 *
 * A certificate whose authorityInfoAccess names an OCSP responder (and whose issuer is in
 * the chain loaded with it) gets a stapling state: the request's certificate id, the
 * responder's URL, the issuer (to check the answer's signature) and the last good answer
 * in DER. One background thread (ec-ocsp) asks each responder over HTTP with OpenSSL's own
 * client (OSSL_HTTP_transfer, 10 s timeout) on a socket it connects itself, so that a
 * refused connection fails at once (OpenSSL's own connect retries until its timeout) and
 * tls_ocsp_stop can cut a fetch short (shutdown of that socket) instead of waiting for
 * it; it checks the answer (signed by the issuer or a
 * responder it delegated to, about this certificate, within its validity), keeps it, and
 * asks again halfway to its nextUpdate (an hour when it has none; a minute after a
 * failure). A handshake that asks for a staple (status_request) gets a copy of the last
 * good answer while it is still valid, else none: a responder that is down never stops a
 * handshake.
 *
 * Lifetime: a state belongs to its SSL_CTX (ex_data; freed with the context, so after the
 * last connection on a certificate replaced by a reload) and to the thread's list; each
 * holds a reference. The thread drops the list's reference of a state whose context is
 * gone. Threads: status callbacks run on the loop threads; the fetch runs on the OCSP
 * thread; `lock` guards a state's answer, `g_lock` the list and the thread's start/stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include "common/alloc.h"
#include "common/errbuf.h"
#include "server/tls_int.h"

#define OCSP_TIMEOUT_S 10
#define OCSP_RETRY_S 60
#define OCSP_NO_NEXT_UPDATE_S 3600
#define OCSP_MAX_RESPONSE (100 * 1024)

typedef struct ocsp_state {
    atomic_int refs;
    atomic_int ctx_gone; /* its SSL_CTX was freed: the thread forgets it */
    char *url;
    OCSP_CERTID *id;
    X509 *leaf, *issuer;
    STACK_OF(X509) * chain; /* to find a delegated responder's certificate */
    pthread_mutex_t lock;   /* the answer below */
    unsigned char *der;
    int der_len;
    time_t valid_until; /* nextUpdate (or fetch time + OCSP_NO_NEXT_UPDATE_S) */
    time_t next_fetch;  /* the OCSP thread's only */
    struct ocsp_state *next;
} ocsp_state_t;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wake = PTHREAD_COND_INITIALIZER;
static ocsp_state_t *g_states;
static int g_running, g_stopping;
static int g_fetch_fd = -1; /* the socket of the fetch under way (g_lock), for tls_ocsp_stop to cut */
static pthread_t g_thread;
static int g_ex_index = -1;
static pthread_once_t g_ex_once = PTHREAD_ONCE_INIT;

static void state_unref(ocsp_state_t *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->url);
    OCSP_CERTID_free(s->id);
    X509_free(s->leaf);
    X509_free(s->issuer);
    sk_X509_pop_free(s->chain, X509_free);
    free(s->der);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static void on_ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    ocsp_state_t *s = ptr;
    if (s == NULL)
        return;
    atomic_store(&s->ctx_gone, 1);
    state_unref(s);
}

static void ex_index_init(void)
{
    g_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, on_ctx_free);
}

/* a handshake asked for a staple: the last good answer, if still valid */
static int on_status(SSL *ssl, void *arg)
{
    (void)arg;
    ocsp_state_t *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), g_ex_index);
    unsigned char *copy = NULL;
    int len = 0;
    if (s == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    pthread_mutex_lock(&s->lock);
    if (s->der != NULL && time(NULL) < s->valid_until && (copy = OPENSSL_malloc((size_t)s->der_len)) != NULL) {
        memcpy(copy, s->der, (size_t)s->der_len);
        len = s->der_len;
    }
    pthread_mutex_unlock(&s->lock);
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, len); /* OpenSSL frees it */
    return SSL_TLSEXT_ERR_OK;
}

int tls_ocsp_attach(SSL_CTX *ctx)
{
    X509 *leaf = SSL_CTX_get0_certificate(ctx), *issuer = NULL;
    STACK_OF(X509) *chain = NULL;
    STACK_OF(OPENSSL_STRING) *urls = leaf != NULL ? X509_get1_ocsp(leaf) : NULL;
    if (urls == NULL || sk_OPENSSL_STRING_num(urls) == 0) {
        X509_email_free(urls);
        return 0; /* no responder named: nothing to staple */
    }
    SSL_CTX_get0_chain_certs(ctx, &chain);
    for (int i = 0; chain != NULL && i < sk_X509_num(chain) && issuer == NULL; ++i)
        if (X509_check_issued(sk_X509_value(chain, i), leaf) == X509_V_OK)
            issuer = sk_X509_value(chain, i);
    if (issuer == NULL) {
        fprintf(stderr,
                "edgecache: OCSP: the certificate of %s names a responder but its issuer is not in its "
                "file: no stapling\n",
                sk_OPENSSL_STRING_value(urls, 0));
        X509_email_free(urls);
        return 0;
    }
    pthread_once(&g_ex_once, ex_index_init);
    if (g_ex_index < 0) {
        X509_email_free(urls);
        return -1;
    }
    ocsp_state_t *s = alloc_xcalloc(1, sizeof(*s), "tls ocsp");
    atomic_init(&s->refs, 2); /* the context's and the list's */
    s->url = strdup(sk_OPENSSL_STRING_value(urls, 0));
    X509_email_free(urls);
    s->id = OCSP_cert_to_id(NULL, leaf, issuer);
    s->chain = X509_chain_up_ref(chain);
    if (s->url == NULL || s->id == NULL || s->chain == NULL || X509_up_ref(leaf) != 1 || X509_up_ref(issuer) != 1) {
        free(s->url);
        OCSP_CERTID_free(s->id);
        sk_X509_pop_free(s->chain, X509_free);
        free(s);
        return -1;
    }
    s->leaf = leaf;
    s->issuer = issuer;
    pthread_mutex_init(&s->lock, NULL);
    if (SSL_CTX_set_ex_data(ctx, g_ex_index, s) != 1) {
        atomic_store(&s->refs, 1);
        state_unref(s);
        return -1;
    }
    SSL_CTX_set_tlsext_status_cb(ctx, on_status);
    pthread_mutex_lock(&g_lock);
    s->next = g_states;
    g_states = s;
    pthread_cond_signal(&g_wake);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

static int stopping(void)
{
    pthread_mutex_lock(&g_lock);
    int s = g_stopping;
    pthread_mutex_unlock(&g_lock);
    return s;
}

/* a connected non-blocking socket to host:port, published in g_fetch_fd; -1 with why */
static int responder_connect(const char *host, const char *port, char *why, size_t whylen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res), fd = -1, err = 0;
    if (gai != 0) {
        errbuf_printf(why, whylen, "%s: %s", host, gai_strerror(gai));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1 || (connect(fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS)) {
        err = errno;
        goto fail;
    }
    /* wait for the connect in short steps, so that a stop is seen */
    for (int waited_ms = 0;; waited_ms += 100) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, 100);
        if (n == 1) {
            socklen_t len = sizeof(err);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
            if (err != 0)
                goto fail;
            break;
        }
        if (stopping()) {
            err = ECANCELED;
            goto fail;
        }
        if (waited_ms >= OCSP_TIMEOUT_S * 1000) {
            err = ETIMEDOUT;
            goto fail;
        }
    }
    freeaddrinfo(res);
    res = NULL;
    /* blocking from here, bounded by socket timeouts: OpenSSL's HTTP client then simply reads,
     * and a shutdown from tls_ocsp_stop wakes it */
    struct timeval tv = {.tv_sec = OCSP_TIMEOUT_S, .tv_usec = 0};
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        err = errno;
        goto fail;
    }
    pthread_mutex_lock(&g_lock);
    g_fetch_fd = g_stopping ? -1 : fd;
    pthread_mutex_unlock(&g_lock);
    if (g_fetch_fd == -1) {
        close(fd);
        errbuf_printf(why, whylen, "stopping");
        return -1;
    }
    return fd;

fail:
    errbuf_printf(why, whylen, "cannot connect: %s", strerror(err));
    if (fd != -1)
        close(fd);
    if (res != NULL)
        freeaddrinfo(res);
    return -1;
}

static void responder_close(int fd)
{
    pthread_mutex_lock(&g_lock);
    g_fetch_fd = -1;
    pthread_mutex_unlock(&g_lock);
    close(fd);
}

static time_t asn1_time_to_time(const ASN1_GENERALIZEDTIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

/* one request to the responder and the checks of its answer; 0 with the answer stored, -1 with why */
static int fetch_one(ocsp_state_t *s, char *why, size_t whylen)
{
    char *host = NULL, *port = NULL, *path = NULL;
    int use_ssl = 0, rc = -1, status, reason;
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = OCSP_CERTID_dup(s->id);
    BIO *req_bio = NULL, *resp_bio = NULL, *sock_bio = NULL;
    int fd = -1;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *basic = NULL;
    X509_STORE *store = NULL;
    ASN1_GENERALIZEDTIME *rev = NULL, *this_upd = NULL, *next_upd = NULL;
    unsigned char *der = NULL;

    if (req == NULL || id == NULL || OCSP_request_add0_id(req, id) == NULL) {
        OCSP_CERTID_free(id);
        errbuf_printf(why, whylen, "cannot build the request");
        goto done;
    }
    if (OSSL_HTTP_parse_url(s->url, &use_ssl, NULL, &host, &port, NULL, &path, NULL, NULL) != 1 || use_ssl) {
        errbuf_printf(why, whylen, "unusable responder URL (http:// only)");
        goto done;
    }
    if ((fd = responder_connect(host, port, why, whylen)) == -1)
        goto done;
    req_bio = ASN1_item_i2d_mem_bio(ASN1_ITEM_rptr(OCSP_REQUEST), (const ASN1_VALUE *)req);
    sock_bio = BIO_new_socket(fd, BIO_NOCLOSE);
    resp_bio = req_bio == NULL || sock_bio == NULL
                   ? NULL
                   : OSSL_HTTP_transfer(NULL, host, port, path, 0, NULL, NULL, sock_bio, sock_bio, NULL, NULL, 0, NULL,
                                        "application/ocsp-request", req_bio, "application/ocsp-response", 1, OCSP_MAX_RESPONSE,
                                        OCSP_TIMEOUT_S, 0);
    if (resp_bio == NULL || (resp = d2i_OCSP_RESPONSE_bio(resp_bio, NULL)) == NULL) {
        unsigned long e = ERR_peek_last_error();
        errbuf_printf(why, whylen, "no answer from the responder (%s)", e != 0 ? ERR_reason_error_string(e) : "?");
        goto done;
    }
    if ((status = OCSP_response_status(resp)) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        errbuf_printf(why, whylen, "the responder answered %s", OCSP_response_status_str(status));
        goto done;
    }
    /* signed by the issuer itself or by a responder certificate the issuer signed */
    store = X509_STORE_new();
    if ((basic = OCSP_response_get1_basic(resp)) == NULL || store == NULL || X509_STORE_add_cert(store, s->issuer) != 1 ||
        X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN) != 1 || OCSP_basic_verify(basic, s->chain, store, 0) != 1) {
        errbuf_printf(why, whylen, "the answer's signature does not verify against the issuer");
        goto done;
    }
    if (OCSP_resp_find_status(basic, s->id, &status, &reason, &rev, &this_upd, &next_upd) != 1) {
        errbuf_printf(why, whylen, "the answer is not about this certificate");
        goto done;
    }
    if (OCSP_check_validity(this_upd, next_upd, 300, -1) != 1) {
        errbuf_printf(why, whylen, "the answer is out of its validity period");
        goto done;
    }
    if (status != V_OCSP_CERTSTATUS_GOOD)
        fprintf(stderr, "edgecache: OCSP: %s says the certificate is %s\n", s->url, OCSP_cert_status_str(status));
    int len = i2d_OCSP_RESPONSE(resp, &der);
    if (len <= 0) {
        errbuf_printf(why, whylen, "cannot encode the answer");
        goto done;
    }
    time_t now = time(NULL), until = next_upd != NULL ? asn1_time_to_time(next_upd) : now + OCSP_NO_NEXT_UPDATE_S;
    unsigned char *copy = alloc_xmalloc((size_t)len, "tls ocsp");
    memcpy(copy, der, (size_t)len);
    pthread_mutex_lock(&s->lock);
    free(s->der);
    s->der = copy;
    s->der_len = len;
    s->valid_until = until;
    pthread_mutex_unlock(&s->lock);
    /* ask again halfway to nextUpdate, so a responder that is down for a while costs nothing */
    s->next_fetch = now + (until - now) / 2;
    if (s->next_fetch < now + OCSP_RETRY_S)
        s->next_fetch = now + OCSP_RETRY_S;
    rc = 0;

done:
    ERR_clear_error();
    OPENSSL_free(der);
    X509_STORE_free(store);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    BIO_free(resp_bio);
    BIO_free(req_bio);
    BIO_free(sock_bio);
    if (fd != -1)
        responder_close(fd);
    OCSP_REQUEST_free(req);
    OPENSSL_free(host);
    OPENSSL_free(port);
    OPENSSL_free(path);
    return rc;
}

static void *ocsp_thread_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "ec-ocsp");
    pthread_mutex_lock(&g_lock);
    while (!g_stopping) {
        time_t now = time(NULL), wake = now + 3600;
        ocsp_state_t *due = NULL;
        /* forget states whose context is gone; pick one that is due */
        for (ocsp_state_t **p = &g_states; *p != NULL;) {
            ocsp_state_t *s = *p;
            if (atomic_load(&s->ctx_gone)) {
                *p = s->next;
                state_unref(s);
                continue;
            }
            if (due == NULL && s->next_fetch <= now)
                due = s;
            else if (s->next_fetch < wake)
                wake = s->next_fetch;
            p = &s->next;
        }
        if (due == NULL) {
            struct timespec ts = {.tv_sec = wake, .tv_nsec = 0};
            pthread_cond_timedwait(&g_wake, &g_lock, &ts);
            continue;
        }
        atomic_fetch_add(&due->refs, 1);
        pthread_mutex_unlock(&g_lock); /* the network, without the lock */
        char why[256];
        if (fetch_one(due, why, sizeof(why)) != 0) {
            fprintf(stderr, "edgecache: OCSP: %s: %s; asking again in %d s\n", due->url, why, OCSP_RETRY_S);
            due->next_fetch = time(NULL) + OCSP_RETRY_S;
        }
        pthread_mutex_lock(&g_lock);
        state_unref(due); /* its list reference is still held: the pointer stays valid until the next pass */
    }
    pthread_mutex_unlock(&g_lock);
    return NULL;
}

int tls_ocsp_start(char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&g_lock);
    if (!g_running && g_states != NULL) {
        g_stopping = 0;
        if ((rc = pthread_create(&g_thread, NULL, ocsp_thread_main, NULL)) != 0)
            errbuf_printf(err, errlen, "cannot start the OCSP thread: %s", strerror(rc));
        else
            g_running = 1;
    }
    pthread_cond_signal(&g_wake);
    pthread_mutex_unlock(&g_lock);
    return rc == 0 ? 0 : -1;
}

void tls_ocsp_stop(void)
{
    pthread_mutex_lock(&g_lock);
    int running = g_running;
    g_stopping = 1;
    g_running = 0;
    if (g_fetch_fd != -1)
        shutdown(g_fetch_fd, SHUT_RDWR); /* a fetch under way ends now, not at its timeout */
    pthread_cond_signal(&g_wake);
    pthread_mutex_unlock(&g_lock);
    if (running)
        pthread_join(g_thread, NULL);
    /* the list's references; the contexts' go with the contexts */
    pthread_mutex_lock(&g_lock);
    while (g_states != NULL) {
        ocsp_state_t *s = g_states;
        g_states = s->next;
        state_unref(s);
    }
    pthread_mutex_unlock(&g_lock);
}

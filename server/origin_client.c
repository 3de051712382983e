/*
 * server/origin_client.c — HTTP/1.1 client for origin servers (see origin_client.h).
 *
 * What it owns. One `origin_client_t` per request to an origin: the connection while the
 * exchange runs (taken from an h2o_socketpool_t, handed back to it or closed at the end),
 * one timer entry, a copy of the request's iovec array, and the buffer of decoded body
 * bytes handed to the body callback. Everything is released by client_destroy(), which is
 * the only place that frees a client.
 *
 * Flow. CONNECTING (socket pool) -> SENDING (the request) -> HEAD (until a final, non-1xx
 * response head) -> BODY (until the framing says the body ended). Interim responses (100
 * Continue, 103 Early Hints) are consumed here and never reach the head callback, so they are
 * neither taken for the final response nor stored; they are not forwarded either, because
 * libh2o 2.2 cannot send a 1xx downstream (h2o_send_informational came with h2o 2.3). The one timer entry is
 * linked to the timeout of the current phase: connect, first_byte (while sending, then again
 * from the end of the write to the complete head), between_bytes (reset by every read that
 * brings bytes). The head is searched for its end over newly arrived bytes only and parsed
 * once, when complete, so an origin trickling bytes costs linear time (the head's pure parts:
 * server/origin_head.c).
 *
 * TLS. With an origin_tls_t, a new connection is handshaken (origin_tls_handshake) before the
 * request is asked for; the connect timeout covers the handshake, and a refused one fails the
 * exchange with origin_tls's verdict. A pooled connection comes back already established: its
 * pool holds TLS connections of one identity only (asserted at connect).
 *
 * Untrusted bytes. Nothing the origin sends is asserted on: every malformed, oversized or
 * ambiguous input becomes an error string passed to the head callback (before the head) or
 * the body callback (after it), and the connection is then closed, never reused. Framing
 * follows RFC 9112 6.3: no body for HEAD, 1xx, 204 and 304; Transfer-Encoding whose final
 * coding is chunked (any other coding is refused) wins over Content-Length and forbids
 * reuse; Content-Length must be digits, and all its values equal; otherwise the body runs
 * until the connection closes. A chunked body is complete only at its last chunk (unlike
 * h2o 2.2, a close after a whole chunk is "truncated body"): a cache must not store a
 * truncated object.
 *
 * Invariants. While the head or body is being read, sock->input holds only bytes not yet
 * decoded; decoded body bytes live in `body`. `cb_depth` counts the user callbacks on the
 * stack: origin_client_cancel() inside one only sets `cancelled`, and the code that called
 * the callback destroys the client when it returns, so no callback runs after a cancel and
 * nothing touches a freed client. Every function that may destroy the client returns a
 * value saying whether it did, and its callers stop touching the client when it did.
 *
 * Threads. A client lives on the thread of its loop; the socket pool may be shared between
 * threads (it has its own lock), nothing else is.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <h2o.h>
#include <h2o/socketpool.h>
#include "server/origin_client.h"
#include "server/origin_head.h"
#include "server/origin_idle.h"

/* picohttpparser's public API; libh2o-evloop exports these symbols without a header */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};
int phr_parse_headers(const char *buf, size_t len, struct phr_header *headers, size_t *num_headers, size_t last_len);
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#define ORIGIN_CLIENT_MAGIC 0x0c11e47au
#define HEAD_MAX_BYTES 65536 /* a response head, 1xx heads before it included */
#define HEAD_MAX_HEADERS 100

enum client_state { ST_CONNECTING, ST_SENDING, ST_HEAD, ST_BODY };
enum body_framing { FRAMING_LENGTH, FRAMING_CHUNKED, FRAMING_CLOSE };

struct origin_client {
    uint32_t magic;
    void *data;
    h2o_loop_t *loop;
    h2o_socketpool_t *pool;
    origin_client_timeouts_t timeouts;
    enum client_state state;

    origin_client_connect_cb on_connect;
    origin_client_head_cb on_head; /* non-NULL once on_connect gave the request */
    origin_client_body_cb on_body;

    origin_tls_t *tls;                             /* own reference; NULL for cleartext */
    char tls_error[160];                           /* a TLS error string handed to a callback */
    h2o_socketpool_connect_request_t *connect_req; /* while a new connection is being made */
    int *called_back_early;                        /* see start_connect */
    h2o_socket_t *sock;
    int sock_is_reused;     /* the socket came out of the pool */
    int got_response_bytes; /* some byte of a response was read on this socket */
    h2o_timeout_entry_t timer;
    int paused; /* the caller asked us to stop reading the body (back-pressure) */

    h2o_iovec_t *reqbufs; /* copy of the caller's array; the bytes are the caller's */
    size_t reqbufcnt;
    int method_is_head;
    int may_retry; /* idempotent request, not retried yet */

    size_t head_scan;          /* where the search for the end of the head resumes */
    size_t informational_size; /* bytes of 1xx heads already skipped */

    enum body_framing framing;
    uint64_t bytes_left; /* FRAMING_LENGTH */
    size_t content_length;
    struct phr_chunked_decoder chunked;
    int can_keepalive;
    h2o_buffer_t *body;

    unsigned cb_depth;
    int cancelled;
};

const char *const origin_client_error_is_eos = "end of stream";

static void on_pool_connect(h2o_socket_t *sock, const char *errstr, void *data);
static void on_handshake(h2o_socket_t *sock, const char *err);
static void on_connection_ready(origin_client_t *c);
static void on_request_written(h2o_socket_t *sock, const char *err);
static void on_head_readable(h2o_socket_t *sock, const char *err);
static void on_body_readable(h2o_socket_t *sock, const char *err);
static const char *h2o_err_said(const char *err);
static void fail_connection_before_head(origin_client_t *c, const char *errstr, const char *h2o_err);

/* ---------------------------------------------------------------- lifetime */

static void timer_stop(origin_client_t *c)
{
    h2o_timeout_unlink(&c->timer);
}

static void timer_start(origin_client_t *c, h2o_timeout_t *timeout)
{
    h2o_timeout_unlink(&c->timer);
    /* a paused body is not the origin's fault: no between-bytes bound until it resumes */
    if (timeout != NULL && !c->paused)
        h2o_timeout_link(c->loop, timeout, &c->timer);
}

/* the one place a client is freed; `keepalive` hands a cleanly finished connection back to the pool */
static void client_destroy(origin_client_t *c, int keepalive)
{
    assert(c->magic == ORIGIN_CLIENT_MAGIC);
    assert(c->cb_depth == 0);
    timer_stop(c);
    if (c->connect_req != NULL) {
        h2o_socketpool_cancel_connect(c->connect_req);
        c->connect_req = NULL;
    }
    if (c->sock != NULL) {
        if (keepalive && c->can_keepalive && !c->cancelled) {
            /* no pipelining: nothing on this connection is ours any more */
            h2o_buffer_consume(&c->sock->input, c->sock->input->size);
            if (origin_idle_put(c->pool, c->sock) != 0) /* kept on this loop, or back to h2o's pool */
                h2o_socketpool_return(c->pool, c->sock);
        } else {
            h2o_socket_close(c->sock);
        }
        c->sock = NULL;
    }
    h2o_buffer_dispose(&c->body);
    origin_tls_unref(&c->tls);
    free(c->reqbufs);
    memset(c, 0, sizeof(*c));
    free(c);
}

/* the exchange failed before a final response head: tell whichever callback is current */
static void fail_before_head(origin_client_t *c, const char *errstr)
{
    assert(errstr != NULL);
    c->can_keepalive = 0;
    ++c->cb_depth;
    if (c->on_head == NULL)
        c->on_connect(c, errstr, NULL, NULL, NULL);
    else
        c->on_head(c, errstr, 0, 0, h2o_iovec_init(NULL, 0), NULL, 0);
    --c->cb_depth;
    client_destroy(c, 0);
}

static void fail_body(origin_client_t *c, const char *errstr)
{
    assert(errstr != NULL && errstr != origin_client_error_is_eos);
    c->can_keepalive = 0;
    ++c->cb_depth;
    c->on_body(c, errstr);
    --c->cb_depth;
    client_destroy(c, 0);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    origin_client_t *c = H2O_STRUCT_FROM_MEMBER(origin_client_t, timer, entry);
    assert(c->magic == ORIGIN_CLIENT_MAGIC);
    switch (c->state) {
    case ST_CONNECTING: fail_before_head(c, "connect timeout"); break;
    case ST_SENDING: fail_before_head(c, "send timeout"); break;
    case ST_HEAD: fail_before_head(c, "first byte timeout"); break;
    case ST_BODY: fail_body(c, "between bytes timeout"); break;
    }
}

/* ---------------------------------------------------------------- connect and send */

/*
 * A connection kept on this loop (origin_idle.c) is still reading. Until the request is
 * written, what it reads waits in sock->input for on_request_written; a close or an error
 * fails the exchange at once, which retries a reused connection once.
 */
static void on_readable_while_sending(h2o_socket_t *sock, const char *err)
{
    origin_client_t *c = sock->data;
    assert(c->magic == ORIGIN_CLIENT_MAGIC && c->state == ST_SENDING);
    if (err != NULL)
        fail_connection_before_head(c, "connection closed before the response", h2o_err_said(err));
}

static void start_connect(origin_client_t *c)
{
    /* h2o_socketpool_connect calls back before returning for a pooled connection (and for a
     * socket() failure), later for a new one; the flag tells on_pool_connect which, and tells us
     * whether `c` may already be gone */
    int called_back = 0;
    c->state = ST_CONNECTING;
    h2o_socket_t *kept = c->tls == NULL ? origin_idle_take(c->pool) : NULL;
    if (kept != NULL) { /* called back before returning, as for h2o's pooled connection; `c` may be gone after */
        h2o_socket_read_start(kept, on_readable_while_sending); /* on_pool_connect sets its data */
        c->called_back_early = &called_back;
        on_pool_connect(kept, NULL, c);
        return;
    }
    timer_start(c, c->timeouts.connect);
    c->called_back_early = &called_back;
    h2o_socketpool_connect(&c->connect_req, c->pool, c->loop, NULL, on_pool_connect, c);
    if (!called_back)
        c->called_back_early = NULL;
}

static int method_is_idempotent(const h2o_iovec_t *bufs, size_t cnt)
{
    static const char *const methods[] = {"GET ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "TRACE "};
    size_t i = 0;
    while (i != cnt && bufs[i].len == 0)
        ++i;
    if (i == cnt)
        return 0;
    for (size_t m = 0; m != sizeof(methods) / sizeof(methods[0]); ++m) {
        size_t len = strlen(methods[m]);
        if (bufs[i].len >= len && memcmp(bufs[i].base, methods[m], len) == 0)
            return 1;
    }
    return 0;
}

static void send_request(origin_client_t *c)
{
    c->state = ST_SENDING;
    c->got_response_bytes = 0;
    timer_start(c, c->timeouts.first_byte);
    h2o_socket_write(c->sock, c->reqbufs, c->reqbufcnt, on_request_written);
}

static void on_pool_connect(h2o_socket_t *sock, const char *errstr, void *data)
{
    origin_client_t *c = data;
    assert(c->magic == ORIGIN_CLIENT_MAGIC);
    int early = c->called_back_early != NULL;
    if (early) {
        *c->called_back_early = 1;
        c->called_back_early = NULL;
    }
    c->connect_req = NULL;
    if (sock == NULL) {
        fail_before_head(c, errstr != NULL ? errstr : "connection failed");
        return;
    }
    c->sock = sock;
    sock->data = c;
    c->sock_is_reused = early;
    timer_stop(c);
    /* pools are per TLS identity (server/backend_pick.c): a pooled socket is TLS exactly when we are */
    assert(!early || (sock->ssl != NULL) == (c->tls != NULL));
    if (c->tls != NULL && sock->ssl == NULL) {
        timer_start(c, c->timeouts.connect); /* the handshake is part of connecting */
        origin_tls_handshake(c->tls, sock, on_handshake);
        return;
    }
    on_connection_ready(c);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    origin_client_t *c = sock->data;
    assert(c->magic == ORIGIN_CLIENT_MAGIC && c->state == ST_CONNECTING);
    timer_stop(c);
    const char *errstr = origin_tls_handshake_verdict(c->tls, err, c->tls_error, sizeof(c->tls_error));
    if (errstr != NULL) {
        fail_before_head(c, errstr);
        return;
    }
    on_connection_ready(c);
}

/* a connection to send on: get the request from the caller (the first time) and send it */
static void on_connection_ready(origin_client_t *c)
{
    if (c->on_head == NULL) {
        h2o_iovec_t *bufs = NULL;
        size_t cnt = 0;
        int is_head = 0;
        ++c->cb_depth;
        origin_client_head_cb head_cb = c->on_connect(c, NULL, &bufs, &cnt, &is_head);
        --c->cb_depth;
        if (c->cancelled || head_cb == NULL) {
            client_destroy(c, 0);
            return;
        }
        assert(cnt == 0 || bufs != NULL);
        c->on_head = head_cb;
        c->method_is_head = is_head;
        c->reqbufcnt = cnt;
        c->reqbufs = malloc(sizeof(*c->reqbufs) * (cnt != 0 ? cnt : 1));
        if (c->reqbufs == NULL)
            h2o_fatal("origin_client: out of memory");
        if (cnt != 0)
            memcpy(c->reqbufs, bufs, sizeof(*bufs) * cnt);
        c->may_retry = method_is_idempotent(bufs, cnt);
    }
    send_request(c);
}

/* the connection failed before any response byte: a dead pooled connection is retried once */
/* h2o's error when it says more than that the connection was lost (a closed or reset connection
 * after a TLS 1.3 handshake is how an origin refuses a client certificate: origin_tls says so):
 * "ssl renegotiation not supported", which h2o 2.2.5 answers an origin's renegotiation with */
static const char *h2o_err_said(const char *err)
{
    return err == h2o_socket_error_closed || err == h2o_socket_error_io ? NULL : err;
}

/* errstr says what was being done; h2o_err is h2o's error (NULL: none, or one that says nothing
 * more than the connection's loss) */
static void fail_connection_before_head(origin_client_t *c, const char *errstr, const char *h2o_err)
{
    if (c->sock_is_reused && !c->got_response_bytes && c->may_retry) {
        c->may_retry = 0;
        h2o_socket_close(c->sock);
        c->sock = NULL;
        c->sock_is_reused = 0;
        start_connect(c);
        return;
    }
    /* a new TLS connection lost before the response: the origin's refusal after the handshake (a
     * TLS 1.3 origin refuses a missing client certificate so), said and logged as a TLS failure */
    if (c->tls != NULL && !c->sock_is_reused)
        errstr = origin_tls_io_error(c->tls, errstr, h2o_err, c->tls_error, sizeof(c->tls_error));
    fail_before_head(c, errstr);
}

static void on_request_written(h2o_socket_t *sock, const char *err)
{
    origin_client_t *c = sock->data;
    assert(c->magic == ORIGIN_CLIENT_MAGIC && c->state == ST_SENDING);
    if (err != NULL) {
        fail_connection_before_head(c, "I/O error sending the request", h2o_err_said(err));
        return;
    }
    c->state = ST_HEAD;
    c->head_scan = 0;
    c->informational_size = 0;
    timer_start(c, c->timeouts.first_byte);
    h2o_socket_read_start(sock, on_head_readable);
    if (sock->input->size != 0) /* read while sending, on a kept connection */
        on_head_readable(sock, NULL);
}

/* ---------------------------------------------------------------- the response head */

/* moves the decoded bytes at the front of sock->input to the body buffer */
static void move_to_body(origin_client_t *c)
{
    h2o_buffer_t **in = &c->sock->input;
    size_t n = (*in)->size;
    if (n == 0)
        return;
    if (c->body->size == 0) {
        /* the common case: swap the buffers instead of copying */
        h2o_buffer_t *empty = c->body;
        c->body = *in;
        *in = empty;
        return;
    }
    h2o_iovec_t dst = h2o_buffer_reserve(&c->body, n);
    if (dst.base == NULL)
        h2o_fatal("origin_client: out of memory");
    memcpy(dst.base, (*in)->bytes, n);
    c->body->size += n;
    h2o_buffer_consume(in, n);
}

/* calls the body callback; returns -1 when the client is gone */
static int deliver(origin_client_t *c, const char *final)
{
    ++c->cb_depth;
    int ret = c->on_body(c, final);
    --c->cb_depth;
    if (final != NULL) {
        client_destroy(c, 1);
        return -1;
    }
    if (c->cancelled || ret != 0) {
        c->can_keepalive = 0;
        client_destroy(c, 0);
        return -1;
    }
    return 0;
}

/* decodes the undecoded bytes in sock->input into the body; returns -1 when the client is gone */
static int process_body_bytes(origin_client_t *c)
{
    h2o_buffer_t *in = c->sock->input;
    size_t raw = in->size;
    const char *final = NULL;
    if (raw == 0)
        return 0;
    c->got_response_bytes = 1;
    switch (c->framing) {
    case FRAMING_LENGTH:
        if (raw >= c->bytes_left) {
            if (raw > c->bytes_left) {
                in->size = (size_t)c->bytes_left; /* bytes past the body: dropped, connection not reused */
                c->can_keepalive = 0;
            }
            c->bytes_left = 0;
            final = origin_client_error_is_eos;
        } else {
            c->bytes_left -= raw;
        }
        break;
    case FRAMING_CHUNKED: {
        size_t decoded = raw;
        ssize_t ret = phr_decode_chunked(&c->chunked, in->bytes, &decoded);
        if (ret == -1) {
            in->size = 0;
            fail_body(c, "invalid chunked encoding");
            return -1;
        }
        in->size = decoded;
        if (ret >= 0) {
            if (ret > 0)
                c->can_keepalive = 0; /* bytes after the last chunk */
            final = origin_client_error_is_eos;
        }
        break;
    }
    case FRAMING_CLOSE: break;
    }
    if (c->sock->input->size == 0 && final == NULL)
        return 0; /* only chunk framing arrived */
    move_to_body(c);
    return deliver(c, final);
}

static void on_body_readable(h2o_socket_t *sock, const char *err)
{
    origin_client_t *c = sock->data;
    assert(c->magic == ORIGIN_CLIENT_MAGIC && c->state == ST_BODY);
    if (sock->input->size != 0) {
        timer_stop(c);
        if (process_body_bytes(c) != 0)
            return;
        timer_start(c, c->timeouts.between_bytes);
    }
    if (err == NULL)
        return;
    if (err == h2o_socket_error_closed && c->framing == FRAMING_CLOSE) {
        c->can_keepalive = 0;
        deliver(c, origin_client_error_is_eos);
    } else if (err == h2o_socket_error_closed) {
        fail_body(c, "truncated body");
    } else {
        fail_body(c, "I/O error reading the response body");
    }
}

/* a complete head of `head_len` bytes is at the front of sock->input: parse it, then either skip it
 * (1xx), or call the head callback and start on the body. Returns -1 when the client is gone, 1 to
 * look for a next head, 0 to read on. */
static int handle_head(origin_client_t *c, size_t head_len)
{
    char *buf = c->sock->input->bytes;
    int minor_version = 0, status = 0;
    h2o_iovec_t msg;
    size_t line_len = origin_head_status_line(buf, head_len, &minor_version, &status, &msg);
    if (line_len == 0 || status < 100 || status > 599) {
        fail_before_head(c, "invalid response head");
        return -1;
    }

    /* too many fields is "too large", not "malformed": count the lines before asking the parser */
    size_t lines = 0;
    for (const char *p = buf + line_len; (p = memchr(p, '\n', (size_t)(buf + head_len - p))) != NULL; ++p)
        ++lines;
    if (lines > HEAD_MAX_HEADERS + 1) { /* the last line is the empty one */
        fail_before_head(c, "response head too large");
        return -1;
    }
    struct phr_header src[HEAD_MAX_HEADERS];
    size_t num_headers = HEAD_MAX_HEADERS;
    int ret = phr_parse_headers(buf + line_len, head_len - line_len, src, &num_headers, 0);
    if (ret < 0 || (size_t)ret != head_len - line_len) {
        fail_before_head(c, "invalid response head");
        return -1;
    }

    h2o_header_t headers[HEAD_MAX_HEADERS];
    h2o_iovec_t names[HEAD_MAX_HEADERS];
    for (size_t i = 0; i != num_headers; ++i) {
        if (src[i].name == NULL) {
            /* obs-fold: RFC 9112 5.2 lets a proxy reject the message */
            fail_before_head(c, "invalid response head (obsolete line folding)");
            return -1;
        }
        char *name = (char *)src[i].name; /* points into our own input buffer */
        h2o_strtolower(name, src[i].name_len);
        const h2o_token_t *token = h2o_lookup_token(name, src[i].name_len);
        if (token != NULL) {
            headers[i].name = (h2o_iovec_t *)&token->buf;
        } else {
            names[i] = h2o_iovec_init(name, src[i].name_len);
            headers[i].name = &names[i];
        }
        size_t vlen = src[i].value_len;
        while (vlen != 0 && (src[i].value[vlen - 1] == ' ' || src[i].value[vlen - 1] == '\t'))
            --vlen;
        headers[i].value = h2o_iovec_init(src[i].value, vlen);
        headers[i].orig_name = NULL;
    }

    if (status < 200) {
        if (status == 101) {
            fail_before_head(c, "unexpected 101 response");
            return -1;
        }
        /* interim response: skip it, a final one follows */
        c->informational_size += head_len;
        h2o_buffer_consume(&c->sock->input, head_len);
        c->head_scan = 0;
        return 1;
    }

    origin_head_framing_t fi;
    origin_head_framing(headers, num_headers, minor_version, &fi);
    int bodyless = c->method_is_head || status == 204 || status == 304;
    if (!bodyless) {
        if (fi.errstr != NULL) {
            fail_before_head(c, fi.errstr);
            return -1;
        }
        if (fi.te_chunked) {
            c->framing = FRAMING_CHUNKED;
            memset(&c->chunked, 0, sizeof(c->chunked));
            c->chunked.consume_trailer = 1;
        } else if (fi.has_cl) {
            c->framing = FRAMING_LENGTH;
            c->bytes_left = fi.content_length;
            c->content_length = (size_t)fi.content_length;
            bodyless = fi.content_length == 0;
        } else {
            c->framing = FRAMING_CLOSE;
            fi.keepalive = 0;
        }
    }
    /* bytes after a bodyless head are not ours: never reuse such a connection */
    c->can_keepalive = fi.keepalive && fi.errstr == NULL && !(bodyless && c->sock->input->size != head_len);

    timer_stop(c);
    ++c->cb_depth;
    origin_client_body_cb body_cb = c->on_head(c, bodyless ? origin_client_error_is_eos : NULL, minor_version, status, msg,
                                               headers, num_headers);
    --c->cb_depth;
    if (bodyless) {
        client_destroy(c, 1);
        return -1;
    }
    if (c->cancelled || body_cb == NULL) {
        c->can_keepalive = 0;
        client_destroy(c, 0);
        return -1;
    }
    c->on_body = body_cb;
    c->state = ST_BODY;
    h2o_buffer_consume(&c->sock->input, head_len);
    if (process_body_bytes(c) != 0)
        return -1;
    timer_start(c, c->timeouts.between_bytes);
    if (!c->paused)
        h2o_socket_read_start(c->sock, on_body_readable);
    return 0;
}

static void on_head_readable(h2o_socket_t *sock, const char *err)
{
    origin_client_t *c = sock->data;
    assert(c->magic == ORIGIN_CLIENT_MAGIC && c->state == ST_HEAD);
    if (err != NULL) {
        if (c->tls != NULL && err == h2o_socket_error_ssl_decode) /* e.g. the origin's alert */
            fail_before_head(c, origin_tls_io_error(c->tls, "reading the response", err, c->tls_error, sizeof(c->tls_error)));
        else if (sock->input->size == 0 && c->informational_size == 0)
            fail_connection_before_head(c,
                                        err == h2o_socket_error_closed ? "connection closed before the response"
                                                                       : "I/O error reading the response head",
                                        h2o_err_said(err));
        else
            fail_before_head(c, err == h2o_socket_error_closed ? "connection closed in the response head"
                                                               : "I/O error reading the response head");
        return;
    }
    while (sock->input->size != 0) {
        c->got_response_bytes = 1;
        size_t head_len = origin_head_find_end(sock->input->bytes, sock->input->size, &c->head_scan);
        size_t limit = HEAD_MAX_BYTES - (c->informational_size < HEAD_MAX_BYTES ? c->informational_size : HEAD_MAX_BYTES);
        if (head_len == 0 ? sock->input->size > limit : head_len > limit) {
            fail_before_head(c, "response head too large");
            return;
        }
        if (head_len == 0)
            return; /* wait for more; the first byte timer keeps running */
        if (handle_head(c, head_len) <= 0)
            return;
    }
}

/* ---------------------------------------------------------------- public */

void origin_client_connect(origin_client_t **client, void *data, h2o_loop_t *loop, h2o_socketpool_t *pool,
                           const origin_client_timeouts_t *timeouts, origin_tls_t *tls, origin_client_connect_cb cb)
{
    assert(pool->type == H2O_SOCKETPOOL_TYPE_SOCKADDR && pool->is_ssl == (tls != NULL));
    /* h2o 2.2's h2o_socketpool_connect reads the clock of the loop given to
     * h2o_socketpool_set_timeout, and crashes without one */
    assert(pool->_interval_cb.loop != NULL);
    assert(cb != NULL);
    origin_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        h2o_fatal("origin_client: out of memory");
    c->magic = ORIGIN_CLIENT_MAGIC;
    c->data = data;
    c->loop = loop;
    c->pool = pool;
    if (timeouts != NULL)
        c->timeouts = *timeouts;
    c->on_connect = cb;
    c->tls = tls != NULL ? origin_tls_ref(tls) : NULL;
    c->content_length = SIZE_MAX;
    c->timer.cb = on_timer;
    h2o_buffer_init(&c->body, &h2o_socket_buffer_prototype);
    if (client != NULL)
        *client = c;
    start_connect(c);
}

void origin_client_cancel(origin_client_t *client)
{
    assert(client->magic == ORIGIN_CLIENT_MAGIC);
    client->can_keepalive = 0;
    if (client->cb_depth != 0) {
        client->cancelled = 1; /* the caller of the running callback destroys it on return */
        return;
    }
    client_destroy(client, 0);
}

h2o_buffer_t **origin_client_body_buffer(origin_client_t *client)
{
    assert(client->magic == ORIGIN_CLIENT_MAGIC);
    return &client->body;
}

void *origin_client_data(const origin_client_t *client)
{
    assert(client->magic == ORIGIN_CLIENT_MAGIC);
    return client->data;
}

void origin_client_pause(origin_client_t *c)
{
    assert(c->magic == ORIGIN_CLIENT_MAGIC);
    if (c->paused || c->state != ST_BODY || c->sock == NULL)
        return;
    c->paused = 1;
    h2o_socket_read_stop(c->sock);
    h2o_timeout_unlink(&c->timer);
}

void origin_client_resume(origin_client_t *c)
{
    assert(c->magic == ORIGIN_CLIENT_MAGIC);
    if (!c->paused)
        return;
    c->paused = 0;
    if (c->state != ST_BODY || c->sock == NULL)
        return;
    timer_start(c, c->timeouts.between_bytes);
    h2o_socket_read_start(c->sock, on_body_readable);
}

size_t origin_client_content_length(const origin_client_t *client)
{
    assert(client->magic == ORIGIN_CLIENT_MAGIC);
    return client->content_length;
}

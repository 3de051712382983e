/*
 * server/origin_client.h — our HTTP/1.1 client for talking to origin servers.
 *
 * A replacement for libh2o 2.2's h2o_http1client with the same callback shape (connect ->
 * head -> body), built so that nothing an origin sends can abort the process, and with
 * Fastly's three timeouts (connect, first byte, between bytes) instead of one I/O timeout.
 * Connections come from, and go back to, an h2o_socketpool_t (keep-alive reuse).
 *
 * Everything runs on the thread that owns `loop`; a client is never touched from another.
 */
#ifndef EDGECACHE_ORIGIN_CLIENT_H
#define EDGECACHE_ORIGIN_CLIENT_H

#include <stddef.h>
#include <h2o.h>
#include <h2o/socketpool.h>
#include "server/origin_tls.h"

typedef struct origin_client origin_client_t;

/**
 * The three bounds of an exchange. Each is an h2o_timeout_t initialised on the client's loop
 * (h2o_timeout_init) that must outlive every client using it; NULL disables that bound.
 *   connect       from origin_client_connect until the TCP connection is up (a pooled
 *                 keep-alive connection counts as up at once). Error "connect timeout".
 *   first_byte    while the request is being written ("send timeout"), then again from the
 *                 end of the write until the complete response head ("first byte timeout";
 *                 a head trickling in does not extend it).
 *   between_bytes the longest silence while reading the body ("between bytes timeout").
 * The struct is copied by origin_client_connect; the timeouts it points to are borrowed.
 */
typedef struct origin_client_timeouts {
    h2o_timeout_t *connect;
    h2o_timeout_t *first_byte;
    h2o_timeout_t *between_bytes;
} origin_client_timeouts_t;

/** The `errstr` of the final callback when the response ended cleanly (compare pointers). */
extern const char *const origin_client_error_is_eos;

/**
 * Body callback. errstr NULL: new decoded body bytes were appended to
 * *origin_client_body_buffer(client); consume what you use with h2o_buffer_consume (bytes
 * left unconsumed stay and are followed by later ones). Return 0 to go on; non-zero stops:
 * the client closes itself (the connection is not reused) and calls nothing again.
 * errstr == origin_client_error_is_eos: the body is complete (the buffer may hold the last
 * bytes). Any other errstr: the exchange failed (truncated, malformed, timed out); the buffer
 * holds whatever was not consumed. After either final call the client frees itself; the
 * return value is ignored.
 */
typedef int (*origin_client_body_cb)(origin_client_t *client, const char *errstr);

/**
 * Head callback. errstr NULL: a final (non-1xx) response head arrived and a body follows;
 * return the body callback, or NULL to stop (the client closes itself, nothing is called
 * again). errstr == origin_client_error_is_eos: a response without a body (HEAD request,
 * 204, 304, Content-Length: 0) is complete; the return value is ignored and the client frees
 * itself. Any other errstr: no usable response (connection lost, timeout, malformed head,
 * invalid framing); status is 0, headers NULL, the return value ignored, the client frees
 * itself.
 * `headers` and `msg` are borrowed and valid only during the call: names are lower-case and
 * point to h2o's token (`headers[i].name == &H2O_TOKEN_CONTENT_TYPE->buf`) when there is
 * one; orig_name is NULL; values have surrounding whitespace removed.
 */
typedef origin_client_body_cb (*origin_client_head_cb)(origin_client_t *client, const char *errstr, int minor_version,
                                                       int status, h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers);

/**
 * Connect callback. errstr non-NULL: no connection could be made (refused, "connect timeout");
 * the other arguments are NULL, the return value ignored, the client frees itself.
 * errstr NULL: set *reqbufs / *reqbufcnt to the complete request (head and body) and
 * *method_is_head to whether it is a HEAD request, and return the head callback (NULL
 * aborts: the client closes itself). The buffers are borrowed: they (the iovec array is
 * copied, the bytes are not) must stay valid until the head callback has been called or
 * the client is cancelled, because the request may be sent again (see origin_client_connect).
 */
typedef origin_client_head_cb (*origin_client_connect_cb)(origin_client_t *client, const char *errstr, h2o_iovec_t **reqbufs,
                                                          size_t *reqbufcnt, int *method_is_head);

/**
 * Starts an exchange: takes a connection from `pool` (a pooled keep-alive one, or a new
 * one), calls `cb`, sends the request and reads the response. *client is set before
 * anything else happens — `cb` may run before this function returns (a pooled connection is
 * ready at once, a failing socket() fails at once).
 * `pool` must have been made with h2o_socketpool_init_by_address (no name resolution), its
 * is_ssl set exactly when `tls` is given, and given an idle timeout with
 * h2o_socketpool_set_timeout (h2o 2.2 crashes without one); it and `loop` are borrowed and
 * must outlive the client. `data` is the caller's, see origin_client_data. `timeouts` is copied
 * (see origin_client_timeouts_t). `tls` (NULL: cleartext; the client takes its own reference):
 * a new connection is a TLS one made with it, its handshake bounded by the connect timeout, a
 * failed one reported as "TLS handshake failed: <reason>" (and logged by origin_tls); the pool
 * keeps TLS connections for reuse like cleartext ones, so a pool must serve one TLS identity.
 * The connection goes back to the pool only after a complete, cleanly framed response that
 * allows keep-alive (HTTP/1.1 without "Connection: close", or HTTP/1.0 with keep-alive),
 * with no bytes beyond its end. When a pooled connection turns out to be dead (writing fails,
 * or it closes or resets before the first response byte) and the method is idempotent (RFC
 * 9110 9.2.2: GET, HEAD, PUT, DELETE, OPTIONS, TRACE, read from the request line), the
 * request is sent again once on another connection, without any callback in between.
 * The process must ignore SIGPIPE (as every h2o program does).
 */
void origin_client_connect(origin_client_t **client, void *data, h2o_loop_t *loop, h2o_socketpool_t *pool,
                           const origin_client_timeouts_t *timeouts, origin_tls_t *tls, origin_client_connect_cb cb);

/**
 * Ends the exchange now: no callback is called afterwards, the connection is closed (never
 * returned to the pool) and all memory is released. May be called from inside any of the
 * client's callbacks. Must not be called once the client has freed itself: after a final
 * callback (one with a non-NULL errstr) has returned, or after a callback returned NULL /
 * non-zero.
 */
void origin_client_cancel(origin_client_t *client);

/**
 * The decoded body bytes received and not yet consumed (see origin_client_body_cb). Borrowed:
 * valid while the client lives; the body callback consumes from it with h2o_buffer_consume.
 */
h2o_buffer_t **origin_client_body_buffer(origin_client_t *client);

/** The `data` given to origin_client_connect. */
void *origin_client_data(const origin_client_t *client);

/**
 * The body length announced by a valid Content-Length that frames this response, or
 * SIZE_MAX when the body is chunked, delimited by the connection's close, or not known yet.
 * Meaningful from the head callback on.
 */
size_t origin_client_content_length(const origin_client_t *client);

/**
 * Back-pressure: stop reading the body until origin_client_resume (the between-bytes
 * timeout does not run meanwhile). Only meaningful while the body is being read; may be
 * called from inside the body callback. Bytes already buffered stay in the body buffer.
 */
void origin_client_pause(origin_client_t *client);
/** Read the body again after origin_client_pause. Not from inside a callback of this client. */
void origin_client_resume(origin_client_t *client);

#endif

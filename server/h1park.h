/*
 * server/h1park.h — an HTTP/1 connection whose request waits (a purge waiting for its
 * journal write) stays polled for input, so that waiting costs no epoll_ctl.
 *
 * h2o 2.2's HTTP/1 code stops reading a connection while its request is in a handler
 * (h2o_socket_read_stop before process_request) and starts again once the answer is sent.
 * A handler that answers in the same loop turn, such as a cache hit, costs nothing for it;
 * a request answered in a later turn costs an EPOLL_CTL_DEL when it is taken and an
 * EPOLL_CTL_ADD when it is answered: two of the dozen microseconds a purge costs the
 * admin loop. Parked, the socket keeps reading, into a buffer of its own: the request's
 * parsed method, path, headers and body point into the socket's input buffer, so that one
 * is set aside untouched (a read into it could move it) and put back before the answer.
 * Bytes that came meanwhile (a pipelined request, or a peer's close) are h2o's again then:
 * appended where the held buffer has room without moving, else the connection is closed
 * after the answer (Connection: close), as after a request that cannot be read. Reading
 * stops once H1PARK_MAX_INPUT bytes came, or the peer closed: h2o sees the rest afterwards.
 *
 * Only plaintext HTTP/1 connections park; HTTP/2 streams share their connection's socket,
 * and a TLS socket's reads decrypt into the input buffer through its own state.
 *
 * Threads: the loop thread of the request's connection only.
 */
#ifndef EDGECACHE_H1PARK_H
#define EDGECACHE_H1PARK_H

#include <h2o.h>

#define H1PARK_MAX_INPUT 16384 /* bytes read for a parked connection before it stops reading */

typedef struct h1park {
    h2o_socket_t *sock; /* NULL: not parked */
    h2o_buffer_t *held; /* the request's input buffer, set aside */
} h1park_t;

/* Park req's connection if it may (see above); does nothing otherwise. Call right after the
 * handler has handed the request to whatever answers it later, in the same loop turn. */
void h1park_begin(h1park_t *p, h2o_req_t *req);

/* Unpark, if parked: before req is answered, or (req NULL) when it is disposed unanswered. */
void h1park_end(h1park_t *p, h2o_req_t *req);

#endif

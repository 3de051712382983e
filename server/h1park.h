/*
 * server/h1park.h — an HTTP/1 connection whose request waits (a purge waiting for its
 * journal write) stays registered with epoll, so that waiting costs no epoll_ctl.
 *
 * h2o 2.2's HTTP/1 code stops reading a connection while its request is in a handler
 * (h2o_socket_read_stop before process_request) and starts again once the answer is sent.
 * A handler that answers in the same loop turn, such as a cache hit, costs nothing for it;
 * a request answered in a later turn costs an EPOLL_CTL_DEL at the next turn and an
 * EPOLL_CTL_ADD after the answer: two of the dozen microseconds a purge costs the admin
 * loop. Parked, the socket stays "reading" for the event loop, with h2o_socket_dont_read
 * set: the loop reads nothing from it (the request's parsed fields point into its input
 * buffer, which stays as it is) and only tells h1park when the socket becomes readable
 * (a pipelined request, a close). h1park then stops reading, as h2o had: the bytes wait in
 * the kernel for h2o, and that connection pays the two calls as before. Unparked, before the
 * answer, the socket is as h2o left it; h2o's read start after the answer falls in the same
 * loop turn as the stop, so the registration never changed.
 *
 * Only HTTP/1 connections park (with TLS or without): an HTTP/2 stream shares its
 * connection's socket, which h2o keeps reading. With TLS, the don't-read flag also skips the
 * decryption (evloop's read_on_ready reads and decrypts nothing before it notifies), and h2o
 * decrypts everything a read brought, so no record waits inside the TLS state meanwhile.
 * No libh2o 2.2 code sets the don't-read flag, so clearing it at the end restores h2o's state.
 *
 * Threads: the loop thread of the request's connection only.
 */
#ifndef EDGECACHE_H1PARK_H
#define EDGECACHE_H1PARK_H

#include <h2o.h>

typedef struct h1park {
    h2o_socket_t *sock; /* NULL: not parked */
} h1park_t;

/* Park req's connection if it may (see above); does nothing otherwise. Call right after the
 * handler has handed the request to whatever answers it in a later loop turn. */
void h1park_begin(h1park_t *p, h2o_req_t *req);

/* Unpark, if parked: before the request is answered, and when it is disposed (its socket
 * is still open then: h2o disposes a connection's request before it closes the socket). */
void h1park_end(h1park_t *p);

#endif

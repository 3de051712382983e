/*
 * server/h1park.h — an HTTP/1 connection whose request waits (a purge waiting for its
 * journal write, a miss waiting for its origin) stays registered with epoll, so that
 * waiting costs no epoll_ctl.
 *
 * h2o 2.2's HTTP/1 code stops reading a connection while its request is in a handler
 * (h2o_socket_read_stop before process_request) and starts again once the answer is sent.
 * A handler that answers in the same loop turn, such as a cache hit, costs nothing for it;
 * a request answered in a later turn costs an EPOLL_CTL_DEL at the next turn and an
 * EPOLL_CTL_ADD after the answer: two of the dozen microseconds a purge costs the admin
 * loop. Parked, the socket stays "reading" for the event loop, with h2o_socket_dont_read
 * set: the loop reads nothing from it (the request's parsed fields point into its input
 * buffer, which stays as it is) and only tells h1park when the socket becomes readable
 * (a pipelined request, a close). h1park then puts the socket back as h2o left it (not
 * reading, flag clear): the bytes wait in the kernel for h2o, and that connection pays the
 * two calls as before.
 *
 * Unparking is h1park_filter's: every response starts with h2o_start_response, which runs
 * each filter's on_setup_ostream, so whichever path answers a parked request (an error, a
 * hit after a collapsed fetch, a purge's answer) unparks it first. For an answer sent whole
 * in the turn it starts (a purge's, a small object's), h2o's read start after it falls in the
 * same loop turn as the unpark's stop: the registration never changed. (A response whose body
 * follows in later turns still pays the two calls.) A socket is parked exactly while its
 * read callback is h1park's; a request whose pathconf lacks the filter is never parked.
 *
 * Only HTTP/1 connections park (with TLS or without): an HTTP/2 stream shares its
 * connection's socket, which h2o keeps reading. With TLS, the don't-read flag also skips
 * the decryption (evloop's read_on_ready reads and decrypts nothing before it notifies),
 * and h2o decrypts everything a read brought, so no record waits inside the TLS state
 * meanwhile. No libh2o 2.2 code sets the don't-read flag, so clearing it restores h2o's state.
 *
 * Threads: the loop thread of the request's connection only.
 */
#ifndef EDGECACHE_H1PARK_H
#define EDGECACHE_H1PARK_H

#include <h2o.h>

/* Park req's connection if it may (see above); does nothing otherwise, nor for a request
 * whose response has started (the filter that unparks has run). Call when the handler has
 * done its part; the pathconf must have h1park_register's filter. */
void h1park_begin(h2o_req_t *req);

/* 1 while sock is parked (its read callback is h1park's). */
int h1park_is_parked(const h2o_socket_t *sock);

/* The filter that unparks every response's connection before the response starts. */
void h1park_register(h2o_pathconf_t *pathconf);

#endif

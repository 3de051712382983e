/*
 * server/origin_idle.h — a worker's idle keep-alive connections to origins, kept on its
 * own event loop.
 *
 * h2o 2.2's socket pool takes a finished connection off the loop (h2o_socket_export:
 * an EPOLL_CTL_DEL) and the next fetch puts it back on (h2o_socket_import, a recv to
 * test it, an EPOLL_CTL_ADD), under the pool's mutex: four system calls and two
 * allocations per miss. A worker's pools are its own (server/backend_pick.c), so their
 * idle connections need not leave its loop: here they wait, still watched for reading, so
 * an origin's close is seen at once and the socket closed. The next fetch to the same pool
 * takes the most recent one, and the epoll registration never changes.
 *
 * Only the threads that called origin_idle_thread_init keep connections here (the proxy
 * workers), at most ORIGIN_IDLE_MAX of them, each for the pool's idle time at most; the
 * others, and TLS connections, go back to h2o's pool as before. A connection here still
 * counts as taken from its pool: origin_idle_forget_pool closes them before the pool is
 * disposed.
 *
 * Threads: each function touches the calling thread's list only.
 */
#ifndef EDGECACHE_ORIGIN_IDLE_H
#define EDGECACHE_ORIGIN_IDLE_H

#include <h2o.h>
#include <h2o/socketpool.h>

#define ORIGIN_IDLE_MAX 256 /* connections one worker keeps idle, over all its pools */

/** Keep idle connections on this thread's loop from now on; `idle_ms`: how long one may wait. */
void origin_idle_thread_init(h2o_loop_t *loop, uint32_t idle_ms);

/** Close what is left and stop (before the loop is destroyed). */
void origin_idle_thread_dispose(void);

/**
 * Keep a cleanly finished connection of `pool` (its input consumed, no write pending).
 * Returns 0 when kept (the socket is ours now), -1 when not (this thread keeps none, the
 * socket is TLS, or the list is full): the caller hands it back to the pool.
 */
int origin_idle_put(h2o_socketpool_t *pool, h2o_socket_t *sock);

/**
 * The most recently kept connection of `pool`, or NULL. It is still reading: the caller
 * sets its own read callback at once (h2o_socket_read_start on a reading socket changes
 * nothing in epoll).
 */
h2o_socket_t *origin_idle_take(h2o_socketpool_t *pool);

/** Close this thread's kept connections of `pool` (before h2o_socketpool_dispose). */
void origin_idle_forget_pool(h2o_socketpool_t *pool);

/** Connections this thread keeps now (tests). */
size_t origin_idle_count(void);

#endif

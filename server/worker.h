/*
 * server/worker.h — one worker thread: its h2o event loop, context, listener,
 * origin client context and per-backend socket pools, and its counters.
 * Internal to server/ (frontend.c owns the threads, the proxy (server/proxy*.c) serves on them).
 */
#ifndef EDGECACHE_WORKER_H
#define EDGECACHE_WORKER_H

#include <stdatomic.h>
#include <stdint.h>
#include <h2o.h>
#include "server/config.h"
#include "server/origin_client.h"
#include "server/purge.h"

#define WORKER_MAGIC 0x3ea7e12u

/* per-thread counters: written only by the owning thread, read (racily, as relaxed atomics) by stats */
typedef struct worker_counters {
    _Atomic uint64_t requests, hits, misses, passes, errors, purges, origin_fetches, stale_served, collapsed, revalidations,
        revalidated_304, stalled_clients_closed, body_budget_closed;
} worker_counters_t;

typedef struct worker {
    uint32_t magic;
    unsigned index;
    pthread_t thread;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_timeout_t stall_timeout;                /* checks responses whose client stopped reading */
    uint64_t inflight;                          /* requests being handled (handler entered, pool not yet disposed) */
    purge_loop_t purge_loop;                    /* completions of the PURGEs it submitted (server/purge.h) */
    h2o_multithread_receiver_t wake_receiver;   /* collapsed requests woken by a fetch on any thread */
    h2o_multithread_receiver_t stream_receiver; /* new body bytes for requests reading another's fetch */
    h2o_linklist_t fetches;                     /* origin exchanges running on this worker (server/proxy_int.h's fetch_t) */
    worker_counters_t counters;
    h2o_accept_ctx_t tls_accept_ctx;           /* accept_ctx with the TLS front context (server/tls.h) */
    int tls_listen_fds[CONFIG_MAX_TLS_LISTEN]; /* one per --tls-listen; -1 once its listener owns it */
    h2o_socket_t *tls_listeners[CONFIG_MAX_TLS_LISTEN];
    size_t num_tls_listeners;
    /* who accepts new connections (server/frontend.c): written by the owning thread; read by the workers after it
     * and by stats, as relaxed atomics */
    _Atomic uint32_t cpu_permille; /* share of a core the thread used over its last window */
    _Atomic int64_t cpu_at_ms;     /* when that window closed (monotonic); a worker stuck in one turn stops updating it */
    _Atomic int accepting;         /* its listeners are watched */
    _Atomic uint64_t accepted;     /* connections it accepted */
    _Atomic uint32_t open;         /* of them, not closed yet */
    _Atomic int64_t idle_since_ms; /* when open last fell to 0 (monotonic) */
    int64_t window_start_ms;       /* the window being measured: since when, and the thread's CPU time then */
    int64_t window_cpu_ns;
    /* client connections whose read callback h2o may have put back in place of server/inflow.c's: looked at after
     * the next loop turn (fresh), after every turn while h2o does not read them (watch); and every HTTP/2 connection,
     * every few milliseconds (h2, swept at inflow_sweep_ms). h2o's own read callbacks for HTTP/1 and HTTP/2. */
    h2o_linklist_t inflow_fresh, inflow_watch, inflow_h2;
    int64_t inflow_sweep_ms;
    h2o_socket_cb inflow_http1_read, inflow_http2_read;
} worker_t;

/** The worker whose event loop serves this request. */
static inline worker_t *worker_of_req(h2o_req_t *req)
{
    worker_t *w = H2O_STRUCT_FROM_MEMBER(worker_t, ctx, req->conn->ctx);
    return w;
}

#endif

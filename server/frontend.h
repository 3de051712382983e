/*
 * server/frontend.h — the h2o front end: N worker threads, each with its own event
 * loop, sharing one listening socket per proxy address; which of them watch it follows
 * their load (--accept-spread, server/frontend.c).
 */
#ifndef EDGECACHE_FRONTEND_H
#define EDGECACHE_FRONTEND_H

#include <stdint.h>
#include <h2o.h>
#include "server/config.h"

/**
 * Bind the proxy listeners (cfg->listen; port 0 picks one ephemeral port shared by all
 * threads) and start cfg->threads workers. The proxy must be initialised (proxy_init).
 * Returns 0 or -1 with a message in err.
 */
int frontend_start(const config_t *cfg, char *err, size_t errlen);

/** A worker's load as the workers after it see it: its share of a core over its last window, when that window
 * closed, its open connections and, when it has none, since when (CLOCK_MONOTONIC ms). */
typedef struct frontend_load {
    uint32_t cpu_permille;
    int64_t at_ms;
    uint32_t open;
    int64_t idle_since_ms;
} frontend_load_t;

/**
 * 1 when a worker with this load leaves new connections to the workers after it as well: it used at least
 * spread_pct percent of a core over its last window, unless it has had no connection for 20 ms (the CPU of
 * connections that are all gone is no load; a gap between short connections is not idleness); or it closed no
 * window for 300 ms (stuck in one turn); or spread_pct is 0. A worker after the first watches the listeners
 * exactly while every worker before it is busy.
 */
int frontend_load_is_busy(frontend_load_t load, int64_t now_ms, unsigned spread_pct);

/** What stats show of one worker. */
typedef struct frontend_worker_info {
    int accepting;         /* it watches the listeners */
    uint64_t accepted;     /* connections it accepted */
    uint32_t open;         /* of them, not closed yet */
    uint32_t cpu_permille; /* its share of a core over its last window */
} frontend_worker_info_t;

/** Every worker as stats show it (racy reads), in a malloc'd array the caller frees; *n is how many (0 before
 * frontend_start). Never NULL. */
frontend_worker_info_t *frontend_worker_snapshot(unsigned *n);

/** The proxy port actually bound. */
uint16_t frontend_bound_port(void);

/** The port the i-th --tls-listen address actually bound (0 when there is no such listener). */
uint16_t frontend_tls_bound_port(size_t i);

/**
 * Stop accepting, let in-flight requests finish for at most timeout_ms, then stop the
 * loops and join the threads. Call once, from the main thread.
 */
void frontend_stop(uint32_t timeout_ms);

/**
 * Give h2o 2.2's per-thread caches of recycled buffers and pool chunks back to malloc;
 * every thread that ran an h2o loop calls it just before it exits (LeakSanitizer).
 */
void frontend_drain_thread_caches(void);

/**
 * End a loop thread's own h2o context: dispose of ctx, its queue and its event loop, then
 * frontend_drain_thread_caches. For the threads that made a context of their own (the admin
 * and metrics listeners), as their last step; ctx is unusable after it.
 */
void frontend_context_destroy(h2o_context_t *ctx);

#endif

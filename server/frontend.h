/*
 * server/frontend.h — the h2o front end: N worker threads, each with its own event
 * loop and its own SO_REUSEPORT listening socket on the proxy address.
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

/*
 * server/frontend.c — the worker threads and their listeners.
 *
 * Each worker owns one h2o evloop and one h2o_context_t. The proxy address has ONE
 * listening socket, and each worker's loop has its own dup of it, as h2o's own server
 * does. Each --tls-listen address is the same, accepted with an h2o_accept_ctx_t whose
 * ssl_ctx is server/tls.c's front context (which never changes; SIGHUP swaps what its
 * SNI callback picks from), so h2o does the handshake and picks h2 or HTTP/1.1 by ALPN.
 *
 * Who watches the listeners (--accept-spread PERCENT, default 50): the first worker
 * always; each worker after it only while every worker before it is busy: it used at
 * least PERCENT of a core over its last window (100 ms or more), or it has not closed a
 * window for 300 ms (stuck in one turn: a page fault on a cold disk read, say). So a
 * node under little load takes its new connections on the first worker, and the second
 * joins in once the first is half busy; workers are added as the ones before them
 * fill, and one that the load has left stops watching again. Each worker measures its
 * own thread's CPU time (CLOCK_THREAD_CPUTIME_ID) and decides for itself, at the end of
 * its window (every 100 ms while idle: the loop wakes that often), with no lock: one
 * monotonic clock read per loop turn. Three refinements:
 *  - a worker that has had no connection for 20 ms is not busy, and its window starts
 *    afresh at 0 with its next connection: the CPU it holds was the load of connections
 *    that are gone (wrk run after wrk run). A shorter gap, as between the short
 *    connections of a handshake storm, is not idleness;
 *  - a worker after the first, woken for a new connection, checks the rule again before
 *    it accepts, and leaves the connection to the others (and stops watching) when those
 *    before it are no longer busy. Every watching worker is woken for a new connection,
 *    so the first one accepts it;
 *  - a worker that watches already keeps on while those before it use half of PERCENT:
 *    once it takes its share, theirs falls, and without the margin it would stop and
 *    start again every window (accept_wanted).
 * With 0, every worker watches always, and a new connection goes to whichever accepts
 * it first, an idle one before a busy one.
 *
 * Why: with more busy threads than cores (a 2-core machine, 2 workers and the client),
 * two busy workers take turns on one core, and each waits for the scheduler's tick (4 ms)
 * while the other runs. bench/run's hot 1 KiB p99 (wrk's 50 connections): 3.6-4.2 ms in
 * every round with a SO_REUSEPORT socket per worker (until issue 24), which hashes
 * connections evenly whatever each worker is doing; 0.6-4.3 ms with every worker
 * watching one socket (0), as the connections happened to split or not; 0.51-0.90 ms in
 * all 17 rounds of three runs with the cascade (all 50 on the first worker each time),
 * and 40% more hits/s (157k against 111k, medians of two runs the same morning).
 *
 * The costs: a connection stays on the worker that accepted it, so load that grows on
 * connections made while the node was idle stays on the first worker (as with any choice
 * made at accept time); a burst may land on one worker (at most 32 per turn of its
 * loop); and a worker past the first wakes for each new connection while it watches.
 *
 * Nothing here is touched by two threads at once except `g_stopping` (set by the main
 * thread, polled by each loop every 100 ms) and the workers' load and counters (relaxed
 * atomics, written by their own worker, read by the workers after it and by stats).
 *
 * Shutdown: the main thread sets g_stopping; each worker closes its listener, keeps
 * its loop running until its in-flight requests are done or the deadline passes, and
 * returns. Idle keep-alive connections are simply closed with the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <h2o.h>
#include <h2o/socket/evloop.h>
#include "common/alloc.h"
#include "common/now.h"
#include "server/h1park.h"
#include "server/date_header.h"
#include "server/inflow.h"
#include "server/frontend.h"
#include "server/listen.h"
#include "server/proxy.h"
#include "server/stats.h"
#include "server/tls.h"
#include "server/worker.h"
#include "storage/object.h"

static h2o_globalconf_t g_globalconf;
static worker_t *g_workers;
static unsigned g_num_workers;
static uint16_t g_bound_port;
static uint16_t g_tls_bound_ports[CONFIG_MAX_TLS_LISTEN];
static atomic_int g_stopping;
static _Atomic int64_t g_deadline_ms;
static unsigned g_accept_spread;         /* --accept-spread, percent of a core */
static _Atomic unsigned g_workers_shown; /* how many of g_workers stats may read (the admin API runs before them) */

#define ACCEPT_WINDOW_MS 100 /* a worker measures its share of a core over windows at least this long */
#define ACCEPT_STALE_MS 300  /* a worker that closed no window for this long is stuck in one turn */
#define ACCEPT_IDLE_MS 20    /* a worker without connections for this long is idle, whatever its last window says */

int frontend_load_is_busy(frontend_load_t load, int64_t now_ms, unsigned spread_pct)
{
    if (spread_pct == 0 || now_ms - load.at_ms > ACCEPT_STALE_MS)
        return 1;
    if (load.open == 0 && now_ms - load.idle_since_ms >= ACCEPT_IDLE_MS)
        return 0;
    return load.cpu_permille >= spread_pct * 10;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* publish w's share of a core as of now and start its next window there (its owner thread only) */
static void window_publish(worker_t *w, int64_t now, int64_t cpu, int64_t permille)
{
    atomic_store_explicit(&w->cpu_permille,
                          (uint32_t)(permille < 0      ? 0
                                     : permille > 1000 ? 1000
                                                       : permille),
                          memory_order_relaxed);
    atomic_store_explicit(&w->cpu_at_ms, now, memory_order_relaxed);
    w->window_start_ms = now;
    w->window_cpu_ns = cpu;
}

/* close w's window: its share of a core since the window started */
static void window_close(worker_t *w, int64_t now, int64_t cpu)
{
    window_publish(w, now, cpu, now > w->window_start_ms ? (cpu - w->window_cpu_ns) / ((now - w->window_start_ms) * 1000) : 0);
}

/* a worker after the first: whether every worker before it is busy (now). One that watches already keeps on while
 * they use half of --accept-spread: once it takes its share, theirs falls, and without this margin it would stop
 * and start again every window (short connections: a handshake storm flapped so, at 0.69x nginx's rate against
 * 0.92x with every worker watching) */
static int accept_wanted(const worker_t *w, int64_t now)
{
    unsigned pct = atomic_load_explicit(&w->accepting, memory_order_relaxed) ? (g_accept_spread + 1) / 2 : g_accept_spread;
    for (unsigned j = 0; j != w->index; ++j) {
        frontend_load_t load;
        load.open = atomic_load_explicit(&g_workers[j].open, memory_order_acquire); /* then what was stored before it */
        load.idle_since_ms = atomic_load_explicit(&g_workers[j].idle_since_ms, memory_order_relaxed);
        load.cpu_permille = atomic_load_explicit(&g_workers[j].cpu_permille, memory_order_relaxed);
        load.at_ms = atomic_load_explicit(&g_workers[j].cpu_at_ms, memory_order_relaxed);
        if (!frontend_load_is_busy(load, now, pct))
            return 0;
    }
    return 1;
}

static void on_accept(h2o_socket_t *listener, const char *err);
static void on_accept_tls(h2o_socket_t *listener, const char *err);

static void accept_watch(worker_t *w, int on)
{
    if (on) {
        h2o_socket_read_start(w->listener, on_accept);
        for (size_t i = 0; i != w->num_tls_listeners; ++i)
            h2o_socket_read_start(w->tls_listeners[i], on_accept_tls);
    } else {
        h2o_socket_read_stop(w->listener);
        for (size_t i = 0; i != w->num_tls_listeners; ++i)
            h2o_socket_read_stop(w->tls_listeners[i]);
    }
    atomic_store_explicit(&w->accepting, on, memory_order_relaxed);
}

/* After each turn of w's loop: close the window when it is long enough, then (a worker after the first)
 * watch the listeners exactly while every worker before it is busy. */
static void accept_turn(worker_t *w, int64_t now)
{
    if (now - w->window_start_ms < ACCEPT_WINDOW_MS)
        return;
    window_close(w, now, thread_cpu_ns());
    if (w->index == 0 || g_accept_spread == 0)
        return;
    int wanted = accept_wanted(w, now);
    if (wanted != atomic_load_explicit(&w->accepting, memory_order_relaxed))
        accept_watch(w, wanted);
}

static void on_connection_close(worker_t *w)
{
    uint32_t open = atomic_load_explicit(&w->open, memory_order_relaxed) - 1;
    if (open == 0)
        atomic_store_explicit(&w->idle_since_ms, now_mono_ms(), memory_order_relaxed);
    atomic_store_explicit(&w->open, open, memory_order_release);
}

/* one more connection on w: after an idle spell, the window starts afresh at 0 (what it holds was the load of
 * connections that are gone), published before the connection count that readers look at first */
static void connection_opened(worker_t *w)
{
    uint32_t open = atomic_load_explicit(&w->open, memory_order_relaxed);
    if (open == 0) {
        int64_t now = now_mono_ms();
        if (now - atomic_load_explicit(&w->idle_since_ms, memory_order_relaxed) >= ACCEPT_IDLE_MS)
            window_publish(w, now, thread_cpu_ns(), 0);
    }
    atomic_store_explicit(&w->open, open + 1, memory_order_release);
}

static void accept_batch(worker_t *w, h2o_socket_t *listener, h2o_accept_ctx_t *accept_ctx)
{
    /* a worker after the first was woken with the others: when those before it are no longer busy (the last
     * connection of one closed since this worker's window), it leaves the connection to them and stops watching */
    if (w->index != 0 && g_accept_spread != 0 && !accept_wanted(w, now_mono_ms())) {
        accept_watch(w, 0);
        return;
    }
    /* accept a bounded batch per wake-up so one busy listener cannot starve the loop */
    for (int i = 0; i < 32; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        int one = 1;
        int fd = h2o_socket_get_fd(sock);
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        atomic_store_explicit(&w->accepted, atomic_load_explicit(&w->accepted, memory_order_relaxed) + 1, memory_order_relaxed);
        connection_opened(w);
        inflow_accept(w, accept_ctx,
                      sock); /* h2o_accept; its on_close calls on_connection_close, as h2o's own server counts them */
    }
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    worker_t *w = listener->data;
    if (err == NULL)
        accept_batch(w, listener, &w->accept_ctx);
}

static void on_accept_tls(h2o_socket_t *listener, const char *err)
{
    worker_t *w = listener->data;
    if (err == NULL)
        accept_batch(w, listener, &w->tls_accept_ctx);
}

frontend_worker_info_t *frontend_worker_snapshot(unsigned *n)
{
    unsigned shown = atomic_load_explicit(&g_workers_shown, memory_order_acquire);
    frontend_worker_info_t *out = alloc_xcalloc(shown + 1, sizeof(*out), "worker stats");
    for (unsigned i = 0; i != shown; ++i) {
        const worker_t *w = &g_workers[i];
        out[i].accepting = atomic_load_explicit(&w->accepting, memory_order_relaxed);
        out[i].accepted = atomic_load_explicit(&w->accepted, memory_order_relaxed);
        out[i].open = atomic_load_explicit(&w->open, memory_order_relaxed);
        out[i].cpu_permille = atomic_load_explicit(&w->cpu_permille, memory_order_relaxed);
    }
    *n = shown;
    return out;
}

/*
 * h2o 2.2 keeps per-thread caches of recycled socket buffers and pool chunks that are
 * never released when a thread exits; give them back so LeakSanitizer sees a clean exit.
 */
void frontend_context_destroy(h2o_context_t *ctx)
{
    h2o_evloop_t *evloop = ctx->loop;
    h2o_multithread_queue_t *queue = ctx->queue;
    h2o_context_dispose(ctx);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2
    free(queue); /* h2o 2.2's h2o_multithread_destroy_queue (evloop) closes it but never frees it */
#else
    (void)queue;
#endif
    h2o_evloop_destroy(evloop);
    frontend_drain_thread_caches();
}

void frontend_drain_thread_caches(void)
{
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2
    h2o_mem_recycle_t *bufs = &h2o_socket_buffer_prototype.allocator;
    while (bufs->cnt != 0)
        free(h2o_mem_alloc_recycle(bufs, 1));
    for (int i = 0; i < 16; i++) {
        h2o_mem_pool_t pool;
        h2o_mem_init_pool(&pool);
        (void)h2o_mem_alloc_pool(&pool, 1);
        free(pool.chunks);
    }
#endif
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    pthread_setname_np(pthread_self(), "ec-worker"); /* shown by top -H, ps -L, perf */
    assert(w->magic == WORKER_MAGIC);

    w->loop = h2o_evloop_create();
    h2o_context_init(&w->ctx, w->loop, &g_globalconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = g_globalconf.hosts;
    proxy_worker_init(w);
    inflow_worker_init(w);

    w->listener = h2o_evloop_socket_create(w->loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    w->tls_accept_ctx = w->accept_ctx;
    w->tls_accept_ctx.ssl_ctx = tls_proxy_ssl_ctx();
    for (size_t i = 0; i != w->num_tls_listeners; ++i) {
        w->tls_listeners[i] = h2o_evloop_socket_create(w->loop, w->tls_listen_fds[i], H2O_SOCKET_FLAG_DONT_READ);
        w->tls_listen_fds[i] = -1; /* the listener owns it now */
        w->tls_listeners[i]->data = w;
    }
    w->window_start_ms = now_mono_ms();
    w->window_cpu_ns = thread_cpu_ns();
    accept_watch(w, w->index == 0 || g_accept_spread == 0); /* the others join when the first is busy */

    while (!atomic_load(&g_stopping)) {
        h2o_evloop_run(w->loop, 100);
        int64_t now = now_mono_ms();
        inflow_turn(w, now);
        accept_turn(w, now);
    }

    /* drain: no new connections; let in-flight requests finish, bounded by the deadline */
    h2o_socket_read_stop(w->listener);
    h2o_socket_close(w->listener);
    w->listener = NULL;
    for (size_t i = 0; i != w->num_tls_listeners; ++i) {
        h2o_socket_read_stop(w->tls_listeners[i]);
        h2o_socket_close(w->tls_listeners[i]);
        w->tls_listeners[i] = NULL;
    }
    while (w->inflight != 0 && now_wall_ms() < atomic_load(&g_deadline_ms)) {
        h2o_evloop_run(w->loop, 50);
        inflow_turn(w, now_mono_ms());
    }

    proxy_worker_dispose(w);
    frontend_drain_thread_caches();
    return NULL;
}

int frontend_start(const config_t *cfg, char *err, size_t errlen)
{
    h2o_config_init(&g_globalconf);
    g_globalconf.server_name = h2o_iovec_init(H2O_STRLIT("")); /* the origin's Server header passes through */
    /* h2o 2.2 reads a whole request body into memory before the handler runs (no streaming of
     * request bodies before h2o 2.3), so this limit is what bounds one request's memory: a larger
     * Content-Length is refused with 413 before a byte of the body is read, a chunked body when
     * it grows past it */
    g_globalconf.max_request_entity_size = (size_t)cfg->max_request_body;
    /* and server/inflow.c bounds the bodies still arriving, all connections together */
    inflow_configure(cfg->max_request_body, cfg->request_body_memory, on_connection_close);
    h2o_hostconf_t *hostconf = h2o_config_register_host(&g_globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    proxy_register(pathconf);
    date_header_register(pathconf); /* the origin's Date, not h2o's clock, on what the proxy serves */
    h1park_register(pathconf);      /* a waiting miss's or purge's connection is unparked when its answer starts */
    stats_register_logger(pathconf);

    g_num_workers = cfg->threads;
    g_workers = alloc_xcalloc(g_num_workers, sizeof(*g_workers), "front end");
    g_accept_spread = cfg->accept_spread;

    uint16_t port = cfg->listen.port;
    for (unsigned i = 0; i != g_num_workers; ++i)
        for (size_t k = 0; k != CONFIG_MAX_TLS_LISTEN; ++k)
            g_workers[i].tls_listen_fds[k] = -1;
    for (size_t k = 0; k != cfg->num_tls_listen; ++k)
        g_tls_bound_ports[k] = cfg->tls_listen[k].port;
    for (unsigned i = 0; i != g_num_workers; ++i) {
        g_workers[i].magic = WORKER_MAGIC;
        g_workers[i].index = i;
        g_workers[i].listen_fd = -1;
        atomic_init(&g_workers[i].cpu_at_ms, now_mono_ms()); /* idle, not stuck, until its first window closes */
        atomic_init(&g_workers[i].idle_since_ms, now_mono_ms());
    }
    /* one socket per address (the first worker's), plain: a second edgecache on it fails with EADDRINUSE */
    worker_t *first = &g_workers[0];
    for (size_t k = 0; k != cfg->num_tls_listen; ++k) {
        if (listen_open(&cfg->tls_listen[k], "--tls-listen", g_tls_bound_ports[k], LISTEN_ALONE, &first->tls_listen_fds[k],
                        &g_tls_bound_ports[k], err, errlen) != 0)
            goto fail;
        first->num_tls_listeners = k + 1;
    }
    if (listen_open(&cfg->listen, "--listen", port, LISTEN_ALONE, &first->listen_fd, &port, err, errlen) != 0)
        goto fail;
    /* every other worker watches a dup of it (its loop's h2o_socket_t owns and closes the fd it is given) */
    for (unsigned i = 1; i != g_num_workers; ++i) {
        worker_t *w = &g_workers[i];
        for (size_t k = 0; k != cfg->num_tls_listen; ++k) {
            if ((w->tls_listen_fds[k] = fcntl(first->tls_listen_fds[k], F_DUPFD_CLOEXEC, 0)) == -1) {
                snprintf(err, errlen, "--tls-listen: cannot share the listening socket with worker %u: %s", i, strerror(errno));
                goto fail;
            }
            w->num_tls_listeners = k + 1;
        }
        if ((w->listen_fd = fcntl(first->listen_fd, F_DUPFD_CLOEXEC, 0)) == -1) {
            snprintf(err, errlen, "--listen: cannot share the listening socket with worker %u: %s", i, strerror(errno));
            goto fail;
        }
    }
    g_bound_port = port;
    atomic_store_explicit(&g_workers_shown, g_num_workers, memory_order_release); /* past every way to fail */

    for (unsigned i = 0; i != g_num_workers; ++i) {
        if (pthread_create(&g_workers[i].thread, NULL, worker_main, &g_workers[i]) != 0) {
            snprintf(err, errlen, "cannot start worker thread: %s", strerror(errno));
            /* threads already running are stopped by the caller's frontend_stop */
            g_num_workers = i;
            return -1;
        }
    }
    return 0;

fail:
    for (unsigned i = 0; i != g_num_workers; ++i) {
        if (g_workers[i].listen_fd != -1)
            close(g_workers[i].listen_fd);
        for (size_t k = 0; k != g_workers[i].num_tls_listeners; ++k)
            close(g_workers[i].tls_listen_fds[k]);
    }
    free(g_workers);
    g_workers = NULL;
    g_num_workers = 0;
    return -1;
}

uint16_t frontend_bound_port(void)
{
    return g_bound_port;
}

uint16_t frontend_tls_bound_port(size_t i)
{
    return i < CONFIG_MAX_TLS_LISTEN ? g_tls_bound_ports[i] : 0;
}

void frontend_stop(uint32_t timeout_ms)
{
    atomic_store(&g_deadline_ms, now_wall_ms() + (int64_t)timeout_ms);
    atomic_store(&g_stopping, 1);
    for (unsigned i = 0; i != g_num_workers; ++i)
        pthread_join(g_workers[i].thread, NULL);
}

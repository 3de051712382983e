/*
 * admin-api/metrics_listener.c — the optional token-free /metrics listener
 * (--metrics-listen): an h2o listener of its own, so that Prometheus can scrape without a
 * token and without reaching the admin API.
 *
 * What it owns: one thread (ec-metrics) running one h2o evloop and context on the bound
 * socket, with an h2o_globalconf_t of its own whose single handler on "/" answers GET and
 * HEAD /metrics with the exposition (metrics.c, the same answer as on the admin listener),
 * 404 for any other path and 405 for any other method (a short text/plain body, as this
 * listener always answered). It speaks HTTP/1.1 only and closes each connection after its
 * answer. It shares nothing with the admin listener: neither its config, nor its loops,
 * nor its life cycle (main starts it after the admin and stops it before).
 *
 * Connections are served concurrently by the event loop: a client that trickles its
 * request holds only its own connection, never the scrapes behind it; and the request head
 * must arrive within METRICS_HEAD_DEADLINE_MS of the accept (h2o's HTTP/1 request timeout,
 * armed once per request, not per read), after which the connection is closed.
 *
 * Threads: admin_metrics_listener_start/stop run on the main thread; the event loop,
 * context and listener are made, run and disposed of on the listener's own thread (h2o 2.2
 * gives each socket's input buffer the creating thread's recycling allocator). The
 * exposition is rendered on that thread; everything it reads is safe from any thread.
 *
 * Shutdown (admin_metrics_listener_stop): the thread stops accepting, shuts its
 * connections' read side so h2o closes them through its own paths (an answer is rendered
 * and handed to h2o within its request's turn, so h2o only has to finish writing it), after
 * a second their write side too, and only then disposes the context. A connection that
 * does not go within the bound leaves the listener's memory allocated (h2o would still
 * touch it) and a line says so. As in admin.c, the thread may see
 * `stopping` before the stop has finished writing its wake-up into the loop's queue: it
 * waits for that write (lock / wake_sent) before the queue is destroyed.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "common/alloc.h"
#include "common/now.h"
#include "admin-api/metrics_int.h"
#include "admin-api/stats_api.h"
#include "server/frontend.h"
#include "server/listen.h"

/* the whole request head must arrive within this of the accept */
#define METRICS_HEAD_DEADLINE_MS 2000
/* a request body is never read by this listener's handler; h2o buffers at most this much of one */
#define METRICS_MAX_ENTITY 8192

typedef struct metrics_conn {
    h2o_linklist_t link;
    int fd;
} metrics_conn_t;

/* the one listener (main starts at most one) */
static struct {
    int listen_fd; /* until the thread's listener owns it */
    uint16_t port;
    int running;
    pthread_t thread;
    h2o_globalconf_t globalconf;
    /* the thread's own */
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t control_receiver; /* woken by the stop */
    h2o_linklist_t conns;                        /* metrics_conn_t: accepted sockets still open */
    size_t num_conns;
    int leaked; /* the thread gave up waiting at shutdown; its memory stays allocated */
    atomic_int stopping;
    /* start and stop handshakes: `ready` once the thread has made its loop, context and
     * queue; `wake_sent` once the stop's write into that queue is over */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;
    int wake_sent;
} ml = {.listen_fd = -1};

/* ---- the handler ---- */

static void send_plain(h2o_req_t *req, int status, const char *reason)
{
    static const char body[] = "not found: this listener serves GET /metrics only\n";
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/plain"));
    req->res.content_length = sizeof(body) - 1;
    h2o_send_inline(req, body, sizeof(body) - 1);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    const h2o_iovec_t m = req->method;
    const char *q = memchr(req->path.base, '?', req->path.len);
    size_t path_len = q != NULL ? (size_t)(q - req->path.base) : req->path.len;
    (void)self;

    req->http1_is_persistent = 0; /* one answer per connection, then close */
    if (!h2o_memis(m.base, m.len, H2O_STRLIT("GET")) && !h2o_memis(m.base, m.len, H2O_STRLIT("HEAD")))
        send_plain(req, 405, "Method Not Allowed");
    else if (!h2o_memis(req->path.base, path_len, H2O_STRLIT("/metrics")))
        send_plain(req, 404, "Not Found");
    else
        admin_metrics_send(req);
    return 0;
}

/* ---- connections ---- */

static void on_conn_close(void *data)
{
    metrics_conn_t *c = data;
    h2o_linklist_unlink(&c->link);
    ml.num_conns--;
    free(c);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;

    if (err != NULL || atomic_load(&ml.stopping))
        return;
    if ((sock = h2o_evloop_socket_accept(listener)) == NULL)
        return;
    metrics_conn_t *c = alloc_xcalloc(1, sizeof(*c), "metrics");
    c->fd = h2o_socket_get_fd(sock);
    h2o_linklist_insert(&ml.conns, &c->link);
    ml.num_conns++;
    sock->on_close.cb = on_conn_close;
    sock->on_close.data = c;
    h2o_accept(&ml.accept_ctx, sock);
}

static void shutdown_conns(int how)
{
    for (h2o_linklist_t *n = ml.conns.next; n != &ml.conns; n = n->next)
        shutdown(H2O_STRUCT_FROM_MEMBER(metrics_conn_t, link, n)->fd, how);
}

/* ---- the thread ---- */

/* nobody posts real messages here: the stop sends a NULL message, which only wakes the loop */
static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
}

/* run the loop until no connection is left or the deadline */
static void run_until_no_conns(uint64_t deadline)
{
    while (ml.num_conns != 0) {
        uint64_t now = (uint64_t)now_mono_ms();
        if (now >= deadline)
            return;
        uint64_t wait = deadline - now;
        h2o_evloop_run(ml.ctx.loop, (int32_t)(wait > 50 ? 50 : wait));
    }
}

static void *metrics_thread_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "ec-metrics"); /* shown by top -H, ps -L, perf */

    h2o_context_init(&ml.ctx, h2o_evloop_create(), &ml.globalconf);
    h2o_multithread_register_receiver(ml.ctx.queue, &ml.control_receiver, on_control);
    ml.accept_ctx.ctx = &ml.ctx;
    ml.accept_ctx.hosts = ml.globalconf.hosts;
    ml.listener = h2o_evloop_socket_create(ml.ctx.loop, ml.listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    ml.listen_fd = -1; /* the listener owns it now */
    h2o_socket_read_start(ml.listener, on_accept);
    pthread_mutex_lock(&ml.lock);
    ml.ready = 1;
    pthread_cond_signal(&ml.cond);
    pthread_mutex_unlock(&ml.lock);

    while (!atomic_load(&ml.stopping))
        h2o_evloop_run(ml.ctx.loop, INT32_MAX);
    pthread_mutex_lock(&ml.lock);
    while (!ml.wake_sent)
        pthread_cond_wait(&ml.cond, &ml.lock);
    pthread_mutex_unlock(&ml.lock);

    /* stop accepting; then close every connection */
    h2o_socket_read_stop(ml.listener);
    h2o_socket_close(ml.listener);
    ml.listener = NULL;
    shutdown_conns(SHUT_RD);
    run_until_no_conns((uint64_t)now_mono_ms() + 1000);
    if (ml.num_conns != 0) {
        shutdown_conns(SHUT_RDWR);
        run_until_no_conns((uint64_t)now_mono_ms() + 1000);
    }
    if (ml.num_conns != 0) {
        fprintf(stderr, "edgecache: metrics listener: %zu connection(s) still open at shutdown; leaving them\n", ml.num_conns);
        ml.leaked = 1;
        return NULL;
    }
    h2o_multithread_unregister_receiver(ml.ctx.queue, &ml.control_receiver);
    frontend_context_destroy(&ml.ctx);
    return NULL;
}

/* ---- start / stop ---- */

int admin_metrics_listener_start(const config_t *cfg, char *err, size_t errlen)
{
    const config_addr_t *a = &cfg->metrics_listen;
    h2o_hostconf_t *hostconf;
    h2o_handler_t *handler;
    int rc;

    if (a->host[0] == '\0')
        return 0;
    if (listen_open(a, "--metrics-listen", a->port, LISTEN_ALONE, &ml.listen_fd, &ml.port, err, errlen) != 0)
        return -1;
    fcntl(ml.listen_fd, F_SETFL, O_NONBLOCK);

    h2o_config_init(&ml.globalconf);
    ml.globalconf.server_name = h2o_iovec_init("", 0); /* no Server header */
    ml.globalconf.max_request_entity_size = METRICS_MAX_ENTITY;
    ml.globalconf.http1.req_timeout = METRICS_HEAD_DEADLINE_MS;
    ml.globalconf.http1.upgrade_to_http2 = 0;
    hostconf = h2o_config_register_host(&ml.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    handler = h2o_create_handler(h2o_config_register_path(hostconf, "/", 0), sizeof(*handler));
    handler->on_req = on_req;

    h2o_linklist_init_anchor(&ml.conns);
    ml.num_conns = 0;
    ml.leaked = 0;
    ml.ready = ml.wake_sent = 0;
    atomic_init(&ml.stopping, 0);
    pthread_mutex_init(&ml.lock, NULL);
    pthread_cond_init(&ml.cond, NULL);
    rc = pthread_create(&ml.thread, NULL, metrics_thread_main, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "--metrics-listen: cannot start its thread: %s", strerror(rc));
        pthread_cond_destroy(&ml.cond);
        pthread_mutex_destroy(&ml.lock);
        h2o_config_dispose(&ml.globalconf);
        close(ml.listen_fd);
        ml.listen_fd = -1;
        ml.port = 0;
        return -1;
    }
    /* the stop posts into the loop's queue: it must exist before we return */
    pthread_mutex_lock(&ml.lock);
    while (!ml.ready)
        pthread_cond_wait(&ml.cond, &ml.lock);
    pthread_mutex_unlock(&ml.lock);
    ml.running = 1;
    fprintf(stderr, "edgecache: metrics listener on %s:%u (GET /metrics, no token)\n", a->host, (unsigned)ml.port);
    return 0;
}

uint16_t admin_metrics_listener_port(void)
{
    return ml.running ? ml.port : 0;
}

void admin_metrics_listener_stop(void)
{
    if (!ml.running)
        return;
    ml.running = 0;
    atomic_store(&ml.stopping, 1);
    /* the thread may see `stopping` before the wake-up is written (any event wakes its loop);
     * wake_sent tells it when the write into its queue is over */
    pthread_mutex_lock(&ml.lock);
    h2o_multithread_send_message(&ml.control_receiver, NULL); /* only wakes the loop */
    ml.wake_sent = 1;
    pthread_cond_signal(&ml.cond);
    pthread_mutex_unlock(&ml.lock);
    pthread_join(ml.thread, NULL);
    ml.port = 0;
    if (ml.leaked)
        return; /* h2o may still touch its connections: keep everything allocated */
    pthread_cond_destroy(&ml.cond);
    pthread_mutex_destroy(&ml.lock);
    h2o_config_dispose(&ml.globalconf);
}

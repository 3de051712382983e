/*
 * admin-api/admin.c — the admin listener: its threads, their h2o event loops and contexts,
 * the connections they accept, start-up and shutdown. What a request gets is the router's
 * business (admin_router.c, whose one handler admin_start registers on "/").
 *
 * What it owns: --admin-threads loops (admin_loop_t), each a thread running one h2o
 * evloop and context on its own listening socket. With more than one, the sockets share
 * the address with SO_REUSEPORT and the kernel spreads connections over them, as for the
 * proxy workers: one thread could not keep up with thousands of purges a second (the
 * loopback sends and h2o's epoll changes alone took a whole core). The contexts share
 * one h2o_globalconf_t with a single handler on "/" that routes by method and path
 * itself. Each loop tracks its accepted connections (so that admin_stop can close them)
 * and its purges in flight (its purge_loop). The live settings cell and failure budget
 * are shared. The store, memory tier and config are borrowed. With --admin-tls-listen each
 * loop also has a socket on that address (the same SO_REUSEPORT grouping) whose
 * connections are accepted with server/tls.h's admin context: the same API over HTTPS,
 * tracked and closed like the others.
 *
 * HTTP/1.1 only, in cleartext and over TLS, and a bounded number of connections: h2o 2.2.5
 * reads a request's whole body (up to ADMIN_H2O_MAX_ENTITY) before any handler sees the
 * request, so before its token is looked at. Over h2 one connection held 100 such bodies at
 * once: 8 connections without a token took the process from 8 MB to 870 MB. Now a
 * connection holds one body at most, a loop at most ADMIN_MAX_CONNS connections, and one
 * address other than loopback at most ADMIN_MAX_CONNS_PER_ADDR of them, so that one client
 * can neither hold more than that nor take every slot; the rest are closed at accept.
 *
 * Threads: admin_start/admin_stop run on the caller's thread; a request is served
 * wholly on the thread of the loop that accepted its connection. Handlers that read,
 * change and store configuration (settings, tokens, the extension routes) hold
 * config_lock, so that two threads never interleave a read-modify-write. Any thread may
 * call admin_settings_snapshot and the auth helpers (see settings.c, auth.c).
 *
 * Shutdown (admin_stop): each loop stops accepting, lets purges in flight come back from
 * the store (each still answers its client), answers delayed 401s at once, then shuts the
 * sockets down so h2o closes every connection through its own paths, and only then
 * disposes the context. If the store never calls back within the bound, the admin's
 * memory is deliberately left allocated (the writer thread would still post into it) and
 * a line says so.
 *
 * h2o_context_dispose (h2o 2.2) asserts that no entry is linked on any of the context's
 * timeouts and aborts the process otherwise. Entries of connections and requests go with
 * them, but h2o_context_request_shutdown arms a context-level one: HTTP/2's graceful-shutdown
 * timer, on the one-second timeout. It fires (and unlinks itself) one second later, so a
 * shutdown that took less than a second found it still linked and SIGTERM ended in
 * "h2o_timeout_dispose: Assertion ... failed", exit 134. Hence unlink_leftover_timers:
 * once no connection is left, whatever is still linked is unlinked before the dispose
 * (anything but that timer is reported on stderr, never an abort). And because any event
 * can wake the loop, the thread may see `stopping` before admin_stop has finished writing
 * its wake-up into the loop's queue: it waits for that write (wake_lock / wake_sent)
 * before the queue is destroyed.
 */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "common/alloc.h"
#include "common/now.h"
#include "server/frontend.h"
#include "server/listen.h"
#include "server/tls.h"
#include "server/h1park.h"
#include "admin-api/admin_int.h"

/* h2o buffers request bodies up to this; between ADMIN_MAX_BODY and it we answer 413 JSON,
 * beyond it h2o answers its own (plain-text) 413 */
#define ADMIN_H2O_MAX_ENTITY (1024 * 1024)
_Static_assert(ADMIN_MAX_BATCH_BODY <= ADMIN_H2O_MAX_ENTITY, "h2o must buffer a whole batch purge body");

typedef struct admin_conn {
    h2o_linklist_t link;
    admin_loop_t *loop;
    int fd;
    uint8_t addr[16]; /* the peer, as admin_socket_addr gives it */
} admin_conn_t;

/* ---- connections ---- */

static void on_conn_close(void *data)
{
    admin_conn_t *c = data;
    h2o_linklist_unlink(&c->link);
    c->loop->num_conns--;
    free(c);
}

/* may one more connection from addr be taken? (the limits are this loop's; see the top) */
static int conn_slot_free(const admin_loop_t *loop, const uint8_t addr[16])
{
    if (loop->num_conns >= ADMIN_MAX_CONNS)
        return 0;
    if (admin_addr_is_loopback(addr))
        return 1; /* the host's own clients: bench/purge keeps 50 */
    size_t same = 0;
    for (const h2o_linklist_t *l = loop->conns.next; l != &loop->conns; l = l->next)
        same += memcmp(H2O_STRUCT_FROM_MEMBER(admin_conn_t, link, l)->addr, addr, 16) == 0;
    return same < ADMIN_MAX_CONNS_PER_ADDR;
}

static void accept_one(h2o_socket_t *listener, const char *err, int tls)
{
    admin_loop_t *loop = listener->data;
    h2o_socket_t *sock;
    uint8_t addr[16];

    if (err != NULL || atomic_load(&loop->admin->stopping))
        return;
    if ((sock = h2o_evloop_socket_accept(listener)) == NULL)
        return;
    admin_socket_addr(sock, addr);
    if (!conn_slot_free(loop, addr)) {
        uint64_t n = ++loop->refused_conns;
        if ((n & (n - 1)) == 0) /* the 1st, 2nd, 4th, 8th...: said, but never a line per connection */
            fprintf(stderr,
                    "edgecache: admin: connection refused at accept (%" PRIu64 " so far on this thread): %zu open, "
                    "at most %d, and %d from one address but loopback\n",
                    n, loop->num_conns, ADMIN_MAX_CONNS, ADMIN_MAX_CONNS_PER_ADDR);
        h2o_socket_close(sock);
        return;
    }
    admin_conn_t *c = alloc_xcalloc(1, sizeof(*c), "admin");
    c->loop = loop;
    c->fd = h2o_socket_get_fd(sock);
    memcpy(c->addr, addr, 16);
    h2o_linklist_insert(&loop->conns, &c->link);
    loop->num_conns++;
    sock->on_close.cb = on_conn_close;
    sock->on_close.data = c;
    h2o_accept(tls ? &loop->tls_accept_ctx : &loop->accept_ctx, sock);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    accept_one(listener, err, 0);
}

/* --admin-tls-listen: the same connections, over TLS (server/tls.h's admin context) */
static void on_accept_tls(h2o_socket_t *listener, const char *err)
{
    accept_one(listener, err, 1);
}

static void shutdown_conns(admin_loop_t *loop, int how)
{
    for (h2o_linklist_t *n = loop->conns.next; n != &loop->conns; n = n->next) {
        admin_conn_t *c = H2O_STRUCT_FROM_MEMBER(admin_conn_t, link, n);
        shutdown(c->fd, how);
    }
}

admin_loop_t *admin_loop_of(admin_t *admin, h2o_context_t *ctx)
{
    for (unsigned i = 0; i < admin->num_loops; i++)
        if (&admin->loops[i].ctx == ctx)
            return &admin->loops[i];
    return NULL;
}

/* nobody posts real messages here: admin_stop sends a NULL message, which only wakes the
 * loop so that the thread sees `stopping` */
static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
}

/*
 * One turn of the loop. The purges its requests queue reach the store's writer
 * together when the turn ends: one lock and one wake-up for the dozen or so requests
 * a turn takes under load, not one per purge.
 */
static void run_once(admin_loop_t *loop, int32_t max_wait)
{
    store_hold_begin(loop->admin->store);
    h2o_evloop_run(loop->ctx.loop, max_wait);
    store_hold_end(loop->admin->store);
}

/* run the loop until cond() or the deadline */
static void run_until(admin_loop_t *loop, int (*cond)(admin_loop_t *), uint64_t deadline)
{
    while (!cond(loop)) {
        uint64_t now = (uint64_t)now_mono_ms();
        if (now >= deadline)
            return;
        uint64_t wait = deadline - now;
        run_once(loop, (int32_t)(wait > 50 ? 50 : wait));
    }
}

static int no_purges(admin_loop_t *loop)
{
    return loop->purges.in_flight == 0;
}

static int no_conns_no_purges(admin_loop_t *loop)
{
    return loop->num_conns == 0 && loop->purges.in_flight == 0;
}

/*
 * Called with no connection left and no purge in flight, right before h2o_context_dispose,
 * which aborts on any linked entry. The only expected one is HTTP/2's graceful-shutdown
 * timer (armed by h2o_context_request_shutdown, owned by the context). Any other entry has
 * lost its owner; its memory is whatever that owner left, and since the loop never runs
 * again unlinking it is all that can be done: report it and carry on rather than abort the
 * whole process on its way out.
 */
static void unlink_leftover_timers(admin_loop_t *loop)
{
    h2o_context_t *ctx = &loop->ctx;
    /* every timeout h2o_context_dispose disposes (h2o 2.2 lib/core/context.c) */
    h2o_timeout_t *const timeouts[] = {&ctx->zero_timeout,
                                       &ctx->one_sec_timeout,
                                       &ctx->hundred_ms_timeout,
                                       &ctx->handshake_timeout,
                                       &ctx->http1.req_timeout,
                                       &ctx->http2.idle_timeout,
                                       &ctx->http2.graceful_shutdown_timeout,
                                       &ctx->proxy.io_timeout};
    static const char *const names[] = {"zero_timeout",
                                        "one_sec_timeout",
                                        "hundred_ms_timeout",
                                        "handshake_timeout",
                                        "http1.req_timeout",
                                        "http2.idle_timeout",
                                        "http2.graceful_shutdown_timeout",
                                        "proxy.io_timeout"};
    _Static_assert(sizeof(timeouts) / sizeof(timeouts[0]) == sizeof(names) / sizeof(names[0]), "one name per timeout");
    const h2o_timeout_entry_t *graceful = &ctx->http2._graceful_shutdown_timeout;

    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        while (!h2o_linklist_is_empty(&timeouts[i]->_entries)) {
            h2o_timeout_entry_t *e = H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, timeouts[i]->_entries.next);
            h2o_timeout_unlink(e);
            if (e != graceful)
                fprintf(stderr, "edgecache: admin: a timer was still armed on %s at shutdown; unlinked\n", names[i]);
        }
    }
}

/* admin_stop writes its wake-up into ctx.queue; wait until that write is done before the
 * queue is destroyed (admin_stop sets `stopping` under wake_lock, so this is short) */
static void wait_for_wake_up(admin_loop_t *loop)
{
    pthread_mutex_lock(&loop->wake_lock);
    while (!loop->wake_sent)
        pthread_cond_wait(&loop->wake_cond, &loop->wake_lock);
    pthread_mutex_unlock(&loop->wake_lock);
}

/*
 * The loop's event loop, context, receivers and listener, created on the loop's own thread:
 * h2o 2.2 gives each socket's input buffer the creating thread's recycling allocator (a
 * thread-local), so sockets made on the starting thread (the context's queue pipe, the
 * listener) would have every admin thread allocate from and free into that one thread's
 * unlocked free list.
 */
static void loop_init(admin_t *admin, admin_loop_t *loop)
{
    h2o_context_init(&loop->ctx, h2o_evloop_create(), &admin->globalconf);
    purge_loop_init(&loop->purges, loop->ctx.queue);
    h2o_multithread_register_receiver(loop->ctx.queue, &loop->control_receiver, on_control);
    loop->accept_ctx.ctx = &loop->ctx;
    loop->accept_ctx.hosts = admin->globalconf.hosts;
    loop->listener = h2o_evloop_socket_create(loop->ctx.loop, loop->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    loop->listen_fd = -1; /* the listener owns it now */
    loop->listener->data = loop;
    h2o_socket_read_start(loop->listener, on_accept);
    if (loop->tls_listen_fd != -1) {
        loop->tls_accept_ctx = loop->accept_ctx;
        loop->tls_accept_ctx.ssl_ctx = tls_admin_ssl_ctx();
        loop->tls_listener = h2o_evloop_socket_create(loop->ctx.loop, loop->tls_listen_fd, H2O_SOCKET_FLAG_DONT_READ);
        loop->tls_listen_fd = -1;
        loop->tls_listener->data = loop;
        h2o_socket_read_start(loop->tls_listener, on_accept_tls);
    }
}

static void *admin_thread_main(void *arg)
{
    admin_loop_t *loop = arg;
    admin_t *admin = loop->admin;
    uint32_t grace = admin->cfg->shutdown_timeout_ms != 0 ? admin->cfg->shutdown_timeout_ms : 5000;
    pthread_setname_np(pthread_self(), "ec-admin"); /* shown by top -H, ps -L, perf */

    loop_init(admin, loop);
    pthread_mutex_lock(&loop->wake_lock);
    loop->ready = 1;
    pthread_cond_signal(&loop->wake_cond);
    pthread_mutex_unlock(&loop->wake_lock);

    while (!atomic_load(&admin->stopping))
        run_once(loop, INT32_MAX);
    wait_for_wake_up(loop);

    /* stop accepting; answer what is in flight; then close every connection */
    h2o_socket_read_stop(loop->listener);
    h2o_socket_close(loop->listener);
    loop->listener = NULL;
    if (loop->tls_listener != NULL) {
        h2o_socket_read_stop(loop->tls_listener);
        h2o_socket_close(loop->tls_listener);
        loop->tls_listener = NULL;
    }
    h2o_context_request_shutdown(&loop->ctx); /* no keep-alive for requests parsed from now on */
    admin_auth_flush_delayed_401s(loop);
    run_until(loop, no_purges, (uint64_t)now_mono_ms() + grace);
    shutdown_conns(loop, SHUT_RD);
    run_until(loop, no_conns_no_purges, (uint64_t)now_mono_ms() + 1000);
    if (!no_conns_no_purges(loop)) {
        shutdown_conns(loop, SHUT_RDWR);
        run_until(loop, no_conns_no_purges, (uint64_t)now_mono_ms() + 1000);
    }
    if (!no_conns_no_purges(loop)) {
        fprintf(stderr, "edgecache: admin: %zu purge(s) and %zu connection(s) still open at shutdown; leaving them\n",
                loop->purges.in_flight, loop->num_conns);
        loop->leaked = 1;
        return NULL;
    }
    assert(h2o_linklist_is_empty(&loop->delayed_401s)); /* each belongs to a request, so to a connection */
    purge_loop_dispose(&loop->purges);
    h2o_multithread_unregister_receiver(loop->ctx.queue, &loop->control_receiver);
    unlink_leftover_timers(loop);
    frontend_context_destroy(&loop->ctx);
    return NULL;
}

/* ---- start / stop ---- */

static void settings_store_initial(admin_t *admin, const admin_settings_t *s)
{
    json_t *o = admin_settings_to_json(s);
    char *str = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (str == NULL)
        abort();
    if (store_kv_put_sync(admin->store, "config", "settings", str, strlen(str)) != 0)
        fprintf(stderr, "edgecache: admin: could not store the initial settings; they apply to this run only\n");
    free(str);
}

/* settings: stored ones win; the config seeds (and stores) them on a fresh store */
static void settings_load(admin_t *admin)
{
    admin_settings_t s;
    char *val = NULL, detail[320];
    size_t len = 0;

    admin_settings_from_config(&s, admin->cfg);
    int ret = store_kv_get(admin->store, "config", "settings", &val, &len);
    if (ret == 0) {
        json_error_t jerr;
        json_t *doc = json_loadb(val, len, 0, &jerr);
        admin_settings_t stored = s;
        if (doc == NULL || admin_settings_apply_json(&stored, doc, detail, sizeof(detail)) != 0) {
            fprintf(stderr, "edgecache: admin: stored settings are invalid (%s); using the configured ones\n",
                    doc == NULL ? "not JSON" : detail);
        } else {
            s = stored;
            /* stored by an older version: the settings it did not know are seeded from the
             * configuration now, once, like a fresh store's */
            if (!admin_settings_json_is_complete(doc))
                settings_store_initial(admin, &s);
        }
        json_decref(doc);
        free(val);
    } else if (ret == STORE_ENOTFOUND) {
        /* a fresh store: the configuration seeds the settings, once */
        settings_store_initial(admin, &s);
    } else {
        fprintf(stderr, "edgecache: admin: could not read the stored settings (error %d); using the configured ones\n", ret);
    }
    admin_settings_cell_init(&admin->settings, &s);
}

/* after admin_stop joined the loop's thread (which disposed of the context) */
static void loop_dispose(admin_loop_t *loop)
{
    pthread_cond_destroy(&loop->wake_cond);
    pthread_mutex_destroy(&loop->wake_lock);
}

static void admin_free(admin_t *admin)
{
    admin_settings_cell_dispose(&admin->settings);
    admin_budget_dispose(&admin->budget);
    pthread_mutex_destroy(&admin->config_lock);
    free(admin->loops);
    admin->magic = 0;
    free(admin);
}

int admin_start(admin_t **out, const config_t *cfg, store_t *store, mem_tier_t *mem, char *err, size_t errlen)
{
    admin_t *admin;
    h2o_hostconf_t *hostconf;
    h2o_pathconf_t *pathconf;
    int fds[ADMIN_MAX_THREADS], tls_fds[ADMIN_MAX_THREADS];
    unsigned n = cfg->admin_threads < 1 ? 1 : cfg->admin_threads > ADMIN_MAX_THREADS ? ADMIN_MAX_THREADS : cfg->admin_threads;

    *out = NULL;
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -1;
    }
    admin = alloc_xcalloc(1, sizeof(*admin), "admin");
    admin->loops = alloc_xcalloc(n, sizeof(*admin->loops), "admin");
    admin->magic = ADMIN_MAGIC;
    admin->cfg = cfg;
    admin->store = store;
    admin->mem = mem;
    atomic_init(&admin->stopping, 0);
    admin_budget_init(&admin->budget);
    pthread_mutex_init(&admin->config_lock, NULL);
    settings_load(admin);

    /* every socket first, so that a bind error leaves no thread behind */
    uint16_t port = cfg->admin_listen.port, tls_port = cfg->admin_tls_listen.port;
    int tls = cfg->admin_tls_listen.host[0] != '\0';
    for (unsigned i = 0; i < n; i++) {
        listen_mode_t mode = n == 1 ? LISTEN_ALONE : i == 0 ? LISTEN_GROUP_FIRST : LISTEN_GROUP_JOIN;
        fds[i] = tls_fds[i] = -1;
        if (listen_open(&cfg->admin_listen, "--admin-listen", port, mode, &fds[i], &port, err, errlen) != 0 ||
            (tls && listen_open(&cfg->admin_tls_listen, "--admin-tls-listen", tls_port, mode, &tls_fds[i], &tls_port, err,
                                errlen) != 0)) {
            for (unsigned k = 0; k <= i; k++) {
                if (fds[k] != -1)
                    close(fds[k]);
                if (tls_fds[k] != -1)
                    close(tls_fds[k]);
            }
            admin_free(admin);
            return -1;
        }
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        if (tls_fds[i] != -1)
            fcntl(tls_fds[i], F_SETFL, O_NONBLOCK);
    }
    admin->port = port;
    admin->tls_port = tls ? tls_port : 0;

    h2o_config_init(&admin->globalconf);
    admin->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("edgecache"));
    admin->globalconf.max_request_entity_size = ADMIN_H2O_MAX_ENTITY;
    admin->globalconf.http1.upgrade_to_http2 = 0; /* no h2c, by Upgrade or prior knowledge: see the top */
    hostconf = h2o_config_register_host(&admin->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    pathconf = h2o_config_register_path(hostconf, "/", 0);
    admin_router_register(admin, pathconf);
    h1park_register(pathconf); /* a waiting purge's connection is unparked when its answer starts */

    admin->num_loops = n;
    for (unsigned i = 0; i < n; i++) {
        admin_loop_t *loop = &admin->loops[i];
        loop->admin = admin;
        loop->index = i;
        loop->listen_fd = fds[i];
        loop->tls_listen_fd = tls_fds[i];
        h2o_linklist_init_anchor(&loop->conns);
        h2o_linklist_init_anchor(&loop->delayed_401s);
        pthread_mutex_init(&loop->wake_lock, NULL);
        pthread_cond_init(&loop->wake_cond, NULL);
        h2o_multithread_create_thread(&loop->thread, NULL, admin_thread_main, loop);
    }
    /* admin_stop posts into the loops' queues: they must exist before we return */
    for (unsigned i = 0; i < n; i++) {
        admin_loop_t *loop = &admin->loops[i];
        pthread_mutex_lock(&loop->wake_lock);
        while (!loop->ready)
            pthread_cond_wait(&loop->wake_cond, &loop->wake_lock);
        pthread_mutex_unlock(&loop->wake_lock);
    }
    *out = admin;
    return 0;
}

uint16_t admin_bound_port(admin_t *admin)
{
    assert(admin != NULL && admin->magic == ADMIN_MAGIC);
    return admin->port;
}

uint16_t admin_tls_bound_port(admin_t *admin)
{
    assert(admin != NULL && admin->magic == ADMIN_MAGIC);
    return admin->tls_port;
}

void admin_stop(admin_t **padmin)
{
    admin_t *admin = *padmin;
    int leaked = 0;
    if (admin == NULL)
        return;
    assert(admin->magic == ADMIN_MAGIC);
    *padmin = NULL;
    atomic_store(&admin->stopping, 1);
    /* a thread may see `stopping` before its wake-up is written (any event wakes its loop);
     * wake_sent tells it when the write into its queue is over, so it never destroys the
     * queue under us */
    for (unsigned i = 0; i < admin->num_loops; i++) {
        admin_loop_t *loop = &admin->loops[i];
        pthread_mutex_lock(&loop->wake_lock);
        h2o_multithread_send_message(&loop->control_receiver, NULL); /* only wakes the loop */
        loop->wake_sent = 1;
        pthread_cond_signal(&loop->wake_cond);
        pthread_mutex_unlock(&loop->wake_lock);
    }
    for (unsigned i = 0; i < admin->num_loops; i++) {
        pthread_join(admin->loops[i].thread, NULL);
        leaked |= admin->loops[i].leaked;
    }
    if (leaked)
        return; /* the store may still call back into it: keep it allocated */
    for (unsigned i = 0; i < admin->num_loops; i++)
        loop_dispose(&admin->loops[i]);
    h2o_config_dispose(&admin->globalconf);
    admin_free(admin);
}

/*
 * server/inflow.c — what each client connection of the proxy listener has sent that no
 * handler has taken yet (see server/inflow.h), and the request-body budget.
 *
 * The budget (--request-body-memory) bounds the bytes of request bodies in memory, twice:
 * those still arriving (h2o holds them, in its HTTP/1 input buffer or its HTTP/2 streams),
 * and apart from them those the proxy holds while origins answer (from the handler until the
 * request is disposed: inflow_body_hold, 503 beyond it). Apart, so that an upload arriving
 * while others wait for their origin gets a clear 503 at the handler, not a closed
 * connection. The second kind is known exactly. The first is counted here, because h2o
 * 2.2.5 gives no figure for it:
 *
 *  - Each connection's read callback is wrapped (on_read_counted): before h2o's callback
 *    parses what a read brought, the connection's `pending` grows by the request-body bytes
 *    in it. HTTP/1: every byte (h2o keeps the head and the body in its input buffer until
 *    the answer is done). HTTP/2 (the client preface at the start, "h2" by ALPN, or from
 *    the first stream of a connection h2o upgraded from HTTP/1 by Upgrade: h2c): the
 *    DATA payloads, less padding, of the complete frames at the start of the input buffer
 *    (server/h2_frames.c). h2o's HTTP/2 parser consumes every complete frame of its input
 *    in the same call, so the buffer starts at a frame each time and no frame is counted
 *    twice; headers and control frames are never counted (h2o bounds what they hold).
 *  - A request reaching the handler takes its bytes off. HTTP/1: h2o reads one request at a
 *    time and stops reading while it is answered, so what its input buffer holds beyond the
 *    body (the head, anything pipelined) is what stays pending. HTTP/2: its body. What stays
 *    counted on an HTTP/2 connection is then the bodies not yet complete, and those of
 *    streams the client reset or h2o refused (their DATA is dropped by h2o but was counted
 *    here: the connection is closed sooner, never later).
 *  - What a connection holds beyond INFLOW_ALLOWANCE counts in g_arriving. A read that takes
 *    a connection past INFLOW_CONN_BODIES bodies, or the process past the budget, closes that
 *    connection: h2o's callback is called with an error, as when the client goes away, and
 *    h2o frees what its streams hold. A connection within its allowance never touches the
 *    shared counter (GETs do not).
 *
 * h2o sets a connection's read callback each time it starts reading (h2o_socket_read_start
 * replaces ours), so the wrapper is put back whenever h2o put its own:
 *  - right after one of ours returns, if h2o's callback changed it (TLS handshake done,
 *    HTTP/1 to HTTP/2);
 *  - at the end of the loop turn, for an HTTP/1 connection whose request was disposed
 *    (h2o reads the next request from there: its cleanup_connection; `fresh` list);
 *  - every INFLOW_WATCH_MS, for a connection h2o stopped reading with no request in the
 *    handler (waiting to write a 100 Continue, or closing; `watch` list).
 * While h2o's own callback is in place, what its reads bring is not counted; when ours is put
 * back, the connection's pending is at least what its input buffer holds (all of an HTTP/1
 * request's bytes are there). HTTP/2 connections are never stopped by h2o 2.2.5 until they
 * close, so theirs is put back once, at the switch. What is not counted is bounded per
 * connection: the allowance, and over TLS the first flight after the handshake (h2o decrypts
 * and parses it inside its handshake callback), which the client's TCP window at the start
 * of a connection bounds.
 *
 * h1park's callback (a parked HTTP/1 connection) is never wrapped: h1park tells its own
 * apart by it, and a parked connection reads nothing.
 *
 * Threads: a connection's record is its worker's alone. g_arriving and g_held are atomics
 * shared by all workers, touched only by connections past their allowance and by requests
 * with a body.
 */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "common/alloc.h"
#include "common/now.h"
#include "server/h1park.h"
#include "server/h2_frames.h"
#include "server/inflow.h"
#include "server/worker.h"

#define INFLOW_MAGIC 0x1f10c0a5u
#define INFLOW_WATCH_MS 1 /* how often connections stopped outside the handler are looked at */

typedef enum inflow_proto {
    INFLOW_UNDECIDED, /* nothing read yet, or a strict prefix of the HTTP/2 client preface */
    INFLOW_HTTP1,
    INFLOW_HTTP2,
} inflow_proto_t;

struct inflow_conn {
    uint32_t magic;
    inflow_proto_t proto;
    worker_t *w;
    h2o_socket_t *sock;
    h2o_socket_cb h2o_read;  /* h2o's read callback, while ours stands in its place */
    uint64_t pending;        /* bytes read that no handler has taken */
    uint64_t charged;        /* of them, counted in g_arriving: pending beyond INFLOW_ALLOWANCE */
    h2o_linklist_t link;     /* on w->inflow_fresh or w->inflow_watch, or on neither */
    unsigned in_handler : 1; /* an HTTP/1 request of it is in the handler (taken, not yet disposed) */
    unsigned in_read : 1;    /* h2o's read callback is running under ours */
    unsigned closed : 1;     /* it closed while in_read: freed when that returns */
};

static _Atomic uint64_t g_arriving; /* sum of the connections' charged */
static _Atomic uint64_t g_held;     /* bodies the handler holds (inflow_body_hold) */
static uint64_t g_budget = UINT64_MAX;
static uint64_t g_conn_limit = UINT64_MAX;
static void (*g_closed)(worker_t *w);
static const char inflow_refused[] = "request bodies beyond the budget";

void inflow_configure(uint64_t max_request_body, uint64_t budget, void (*closed)(worker_t *w))
{
    g_budget = budget;
    g_conn_limit = max_request_body > (UINT64_MAX - INFLOW_ALLOWANCE) / INFLOW_CONN_BODIES
                       ? UINT64_MAX
                       : max_request_body * INFLOW_CONN_BODIES + INFLOW_ALLOWANCE;
    g_closed = closed;
}

void inflow_worker_init(worker_t *w)
{
    h2o_linklist_init_anchor(&w->inflow_fresh);
    h2o_linklist_init_anchor(&w->inflow_watch);
    w->inflow_watch_ms = 0;
}

uint64_t inflow_arriving_bytes(void)
{
    return atomic_load_explicit(&g_arriving, memory_order_relaxed);
}

uint64_t inflow_held_bytes(void)
{
    return atomic_load_explicit(&g_held, memory_order_relaxed);
}

uint64_t inflow_budget(void)
{
    return g_budget;
}

/* c holds `pending` bytes now: its charge follows; returns g_arriving after it (0 when the charge did not change) */
static uint64_t set_pending(inflow_conn_t *c, uint64_t pending)
{
    c->pending = pending;
    uint64_t charged = pending > INFLOW_ALLOWANCE ? pending - INFLOW_ALLOWANCE : 0;
    uint64_t arriving;
    if (charged > c->charged)
        arriving = atomic_fetch_add_explicit(&g_arriving, charged - c->charged, memory_order_relaxed) + (charged - c->charged);
    else if (charged < c->charged)
        arriving = atomic_fetch_sub_explicit(&g_arriving, c->charged - charged, memory_order_relaxed) - (c->charged - charged);
    else
        return 0; /* unchanged: nothing was added */
    c->charged = charged;
    return arriving;
}

static void on_read_counted(h2o_socket_t *sock, const char *err);

/* h2o reads c's socket with its own callback: put ours in its place */
static void wrap(inflow_conn_t *c)
{
    c->h2o_read = c->sock->_cb.read;
    c->sock->_cb.read = on_read_counted;
    if (c->sock->input != NULL && c->sock->input->size > c->pending)
        (void)set_pending(c, c->sock->input->size);
}

/* 1 when h2o reads c's socket through our callback (put back now if h2o had put its own); 0 while h2o does not
 * read it (or h1park has it) */
static int rewrapped(inflow_conn_t *c)
{
    h2o_socket_cb cb = c->sock->_cb.read;
    if (cb == on_read_counted)
        return 1;
    if (cb == NULL || h1park_is_parked(c->sock))
        return 0;
    wrap(c);
    return 1;
}

static void relink(inflow_conn_t *c, h2o_linklist_t *list)
{
    if (h2o_linklist_is_linked(&c->link))
        h2o_linklist_unlink(&c->link);
    h2o_linklist_insert(list, &c->link);
}

/* the request-body bytes that the read which brought sock->bytes_read bytes added (see above) */
static uint64_t arrived(inflow_conn_t *c, h2o_socket_t *sock)
{
    const uint8_t *in = (const uint8_t *)sock->input->bytes;
    size_t len = sock->input->size;
    if (c->proto == INFLOW_UNDECIDED) {
        h2o_iovec_t alpn = sock->ssl != NULL ? h2o_socket_ssl_get_selected_protocol(sock) : h2o_iovec_init(NULL, 0);
        h2_frames_start_t start = h2_frames_preface(in, len);
        if ((alpn.len == 2 && memcmp(alpn.base, "h2", 2) == 0) || start == H2_FRAMES_START_PREFACE) {
            c->proto = INFLOW_HTTP2;
        } else if (start == H2_FRAMES_START_PARTIAL) {
            return 0;
        } else {
            c->proto = INFLOW_HTTP1;
            return len; /* all of it is new to this count */
        }
    }
    if (c->proto == INFLOW_HTTP1)
        return sock->bytes_read;
    switch (h2_frames_preface(in, len)) {
    case H2_FRAMES_START_PREFACE: return h2_frames_data_bytes(in + H2_FRAMES_PREFACE_LEN, len - H2_FRAMES_PREFACE_LEN);
    case H2_FRAMES_START_PARTIAL: return 0;
    default: return h2_frames_data_bytes(in, len);
    }
}

static void on_read_counted(h2o_socket_t *sock, const char *err)
{
    inflow_conn_t *c = sock->on_close.data;
    assert(c->magic == INFLOW_MAGIC && c->sock == sock);
    h2o_socket_cb h2o_read = c->h2o_read;
    if (err == NULL && sock->bytes_read != 0) {
        uint64_t total = set_pending(c, c->pending + arrived(c, sock));
        if (c->charged != 0 && (c->pending > g_conn_limit || total > g_budget)) {
            atomic_fetch_add_explicit(&c->w->counters.body_budget_closed, 1, memory_order_relaxed);
            err = inflow_refused; /* h2o closes the connection and frees its streams */
        }
    }
    c->in_read = 1;
    h2o_read(sock, err);
    if (c->closed) {
        c->magic = 0;
        free(c);
        return;
    }
    c->in_read = 0;
    /* stopped with no request in the handler to say when h2o reads again (a 100 Continue being written, an
     * Upgrade's 101, a close): at the end of the turn, then every INFLOW_WATCH_MS */
    if (!rewrapped(c) && !c->in_handler)
        relink(c, &c->w->inflow_fresh);
}

static void on_close(void *data)
{
    inflow_conn_t *c = data;
    assert(c->magic == INFLOW_MAGIC);
    worker_t *w = c->w;
    (void)set_pending(c, 0);
    if (h2o_linklist_is_linked(&c->link))
        h2o_linklist_unlink(&c->link);
    if (c->in_read) {
        c->closed = 1;
    } else {
        c->magic = 0;
        free(c);
    }
    g_closed(w);
}

void inflow_accepted(worker_t *w, h2o_socket_t *sock)
{
    inflow_conn_t *c = alloc_xcalloc(1, sizeof(*c), "client connection");
    c->magic = INFLOW_MAGIC;
    c->w = w;
    c->sock = sock;
    sock->on_close.cb = on_close; /* nothing in libh2o sets it */
    sock->on_close.data = c;
    /* h2o_accept has set its callback: HTTP/1's, or the TLS handshake's */
    if (sock->_cb.read != NULL)
        wrap(c);
}

void inflow_turn(worker_t *w)
{
    while (!h2o_linklist_is_empty(&w->inflow_fresh)) {
        inflow_conn_t *c = H2O_STRUCT_FROM_MEMBER(inflow_conn_t, link, w->inflow_fresh.next);
        h2o_linklist_unlink(&c->link);
        if (!rewrapped(c) && !c->in_handler)
            h2o_linklist_insert(&w->inflow_watch, &c->link);
    }
    if (h2o_linklist_is_empty(&w->inflow_watch))
        return;
    int64_t now = now_mono_ms();
    if (now - w->inflow_watch_ms < INFLOW_WATCH_MS)
        return;
    w->inflow_watch_ms = now;
    for (h2o_linklist_t *l = w->inflow_watch.next, *next; l != &w->inflow_watch; l = next) {
        next = l->next;
        inflow_conn_t *c = H2O_STRUCT_FROM_MEMBER(inflow_conn_t, link, l);
        if (rewrapped(c) || c->in_handler)
            h2o_linklist_unlink(&c->link);
    }
}

inflow_conn_t *inflow_request_taken(h2o_req_t *req)
{
    if (req->conn->callbacks->get_socket == NULL)
        return NULL;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->on_close.cb != on_close)
        return NULL; /* not a connection of the proxy listener */
    inflow_conn_t *c = sock->on_close.data;
    assert(c->magic == INFLOW_MAGIC);
    if (req->version >= 0x200) {
        if (c->proto != INFLOW_HTTP2) {
            /* an HTTP/1 connection that h2o upgraded (Upgrade: h2c): this is its first stream, the upgrading request
             * itself; what follows is HTTP/2, from the client preface on (h2o's input buffer starts afresh there) */
            c->proto = INFLOW_HTTP2;
            (void)set_pending(c, 0);
        }
        (void)set_pending(c, c->pending > req->entity.len ? c->pending - req->entity.len : 0);
        return NULL;
    }
    uint64_t in = sock->input != NULL ? sock->input->size : 0;
    (void)set_pending(c, in > req->entity.len ? in - req->entity.len : 0);
    c->in_handler = 1;
    return c;
}

void inflow_request_done(inflow_conn_t *c)
{
    /* h2o disposes a request before it closes its connection, so c is alive */
    assert(c->magic == INFLOW_MAGIC && c->in_handler);
    c->in_handler = 0;
    if (c->sock->_cb.read != on_read_counted) /* h2o reads the next request right after (its cleanup_connection) */
        relink(c, &c->w->inflow_fresh);
}

static void body_release(void *p)
{
    atomic_fetch_sub_explicit(&g_held, *(uint64_t *)p, memory_order_relaxed);
}

int inflow_body_hold(h2o_req_t *req)
{
    uint64_t len = req->entity.len;
    uint64_t held = atomic_fetch_add_explicit(&g_held, len, memory_order_relaxed) + len;
    if (held > g_budget) {
        atomic_fetch_sub_explicit(&g_held, len, memory_order_relaxed);
        return -1;
    }
    uint64_t *slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), body_release);
    *slot = len;
    return 0;
}

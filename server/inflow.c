/*
 * server/inflow.c — what each client connection of the proxy listener has sent that no
 * handler has taken yet (see server/inflow.h), and the request-body budget.
 *
 * The budget (--request-body-memory, B) bounds the bytes of request bodies in memory: those
 * still arriving (h2o holds them, in its HTTP/1 input buffer or its HTTP/2 streams) at most
 * B; those past the handler (held from inflow_request_taken until the request is disposed,
 * whatever its answer, while origins answer or while a client is slow to take a 400) are
 * answered 503 beyond B; and both together at most 2B, or arriving connections are closed.
 * Apart, so that an upload arriving while others wait for their origin gets a clear 503 at
 * the handler, not a closed connection. The bodies held are known exactly. Those arriving
 * are counted here, because h2o 2.2.5 gives no figure for them.
 *
 * Counting. Each connection's read callback is wrapped (on_read_counted): before h2o's
 * callback parses what a read brought, the connection's `pending` grows by the request-body
 * bytes in it, and a request reaching the handler takes its own off.
 *  - HTTP/1: every byte read. h2o reads one request at a time, keeps its head and body in
 *    its input buffer, and stops reading while it is answered; so when the handler takes a
 *    request, what that buffer holds beyond the body (the head, anything pipelined) is what
 *    stays pending.
 *  - HTTP/2: the DATA frames of each stream (server/h2_frames.c reads the frames' headers),
 *    in a small table of streams with body bytes. A stream's bytes leave it when its request
 *    reaches the handler (matched by its body's length), when the client resets it
 *    (RST_STREAM), or when it passes --max-request-body (h2o refuses it); the last two only
 *    once h2o has parsed that frame (a frame h2o refuses before it ends the parsing, and the
 *    connection may linger while it closes). DATA h2o drops (a stream done, refused, or made
 *    to exist by a PRIORITY frame and not opened) is not counted, or stays counted against
 *    the connection alone. h2o's parser consumes every whole frame of its input in the same
 *    call, so the input starts at a frame each time we look and no frame is counted twice;
 *    what h2o leaves unparsed beyond one frame cut short (a connection that stopped parsing
 *    while it closes) counts too.
 *  - Which protocol a connection speaks is told by h2o's own read callback (probed once per
 *    worker at start: inflow_worker_init), so a switch to HTTP/2 is seen wherever it happens
 *    (prior knowledge at the start or after HTTP/1 requests, Upgrade: h2c, "h2" by ALPN);
 *    a read that starts with the client preface is counted as HTTP/2 already.
 *  - What a connection holds beyond INFLOW_ALLOWANCE counts in g_arriving. A read that takes
 *    a connection past its limit (INFLOW_CONN_BODIES bodies, INFLOW_MAX_STREAMS streams with
 *    bytes) or the process past the budget (above) closes that connection: h2o's callback is called
 *    with an error, as when the client goes away, and h2o frees what its streams hold. A
 *    connection within its allowance never touches the shared counter (GETs do not).
 *
 * Keeping the wrapper in place. h2o sets a connection's read callback each time it starts
 * reading (h2o_socket_read_start replaces ours). Its event loop reads a socket only when
 * epoll, at the start of a turn, said it was readable and it was being read then, so a
 * callback h2o put back during a turn reads nothing before the next: looking at the right
 * connections after each turn (inflow_turn) misses no read. Ours is put back:
 *  - right after one of ours returns, if h2o's callback changed it (TLS handshake done,
 *    HTTP/1 to HTTP/2);
 *  - after the turn in which an HTTP/1 request was disposed (h2o reads the next request
 *    from there: its cleanup_connection; the `fresh` list);
 *  - after every turn, for connections h2o stopped reading with no request in the handler
 *    (a 100 Continue being written, an Upgrade's 101, an HTTP/2 connection whose unsent
 *    output passed 512 KB: Debian's h2o stops reading it until that drains; the `watch`
 *    list);
 *  - every INFLOW_SWEEP_MS, for every HTTP/2 connection (the `h2` list): an HTTP/2
 *    connection can also be stopped outside any callback of ours (a response's headers
 *    pushing its output past 512 KB); the sweep finds it stopped and watches it, or finds
 *    h2o's callback back and wraps it.
 * What is not counted is bounded per connection: its allowance; over TLS, the first flight
 * after the handshake (h2o decrypts and parses it inside its handshake callback), which the
 * client's TCP window at the start of a connection bounds; and the reads of an HTTP/2
 * connection stopped and started again outside our callbacks within one sweep.
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
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include "common/alloc.h"
#include "server/h1park.h"
#include "server/h2_frames.h"
#include "server/inflow.h"
#include "server/worker.h"

#define INFLOW_MAGIC 0x1f10c0a5u
#define INFLOW_SWEEP_MS 10     /* how often every HTTP/2 connection is looked at */
#define INFLOW_MAX_STREAMS 256 /* streams with body bytes on one connection: h2o opens 100 at once */

typedef enum inflow_proto {
    INFLOW_HTTP1, /* also a TLS connection in its handshake (whose reads bring no plaintext) */
    INFLOW_HTTP2,
} inflow_proto_t;

/* a stream's bytes taken off for a frame of the read being parsed (RST_STREAM, or the DATA that passes
 * --max-request-body), counted again if h2o did not parse that frame: a frame after one that h2o refuses is never
 * parsed, and the connection may linger while it closes (a write in flight) with the stream's body still held */
typedef struct inflow_drop {
    uint64_t bytes;
    size_t end; /* where the frame ends in the input as h2o had it */
} inflow_drop_t;

/* an HTTP/2 stream whose DATA was counted */
typedef struct inflow_stream {
    uint32_t id;
    uint8_t complete; /* END_STREAM seen: the request waits for the handler */
    uint8_t refused;  /* past --max-request-body, or reset: h2o drops what follows */
    uint8_t opened;   /* a HEADERS we saw opened it: its DATA is its body (before that: DATA h2o drops, or a stream
                       * opened where we could not see; counted as the connection's residue) */
    uint64_t bytes;
} inflow_stream_t;

struct inflow_conn {
    uint32_t magic;
    inflow_proto_t proto;
    worker_t *w;
    h2o_socket_t *sock;
    h2o_socket_cb h2o_read;   /* h2o's read callback, while ours stands in its place */
    uint64_t pending;         /* body bytes read that no handler has taken */
    uint64_t unparsed;        /* HTTP/2: what h2o left in its input beyond H2_FRAMES_MAX_PARTIAL */
    uint64_t residue;         /* HTTP/2: of pending, bytes counted as HTTP/1 before the switch (see wrap) */
    uint64_t completing;      /* HTTP/2, while a read is parsed: of pending, the bodies it completes */
    uint64_t charged;         /* counted in g_arriving: pending + unparsed beyond INFLOW_ALLOWANCE */
    inflow_stream_t *streams; /* HTTP/2: the streams with counted bytes */
    uint32_t num_streams, streams_cap;
    inflow_drop_t *drops; /* HTTP/2: found in the read being parsed */
    uint32_t num_drops, drops_cap;
    h2o_linklist_t link;     /* on w->inflow_fresh or w->inflow_watch, or on neither */
    h2o_linklist_t h2_link;  /* HTTP/2: on w->inflow_h2 */
    unsigned in_handler : 1; /* an HTTP/1 request of it is in the handler (taken, not yet disposed) */
    unsigned in_h2o : 1;     /* h2o runs under us (its read callback under ours, or h2o_accept) */
    unsigned closed : 1;     /* it closed while in_h2o: freed when that returns */
    unsigned refused : 1;    /* we closed it: nothing more to watch */
};

static _Atomic uint64_t g_arriving; /* sum of the connections' charged */
static _Atomic uint64_t g_held;     /* bodies the handler holds (inflow_body_hold) */
static uint64_t g_budget = UINT64_MAX;
static uint64_t g_max_body = UINT64_MAX;
static uint64_t g_conn_limit = UINT64_MAX;
static void (*g_closed)(worker_t *w);
static const char inflow_refused[] = "request bodies beyond the budget";

void inflow_configure(uint64_t max_request_body, uint64_t budget, void (*closed)(worker_t *w))
{
    g_budget = budget;
    g_max_body = max_request_body;
    g_conn_limit = max_request_body > (UINT64_MAX - INFLOW_ALLOWANCE) / INFLOW_CONN_BODIES
                       ? UINT64_MAX
                       : max_request_body * INFLOW_CONN_BODIES + INFLOW_ALLOWANCE;
    g_closed = closed;
}

/* The read callback h2o gives a connection of one protocol: accepted on one end of a socket pair, then closed at once
 * through that callback, as when a client goes away at once. */
static h2o_socket_cb probe_read_callback(worker_t *w, int http2)
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        return NULL;
    h2o_socket_t *sock = h2o_evloop_socket_create(w->loop, fds[0], 0);
    struct timeval now;
    gettimeofday(&now, NULL);
    if (http2)
        h2o_http2_accept(&w->accept_ctx, sock, now);
    else
        h2o_http1_accept(&w->accept_ctx, sock, now);
    h2o_socket_cb cb = sock->_cb.read;
    if (cb != NULL)
        cb(sock, "probe"); /* h2o closes the connection and the socket (its fd with it) */
    close(fds[1]);
    return cb;
}

void inflow_worker_init(worker_t *w)
{
    h2o_linklist_init_anchor(&w->inflow_fresh);
    h2o_linklist_init_anchor(&w->inflow_watch);
    h2o_linklist_init_anchor(&w->inflow_h2);
    w->inflow_sweep_ms = 0;
    w->inflow_http1_read = probe_read_callback(w, 0);
    w->inflow_http2_read = probe_read_callback(w, 1);
    assert(w->inflow_http1_read != NULL && w->inflow_http2_read != NULL && w->inflow_http1_read != w->inflow_http2_read);
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

/* c's pending or unparsed changed: its charge follows. Returns g_arriving after it, or 0 when the charge did not grow */
static inline uint64_t charge(inflow_conn_t *c)
{
    uint64_t basis = c->pending + c->unparsed;
    basis = basis > c->completing ? basis - c->completing : 0; /* h2o hands those over as it parses the read */
    if (basis <= INFLOW_ALLOWANCE && c->charged == 0)
        return 0; /* a connection within its allowance: no shared counter */
    uint64_t charged = basis > INFLOW_ALLOWANCE ? basis - INFLOW_ALLOWANCE : 0;
    uint64_t arriving = 0;
    if (charged > c->charged)
        arriving = atomic_fetch_add_explicit(&g_arriving, charged - c->charged, memory_order_relaxed) + (charged - c->charged);
    else if (charged < c->charged)
        atomic_fetch_sub_explicit(&g_arriving, c->charged - charged, memory_order_relaxed);
    c->charged = charged;
    return arriving;
}

/* ---------------------------------------------------------------- HTTP/2 streams */

static inflow_stream_t *stream_find(inflow_conn_t *c, uint32_t id)
{
    for (uint32_t i = 0; i != c->num_streams; ++i)
        if (c->streams[i].id == id)
            return &c->streams[i];
    return NULL;
}

static void stream_remove(inflow_conn_t *c, inflow_stream_t *s)
{
    c->pending -= s->bytes;
    *s = c->streams[--c->num_streams];
}

/* the record of stream id, added if new; NULL when the connection has INFLOW_MAX_STREAMS already (refused ones are
 * forgotten first) */
static inflow_stream_t *stream_get(inflow_conn_t *c, uint32_t id)
{
    inflow_stream_t *s = stream_find(c, id);
    if (s != NULL)
        return s;
    if (c->num_streams == INFLOW_MAX_STREAMS)
        for (uint32_t i = c->num_streams; i-- != 0;)
            if (c->streams[i].refused)
                stream_remove(c, &c->streams[i]);
    if (c->num_streams == INFLOW_MAX_STREAMS)
        return NULL;
    if (c->num_streams == c->streams_cap) {
        c->streams_cap = c->streams_cap == 0 ? 4 : c->streams_cap * 2;
        c->streams = alloc_xrealloc(c->streams, c->streams_cap * sizeof(*c->streams), "HTTP/2 streams");
    }
    s = &c->streams[c->num_streams++];
    *s = (inflow_stream_t){.id = id};
    return s;
}

/* h2o drops stream s at the frame ending at `end`: take its bytes off now, noted in case h2o stops before that frame;
 * whatever else comes for it h2o drops too, and a HEADERS that opens it again starts afresh */
static void drop(inflow_conn_t *c, inflow_stream_t *s, size_t end)
{
    if (c->num_drops == c->drops_cap) {
        c->drops_cap = c->drops_cap == 0 ? 4 : c->drops_cap * 2;
        c->drops = alloc_xrealloc(c->drops, c->drops_cap * sizeof(*c->drops), "HTTP/2 stream drops");
    }
    c->drops[c->num_drops++] = (inflow_drop_t){.bytes = s->bytes, .end = end};
    c->pending -= s->bytes;
    s->bytes = 0;
    s->refused = 1;
}

/* h2o parsed the first `consumed` bytes of what count_frames saw: what it dropped past them is still held */
static void undo_unparsed_drops(inflow_conn_t *c, size_t consumed)
{
    for (uint32_t i = 0; i != c->num_drops; ++i)
        if (c->drops[i].end > consumed)
            c->pending += c->drops[i].bytes;
    c->num_drops = 0;
}

/* Count the whole frames of in (an HTTP/2 connection's input, from a frame or the preface), in order, as h2o will
 * parse them: before it does, so that a request it hands the handler meanwhile finds its bytes. 0, or -1 when the
 * connection has more streams with bytes than INFLOW_MAX_STREAMS. */
static int count_frames(inflow_conn_t *c, const uint8_t *in, size_t len)
{
    size_t at = 0;
    switch (h2_frames_preface(in, len)) {
    case H2_FRAMES_START_PREFACE: at = H2_FRAMES_PREFACE_LEN; break;
    case H2_FRAMES_START_PARTIAL: return 0;
    default: break;
    }
    c->num_drops = 0;
    c->completing = 0;
    h2_frame_t f;
    for (; h2_frames_next(in + at, len - at, &f); at += f.size) {
        inflow_stream_t *s;
        switch (f.type) {
        case H2_FRAMES_TYPE_RST_STREAM:
            /* not a whole stream's: h2o hands its request over all the same (its END_STREAM came first), or drops it
             * from its queue; counted on, it is taken off by its own request or stays an over-count. Dropped, its
             * request would take off another stream of its length, perhaps one h2o still holds */
            if ((s = stream_find(c, f.stream_id)) != NULL && !s->refused && !s->complete)
                drop(c, s, at + f.size);
            break;
        case H2_FRAMES_TYPE_HEADERS:
            s = stream_find(c, f.stream_id);
            if (s == NULL || !s->opened || s->refused) {
                /* h2o opens a stream, its body empty: an id it has not seen, or one a PRIORITY frame made idle (even
                 * below the greatest opened). What was counted for the id before stays counted, as residue */
                if (s != NULL) {
                    c->residue += s->bytes;
                    *s = (inflow_stream_t){.id = f.stream_id};
                } else if (!(f.flags & H2_FRAMES_FLAG_END_STREAM) && (s = stream_get(c, f.stream_id)) == NULL) {
                    return -1;
                }
                if (s != NULL)
                    s->opened = 1;
            } else if (f.flags & H2_FRAMES_FLAG_END_STREAM) { /* trailers: h2o hands the request over */
                s->complete = 1;
                c->completing += s->bytes;
            }
            break;
        case H2_FRAMES_TYPE_DATA:
            if ((s = stream_get(c, f.stream_id)) == NULL)
                return -1;
            if (s->refused || s->complete)
                break; /* h2o drops DATA on a stream refused or done */
            c->pending += f.body;
            if (!s->opened) { /* dropped by h2o (an idle stream), or a stream's we could not see open: residue */
                c->residue += f.body;
                break;
            }
            s->bytes += f.body;
            if (s->bytes > g_max_body) /* h2o refuses the stream (REFUSED_STREAM) and drops its body */
                drop(c, s, at + f.size);
            else if (f.flags & H2_FRAMES_FLAG_END_STREAM) {
                s->complete = 1;
                c->completing += s->bytes;
            }
            break;
        default: break;
        }
    }
    return 0;
}

/* An HTTP/2 request of c reached the handler: its stream's bytes are taken off. h2o's request does not say its stream
 * id (that is in h2o's private stream record), so it is the first whole stream whose body has its length: another
 * whole stream of the same length taken instead leaves the same total counted, and that one is taken off when its
 * own request comes. No match takes nothing off: a whole stream of another length may be one h2o still holds (its
 * trailers waiting for a CONTINUATION), and taking it would leave a body held uncounted. */
static int stream_taken(inflow_conn_t *c, uint64_t body_len)
{
    for (uint32_t i = 0; i != c->num_streams; ++i) {
        inflow_stream_t *s = &c->streams[i];
        if (s->complete && !s->refused && s->bytes == body_len) {
            stream_remove(c, s);
            return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- the wrapper */

static void conn_free(inflow_conn_t *c)
{
    c->magic = 0;
    free(c->streams);
    free(c->drops);
    free(c);
}

static void on_read_counted(h2o_socket_t *sock, const char *err);

static void relink(inflow_conn_t *c, h2o_linklist_t *list)
{
    if (h2o_linklist_is_linked(&c->link))
        h2o_linklist_unlink(&c->link);
    h2o_linklist_insert(list, &c->link);
}

/* h2o reads c's socket with its own callback: put ours in its place */
static void wrap(inflow_conn_t *c)
{
    h2o_socket_cb cb = c->sock->_cb.read;
    c->h2o_read = cb;
    c->sock->_cb.read = on_read_counted;
    if (cb == c->w->inflow_http2_read) {
        if (c->proto != INFLOW_HTTP2) {
            /* HTTP/2 from here. What the HTTP/1 part counted beyond the streams' bytes stays counted until the
             * connection closes (`residue`): bytes behind its last request that h2o parsed as HTTP/2 outside our
             * callback (after an Upgrade: h2c's 101, or a client preface behind a request) may be bodies it holds.
             * The upgrading request's own body leaves it as it reaches the handler (inflow_request_taken). */
            uint64_t streams = 0;
            for (uint32_t i = 0; i != c->num_streams; ++i)
                streams += c->streams[i].bytes;
            c->proto = INFLOW_HTTP2;
            h2o_linklist_insert(&c->w->inflow_h2, &c->h2_link);
            c->residue = c->pending > streams ? c->pending - streams : 0;
            c->pending = streams + c->residue;
            (void)charge(c);
        }
    } else if (c->proto == INFLOW_HTTP1 && c->sock->input != NULL && c->sock->input->size > c->pending) {
        c->pending = c->sock->input->size; /* all that h2o read meanwhile is there */
        (void)charge(c);
    }
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

/* what a read brought (sock->bytes_read bytes, at the end of the input), counted; -1 when c has too many streams */
static int count_read(inflow_conn_t *c, h2o_socket_t *sock)
{
    const uint8_t *in = (const uint8_t *)sock->input->bytes;
    size_t len = sock->input->size;
    /* the client preface on an HTTP/1 connection: h2o's HTTP/1 parser hands it to HTTP/2 in this very call */
    if (c->proto == INFLOW_HTTP2 || (len != 0 && in[0] == 'P' && h2_frames_preface(in, len) != H2_FRAMES_START_OTHER))
        return count_frames(c, in, len);
    c->pending += sock->bytes_read;
    return 0;
}

static void on_read_counted(h2o_socket_t *sock, const char *err)
{
    inflow_conn_t *c = sock->on_close.data;
    assert(c->magic == INFLOW_MAGIC && c->sock == sock);
    h2o_socket_cb h2o_read = c->h2o_read;
    size_t seen = 0;
    if (err == NULL && sock->bytes_read != 0) {
        seen = sock->input->size;
        int too_many = count_read(c, sock) != 0;
        uint64_t arriving = charge(c);
        if (too_many || (c->charged != 0 && (c->charged > g_conn_limit - INFLOW_ALLOWANCE || arriving > g_budget ||
                                             arriving + atomic_load_explicit(&g_held, memory_order_relaxed) > 2 * g_budget))) {
            atomic_fetch_add_explicit(&c->w->counters.body_budget_closed, 1, memory_order_relaxed);
            c->refused = 1;
            err = inflow_refused; /* h2o closes the connection and frees its streams */
        }
    }
    c->in_h2o = 1;
    h2o_read(sock, err);
    c->in_h2o = 0;
    if (c->closed) {
        conn_free(c);
        return;
    }
    if (c->proto == INFLOW_HTTP2 || c->num_drops != 0 || c->completing != 0) { /* or the read that switches to it */
        /* what h2o parsed of it is settled: the bodies it completed were handed over (or wait, and count); what it
         * dropped past where it stopped is still held; what it left unparsed beyond a frame cut short counts (checked
         * at the next read, which the connection gets as long as h2o reads it) */
        size_t left = sock->input->size;
        if (c->num_drops != 0)
            undo_unparsed_drops(c, seen > left ? seen - left : 0);
        c->completing = 0;
        c->unparsed = left > H2_FRAMES_MAX_PARTIAL ? left - H2_FRAMES_MAX_PARTIAL : 0;
        (void)charge(c);
    }
    /* stopped with no request in the handler to say when h2o reads again: after each turn */
    if (!rewrapped(c) && !c->in_handler && !c->refused)
        relink(c, &c->w->inflow_fresh);
}

static void on_close(void *data)
{
    inflow_conn_t *c = data;
    assert(c->magic == INFLOW_MAGIC);
    worker_t *w = c->w;
    c->pending = c->unparsed = 0;
    (void)charge(c);
    if (h2o_linklist_is_linked(&c->link))
        h2o_linklist_unlink(&c->link);
    if (h2o_linklist_is_linked(&c->h2_link))
        h2o_linklist_unlink(&c->h2_link);
    if (c->in_h2o)
        c->closed = 1;
    else
        conn_free(c);
    g_closed(w);
}

void inflow_accept(worker_t *w, h2o_accept_ctx_t *accept_ctx, h2o_socket_t *sock)
{
    inflow_conn_t *c = alloc_xcalloc(1, sizeof(*c), "client connection");
    c->magic = INFLOW_MAGIC;
    c->w = w;
    c->sock = sock;
    sock->on_close.cb = on_close; /* before h2o_accept, which may close it (a TLS set-up that fails at once) */
    sock->on_close.data = c;
    c->in_h2o = 1;
    h2o_accept(accept_ctx, sock);
    c->in_h2o = 0;
    if (c->closed) {
        conn_free(c);
        return;
    }
    /* h2o_accept has set its callback: HTTP/1's, or the TLS handshake's */
    if (sock->_cb.read != NULL)
        wrap(c);
}

void inflow_turn(worker_t *w, int64_t now_ms)
{
    /* fresh: looked at once; those still stopped with no request in the handler are watched */
    while (!h2o_linklist_is_empty(&w->inflow_fresh)) {
        inflow_conn_t *c = H2O_STRUCT_FROM_MEMBER(inflow_conn_t, link, w->inflow_fresh.next);
        h2o_linklist_unlink(&c->link);
        if (!rewrapped(c) && !c->in_handler && !c->refused)
            h2o_linklist_insert(&w->inflow_watch, &c->link);
    }
    for (h2o_linklist_t *l = w->inflow_watch.next, *next; l != &w->inflow_watch; l = next) {
        next = l->next;
        inflow_conn_t *c = H2O_STRUCT_FROM_MEMBER(inflow_conn_t, link, l);
        if (rewrapped(c) || c->in_handler || c->refused)
            h2o_linklist_unlink(&c->link);
    }
    if (now_ms - w->inflow_sweep_ms < INFLOW_SWEEP_MS)
        return;
    w->inflow_sweep_ms = now_ms;
    for (h2o_linklist_t *l = w->inflow_h2.next; l != &w->inflow_h2; l = l->next) {
        inflow_conn_t *c = H2O_STRUCT_FROM_MEMBER(inflow_conn_t, h2_link, l);
        if (!rewrapped(c) && !c->refused && !h2o_linklist_is_linked(&c->link))
            h2o_linklist_insert(&w->inflow_watch, &c->link);
    }
}

/* ---------------------------------------------------------------- the handler's side */

static void body_release(void *p)
{
    atomic_fetch_sub_explicit(&g_held, *(uint64_t *)p, memory_order_relaxed);
}

inflow_conn_t *inflow_request_taken(h2o_req_t *req)
{
    if (req->entity.len != 0) { /* held from here until the request is gone, whatever its answer */
        uint64_t *slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), body_release);
        *slot = req->entity.len;
        atomic_fetch_add_explicit(&g_held, *slot, memory_order_relaxed);
    }
    if (req->conn->callbacks->get_socket == NULL)
        return NULL;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->on_close.cb != on_close)
        return NULL; /* not a connection of the proxy listener */
    inflow_conn_t *c = sock->on_close.data;
    assert(c->magic == INFLOW_MAGIC);
    if (req->version >= 0x200) {
        int switching = c->proto != INFLOW_HTTP2;
        (void)rewrapped(c); /* an upgraded connection's first stream comes before its first read as HTTP/2 */
        if (c->num_streams != 0 && stream_taken(c, req->entity.len)) {
            (void)charge(c);
        } else if (switching && c->proto == INFLOW_HTTP2) {
            /* a request h2o parsed in the switch, outside our callback: its body was among the HTTP/1 bytes (the
             * upgrading request's, or one behind a client preface), so it leaves the residue */
            uint64_t take = c->residue < req->entity.len ? c->residue : req->entity.len;
            c->residue -= take;
            c->pending -= take;
            (void)charge(c);
        }
        return NULL;
    }
    uint64_t in = sock->input != NULL ? sock->input->size : 0;
    c->pending = in > req->entity.len ? in - req->entity.len : 0;
    (void)charge(c);
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

int inflow_bodies_over_budget(void)
{
    return atomic_load_explicit(&g_held, memory_order_relaxed) > g_budget;
}

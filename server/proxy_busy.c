/*
 * server/proxy_busy.c — the busy object: a URL being fetched, and the requests that wait on
 * it or read it as it arrives (collapsing).
 *
 * Concurrent fetches of one URL (by the URL's hash) are collapsed process wide: the first
 * request registers an in-flight entry and fetches; later ones, on any worker thread, queue
 * a waiter on the entry. When the fetch knows its fate it takes the entry out of the table
 * and wakes every waiter with a message to the waiter's own loop: the object (served as it
 * is), "pass" (fetch for yourself, the URL is not storable), "miss" (fetch for yourself: that
 * answer was not storable for its own request's sake) or an error status. No waiter is ever
 * given a head that was not stored (a Set-Cookie meant for the fetching client).
 *
 * A response being stored (and not varying) is also published as a fetch_stream_t: the
 * waiters so far, and every request that comes before the body ends, read its body as it
 * arrives, each at its own client's pace, instead of waiting for the whole object.
 *
 * Invariants. An entry leaves the table once, with the wake (proxy_fetch_wake_waiters); a
 * fetch that registered one always wakes it, on its way out at the latest (proxy_fetch_free).
 * A stream's body state moves once, from FETCH_UPSTREAM_RECEIVING to COMPLETE or FAILED
 * (asserted: proxy_fetch_upstream_transition_ok); a chunk once appended never changes, so
 * readers read chunks outside the lock. A waiter and a stream reader are released on their
 * own worker's thread; the table shards, the stream's chunk list, state and reader list are
 * under their mutexes; the stream's head is immutable once shared.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include "common/alloc.h"
#include "common/now.h"
#include "server/cache_policy.h"
#include "server/proxy_int.h"

#define WAITER_MAGIC 0x3a17e4u

int proxy_fetch_upstream_transition_ok(fetch_upstream_t from, fetch_upstream_t to)
{
    return from == FETCH_UPSTREAM_RECEIVING && to != FETCH_UPSTREAM_RECEIVING;
}

/*
 * A response being fetched, shared with the requests collapsed onto it: its head, and its
 * body as an append-only list of chunks. The fetch (on its worker) appends; each reader
 * (on its own worker) sends the chunks it has not sent yet, at its client's pace. Chunks
 * are freed with the stream, when the fetch and every reader have let go.
 */
typedef struct stream_chunk {
    struct stream_chunk *next;
    size_t len;
    char data[];
} stream_chunk_t;

typedef struct stream_reader stream_reader_t;

struct fetch_stream {
    pthread_mutex_t lock;
    atomic_int refs;
    stream_chunk_t *head, *tail; /* under lock */
    fetch_upstream_t state;      /* under lock: the body being received or how it ended */
    stream_reader_t *readers;    /* under lock: readers to notify */
    /* the response head: immutable once the stream is shared */
    int status;
    char *reason;
    obj_header_t *headers; /* what a client receives (before deliver rules, Age, X-Cache) */
    size_t num_headers;
    size_t content_length;
    uint32_t initial_age;
    int64_t date_ms; /* the response's Date (or when it came, without a valid one), unix ms */
    char *buf;
};

struct stream_reader {
    h2o_generator_t super; /* first: h2o calls proceed/stop with this pointer */
    h2o_multithread_message_t msg;
    fetch_stream_t *stream; /* a reference */
    worker_t *w;
    h2o_req_t *req;               /* NULL once the client went away */
    stream_reader_t *next;        /* in stream->readers */
    stream_chunk_t *cursor;       /* the last chunk handed to h2o */
    int notify_pending;           /* under stream->lock: msg is posted */
    stream_reader_t *notify_next; /* scratch list while the writer posts notifications */
    int orphaned;                 /* under stream->lock: the request went while msg was posted */
    int send_inflight, final_sent;
};

typedef struct waiter {
    h2o_multithread_message_t super;
    uint32_t magic;
    struct waiter *next;
    worker_t *w;
    h2o_req_t *req; /* NULL once the client went away */
    int refs;       /* the request pool and the table/message; both released on w's thread */
    wake_kind_t kind;
    cache_obj_t *obj;       /* WAKE_OBJECT: a reference */
    int status;             /* WAKE_ERROR */
    fetch_stream_t *stream; /* WAKE_STREAM: a reference */
} waiter_t;

typedef struct inflight {
    uint8_t hash[CACHE_HASH_LEN];
    struct inflight *next;
    waiter_t *waiters;
    fetch_stream_t *stream; /* set once the response streams: later requests read it (a reference) */
} inflight_t;

#define INFLIGHT_SHARDS 64
static struct inflight_shard {
    pthread_mutex_t lock;
    inflight_t *head;
} g_inflight[INFLIGHT_SHARDS];

static void stream_reader_start(h2o_req_t *req, fetch_stream_t *st);

/* ---------------------------------------------------------------- collapsing */

void proxy_inflight_init(void)
{
    for (size_t i = 0; i != INFLIGHT_SHARDS; ++i)
        pthread_mutex_init(&g_inflight[i].lock, NULL);
}

static struct inflight_shard *inflight_shard_of(const uint8_t hash[CACHE_HASH_LEN])
{
    return &g_inflight[hash[0] % INFLIGHT_SHARDS];
}

static void waiter_unref(waiter_t *wt)
{
    assert(wt->magic == WAITER_MAGIC);
    if (--wt->refs == 0) {
        obj_unref(&wt->obj);
        if (wt->stream != NULL)
            proxy_stream_unref(wt->stream);
        wt->magic = 0;
        free(wt);
    }
}

static void waiter_on_req_dispose(void *p)
{
    waiter_t **slot = p;
    (*slot)->req = NULL;
    waiter_unref(*slot);
}

/*
 * Either register as the fetcher of this URL (returns 1: the caller must fetch and
 * later call inflight_wake) or queue req as a waiter on the fetch in flight (returns 0).
 * With req NULL (background refresh) only registers, returning 0 if a fetch is in flight.
 */
int proxy_inflight_join_or_own(const uint8_t hash[CACHE_HASH_LEN], h2o_req_t *req)
{
    struct inflight_shard *shard = inflight_shard_of(hash);
    pthread_mutex_lock(&shard->lock);
    for (inflight_t *e = shard->head; e != NULL; e = e->next) {
        if (memcmp(e->hash, hash, CACHE_HASH_LEN) != 0)
            continue;
        if (req != NULL && e->stream != NULL) {
            /* the response is already arriving: read along */
            fetch_stream_t *st = e->stream;
            atomic_fetch_add(&st->refs, 1);
            pthread_mutex_unlock(&shard->lock);
            atomic_fetch_add_explicit(&worker_of_req(req)->counters.collapsed, 1, memory_order_relaxed);
            stream_reader_start(req, st);
            return 0;
        }
        if (req != NULL) {
            worker_t *w = worker_of_req(req);
            waiter_t *wt = alloc_xcalloc(1, sizeof(*wt), "proxy");
            wt->magic = WAITER_MAGIC;
            wt->w = w;
            wt->req = req;
            wt->refs = 2;
            waiter_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), waiter_on_req_dispose);
            *slot = wt;
            wt->next = e->waiters;
            e->waiters = wt;
            atomic_fetch_add_explicit(&w->counters.collapsed, 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&shard->lock);
        return 0;
    }
    inflight_t *e = alloc_xcalloc(1, sizeof(*e), "proxy");
    memcpy(e->hash, hash, CACHE_HASH_LEN);
    e->next = shard->head;
    shard->head = e;
    pthread_mutex_unlock(&shard->lock);
    return 1;
}

/* take the URL out of the table and wake everyone who waited on it (obj borrowed) */
static void inflight_wake(const uint8_t hash[CACHE_HASH_LEN], wake_kind_t kind, cache_obj_t *obj, int status)
{
    struct inflight_shard *shard = inflight_shard_of(hash);
    inflight_t *found = NULL;
    pthread_mutex_lock(&shard->lock);
    for (inflight_t **p = &shard->head; *p != NULL; p = &(*p)->next) {
        if (memcmp((*p)->hash, hash, CACHE_HASH_LEN) == 0) {
            found = *p;
            *p = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&shard->lock);
    if (found == NULL)
        return;
    waiter_t *wt = found->waiters;
    if (found->stream != NULL)
        proxy_stream_unref(found->stream);
    free(found);
    while (wt != NULL) {
        waiter_t *next = wt->next;
        wt->kind = kind;
        wt->obj = kind == WAKE_OBJECT && obj != NULL ? obj_ref(obj) : NULL;
        if (kind == WAKE_OBJECT && obj == NULL)
            wt->kind = WAKE_PASS;
        wt->status = status;
        h2o_multithread_send_message(&wt->w->wake_receiver, &wt->super);
        wt = next;
    }
}

void proxy_inflight_give_up(const uint8_t hash[CACHE_HASH_LEN], cache_obj_t *obj)
{
    inflight_wake(hash, obj != NULL ? WAKE_OBJECT : WAKE_MISS, obj, 0);
}

void proxy_fetch_wake_waiters(fetch_t *f, wake_kind_t kind, cache_obj_t *obj, int status)
{
    if (!f->owns_inflight)
        return;
    f->owns_inflight = 0;
    inflight_wake(f->hash, kind, obj, status);
}

/* the response streams: the waiters so far, and everyone who comes before it ends, read `st` */
void proxy_inflight_stream_start(const uint8_t hash[CACHE_HASH_LEN], fetch_stream_t *st)
{
    struct inflight_shard *shard = inflight_shard_of(hash);
    waiter_t *wt = NULL;
    pthread_mutex_lock(&shard->lock);
    for (inflight_t *e = shard->head; e != NULL; e = e->next) {
        if (memcmp(e->hash, hash, CACHE_HASH_LEN) == 0 && e->stream == NULL) {
            atomic_fetch_add(&st->refs, 1);
            e->stream = st;
            wt = e->waiters;
            e->waiters = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&shard->lock);
    while (wt != NULL) {
        waiter_t *next = wt->next;
        wt->kind = WAKE_STREAM;
        atomic_fetch_add(&st->refs, 1);
        wt->stream = st;
        h2o_multithread_send_message(&wt->w->wake_receiver, &wt->super);
        wt = next;
    }
}

/* ---------------------------------------------------------------- streaming to collapsed requests */

/* the shared head: what the fetch's own client receives (before deliver rules, Age, X-Cache) */
fetch_stream_t *proxy_stream_create(int status, h2o_iovec_t reason, const hr_list_t *list, int keep_surrogate,
                                    size_t content_length, uint32_t initial_age, int64_t response_time_ms)
{
    size_t size = reason.len + 1;
    for (size_t i = 0; i != list->size; ++i)
        size += list->entries[i].name_len + list->entries[i].value_len;
    fetch_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL || (st->buf = malloc(size)) == NULL || (st->headers = malloc(sizeof(*st->headers) * (list->size + 1))) == NULL)
        abort();
    pthread_mutex_init(&st->lock, NULL);
    atomic_init(&st->refs, 1);
    st->status = status;
    st->content_length = content_length;
    st->initial_age = initial_age;
    st->date_ms = response_time_ms;
    int date_seen = 0;
    char *p = st->buf;
    memcpy(p, reason.base, reason.len);
    p[reason.len] = '\0';
    st->reason = p;
    p += reason.len + 1;
    for (size_t i = 0; i != list->size; ++i) {
        const obj_header_t *h = &list->entries[i];
        if (proxy_name_is(h->name, h->name_len, "date")) {
            int64_t date;
            if (!date_seen++ && policy_parse_http_date(h->value, h->value_len, &date) == 0)
                st->date_ms = date * 1000; /* the first one, as proxy_add_date takes it */
            continue;
        }
        if (proxy_is_not_delivered(h->name, h->name_len, keep_surrogate))
            continue;
        obj_header_t *o = &st->headers[st->num_headers++];
        memcpy(p, h->name, h->name_len);
        o->name = p;
        o->name_len = h->name_len;
        p += h->name_len;
        memcpy(p, h->value, h->value_len);
        o->value = p;
        o->value_len = h->value_len;
        p += h->value_len;
    }
    return st;
}

void proxy_stream_unref(fetch_stream_t *st)
{
    if (atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    for (stream_chunk_t *c = st->head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    pthread_mutex_destroy(&st->lock);
    free(st->buf);
    free(st->headers);
    free(st);
}

/* the fetch's side: append body bytes and/or end the body (end: COMPLETE or FAILED; RECEIVING
 * does not end it); wakes the readers. Once the body ended, a publish does nothing. */
void proxy_stream_publish(fetch_stream_t *st, const void *data, size_t len, fetch_upstream_t end)
{
    stream_chunk_t *c = NULL;
    if (len != 0) {
        if ((c = malloc(sizeof(*c) + len)) == NULL)
            abort();
        c->next = NULL;
        c->len = len;
        memcpy(c->data, data, len);
    }
    stream_reader_t *notify = NULL;
    pthread_mutex_lock(&st->lock);
    if (st->state != FETCH_UPSTREAM_RECEIVING) { /* already ended */
        pthread_mutex_unlock(&st->lock);
        free(c);
        return;
    }
    if (c != NULL) {
        if (st->tail != NULL)
            st->tail->next = c;
        else
            st->head = c;
        st->tail = c;
    }
    if (end != FETCH_UPSTREAM_RECEIVING) {
        assert(proxy_fetch_upstream_transition_ok(st->state, end));
        st->state = end;
    }
    for (stream_reader_t *r = st->readers; r != NULL; r = r->next) {
        if (!r->notify_pending) {
            r->notify_pending = 1; /* from here the reader is not freed before it sees the message */
            r->notify_next = notify;
            notify = r;
        }
    }
    pthread_mutex_unlock(&st->lock);
    while (notify != NULL) {
        stream_reader_t *next = notify->notify_next;
        h2o_multithread_send_message(&notify->w->stream_receiver, &notify->msg);
        notify = next;
    }
}

static void stream_reader_free(stream_reader_t *r)
{
    fetch_stream_t *st = r->stream;
    free(r);
    proxy_stream_unref(st);
}

/* hand the next chunk (or the end) to h2o; r may be gone when this returns after a final send */
static void stream_reader_pump(stream_reader_t *r)
{
    if (r->req == NULL || r->send_inflight || r->final_sent)
        return;
    fetch_stream_t *st = r->stream;
    pthread_mutex_lock(&st->lock);
    stream_chunk_t *next = r->cursor != NULL ? r->cursor->next : st->head;
    fetch_upstream_t state = st->state;
    int last = next != NULL && next->next == NULL && state == FETCH_UPSTREAM_COMPLETE;
    pthread_mutex_unlock(&st->lock);
    h2o_req_t *req = r->req;
    if (next != NULL) {
        h2o_iovec_t buf = h2o_iovec_init(next->data, next->len);
        r->cursor = next;
        if (last) {
            r->final_sent = 1;
            h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
        } else {
            r->send_inflight = 1;
            h2o_send(req, &buf, 1, H2O_SEND_STATE_IN_PROGRESS);
        }
    } else if (state != FETCH_UPSTREAM_RECEIVING) {
        r->final_sent = 1;
        h2o_send(req, NULL, 0, state == FETCH_UPSTREAM_COMPLETE ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_ERROR);
    }
}

static void stream_reader_on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    stream_reader_t *r = (void *)gen;
    (void)req;
    r->send_inflight = 0;
    stream_reader_pump(r);
}

static void stream_reader_on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    stream_reader_t *r = (void *)gen;
    (void)req;
    r->final_sent = 1;
}

static void stream_reader_on_dispose(void *p)
{
    stream_reader_t *r = *(stream_reader_t **)p;
    fetch_stream_t *st = r->stream;
    pthread_mutex_lock(&st->lock);
    for (stream_reader_t **q = &st->readers; *q != NULL; q = &(*q)->next) {
        if (*q == r) {
            *q = r->next;
            break;
        }
    }
    r->req = NULL;
    int pending = r->notify_pending;
    if (pending)
        r->orphaned = 1; /* the posted message frees it */
    pthread_mutex_unlock(&st->lock);
    if (!pending)
        stream_reader_free(r);
}

void proxy_on_stream_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        stream_reader_t *r = H2O_STRUCT_FROM_MEMBER(stream_reader_t, msg.link, messages->next);
        h2o_linklist_unlink(&r->msg.link);
        fetch_stream_t *st = r->stream;
        pthread_mutex_lock(&st->lock);
        r->notify_pending = 0;
        int orphaned = r->orphaned;
        pthread_mutex_unlock(&st->lock);
        if (orphaned)
            stream_reader_free(r);
        else
            stream_reader_pump(r);
    }
}

/* serve req from a response still arriving for another request; takes over the reference to st */
static void stream_reader_start(h2o_req_t *req, fetch_stream_t *st)
{
    worker_t *w = worker_of_req(req);
    req->res.status = st->status;
    req->res.reason = st->reason;
    for (size_t i = 0; i != st->num_headers; ++i)
        h2o_add_header_by_str(&req->pool, &req->res.headers, st->headers[i].name, st->headers[i].name_len, 1, NULL,
                              st->headers[i].value, st->headers[i].value_len);
    proxy_add_date(req, NULL, 0, st->date_ms);
    proxy_add_age_and_xcache(req, st->initial_age, "HIT");
    proxy_apply_deliver_rules(req);
    req->res.content_length = st->content_length;
    atomic_fetch_add_explicit(&w->counters.hits, 1, memory_order_relaxed);
    if (proxy_method_is(req, "HEAD")) {
        /* h2o flattens the headers on this send: the stream's bytes need not outlive it */
        static h2o_generator_t generator = {NULL, NULL};
        h2o_start_response(req, &generator);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        proxy_stream_unref(st);
        return;
    }
    stream_reader_t *r = alloc_xcalloc(1, sizeof(*r), "proxy");
    r->super.proceed = stream_reader_on_proceed;
    r->super.stop = stream_reader_on_stop;
    r->stream = st;
    r->w = w;
    r->req = req;
    stream_reader_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), stream_reader_on_dispose);
    *slot = r;
    pthread_mutex_lock(&st->lock);
    r->next = st->readers;
    st->readers = r;
    pthread_mutex_unlock(&st->lock);
    proxy_stall_watch_start(req);
    h2o_start_response(req, &r->super);
    stream_reader_pump(r);
}

/* ---------------------------------------------------------------- collapsed requests wake up */

void proxy_on_wake_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        waiter_t *wt = H2O_STRUCT_FROM_MEMBER(waiter_t, super.link, messages->next);
        h2o_linklist_unlink(&wt->super.link);
        assert(wt->magic == WAITER_MAGIC);
        h2o_req_t *req = wt->req;
        if (req != NULL) {
            size_t key_len;
            char *key = proxy_request_cache_key(req, &key_len);
            uint8_t hash[CACHE_HASH_LEN];
            obj_key_hash(key, key_len, hash);
            switch (wt->kind) {
            case WAKE_OBJECT:
                if (wt->obj != NULL && proxy_object_fits_request(req, wt->obj)) {
                    uint32_t age = policy_current_age(wt->obj->meta.initial_age, wt->obj->meta.response_time_ms, now_wall_ms());
                    atomic_fetch_add_explicit(&wt->w->counters.hits, 1, memory_order_relaxed);
                    proxy_send_object(req, obj_ref(wt->obj), age, "HIT");
                } else {
                    proxy_serve_cacheable(req, key, key_len, hash); /* another variant: look again */
                }
                break;
            case WAKE_PASS: proxy_fetch_start(req, FETCH_PASS, key, key_len, hash, NULL, 1, 0); break;
            case WAKE_MISS:
                /* not collapsed again: a crowd of such requests must not queue one behind another */
                proxy_fetch_start(req, FETCH_CACHE, key, key_len, hash, NULL, 1, 0);
                break;
            case WAKE_STREAM:
                stream_reader_start(req, wt->stream);
                wt->stream = NULL; /* handed over */
                break;
            case WAKE_ERROR:
                proxy_send_error(req, wt->status,
                                 wt->status == 504   ? "origin timed out\n"
                                 : wt->status == 503 ? "no origin available\n"
                                                     : "origin unreachable or invalid response\n");
                break;
            }
        }
        waiter_unref(wt);
    }
}

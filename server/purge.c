/*
 * server/purge.c — the purge module: one job type for every purge, whichever door it came
 * in by (the admin API, PURGE on the proxy listener, next the cluster bus), and the one
 * answer to it.
 *
 * A job names what it purges (one surrogate key, a batch of them, one URL's cache key, or
 * everything), hard or soft, and who asked. Submitting it gives each item its id
 * ("<node>-<unix time>-<sequence>", one counter for the process) and hands each item to the
 * store with store_purge_*; the store runs op_done on its writer thread once that purge is
 * durable (its journal record synced), committed and gone from the memory tier. The same
 * purge is forwarded to the shield's admin API (backend_forward_purge) either alongside the
 * local purge (the admin API's doors) or once it is durable (PURGE on the proxy listener);
 * its answer comes back through op_done too, on the forwarding thread. op_done only posts
 * the op (an h2o_multithread message embedded in it) to the purge_loop of the loop that
 * submitted the job; that loop counts the job down and, when its last op is in, completes
 * it: the completion callback gets a purge_result_t. So nothing is acknowledged before it is
 * durable, no loop ever blocks, and thousands of purges can be in flight at once (the
 * store's group commit makes them share syncs). A job submitted without a loop (a cluster
 * bus has no h2o request) is counted down where its ops complete, with the same atomic.
 *
 * The answer is apart from the job: purge_answer_build turns a result into the status, its
 * reason phrase and Fastly's JSON; purge_request_submit ties a job to an h2o request and
 * sends that answer when the job completes. Nothing else formats a purge answer.
 *
 * Lifetime: a job is malloc'd, and owned by the module from purge_job_submit until its
 * completion callback has returned; the keys and ids it reports live in it until then.
 * A request may die first (an HTTP/2 stream reset, a connection closed at shutdown): the
 * request link (two references, the request's pool and the job; both dropped on the loop's
 * thread) then sees req NULL and the job finishes silently.
 *
 * Threads: op_done runs on the store's writer thread or the shield-forwarding thread and
 * touches only its own op and the loop's queue (or, without a loop, the job's atomic count).
 * Everything else runs on the thread of the loop that submitted the job. The id counter is
 * atomic; the module's configuration is written once by purge_module_init before any loop
 * starts.
 */
#include <assert.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "common/alloc.h"
#include "common/ascii.h"
#include "common/reason.h"
#include "server/backend.h"
#include "server/h1park.h"
#include "server/purge.h"
#include "server/proxy.h"
#include "server/stats.h"
#include "server/cache_key.h"

#define PURGE_JOB_MAGIC 0x9e6a3b17u

static struct {
    store_t *store;
    purge_authorize_or_respond_fn authorize;
    void *authorize_arg;
    char node[64]; /* purge-id node name */
    atomic_uint_fast64_t seq;
    purge_bus_submit_fn bus; /* the cluster bus, or NULL */
    void *bus_arg;
} g;

/* one store purge (or the shield forward) of a job: posted back to the job's loop when done */
typedef struct purge_op {
    h2o_multithread_message_t msg; /* first: the loop's receiver hands us this pointer */
    struct purge_job *job;
    store_purge_result_t res;
} purge_op_t;

enum forward_state { FORWARD_NONE, FORWARD_WAITING_FOR_LOCAL, FORWARD_SENT, FORWARD_FAILED_TO_SEND };

struct purge_job {
    uint32_t magic;
    purge_kind_t kind;
    int soft;
    purge_source_t source;
    purge_item_t *items;
    size_t num_items, items_cap;
    purge_op_t *ops; /* one per item, from submit */
    /* the shield forward */
    enum forward_state forward;
    purge_forward_when_t forward_when;
    purge_op_t forward_op;
    int forward_err; /* FORWARD_FAILED_TO_SEND: why */
    char *forward_path, *forward_skey, *forward_body;
    size_t forward_path_len, forward_skey_len, forward_body_len;
    /* the cluster bus's verdict (purge_job_bus_done) */
    int bus_err;
    unsigned bus_flags;
    char *bus_note;
    int wait_all; /* Edgecache-Purge-Wait: all */
    /* completion */
    purge_loop_t *loop; /* NULL: counted down on the completing thread */
    atomic_size_t remaining;
    purge_done_cb done;
    void *done_arg;
};

static char *xmemdup(const char *s, size_t len)
{
    char *p = alloc_xmalloc(len + 1, "purge");
    if (len != 0)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* ---------------------------------------------------------------- module */

void purge_module_init(store_t *store, purge_authorize_or_respond_fn authorize, void *authorize_arg)
{
    g.store = store;
    g.authorize = authorize;
    g.authorize_arg = authorize_arg;
    purge_node_name(g.node, sizeof(g.node));
    atomic_init(&g.seq, 0);
}

void purge_module_set_bus(purge_bus_submit_fn fn, void *arg)
{
    g.bus = fn;
    g.bus_arg = arg;
}

void purge_module_set_node(const char *node)
{
    snprintf(g.node, sizeof(g.node), "%s", node);
    /* ids are the stream's message ids, deduplicated for minutes: a node restarted within the
     * same second must not issue an id it issued before. The counter starts at the start's
     * wall clock in microseconds, which no earlier run of this node can have counted up to
     * (that would take more than one purge per microsecond). */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_store(&g.seq, ((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u) % 1000000000000u);
}

static void next_id(char *buf, size_t cap)
{
    uint64_t seq = atomic_fetch_add_explicit(&g.seq, 1, memory_order_relaxed) + 1;
    if (purge_format_id(buf, cap, g.node, (int64_t)time(NULL), seq) < 0 && cap > 0)
        buf[0] = '\0';
}

/* ---------------------------------------------------------------- jobs */

purge_job_t *purge_job_new(purge_kind_t kind, int soft, purge_source_t source)
{
    purge_job_t *job = alloc_xmalloc(sizeof(*job), "purge");
    memset(job, 0, sizeof(*job));
    job->magic = PURGE_JOB_MAGIC;
    job->kind = kind;
    job->soft = kind == PURGE_ALL ? 0 : soft != 0; /* purge_all is never soft */
    job->source = source;
    atomic_init(&job->remaining, 0);
    return job;
}

static purge_item_t *job_add_item(purge_job_t *job)
{
    assert(job->magic == PURGE_JOB_MAGIC && job->ops == NULL);
    if (job->num_items == job->items_cap) {
        size_t cap = job->items_cap != 0 ? job->items_cap * 2 : 1;
        job->items = alloc_xrealloc(job->items, cap * sizeof(*job->items), "purge");
        job->items_cap = cap;
    }
    purge_item_t *it = &job->items[job->num_items++];
    memset(it, 0, sizeof(*it));
    return it;
}

void purge_job_add_key(purge_job_t *job, const char *key, size_t key_len)
{
    purge_item_t *it = job_add_item(job);
    it->key = xmemdup(key, key_len);
    it->key_len = key_len;
}

void purge_job_add_key_with_id(purge_job_t *job, const char *key, size_t key_len, const char *id, size_t id_len)
{
    purge_job_add_key(job, key, key_len);
    purge_item_t *it = &job->items[job->num_items - 1];
    if (id_len >= sizeof(it->id))
        id_len = sizeof(it->id) - 1;
    memcpy(it->id, id, id_len);
    it->id[id_len] = '\0';
}

purge_kind_t purge_job_kind(const purge_job_t *job)
{
    return job->kind;
}

int purge_job_soft(const purge_job_t *job)
{
    return job->soft;
}

const purge_item_t *purge_job_items(const purge_job_t *job, size_t *num_items)
{
    *num_items = job->num_items;
    return job->items;
}

int purge_job_add_url(purge_job_t *job, const char *host, size_t host_len, const char *path, size_t path_len)
{
    /* the proxy's own key function and rules, so that the purge names what a request stored;
     * with the scheme in the key, a URL is two objects (http and https) and the purge takes both */
    for (int https = 0; https <= proxy_cache_key_has_scheme(); ++https) {
        size_t cap = cache_key_max_len(host_len, path_len);
        char *key = alloc_xmalloc(cap + 1, "purge");
        size_t key_len = proxy_cache_key_scheme(key, cap, https, host, host_len, path, path_len);
        if (key_len > cap) {
            free(key);
            return -1;
        }
        key[key_len] = '\0';
        purge_item_t *it = job_add_item(job);
        it->key = key;
        it->key_len = key_len;
    }
    return 0;
}

void purge_job_forward(purge_job_t *job, purge_forward_when_t when, const char *path, size_t path_len,
                       const char *surrogate_key, size_t surrogate_key_len, const char *body, size_t body_len)
{
    assert(job->magic == PURGE_JOB_MAGIC && job->forward == FORWARD_NONE && job->ops == NULL);
    job->forward = FORWARD_WAITING_FOR_LOCAL;
    job->forward_when = when;
    job->forward_path = xmemdup(path, path_len);
    job->forward_path_len = path_len;
    if (surrogate_key != NULL) {
        job->forward_skey = xmemdup(surrogate_key, surrogate_key_len);
        job->forward_skey_len = surrogate_key_len;
    }
    if (body != NULL) {
        job->forward_body = xmemdup(body, body_len);
        job->forward_body_len = body_len;
    }
}

static void job_free(purge_job_t *job)
{
    assert(job->magic == PURGE_JOB_MAGIC);
    for (size_t i = 0; i < job->num_items; i++)
        free(job->items[i].key);
    free(job->items);
    free(job->ops);
    free(job->forward_path);
    free(job->forward_skey);
    free(job->forward_body);
    free(job->bus_note);
    job->magic = 0;
    free(job);
}

void purge_job_discard(purge_job_t **job)
{
    if (*job != NULL)
        job_free(*job);
    *job = NULL;
}

static void job_release(purge_job_t *job);

/* the writer thread (or the shield-forwarding thread): hand the op back to the job's loop; nothing else */
static void op_done(void *arg, const store_purge_result_t *res)
{
    purge_op_t *op = arg;
    op->res = *res;
    if (op->job->loop != NULL)
        h2o_multithread_send_message(&op->job->loop->receiver, &op->msg);
    else
        job_release(op->job);
}

/* start the shield forward; its answer comes back through op_done */
static void forward_start(purge_job_t *job)
{
    assert(job->forward == FORWARD_WAITING_FOR_LOCAL);
    job->forward_op.job = job;
    /* counted before it can come back (on another thread, without a loop) */
    atomic_fetch_add_explicit(&job->remaining, 1, memory_order_relaxed);
    if (job->loop != NULL)
        job->loop->in_flight++;
    int rc = backend_forward_purge(job->forward_path, job->forward_path_len, job->forward_skey, job->forward_skey_len,
                                   job->forward_body, job->forward_body_len, job->soft, op_done, &job->forward_op);
    if (rc == 0) {
        job->forward = FORWARD_SENT;
        return;
    }
    atomic_fetch_sub_explicit(&job->remaining, 1, memory_order_relaxed);
    if (job->loop != NULL)
        job->loop->in_flight--;
    if (rc < 0) {
        job->forward = FORWARD_FAILED_TO_SEND; /* answered with an error once the local purge is done */
        job->forward_err = rc;
    } else {
        job->forward = FORWARD_NONE; /* no shield */
    }
}

/* every op is back: forward now if the shield waits for the local purge, else complete */
static void job_settle(purge_job_t *job)
{
    purge_result_t res = {
        .kind = job->kind, .soft = job->soft, .source = job->source, .items = job->items, .num_items = job->num_items};
    for (size_t i = 0; i < job->num_items && res.store_err == 0; i++)
        res.store_err = job->ops[i].res.err;
    if (job->forward == FORWARD_WAITING_FOR_LOCAL && res.store_err == 0) {
        /* applied here: now on the shield before we acknowledge */
        atomic_store_explicit(&job->remaining, 1, memory_order_relaxed); /* this settle's own reference */
        forward_start(job);
        if (atomic_fetch_sub_explicit(&job->remaining, 1, memory_order_acq_rel) != 1)
            return; /* settles again when the shield's answer is in */
    }
    res.bus_err = job->bus_err;
    res.bus_flags = job->bus_flags;
    res.bus_note = job->bus_note;
    if (job->forward == FORWARD_SENT)
        res.shield_err = job->forward_op.res.err;
    else if (job->forward == FORWARD_FAILED_TO_SEND)
        res.shield_err = job->forward_err;
    job->done(job->done_arg, &res);
    job_free(job);
}

static void job_release(purge_job_t *job)
{
    if (atomic_fetch_sub_explicit(&job->remaining, 1, memory_order_acq_rel) == 1)
        job_settle(job);
}

void purge_job_submit(purge_job_t *job, purge_loop_t *loop, purge_done_cb done, void *arg)
{
    assert(job->magic == PURGE_JOB_MAGIC && job->ops == NULL && done != NULL);
    assert(job->num_items > 0 || job->kind == PURGE_ALL);
    if (job->kind == PURGE_ALL && job->num_items == 0)
        purge_job_add_key(job, "", 0);
    job->ops = alloc_xmalloc(job->num_items * sizeof(*job->ops), "purge");
    memset(job->ops, 0, job->num_items * sizeof(*job->ops));
    job->loop = loop;
    job->done = done;
    job->done_arg = arg;
    /* one reference for this function, so that ops completing on other threads (no loop)
     * cannot finish the job before every op has been handed out */
    if (g.bus != NULL && job->source != PURGE_FROM_BUS) {
        /* a cluster node: the purge goes through the stream and comes back to this node's
         * store like every other node's (cluster/cluster.c); the shield hears it there too */
        for (size_t i = 0; i < job->num_items; i++)
            next_id(job->items[i].id, sizeof(job->items[i].id));
        job->forward = FORWARD_NONE;
        job->ops[0].job = job; /* the one op purge_job_bus_done completes */
        atomic_store_explicit(&job->remaining, 1, memory_order_relaxed);
        if (loop != NULL)
            loop->in_flight++;
        g.bus(g.bus_arg, job);
        return;
    }
    atomic_store_explicit(&job->remaining, 1 + job->num_items, memory_order_relaxed);
    if (job->forward == FORWARD_WAITING_FOR_LOCAL && job->forward_when == PURGE_FORWARD_WITH_LOCAL)
        forward_start(job); /* the shield must forget it too before we acknowledge */
    for (size_t i = 0; i < job->num_items; i++) {
        purge_op_t *op = &job->ops[i];
        purge_item_t *it = &job->items[i];
        op->job = job;
        if (it->id[0] == '\0') /* a purge from the bus keeps the id its node gave it */
            next_id(it->id, sizeof(it->id));
        if (loop != NULL)
            loop->in_flight++;
        switch (job->kind) {
        case PURGE_KEY:
        case PURGE_KEYS: store_purge_surrogate_key(g.store, it->key, it->key_len, job->soft, op_done, op); break;
        case PURGE_URL: store_purge_key_url(g.store, it->key, it->key_len, job->soft, op_done, op); break;
        case PURGE_ALL: store_purge_all(g.store, op_done, op); break;
        }
    }
    job_release(job); /* with a loop, never the last: the ops come back through its queue later */
}

int purge_job_wants_wait_all(const purge_job_t *job)
{
    return job->wait_all;
}

void purge_job_bus_done(purge_job_t *job, int err, unsigned flags, const char *note)
{
    assert(job->magic == PURGE_JOB_MAGIC && job->ops != NULL);
    job->bus_err = err;
    job->bus_flags = flags;
    job->bus_note = note != NULL ? xmemdup(note, strlen(note)) : NULL;
    store_purge_result_t res = {0};
    op_done(&job->ops[0], &res); /* the one reference the bus held: back to the job's loop */
}

/* ---------------------------------------------------------------- loops */

static void on_purge_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    purge_loop_t *pl = H2O_STRUCT_FROM_MEMBER(purge_loop_t, receiver, receiver);

    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        purge_op_t *op = H2O_STRUCT_FROM_MEMBER(purge_op_t, msg, m);
        purge_job_t *job = op->job;
        assert(job->magic == PURGE_JOB_MAGIC && job->loop == pl && pl->in_flight > 0);
        pl->in_flight--;
        job_release(job);
    }
}

void purge_loop_init(purge_loop_t *pl, h2o_multithread_queue_t *queue)
{
    pl->in_flight = 0;
    h2o_multithread_register_receiver(queue, &pl->receiver, on_purge_messages);
}

void purge_loop_dispose(purge_loop_t *pl)
{
    assert(pl->in_flight == 0);
    h2o_multithread_unregister_receiver(pl->receiver.queue, &pl->receiver);
}

/* ---------------------------------------------------------------- over HTTP */

/* between a job and the request that asked for it: two references (the request's pool and
 * the job), both dropped on the loop's thread */
typedef struct request_link {
    h2o_req_t *req; /* NULL once the request is gone */
    int refs;
} request_link_t;

static void request_link_unref(request_link_t *l)
{
    if (--l->refs == 0)
        free(l);
}

static void request_link_dispose(void *p)
{
    request_link_t *l = *(request_link_t **)p;
    l->req = NULL;
    request_link_unref(l);
}

static void note_acknowledged(const purge_result_t *res, h2o_req_t *req)
{
    stats_note_purge_req(res->kind == PURGE_ALL   ? STATS_PURGE_ALL
                         : res->soft              ? STATS_PURGE_SOFT
                         : res->kind == PURGE_URL ? STATS_PURGE_URL
                                                  : STATS_PURGE_KEY,
                         req, res->kind == PURGE_ALL ? 1 : (unsigned)res->num_items);
}

static void request_done(void *arg, const purge_result_t *res)
{
    request_link_t *l = arg;
    if (l->req != NULL) {
        purge_answer_t a;
        purge_answer_build(res, &a);
        if (a.status == 200)
            note_acknowledged(res, l->req);
        purge_answer_send(l->req, &a); /* may dispose the request: l stays ours until the unref */
        purge_answer_free(&a);
    }
    request_link_unref(l);
}

int purge_request_submit(purge_job_t *job, purge_loop_t *loop, h2o_req_t *req)
{
    if (g.authorize != NULL && g.authorize(g.authorize_arg, job->source, req) != 0) {
        job_free(job);
        return -1;
    }
    for (size_t i = 0; i < req->headers.size; i++) { /* Edgecache-Purge-Wait: all (a cluster waits for every node) */
        const h2o_header_t *h = req->headers.entries + i;
        if (h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("edgecache-purge-wait")))
            job->wait_all = h2o_lcstris(h->value.base, h->value.len, H2O_STRLIT("all"));
    }
    request_link_t *l = alloc_xmalloc(sizeof(*l), "purge");
    l->req = req;
    l->refs = 2;
    request_link_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), request_link_dispose);
    *slot = l;
    purge_job_submit(job, loop, request_done, l);
    h1park_begin(req); /* answered in a later loop turn; the filter unparks when the answer starts */
    return 0;
}

/* ---------------------------------------------------------------- the answer */

static const char *store_err_text(int err)
{
    switch (err) {
    case STORE_EIO: return "store: I/O error (the purge was not acknowledged)";
    case STORE_EFULL: return "store: full (the purge was not acknowledged)";
    case STORE_ECORRUPT: return "store: corrupt record";
    default: return "store: purge failed";
    }
}

static void answer_set(purge_answer_t *out, int status, const char *body, size_t len)
{
    out->status = status;
    out->reason = reason_phrase(status);
    out->body = xmemdup(body, len);
    out->body_len = len;
}

/* {"msg":"<msg>","detail":"<detail>"}: both are our own fixed ASCII text, nothing to escape */
static void answer_error(purge_answer_t *out, int status, const char *msg, const char *detail)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"msg\":\"%s\",\"detail\":\"%s\"}", msg, detail);
    assert(n > 0 && (size_t)n < sizeof(body));
    answer_set(out, status, body, (size_t)n);
}

static void answer_build(const purge_result_t *res, purge_answer_t *out);

/* the answer to a single purge, by hand rather than with snprintf (one per purge): the caller sized buf */
static void json_append(char *buf, size_t *n, const char *s, size_t len)
{
    memcpy(buf + *n, s, len);
    *n += len;
}

void purge_answer_build(const purge_result_t *res, purge_answer_t *out)
{
    answer_build(res, out);
    out->local_only = out->status == 200 && (res->bus_flags & PURGE_BUS_F_LOCAL_ONLY) != 0;
    out->waited = out->status != 200                                 ? 0
                  : (res->bus_flags & PURGE_BUS_F_WAIT_TIMEOUT) != 0 ? 2
                  : (res->bus_flags & PURGE_BUS_F_WAITED_ALL) != 0   ? 1
                                                                     : 0;
}

static void answer_build(const purge_result_t *res, purge_answer_t *out)
{
    if (res->store_err != 0) {
        /* not durable, so not done: 503, for the client to retry (a full or failing disk passes) */
        answer_error(out, 503, "Purge failed", store_err_text(res->store_err));
        return;
    }
    if (res->bus_err != 0) {
        /* not stored in the stream (or not applied here in time): nothing acknowledged, retry */
        answer_error(out, 503, "Purge failed",
                     res->bus_err == PURGE_BUS_ENOTAPPLIED
                         ? "cluster: stored in the purge stream, not yet applied on this node"
                     : res->bus_err == PURGE_BUS_EINVAL ? "cluster: the purge is too large for the purge stream"
                                                        : "cluster: the purge stream did not store the purge (no quorum or "
                                                          "no connection); nothing was acknowledged");
        return;
    }
    if (res->shield_err != 0) {
        answer_error(out, 502, "Purge failed", "shield: the purge could not be applied on the shield node");
        return;
    }
    switch (res->kind) {
    case PURGE_KEY:
    case PURGE_URL: {
        /* the answer to nearly every purge, written directly: an id is <node>-<time>-<seq>
         * with the node name reduced to [A-Za-z0-9._] (purge_node_name): nothing to escape;
         * building it with jansson was a tenth of the admin thread's time at load */
        /* a URL is two keys when the scheme is part of the key (http and https): one answer, the first id */
        assert(res->num_items == 1 || (res->kind == PURGE_URL && res->num_items == 2));
        const char *note = res->bus_flags & PURGE_BUS_F_LOCAL_ONLY ? "applied on this node only; publish queued" : res->bus_note;
        char json[PURGE_ID_CAP + 1200];
        size_t n = 0;
        json_append(json, &n, H2O_STRLIT("{\"status\":\"ok\",\"id\":\""));
        json_append(json, &n, res->items[0].id, strnlen(res->items[0].id, PURGE_ID_CAP - 1));
        if (note != NULL) {
            json_append(json, &n, H2O_STRLIT("\",\"cluster\":\""));
            json_append(json, &n, note, strnlen(note, 1000));
        }
        json_append(json, &n, H2O_STRLIT("\"}"));
        assert(n < sizeof(json));
        answer_set(out, 200, json, n);
        return;
    }
    case PURGE_ALL:
        if (res->bus_flags & PURGE_BUS_F_LOCAL_ONLY)
            answer_set(out, 200, H2O_STRLIT("{\"status\":\"ok\",\"cluster\":\"applied on this node only; publish queued\"}"));
        else
            answer_set(out, 200, H2O_STRLIT("{\"status\":\"ok\"}"));
        return;
    case PURGE_KEYS: {
        /* the admin API checks every batch key to be UTF-8 before anything is purged, so each
         * one can name its id here; a failure is memory, answered as an error */
        json_t *body = json_object();
        for (size_t i = 0; body != NULL && i < res->num_items; i++) {
            if (json_object_set_new(body, res->items[i].key, json_string(res->items[i].id)) != 0) {
                json_decref(body);
                body = NULL;
            }
        }
        char *s = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (s == NULL) {
            answer_error(out, 500, reason_phrase(500), "the answer could not be encoded");
            return;
        }
        out->status = 200;
        out->reason = reason_phrase(200);
        out->body = s;
        out->body_len = strlen(s);
        return;
    }
    }
    assert(!"purge kind");
}

void purge_answer_free(purge_answer_t *a)
{
    free(a->body);
    a->body = NULL;
}

void purge_answer_send(h2o_req_t *req, const purge_answer_t *a)
{
    req->res.status = a->status;
    req->res.reason = a->reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (a->local_only)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("edgecache-cluster"), 0, NULL, H2O_STRLIT("local-only"));
    if (a->waited != 0)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("edgecache-purge-wait"), 0, NULL,
                              a->waited == 1 ? "all-applied" : "timeout", a->waited == 1 ? 11 : 7);
    req->res.content_length = a->body_len;      /* h2o_send_inline leaves it unset: no chunking */
    h2o_send_inline(req, a->body, a->body_len); /* copies into req's pool */
}

/* ---------------------------------------------------------------- ids and soft purges */

int purge_format_id(char *buf, size_t cap, const char *node, int64_t unix_time, uint64_t seq)
{
    /* by hand: one per purge, and snprintf's format machinery was a visible share of the admin thread */
    char t[21], q[20]; /* '-' and 20 digits; 20 digits */
    size_t t_len = 0;
    if (unix_time < 0)
        t[t_len++] = '-';
    t_len += ascii_decimal(t + t_len, unix_time < 0 ? (uint64_t)0 - (uint64_t)unix_time : (uint64_t)unix_time);
    size_t q_len = ascii_decimal(q, seq), node_len = strlen(node);
    size_t n = node_len + 1 + t_len + 1 + q_len;
    if (n >= cap || n > INT_MAX)
        return -1;
    memcpy(buf, node, node_len);
    buf[node_len] = '-';
    memcpy(buf + node_len + 1, t, t_len);
    buf[node_len + 1 + t_len] = '-';
    memcpy(buf + node_len + 2 + t_len, q, q_len);
    buf[n] = '\0';
    return (int)n;
}

void purge_node_name(char *buf, size_t cap)
{
    char host[256];
    size_t n = 0;

    if (cap == 0)
        return;
    if (gethostname(host, sizeof(host)) != 0)
        host[0] = '\0';
    host[sizeof(host) - 1] = '\0';
    for (const char *p = host; *p != '\0' && n + 1 < cap && n < 63; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_';
        buf[n++] = ok ? c : '_';
    }
    buf[n] = '\0';
    if (n == 0)
        snprintf(buf, cap, "edgecache");
}

int purge_soft_value(const char *v, size_t len)
{
    while (len > 0 && (v[0] == ' ' || v[0] == '\t'))
        v++, len--;
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len == 1 && v[0] == '0')
        return 0;
    if (len == 5 && h2o_lcstris(v, len, H2O_STRLIT("false")))
        return 0;
    return 1;
}

int purge_request_wants_soft(h2o_req_t *req)
{
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = req->headers.entries + i;
        if (h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("fastly-soft-purge")))
            return purge_soft_value(h->value.base, h->value.len);
    }
    return 0;
}

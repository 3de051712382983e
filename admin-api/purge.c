/*
 * admin-api/purge.c — the purge endpoints of the admin API (Fastly's shapes) and the
 * asynchronous path from a purge request to its acknowledgement.
 *
 * A purge request becomes a job: one op per store purge (one for a single key, a URL or
 * purge_all, one per distinct key of a batch). Each op is handed to the store with
 * store_purge_*; the store runs our callback on its writer thread once the purge is
 * durable (its journal record synced), committed and gone from the memory tier. The
 * callback only posts the op (an h2o_multithread message embedded in it) to the purge
 * receiver of the admin loop that took the request (one loop per admin thread); that
 * loop counts the op down and, when the job's last op is in, sends the response. So the
 * 200 is never sent before the purge is durable, and no loop ever blocks: thousands of
 * purges can be in flight at once and the store's group commit makes them share syncs.
 *
 * Lifetime: the job is malloc'd and owned by its admin loop; it lives until its last op
 * has come back, whatever happens to the request. The request may die first (an HTTP/2
 * stream reset, a connection closed at shutdown): a small guard allocated with
 * h2o_mem_alloc_shared in the request's pool clears job->req from its dispose callback,
 * so the job then finishes silently. Keys the store reads stay in the job until then.
 *
 * Threads: everything except purge_op_done runs on the thread of the request's admin loop;
 * purge_op_done runs on the store's writer thread (or the shield-forwarding thread) and
 * touches only its own op and the receiver's queue. admin_next_purge_id: any thread.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "admin-api/admin_int.h"
#include "server/backend.h"
#include "server/cache_key.h"
#include "server/proxy.h"
#include "server/stats.h"
#include "server/text.h"

typedef enum { JOB_ONE, JOB_BATCH, JOB_URL, JOB_ALL } job_kind_t;

struct purge_job;

typedef struct purge_op {
    h2o_multithread_message_t msg;
    struct purge_job *job;
    store_purge_result_t res;
    char id[ADMIN_PURGE_ID_CAP];
    char *key; /* into job->arena; NUL-terminated */
    size_t key_len;
} purge_op_t;

typedef struct job_guard {
    struct purge_job *job;
} job_guard_t;

typedef struct purge_job {
    admin_t *admin;
    admin_loop_t *loop; /* the loop that took the request: completions go back to it */
    h2o_req_t *req;     /* NULL once the request is gone */
    job_guard_t *guard; /* NULL once the request is gone */
    job_kind_t kind;
    size_t nops, remaining;
    purge_op_t *ops;
    char *arena;
    purge_op_t forward; /* the same purge forwarded to the shield (--shield-admin), when forward_used */
    int forward_used;
} purge_job_t;

static void guard_dispose(void *p)
{
    job_guard_t *g = p;
    if (g->job != NULL) {
        g->job->req = NULL;
        g->job->guard = NULL;
        g->job = NULL;
    }
}

static purge_job_t *job_new(admin_t *admin, h2o_req_t *req, job_kind_t kind, size_t nops, size_t arena_len)
{
    purge_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        goto oom;
    job->ops = calloc(nops, sizeof(*job->ops));
    job->arena = malloc(arena_len + 1);
    if (job->ops == NULL || job->arena == NULL)
        goto oom;
    job->admin = admin;
    job->loop = admin_loop_of(admin, req->conn->ctx);
    assert(job->loop != NULL); /* the purge routes are served on the admin loops only */
    job->req = req;
    job->kind = kind;
    job->nops = nops;
    job->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*job->guard), guard_dispose);
    job->guard->job = job;
    for (size_t i = 0; i < nops; i++)
        job->ops[i].job = job;
    return job;
oom:
    fprintf(stderr, "fatal: out of memory\n");
    abort();
}

static void job_free(purge_job_t *job)
{
    if (job->guard != NULL)
        job->guard->job = NULL;
    free(job->ops);
    free(job->arena);
    free(job);
}

static const char *store_err_text(int err)
{
    switch (err) {
    case STORE_EIO:
        return "store: I/O error (the purge was not acknowledged)";
    case STORE_EFULL:
        return "store: full (the purge was not acknowledged)";
    case STORE_ECORRUPT:
        return "store: corrupt record";
    default:
        return "store: purge failed";
    }
}

static void job_respond(purge_job_t *job)
{
    h2o_req_t *req = job->req;
    json_t *body;

    for (size_t i = 0; i < job->nops; i++) {
        if (job->ops[i].res.err != 0) {
            /* not durable, so not done: 503, for the client to retry (a full or failing disk passes) */
            admin_send_json_error(req, 503, "Purge failed", store_err_text(job->ops[i].res.err));
            return;
        }
    }
    if (job->forward_used && job->forward.res.err != 0) {
        admin_send_json_error(req, 502, "Purge failed", "shield: the purge could not be applied on the shield node");
        return;
    }
    stats_note_purge_req(job->kind == JOB_ALL                    ? STATS_PURGE_ALL
                         : admin_request_wants_soft_purge(req) ? STATS_PURGE_SOFT
                         : job->kind == JOB_URL                ? STATS_PURGE_URL
                                                               : STATS_PURGE_KEY,
                         req, job->kind == JOB_ALL ? 1 : (unsigned)job->nops);
    switch (job->kind) {
    case JOB_ONE:
    case JOB_URL: {
        /* the answer to nearly every purge, written directly: an id is <node>-<time>-<seq>
         * with the node name reduced to [A-Za-z0-9._] (admin_node_name): nothing to escape;
         * building it with jansson was a tenth of the admin thread's time at load */
        char json[ADMIN_PURGE_ID_CAP + 32];
        int n = snprintf(json, sizeof(json), "{\"status\":\"ok\",\"id\":\"%s\"}", job->ops[0].id);
        assert(n > 0 && (size_t)n < sizeof(json));
        admin_send_json(req, 200, json, (size_t)n);
        return;
    }
    case JOB_ALL:
        admin_send_json(req, 200, H2O_STRLIT("{\"status\":\"ok\"}"));
        return;
    case JOB_BATCH:
        /* every key was checked to be UTF-8 before anything was purged (key_list_add), so
         * each one can name its id here; a failure is memory, answered as an error */
        body = json_object();
        for (size_t i = 0; body != NULL && i < job->nops; i++) {
            if (json_object_set_new(body, job->ops[i].key, json_string(job->ops[i].id)) != 0) {
                json_decref(body);
                body = NULL;
            }
        }
        admin_send_json_value(req, 200, body);
        return;
    }
}

/* writer thread: hand the op back to the admin loop; nothing else */
static void purge_op_done(void *arg, const store_purge_result_t *res)
{
    purge_op_t *op = arg;
    op->res = *res;
    h2o_multithread_send_message(&op->job->loop->purge_receiver, &op->msg);
}

void admin_purge_on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    admin_loop_t *loop = H2O_STRUCT_FROM_MEMBER(admin_loop_t, purge_receiver, receiver);

    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        purge_op_t *op = H2O_STRUCT_FROM_MEMBER(purge_op_t, msg, m);
        purge_job_t *job = op->job;
        assert(loop->purges_in_flight > 0 && job->remaining > 0 && job->loop == loop);
        loop->purges_in_flight--;
        if (--job->remaining == 0) {
            if (job->req != NULL)
                job_respond(job);
            job_free(job);
        }
    }
}

typedef enum { SUBMIT_SKEY, SUBMIT_URL, SUBMIT_ALL } submit_t;

static void job_submit(purge_job_t *job, submit_t what, int soft)
{
    admin_t *admin = job->admin;
    job->remaining = job->nops;
    /* origin shielding: the shield must forget it too before we acknowledge (its answer comes
     * back through the same receiver as the store's) */
    if (job->req != NULL) {
        h2o_req_t *req = job->req;
        const h2o_iovec_t *sk = admin_find_header(req, H2O_STRLIT("surrogate-key"));
        job->forward.job = job;
        int rc = backend_forward_purge(req->path.base, req->path.len, sk != NULL ? sk->base : NULL, sk != NULL ? sk->len : 0,
                                       req->entity.base, req->entity.base != NULL ? req->entity.len : 0, soft,
                                       purge_op_done, &job->forward);
        if (rc == 0) {
            job->forward_used = 1;
            job->remaining++;
            job->loop->purges_in_flight++;
        } else if (rc < 0) {
            job->forward_used = 1;
            job->forward.res.err = rc; /* answered with an error once the local purge is done */
        }
    }
    for (size_t i = 0; i < job->nops; i++) {
        purge_op_t *op = &job->ops[i];
        admin_next_purge_id(admin, op->id, sizeof(op->id));
        job->loop->purges_in_flight++;
        switch (what) {
        case SUBMIT_SKEY:
            store_purge_surrogate_key(admin->store, op->key, op->key_len, soft, purge_op_done, op);
            break;
        case SUBMIT_URL:
            store_purge_key_url(admin->store, op->key, op->key_len, soft, purge_op_done, op);
            break;
        case SUBMIT_ALL:
            store_purge_all(admin->store, purge_op_done, op);
            break;
        }
    }
}

void admin_next_purge_id(admin_t *admin, char *buf, size_t cap)
{
    assert(admin != NULL && admin->magic == ADMIN_MAGIC);
    uint64_t seq = atomic_fetch_add_explicit(&admin->purge_seq, 1, memory_order_relaxed) + 1;
    if (admin_format_purge_id(buf, cap, admin->node, (int64_t)time(NULL), seq) < 0 && cap > 0)
        buf[0] = '\0';
}

static void bad_request(h2o_req_t *req, const char *detail)
{
    admin_send_json_error(req, 400, "Bad request", detail);
}

int admin_purge_key(admin_t *admin, h2o_req_t *req, const char *raw_key, size_t raw_len)
{
    char detail[160];
    purge_job_t *job;
    ssize_t n;
    char *buf = h2o_mem_alloc_pool(&req->pool, raw_len + 1);

    if ((n = admin_percent_decode(raw_key, raw_len, buf, raw_len)) < 0 || !admin_skey_valid(buf, (size_t)n)) {
        snprintf(detail, sizeof(detail), "key: must be 1..%d bytes, no whitespace or control characters", ADMIN_MAX_SKEY_LEN);
        bad_request(req, detail);
        return 0;
    }
    job = job_new(admin, req, JOB_ONE, 1, (size_t)n);
    memcpy(job->arena, buf, (size_t)n);
    job->arena[n] = '\0';
    job->ops[0].key = job->arena;
    job->ops[0].key_len = (size_t)n;
    job_submit(job, SUBMIT_SKEY, admin_request_wants_soft_purge(req));
    return 0;
}

/* Collect batch keys into keys[] (borrowed slices of header or JSON strings). */
typedef struct key_list {
    const char *k[ADMIN_MAX_BATCH_KEYS];
    size_t len[ADMIN_MAX_BATCH_KEYS];
    size_t n, total;
} key_list_t;

/* returns 0, or -1 after writing detail */
static int key_list_add(key_list_t *l, const char *k, size_t len, char *detail, size_t dlen)
{
    if (!admin_skey_valid(k, len)) {
        snprintf(detail, dlen, "surrogate_keys: each key must be 1..%d bytes, no whitespace or control characters",
                 ADMIN_MAX_SKEY_LEN);
        return -1;
    }
    /* the answer maps each key to its purge id, and a JSON object's names are UTF-8: a key
     * that is not could be purged but never reported, so the whole request is refused
     * before anything is purged (a single-key purge, whose answer names no key, takes it) */
    if (!text_utf8_valid(k, len)) {
        char shown[72];
        snprintf(detail, dlen, "surrogate_keys: '%s' is not valid UTF-8 (a batch answer names every key)",
                 text_escape(shown, sizeof(shown), k, len));
        return -1;
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->len[i] == len && memcmp(l->k[i], k, len) == 0)
            return 0; /* a repeated key is purged once */
    if (l->n == ADMIN_MAX_BATCH_KEYS) {
        snprintf(detail, dlen, "surrogate_keys: at most %d keys per request", ADMIN_MAX_BATCH_KEYS);
        return -1;
    }
    l->k[l->n] = k;
    l->len[l->n] = len;
    l->total += len + 1;
    l->n++;
    return 0;
}

int admin_purge_batch(admin_t *admin, h2o_req_t *req)
{
    char detail[200];
    key_list_t *keys = h2o_mem_alloc_pool(&req->pool, sizeof(*keys));
    json_t *doc = NULL;
    const h2o_iovec_t *hdr = admin_find_header(req, H2O_STRLIT("surrogate-key"));
    size_t given = 0;

    keys->n = keys->total = 0;
    if (hdr != NULL) {
        size_t i = 0;
        while (i < hdr->len) {
            while (i < hdr->len && (hdr->base[i] == ' ' || hdr->base[i] == '\t'))
                i++;
            size_t s = i;
            while (i < hdr->len && hdr->base[i] != ' ' && hdr->base[i] != '\t')
                i++;
            if (i == s)
                break;
            if (++given > ADMIN_MAX_BATCH_KEYS) {
                snprintf(detail, sizeof(detail), "surrogate_keys: at most %d keys per request", ADMIN_MAX_BATCH_KEYS);
                goto bad;
            }
            if (key_list_add(keys, hdr->base + s, i - s, detail, sizeof(detail)) != 0)
                goto bad;
        }
    } else {
        json_error_t jerr;
        json_t *arr, *v;
        const char *name;
        size_t idx;

        if (req->entity.base == NULL || req->entity.len == 0) {
            snprintf(detail, sizeof(detail), "surrogate_keys: give a Surrogate-Key header or a JSON body {\"surrogate_keys\":[...]}");
            goto bad;
        }
        if ((doc = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
            snprintf(detail, sizeof(detail), "body: invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
            goto bad;
        }
        if (!json_is_object(doc)) {
            snprintf(detail, sizeof(detail), "body: must be a JSON object {\"surrogate_keys\":[...]}");
            goto bad;
        }
        json_object_foreach (doc, name, v) {
            if (strcmp(name, "surrogate_keys") != 0) {
                char shown[72]; /* a bounded prefix of the untrusted name, cut between characters */
                snprintf(detail, sizeof(detail), "%s: unknown field (expected surrogate_keys)",
                         text_escape(shown, sizeof(shown), name, strlen(name)));
                goto bad;
            }
        }
        arr = json_object_get(doc, "surrogate_keys");
        if (!json_is_array(arr)) {
            snprintf(detail, sizeof(detail), "surrogate_keys: must be an array of strings");
            goto bad;
        }
        if (json_array_size(arr) > ADMIN_MAX_BATCH_KEYS) {
            snprintf(detail, sizeof(detail), "surrogate_keys: at most %d keys per request", ADMIN_MAX_BATCH_KEYS);
            goto bad;
        }
        json_array_foreach (arr, idx, v) {
            if (!json_is_string(v)) {
                snprintf(detail, sizeof(detail), "surrogate_keys: must be an array of strings");
                goto bad;
            }
            if (key_list_add(keys, json_string_value(v), json_string_length(v), detail, sizeof(detail)) != 0)
                goto bad;
        }
    }
    if (keys->n == 0) {
        snprintf(detail, sizeof(detail), "surrogate_keys: no key given");
        goto bad;
    }

    purge_job_t *job = job_new(admin, req, JOB_BATCH, keys->n, keys->total);
    char *p = job->arena;
    for (size_t i = 0; i < keys->n; i++) {
        memcpy(p, keys->k[i], keys->len[i]);
        p[keys->len[i]] = '\0';
        job->ops[i].key = p;
        job->ops[i].key_len = keys->len[i];
        p += keys->len[i] + 1;
    }
    json_decref(doc); /* the keys were copied into the job */
    job_submit(job, SUBMIT_SKEY, admin_request_wants_soft_purge(req));
    return 0;
bad:
    json_decref(doc);
    bad_request(req, detail);
    return 0;
}

int admin_purge_everything(admin_t *admin, h2o_req_t *req)
{
    purge_job_t *job = job_new(admin, req, JOB_ALL, 1, 0);
    job->arena[0] = '\0';
    job->ops[0].key = job->arena;
    job_submit(job, SUBMIT_ALL, 0); /* purge_all is never soft */
    return 0;
}

int admin_purge_url(admin_t *admin, h2o_req_t *req, const char *target, size_t len)
{
    char detail[160];
    const char *host;
    size_t host_len, path_len, pathcap = len + 2, key_len;
    char *path = h2o_mem_alloc_pool(&req->pool, pathcap);

    if (admin_parse_url_target(target, len, &host, &host_len, path, pathcap, &path_len, detail, sizeof(detail)) != 0) {
        bad_request(req, detail);
        return 0;
    }
    /* the proxy's own key function and rules, so that the purge names what a request stored */
    size_t cap = cache_key_max_len(host_len, path_len);
    purge_job_t *job = job_new(admin, req, JOB_URL, 1, cap);
    key_len = proxy_cache_key(job->arena, cap, host, host_len, path, path_len);
    if (key_len > cap) {
        job_free(job);
        bad_request(req, "url: too long");
        return 0;
    }
    job->arena[key_len] = '\0';
    job->ops[0].key = job->arena;
    job->ops[0].key_len = key_len;
    job_submit(job, SUBMIT_URL, admin_request_wants_soft_purge(req));
    return 0;
}

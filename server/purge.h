/*
 * server/purge.h — the purge module: every purge, whichever door it came in by (the admin
 * API, PURGE on the proxy listener, next the cluster bus), is one purge job. The module
 * gives it its ids, authorizes it through a callback, applies it to the store (journal
 * write, then the memory tier), forwards it to the shield, and completes it with a result;
 * the HTTP doors turn that result into the one answer (Fastly's shapes and status codes)
 * with purge_answer_build / purge_request_submit. Nothing else formats a purge answer.
 */
#ifndef EDGECACHE_PURGE_H
#define EDGECACHE_PURGE_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include "storage/store.h"

/** Room for one purge id "<node>-<unix time>-<sequence>" and its NUL. */
#define PURGE_ID_CAP 128

/** What a job names; also the shape of its answer. */
typedef enum {
    PURGE_KEY,  /* one surrogate key: {"status":"ok","id":...} */
    PURGE_KEYS, /* a batch of surrogate keys: {"<key>":"<id>",...} */
    PURGE_URL,  /* one cache key (a URL under the cache-key rules): {"status":"ok","id":...} */
    PURGE_ALL,  /* everything (never soft): {"status":"ok"} */
} purge_kind_t;

/** Who asked: the door the job came in by (the authorizer tells them apart). */
typedef enum {
    PURGE_FROM_ADMIN, /* the admin API: its router checked the token and scope already */
    PURGE_FROM_PROXY, /* PURGE on the proxy listener */
    PURGE_FROM_BUS,   /* a peer, through the cluster bus (no HTTP request) */
} purge_source_t;

/** When the shield hears of a job (backend_forward_purge). */
typedef enum {
    PURGE_FORWARD_WITH_LOCAL,  /* at once, alongside the local purge (the admin API's purges) */
    PURGE_FORWARD_AFTER_LOCAL, /* once the local purge is durable, and only if it is (PURGE) */
} purge_forward_when_t;

/** One thing a job purges: a surrogate key or a cache key (empty for PURGE_ALL), and its id. */
typedef struct purge_item {
    char id[PURGE_ID_CAP];
    char *key; /* owned by the job, NUL-terminated */
    size_t key_len;
} purge_item_t;

/**
 * How a job ended. store_err: 0 when every item is durable (its journal record synced,
 * committed, gone from the memory tier), else the first item's store error (STORE_E*).
 * shield_err: 0 when the shield applied it too or there is no shield, else BACKEND_EFORWARD
 * or BACKEND_EINVAL. items: valid only during the completion callback.
 */
typedef struct purge_result {
    purge_kind_t kind;
    int soft;
    purge_source_t source;
    const purge_item_t *items;
    size_t num_items;
    int store_err;
    int shield_err;
    int bus_err;          /* the cluster bus (cluster/cluster.h): 0, or PURGE_BUS_E* (answered 503) */
    unsigned bus_flags;   /* PURGE_BUS_F* */
    const char *bus_note; /* NULL, or what the bus says about it (JSON-safe ASCII), e.g. the nodes still pending */
} purge_result_t;

/* why the cluster bus could not take a purge (purge_job_bus_done) */
#define PURGE_BUS_EUNAVAILABLE (-30970) /* the stream did not acknowledge it (no quorum, no connection) */
#define PURGE_BUS_ENOTAPPLIED (-30971)  /* stored in the stream, not applied here in time */
#define PURGE_BUS_EINVAL (-30972)       /* the purge cannot be carried on the bus (too large) */
#define PURGE_BUS_F_LOCAL_ONLY 0x1u     /* applied here only; its publish is queued (cluster.on_unavailable local) */
#define PURGE_BUS_F_WAITED_ALL 0x2u     /* Edgecache-Purge-Wait: all: every live node has applied it */
#define PURGE_BUS_F_WAIT_TIMEOUT 0x4u   /* Edgecache-Purge-Wait: all: some live node had not in time (bus_note) */

/** The answer to a purge over HTTP: status, its reason phrase (static) and the JSON body. */
typedef struct purge_answer {
    int local_only; /* PURGE_BUS_F_LOCAL_ONLY: also said in an Edgecache-Cluster header */
    int waited;     /* Edgecache-Purge-Wait: all was asked: 1 all applied, 2 not in time (said in a header too) */
    int status;
    const char *reason;
    char *body; /* malloc'd, NUL-terminated; free with purge_answer_free */
    size_t body_len;
} purge_answer_t;

/**
 * Completions of one event loop's purges: a loop that submits jobs owns one (a worker, an
 * admin loop). The store's writer thread and the shield-forwarding thread post each
 * completion to it (an h2o_multithread message); the job completes on that loop's thread.
 */
typedef struct purge_loop {
    h2o_multithread_receiver_t receiver;
    size_t in_flight; /* store purges and shield forwards whose completion has not come back; the loop's thread only */
} purge_loop_t;

typedef struct purge_job purge_job_t;

/** The completion: res is borrowed for the call only. Runs on the job's loop (see purge_job_submit). */
typedef void (*purge_done_cb)(void *arg, const purge_result_t *res);

/**
 * Authorize a job that came with an HTTP request (the request's thread). Returns 0 to go
 * on; otherwise it has answered req itself (401/403, perhaps after a delay) and returns -1.
 */
typedef int (*purge_authorize_or_respond_fn)(void *arg, purge_source_t source, h2o_req_t *req);

/**
 * Set up the module: borrows store (it must outlive every job); authorize may be NULL
 * (everything allowed). Call once, before any loop submits a job.
 */
void purge_module_init(store_t *store, purge_authorize_or_respond_fn authorize, void *authorize_arg);

/** Register `pl` on a loop's queue (the loop's thread, after its context exists). */
void purge_loop_init(purge_loop_t *pl, h2o_multithread_queue_t *queue);

/** Unregister it; pl->in_flight must be 0 (the loop's thread, before its queue is destroyed). */
void purge_loop_dispose(purge_loop_t *pl);

/** A new job (dies on out-of-memory). soft is ignored for PURGE_ALL. Owned by the caller until submitted. */
purge_job_t *purge_job_new(purge_kind_t kind, int soft, purge_source_t source);

/** Add a surrogate key (PURGE_KEY, PURGE_KEYS) or a cache key (PURGE_URL); copied. */
void purge_job_add_key(purge_job_t *job, const char *key, size_t key_len);

/**
 * Add the URL (host, path with query) under the process's cache-key rules (proxy_cache_key),
 * so that it names what a request stored (PURGE_URL). Returns 0, or -1 when the key would be
 * too long (nothing added).
 */
int purge_job_add_url(purge_job_t *job, const char *host, size_t host_len, const char *path, size_t path_len);

/**
 * Forward the job to the shield too (when --shield-admin is set): a POST of path, with the
 * Surrogate-Key value and body when given (may be NULL); all copied. See backend_forward_purge.
 */
void purge_job_forward(purge_job_t *job, purge_forward_when_t when, const char *path, size_t path_len,
                       const char *surrogate_key, size_t surrogate_key_len, const char *body, size_t body_len);

/** Free a job that was never submitted; sets *job to NULL. */
void purge_job_discard(purge_job_t **job);

/**
 * Run the job: give each item its id, hand it to the store, forward it. Takes ownership.
 * With a loop (the caller runs on it), done runs on that loop's thread; with loop NULL (a
 * cluster bus), done runs on whichever thread completes the job last (the store's writer or
 * the shield-forwarding thread): it must not block. done runs exactly once, never from
 * within purge_job_submit when a loop is given.
 */
void purge_job_submit(purge_job_t *job, purge_loop_t *loop, purge_done_cb done, void *arg);

/**
 * Authorize the job (the module's authorizer, with req), submit it on loop, and answer req
 * with purge_answer_build's answer when it completes; if req goes away first (a stream
 * reset), the job finishes silently. Takes ownership of job. Returns 0 when submitted, -1
 * when the authorizer refused it (and answered req). The thread of req's loop.
 */
int purge_request_submit(purge_job_t *job, purge_loop_t *loop, h2o_req_t *req);

/**
 * The one answer to a finished purge: 503 {"msg","detail"} when the store could not make it
 * durable, 502 when the shield failed, else 200 in the shape of res->kind. Pure; dies only on
 * out-of-memory. Free with purge_answer_free.
 */
void purge_answer_build(const purge_result_t *res, purge_answer_t *out);

/** Free an answer's body. */
void purge_answer_free(purge_answer_t *a);

/** Send a purge answer on req (Content-Type: application/json, Cache-Control: no-store). */
void purge_answer_send(h2o_req_t *req, const purge_answer_t *a);

/**
 * The cluster bus: with one set (before any loop submits a job), every job but those from
 * the bus is handed to `fn` once its ids are given, instead of the store and the shield;
 * fn (on the submitting thread; must not block) owns nothing: it ends the job with
 * purge_job_bus_done, exactly once, from any thread.
 */
typedef void (*purge_bus_submit_fn)(void *arg, purge_job_t *job);
void purge_module_set_bus(purge_bus_submit_fn fn, void *arg);

/**
 * Use `node` (validated by the caller: [A-Za-z0-9_], at most 63 bytes) in purge ids, not the
 * host name, and make the ids of this run unlike any of an earlier run (the cluster's message
 * ids). Call before any loop submits a job.
 */
void purge_module_set_node(const char *node);

/** A submitted job's kind, softness and items with their ids (borrowed until it completes). */
purge_kind_t purge_job_kind(const purge_job_t *job);
int purge_job_soft(const purge_job_t *job);
const purge_item_t *purge_job_items(const purge_job_t *job, size_t *num_items);

/**
 * End a job handed to the bus: err 0 when the stream stored it and it is applied here, else
 * PURGE_BUS_E*; flags PURGE_BUS_F*; note (copied; may be NULL) JSON-safe ASCII for the answer. Any thread; the job's completion then runs as usual (on
 * its loop). The job must not be touched afterwards.
 */
void purge_job_bus_done(purge_job_t *job, int err, unsigned flags, const char *note);

/** 1 when the request asked (Edgecache-Purge-Wait: all) to be answered once every live node has applied it. */
int purge_job_wants_wait_all(const purge_job_t *job);

/** Add an item (as purge_job_add_key) that keeps the purge id it was given on another node. */
void purge_job_add_key_with_id(purge_job_t *job, const char *key, size_t key_len, const char *id, size_t id_len);

/** Format "<node>-<unix time>-<sequence>" into buf. Returns the length, or -1 if it does not fit. */
int purge_format_id(char *buf, size_t cap, const char *node, int64_t unix_time, uint64_t seq);

/** Node name for purge ids: the host name with bytes outside [A-Za-z0-9._] replaced by '_'
 * (so '-' only separates the id's fields), at most 63 bytes; "edgecache" if unknown. */
void purge_node_name(char *buf, size_t cap);

/** 1 when a Fastly-Soft-Purge value asks for a soft purge (anything but "0" or "false", trimmed). */
int purge_soft_value(const char *v, size_t len);

/** 1 when req carries a Fastly-Soft-Purge header asking for a soft purge. Never fails. */
int purge_request_wants_soft(h2o_req_t *req);

#endif

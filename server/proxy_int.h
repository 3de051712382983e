/*
 * server/proxy_int.h — what the pieces of the proxy share, and nothing outside server/proxy*.c
 * includes. server/proxy.h stays the proxy's whole public interface.
 *
 * The pieces (each file's essay says what it owns):
 *   proxy.c            request entry and lookup: on_req, Host/target checks, the lookup, serve_cacheable
 *   proxy_settings.c   the process-wide state (proxy_globals), the settings snapshot, the live header rules
 *   proxy_deliver.c    delivery: a hit, 304 to client conditionals, Range, Date, the deliver rules
 *   proxy_vary.c       header lookups and the Vary secondary key
 *   proxy_busy.c       the busy object: the collapsing table, its waiters, the shared stream and its readers
 *   proxy_fetch.c      fetch and fill: fetch_t's life, the origin's head and body, storing, publishing
 *   proxy_origin.c     the origin request: the request copy, the request head, connect and retry
 *   proxy_revalidate.c revalidation and grace: the 304 merge, stale-if-error
 *   proxy_invalidate.c invalidation: unsafe methods, Location, tombstones, hit-for-pass
 *   proxy_purge.c      PURGE on the proxy listener
 *
 * Every function here runs on a worker thread (one h2o event loop each) unless its comment
 * says otherwise.
 */
#ifndef EDGECACHE_PROXY_INT_H
#define EDGECACHE_PROXY_INT_H

#include <netdb.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <h2o.h>
#include "server/backend.h"
#include "server/cache_key.h"
#include "server/cache_policy.h"
#include "server/config.h"
#include "server/header_rules.h"
#include "server/origin_client.h"
#include "server/proxy.h"
#include "server/worker.h"
#include "storage/mem.h"
#include "storage/object.h"
#include "storage/store.h"

#define FETCH_MAGIC 0xfe7c4a11u
#define MAX_ORIGIN_HEADERS 100
#define VARY_KEY_MAX 2048
/* a client whose socket send queue does not move for this long is dropped */
#define STALL_CHECK_MS 8000
/* unsent bytes for a client after which the origin is paused */
#define BACKPRESSURE_BYTES (1024 * 1024)

enum fetch_mode { FETCH_CACHE, FETCH_PASS };

/* the semantics settings a request sees: a consistent snapshot */
typedef struct proxy_settings {
    policy_settings_t policy;
    int cookie_policy_strip;
    int obey_client_no_cache;
    int keep_surrogate_headers;
} proxy_settings_t;

/* the process-wide proxy state: set by proxy_init before the workers start, then read-only */
typedef struct proxy_globals {
    const config_t *cfg;
    store_t *store;
    mem_tier_t *mem;
    proxy_live_settings_fn live_settings; /* NULL: the config's values only */
    void *live_settings_arg;
    uint64_t max_object_size;
    policy_settings_t policy;
    cache_key_rules_t key_rules; /* from cfg: fixed for the process's life */
    const char *key_ignore_params[CONFIG_MAX_IGNORED_PARAMS];
} proxy_globals_t;

/* defined in proxy_settings.c */
extern proxy_globals_t proxy_globals;

typedef struct fetch fetch_t;
typedef struct fetch_stream fetch_stream_t;

/*
 * Where the origin's body stands, for a fetch's own client (fetch_link_t) and for the stream
 * collapsed requests read (fetch_stream_t): it is being received, then it ends once,
 * complete or failed. No state is left again.
 */
typedef enum fetch_upstream {
    FETCH_UPSTREAM_RECEIVING,
    FETCH_UPSTREAM_COMPLETE,
    FETCH_UPSTREAM_FAILED,
} fetch_upstream_t;

/*
 * A request waiting for another request's fetch of the same URL. It wakes with the object,
 * with the stream being received, with an error, or told to fetch for itself: WAKE_PASS when
 * the URL is not storable (hit-for-pass), WAKE_MISS when that fetch's response was not stored
 * for a reason of its own (its request, its error status), so this request's answer may be.
 */
typedef enum { WAKE_OBJECT, WAKE_PASS, WAKE_MISS, WAKE_ERROR, WAKE_STREAM } wake_kind_t;

/* the client side of a fetch: lives in the request pool */
typedef struct fetch_link {
    h2o_generator_t super; /* first: h2o calls proceed/stop with this pointer */
    h2o_req_t *req;
    fetch_t *fetch;        /* NULL once the origin exchange is over or detached */
    h2o_buffer_t *pending; /* received from the origin, not yet handed to h2o */
    h2o_buffer_t *sending; /* handed to h2o, waiting for proceed */
    int send_inflight;
    fetch_upstream_t upstream; /* the body as far as this client is concerned */
    int final_sent;
} fetch_link_t;

/* what of the client's connection goes into the fields edgecache writes for the origin */
typedef struct proxy_conn_facts {
    int tls;               /* the connection came over TLS (proxy_req_is_tls) */
    int have_peer;         /* peer holds the client's address */
    char peer[NI_MAXHOST]; /* numeric, NUL-terminated */
} proxy_conn_facts_t;

/* what a fetch keeps of its request: it may outlive it */
typedef struct req_copy {
    char *path;
    size_t path_len;
    char *authority;
    size_t authority_len;
    obj_header_t *headers; /* names lower-case */
    size_t num_headers;
    char *buf;
    proxy_conn_facts_t conn;
} req_copy_t;

/*
 * A request's headers as a cache fill sends them to the origin (proxy_lookup_as_sent): what the
 * Vary secondary key is made of. Over a fetch's copy (proxy_sent_view_of_copy) or over a live
 * request (proxy_sent_view_of_req: its connection is read on first need). Values returned through
 * it are valid until the next lookup through the same view or proxy_sent_view_dispose.
 */
typedef struct proxy_sent_view {
    hr_lookup_cb client; /* the client's own headers, after on_req's clean-up */
    void *client_ctx;
    const char *path, *authority;
    size_t path_len, authority_len;
    const header_rules_t *rules; /* the request-phase rules of the fill (borrowed; NULL: none) */
    h2o_req_t *req;              /* a live request whose connection is read on first need, or NULL */
    const proxy_conn_facts_t *conn;
    proxy_conn_facts_t conn_buf;
    char *written, *joined; /* the values returned (malloc'd on need) */
    size_t written_cap, joined_cap;
} proxy_sent_view_t;

struct fetch {
    uint32_t magic;
    worker_t *w;
    h2o_linklist_t node; /* in w->fetches */
    fetch_link_t *link;
    origin_client_t *client;
    int paused; /* origin reading stopped: the client is slower than the origin */
    enum fetch_mode mode;
    int client_is_head;
    int in_callback;
    int cancel_requested;
    int invalidate_on_success; /* unsafe method: purge the URL on 2xx/3xx */
    int owns_inflight;         /* registered in the collapsing table; must wake its waiters */
    char *key;
    size_t key_len;
    uint8_t hash[CACHE_HASH_LEN]; /* of the URL (the collapsing and purge key) */
    cache_obj_t *stale;           /* stale copy for revalidation / stale-if-error (own ref) */
    uint64_t epoch, generation;
    uint64_t bus_seq; /* the cluster's applied sequence when the fetch began (cluster_peer_copy_is_stale) */
    int64_t request_time_ms;
    obj_builder_t *builder;              /* non-NULL while the response is being stored */
    char *vary_names;                    /* the Vary field of what is being stored (malloc'd), NULL when none */
    const header_rules_t *request_rules; /* the request-phase rules the origin request was built with (borrowed) */
    h2o_iovec_t reqbufs[4];              /* request line, Host line, other headers (into head / hostline), body (the request's
                                 req->entity, borrowed: only a passed fetch sends one, see proxy_build_origin_request) */
    char *head;                          /* the request head without its Host line (malloc'd) */
    char *hostline;                      /* "host: ...\r\n" for the backend in use (malloc'd) */
    backend_t *backend;                  /* the backend of this exchange (a reference; backend_release at the end) */
    int retried;                         /* a failed connect was retried on another backend once */
    int idempotent_read;                 /* the client asked GET or HEAD: a failed connect may be retried */
    int revalidating;                    /* request carried our own validators */
    req_copy_t rc;
    proxy_settings_t settings;
    fetch_stream_t *stream; /* shared with collapsed requests while the body arrives (a reference) */
};

/** 1 when the header name (len bytes) is exactly the literal `lit`. */
static inline int proxy_name_is(const char *name, size_t len, const char *lit)
{
    size_t l = strlen(lit);
    return len == l && memcmp(name, lit, l) == 0;
}

/** 1 when the request's method is exactly `m`. */
static inline int proxy_method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

/* ---- proxy.c: request entry and lookup */

/** GET or HEAD: hit, stale-while-revalidate, or a (collapsed) fetch. Answers req one way or another. */
void proxy_serve_cacheable(h2o_req_t *req, const char *key, size_t key_len, const uint8_t hash[CACHE_HASH_LEN]);

/** The cache key of a request whose authority and target on_req settled; allocated in req's pool. */
char *proxy_request_cache_key(h2o_req_t *req, size_t *key_len);

/* ---- proxy_settings.c: the settings snapshot and the live header rules */

/** The live settings, copied into *out (the admin API may change them at any time: a seqlock snapshot). */
void proxy_current_settings(proxy_settings_t *out);

/** The live header rules (borrowed; NULL when none; a replaced set stays allocated until exit). Any thread. */
const header_rules_t *proxy_live_rules(void);

/* ---- proxy_deliver.c: delivery */

/**
 * 1 for a stored header the client does not get from us as-is: Date (proxy_add_date), Age (we compute it),
 * Surrogate-* unless kept, and the framing and hop-by-hop fields (h2o writes its own).
 */
int proxy_is_not_delivered(const char *name, size_t len, int keep_surrogate);

/** Add a response header; name is a C string, value is copied by reference (must live as long as req). */
void proxy_add_header_str(h2o_req_t *req, const char *name, const char *value, size_t value_len);

/** The response's Date: the origin's `value` (NULL when none), else received_ms (unix ms); see server/date_header.c. */
void proxy_add_date(h2o_req_t *req, const char *value, size_t value_len, int64_t received_ms);

/** Add Age: `age` and X-Cache: `xcache` (a literal) to the response. */
void proxy_add_age_and_xcache(h2o_req_t *req, uint32_t age, const char *xcache);

/** Send a short plain-text error naming no internals (body: a literal); counted as an error. */
void proxy_send_error(h2o_req_t *req, int status, const char *body);

/** Send a 400 for a request we will not serve (body: a literal); not counted as an error. */
void proxy_send_bad_request(h2o_req_t *req, const char *body);

/** 1 when the If-None-Match list (untrusted bytes) matches etag under the weak comparison (RFC 9110 13.1.2). */
int proxy_etag_matches(const char *list, size_t list_len, const char *etag, size_t etag_len);

/** 1 when req's If-None-Match, else If-Modified-Since, makes the stored 200 a 304 (RFC 9110 13.2.2). */
int proxy_client_conditional_matches(h2o_req_t *req, const cache_obj_t *obj);

/** Watch this response's socket until its request is done, and drop a client that stops reading. */
void proxy_stall_watch_start(h2o_req_t *req);

/** Apply the deliver-phase header rules to the response about to be sent. */
void proxy_apply_deliver_rules(h2o_req_t *req);

/** Send a stored object (a hit: conditionals and ranges answered from it); takes over the caller's reference to obj. */
void proxy_send_object(h2o_req_t *req, cache_obj_t *obj, uint32_t age, const char *xcache);

/**
 * Called from inside on_req for req (an answer made synchronously, a hit): let the request's
 * own hold keep obj until the request is disposed, taking over the caller's reference, and
 * return 1. Returns 0 (obj untouched) for any other request, or when its hold has one already.
 */
int proxy_hold_obj(h2o_req_t *req, cache_obj_t *obj);

/* ---- proxy_vary.c: header lookups and the Vary key */

/** hr_lookup_cb over a req_copy_t (ctx). */
const char *proxy_lookup_in_copy(void *ctx, const char *name, size_t name_len, size_t *value_len);

/** hr_lookup_cb that finds nothing: the Vary key of the names alone. */
const char *proxy_lookup_none(void *ctx, const char *name, size_t name_len, size_t *value_len);

/** hr_lookup_cb over a live h2o_req_t (ctx). */
const char *proxy_lookup_in_req(void *ctx, const char *name, size_t name_len, size_t *value_len);

/** A view of a fetch's copy as sent with `rules` (borrowed: rc and rules outlive the view). */
void proxy_sent_view_of_copy(proxy_sent_view_t *v, const req_copy_t *rc, const header_rules_t *rules);

/** A view of a live request as a cache fill started now would send it (req borrowed; the live rules). */
void proxy_sent_view_of_req(proxy_sent_view_t *v, h2o_req_t *req);

/** Free what the view allocated. */
void proxy_sent_view_dispose(proxy_sent_view_t *v);

/**
 * hr_lookup_cb over a proxy_sent_view_t (ctx): the value of the field (lower-case name) the origin
 * gets on a cache fill of this request, its lines joined by ", ", or NULL when it gets none: the
 * fields edgecache writes (proxy_written_field), Host as the authority, none of those a fill drops,
 * Accept-Encoding folded, then the request-phase rules. Valid until the next call on the view.
 */
const char *proxy_lookup_as_sent(void *ctx, const char *name, size_t name_len, size_t *value_len);

/**
 * The non-empty values of every `name` line among headers (lower-case names), joined by `sep`:
 * a new NUL-terminated string (the caller frees it) and its length, or NULL when there is none.
 */
char *proxy_join_field_lines(const obj_header_t *headers, size_t n, const char *name, char sep, size_t *len_out);

/**
 * The Vary secondary key of a request (its headers through lookup/ctx) for a response varying on
 * `names`: "name:value\n" per name, in buf (cap bytes). Returns the length, or SIZE_MAX when it does not fit.
 */
size_t proxy_vary_key(const char *names, size_t names_len, hr_lookup_cb lookup, void *ctx, char *buf, size_t cap);

/** 1 when the object is this request's variant (always for an object that does not vary). */
int proxy_object_fits_request(h2o_req_t *req, const cache_obj_t *obj);

/* ---- proxy_busy.c: the busy object (collapsing and the shared stream) */

/** 1 when a body may move from `from` to `to`: only from RECEIVING, only to an end. Pure. */
int proxy_fetch_upstream_transition_ok(fetch_upstream_t from, fetch_upstream_t to);

/** Initialise the collapsing table; once, from proxy_init. */
void proxy_inflight_init(void);

/**
 * Either register as the fetcher of this URL (returns 1: the caller must fetch and later wake
 * the waiters) or queue req as a waiter on the fetch in flight (returns 0; req is answered
 * when it wakes). With req NULL (background refresh) only registers, returning 0 if a fetch is in flight.
 */
int proxy_inflight_join_or_own(const uint8_t hash[CACHE_HASH_LEN], h2o_req_t *req);

/** If f registered its URL, take it out of the table and wake every waiter (obj borrowed). */
void proxy_fetch_wake_waiters(fetch_t *f, wake_kind_t kind, cache_obj_t *obj, int status);

/** The response streams: the waiters so far, and everyone who comes before it ends, read st (borrowed). */
/** Leave the fetcher's place taken with proxy_inflight_join_or_own without fetching: waiters
 * get obj (borrowed), or fetch for themselves when it is NULL. */
void proxy_inflight_give_up(const uint8_t hash[CACHE_HASH_LEN], cache_obj_t *obj);

void proxy_inflight_stream_start(const uint8_t hash[CACHE_HASH_LEN], fetch_stream_t *st);

/** A shared stream with this head (copied; what the fetch's own client receives); returns its first reference. */
fetch_stream_t *proxy_stream_create(int status, h2o_iovec_t reason, const hr_list_t *list, int keep_surrogate,
                                    size_t content_length, uint32_t initial_age, int64_t response_time_ms);

/** Let go of a reference to st; the last one frees it. Any thread. */
void proxy_stream_unref(fetch_stream_t *st);

/** Append body bytes and/or end the body (end: COMPLETE or FAILED; RECEIVING does not end it); a no-op once ended. */
void proxy_stream_publish(fetch_stream_t *st, const void *data, size_t len, fetch_upstream_t end);

/** The worker's receiver of collapsed requests woken by a fetch (registered by proxy_worker_init). */
void proxy_on_wake_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/** The worker's receiver of "more body" for requests reading a shared stream. */
void proxy_on_stream_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/* ---- proxy_fetch.c: fetch and fill */

/**
 * Start an origin exchange for req; takes over the reference to stale (may be NULL).
 * attach: stream the response to req (else a background refresh). owns_inflight: the
 * caller registered this URL in the collapsing table and the fetch must wake its waiters.
 */
void proxy_fetch_start(h2o_req_t *req, enum fetch_mode mode, const char *key, size_t key_len,
                       const uint8_t hash[CACHE_HASH_LEN], cache_obj_t *stale, int attach, int owns_inflight);

/** Free f: wakes its waiters with an error, fails its stream, detaches its client. The origin client must be gone. */
void proxy_fetch_free(fetch_t *f);

/** Insert obj into memory and queue it for disk unless a purge since the fetch began names it; 1 when published. */
int proxy_publish_object(fetch_t *f, cache_obj_t *obj);

/** The origin's headers as we keep them (no per-hop fields, no length, no Age; fetch rules applied), into list. */
void proxy_origin_headers_to_list(fetch_t *f, const h2o_header_t *headers, size_t num_headers, hr_list_t *list);

/** Run the cache policy over a kept header list (+ the origin's Age); the decision into *dec. */
void proxy_fetch_decide(fetch_t *f, int status, const hr_list_t *list, const h2o_header_t *origin, size_t num_origin,
                        int64_t response_time_ms, policy_decision_t *dec);

/** The stored metadata of a response under this decision. */
obj_meta_t proxy_meta_from_decision(fetch_t *f, int status, const policy_decision_t *dec, int64_t response_time_ms);

/** The origin client's head callback (proxy_origin.c's connect hands it over). */
origin_client_body_cb proxy_fetch_on_head(origin_client_t *client, const char *errstr, int minor_version, int status,
                                          h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers);

/* ---- proxy_origin.c: the origin request */

/** What of req's connection the written fields are made of, into *out. */
void proxy_conn_facts_init(proxy_conn_facts_t *out, h2o_req_t *req);

/** Room proxy_written_field needs for a request with this authority. */
#define PROXY_WRITTEN_FIELD_CAP(authority_len) ((authority_len) + NI_MAXHOST + 256)

/** 1 for a field edgecache writes itself, whatever the client sent (proxy_written_field). Pure. */
int proxy_field_is_written(const char *name, size_t name_len);

/** What edgecache sends for a field it writes itself (proxy_written_field). */
typedef enum { PROXY_FIELD_NOT_WRITTEN, PROXY_FIELD_WRITTEN, PROXY_FIELD_WRITTEN_NONE } proxy_field_written_t;

/**
 * The one place that says what edgecache sends the origin for a field it writes itself, whatever
 * the client sent: X-Forwarded-For (the client's value, `prev` or NULL, with the client's address
 * appended; the address alone after a long one), X-Forwarded-Proto (the connection's scheme) and
 * Forwarded (RFC 7239: proto, host, for). `name` lower-case. Returns PROXY_FIELD_WRITTEN with the
 * value in buf (cap >= PROXY_WRITTEN_FIELD_CAP(authority_len)) and its length in *len,
 * PROXY_FIELD_WRITTEN_NONE when edgecache writes the field but sends none this time (no peer
 * address), or PROXY_FIELD_NOT_WRITTEN for any other field. Pure.
 */
proxy_field_written_t proxy_written_field(const char *name, size_t name_len, const proxy_conn_facts_t *conn,
                                          const char *authority, size_t authority_len, const char *prev, size_t prev_len,
                                          char *buf, size_t cap, size_t *len);

/**
 * How a fetch in `mode` forwards a client's field that edgecache does not write: returns 0 when it
 * does not forward it (per-hop, Host, Content-Length, the written fields; a fill's conditionals and
 * ranges, and an Accept-Encoding folded to nothing), else 1 with the value sent in *out (the
 * client's bytes, or a static string: the folded Accept-Encoding of a fill). Pure.
 */
int proxy_forwarded_client_field(const char *name, size_t name_len, const char *value, size_t value_len, enum fetch_mode mode,
                                 const char **out, size_t *out_len);

/** Copy what a fetch needs of req (path, authority, headers, connection) into rc; proxy_req_copy_dispose frees it. */
void proxy_req_copy_init(req_copy_t *rc, h2o_req_t *req);

/** Free what proxy_req_copy_init allocated, and zero rc. */
void proxy_req_copy_dispose(req_copy_t *rc);

/** Build f's request head (f->head, f->reqbufs) from its copy; a passed fetch borrows req's body. */
void proxy_build_origin_request(fetch_t *f, h2o_req_t *req);

/** Start the exchange with the backend picked (takes over its reference). */
void proxy_fetch_connect(fetch_t *f, backend_pick_t *pick);

/* ---- proxy_revalidate.c: revalidation and grace */

/** The error string of "no backend could take the request" (compared by address: a 503). */
extern const char proxy_no_backend_error[];

/** May this stale copy (may be NULL) stand in for an origin failure now? Its age into *age_out. */
int proxy_stale_usable_on_error(const cache_obj_t *stale, int64_t now_ms, uint32_t *age_out);

/** The exchange failed before a usable head (or no backend took it): a stale copy, or an error, to everyone waiting. */
void proxy_fetch_fail_before_head(fetch_t *f, const char *errstr);

/** A 304 to our conditional request: refresh the stored copy's headers and TTL, keep its body, answer. */
void proxy_fetch_on_revalidated(fetch_t *f, const h2o_header_t *headers, size_t num_headers, int64_t response_time_ms);

/* ---- proxy_invalidate.c: invalidation, tombstones, hit-for-pass */

/** Remember that this URL's responses are not storable: later requests skip collapsing. Any worker. */
void proxy_hfp_mark(const uint8_t hash[CACHE_HASH_LEN]);

/** Forget a hit-for-pass mark of this URL (its response was storable after all). */
void proxy_hfp_clear(const uint8_t hash[CACHE_HASH_LEN]);

/** 1 while this URL is marked hit-for-pass. */
int proxy_hfp_active(const uint8_t hash[CACHE_HASH_LEN]);

/** 1 when some invalidation is not committed yet (0 keeps lookups lock-free). */
int proxy_tombstones_pending(void);

/** 1 when an object read from LMDB may be one an uncommitted invalidation is about to delete. */
int proxy_tombstone_blocks(const uint8_t hash[CACHE_HASH_LEN], uint64_t epoch);

/** An unsafe method's 2xx/3xx (RFC 9111 4.4): invalidate f's URL and the same-host Location/Content-Location. */
void proxy_invalidate_after_unsafe(fetch_t *f, const h2o_header_t *headers, size_t num_headers);

/* ---- proxy_purge.c: PURGE on the proxy listener */

/** Submit the purge of req's URL (its cache key) to the purge module, which authorises it,
 * applies it, forwards it to the shield and answers. */
void proxy_handle_purge(h2o_req_t *req, const char *key, size_t key_len);

#endif

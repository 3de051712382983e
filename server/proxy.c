/*
 * server/proxy.c — the proxy handler: request entry and lookup.
 *
 * Runs on the worker threads (one h2o event loop each). For a request:
 *
 *   GET/HEAD  build the cache key (cache-key settings applied), hash it, look it up in
 *             the memory tier, then in LMDB (promoting into memory). A URL whose
 *             responses vary has a small "vary index" object under its hash that names
 *             the varying request headers; the variant is then looked up under
 *             obj_variant_hash(key, normalized values) (server/proxy_vary.c). A fresh
 *             object is a HIT (server/proxy_deliver.c). A stale one within
 *             stale-while-revalidate is served at once and refreshed in the background.
 *             A URL marked hit-for-pass is passed (server/proxy_invalidate.c). Otherwise
 *             the request joins the fetch in flight for the URL, or starts one
 *             (server/proxy_busy.c, server/proxy_fetch.c), which keeps a stale copy for
 *             revalidation and stale-if-error (server/proxy_revalidate.c).
 *   PURGE     server/proxy_purge.c: a job of the purge module (server/purge.c).
 *   others    passed to the origin unchanged (PASS); a 2xx/3xx answer to a method not
 *             known to be safe invalidates the URL (server/proxy_invalidate.c).
 *
 * Before any of that (on_req): repeated header lines become one line and the fields the
 * client's Connection names are dropped (server/http_fields.c), so the key, the variant and
 * the origin all see the same request; Host, or an absolute-form target's authority, must be
 * RFC 3986 host[:port] (else 400) and is the authority of the key and of the origin request
 * (server/cache_key.c, whose key keeps host and path apart). A request body counts against
 * request_body_memory until its request is disposed (else 503; server/inflow.c, which also
 * counts the bodies still arriving).
 *
 * Purges race reads: the purge epoch and the store generation are taken before an LMDB read
 * and compared after inserting the result into memory; if a purge committed in between, the
 * result is taken out again (it may be the purged content). An invalidation not yet committed
 * makes its URL a miss (a tombstone).
 *
 * Also the registration of the handler and each worker's set-up and tear-down.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include "common/ascii.h"
#include "common/now.h"
#include "cluster/cluster.h"
#include "server/h1park.h"
#include "server/backend.h"
#include "server/cache_key.h"
#include "server/cache_policy.h"
#include "server/date_header.h"
#include "server/http_fields.h"
#include "server/inflow.h"
#include "server/origin_idle.h"
#include "server/proxy.h"
#include "server/proxy_int.h"
#include "server/purge.h"
#include "server/stats.h"
#include "server/worker.h"
#include "storage/object.h"

/* ---------------------------------------------------------------- the cache key and the lookup */

/* the key rules before proxy_init (admin unit tests build URL-purge keys without a proxy) */
static const cache_key_rules_t default_key_rules = {.include_host = 1};

size_t proxy_cache_key(char *buf, size_t cap, const char *host, size_t host_len, const char *path, size_t path_len)
{
    return proxy_cache_key_scheme(buf, cap, 0, host, host_len, path, path_len);
}

size_t proxy_cache_key_scheme(char *buf, size_t cap, int https, const char *host, size_t host_len, const char *path,
                              size_t path_len)
{
    return cache_key_build_scheme(proxy_globals.cfg != NULL ? &proxy_globals.key_rules : &default_key_rules, https, host,
                                  host_len, path, path_len, buf, cap);
}

int proxy_cache_key_has_scheme(void)
{
    return proxy_globals.cfg != NULL && proxy_globals.key_rules.include_scheme;
}

/* the cache key of a request whose authority and target request_target_or_respond settled (in its pool) */
char *proxy_request_cache_key(h2o_req_t *req, size_t *key_len)
{
    size_t cap = cache_key_max_len(req->authority.len, req->path.len);
    char *key = h2o_mem_alloc_pool(&req->pool, cap + 1);
    *key_len = proxy_cache_key_scheme(key, cap, proxy_req_is_tls(req), req->authority.base, req->authority.len, req->path.base,
                                      req->path.len);
    assert(*key_len <= cap);
    return key;
}

static int obj_key_equals(const cache_obj_t *obj, const char *key, size_t key_len)
{
    return obj->key_len == key_len && memcmp(obj->key, key, key_len) == 0;
}

/* memory tier, then LMDB; returns a new reference or NULL */
static cache_obj_t *lookup_hash(const uint8_t hash[CACHE_HASH_LEN], const char *key, size_t key_len)
{
    cache_obj_t *obj = mem_lookup(proxy_globals.mem, hash);
    uint64_t generation = store_generation(proxy_globals.store);

    if (obj != NULL && (!obj_key_equals(obj, key, key_len) || obj->meta.generation < generation)) {
        if (obj->meta.generation < generation)
            mem_remove_if_same(proxy_globals.mem, hash, obj);
        obj_unref(&obj);
    }
    if (obj == NULL) {
        uint64_t epoch = store_purge_epoch(proxy_globals.store);
        if (store_get(proxy_globals.store, hash, key, key_len, &obj) == 0) {
            if (proxy_tombstone_blocks(hash, epoch)) {
                obj_unref(&obj);
                return NULL;
            }
            mem_insert(proxy_globals.mem, obj);
            if (store_purge_epoch(proxy_globals.store) != epoch || store_generation(proxy_globals.store) != generation) {
                /* a purge committed while we read: what we read may be purged */
                mem_remove_if_same(proxy_globals.mem, hash, obj);
                obj_unref(&obj);
            }
        }
    }
    return obj;
}

/* the object for this request: the URL's own, or through its vary index the request's variant */
static cache_obj_t *lookup(h2o_req_t *req, const uint8_t hash[CACHE_HASH_LEN], const char *key, size_t key_len)
{
    /*
     * An unsafe method invalidated this URL and the writer has not committed it yet: its
     * variants may still be in memory (only the writer knows their hashes). Until then the
     * URL is a miss, whatever memory holds.
     */
    if (proxy_tombstones_pending() && proxy_tombstone_blocks(hash, 0))
        return NULL;
    cache_obj_t *obj = lookup_hash(hash, key, key_len);
    if (obj == NULL || !(atomic_load(&obj->flags) & OBJ_F_VARY_INDEX))
        return obj;
    const obj_header_t *names = obj_find_header(obj, H2O_STRLIT("vary"));
    char vbuf[VARY_KEY_MAX];
    proxy_sent_view_t view; /* the variant of what a fill would send the origin, as it was stored */
    proxy_sent_view_of_req(&view, req);
    size_t vlen = names != NULL
                      ? proxy_vary_key(names->value, names->value_len, proxy_lookup_as_sent, &view, vbuf, sizeof(vbuf))
                      : SIZE_MAX;
    proxy_sent_view_dispose(&view);
    obj_unref(&obj);
    if (vlen == SIZE_MAX)
        return NULL;
    uint8_t vhash[CACHE_HASH_LEN];
    obj_variant_hash(key, key_len, vbuf, vlen, vhash);
    obj = lookup_hash(vhash, key, key_len);
    if (obj != NULL && (obj->vary_len != vlen || memcmp(obj->vary, vbuf, vlen) != 0))
        obj_unref(&obj);
    return obj;
}

/* ---------------------------------------------------------------- the handler */

/* does the client ask for an end-to-end reload (Cache-Control: no-cache / max-age=0, Pragma: no-cache)? */
static int client_wants_reload(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CACHE_CONTROL, -1);
    if (i != -1) {
        policy_cc_t cc;
        policy_cc_init(&cc);
        policy_cc_parse(&cc, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        if (cc.no_cache || cc.max_age == 0 || cc.max_age_invalid)
            return 1;
    }
    i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("pragma"), -1);
    return i != -1 && h2o_contains_token(req->headers.entries[i].value.base, req->headers.entries[i].value.len,
                                         H2O_STRLIT("no-cache"), ',');
}

/* GET or HEAD: hit, stale-while-revalidate, or a (collapsed) fetch */
void proxy_serve_cacheable(h2o_req_t *req, const char *key, size_t key_len, const uint8_t hash[CACHE_HASH_LEN])
{
    worker_t *w = worker_of_req(req);
    cache_obj_t *obj = lookup(req, hash, key, key_len);
    proxy_settings_t settings;
    proxy_current_settings(&settings);
    int reload = settings.obey_client_no_cache && client_wants_reload(req);

    if (obj != NULL) {
        int64_t now = now_wall_ms();
        uint32_t age = policy_current_age(obj->meta.initial_age, obj->meta.response_time_ms, now);
        unsigned flags = atomic_load_explicit(&obj->flags, memory_order_acquire);
        if (!reload && age < obj->meta.ttl && !(flags & (OBJ_F_NO_CACHE | OBJ_F_SOFT_PURGED))) {
            atomic_fetch_add_explicit(&w->counters.hits, 1, memory_order_relaxed);
            proxy_send_object(req, obj, age, "HIT");
            return;
        }
        if (!reload && !(flags & (OBJ_F_NO_CACHE | OBJ_F_MUST_REVALIDATE)) && obj->meta.stale_while_revalidate != 0 &&
            (uint64_t)age < (uint64_t)obj->meta.ttl + obj->meta.stale_while_revalidate) {
            /* stale-while-revalidate: answer now, refresh once in the background */
            atomic_fetch_add_explicit(&w->counters.stale_served, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&w->counters.hits, 1, memory_order_relaxed);
            proxy_send_object(req, obj_ref(obj), age, "HIT");
            if (proxy_inflight_join_or_own(hash, NULL)) {
                /* the refresh that ended between our lookup and this may have published a newer
                 * copy already: then there is nothing to refresh (and no second origin fetch). The
                 * copy for this request: under a varying URL's hash is its vary index, which a
                 * fetch of another variant stores anew, and which once stopped this refresh */
                cache_obj_t *cur = lookup(req, hash, key, key_len);
                if (cur != NULL && cur != obj && cur->meta.response_time_ms > obj->meta.response_time_ms) {
                    proxy_inflight_give_up(hash, cur);
                    obj_unref(&cur);
                    obj_unref(&obj);
                    return;
                }
                obj_unref(&cur);
                proxy_fetch_start(req, FETCH_CACHE, key, key_len, hash, obj, 0, 1);
            } else {
                obj_unref(&obj);
            }
            return;
        }
        /* stale: revalidate if it has validators, keep it for stale-if-error either way */
    }
    if (proxy_hfp_active(hash)) {
        obj_unref(&obj);
        proxy_fetch_start(req, FETCH_PASS, key, key_len, hash, NULL, 1, 0);
        return;
    }
    if (!proxy_inflight_join_or_own(hash, req)) {
        obj_unref(&obj); /* queued behind the fetch in flight */
        return;
    }
    proxy_fetch_start(req, FETCH_CACHE, key, key_len, hash, obj, 1, 1);
}

/*
 * The Host lines of an HTTP/1 request (0 for HTTP/2). h2o 2.2.5 keeps the request's head at
 * the start of its socket's input buffer until the response is done (it consumes the request
 * then, before it reads the next one), so the bytes it parsed are still there to count.
 * Where req->authority points into them (the last Host line's value: h2o copies it out only
 * for a request with a body), no Host line can follow that line, so only the lines before it
 * are counted: usually the request line alone. bench/hitcost, instructions per hit in the
 * counting: 309 over the whole head of a short request, 201 up to the value, 74 this way
 * (the whole check: about 130 of a hit's 12,000).
 */
static size_t http1_host_lines(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input == NULL)
        return 0;
    const char *in = sock->input->bytes;
    size_t len = sock->input->size;
    uintptr_t host = (uintptr_t)req->authority.base;
    if (host < (uintptr_t)in || host >= (uintptr_t)in + len)
        return http_fields_head_count(in, len, "host", 4);
    size_t line = host - (uintptr_t)in; /* back from the last Host line's value to the start of its line */
    while (line > 0 && in[line - 1] != '\n')
        line--;
    return http_fields_head_count(in, line, "host", 4) + 1;
}

/*
 * The method and the target go into the origin's request line as they came. HTTP/1's parser
 * ends each at a space, but h2o 2.2.5 takes HTTP/2's :method and :path with spaces and tabs
 * in them (only CR, LF, NUL and a few others are refused): ":path: /a HTTP/1.0" would reach
 * the origin as "GET /a HTTP/1.0 HTTP/1.1", a request line an origin may read as another
 * request than the one checked and keyed here. RFC 9113 8.3.1 makes both malformed.
 */
static int request_line_valid(const h2o_req_t *req)
{
    if (req->method.len == 0)
        return 0;
    for (size_t i = 0; i != req->method.len; ++i)
        if (!ascii_is_tchar((unsigned char)req->method.base[i]))
            return 0;
    for (size_t i = 0; i != req->path.len; ++i) {
        unsigned char c = (unsigned char)req->path.base[i];
        if (c <= 0x20 || c == 0x7f) /* bytes past 0x7f are left to the origin, as nginx does */
            return 0;
    }
    return 1;
}

/*
 * An HTTP/1 request whose end two readers may see in two places: Content-Length beside
 * Transfer-Encoding, or more than one Content-Length line. h2o 2.2.5 takes chunked in the
 * first case and the first line in the second; a front end before edgecache that reads it
 * the other way would take the rest of the body for a second request of its own, or ours
 * for part of its (request smuggling, RFC 9112 6.3 and 11.2). nginx refuses both; so do we,
 * and close the connection, so that nothing after them on it is read as a request.
 */
static int framing_ambiguous(h2o_req_t *req)
{
    /* HTTP/2 frames the body itself; and a request without a body had neither line (h2o reads
     * one for either), so hits pay nothing. h2o keeps neither line among req->headers: they
     * are counted in the head, which is still at the start of the socket's input (see above) */
    if (req->version >= 0x200 || req->entity.base == NULL || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input == NULL)
        return 0;
    size_t cl = http_fields_head_count(sock->input->bytes, sock->input->size, "content-length", 14);
    size_t te = http_fields_head_count(sock->input->bytes, sock->input->size, "transfer-encoding", 17);
    return cl > 1 || (cl != 0 && te != 0);
}

/*
 * Settle the authority and the target the key and the origin request are made of, or
 * answer 400 (RFC 9112 3.2, 3.2.2, 3.2.4). h2o 2.2.5 hands us the last Host line (HTTP/1;
 * earlier ones are dropped unseen, so we count them in the raw head) or :authority (HTTP/2,
 * where Host is ignored), and
 * leaves an absolute-form target in req->path as it came. It puts the name of its
 * default host in req->authority when the request had neither: the hostconf's own bytes,
 * so a pointer comparison tells that apart from a client's "Host: default".
 *   - more than one Host line: 400. A front end that reads the first and a cache that
 *     keys on the last would each take the request for another site's;
 *   - a Host that is not RFC 3986 host[:port]: 400 (cache poisoning through the key);
 *   - no Host in HTTP/1.1: 400; none in HTTP/1.0 or HTTP/2: the empty authority (the
 *     origin gets an empty Host, RFC 9112 3.2, unless the backend overrides it);
 *   - an absolute-form target (http or https): its authority, validated the same way,
 *     replaces Host for the key and for the origin, which gets the origin-form path;
 *   - any other target that does not start with '/' (but OPTIONS *): 400.
 * Rewrites req->authority and req->path; returns 0, or -1 when the 400 was sent.
 */
static int request_target_or_respond(h2o_req_t *req)
{
    if (!request_line_valid(req)) {
        proxy_send_bad_request(req, "invalid method or request target\n");
        return -1;
    }
    if (framing_ambiguous(req)) {
        req->http1_is_persistent = 0;
        proxy_send_bad_request(req, "ambiguous message framing: Content-Length with Transfer-Encoding, or twice\n");
        return -1;
    }
    if (http1_host_lines(req) > 1) {
        proxy_send_bad_request(req, "more than one Host\n");
        return -1;
    }
    int has_host = !(req->hostconf != NULL && req->authority.base == req->hostconf->authority.hostport.base);
    if (has_host && !cache_key_authority_valid(req->authority.base, req->authority.len)) {
        proxy_send_bad_request(req, "invalid Host\n");
        return -1;
    }
    if (!has_host) {
        if (req->version >= 0x101 && req->version < 0x200) {
            proxy_send_bad_request(req, "missing Host\n");
            return -1;
        }
        req->authority = h2o_iovec_init("", 0);
    }
    const char *t = req->path.base;
    size_t len = req->path.len, auth_off, auth_len, path_off;
    if (len != 0 && t[0] == '/')
        return 0;
    if (cache_key_split_absolute(t, len, &auth_off, &auth_len, &path_off) == 0) {
        if (!cache_key_authority_valid(t + auth_off, auth_len)) {
            proxy_send_bad_request(req, "invalid authority in the request target\n");
            return -1;
        }
        req->authority = h2o_iovec_init(t + auth_off, auth_len);
        if (path_off != len && t[path_off] == '/') {
            req->path = h2o_iovec_init(t + path_off, len - path_off);
        } else {
            /* "http://host" and "http://host?q" name the path "/" */
            char *p = h2o_mem_alloc_pool(&req->pool, len - path_off + 1);
            p[0] = '/';
            memcpy(p + 1, t + path_off, len - path_off);
            req->path = h2o_iovec_init(p, len - path_off + 1);
        }
        return 0;
    }
    if (len == 1 && t[0] == '*' && proxy_method_is(req, "OPTIONS"))
        return 0;
    proxy_send_bad_request(req, "invalid request target\n");
    return -1;
}

/*
 * What a request holds until h2o disposes of it: its place in its worker's in-flight count,
 * once it is answered from an object a reference to that object (proxy_hold_obj), and an
 * HTTP/1 request's place in its connection's count of bytes (server/inflow.c). One shared
 * allocation for all: each is a malloc, a free and a pool link, and a hit made two.
 */
typedef struct req_hold {
    worker_t *w;
    cache_obj_t *obj;
    inflow_conn_t *inflow;
} req_hold_t;

/* the hold of the request on_req is running for on this thread (on_req is synchronous) */
static _Thread_local h2o_req_t *current_req;
static _Thread_local req_hold_t *current_hold;

static void on_req_disposed(void *p)
{
    req_hold_t *hold = p;
    if (hold->inflow != NULL)
        inflow_request_done(hold->inflow);
    --hold->w->inflight;
    obj_unref(&hold->obj);
}

int proxy_hold_obj(h2o_req_t *req, cache_obj_t *obj)
{
    if (current_req != req || current_hold->obj != NULL)
        return 0;
    current_hold->obj = obj;
    return 1;
}

/* 0: within the budget; -1: the bodies held are past it, 503 sent (this one counts until it is disposed all the
 * same: inflow_request_taken) */
static int request_body_budget_or_respond(h2o_req_t *req)
{
    if (!inflow_bodies_over_budget())
        return 0;
    proxy_add_header_str(req, "retry-after", H2O_STRLIT("1"));
    proxy_send_error(req, 503, "too many request bodies in progress, retry later\n");
    return -1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    stats_note_request_start(req); /* the latency's start: before any of our own work */
    worker_t *w = worker_of_req(req);
    req_hold_t *hold = h2o_mem_alloc_shared(&req->pool, sizeof(*hold), on_req_disposed);
    hold->w = w;
    hold->obj = NULL;
    hold->inflow = inflow_request_taken(req); /* its bytes are ours now, not still arriving */
    ++w->inflight;
    atomic_fetch_add_explicit(&w->counters.requests, 1, memory_order_relaxed);

    /*
     * Before anything reads a header: one line per field (RFC 9110 5.3), so that what is keyed
     * (Vary, conditionals, Cache-Control...) is what the origin gets; and no field the client's
     * Connection names (RFC 9110 7.6.1), so that it neither reaches the origin nor keys a variant.
     */
    if (!http_fields_all_named(&req->headers)) {
        proxy_send_bad_request(req, "obsolete line folding\n");
        return 0;
    }
    http_fields_combine(&req->pool, &req->headers);
    http_fields_remove_connection_listed(&req->headers);
    if (request_target_or_respond(req) != 0)
        return 0;

    size_t key_len;
    char *key = proxy_request_cache_key(req, &key_len);
    uint8_t hash[CACHE_HASH_LEN];
    obj_key_hash(key, key_len, hash);

    if (req->entity.len != 0 && request_body_budget_or_respond(req) != 0)
        return 0;
    h2o_req_t *outer_req = current_req;
    req_hold_t *outer_hold = current_hold;
    current_req = req;
    current_hold = hold;
    if (proxy_method_is(req, "PURGE")) {
        proxy_handle_purge(req, key, key_len);
    } else if ((proxy_method_is(req, "GET") || proxy_method_is(req, "HEAD")) && cluster_cache_usable()) {
        /* (a cluster node that has not caught up with the purge stream passes: it may hold what was purged) */
        proxy_serve_cacheable(req, key, key_len, hash);
    } else {
        proxy_fetch_start(req, FETCH_PASS, key, key_len, hash, NULL, 1, 0);
    }
    current_req = outer_req;
    current_hold = outer_hold;
    h1park_begin(req); /* not answered yet (a miss, a collapsed request): answered in a later loop turn */
    return 0;
}

void proxy_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
}

void proxy_worker_init(worker_t *w)
{
    h2o_timeout_init(w->loop, &w->stall_timeout, STALL_CHECK_MS);
    h2o_linklist_init_anchor(&w->fetches);
    backend_worker_init(w);
    origin_idle_thread_init(w->loop, BACKEND_POOL_IDLE_MS);
    purge_loop_init(&w->purge_loop, w->ctx.queue);
    h2o_multithread_register_receiver(w->ctx.queue, &w->wake_receiver, proxy_on_wake_messages);
    h2o_multithread_register_receiver(w->ctx.queue, &w->stream_receiver, proxy_on_stream_messages);
}

void proxy_worker_dispose(worker_t *w)
{
    /*
     * The drain waited for requests, not for the fetches no request waits on any more (a
     * background refresh, a response being stored for nobody, an endless body): the
     * process is going away, so they stop here, and let go of their backends first.
     */
    while (!h2o_linklist_is_empty(&w->fetches)) {
        fetch_t *f = H2O_STRUCT_FROM_MEMBER(fetch_t, node, w->fetches.next);
        if (f->client != NULL) {
            origin_client_cancel(f->client);
            f->client = NULL;
        }
        proxy_fetch_free(f);
    }
    /* socket pools hold idle keep-alive connections to the origins */
    backend_worker_dispose(w);
    origin_idle_thread_dispose(); /* what pools left over by fetches that outlived the drain kept */
    date_header_thread_done();
}

/*
 * server/proxy.c — the proxy handler.
 *
 * Runs on the worker threads (one h2o event loop each). For a request:
 *
 *   GET/HEAD  build the cache key, hash it, look it up in the memory tier, then in
 *             LMDB (promoting into memory). A fresh object is a HIT: its stored
 *             headers and body go out in one h2o_send (one writev). Otherwise the
 *             origin is asked — conditionally when a stale copy has validators — and
 *             the response is streamed to the client while an obj_builder collects it;
 *             when the body is complete and untruncated it goes into the memory tier
 *             and to the store's writer thread (MISS). A response the policy refuses
 *             to store is only streamed (PASS).
 *   PURGE     authorised by the admin module, purged through the store's writer; the
 *             answer is sent when the purge is durable (a message from the writer).
 *   others    passed to the origin unchanged (PASS); a 2xx/3xx answer to an unsafe
 *             method invalidates the cached URL (RFC 9111 4.4).
 *
 * Lifetimes. A `fetch_t` lives as long as the origin exchange (malloc'd, freed when
 * the HTTP client finishes or is cancelled). A `fetch_link_t` lives as long as the
 * client's request (allocated in the request pool with a dispose callback) and owns
 * the buffers being sent. The two point at each other while both exist; whichever
 * ends first clears the other's pointer. A fetch whose client went away keeps going
 * only while its response is being stored, so the work is not wasted.
 *
 * Purges race reads and fetches: the purge epoch is taken before an LMDB read or an
 * origin request and compared before inserting the result; if a purge committed in
 * between, the result is not inserted or stored (it may be the purged content).
 */
#include <ctype.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <h2o.h>
#include <h2o/http1client.h>
#include "admin-api/admin.h"
#include "server/cache_policy.h"
#include "server/proxy.h"
#include "server/worker.h"
#include "storage/object.h"

#define FETCH_MAGIC 0xfe7c4a11u
#define MAX_ORIGIN_HEADERS 100

enum fetch_mode { FETCH_CACHE, FETCH_PASS };

typedef struct backend_addr {
    struct sockaddr_storage sa;
    socklen_t salen;
    char display[300];
} backend_addr_t;

static struct {
    const config_t *cfg;
    store_t *store;
    mem_tier_t *mem;
    admin_t *admin;
    backend_addr_t *backends;
    size_t num_backends;
    uint64_t max_object_size;
    policy_settings_t policy;
} g;

typedef struct fetch fetch_t;

/* the client side of a fetch: lives in the request pool */
typedef struct fetch_link {
    h2o_generator_t super; /* first: h2o calls proceed/stop with this pointer */
    h2o_req_t *req;
    fetch_t *fetch;        /* NULL once the origin exchange is over or detached */
    h2o_buffer_t *pending; /* received from the origin, not yet handed to h2o */
    h2o_buffer_t *sending; /* handed to h2o, waiting for proceed */
    int send_inflight;
    int upstream_state;    /* 0 in progress, 1 complete, 2 failed */
    int final_sent;
} fetch_link_t;

struct fetch {
    uint32_t magic;
    worker_t *w;
    fetch_link_t *link;
    h2o_http1client_t *client;
    enum fetch_mode mode;
    int client_is_head;
    int in_callback;
    int cancel_requested;
    int invalidate_on_success; /* unsafe method: purge the URL on 2xx/3xx */
    char *key;
    size_t key_len;
    uint8_t hash[CACHE_HASH_LEN];
    cache_obj_t *stale;       /* stale copy for revalidation / stale-if-error (own ref) */
    uint64_t epoch, generation;
    int64_t request_time_ms;
    obj_builder_t *builder;   /* non-NULL while the response is being stored */
    h2o_iovec_t reqbufs[2];   /* request head (malloc'd) and body (malloc'd copy) */
    int revalidating;         /* request carried our own validators */
};

/* ---------------------------------------------------------------- helpers */

/* the live policy settings: the admin API may change them at any time (seqlock snapshot) */
static void current_policy(policy_settings_t *out)
{
    *out = g.policy;
    if (g.admin != NULL) {
        admin_settings_t s;
        admin_settings_snapshot(g.admin, &s);
        out->default_ttl = s.default_ttl;
        out->default_grace = s.default_grace;
        out->max_heuristic_ttl = s.max_heuristic_ttl;
    }
}

/* how long past its TTL a stale copy may stand in for an origin error */
static uint32_t stale_if_error_window(const cache_obj_t *obj)
{
    policy_settings_t p;
    current_policy(&p);
    return obj->meta.stale_if_error > p.default_grace ? obj->meta.stale_if_error : p.default_grace;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 410: return "Gone";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

static int name_is(const char *name, size_t len, const char *lit)
{
    size_t l = strlen(lit);
    return len == l && memcmp(name, lit, l) == 0;
}

/* headers that describe one hop, never forwarded nor stored */
static int is_hop_by_hop(const char *name, size_t len)
{
    return name_is(name, len, "connection") || name_is(name, len, "keep-alive") || name_is(name, len, "proxy-connection") ||
           name_is(name, len, "transfer-encoding") || name_is(name, len, "te") || name_is(name, len, "trailer") ||
           name_is(name, len, "upgrade") || name_is(name, len, "proxy-authenticate") ||
           name_is(name, len, "proxy-authorization");
}

/* stored headers the client does not get from us as-is */
static int is_not_delivered(const char *name, size_t len)
{
    return name_is(name, len, "date") || name_is(name, len, "age") || name_is(name, len, "surrogate-control") ||
           name_is(name, len, "surrogate-key");
}

static int method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

size_t proxy_cache_key(char *buf, size_t cap, const char *host, size_t host_len, const char *path, size_t path_len)
{
    if (host_len > 3 && memcmp(host + host_len - 3, ":80", 3) == 0)
        host_len -= 3;
    size_t total = host_len + path_len;
    if (total > cap)
        return total;
    for (size_t i = 0; i != host_len; ++i)
        buf[i] = (char)tolower((unsigned char)host[i]);
    memcpy(buf + host_len, path, path_len);
    return total;
}

static void add_header_str(h2o_req_t *req, const char *name, const char *value, size_t value_len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value, value_len);
}

static void add_age_and_xcache(h2o_req_t *req, uint32_t age, const char *xcache)
{
    char *buf = h2o_mem_alloc_pool(&req->pool, 16);
    int n = snprintf(buf, 16, "%" PRIu32, age);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_AGE, NULL, buf, (size_t)n);
    add_header_str(req, "x-cache", xcache, strlen(xcache));
}

/* a short plain-text error that names no internals */
static void send_error(h2o_req_t *req, int status, const char *body)
{
    worker_t *w = worker_of_req(req);
    atomic_fetch_add_explicit(&w->counters.errors, 1, memory_order_relaxed);
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    add_age_and_xcache(req, 0, "MISS");
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/plain; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, strlen(body));
}

/* ---------------------------------------------------------------- hits */

static void dispose_obj_slot(void *p)
{
    cache_obj_t **slot = p;
    obj_unref(slot);
}

/* keep obj alive for as long as the request: takes over the caller's reference */
static void pin_obj_to_req(h2o_req_t *req, cache_obj_t *obj)
{
    cache_obj_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), dispose_obj_slot);
    *slot = obj;
}

static int etag_matches(const char *list, size_t list_len, const char *etag, size_t etag_len)
{
    /* weak comparison (RFC 9110 13.1.2): strip W/ from both sides */
    if (etag_len > 2 && etag[0] == 'W' && etag[1] == '/')
        etag += 2, etag_len -= 2;
    size_t i = 0;
    while (i < list_len) {
        while (i < list_len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            ++i;
        size_t start = i;
        if (i < list_len && list[i] == '*')
            return 1;
        if (i + 1 < list_len && list[i] == 'W' && list[i + 1] == '/')
            start = i += 2;
        if (i < list_len && list[i] == '"') {
            ++i;
            while (i < list_len && list[i] != '"')
                ++i;
            if (i < list_len)
                ++i;
        } else {
            while (i < list_len && list[i] != ',')
                ++i;
        }
        size_t len = i - start;
        while (len > 0 && (list[start + len - 1] == ' ' || list[start + len - 1] == '\t'))
            --len;
        if (len == etag_len && memcmp(list + start, etag, len) == 0)
            return 1;
    }
    return 0;
}

/* RFC 9110 13.2.2: If-None-Match first, else If-Modified-Since; only for GET/HEAD on 200 */
static int client_conditional_matches(h2o_req_t *req, const cache_obj_t *obj)
{
    if (obj->meta.status != 200)
        return 0;
    ssize_t inm = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (inm != -1) {
        const obj_header_t *etag = obj_find_header(obj, H2O_STRLIT("etag"));
        if (etag == NULL)
            return 0;
        const h2o_iovec_t *v = &req->headers.entries[inm].value;
        return etag_matches(v->base, v->len, etag->value, etag->value_len);
    }
    ssize_t ims = h2o_find_header(&req->headers, H2O_TOKEN_IF_MODIFIED_SINCE, -1);
    if (ims != -1) {
        const obj_header_t *lm = obj_find_header(obj, H2O_STRLIT("last-modified"));
        int64_t since, modified;
        if (lm == NULL)
            return 0;
        const h2o_iovec_t *v = &req->headers.entries[ims].value;
        if (policy_parse_http_date(v->base, v->len, &since) != 0 ||
            policy_parse_http_date(lm->value, lm->value_len, &modified) != 0)
            return 0;
        return modified <= since;
    }
    return 0;
}

/* send a stored object; takes over the caller's reference to obj */
static void send_object(h2o_req_t *req, cache_obj_t *obj, uint32_t age, const char *xcache)
{
    static h2o_generator_t generator = {NULL, NULL};
    int not_modified = client_conditional_matches(req, obj);

    req->res.status = not_modified ? 304 : obj->meta.status;
    req->res.reason = reason_phrase(req->res.status);
    for (uint32_t i = 0; i != obj->num_headers; ++i) {
        const obj_header_t *h = &obj->headers[i];
        if (is_not_delivered(h->name, h->name_len))
            continue;
        if (not_modified && h->name_len > 8 && memcmp(h->name, "content-", 8) == 0)
            continue;
        h2o_add_header_by_str(&req->pool, &req->res.headers, h->name, h->name_len, 1, NULL, h->value, h->value_len);
    }
    add_age_and_xcache(req, age, xcache);

    h2o_iovec_t body = h2o_iovec_init(obj->body, (size_t)obj->body_len);
    if (not_modified) {
        req->res.content_length = SIZE_MAX;
        body.len = 0;
    } else {
        req->res.content_length = (size_t)obj->body_len;
        if (method_is(req, "HEAD"))
            body.len = 0;
    }
    pin_obj_to_req(req, obj);
    h2o_start_response(req, &generator);
    h2o_send(req, &body, body.len != 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
}

static int obj_key_equals(const cache_obj_t *obj, const char *key, size_t key_len)
{
    return obj->key_len == key_len && memcmp(obj->key, key, key_len) == 0;
}

/* memory tier, then LMDB; returns a new reference or NULL */
static cache_obj_t *lookup(const uint8_t hash[CACHE_HASH_LEN], const char *key, size_t key_len)
{
    cache_obj_t *obj = mem_lookup(g.mem, hash);
    uint64_t generation = store_generation(g.store);

    if (obj != NULL && (!obj_key_equals(obj, key, key_len) || obj->meta.generation < generation)) {
        if (obj->meta.generation < generation)
            mem_remove_if_same(g.mem, hash, obj);
        obj_unref(&obj);
    }
    if (obj == NULL) {
        uint64_t epoch = store_purge_epoch(g.store);
        if (store_get(g.store, hash, key, key_len, &obj) == 0) {
            mem_insert(g.mem, obj);
            if (store_purge_epoch(g.store) != epoch || store_generation(g.store) != generation) {
                /* a purge committed while we read: what we read may be purged */
                mem_remove_if_same(g.mem, hash, obj);
                obj_unref(&obj);
            }
        }
    }
    return obj;
}

/* ---------------------------------------------------------------- fetch: client side */

static void link_do_send(fetch_link_t *link)
{
    if (link->send_inflight || link->final_sent)
        return;
    if (link->pending->size == 0 && link->upstream_state == 0)
        return;

    /* swap: what was pending is now being sent */
    h2o_buffer_t *t = link->sending;
    link->sending = link->pending;
    link->pending = t;

    h2o_send_state_t state = link->upstream_state == 0   ? H2O_SEND_STATE_IN_PROGRESS
                             : link->upstream_state == 1 ? H2O_SEND_STATE_FINAL
                                                         : H2O_SEND_STATE_ERROR;
    h2o_iovec_t buf = h2o_iovec_init(link->sending->bytes, link->sending->size);
    if (state == H2O_SEND_STATE_IN_PROGRESS) {
        link->send_inflight = 1;
    } else {
        link->final_sent = 1;
    }
    h2o_send(link->req, &buf, buf.len != 0 ? 1 : 0, state);
}

static void fetch_on_client_gone(fetch_t *f);

static void link_on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    fetch_link_t *link = (void *)gen;
    (void)req;
    link->send_inflight = 0;
    h2o_buffer_consume(&link->sending, link->sending->size);
    link_do_send(link);
}

static void link_on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    fetch_link_t *link = (void *)gen;
    (void)req;
    link->final_sent = 1; /* nothing more may be sent */
    if (link->fetch != NULL) {
        fetch_t *f = link->fetch;
        link->fetch = NULL;
        fetch_on_client_gone(f);
    }
}

static void link_dispose(void *p)
{
    fetch_link_t *link = p;
    if (link->fetch != NULL) {
        fetch_t *f = link->fetch;
        link->fetch = NULL;
        fetch_on_client_gone(f);
    }
    h2o_buffer_dispose(&link->pending);
    h2o_buffer_dispose(&link->sending);
}

static fetch_link_t *link_create(h2o_req_t *req, fetch_t *f)
{
    fetch_link_t *link = h2o_mem_alloc_shared(&req->pool, sizeof(*link), link_dispose);
    memset(link, 0, sizeof(*link));
    link->super.proceed = link_on_proceed;
    link->super.stop = link_on_stop;
    link->req = req;
    link->fetch = f;
    h2o_buffer_init(&link->pending, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&link->sending, &h2o_socket_buffer_prototype);
    return link;
}

/* ---------------------------------------------------------------- fetch: lifecycle */

static void fetch_free(fetch_t *f)
{
    assert(f->magic == FETCH_MAGIC);
    if (f->link != NULL) {
        f->link->fetch = NULL;
        f->link = NULL;
    }
    if (f->builder != NULL)
        obj_builder_discard(f->builder);
    obj_unref(&f->stale);
    free(f->key);
    free(f->reqbufs[0].base);
    free(f->reqbufs[1].base);
    f->magic = 0;
    free(f);
}

static void fetch_on_client_gone(fetch_t *f)
{
    assert(f->magic == FETCH_MAGIC);
    f->link = NULL;
    if (f->builder != NULL)
        return; /* keep fetching: the response is being stored */
    if (f->in_callback) {
        f->cancel_requested = 1;
        return;
    }
    if (f->client != NULL) {
        h2o_http1client_cancel(f->client);
        f->client = NULL;
    }
    fetch_free(f);
}

/* the origin exchange failed before a response head; answer the client */
static void fetch_fail_before_head(fetch_t *f, const char *errstr)
{
    worker_t *w = f->w;
    fetch_link_t *link = f->link;
    if (link != NULL && !link->final_sent) {
        h2o_req_t *req = link->req;
        cache_obj_t *stale = f->stale;
        int64_t now = obj_now_ms();
        if (stale != NULL && !(atomic_load(&stale->flags) & OBJ_F_MUST_REVALIDATE)) {
            uint32_t age = policy_current_age(stale->meta.initial_age, stale->meta.response_time_ms, now);
            uint32_t grace = stale_if_error_window(stale);
            if ((uint64_t)age < (uint64_t)stale->meta.ttl + grace) {
                /* stale-if-error: the copy we have beats an error */
                atomic_fetch_add_explicit(&w->counters.stale_served, 1, memory_order_relaxed);
                link->fetch = NULL;
                f->link = NULL;
                link->final_sent = 1;
                send_object(req, obj_ref(stale), age, "HIT");
                return;
            }
        }
        link->fetch = NULL;
        f->link = NULL;
        link->final_sent = 1;
        if (errstr != NULL && strstr(errstr, "timeout") != NULL)
            send_error(req, 504, "origin timed out\n");
        else
            send_error(req, 502, "origin unreachable or invalid response\n");
    }
}

static int header_value_is(const h2o_header_t *h, const char *lit)
{
    return h2o_lcstris(h->value.base, h->value.len, lit, strlen(lit));
}

static void fetch_finish_object(fetch_t *f)
{
    cache_obj_t *obj = obj_builder_finish(f->builder);
    f->builder = NULL;
    if (store_purge_epoch(g.store) == f->epoch && store_generation(g.store) == f->generation) {
        mem_insert(g.mem, obj);
        store_put(g.store, obj);
        /* a purge that committed between the check and the insert must still win */
        if (store_purge_epoch(g.store) != f->epoch)
            mem_remove_if_same(g.mem, f->hash, obj);
    }
    obj_unref(&obj);
}

static void fetch_invalidate_url(fetch_t *f)
{
    /* RFC 9111 4.4: the cached response for this URL is no longer trustworthy */
    mem_remove(g.mem, f->hash);
    store_purge_key_url(g.store, f->key, f->key_len, 0, NULL, NULL);
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    fetch_t *f = client->data;
    assert(f->magic == FETCH_MAGIC);
    h2o_buffer_t **input = &client->sock->input;
    size_t len = (*input)->size;

    f->in_callback = 1;
    if (len != 0) {
        if (f->builder != NULL) {
            if (obj_builder_body_len(f->builder) + len > g.max_object_size) {
                /* too big to cache: keep streaming, stop collecting */
                obj_builder_discard(f->builder);
                f->builder = NULL;
            } else {
                obj_builder_append(f->builder, (*input)->bytes, len);
            }
        }
        if (f->link != NULL && !f->link->final_sent) {
            h2o_iovec_t dst = h2o_buffer_reserve(&f->link->pending, len);
            memcpy(dst.base, (*input)->bytes, len);
            f->link->pending->size += len;
        }
        h2o_buffer_consume(input, len);
    }
    f->in_callback = 0;

    if (errstr == NULL) {
        if (f->cancel_requested || (f->link == NULL && f->builder == NULL)) {
            /* nobody wants the rest: returning non-zero closes the connection */
            f->client = NULL;
            fetch_free(f);
            return -1;
        }
        if (f->link != NULL)
            link_do_send(f->link);
        return 0;
    }

    /* the exchange is over; the client closes itself after we return */
    f->client = NULL;
    if (errstr == h2o_http1client_error_is_eos) {
        if (f->builder != NULL)
            fetch_finish_object(f);
        if (f->link != NULL) {
            f->link->upstream_state = 1;
            link_do_send(f->link);
        }
    } else {
        /* truncated, timed out or malformed: never store, abort the client's response */
        if (f->builder != NULL) {
            obj_builder_discard(f->builder);
            f->builder = NULL;
        }
        if (f->link != NULL) {
            f->link->upstream_state = 2;
            link_do_send(f->link);
        }
    }
    fetch_free(f);
    return 0;
}

/* 304 to our conditional request: refresh the stored copy's metadata and serve it */
static void fetch_on_revalidated(fetch_t *f, h2o_header_t *headers, size_t num_headers, const policy_decision_t *dec,
                                 int64_t response_time_ms)
{
    cache_obj_t *stale = f->stale;
    obj_header_t *merged = malloc(sizeof(*merged) * (stale->num_headers + num_headers));
    size_t n = 0;
    if (merged == NULL)
        abort();

    /* RFC 9111 4.3.4: stored headers, with those the 304 carries replacing them */
    for (uint32_t i = 0; i != stale->num_headers; ++i) {
        const obj_header_t *h = &stale->headers[i];
        int replaced = 0;
        for (size_t j = 0; j != num_headers; ++j) {
            if (headers[j].name->len == h->name_len && memcmp(headers[j].name->base, h->name, h->name_len) == 0) {
                replaced = 1;
                break;
            }
        }
        if (!replaced)
            merged[n++] = *h;
    }
    for (size_t j = 0; j != num_headers; ++j) {
        const h2o_iovec_t *name = headers[j].name;
        if (is_hop_by_hop(name->base, name->len) || name_is(name->base, name->len, "content-length") ||
            name_is(name->base, name->len, "age"))
            continue;
        merged[n++] = (obj_header_t){name->base, (uint32_t)name->len, headers[j].value.base, (uint32_t)headers[j].value.len};
    }

    obj_meta_t meta = stale->meta;
    meta.flags = (dec->no_cache ? OBJ_F_NO_CACHE : 0) | (dec->must_revalidate ? OBJ_F_MUST_REVALIDATE : 0);
    meta.request_time_ms = f->request_time_ms;
    meta.response_time_ms = response_time_ms;
    meta.initial_age = dec->initial_age;
    meta.ttl = dec->ttl;
    meta.stale_while_revalidate = dec->stale_while_revalidate;
    meta.stale_if_error = dec->stale_if_error;
    meta.generation = f->generation;
    cache_obj_t *fresh = obj_rebuild(stale, &meta, merged, n);
    free(merged);

    if (store_purge_epoch(g.store) == f->epoch && store_generation(g.store) == f->generation) {
        mem_insert(g.mem, fresh);
        store_put(g.store, fresh);
    }
    if (f->link != NULL && !f->link->final_sent) {
        fetch_link_t *link = f->link;
        link->fetch = NULL;
        f->link = NULL;
        link->final_sent = 1;
        atomic_fetch_add_explicit(&f->w->counters.hits, 1, memory_order_relaxed);
        send_object(link->req, obj_ref(fresh), dec->initial_age, "HIT");
    }
    obj_unref(&fresh);
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor_version, int status,
                                       h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers, int rlen)
{
    fetch_t *f = client->data;
    assert(f->magic == FETCH_MAGIC);
    (void)minor_version;
    (void)rlen;
    int64_t response_time_ms = obj_now_ms();

    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        f->client = NULL;
        fetch_fail_before_head(f, errstr);
        fetch_free(f);
        return NULL;
    }
    int is_eos = errstr == h2o_http1client_error_is_eos;

    if (f->invalidate_on_success && status >= 200 && status < 400)
        fetch_invalidate_url(f);

    /* what the policy sees: every origin header */
    policy_header_t pheaders[MAX_ORIGIN_HEADERS];
    size_t npheaders = 0;
    for (size_t i = 0; i != num_headers && npheaders < MAX_ORIGIN_HEADERS; ++i)
        pheaders[npheaders++] =
            (policy_header_t){headers[i].name->base, headers[i].name->len, headers[i].value.base, headers[i].value.len};

    policy_decision_t dec = {0};
    if (f->mode == FETCH_CACHE) {
        policy_request_info_t ri = {.method_is_get_or_head = 1,
                                    .has_authorization = 0,
                                    .request_time = f->request_time_ms / 1000,
                                    .response_time = response_time_ms / 1000};
        if (f->link != NULL)
            ri.has_authorization = h2o_find_header(&f->link->req->headers, H2O_TOKEN_AUTHORIZATION, -1) != -1;
        policy_settings_t settings;
        current_policy(&settings);
        policy_decide(status, pheaders, npheaders, &ri, &settings, &dec);

        if (status == 304 && f->stale != NULL && f->revalidating) {
            f->client = NULL; /* we return NULL: the client closes itself */
            fetch_on_revalidated(f, headers, num_headers, &dec, response_time_ms);
            fetch_free(f);
            return NULL;
        }
        if (status >= 500 && f->stale != NULL) {
            /* stale-if-error also covers an origin that answers with a server error */
            cache_obj_t *stale = f->stale;
            uint32_t age = policy_current_age(stale->meta.initial_age, stale->meta.response_time_ms, response_time_ms);
            uint32_t grace = stale_if_error_window(stale);
            if (!(atomic_load(&stale->flags) & OBJ_F_MUST_REVALIDATE) && (uint64_t)age < (uint64_t)stale->meta.ttl + grace &&
                f->link != NULL) {
                f->client = NULL;
                fetch_fail_before_head(f, "origin 5xx");
                fetch_free(f);
                return NULL;
            }
        }
    }
    int storable = f->mode == FETCH_CACHE && dec.storable;
    worker_t *w = f->w;
    if (f->mode == FETCH_CACHE && storable)
        atomic_fetch_add_explicit(&w->counters.misses, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&w->counters.passes, 1, memory_order_relaxed);

    /* the object: every origin header except the per-hop ones */
    size_t content_length = SIZE_MAX;
    obj_header_t oheaders[MAX_ORIGIN_HEADERS];
    size_t noheaders = 0;
    const char *skeys = NULL;
    size_t skeys_len = 0;
    int chunked = 0;
    for (size_t i = 0; i != num_headers && noheaders < MAX_ORIGIN_HEADERS; ++i) {
        const h2o_iovec_t *name = headers[i].name;
        if (name_is(name->base, name->len, "content-length")) {
            content_length = h2o_strtosize(headers[i].value.base, headers[i].value.len);
            continue;
        }
        if (name_is(name->base, name->len, "transfer-encoding") && header_value_is(&headers[i], "chunked"))
            chunked = 1;
        if (is_hop_by_hop(name->base, name->len) || name_is(name->base, name->len, "age"))
            continue;
        if (name_is(name->base, name->len, "surrogate-key") && skeys == NULL) {
            skeys = headers[i].value.base;
            skeys_len = headers[i].value.len;
        }
        oheaders[noheaders++] =
            (obj_header_t){name->base, (uint32_t)name->len, headers[i].value.base, (uint32_t)headers[i].value.len};
    }
    if (chunked)
        content_length = SIZE_MAX;

    if (storable && (content_length == SIZE_MAX || content_length <= g.max_object_size)) {
        obj_meta_t meta = {.status = (uint16_t)status,
                           .flags = (dec.no_cache ? OBJ_F_NO_CACHE : 0) | (dec.must_revalidate ? OBJ_F_MUST_REVALIDATE : 0),
                           .generation = f->generation,
                           .request_time_ms = f->request_time_ms,
                           .response_time_ms = response_time_ms,
                           .initial_age = dec.initial_age,
                           .ttl = dec.ttl,
                           .stale_while_revalidate = dec.stale_while_revalidate,
                           .stale_if_error = dec.stale_if_error};
        f->builder = obj_builder_begin(&meta, f->key, f->key_len, skeys, skeys_len, "", 0, oheaders, noheaders,
                                       content_length == SIZE_MAX ? 0 : content_length);
    }
    obj_unref(&f->stale); /* a full response replaces it */

    /* the client's response */
    fetch_link_t *link = f->link;
    if (link != NULL && !link->final_sent) {
        h2o_req_t *req = link->req;
        req->res.status = status;
        req->res.reason = h2o_strdup(&req->pool, msg.base, msg.len).base;
        for (size_t i = 0; i != noheaders; ++i) {
            const obj_header_t *h = &oheaders[i];
            if (name_is(h->name, h->name_len, "date") ||
                (f->mode == FETCH_CACHE && is_not_delivered(h->name, h->name_len)))
                continue;
            /* the origin's header bytes live in the client's buffer: copy them into the request pool */
            h2o_iovec_t value = h2o_strdup(&req->pool, h->value, h->value_len);
            h2o_iovec_t name = h2o_strdup(&req->pool, h->name, h->name_len);
            h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 1, NULL, value.base, value.len);
        }
        add_age_and_xcache(req, f->mode == FETCH_CACHE ? dec.initial_age : 0, storable ? "MISS" : "PASS");
        req->res.content_length = content_length;
        h2o_start_response(req, &link->super);
        if (f->client_is_head && !is_eos) {
            /* the client asked HEAD, we fetched GET to fill the cache: answer now, keep reading to store */
            link->upstream_state = 1;
            link_do_send(link);
            link->fetch = NULL;
            f->link = NULL;
        }
    }

    if (is_eos) {
        f->client = NULL;
        if (f->builder != NULL)
            fetch_finish_object(f);
        if (f->link != NULL) {
            f->link->upstream_state = 1;
            link_do_send(f->link);
        }
        fetch_free(f);
        return NULL;
    }
    if (f->link == NULL && f->builder == NULL) {
        f->client = NULL;
        fetch_free(f);
        return NULL; /* nobody needs the body */
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr, h2o_iovec_t **reqbufs,
                                          size_t *reqbufcnt, int *method_is_head)
{
    fetch_t *f = client->data;
    assert(f->magic == FETCH_MAGIC);
    if (errstr != NULL) {
        f->client = NULL;
        fetch_fail_before_head(f, errstr);
        fetch_free(f);
        return NULL;
    }
    f->request_time_ms = obj_now_ms();
    *reqbufs = f->reqbufs;
    *reqbufcnt = f->reqbufs[1].len != 0 ? 2 : 1;
    *method_is_head = f->mode == FETCH_PASS && f->client_is_head;
    return on_head;
}

/* request headers we do not forward as they are */
static int skip_request_header(const h2o_header_t *h, enum fetch_mode mode)
{
    const h2o_iovec_t *n = h->name;
    if (is_hop_by_hop(n->base, n->len) || name_is(n->base, n->len, "host") || name_is(n->base, n->len, "content-length") ||
        name_is(n->base, n->len, "x-forwarded-for"))
        return 1;
    /* a cache fill fetches the whole object; client conditionals are answered from the cache */
    if (mode == FETCH_CACHE &&
        (name_is(n->base, n->len, "if-none-match") || name_is(n->base, n->len, "if-modified-since") ||
         name_is(n->base, n->len, "if-match") || name_is(n->base, n->len, "if-unmodified-since") ||
         name_is(n->base, n->len, "range") || name_is(n->base, n->len, "if-range")))
        return 1;
    return 0;
}

static void build_origin_request(fetch_t *f, h2o_req_t *req)
{
    const char *method = f->mode == FETCH_CACHE ? "GET" : NULL;
    size_t cap = 256 + req->path.len + req->authority.len + req->method.len;
    for (size_t i = 0; i != req->headers.size; ++i)
        cap += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    const obj_header_t *etag = NULL, *lm = NULL;
    if (f->stale != NULL) {
        etag = obj_find_header(f->stale, H2O_STRLIT("etag"));
        lm = obj_find_header(f->stale, H2O_STRLIT("last-modified"));
        if (etag != NULL)
            cap += etag->value_len + 20;
        if (lm != NULL)
            cap += lm->value_len + 24;
    }
    char *buf = malloc(cap), *p = buf;
    if (buf == NULL)
        abort();
#define APPEND(s, l) (memcpy(p, (s), (l)), p += (l))
    if (method != NULL)
        APPEND(method, strlen(method));
    else
        APPEND(req->method.base, req->method.len);
    APPEND(" ", 1);
    APPEND(req->path.base, req->path.len);
    APPEND(" HTTP/1.1\r\nhost: ", 17);
    APPEND(req->authority.base, req->authority.len);
    APPEND("\r\n", 2);
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (skip_request_header(h, f->mode))
            continue;
        APPEND(h->orig_name != NULL ? h->orig_name : h->name->base, h->name->len);
        APPEND(": ", 2);
        APPEND(h->value.base, h->value.len);
        APPEND("\r\n", 2);
    }
    if (etag != NULL) {
        APPEND("if-none-match: ", 15);
        APPEND(etag->value, etag->value_len);
        APPEND("\r\n", 2);
        f->revalidating = 1;
    }
    if (lm != NULL) {
        APPEND("if-modified-since: ", 19);
        APPEND(lm->value, lm->value_len);
        APPEND("\r\n", 2);
        f->revalidating = 1;
    }
    /* X-Forwarded-For: the client's address appended to what came in */
    {
        struct sockaddr_storage ss;
        socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
        char host[NI_MAXHOST];
        ssize_t xff = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, -1);
        if (sl != 0 && getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), NULL, 0, NI_NUMERICHOST) == 0) {
            size_t hl = strlen(host);
            if (xff != -1 && req->headers.entries[xff].value.len < 200) {
                APPEND("x-forwarded-for: ", 17);
                APPEND(req->headers.entries[xff].value.base, req->headers.entries[xff].value.len);
                APPEND(", ", 2);
            } else {
                APPEND("x-forwarded-for: ", 17);
            }
            APPEND(host, hl);
            APPEND("\r\n", 2);
        }
    }
    if (f->mode == FETCH_PASS && req->entity.base != NULL) {
        char cl[40];
        int n = snprintf(cl, sizeof(cl), "content-length: %zu\r\n", req->entity.len);
        APPEND(cl, (size_t)n);
        if (req->entity.len != 0) {
            f->reqbufs[1].base = malloc(req->entity.len);
            if (f->reqbufs[1].base == NULL)
                abort();
            memcpy(f->reqbufs[1].base, req->entity.base, req->entity.len);
            f->reqbufs[1].len = req->entity.len;
        }
    }
    APPEND("\r\n", 2);
#undef APPEND
    assert((size_t)(p - buf) <= cap);
    f->reqbufs[0] = h2o_iovec_init(buf, (size_t)(p - buf));
}

/* start an origin exchange for req; takes over the reference to stale (may be NULL) */
static void fetch_start(h2o_req_t *req, enum fetch_mode mode, const char *key, size_t key_len,
                        const uint8_t hash[CACHE_HASH_LEN], cache_obj_t *stale)
{
    worker_t *w = worker_of_req(req);

    if (g.num_backends == 0) {
        obj_unref(&stale);
        send_error(req, 503, "no origin configured\n");
        return;
    }
    fetch_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        abort();
    f->magic = FETCH_MAGIC;
    f->w = w;
    f->mode = mode;
    f->client_is_head = method_is(req, "HEAD");
    f->invalidate_on_success = mode == FETCH_PASS && (method_is(req, "POST") || method_is(req, "PUT") ||
                                                      method_is(req, "DELETE") || method_is(req, "PATCH"));
    f->key = malloc(key_len + 1);
    if (f->key == NULL)
        abort();
    memcpy(f->key, key, key_len);
    f->key[key_len] = '\0';
    f->key_len = key_len;
    memcpy(f->hash, hash, CACHE_HASH_LEN);
    f->stale = stale;
    f->epoch = store_purge_epoch(g.store);
    f->generation = store_generation(g.store);
    f->request_time_ms = obj_now_ms();
    build_origin_request(f, req);
    f->link = link_create(req, f);

    atomic_fetch_add_explicit(&w->counters.origin_fetches, 1, memory_order_relaxed);
    size_t backend = w->rr_next++ % w->num_backends;
    h2o_http1client_connect_with_pool(&f->client, f, &w->client_ctx, &w->sockpools[backend], on_connect);
}

/* ---------------------------------------------------------------- PURGE on the proxy listener */

typedef struct proxy_purge {
    h2o_multithread_message_t super;
    worker_t *w;
    h2o_req_t *req; /* NULL once the client went away */
    int refs;       /* 2: the request's pool and the pending message; both on the worker thread */
    store_purge_result_t res;
} proxy_purge_t;

static void proxy_purge_unref(proxy_purge_t *pp)
{
    if (--pp->refs == 0)
        free(pp);
}

static void proxy_purge_dispose(void *p)
{
    proxy_purge_t **slot = p;
    (*slot)->req = NULL;
    proxy_purge_unref(*slot);
}

/* writer thread: hand the result to the worker's loop */
static void proxy_purge_done(void *arg, const store_purge_result_t *res)
{
    proxy_purge_t *pp = arg;
    pp->res = *res;
    h2o_multithread_send_message(&pp->w->purge_receiver, &pp->super);
}

static void on_purge_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        proxy_purge_t *pp = H2O_STRUCT_FROM_MEMBER(proxy_purge_t, super.link, messages->next);
        h2o_linklist_unlink(&pp->super.link);
        if (pp->req != NULL) {
            h2o_req_t *req = pp->req;
            if (pp->res.err != 0) {
                admin_send_json_error(req, 500, "Purge failed", "the store could not commit the purge");
            } else {
                char id[96];
                admin_next_purge_id(g.admin, id, sizeof(id));
                char *body = h2o_mem_alloc_pool(&req->pool, 160);
                int n = snprintf(body, 160, "{\"status\":\"ok\",\"id\":\"%s\"}", id);
                req->res.status = 200;
                req->res.reason = "OK";
                h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
                h2o_send_inline(req, body, (size_t)n);
            }
        }
        proxy_purge_unref(pp);
    }
}

static void handle_purge(h2o_req_t *req, const char *key, size_t key_len)
{
    worker_t *w = worker_of_req(req);
    if (g.admin != NULL && admin_authorize_proxy_purge_or_respond(g.admin, req) != 0)
        return;
    ssize_t soft_idx = h2o_find_header_by_str(&req->headers, H2O_STRLIT("fastly-soft-purge"), -1);
    int soft = soft_idx != -1 && h2o_memis(req->headers.entries[soft_idx].value.base,
                                           req->headers.entries[soft_idx].value.len, H2O_STRLIT("1"));
    proxy_purge_t *pp = calloc(1, sizeof(*pp));
    if (pp == NULL)
        abort();
    pp->w = w;
    pp->req = req;
    pp->refs = 2;
    proxy_purge_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), proxy_purge_dispose);
    *slot = pp;
    atomic_fetch_add_explicit(&w->counters.purges, 1, memory_order_relaxed);
    store_purge_key_url(g.store, key, key_len, soft, proxy_purge_done, pp);
}

/* ---------------------------------------------------------------- the handler */

static void on_req_disposed(void *p)
{
    worker_t **slot = p;
    --(*slot)->inflight;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    worker_t *w = worker_of_req(req);
    worker_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_req_disposed);
    *slot = w;
    ++w->inflight;
    atomic_fetch_add_explicit(&w->counters.requests, 1, memory_order_relaxed);

    size_t cap = req->authority.len + req->path.len;
    char *key = h2o_mem_alloc_pool(&req->pool, cap + 1);
    size_t key_len = proxy_cache_key(key, cap, req->authority.base, req->authority.len, req->path.base, req->path.len);
    assert(key_len <= cap);
    uint8_t hash[CACHE_HASH_LEN];
    obj_key_hash(key, key_len, hash);

    if (method_is(req, "PURGE")) {
        handle_purge(req, key, key_len);
        return 0;
    }
    if (!method_is(req, "GET") && !method_is(req, "HEAD")) {
        fetch_start(req, FETCH_PASS, key, key_len, hash, NULL);
        return 0;
    }

    cache_obj_t *obj = lookup(hash, key, key_len);
    if (obj != NULL) {
        int64_t now = obj_now_ms();
        uint32_t age = policy_current_age(obj->meta.initial_age, obj->meta.response_time_ms, now);
        unsigned flags = atomic_load_explicit(&obj->flags, memory_order_acquire);
        if (age < obj->meta.ttl && !(flags & (OBJ_F_NO_CACHE | OBJ_F_SOFT_PURGED))) {
            atomic_fetch_add_explicit(&w->counters.hits, 1, memory_order_relaxed);
            send_object(req, obj, age, "HIT");
            return 0;
        }
        /* stale: revalidate if it has validators, keep it for stale-if-error either way */
    }
    fetch_start(req, FETCH_CACHE, key, key_len, hash, obj);
    return 0;
}

/* ---------------------------------------------------------------- set-up */

int proxy_init(const config_t *cfg, store_t *store, mem_tier_t *mem, struct admin *admin, char *err, size_t errlen)
{
    g.cfg = cfg;
    g.store = store;
    g.mem = mem;
    g.admin = admin;
    g.policy.default_ttl = cfg->default_ttl;
    g.policy.max_heuristic_ttl = cfg->max_heuristic_ttl;
    g.policy.default_grace = cfg->default_grace;
    /* an object must fit the memory tier's admission limit and a small share of the disk */
    g.max_object_size = cfg->memory_size / 4 < cfg->disk_size / 8 ? cfg->memory_size / 4 : cfg->disk_size / 8;

    g.num_backends = cfg->num_backends;
    g.backends = calloc(g.num_backends + 1, sizeof(*g.backends));
    if (g.backends == NULL)
        abort();
    for (size_t i = 0; i != cfg->num_backends; ++i) {
        struct addrinfo hints = {0}, *res = NULL;
        char port[8];
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        snprintf(port, sizeof(port), "%u", (unsigned)cfg->backends[i].port);
        int rc = getaddrinfo(cfg->backends[i].host, port, &hints, &res);
        if (rc != 0) {
            snprintf(err, errlen, "--backend: cannot resolve '%s': %s", cfg->backends[i].host, gai_strerror(rc));
            free(g.backends);
            g.backends = NULL;
            return -1;
        }
        memcpy(&g.backends[i].sa, res->ai_addr, res->ai_addrlen);
        g.backends[i].salen = res->ai_addrlen;
        snprintf(g.backends[i].display, sizeof(g.backends[i].display), "%s:%u", cfg->backends[i].host,
                 (unsigned)cfg->backends[i].port);
        freeaddrinfo(res);
    }
    return 0;
}

void proxy_register(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
}

void proxy_worker_init(worker_t *w)
{
    h2o_timeout_init(w->loop, &w->io_timeout, g.cfg->origin_timeout_ms);
    w->client_ctx.loop = w->loop;
    w->client_ctx.getaddr_receiver = NULL;
    w->client_ctx.io_timeout = &w->io_timeout;
    w->client_ctx.websocket_timeout = NULL;
    w->client_ctx.ssl_ctx = NULL;
    w->num_backends = g.num_backends;
    w->sockpools = calloc(g.num_backends + 1, sizeof(*w->sockpools));
    if (w->sockpools == NULL)
        abort();
    for (size_t i = 0; i != g.num_backends; ++i) {
        h2o_socketpool_init_by_address(&w->sockpools[i], (struct sockaddr *)&g.backends[i].sa, g.backends[i].salen, 0,
                                       256);
        h2o_socketpool_set_timeout(&w->sockpools[i], w->loop, 2000);
    }
    w->rr_next = w->index;
    h2o_multithread_register_receiver(w->ctx.queue, &w->purge_receiver, on_purge_messages);
}

void proxy_worker_dispose(worker_t *w)
{
    /* socket pools hold idle keep-alive connections to the origin; sockets in use belong to fetches still running */
    for (size_t i = 0; i != w->num_backends; ++i)
        h2o_socketpool_dispose(&w->sockpools[i]);
    free(w->sockpools);
    w->sockpools = NULL;
}

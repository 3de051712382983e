/*
 * server/proxy_fetch.c — fetch and fill: a fetch_t from its start to its end, the origin's
 * head and body, storing and publishing what is storable.
 *
 * Runs on the worker threads (one h2o event loop each); a fetch lives on the worker of the
 * request that started it. The origin is asked (server/proxy_origin.c) and the response is
 * streamed to the client while an obj_builder collects it; when the body is complete and
 * untruncated it goes into the memory tier and to the store's writer thread (MISS). A
 * response the policy refuses to store is only streamed (PASS); the URL is remembered as
 * hit-for-pass for a while only when the refusal is the response's own (never the
 * request's: Authorization, a 206 or 304, an over-long varied value; nor an error status),
 * so no client can keep a URL out of the cache. Requests collapsed onto the fetch are woken
 * (server/proxy_busy.c) when its fate is known; a response being stored is also shared with
 * them as it arrives. A body that outgrows the cache's limit stops being collected (and its
 * shared stream is cut) but keeps streaming to the fetch's own client, paced by it.
 *
 * Lifetimes. A `fetch_t` lives as long as the origin exchange (malloc'd, freed when
 * the HTTP client finishes or is cancelled). A `fetch_link_t` lives as long as the
 * client's request (allocated in the request pool with a dispose callback) and owns
 * the buffers being sent. The two point at each other while both exist; whichever
 * ends first clears the other's pointer. A fetch whose client went away keeps going
 * while its response is being stored or others wait on it, so the work is not wasted:
 * fetch_body_wanted is the one test of "does anyone still want the body?". For the
 * client, the body moves once from FETCH_UPSTREAM_RECEIVING to COMPLETE or FAILED
 * (fetch_end_link, asserted).
 *
 * Purges race fetches: the purge epoch is taken before the origin request and compared
 * before inserting the result; if a purge that names the URL or one of its surrogate keys
 * committed in between, the result is not inserted or stored (it may be the purged content).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include "common/alloc.h"
#include "common/now.h"
#include "cluster/cluster.h"
#include "server/backend.h"
#include "server/cache_policy.h"
#include "server/header_rules.h"
#include "server/http_fields.h"
#include "server/origin_client.h"
#include "server/proxy.h"
#include "server/proxy_int.h"
#include "server/stats.h"
#include "storage/object.h"

#define VARY_INDEX_TTL (365u * 86400u)

/* ---------------------------------------------------------------- fetch: client side */

static void link_do_send(fetch_link_t *link)
{
    if (link->send_inflight || link->final_sent)
        return;
    if (link->pending->size == 0 && link->upstream == FETCH_UPSTREAM_RECEIVING)
        return;

    /* swap: what was pending is now being sent */
    h2o_buffer_t *t = link->sending;
    link->sending = link->pending;
    link->pending = t;

    h2o_send_state_t state = link->upstream == FETCH_UPSTREAM_RECEIVING  ? H2O_SEND_STATE_IN_PROGRESS
                             : link->upstream == FETCH_UPSTREAM_COMPLETE ? H2O_SEND_STATE_FINAL
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
    /* the client caught up: read the origin again */
    fetch_t *f = link->fetch;
    if (f != NULL && f->paused && f->client != NULL && link->pending->size < BACKPRESSURE_BYTES / 2) {
        f->paused = 0;
        origin_client_resume(f->client);
    }
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

void proxy_fetch_free(fetch_t *f)
{
    assert(f->magic == FETCH_MAGIC);
    /* anyone still waiting must not wait forever */
    proxy_fetch_wake_waiters(f, WAKE_ERROR, NULL, 502);
    if (f->stream != NULL) {
        proxy_stream_publish(f->stream, NULL, 0, FETCH_UPSTREAM_FAILED); /* no-op when it already ended */
        proxy_stream_unref(f->stream);
        f->stream = NULL;
    }
    if (f->link != NULL) {
        f->link->fetch = NULL;
        f->link = NULL;
    }
    if (f->builder != NULL)
        obj_builder_discard(f->builder);
    obj_unref(&f->stale);
    free(f->key);
    free(f->head);
    free(f->hostline);
    backend_release(&f->backend);
    free(f->vary_names);
    proxy_req_copy_dispose(&f->rc);
    h2o_linklist_unlink(&f->node);
    f->magic = 0;
    free(f);
}

/*
 * Does anyone still want the rest of the origin's body? The fetch's own client (the link),
 * the store (the builder: a collapsed request reads the stream only of a response being
 * stored) or requests queued on the fetch (owns_inflight). When nobody does, the exchange is
 * cut short. The one test of it, wherever the fetch asks.
 */
static int fetch_body_wanted(const fetch_t *f)
{
    return f->link != NULL || f->builder != NULL || f->owns_inflight;
}

static void fetch_on_client_gone(fetch_t *f)
{
    assert(f->magic == FETCH_MAGIC);
    f->link = NULL;
    if (fetch_body_wanted(f))
        return; /* keep fetching: the response is being stored, or others wait for it */
    if (f->in_callback) {
        f->cancel_requested = 1;
        return;
    }
    if (f->client != NULL) {
        origin_client_cancel(f->client);
        f->client = NULL;
    }
    proxy_fetch_free(f);
}

/*
 * Insert into memory and queue for disk, unless a purge that names this URL or one of its
 * surrogate keys was applied since the fetch began (unrelated purges do not matter). A
 * purge still queued ahead of the put is caught by the writer (store_put_since), which then
 * drops the put and the memory copy. A put the store refuses (its queue for disk is full:
 * STORE_EBACKLOG) takes the memory copy out again: a purge finds objects through the disk's
 * index, so the memory tier must not keep one the disk will never index. The client has its
 * response either way; the object is just not cached.
 */
int proxy_publish_object(fetch_t *f, cache_obj_t *obj)
{
    if (store_generation(proxy_globals.store) != f->generation ||
        store_purged_since(proxy_globals.store, f->epoch, f->key, f->key_len, obj->skeys, obj->skeys_len))
        return 0;
    mem_insert(proxy_globals.mem, obj);
    /* refused, or a purge that committed between the check and the insert, which must still win */
    if (store_put_since(proxy_globals.store, obj, f->epoch) != 0 ||
        store_purged_since(proxy_globals.store, f->epoch, f->key, f->key_len, obj->skeys, obj->skeys_len)) {
        mem_remove_if_same(proxy_globals.mem, obj->hash, obj);
        return 0;
    }
    return 1;
}

/* the URL's responses vary: a small index object names the headers (see lookup) */
static void publish_vary_index(fetch_t *f, int64_t now_ms)
{
    obj_meta_t meta = {.status = 200,
                       .flags = OBJ_F_VARY_INDEX,
                       .generation = f->generation,
                       .request_time_ms = now_ms,
                       .response_time_ms = now_ms,
                       .ttl = VARY_INDEX_TTL};
    obj_header_t h = {"vary", 4, f->vary_names, (uint32_t)strlen(f->vary_names)};
    obj_builder_t *b = obj_builder_begin(&meta, f->key, f->key_len, NULL, 0, "", 0, &h, 1, 0);
    cache_obj_t *index = obj_builder_finish(b);
    proxy_publish_object(f, index);
    obj_unref(&index);
}

static void fetch_finish_object(fetch_t *f)
{
    cache_obj_t *obj = obj_builder_finish(f->builder);
    f->builder = NULL;
    if (f->vary_names != NULL)
        publish_vary_index(f, obj->meta.response_time_ms);
    proxy_publish_object(f, obj);
    proxy_fetch_wake_waiters(f, WAKE_OBJECT, obj, 0);
    obj_unref(&obj);
}

/* ---------------------------------------------------------------- fetch: the origin's head and body */

/*
 * Hand the end of the response to the client. The link is detached first: h2o may
 * dispose of the request synchronously when it gets a final or error send.
 */
static void fetch_end_link(fetch_t *f, fetch_upstream_t end)
{
    fetch_link_t *link = f->link;
    if (link == NULL)
        return;
    link->fetch = NULL;
    f->link = NULL;
    assert(proxy_fetch_upstream_transition_ok(link->upstream, end));
    link->upstream = end;
    link_do_send(link);
}

static int on_body(origin_client_t *client, const char *errstr)
{
    fetch_t *f = origin_client_data(client);
    assert(f->magic == FETCH_MAGIC);
    h2o_buffer_t **input = origin_client_body_buffer(client);
    size_t len = (*input)->size;

    /* while set, a client that goes away only marks the fetch (see fetch_on_client_gone) */
    f->in_callback = 1;
    if (len != 0) {
        stats_note_origin_bytes(f->w->index, len);
        if (f->builder != NULL) {
            if (obj_builder_body_len(f->builder) + len > proxy_globals.max_object_size) {
                /* too big to cache: keep streaming, stop collecting; waiters fetch for themselves */
                obj_builder_discard(f->builder);
                f->builder = NULL;
                proxy_fetch_wake_waiters(f, WAKE_PASS, NULL, 0);
                if (f->stream != NULL) {
                    /* the shared stream holds the whole body: it must not grow past the cache's limit
                     * either, so its readers are cut here (the only bounded choice) */
                    proxy_stream_publish(f->stream, NULL, 0, FETCH_UPSTREAM_FAILED);
                    proxy_stream_unref(f->stream);
                    f->stream = NULL;
                }
            } else {
                obj_builder_append(f->builder, (*input)->bytes, len);
            }
        }
        if (f->link != NULL && !f->link->final_sent) {
            h2o_iovec_t dst = h2o_buffer_reserve(&f->link->pending, len);
            memcpy(dst.base, (*input)->bytes, len);
            f->link->pending->size += len;
        }
        if (f->stream != NULL)
            proxy_stream_publish(f->stream, (*input)->bytes, len, FETCH_UPSTREAM_RECEIVING);
        h2o_buffer_consume(input, len);
    }

    if (errstr == NULL) {
        if (f->link != NULL) {
            link_do_send(f->link);
            /* back-pressure: not storing, and the client is behind: stop reading the origin */
            if (f->link != NULL && f->builder == NULL && f->link->pending->size > BACKPRESSURE_BYTES) {
                f->paused = 1;
                origin_client_pause(client);
            }
        }
        f->in_callback = 0;
        if (f->cancel_requested || !fetch_body_wanted(f)) {
            /* nobody wants the rest: returning non-zero closes the connection */
            f->client = NULL;
            proxy_fetch_free(f);
            return -1;
        }
        return 0;
    }

    /* the exchange is over; the client closes itself after we return */
    f->client = NULL;
    if (errstr == origin_client_error_is_eos) {
        if (f->builder != NULL)
            fetch_finish_object(f);
        if (f->stream != NULL)
            proxy_stream_publish(f->stream, NULL, 0, FETCH_UPSTREAM_COMPLETE);
        fetch_end_link(f, FETCH_UPSTREAM_COMPLETE);
    } else {
        /* truncated, timed out or malformed: never store, abort the client's response */
        if (f->builder != NULL) {
            obj_builder_discard(f->builder);
            f->builder = NULL;
        }
        proxy_fetch_wake_waiters(f, WAKE_ERROR, NULL, 502);
        backend_report(f->backend, 0);
        if (f->link != NULL)
            atomic_fetch_add_explicit(&f->w->counters.errors, 1, memory_order_relaxed);
        fetch_end_link(f, FETCH_UPSTREAM_FAILED);
    }
    proxy_fetch_free(f);
    return 0;
}

/* the origin's headers as we keep them: no per-hop fields (the fixed ones and those its Connection
 * names, RFC 9110 7.6.1), no length, no Age; fetch rules applied */
void proxy_origin_headers_to_list(fetch_t *f, const h2o_header_t *headers, size_t num_headers, hr_list_t *list)
{
    for (size_t i = 0; i != num_headers; ++i) {
        const h2o_iovec_t *name = headers[i].name;
        if (http_fields_is_hop_by_hop(name->base, name->len) || proxy_name_is(name->base, name->len, "content-length") ||
            proxy_name_is(name->base, name->len, "age") || proxy_name_is(name->base, name->len, CLUSTER_SEQ_HEADER) ||
            http_fields_listed_in_connection(headers, num_headers, name->base, name->len))
            continue;
        hr_list_push(list, name->base, name->len, headers[i].value.base, headers[i].value.len);
    }
    header_rules_apply(proxy_live_rules(), HR_PHASE_FETCH, list, f->rc.path, f->rc.path_len, proxy_lookup_in_copy, &f->rc);
}

/* run the policy over a header list (+ the origin's Age, which the list does not keep) */
void proxy_fetch_decide(fetch_t *f, int status, const hr_list_t *list, const h2o_header_t *origin, size_t num_origin,
                        int64_t response_time_ms, policy_decision_t *dec)
{
    policy_header_t ph[MAX_ORIGIN_HEADERS + 4];
    size_t n = 0;
    for (size_t i = 0; i != list->size && n < MAX_ORIGIN_HEADERS; ++i) {
        const obj_header_t *h = &list->entries[i];
        if (f->settings.cookie_policy_strip && proxy_name_is(h->name, h->name_len, "set-cookie"))
            continue; /* stripped before storing: it does not stop storing */
        ph[n++] = (policy_header_t){h->name, h->name_len, h->value, h->value_len};
    }
    for (size_t i = 0; i != num_origin && n < MAX_ORIGIN_HEADERS + 4; ++i)
        if (proxy_name_is(origin[i].name->base, origin[i].name->len, "age"))
            ph[n++] = (policy_header_t){"age", 3, origin[i].value.base, origin[i].value.len};
    /* the policy works in whole seconds; its response_delay (the fetch's duration) is taken from the
     * milliseconds, not from two truncated clocks: a fetch of a few ms across a second boundary would
     * otherwise start its object's life a second old, and stale at once with s-maxage=1 */
    int64_t response_time = response_time_ms / 1000;
    int64_t took_ms = response_time_ms > f->request_time_ms ? response_time_ms - f->request_time_ms : 0;
    policy_request_info_t ri = {.method_is_get_or_head = 1,
                                .has_authorization = proxy_lookup_in_copy(&f->rc, H2O_STRLIT("authorization"), &(size_t){0}) !=
                                                     NULL,
                                .request_time = response_time - took_ms / 1000,
                                .response_time = response_time};
    policy_decide(status, ph, n, &ri, &f->settings.policy, dec);
}

obj_meta_t proxy_meta_from_decision(fetch_t *f, int status, const policy_decision_t *dec, int64_t response_time_ms)
{
    return (obj_meta_t){.status = (uint16_t)status,
                        .flags = (dec->no_cache ? OBJ_F_NO_CACHE : 0) | (dec->must_revalidate ? OBJ_F_MUST_REVALIDATE : 0),
                        .generation = f->generation,
                        .request_time_ms = f->request_time_ms,
                        .response_time_ms = response_time_ms,
                        .initial_age = dec->initial_age,
                        .ttl = dec->ttl,
                        .stale_while_revalidate = dec->stale_while_revalidate,
                        .stale_if_error = dec->stale_if_error};
}

origin_client_body_cb proxy_fetch_on_head(origin_client_t *client, const char *errstr, int minor_version, int status,
                                          h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers)
{
    fetch_t *f = origin_client_data(client);
    assert(f->magic == FETCH_MAGIC);
    (void)minor_version;
    int64_t response_time_ms = now_wall_ms();
    worker_t *w = f->w;

    if (errstr != NULL && errstr != origin_client_error_is_eos) {
        f->client = NULL;
        backend_report(f->backend, 0);
        proxy_fetch_fail_before_head(f, errstr);
        proxy_fetch_free(f);
        return NULL;
    }
    int is_eos = errstr == origin_client_error_is_eos;

    if (f->invalidate_on_success && status >= 200 && status < 400)
        proxy_invalidate_after_unsafe(f, headers, num_headers);

    if (f->mode == FETCH_CACHE && status == 304 && f->stale != NULL && f->revalidating) {
        f->client = NULL; /* we return NULL: the client closes itself */
        proxy_fetch_on_revalidated(f, headers, num_headers, response_time_ms);
        proxy_fetch_free(f);
        return NULL;
    }
    if (f->mode == FETCH_CACHE && status >= 500 && f->stale != NULL) {
        /* stale-if-error also covers an origin that answers with a server error */
        uint32_t age;
        if (proxy_stale_usable_on_error(f->stale, response_time_ms, &age)) {
            f->client = NULL;
            proxy_fetch_fail_before_head(f, "origin 5xx");
            proxy_fetch_free(f);
            return NULL;
        }
    }

    hr_list_t list = {0};
    /* validated by the origin client: SIZE_MAX for chunked or close-delimited bodies */
    size_t content_length = is_eos ? 0 : origin_client_content_length(client);
    if (is_eos && (status == 204 || status == 304 || f->client_is_head)) {
        content_length = SIZE_MAX;
        /* a HEAD answered by the origin: its Content-Length describes the GET, pass it on */
        for (size_t i = 0; f->client_is_head && status != 304 && i != num_headers; ++i)
            if (proxy_name_is(headers[i].name->base, headers[i].name->len, "content-length"))
                content_length = h2o_strtosize(headers[i].value.base, headers[i].value.len);
    }
    proxy_origin_headers_to_list(f, headers, num_headers, &list);

    /* a passed response too: its Age is the origin's corrected initial age, not 0 (RFC 9111 4.2.3) */
    policy_decision_t dec;
    proxy_fetch_decide(f, status, &list, headers, num_headers, response_time_ms, &dec);
    int storable = f->mode == FETCH_CACHE && dec.storable, stale_peer = 0;
    for (size_t i = 0; storable && i != num_headers; ++i) /* a shield behind a purge this node applied: serve, not store */
        if (proxy_name_is(headers[i].name->base, headers[i].name->len, CLUSTER_SEQ_HEADER) &&
            cluster_peer_copy_is_stale(headers[i].value.base, headers[i].value.len, f->bus_seq))
            storable = 0, stale_peer = 1;

    /* what is stored: the list without Set-Cookie under the strip policy */
    /* every line of Vary and Surrogate-Key counts (RFC 9110 5.3; the policy refused Vary: * already) */
    size_t skeys_len = 0, vary_len = 0;
    char *skeys = proxy_join_field_lines(list.entries, list.size, "surrogate-key", ' ', &skeys_len);
    char *vary = proxy_join_field_lines(list.entries, list.size, "vary", ',', &vary_len);
    /* not storable because of this request (not of the response): nothing is remembered about the URL */
    int not_stored_by_request = f->mode == FETCH_CACHE && !storable && (dec.not_stored_by_request || stale_peer);
    char vbuf[VARY_KEY_MAX];
    size_t vlen = 0;
    if (storable && vary != NULL) {
        /* keyed on what the origin was sent, which may not be what the client sent (RFC 9111 4.1) */
        proxy_sent_view_t view;
        proxy_sent_view_of_copy(&view, &f->rc, f->request_rules);
        vlen = proxy_vary_key(vary, vary_len, proxy_lookup_as_sent, &view, vbuf, sizeof(vbuf));
        proxy_sent_view_dispose(&view);
        if (vlen == SIZE_MAX) {
            storable = 0;
            /* too long with this request's values, or with the response's Vary names alone? */
            not_stored_by_request = proxy_vary_key(vary, vary_len, proxy_lookup_none, NULL, vbuf, sizeof(vbuf)) != SIZE_MAX;
        } else {
            f->vary_names = vary; /* the fetch's from here (proxy_fetch_free) */
        }
    }
    if (storable && content_length != SIZE_MAX && content_length > proxy_globals.max_object_size)
        storable = 0;
    if (storable) {
        obj_meta_t meta = proxy_meta_from_decision(f, status, &dec, response_time_ms);
        hr_list_t stored = {0};
        for (size_t i = 0; i != list.size; ++i)
            if (!(f->settings.cookie_policy_strip && proxy_name_is(list.entries[i].name, list.entries[i].name_len, "set-cookie")))
                hr_list_push(&stored, list.entries[i].name, list.entries[i].name_len, list.entries[i].value,
                             list.entries[i].value_len);
        f->builder = obj_builder_begin(&meta, f->key, f->key_len, skeys, skeys_len, vary != NULL ? vbuf : "",
                                       vary != NULL ? vlen : 0, stored.entries, stored.size,
                                       content_length == SIZE_MAX ? 0 : content_length);
        proxy_hfp_clear(f->hash);
        atomic_fetch_add_explicit(&w->counters.misses, 1, memory_order_relaxed);
        if (f->owns_inflight && vary == NULL && !is_eos) {
            /* requests collapsed onto this fetch read the body as it arrives: other clients, so
             * they get what is stored (no Set-Cookie under the strip policy), not this one's head */
            f->stream = proxy_stream_create(status, msg, &stored, f->settings.keep_surrogate_headers, content_length,
                                            dec.initial_age, response_time_ms);
            proxy_inflight_stream_start(f->hash, f->stream);
        }
        hr_list_dispose(&stored);
    } else {
        /*
         * Hit-for-pass: later requests pass straight through, without queueing. Only when the
         * response says so about the URL: a reason of this request (Authorization, an over-long
         * varied value) or an error status (a 4xx answers this request; a client provokes a 400
         * with a header the origin dislikes) would let any client keep the URL out of the cache.
         * Then the waiters each fetch for themselves, and may store what they get.
         */
        int url_uncacheable = f->mode == FETCH_CACHE && !not_stored_by_request && status < 400;
        if (url_uncacheable)
            proxy_hfp_mark(f->hash);
        proxy_fetch_wake_waiters(f, url_uncacheable ? WAKE_PASS : WAKE_MISS, NULL, 0);
        atomic_fetch_add_explicit(&w->counters.passes, 1, memory_order_relaxed);
    }
    free(skeys);
    if (vary != f->vary_names)
        free(vary);
    obj_unref(&f->stale); /* a full response replaces it */

    /* the client's response */
    fetch_link_t *link = f->link;
    if (link != NULL && !link->final_sent) {
        h2o_req_t *req = link->req;
        req->res.status = status;
        req->res.reason = h2o_strdup(&req->pool, msg.base, msg.len).base;
        for (size_t i = 0; i != list.size; ++i) {
            const obj_header_t *h = &list.entries[i];
            if (proxy_name_is(h->name, h->name_len, "date") ||
                (f->mode == FETCH_CACHE && proxy_is_not_delivered(h->name, h->name_len, f->settings.keep_surrogate_headers)))
                continue;
            /* the origin's bytes live in the client's buffer: copy them into the request pool */
            h2o_iovec_t value = h2o_strdup(&req->pool, h->value, h->value_len);
            h2o_iovec_t name = h2o_strdup(&req->pool, h->name, h->name_len);
            h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 1, NULL, value.base, value.len);
        }
        const obj_header_t *date = NULL;
        for (size_t i = 0; i != list.size && date == NULL; ++i)
            if (proxy_name_is(list.entries[i].name, list.entries[i].name_len, "date"))
                date = &list.entries[i];
        proxy_add_date(req, date != NULL ? date->value : NULL, date != NULL ? date->value_len : 0, response_time_ms);
        proxy_add_age_and_xcache(req, dec.initial_age, storable ? "MISS" : "PASS");
        proxy_apply_deliver_rules(req);
        req->res.content_length = content_length;
        proxy_stall_watch_start(req);
        h2o_start_response(req, &link->super);
        if (f->client_is_head && !is_eos) {
            /* the client asked HEAD, we fetched GET to fill the cache: answer now, keep reading to store */
            fetch_end_link(f, FETCH_UPSTREAM_COMPLETE);
        }
    }
    hr_list_dispose(&list);

    if (is_eos) {
        f->client = NULL;
        if (f->builder != NULL)
            fetch_finish_object(f);
        fetch_end_link(f, FETCH_UPSTREAM_COMPLETE);
        proxy_fetch_free(f);
        return NULL;
    }
    /* (a response not stored woke its waiters above: no builder means no waiters either) */
    if (!fetch_body_wanted(f)) {
        f->client = NULL;
        proxy_fetch_free(f);
        return NULL; /* nobody needs the body */
    }
    return on_body;
}

/* ---------------------------------------------------------------- fetch: start */

/*
 * Start an origin exchange for req; takes over the reference to stale (may be NULL).
 * attach: stream the response to req (else a background refresh). owns_inflight: the
 * caller registered this URL in the collapsing table and the fetch must wake its waiters.
 */
void proxy_fetch_start(h2o_req_t *req, enum fetch_mode mode, const char *key, size_t key_len,
                       const uint8_t hash[CACHE_HASH_LEN], cache_obj_t *stale, int attach, int owns_inflight)
{
    worker_t *w = worker_of_req(req);

    fetch_t *f = alloc_xcalloc(1, sizeof(*f), "proxy");
    f->magic = FETCH_MAGIC;
    f->w = w;
    h2o_linklist_insert(&w->fetches, &f->node);
    f->mode = mode;
    f->owns_inflight = owns_inflight;
    f->client_is_head = proxy_method_is(req, "HEAD");
    /* RFC 9111 4.4: every method not known to be safe, unknown ones included (RFC 9110 9.2.1) */
    f->invalidate_on_success = mode == FETCH_PASS && !(proxy_method_is(req, "GET") || proxy_method_is(req, "HEAD") ||
                                                       proxy_method_is(req, "OPTIONS") || proxy_method_is(req, "TRACE"));
    f->key = alloc_xmalloc(key_len + 1, "proxy");
    memcpy(f->key, key, key_len);
    f->key[key_len] = '\0';
    f->key_len = key_len;
    memcpy(f->hash, hash, CACHE_HASH_LEN);
    f->stale = stale;
    f->epoch = store_purge_epoch(proxy_globals.store);
    f->bus_seq = cluster_applied_seq();
    f->generation = store_generation(proxy_globals.store);
    f->request_time_ms = now_wall_ms();
    proxy_current_settings(&f->settings);
    proxy_req_copy_init(&f->rc, req);
    f->idempotent_read = proxy_method_is(req, "GET") || proxy_method_is(req, "HEAD");
    assert(mode != FETCH_PASS || attach); /* a passed fetch borrows its request's body */
    proxy_build_origin_request(f, req);
    if (attach)
        f->link = link_create(req, f);

    backend_pick_t pick;
    if (backend_pick(w, f->hash, NULL, &pick) != 0) {
        /* none healthy: a stale copy within grace, else 503 */
        proxy_fetch_fail_before_head(f, proxy_no_backend_error);
        proxy_fetch_free(f);
        return;
    }
    atomic_fetch_add_explicit(&w->counters.origin_fetches, 1, memory_order_relaxed);
    proxy_fetch_connect(f, &pick);
}

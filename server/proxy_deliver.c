/*
 * server/proxy_deliver.c — delivery: what a client receives from the cache.
 *
 * A fresh object is a HIT: its stored headers and body go out in one h2o_send (one writev),
 * and client conditionals (If-None-Match, If-Modified-Since: a 304) and a single Range
 * (If-Range checked: a 206 or 416) are answered from it; the origin never sees them. Every
 * response carries the origin's Date (RFC 9110 6.6.1), on hits too: proxy_add_date writes it
 * and server/date_header.c makes h2o send it instead of its own clock. Age is computed, never
 * stored; X-Cache says HIT, MISS, PASS or REVALIDATED. The deliver-phase header rules run last.
 *
 * Also the synthetic answers (an error, a 400) and the stall watchdog every large or streamed
 * response gets. Worker threads only; everything lives in the request's pool.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <h2o.h>
#include "common/ascii.h"
#include "common/reason.h"
#include "cluster/cluster.h"
#include "server/cache_policy.h"
#include "server/date_header.h"
#include "server/header_rules.h"
#include "server/http_fields.h"
#include "server/proxy_int.h"
#include "server/stats.h"

/* stored headers the client does not get from us as-is (Date goes through proxy_add_date; we compute Age;
 * the framing and hop-by-hop lines are h2o's: an object stored under a header rule of an older version
 * may hold one, e.g. a second Content-Length) */
int proxy_is_not_delivered(const char *name, size_t len, int keep_surrogate)
{
    return proxy_name_is(name, len, "date") || proxy_name_is(name, len, "age") ||
           (!keep_surrogate && (proxy_name_is(name, len, "surrogate-control") || proxy_name_is(name, len, "surrogate-key"))) ||
           proxy_name_is(name, len, "content-length") || http_fields_is_hop_by_hop(name, len); /* Transfer-Encoding too */
}

void proxy_add_header_str(h2o_req_t *req, const char *name, const char *value, size_t value_len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value, value_len);
}

/*
 * The response's Date (RFC 9110 6.6.1): a cache keeps the origin's, on hits too. `value` is the
 * origin's field (NULL when it sent none); when it is absent or not an HTTP-date, the time the
 * response was received stands in (`received_ms`, unix ms). server/date_header.c makes h2o
 * send this header instead of its own clock.
 */
void proxy_add_date(h2o_req_t *req, const char *value, size_t value_len, int64_t received_ms)
{
    char buf[30];
    if (value == NULL || policy_http_date_fixdate(value, value_len, buf) != 0)
        policy_format_http_date(received_ms / 1000, buf);
    date_header_add(req, buf);
}

void proxy_add_age_and_xcache(h2o_req_t *req, uint32_t age, const char *xcache)
{
    /* every answer has an Age: snprintf cost ~600 instructions of a ~13k-instruction hit */
    char *buf = h2o_mem_alloc_pool(&req->pool, 10);
    size_t n = ascii_decimal(buf, age);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_AGE, NULL, buf, n);
    proxy_add_header_str(req, "x-cache", xcache, strlen(xcache));
    if (cluster_enabled()) { /* a cluster node says how far it has applied purges (cluster/cluster_shield.c) */
        char *seq = h2o_mem_alloc_pool(&req->pool, 24); /* the header keeps pointing at it */
        size_t seq_len = cluster_seq_header_value(seq, 24);
        proxy_add_header_str(req, CLUSTER_SEQ_HEADER, seq, seq_len);
    }
}

/* a short plain-text error that names no internals */
void proxy_send_error(h2o_req_t *req, int status, const char *body)
{
    worker_t *w = worker_of_req(req);
    atomic_fetch_add_explicit(&w->counters.errors, 1, memory_order_relaxed);
    stats_note_synthetic(req);
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    proxy_add_age_and_xcache(req, 0, "MISS");
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/plain; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, strlen(body));
}

/* a 400 for a request we will not serve: not an error of ours, so not counted as one */
void proxy_send_bad_request(h2o_req_t *req, const char *body)
{
    stats_note_synthetic(req);
    req->res.status = 400;
    req->res.reason = reason_phrase(400);
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
    if (proxy_hold_obj(req, obj))
        return; /* answered inside on_req (a hit): its hold keeps the object */
    cache_obj_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), dispose_obj_slot);
    *slot = obj;
}

int proxy_etag_matches(const char *list, size_t list_len, const char *etag, size_t etag_len)
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
int proxy_client_conditional_matches(h2o_req_t *req, const cache_obj_t *obj)
{
    if (obj->meta.status != 200)
        return 0;
    ssize_t inm = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (inm != -1) {
        const obj_header_t *etag = obj_find_header(obj, H2O_STRLIT("etag"));
        if (etag == NULL)
            return 0;
        const h2o_iovec_t *v = &req->headers.entries[inm].value;
        return proxy_etag_matches(v->base, v->len, etag->value, etag->value_len);
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

/*
 * Stalled clients. h2o 2.2 has no send timeout: a client that stops reading keeps its
 * connection, the response buffers and (for a miss) the origin fetch forever. A watchdog
 * per response, in the request pool, looks at the kernel send queue every STALL_CHECK_MS:
 * non-empty and unchanged since the last look means nobody reads, and the socket is shut
 * down, which makes h2o fail the write and release everything through its normal path.
 */
typedef struct stall_watch {
    h2o_timeout_entry_t entry;
    h2o_req_t *req;
    worker_t *w;
    int last_outq;
} stall_watch_t;

static void stall_watch_on_timeout(h2o_timeout_entry_t *entry)
{
    stall_watch_t *sw = H2O_STRUCT_FROM_MEMBER(stall_watch_t, entry, entry);
    h2o_socket_t *sock = sw->req->conn->callbacks->get_socket != NULL ? sw->req->conn->callbacks->get_socket(sw->req->conn)
                                                                      : NULL;
    int outq = 0;
    if (sock == NULL || ioctl(h2o_socket_get_fd(sock), SIOCOUTQ, &outq) != 0)
        return;
    if (outq > 0 && outq == sw->last_outq) {
        atomic_fetch_add_explicit(&sw->w->counters.stalled_clients_closed, 1, memory_order_relaxed);
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
        return;
    }
    sw->last_outq = outq;
    h2o_timeout_link(sw->w->loop, &sw->w->stall_timeout, &sw->entry);
}

static void stall_watch_dispose(void *p)
{
    stall_watch_t *sw = p;
    if (h2o_timeout_is_linked(&sw->entry))
        h2o_timeout_unlink(&sw->entry);
}

/* watch this response until its request is done */
void proxy_stall_watch_start(h2o_req_t *req)
{
    worker_t *w = worker_of_req(req);
    stall_watch_t *sw = h2o_mem_alloc_shared(&req->pool, sizeof(*sw), stall_watch_dispose);
    memset(sw, 0, sizeof(*sw));
    sw->entry.cb = stall_watch_on_timeout;
    sw->req = req;
    sw->w = w;
    sw->last_outq = -1;
    h2o_timeout_link(w->loop, &w->stall_timeout, &sw->entry);
}

/* apply the deliver-phase header rules to the response about to be sent */
void proxy_apply_deliver_rules(h2o_req_t *req)
{
    const header_rules_t *rules = proxy_live_rules();
    if (rules == NULL || rules->count_by_phase[HR_PHASE_DELIVER] == 0)
        return;
    for (size_t i = 0; i != rules->count; ++i) {
        const header_rule_t *r = &rules->rules[i];
        if (r->phase != HR_PHASE_DELIVER || !header_rule_matches(r, req->path.base, req->path.len, proxy_lookup_in_req, req))
            continue;
        if (r->action == HR_SET || r->action == HR_UNSET) {
            ssize_t c;
            while ((c = h2o_find_header_by_str(&req->res.headers, r->name, r->name_len, -1)) != -1)
                h2o_delete_header(&req->res.headers, c);
        }
        if (r->action == HR_SET || r->action == HR_APPEND)
            h2o_add_header_by_str(&req->pool, &req->res.headers, r->name, r->name_len, 1, NULL, r->value, r->value_len);
    }
}

/* If-Range (RFC 9110 13.1.5): 1 when the range may be served from this object */
static int if_range_allows(h2o_req_t *req, const cache_obj_t *obj)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_IF_RANGE, -1);
    if (i == -1)
        return 1;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    if (v->len > 0 && (v->base[0] == '"' || (v->len > 1 && v->base[0] == 'W'))) {
        const obj_header_t *etag = obj_find_header(obj, H2O_STRLIT("etag"));
        /* strong comparison: weak validators never match */
        return etag != NULL && v->base[0] == '"' && etag->value_len == v->len && etag->value[0] == '"' &&
               memcmp(etag->value, v->base, v->len) == 0;
    }
    const obj_header_t *lm = obj_find_header(obj, H2O_STRLIT("last-modified"));
    int64_t a, b;
    return lm != NULL && policy_parse_http_date(v->base, v->len, &a) == 0 &&
           policy_parse_http_date(lm->value, lm->value_len, &b) == 0 && a == b;
}

/* send a stored object; takes over the caller's reference to obj */
void proxy_send_object(h2o_req_t *req, cache_obj_t *obj, uint32_t age, const char *xcache)
{
    static h2o_generator_t generator = {NULL, NULL};
    int not_modified = proxy_client_conditional_matches(req, obj);
    int is_head = proxy_method_is(req, "HEAD");
    proxy_settings_t settings;
    proxy_current_settings(&settings); /* a seqlock read: no lock, no shared write */
    int keep_surrogate = settings.keep_surrogate_headers;
    uint64_t first = 0, last = 0;
    int range = 0;

    if (!not_modified && !is_head && obj->meta.status == 200) {
        ssize_t ri = h2o_find_header(&req->headers, H2O_TOKEN_RANGE, -1);
        if (ri != -1 && if_range_allows(req, obj))
            range = policy_parse_range(req->headers.entries[ri].value.base, req->headers.entries[ri].value.len, obj->body_len,
                                       &first, &last);
    }

    req->res.status = not_modified ? 304 : range == 1 ? 206 : range == -1 ? 416 : obj->meta.status;
    req->res.reason = reason_phrase(req->res.status);
    for (uint32_t i = 0; i != obj->num_headers; ++i) {
        const obj_header_t *h = &obj->headers[i];
        if (proxy_is_not_delivered(h->name, h->name_len, keep_surrogate))
            continue;
        if ((not_modified || range == -1) && h->name_len > 8 && memcmp(h->name, "content-", 8) == 0)
            continue;
        if (obj->meta.status == 200 && !not_modified && proxy_name_is(h->name, h->name_len, "accept-ranges"))
            continue; /* ours below: the cache answers ranges whatever the origin does */
        h2o_add_header_by_str(&req->pool, &req->res.headers, h->name, h->name_len, 1, NULL, h->value, h->value_len);
    }
    if (obj->meta.status == 200 && !not_modified)
        proxy_add_header_str(req, "accept-ranges", H2O_STRLIT("bytes"));
    const obj_header_t *date = obj_find_header(obj, H2O_STRLIT("date"));
    proxy_add_date(req, date != NULL ? date->value : NULL, date != NULL ? date->value_len : 0, obj->meta.response_time_ms);
    proxy_add_age_and_xcache(req, age, xcache);

    h2o_iovec_t body = h2o_iovec_init(obj->body, (size_t)obj->body_len);
    if (not_modified) {
        req->res.content_length = SIZE_MAX;
        body.len = 0;
    } else if (range == 1) {
        char *cr = h2o_mem_alloc_pool(&req->pool, 80);
        int n = snprintf(cr, 80, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, obj->body_len);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_RANGE, NULL, cr, (size_t)n);
        body = h2o_iovec_init(obj->body + first, (size_t)(last - first + 1));
        req->res.content_length = body.len;
    } else if (range == -1) {
        char *cr = h2o_mem_alloc_pool(&req->pool, 48);
        int n = snprintf(cr, 48, "bytes */%" PRIu64, obj->body_len);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_RANGE, NULL, cr, (size_t)n);
        body.len = 0;
        req->res.content_length = 0;
    } else {
        req->res.content_length = (size_t)obj->body_len;
        if (is_head)
            body.len = 0;
    }
    proxy_apply_deliver_rules(req);
    pin_obj_to_req(req, obj);
    if (body.len > 64 * 1024)
        proxy_stall_watch_start(req); /* smaller bodies fit in the socket buffers */
    h2o_start_response(req, &generator);
    h2o_send(req, &body, body.len != 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
}

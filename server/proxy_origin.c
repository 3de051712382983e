/*
 * server/proxy_origin.c — the origin request: what a fetch sends, and to whom.
 *
 * A fetch copies what it needs of its request (path, authority, headers, the connection's
 * scheme and address: proxy_req_copy_init) at its start, so it may outlive the request; only the
 * body of a passed request is borrowed, as a passed fetch ends with its request. From the copy
 * it builds the request head once:
 *   - no per-hop fields (those the client's Connection named are gone already: on_req), no
 *     Host (added per backend), no Content-Length (ours, for a passed body); X-Forwarded-For
 *     gets the client's address appended; X-Forwarded-Proto and Forwarded (RFC 7239) are
 *     ours alone, whatever the client sent: the scheme of the client's connection (https
 *     when it came over TLS), and Forwarded's host and for. proxy_written_field is the one
 *     place these values are made, and proxy_forwarded_client_field says what of the client's
 *     goes as it is: the Vary key reads the request through both (proxy_lookup_as_sent), so a
 *     variant is keyed on what the origin was sent, not on what the client sent (RFC 9111 4.1);
 *   - a cache fill asks GET for the whole object, without the client's conditionals and
 *     ranges (answered from the cache), with Accept-Encoding folded as the Vary key folds it,
 *     and with the stale copy's validators when it has them (a revalidation);
 *   - the request-phase header rules run last.
 * The Host line is made per backend (a backend may override it), so a failed connect of a GET
 * or HEAD is retried once, on another healthy backend, with the same head.
 *
 * Worker threads only.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <h2o.h>
#include "common/alloc.h"
#include "common/now.h"
#include "server/backend.h"
#include "server/cache_policy.h"
#include "server/header_rules.h"
#include "server/http_fields.h"
#include "server/proxy_int.h"
#include "server/stats.h"

void proxy_req_copy_init(req_copy_t *rc, h2o_req_t *req)
{
    size_t size = req->path.len + req->authority.len + 2;
    for (size_t i = 0; i != req->headers.size; ++i)
        size += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    rc->buf = malloc(size);
    rc->headers = malloc(sizeof(*rc->headers) * (req->headers.size + 1));
    if (rc->buf == NULL || rc->headers == NULL)
        abort();
    char *p = rc->buf;
    memcpy(p, req->path.base, req->path.len);
    rc->path = p;
    rc->path_len = req->path.len;
    p += req->path.len;
    memcpy(p, req->authority.base, req->authority.len);
    rc->authority = p;
    rc->authority_len = req->authority.len;
    p += req->authority.len;
    rc->num_headers = 0;
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = &req->headers.entries[i];
        obj_header_t *o = &rc->headers[rc->num_headers++];
        memcpy(p, h->name->base, h->name->len);
        o->name = p;
        o->name_len = (uint32_t)h->name->len;
        p += h->name->len;
        memcpy(p, h->value.base, h->value.len);
        o->value = p;
        o->value_len = (uint32_t)h->value.len;
        p += h->value.len;
    }
    proxy_conn_facts_init(&rc->conn, req);
}

void proxy_req_copy_dispose(req_copy_t *rc)
{
    free(rc->buf);
    free(rc->headers);
    memset(rc, 0, sizeof(*rc));
}

static origin_client_head_cb on_connect(origin_client_t *client, const char *errstr, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                        int *method_is_head)
{
    fetch_t *f = origin_client_data(client);
    assert(f->magic == FETCH_MAGIC);
    if (errstr != NULL) {
        f->client = NULL;
        backend_report(f->backend, 0);
        if (!f->retried && f->idempotent_read) {
            /* GET/HEAD: once more, on another healthy backend (this client frees itself on return) */
            backend_pick_t pick;
            if (backend_pick(f->w, f->hash, f->backend, &pick) == 0) {
                f->retried = 1;
                backend_release(&f->backend);
                proxy_fetch_connect(f, &pick);
                return NULL;
            }
        }
        proxy_fetch_fail_before_head(f, errstr);
        proxy_fetch_free(f);
        return NULL;
    }
    f->request_time_ms = now_wall_ms();
    *reqbufs = f->reqbufs;
    *reqbufcnt = f->reqbufs[3].len != 0 ? 4 : 3;
    *method_is_head = f->mode == FETCH_PASS && f->client_is_head;
    return proxy_fetch_on_head;
}

/* start the exchange with the backend picked (takes over its reference) */
void proxy_fetch_connect(fetch_t *f, backend_pick_t *pick)
{
    const char *host = pick->host_header != NULL ? pick->host_header : f->rc.authority;
    size_t host_len = pick->host_header != NULL ? pick->host_header_len : f->rc.authority_len;
    f->backend = pick->backend;
    pick->backend = NULL;
    if (f->link != NULL)
        stats_note_backend(f->link->req, backend_name(f->backend));
    free(f->hostline);
    f->hostline = alloc_xmalloc(host_len + 9, "proxy");
    memcpy(f->hostline, "host: ", 6);
    memcpy(f->hostline + 6, host, host_len);
    memcpy(f->hostline + 6 + host_len, "\r\n", 2);
    f->reqbufs[1] = h2o_iovec_init(f->hostline, host_len + 8);
    origin_client_connect(&f->client, f, f->w->loop, pick->pool, pick->timeouts, pick->tls, on_connect);
}

void proxy_conn_facts_init(proxy_conn_facts_t *out, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    out->tls = proxy_req_is_tls(req);
    out->have_peer = sl != 0 &&
                     getnameinfo((struct sockaddr *)&ss, sl, out->peer, sizeof(out->peer), NULL, 0, NI_NUMERICHOST) == 0;
    if (!out->have_peer)
        out->peer[0] = '\0';
}

/* the fields edgecache writes itself (proxy_written_field), in the order they go to the origin */
static const char *const written_fields[] = {"x-forwarded-for", "x-forwarded-proto", "forwarded"};

int proxy_field_is_written(const char *name, size_t name_len)
{
    for (size_t k = 0; k != sizeof(written_fields) / sizeof(written_fields[0]); ++k)
        if (proxy_name_is(name, name_len, written_fields[k]))
            return 1;
    return 0;
}

/* request headers we do not forward as they are (those the client's Connection named are gone already: on_req) */
static int skip_request_header(const char *name, size_t name_len, enum fetch_mode mode)
{
    if (http_fields_is_hop_by_hop(name, name_len) || proxy_name_is(name, name_len, "host") ||
        proxy_name_is(name, name_len, "content-length") || proxy_field_is_written(name, name_len))
        return 1;
    /* a cache fill fetches the whole object; client conditionals and ranges are answered from the cache */
    if (mode == FETCH_CACHE &&
        (proxy_name_is(name, name_len, "if-none-match") || proxy_name_is(name, name_len, "if-modified-since") ||
         proxy_name_is(name, name_len, "if-match") || proxy_name_is(name, name_len, "if-unmodified-since") ||
         proxy_name_is(name, name_len, "range") || proxy_name_is(name, name_len, "if-range")))
        return 1;
    return 0;
}

int proxy_forwarded_client_field(const char *name, size_t name_len, const char *value, size_t value_len, enum fetch_mode mode,
                                 const char **out, size_t *out_len)
{
    if (skip_request_header(name, name_len, mode))
        return 0;
    if (mode == FETCH_CACHE && proxy_name_is(name, name_len, "accept-encoding")) {
        /* the origin chooses from what the cache keys on, so a stored variant always matches its key */
        *out = policy_normalize_accept_encoding(value, value_len);
        *out_len = strlen(*out);
        return *out_len != 0;
    }
    *out = value;
    *out_len = value_len;
    return 1;
}

/*
 * Forwarded (RFC 7239) for this request: proto, host (quoted: an authority's ':' is no token
 * character; it holds no '"' or '\\', the proxy checked it), for (an IPv6 address quoted in
 * brackets). Into buf (cap bytes); returns the length.
 */
static size_t forwarded_value(char *buf, size_t cap, int tls, const char *authority, size_t authority_len, const char *peer)
{
    int n = snprintf(buf, cap, "proto=%s;host=\"%.*s\"", tls ? "https" : "http", (int)authority_len, authority);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    if (peer != NULL) {
        int m = strchr(peer, ':') != NULL ? snprintf(buf + n, cap - (size_t)n, ";for=\"[%s]\"", peer)
                                          : snprintf(buf + n, cap - (size_t)n, ";for=%s", peer);
        if (m > 0 && (size_t)m < cap - (size_t)n)
            n += m;
    }
    return (size_t)n;
}

proxy_field_written_t proxy_written_field(const char *name, size_t name_len, const proxy_conn_facts_t *conn,
                                          const char *authority, size_t authority_len, const char *prev, size_t prev_len,
                                          char *buf, size_t cap, size_t *len)
{
    assert(cap >= PROXY_WRITTEN_FIELD_CAP(authority_len));
    *len = 0;
    if (proxy_name_is(name, name_len, "x-forwarded-for")) {
        /* the client's address appended to what came in */
        if (!conn->have_peer)
            return PROXY_FIELD_WRITTEN_NONE;
        int n = prev != NULL && prev_len < 200 ? snprintf(buf, cap, "%.*s, %s", (int)prev_len, prev, conn->peer)
                                               : snprintf(buf, cap, "%s", conn->peer);
        assert(n > 0 && (size_t)n < cap);
        *len = (size_t)n;
        return PROXY_FIELD_WRITTEN;
    }
    if (proxy_name_is(name, name_len, "x-forwarded-proto")) {
        *len = conn->tls ? 5 : 4;
        memcpy(buf, conn->tls ? "https" : "http", *len);
        return PROXY_FIELD_WRITTEN;
    }
    if (proxy_name_is(name, name_len, "forwarded")) {
        *len = forwarded_value(buf, cap, conn->tls, authority, authority_len, conn->have_peer ? conn->peer : NULL);
        return *len != 0 ? PROXY_FIELD_WRITTEN : PROXY_FIELD_WRITTEN_NONE;
    }
    return PROXY_FIELD_NOT_WRITTEN;
}

void proxy_build_origin_request(fetch_t *f, h2o_req_t *req)
{
    hr_list_t list = {0};
    size_t written_cap = PROXY_WRITTEN_FIELD_CAP(f->rc.authority_len);
    char *written = alloc_xmalloc(written_cap * 3, "proxy");

    for (size_t i = 0; i != f->rc.num_headers; ++i) {
        const obj_header_t *h = &f->rc.headers[i];
        const char *v;
        size_t vlen;
        if (proxy_forwarded_client_field(h->name, h->name_len, h->value, h->value_len, f->mode, &v, &vlen))
            hr_list_push(&list, h->name, h->name_len, v, vlen);
    }
    if (f->stale != NULL && f->mode == FETCH_CACHE) {
        const obj_header_t *etag = obj_find_header(f->stale, H2O_STRLIT("etag"));
        const obj_header_t *lm = obj_find_header(f->stale, H2O_STRLIT("last-modified"));
        if (etag != NULL)
            hr_list_push(&list, H2O_STRLIT("if-none-match"), etag->value, etag->value_len);
        if (lm != NULL)
            hr_list_push(&list, H2O_STRLIT("if-modified-since"), lm->value, lm->value_len);
        if (etag != NULL || lm != NULL) {
            f->revalidating = 1;
            atomic_fetch_add_explicit(&f->w->counters.revalidations, 1, memory_order_relaxed);
        }
    }
    for (size_t k = 0; k != sizeof(written_fields) / sizeof(written_fields[0]); ++k) {
        const char *name = written_fields[k];
        char *buf = written + k * written_cap;
        size_t name_len = strlen(name), prev_len = 0, len;
        const char *prev = proxy_lookup_in_copy(&f->rc, name, name_len, &prev_len);
        if (proxy_written_field(name, name_len, &f->rc.conn, f->rc.authority, f->rc.authority_len, prev, prev_len, buf,
                                written_cap, &len) == PROXY_FIELD_WRITTEN)
            hr_list_push(&list, name, name_len, buf, len);
    }
    /* kept for the Vary key of the response (proxy_fetch_on_head): the rules this request went out under */
    f->request_rules = proxy_live_rules();
    header_rules_apply(f->request_rules, HR_PHASE_REQUEST, &list, f->rc.path, f->rc.path_len, proxy_lookup_in_copy, &f->rc);

    const char *method = f->mode == FETCH_CACHE ? "GET" : NULL;
    size_t method_len = method != NULL ? 3 : req->method.len;
    size_t cap = 64 + method_len + f->rc.path_len;
    for (size_t i = 0; i != list.size; ++i)
        cap += list.entries[i].name_len + list.entries[i].value_len + 4;
    char *buf = malloc(cap), *p = buf;
    if (buf == NULL)
        abort();
#define APPEND(s, l) (memcpy(p, (s), (l)), p += (l))
    APPEND(method != NULL ? method : req->method.base, method_len);
    APPEND(" ", 1);
    APPEND(f->rc.path, f->rc.path_len);
    APPEND(" HTTP/1.1\r\n", 11);
    size_t request_line_len = (size_t)(p - buf); /* the Host line goes here: see proxy_fetch_connect */
    for (size_t i = 0; i != list.size; ++i) {
        APPEND(list.entries[i].name, list.entries[i].name_len);
        APPEND(": ", 2);
        APPEND(list.entries[i].value, list.entries[i].value_len);
        APPEND("\r\n", 2);
    }
    if (f->mode == FETCH_PASS && req->entity.base != NULL) {
        char cl[40];
        int n = snprintf(cl, sizeof(cl), "content-length: %zu\r\n", req->entity.len);
        APPEND(cl, (size_t)n);
        /* borrowed, not copied: h2o holds the body until the request is disposed, and a passed
         * fetch never outlives its request before the origin's head (after which the origin
         * client never sends it again); see fetch_on_client_gone */
        f->reqbufs[3] = h2o_iovec_init(req->entity.base, req->entity.len);
    }
    APPEND("\r\n", 2);
#undef APPEND
    assert((size_t)(p - buf) <= cap);
    f->head = buf;
    f->reqbufs[0] = h2o_iovec_init(buf, request_line_len);
    f->reqbufs[2] = h2o_iovec_init(buf + request_line_len, (size_t)(p - buf) - request_line_len);
    hr_list_dispose(&list);
    free(written);
}

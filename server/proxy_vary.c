/*
 * server/proxy_vary.c — the request's headers as the cache reads them: the header lookups
 * (hr_lookup_cb over a live request, over a fetch's copy of it, over either as the origin gets
 * it, or over nothing), one field from its many lines, and the Vary secondary key.
 *
 * A URL whose responses vary has a small "vary index" object under its hash that names the
 * varying request headers; the variant is looked up under obj_variant_hash(key, the key
 * proxy_vary_key builds from the request). The key is "name:value\n" per named header in the
 * order named, values trimmed, Accept-Encoding folded to br, gzip or nothing (the origin is
 * asked with the folded value too, so a stored variant always matches its key). An absent
 * header differs from an empty one, but for the folded Accept-Encoding. A key that does not
 * fit VARY_KEY_MAX is not cached.
 *
 * The values keyed are those a cache fill sends the origin, not the client's (RFC 9111 4.1:
 * the response answers what the origin was sent): proxy_lookup_as_sent reads the request
 * through proxy_origin.c's proxy_written_field and proxy_forwarded_client_field, the functions
 * the origin request is built with, then the request-phase rules. At store time it reads the
 * fetch's copy under the rules the fetch was sent with; at lookup and for a collapsed waiter,
 * the live request under the live rules. Otherwise an origin that varies on X-Forwarded-For
 * would have one client's answer stored under "no X-Forwarded-For" and served to all.
 *
 * Pure functions of their arguments (proxy_object_fits_request reads the live request);
 * any thread.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include "common/alloc.h"
#include "server/cache_policy.h"
#include "server/proxy_int.h"

/* hr_lookup_cb over a request copy */
const char *proxy_lookup_in_copy(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    const req_copy_t *rc = ctx;
    for (size_t i = 0; i != rc->num_headers; ++i) {
        if (rc->headers[i].name_len == name_len && memcmp(rc->headers[i].name, name, name_len) == 0) {
            *value_len = rc->headers[i].value_len;
            return rc->headers[i].value;
        }
    }
    return NULL;
}

/* hr_lookup_cb that finds nothing: the Vary key of the names alone */
const char *proxy_lookup_none(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    (void)ctx, (void)name, (void)name_len, (void)value_len;
    return NULL;
}

/* hr_lookup_cb over a live h2o request */
const char *proxy_lookup_in_req(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    h2o_req_t *req = ctx;
    ssize_t i = h2o_find_header_by_str(&req->headers, name, name_len, -1);
    if (i == -1)
        return NULL;
    *value_len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

/* ---------------------------------------------------------------- the request as the origin gets it */

void proxy_sent_view_of_copy(proxy_sent_view_t *v, const req_copy_t *rc, const header_rules_t *rules)
{
    *v = (proxy_sent_view_t){.client = proxy_lookup_in_copy,
                             .client_ctx = (void *)rc,
                             .path = rc->path,
                             .path_len = rc->path_len,
                             .authority = rc->authority,
                             .authority_len = rc->authority_len,
                             .rules = rules,
                             .conn = &rc->conn};
}

void proxy_sent_view_of_req(proxy_sent_view_t *v, h2o_req_t *req)
{
    *v = (proxy_sent_view_t){.client = proxy_lookup_in_req,
                             .client_ctx = req,
                             .path = req->path.base,
                             .path_len = req->path.len,
                             .authority = req->authority.base,
                             .authority_len = req->authority.len,
                             .rules = proxy_live_rules(),
                             .req = req};
}

void proxy_sent_view_dispose(proxy_sent_view_t *v)
{
    free(v->written);
    free(v->joined);
    v->written = v->joined = NULL;
    v->written_cap = v->joined_cap = 0;
}

/* *buf with room for at least cap bytes (its contents are not kept) */
static char *scratch_at_least(char **buf, size_t *buf_cap, size_t cap)
{
    if (*buf_cap < cap) {
        free(*buf);
        *buf = alloc_xmalloc(cap, "proxy");
        *buf_cap = cap;
    }
    return *buf;
}

/* the view's connection: a live request's is read on first need (most Vary names need none) */
static const proxy_conn_facts_t *view_conn(proxy_sent_view_t *v)
{
    if (v->conn == NULL) {
        assert(v->req != NULL);
        proxy_conn_facts_init(&v->conn_buf, v->req);
        v->conn = &v->conn_buf;
    }
    return v->conn;
}

/* field `name` as `sent` (NULL: none) after the request-phase rules, its lines joined by ", " into v->joined */
static const char *apply_request_rules(proxy_sent_view_t *v, const char *name, size_t name_len, const char *sent, size_t *len)
{
    hr_list_t list = {0};
    if (sent != NULL)
        hr_list_push(&list, name, name_len, sent, *len);
    /* the rules' conditions read the client's headers, as when the origin request is built */
    header_rules_apply(v->rules, HR_PHASE_REQUEST, &list, v->path, v->path_len, v->client, v->client_ctx);
    size_t total = 0;
    for (size_t i = 0; i != list.size; ++i)
        if (list.entries[i].name_len == name_len && memcmp(list.entries[i].name, name, name_len) == 0)
            total += list.entries[i].value_len + 2;
    const char *out = NULL;
    *len = 0;
    if (total != 0) {
        char *p = scratch_at_least(&v->joined, &v->joined_cap, total);
        int first = 1;
        for (size_t i = 0; i != list.size; ++i) {
            const obj_header_t *h = &list.entries[i];
            if (h->name_len != name_len || memcmp(h->name, name, name_len) != 0)
                continue;
            if (!first)
                *p++ = ',', *p++ = ' ';
            first = 0;
            memcpy(p, h->value, h->value_len);
            p += h->value_len;
        }
        *len = (size_t)(p - v->joined);
        out = v->joined;
    }
    hr_list_dispose(&list);
    return out;
}

const char *proxy_lookup_as_sent(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    proxy_sent_view_t *v = ctx;
    size_t client_len = 0, len = 0;
    const char *client = v->client(v->client_ctx, name, name_len, &client_len), *sent = NULL;
    if (proxy_name_is(name, name_len, "host")) {
        /* the origin's Host (a backend that overrides it sends one Host for all: this only keys finer) */
        sent = v->authority, len = v->authority_len;
    } else if (proxy_field_is_written(name, name_len)) {
        size_t cap = PROXY_WRITTEN_FIELD_CAP(v->authority_len);
        char *buf = scratch_at_least(&v->written, &v->written_cap, cap);
        if (proxy_written_field(name, name_len, view_conn(v), v->authority, v->authority_len, client, client_len, buf, cap,
                                &len) == PROXY_FIELD_WRITTEN)
            sent = buf;
    } else if (client != NULL && !proxy_forwarded_client_field(name, name_len, client, client_len, FETCH_CACHE, &sent, &len)) {
        sent = NULL, len = 0;
    }
    if (v->rules != NULL && v->rules->count_by_phase[HR_PHASE_REQUEST] != 0)
        sent = apply_request_rules(v, name, name_len, sent, &len);
    *value_len = len;
    return sent;
}

/*
 * The non-empty values of every `name` line among headers (lower-case names), joined by
 * `sep` in order: one field however many lines it came on (RFC 9110 5.3). Returns a new
 * NUL-terminated string (the caller frees it) and its length, or NULL when there is none.
 */
char *proxy_join_field_lines(const obj_header_t *headers, size_t n, const char *name, char sep, size_t *len_out)
{
    size_t name_len = strlen(name), total = 0, count = 0;
    for (size_t i = 0; i != n; ++i)
        if (headers[i].name_len == name_len && memcmp(headers[i].name, name, name_len) == 0 && headers[i].value_len != 0)
            total += headers[i].value_len + 1, ++count;
    *len_out = 0;
    if (count == 0)
        return NULL;
    char *out = malloc(total), *p = out;
    if (out == NULL)
        abort();
    for (size_t i = 0; i != n; ++i) {
        if (headers[i].name_len != name_len || memcmp(headers[i].name, name, name_len) != 0 || headers[i].value_len == 0)
            continue;
        if (p != out)
            *p++ = sep;
        memcpy(p, headers[i].value, headers[i].value_len);
        p += headers[i].value_len;
    }
    *p = '\0';
    *len_out = (size_t)(p - out);
    return out;
}

/* ---------------------------------------------------------------- Vary */

/*
 * The secondary key of a request for a response that varies on `names` (the Vary
 * field value): "name:value\n" per named header, in the order named. Accept-Encoding
 * is normalized to br, gzip or nothing, so the thousand spellings browsers send fall
 * into three variants. Returns the length, or SIZE_MAX when it does not fit (not cached).
 */
size_t proxy_vary_key(const char *names, size_t names_len, hr_lookup_cb lookup, void *ctx, char *buf, size_t cap)
{
    size_t out = 0, i = 0;
    while (i < names_len) {
        while (i < names_len && (names[i] == ' ' || names[i] == '\t' || names[i] == ','))
            ++i;
        size_t start = i;
        while (i < names_len && names[i] != ',' && names[i] != ' ' && names[i] != '\t')
            ++i;
        size_t len = i - start;
        if (len == 0)
            continue;
        char lname[128];
        if (len >= sizeof(lname))
            return SIZE_MAX;
        for (size_t k = 0; k != len; ++k)
            lname[k] = (char)tolower((unsigned char)names[start + k]);
        size_t vlen = 0;
        const char *v = lookup(ctx, lname, len, &vlen);
        const char *norm = v;
        size_t norm_len = vlen;
        if (v != NULL) {
            while (norm_len > 0 && (norm[0] == ' ' || norm[0] == '\t'))
                ++norm, --norm_len;
            while (norm_len > 0 && (norm[norm_len - 1] == ' ' || norm[norm_len - 1] == '\t'))
                --norm_len;
        }
        if (len == 15 && memcmp(lname, "accept-encoding", 15) == 0) {
            norm = v != NULL ? policy_normalize_accept_encoding(v, vlen) : "";
            norm_len = strlen(norm);
        }
        if (out + len + norm_len + 3 > cap)
            return SIZE_MAX;
        memcpy(buf + out, lname, len);
        out += len;
        /* absent differs from empty, except for the normalized Accept-Encoding */
        buf[out++] = v != NULL || len == 15 ? ':' : '!';
        if (norm_len != 0)
            memcpy(buf + out, norm, norm_len);
        out += norm_len;
        buf[out++] = '\n';
    }
    return out;
}

/* does the object fit this request (same variant)? used for collapsed waiters */
int proxy_object_fits_request(h2o_req_t *req, const cache_obj_t *obj)
{
    if (obj->vary_len == 0)
        return 1;
    size_t names_len;
    char *names = proxy_join_field_lines(obj->headers, obj->num_headers, "vary", ',', &names_len);
    char vbuf[VARY_KEY_MAX];
    proxy_sent_view_t view;
    proxy_sent_view_of_req(&view, req);
    size_t vlen = names != NULL ? proxy_vary_key(names, names_len, proxy_lookup_as_sent, &view, vbuf, sizeof(vbuf)) : SIZE_MAX;
    proxy_sent_view_dispose(&view);
    free(names);
    return vlen == obj->vary_len && memcmp(vbuf, obj->vary, vlen) == 0;
}

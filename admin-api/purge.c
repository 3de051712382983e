/*
 * admin-api/purge.c — the purge endpoints of the admin API (Fastly's shapes): their paths,
 * keys and bodies, checked and turned into purge jobs. The work (ids, the store, the shield,
 * the answer) is the purge module's (server/purge.c): each handler builds one job, names
 * what it purges, asks for it to be forwarded to the shield alongside the local purge (the
 * request's own path, Surrogate-Key and body), and submits it on its admin loop's purge_loop
 * with purge_request_submit, which answers the request once the purge is durable.
 *
 * The token and its scope were checked by the router (admin.c) before any of this runs; the
 * module's authorizer lets PURGE_FROM_ADMIN through.
 *
 * Threads: the thread of the request's admin loop.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "admin-api/admin_int.h"
#include "server/purge.h"
#include "server/text.h"

/* forward the purge to the shield as the admin received it, and submit it on this admin loop */
static void submit(admin_t *admin, h2o_req_t *req, purge_job_t *job)
{
    admin_loop_t *loop = admin_loop_of(admin, req->conn->ctx);
    assert(loop != NULL); /* the purge routes are served on the admin loops only */
    const h2o_iovec_t *sk = admin_find_header(req, H2O_STRLIT("surrogate-key"));
    purge_job_forward(job, PURGE_FORWARD_WITH_LOCAL, req->path.base, req->path.len, sk != NULL ? sk->base : NULL,
                      sk != NULL ? sk->len : 0, req->entity.base, req->entity.base != NULL ? req->entity.len : 0);
    purge_request_submit(job, &loop->purges, req);
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
    job = purge_job_new(PURGE_KEY, purge_request_wants_soft(req), PURGE_FROM_ADMIN);
    purge_job_add_key(job, buf, (size_t)n);
    submit(admin, req, job);
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
            snprintf(detail, sizeof(detail),
                     "surrogate_keys: give a Surrogate-Key header or a JSON body {\"surrogate_keys\":[...]}");
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

    purge_job_t *job = purge_job_new(PURGE_KEYS, purge_request_wants_soft(req), PURGE_FROM_ADMIN);
    for (size_t i = 0; i < keys->n; i++)
        purge_job_add_key(job, keys->k[i], keys->len[i]);
    json_decref(doc); /* the keys were copied into the job */
    submit(admin, req, job);
    return 0;
bad:
    json_decref(doc);
    bad_request(req, detail);
    return 0;
}

int admin_purge_everything(admin_t *admin, h2o_req_t *req)
{
    submit(admin, req, purge_job_new(PURGE_ALL, 0, PURGE_FROM_ADMIN)); /* purge_all is never soft */
    return 0;
}

int admin_purge_url(admin_t *admin, h2o_req_t *req, const char *target, size_t len)
{
    char detail[160];
    const char *host;
    size_t host_len, path_len, pathcap = len + 2;
    char *path = h2o_mem_alloc_pool(&req->pool, pathcap);

    if (admin_parse_url_target(target, len, &host, &host_len, path, pathcap, &path_len, detail, sizeof(detail)) != 0) {
        bad_request(req, detail);
        return 0;
    }
    /* keyed by the proxy's own rules (purge_job_add_url), so that it names what a request stored */
    purge_job_t *job = purge_job_new(PURGE_URL, purge_request_wants_soft(req), PURGE_FROM_ADMIN);
    if (purge_job_add_url(job, host, host_len, path, path_len) != 0) {
        purge_job_discard(&job);
        bad_request(req, "url: too long");
        return 0;
    }
    submit(admin, req, job);
    return 0;
}

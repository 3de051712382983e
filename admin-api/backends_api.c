/*
 * admin-api/backends_api.c — the origin endpoints of the admin API: backends, health
 * checks and the load-balancing mode (see backends_api.h for the routes).
 *
 * What it owns: nothing that outlives a request. Each write takes a copy of the live origin
 * configuration (backend_config_get), changes the copy, and hands the whole of it to
 * backend_config_commit, which validates, resolves, persists and swaps it in — or changes
 * nothing. So a bad value (unknown health check, port out of range, duplicate name, weight
 * < 0, unknown field) gets a 400 naming the field and leaves no trace.
 *
 * Threads: the admin thread only (one request at a time), so the copy-change-commit sequence
 * cannot interleave with another write.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "admin-api/admin_ext.h"
#include "admin-api/admin_int.h"
#include "admin-api/backends_api.h"
#include "server/backend.h"
#include "server/text.h"

typedef enum { KIND_BACKEND, KIND_HEALTHCHECK, KIND_LB } api_kind_t;

enum { M_GET = ADMIN_M_GET, M_POST = ADMIN_M_POST, M_PUT = ADMIN_M_PUT, M_DELETE = ADMIN_M_DELETE };

typedef struct api_route {
    api_kind_t kind;
    int item;            /* .../<name> */
    h2o_iovec_t sid;     /* raw */
    h2o_iovec_t version; /* raw */
    h2o_iovec_t name;    /* raw (percent-encoded) */
} api_route_t;

static int starts_with(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len >= n && memcmp(s, lit, n) == 0;
}

/* 0 with *r filled, -1 when the path is not ours */
static int api_route_match(const char *path, size_t len, api_route_t *r)
{
    const char *end = path + len, *p, *slash;

    memset(r, 0, sizeof(*r));
    if (len == strlen("/config/load-balancing") && starts_with(path, len, "/config/load-balancing")) {
        r->kind = KIND_LB;
        return 0;
    }
    if (!starts_with(path, len, "/service/"))
        return -1;
    p = path + 9;
    if ((slash = memchr(p, '/', (size_t)(end - p))) == NULL || slash == p)
        return -1;
    r->sid = h2o_iovec_init(p, (size_t)(slash - p));
    p = slash;
    if (!starts_with(p, (size_t)(end - p), "/version/"))
        return -1;
    p += 9;
    if ((slash = memchr(p, '/', (size_t)(end - p))) == NULL || slash == p)
        return -1;
    r->version = h2o_iovec_init(p, (size_t)(slash - p));
    p = slash + 1;
    size_t rest = (size_t)(end - p);
    const char *what = NULL;
    if (starts_with(p, rest, "backend")) {
        r->kind = KIND_BACKEND;
        what = "backend";
    } else if (starts_with(p, rest, "healthcheck")) {
        r->kind = KIND_HEALTHCHECK;
        what = "healthcheck";
    } else {
        return -1;
    }
    p += strlen(what);
    if (p == end)
        return 0;
    if (*p != '/' || p + 1 == end || memchr(p + 1, '/', (size_t)(end - p - 1)) != NULL)
        return -1;
    r->item = 1;
    r->name = h2o_iovec_init(p + 1, (size_t)(end - p - 1));
    return 0;
}

static void send_bad(h2o_req_t *req, const char *detail)
{
    admin_send_json_error(req, 400, "Bad request", detail);
}

/* the request body as a JSON object: a JSON body, or form fields as strings; NULL once answered */
static json_t *body_or_respond(h2o_req_t *req)
{
    char detail[300];
    json_t *doc = NULL;

    if (req->entity.base == NULL || req->entity.len == 0) {
        send_bad(req, "body: required (a JSON object or form fields)");
        return NULL;
    }
    const h2o_iovec_t *ct = admin_find_header(req, H2O_STRLIT("content-type"));
    size_t first = 0;
    while (first < req->entity.len && (req->entity.base[first] == ' ' || req->entity.base[first] == '\t' ||
                                       req->entity.base[first] == '\r' || req->entity.base[first] == '\n'))
        first++;
    /* form fields, unless it is plainly a JSON object sent with curl -d's default type */
    if (ct != NULL && ct->len >= 33 && h2o_lcstris(ct->base, 33, H2O_STRLIT("application/x-www-form-urlencoded")) &&
        !(first < req->entity.len && req->entity.base[first] == '{')) {
        if (backend_form_to_json(req->entity.base, req->entity.len, &doc, detail, sizeof(detail)) != 0) {
            send_bad(req, detail);
            return NULL;
        }
        return doc;
    }
    json_error_t jerr;
    if ((doc = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        snprintf(detail, sizeof(detail), "body: invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        send_bad(req, detail);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        send_bad(req, "body: must be a JSON object");
        return NULL;
    }
    return doc;
}

/* the version segment as Fastly echoes it: a number when it is one */
static json_t *version_json(h2o_iovec_t v)
{
    int digits = v.len > 0 && v.len <= 9;
    for (size_t i = 0; digits && i != v.len; ++i)
        digits = v.base[i] >= '0' && v.base[i] <= '9';
    if (digits) {
        json_int_t n = 0;
        for (size_t i = 0; i != v.len; ++i)
            n = n * 10 + (v.base[i] - '0');
        return json_integer(n);
    }
    char buf[80];
    ssize_t n = admin_percent_decode(v.base, v.len, buf, sizeof(buf) - 1);
    json_t *s = n > 0 ? json_stringn(buf, (size_t)n) : NULL;
    return s != NULL ? s : json_string("");
}

static json_t *decorate(json_t *o, admin_t *admin, const api_route_t *r)
{
    if (r->kind != KIND_LB) {
        json_object_set_new(o, "service_id", json_string(admin->cfg->service_id));
        json_object_set_new(o, "version", version_json(r->version));
    }
    return o;
}

static int commit_or_respond(h2o_req_t *req, const backend_config_t *next)
{
    char detail[400];
    int rc = backend_config_commit(next, detail, sizeof(detail));
    if (rc == 0)
        return 0;
    if (rc == BACKEND_EINVAL)
        send_bad(req, detail);
    else
        admin_send_json_error(req, 500, "Could not save the configuration", detail);
    return -1;
}

/*
 * The two lists these endpoints edit, backends and health checks, differ only in what
 * is below; creating, reading, updating and deleting is one function (handle_list).
 */
typedef struct api_list {
    const char *record; /* in a 404: "Couldn't find <record> '<name>'" */
    const char *noun;   /* in a 400: "a <noun> named ... already exists", "too many <noun>s" */
    size_t max, count_off, items_off, item_size, name_off; /* where in backend_config_t */
    json_t *(*to_json)(const void *item);
    /* defaults (item_or_null NULL) or a copy of the item, with doc applied, into scratch; 0 or a 400 detail
     * (scratch then owns nothing) */
    int (*apply)(const void *item_or_null, const json_t *doc, void *scratch, char *detail, size_t len);
    /* free what an item owns (a backend's PEM strings; NULL: items own nothing) */
    void (*release)(void *item);
    /* before the item at i is renamed to new_name (NULL: nothing follows a rename) */
    void (*renaming)(backend_config_t *c, size_t i, const char *new_name);
    /* 0, or a 400 detail: the item at i may not go (NULL: always may) */
    int (*deletable)(const backend_config_t *c, size_t i, char *detail, size_t len);
} api_list_t;

static size_t *list_count(const api_list_t *l, backend_config_t *c)
{
    return (size_t *)((char *)c + l->count_off);
}

static char *list_item(const api_list_t *l, backend_config_t *c, size_t i)
{
    return (char *)c + l->items_off + i * l->item_size;
}

static size_t list_find(const api_list_t *l, backend_config_t *c, const char *name)
{
    for (size_t i = 0; i != *list_count(l, c); ++i)
        if (strcmp(list_item(l, c, i) + l->name_off, name) == 0)
            return i;
    return SIZE_MAX;
}

static json_t *backend_item_to_json(const void *item)
{
    return backend_conf_to_json(item);
}

static int backend_item_apply(const void *item_or_null, const json_t *doc, void *scratch, char *detail, size_t len)
{
    backend_conf_t *conf = scratch;
    if (item_or_null == NULL)
        backend_conf_defaults(conf);
    else
        backend_conf_copy(conf, item_or_null);
    if (backend_conf_apply_json(conf, doc, detail, len) != 0) {
        backend_conf_release(conf);
        return -1;
    }
    if (conf->name[0] != '\0' && conf->address[0] == '\0') { /* (a missing name is reported first) */
        snprintf(detail, len, "address: required");
        backend_conf_release(conf);
        return -1;
    }
    return 0;
}

static void backend_item_release(void *item)
{
    backend_conf_release(item);
}

static json_t *healthcheck_item_to_json(const void *item)
{
    return backend_healthcheck_to_json(item);
}

static int healthcheck_item_apply(const void *item_or_null, const json_t *doc, void *scratch, char *detail, size_t len)
{
    backend_healthcheck_conf_t *hc = scratch;
    if (item_or_null == NULL)
        backend_healthcheck_defaults(hc);
    else
        *hc = *(const backend_healthcheck_conf_t *)item_or_null;
    return backend_healthcheck_apply_json(hc, doc, detail, len) != 0 ? -1 : 0;
}

/* the backends using a renamed health check follow it */
static void healthcheck_renaming(backend_config_t *c, size_t i, const char *new_name)
{
    for (size_t k = 0; k != c->num_backends; ++k)
        if (strcmp(c->backends[k].healthcheck, c->healthchecks[i].name) == 0)
            snprintf(c->backends[k].healthcheck, sizeof(c->backends[k].healthcheck), "%s", new_name);
}

static int healthcheck_deletable(const backend_config_t *c, size_t i, char *detail, size_t len)
{
    for (size_t k = 0; k != c->num_backends; ++k)
        if (strcmp(c->backends[k].healthcheck, c->healthchecks[i].name) == 0) {
            snprintf(detail, len, "name: health check '%s' is used by backend '%s'", c->healthchecks[i].name,
                     c->backends[k].name);
            return -1;
        }
    return 0;
}

static const api_list_t backends_list = {
    .record = "Backend",
    .noun = "backend",
    .max = BACKEND_MAX,
    .count_off = offsetof(backend_config_t, num_backends),
    .items_off = offsetof(backend_config_t, backends),
    .item_size = sizeof(backend_conf_t),
    .name_off = offsetof(backend_conf_t, name),
    .to_json = backend_item_to_json,
    .apply = backend_item_apply,
    .release = backend_item_release,
};

static const api_list_t healthchecks_list = {
    .record = "Healthcheck",
    .noun = "health check",
    .max = BACKEND_MAX_HEALTHCHECKS,
    .count_off = offsetof(backend_config_t, num_healthchecks),
    .items_off = offsetof(backend_config_t, healthchecks),
    .item_size = sizeof(backend_healthcheck_conf_t),
    .name_off = offsetof(backend_healthcheck_conf_t, name),
    .to_json = healthcheck_item_to_json,
    .apply = healthcheck_item_apply,
    .renaming = healthcheck_renaming,
    .deletable = healthcheck_deletable,
};

static void send_not_found(h2o_req_t *req, const char *what, const char *name)
{
    /* the name comes percent-decoded from the path: any bytes */
    char detail[4 * BACKEND_NAME_MAX + 64], shown[4 * BACKEND_NAME_MAX + 8];
    snprintf(detail, sizeof(detail), "Couldn't find %s '%s'", what, text_escape(shown, sizeof(shown), name, strlen(name)));
    admin_send_json_error(req, 404, "Record not found", detail);
}

static void handle_list(admin_t *admin, h2o_req_t *req, unsigned method, const api_route_t *r, const char *name,
                        backend_config_t *c, const api_list_t *l)
{
    char detail[400];
    size_t i = r->item ? list_find(l, c, name) : SIZE_MAX, *count = list_count(l, c);
    union {
        backend_conf_t backend;
        backend_healthcheck_conf_t healthcheck;
    } scratch;
    json_t *doc;

    if (r->item && i == SIZE_MAX) {
        send_not_found(req, l->record, name);
        return;
    }
    switch (method) {
    case M_GET:
        if (r->item) {
            admin_send_json_value(req, 200, decorate(l->to_json(list_item(l, c, i)), admin, r));
        } else {
            json_t *arr = json_array();
            for (size_t k = 0; k != *count; ++k)
                json_array_append_new(arr, decorate(l->to_json(list_item(l, c, k)), admin, r));
            admin_send_json_value(req, 200, arr);
        }
        return;
    case M_POST:
    case M_PUT:
        if ((doc = body_or_respond(req)) == NULL)
            return;
        if (l->apply(method == M_POST ? NULL : list_item(l, c, i), doc, &scratch, detail, sizeof(detail)) != 0) {
            json_decref(doc);
            send_bad(req, detail);
            return;
        }
        json_decref(doc);
        const char *new_name = (const char *)&scratch + l->name_off;
        size_t other = new_name[0] != '\0' ? list_find(l, c, new_name) : SIZE_MAX;
        if (new_name[0] == '\0') {
            snprintf(detail, sizeof(detail), "name: required");
        } else if (other != SIZE_MAX && other != i) {
            snprintf(detail, sizeof(detail), "name: a %s named '%s' already exists", l->noun, new_name);
        } else if (method == M_POST && *count == l->max) {
            snprintf(detail, sizeof(detail), "name: too many %ss (at most %zu)", l->noun, l->max);
        } else {
            detail[0] = '\0';
        }
        if (detail[0] != '\0') {
            send_bad(req, detail);
            if (l->release != NULL)
                l->release(&scratch);
            return;
        }
        if (method == M_POST) {
            i = (*count)++;
        } else {
            if (l->renaming != NULL && strcmp(list_item(l, c, i) + l->name_off, new_name) != 0)
                l->renaming(c, i, new_name);
            if (l->release != NULL)
                l->release(list_item(l, c, i)); /* replaced by scratch, which owns its own copies */
        }
        memcpy(list_item(l, c, i), &scratch, l->item_size); /* scratch's strings move into c */
        if (commit_or_respond(req, c) == 0)
            admin_send_json_value(req, 200, decorate(l->to_json(list_item(l, c, i)), admin, r));
        return;
    case M_DELETE:
        if (l->deletable != NULL && l->deletable(c, i, detail, sizeof(detail)) != 0) {
            send_bad(req, detail);
            return;
        }
        if (l->release != NULL)
            l->release(list_item(l, c, i));
        memmove(list_item(l, c, i), list_item(l, c, i + 1), (*count - i - 1) * l->item_size); /* ownership moves down */
        (*count)--;
        if (commit_or_respond(req, c) == 0)
            admin_send_json(req, 200, H2O_STRLIT("{\"status\":\"ok\"}"));
        return;
    }
}

static void handle_lb(h2o_req_t *req, unsigned method, backend_config_t *c)
{
    json_t *doc, *v;
    const char *key;

    if (method == M_PUT) {
        if ((doc = body_or_respond(req)) == NULL)
            return;
        backend_lb_t lb = c->load_balancing;
        int seen = 0;
        json_object_foreach (doc, key, v) {
            if (strcmp(key, "load_balancing") != 0) {
                char detail[160], shown[72];
                snprintf(detail, sizeof(detail), "%s: unknown field (known: load_balancing)",
                         text_escape(shown, sizeof(shown), key, strlen(key)));
                json_decref(doc);
                send_bad(req, detail);
                return;
            }
            if (!json_is_string(v) || backend_lb_parse(json_string_value(v), &lb) != 0) {
                json_decref(doc);
                send_bad(req, "load_balancing: must be \"round_robin\", \"hash\" or \"first\"");
                return;
            }
            seen = 1;
        }
        json_decref(doc);
        if (!seen) {
            send_bad(req, "load_balancing: required");
            return;
        }
        c->load_balancing = lb;
        c->load_balancing_stored = 1;
        if (commit_or_respond(req, c) != 0)
            return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "load_balancing", json_string(backend_lb_name(c->load_balancing)));
    admin_send_json_value(req, 200, o);
}

static int sid_matches(admin_t *admin, h2o_iovec_t raw)
{
    char sid[sizeof(admin->cfg->service_id)];
    ssize_t n = admin_percent_decode(raw.base, raw.len, sid, sizeof(sid) - 1);
    return n >= 0 && (size_t)n == strlen(admin->cfg->service_id) && memcmp(sid, admin->cfg->service_id, (size_t)n) == 0;
}

static unsigned allowed_methods(const api_route_t *r)
{
    return r->kind == KIND_LB ? (M_GET | M_PUT) : r->item ? (M_GET | M_PUT | M_DELETE) : (M_GET | M_POST);
}

static unsigned needed_scopes(unsigned method)
{
    return method == M_GET ? (ADMIN_SCOPE_GLOBAL | ADMIN_SCOPE_GLOBAL_READ) : ADMIN_SCOPE_GLOBAL;
}

/* after auth: the service id, the name, then the handler */
static void serve(admin_t *admin, h2o_req_t *req, unsigned method, const api_route_t *r)
{
    char detail[200], name[BACKEND_NAME_MAX + 1] = "";

    if (r->kind != KIND_LB && !sid_matches(admin, r->sid)) {
        char shown[80];
        size_t n = 0;
        for (size_t i = 0; i < r->sid.len && n < 64; i++)
            shown[n++] = (r->sid.base[i] > 0x20 && r->sid.base[i] < 0x7f) ? r->sid.base[i] : '?';
        shown[n] = '\0';
        snprintf(detail, sizeof(detail), "Cannot find service '%s'", shown);
        admin_send_json_error(req, 404, "Record not found", detail);
        return;
    }
    if (r->item) {
        ssize_t n = admin_percent_decode(r->name.base, r->name.len, name, sizeof(name) - 1);
        if (n <= 0) {
            admin_send_json_error(req, 404, "Record not found", "no object with that name");
            return;
        }
        name[n] = '\0';
    }
    backend_config_t *c = backend_config_get();
    if (c == NULL) {
        admin_send_json_error(req, 503, "Not ready", "the origin configuration is not loaded yet");
        return;
    }
    switch (r->kind) {
    case KIND_BACKEND: handle_list(admin, req, method, r, name, c, &backends_list); break;
    case KIND_HEALTHCHECK: handle_list(admin, req, method, r, name, c, &healthchecks_list); break;
    case KIND_LB: handle_lb(req, method, c); break;
    }
    backend_config_free(c);
}

/* ---- the admin_ext.h route (the router does 405, auth and scopes) ---- */

static int ext_match(const char *path, size_t len, unsigned *methods)
{
    api_route_t r;
    if (api_route_match(path, len, &r) != 0)
        return 0;
    *methods = allowed_methods(&r);
    return 1;
}

static unsigned ext_scopes(const char *path, size_t len, unsigned method)
{
    (void)path, (void)len;
    return needed_scopes(method);
}

static void ext_handle(admin_t *admin, h2o_req_t *req, unsigned method, const char *path, size_t len)
{
    api_route_t r;
    if (api_route_match(path, len, &r) != 0) {
        admin_send_json_error(req, 404, "Not found", "no such endpoint");
        return;
    }
    serve(admin, req, method, &r);
}

const admin_ext_route_t admin_backends_route = {"backends", ext_match, ext_scopes, ext_handle};

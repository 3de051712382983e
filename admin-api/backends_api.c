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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "admin-api/admin_ext.h"
#include "admin-api/admin_int.h"
#include "admin-api/backends_api.h"
#include "server/backend.h"

typedef enum { KIND_BACKEND, KIND_HEALTHCHECK, KIND_LB } api_kind_t;

enum { M_GET = ADMIN_M_GET, M_POST = ADMIN_M_POST, M_PUT = ADMIN_M_PUT, M_DELETE = ADMIN_M_DELETE };

typedef struct api_route {
    api_kind_t kind;
    int item;          /* .../<name> */
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

static size_t find_backend(const backend_config_t *c, const char *name)
{
    for (size_t i = 0; i != c->num_backends; ++i)
        if (strcmp(c->backends[i].name, name) == 0)
            return i;
    return SIZE_MAX;
}

static size_t find_healthcheck(const backend_config_t *c, const char *name)
{
    for (size_t i = 0; i != c->num_healthchecks; ++i)
        if (strcmp(c->healthchecks[i].name, name) == 0)
            return i;
    return SIZE_MAX;
}

static void send_not_found(h2o_req_t *req, const char *what, const char *name)
{
    char detail[BACKEND_NAME_MAX + 64];
    snprintf(detail, sizeof(detail), "Couldn't find %s '%s'", what, name);
    admin_send_json_error(req, 404, "Record not found", detail);
}

static void handle_backends(admin_t *admin, h2o_req_t *req, unsigned method, const api_route_t *r, const char *name,
                            backend_config_t *c)
{
    char detail[400];
    size_t i = r->item ? find_backend(c, name) : SIZE_MAX;
    backend_conf_t conf;
    json_t *doc;

    if (r->item && i == SIZE_MAX) {
        send_not_found(req, "Backend", name);
        return;
    }
    switch (method) {
    case M_GET:
        if (r->item) {
            admin_send_json_value(req, 200, decorate(backend_conf_to_json(&c->backends[i]), admin, r));
        } else {
            json_t *arr = json_array();
            for (size_t k = 0; k != c->num_backends; ++k)
                json_array_append_new(arr, decorate(backend_conf_to_json(&c->backends[k]), admin, r));
            admin_send_json_value(req, 200, arr);
        }
        return;
    case M_POST:
    case M_PUT:
        if ((doc = body_or_respond(req)) == NULL)
            return;
        if (method == M_POST)
            backend_conf_defaults(&conf);
        else
            conf = c->backends[i];
        if (backend_conf_apply_json(&conf, doc, detail, sizeof(detail)) != 0) {
            json_decref(doc);
            send_bad(req, detail);
            return;
        }
        json_decref(doc);
        if (conf.name[0] == '\0') {
            send_bad(req, "name: required");
            return;
        }
        if (conf.address[0] == '\0') {
            send_bad(req, "address: required");
            return;
        }
        size_t other = find_backend(c, conf.name);
        if (other != SIZE_MAX && other != i) {
            snprintf(detail, sizeof(detail), "name: a backend named '%s' already exists", conf.name);
            send_bad(req, detail);
            return;
        }
        if (method == M_POST) {
            if (c->num_backends == BACKEND_MAX) {
                snprintf(detail, sizeof(detail), "name: too many backends (at most %d)", BACKEND_MAX);
                send_bad(req, detail);
                return;
            }
            i = c->num_backends++;
        }
        c->backends[i] = conf;
        if (commit_or_respond(req, c) == 0)
            admin_send_json_value(req, 200, decorate(backend_conf_to_json(&conf), admin, r));
        return;
    case M_DELETE:
        memmove(&c->backends[i], &c->backends[i + 1], (c->num_backends - i - 1) * sizeof(c->backends[0]));
        c->num_backends--;
        if (commit_or_respond(req, c) == 0)
            admin_send_json(req, 200, H2O_STRLIT("{\"status\":\"ok\"}"));
        return;
    }
}

static void handle_healthchecks(admin_t *admin, h2o_req_t *req, unsigned method, const api_route_t *r, const char *name,
                                backend_config_t *c)
{
    char detail[400];
    size_t i = r->item ? find_healthcheck(c, name) : SIZE_MAX;
    backend_healthcheck_conf_t hc;
    json_t *doc;

    if (r->item && i == SIZE_MAX) {
        send_not_found(req, "Healthcheck", name);
        return;
    }
    switch (method) {
    case M_GET:
        if (r->item) {
            admin_send_json_value(req, 200, decorate(backend_healthcheck_to_json(&c->healthchecks[i]), admin, r));
        } else {
            json_t *arr = json_array();
            for (size_t k = 0; k != c->num_healthchecks; ++k)
                json_array_append_new(arr, decorate(backend_healthcheck_to_json(&c->healthchecks[k]), admin, r));
            admin_send_json_value(req, 200, arr);
        }
        return;
    case M_POST:
    case M_PUT:
        if ((doc = body_or_respond(req)) == NULL)
            return;
        if (method == M_POST)
            backend_healthcheck_defaults(&hc);
        else
            hc = c->healthchecks[i];
        if (backend_healthcheck_apply_json(&hc, doc, detail, sizeof(detail)) != 0) {
            json_decref(doc);
            send_bad(req, detail);
            return;
        }
        json_decref(doc);
        if (hc.name[0] == '\0') {
            send_bad(req, "name: required");
            return;
        }
        size_t other = find_healthcheck(c, hc.name);
        if (other != SIZE_MAX && other != i) {
            snprintf(detail, sizeof(detail), "name: a health check named '%s' already exists", hc.name);
            send_bad(req, detail);
            return;
        }
        if (method == M_POST) {
            if (c->num_healthchecks == BACKEND_MAX_HEALTHCHECKS) {
                snprintf(detail, sizeof(detail), "name: too many health checks (at most %d)", BACKEND_MAX_HEALTHCHECKS);
                send_bad(req, detail);
                return;
            }
            i = c->num_healthchecks++;
        } else if (strcmp(c->healthchecks[i].name, hc.name) != 0) {
            /* a rename: the backends using it follow */
            for (size_t k = 0; k != c->num_backends; ++k)
                if (strcmp(c->backends[k].healthcheck, c->healthchecks[i].name) == 0)
                    memcpy(c->backends[k].healthcheck, hc.name, sizeof(hc.name));
        }
        c->healthchecks[i] = hc;
        if (commit_or_respond(req, c) == 0)
            admin_send_json_value(req, 200, decorate(backend_healthcheck_to_json(&hc), admin, r));
        return;
    case M_DELETE:
        for (size_t k = 0; k != c->num_backends; ++k)
            if (strcmp(c->backends[k].healthcheck, name) == 0) {
                snprintf(detail, sizeof(detail), "name: health check '%s' is used by backend '%s'", name, c->backends[k].name);
                send_bad(req, detail);
                return;
            }
        memmove(&c->healthchecks[i], &c->healthchecks[i + 1], (c->num_healthchecks - i - 1) * sizeof(c->healthchecks[0]));
        c->num_healthchecks--;
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
                char detail[160];
                snprintf(detail, sizeof(detail), "%.64s: unknown field (known: load_balancing)", key);
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
    case KIND_BACKEND:
        handle_backends(admin, req, method, r, name, c);
        break;
    case KIND_HEALTHCHECK:
        handle_healthchecks(admin, req, method, r, name, c);
        break;
    case KIND_LB:
        handle_lb(req, method, c);
        break;
    }
    free(c);
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

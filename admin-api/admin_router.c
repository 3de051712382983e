/*
 * admin-api/admin_router.c — the admin API's one h2o handler: the route table, the checks
 * every request goes through, the JSON answer helpers, and the small endpoints (health,
 * OpenID discovery, settings, tokens). The listener (admin.c) owns the threads,
 * loops and connections; it registers this handler (admin_router_register) on "/" of the
 * h2o_globalconf_t its contexts share, and the handler routes by method and path itself.
 *
 * Order of checks for a request: body size (413) -> route (404) -> method (405) ->
 * credentials (401) -> service id (404) -> scope (403) -> handler. Every response has
 * Content-Type: application/json; errors are {"msg":...,"detail":...}. Routes served by
 * other files (header rules, backends, stats: admin_ext.h) are tried after the table here
 * and go through the same 405 / auth / scope checks.
 *
 * Threads: a request is served wholly on the thread of the admin loop that accepted its
 * connection. Handlers that read, change and store configuration (settings, tokens, the
 * extension routes) hold config_lock, so that two threads never interleave a
 * read-modify-write. The purge routes hand their work to purge.c, which answers when the
 * store has acknowledged it.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include "admin-api/admin_ext.h"
#include "cluster/cluster.h"
#include "admin-api/cluster_api.h"
#include "server/text.h"
#include "admin-api/admin_int.h"
#include "admin-api/stats_api.h"
#include "admin-api/backends_api.h"

typedef struct admin_handler {
    h2o_handler_t super;
    admin_t *admin;
} admin_handler_t;

/* ---- JSON responses ---- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

void admin_send_json(h2o_req_t *req, int status, const char *json, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (status != 204 && status != 304)
        req->res.content_length = len; /* h2o_send_inline leaves it unset: no chunking */
    h2o_send_inline(req, json, len);   /* copies into req's pool */
}

/* the answer when an answer could not be built: fixed bytes, nothing that can fail */
static void send_fixed_error(h2o_req_t *req, int status)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"msg\":\"%s\",\"detail\":\"the answer could not be encoded\"}", reason_of(status));
    assert(n > 0 && (size_t)n < sizeof(body));
    admin_send_json(req, status, body, (size_t)n);
}

void admin_send_json_value(h2o_req_t *req, int status, json_t *value)
{
    /* a value built from request text can still fail to encode (or memory run out):
     * that is an error answer, never the end of the process */
    char *s = value != NULL ? json_dumps(value, JSON_COMPACT) : NULL;
    json_decref(value);
    if (s == NULL) {
        send_fixed_error(req, status >= 400 ? status : 500);
        return;
    }
    admin_send_json(req, status, s, strlen(s));
    free(s);
}

void admin_send_json_error(h2o_req_t *req, int status, const char *msg, const char *detail)
{
    /* msg and detail may quote request bytes (a field name, a form field, a path segment),
     * perhaps cut in the middle of a character by a "%.64s": jansson refuses text that is
     * not UTF-8, so both are made valid first */
    char safe_msg[256], safe_detail[1024];
    text_escape(safe_msg, sizeof(safe_msg), msg, strlen(msg));
    if (detail != NULL)
        text_escape(safe_detail, sizeof(safe_detail), detail, strlen(detail));
    json_t *o = detail != NULL ? json_pack("{s:s, s:s}", "msg", safe_msg, "detail", safe_detail)
                               : json_pack("{s:s}", "msg", safe_msg);
    if (o == NULL) {
        send_fixed_error(req, status);
        return;
    }
    admin_send_json_value(req, status, o);
}

/* ---- routing ---- */

enum {
    M_GET = 1,
    M_POST = 2,
    M_PUT = 4,
    M_DELETE = 8,
};

typedef enum {
    R_HEALTH,
    R_PURGE_STATUS, /* GET /service/<sid>/purge/<id>/status (admin-api/cluster_api.c) */
    R_OPENID,
    R_PURGE_KEY,
    R_PURGE_BATCH,
    R_PURGE_ALL,
    R_PURGE_URL,
    R_TOKENS,
    R_TOKEN_SELF,
    R_TOKEN_ONE,
    R_SETTINGS,
} route_id_t;

typedef struct route {
    route_id_t id;
    unsigned methods;
    h2o_iovec_t sid;  /* raw (percent-encoded) service id segment, R_PURGE_* */
    h2o_iovec_t rest; /* raw key (R_PURGE_KEY), url target (R_PURGE_URL), token id (R_TOKEN_ONE) */
} route_t;

static int seg_is(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* Match the path (no query; raw). Returns 0 with *r filled, or -1 for an unknown route. */
static int route_match(const char *path, size_t len, const char *full, size_t full_len, route_t *r)
{
    memset(r, 0, sizeof(*r));
    if (len >= 7 && memcmp(path, "/purge/", 7) == 0) {
        r->id = R_PURGE_URL;
        r->methods = M_POST;
        r->rest = h2o_iovec_init(full + 7, full_len - 7); /* the target keeps its query */
        return 0;
    }
    if (seg_is(path, len, "/health")) {
        r->id = R_HEALTH;
        r->methods = M_GET;
        return 0;
    }
    if (seg_is(path, len, "/realms/fastly/.well-known/openid-configuration")) {
        r->id = R_OPENID;
        r->methods = M_GET;
        return 0;
    }
    if (seg_is(path, len, "/tokens")) {
        r->id = R_TOKENS;
        r->methods = M_GET | M_POST;
        return 0;
    }
    if (seg_is(path, len, "/tokens/self")) {
        r->id = R_TOKEN_SELF;
        r->methods = M_GET;
        return 0;
    }
    if (len > 8 && memcmp(path, "/tokens/", 8) == 0 && memchr(path + 8, '/', len - 8) == NULL) {
        r->id = R_TOKEN_ONE;
        r->methods = M_DELETE;
        r->rest = h2o_iovec_init(path + 8, len - 8);
        return 0;
    }
    if (seg_is(path, len, "/config/settings")) {
        r->id = R_SETTINGS;
        r->methods = M_GET | M_PUT;
        return 0;
    }
    if (len > 9 && memcmp(path, "/service/", 9) == 0) {
        const char *sid = path + 9, *end = path + len;
        const char *slash = memchr(sid, '/', (size_t)(end - sid));
        if (slash == NULL || slash == sid)
            return -1;
        r->sid = h2o_iovec_init(sid, (size_t)(slash - sid));
        const char *tail = slash;
        size_t tail_len = (size_t)(end - tail);
        if (seg_is(tail, tail_len, "/purge_all")) {
            r->id = R_PURGE_ALL;
            r->methods = M_POST;
            return 0;
        }
        if (seg_is(tail, tail_len, "/purge")) {
            r->id = R_PURGE_BATCH;
            r->methods = M_POST;
            return 0;
        }
        if (tail_len > 7 && memcmp(tail, "/purge/", 7) == 0) {
            r->id = R_PURGE_KEY;
            r->methods = M_POST;
            r->rest = h2o_iovec_init(tail + 7, tail_len - 7); /* keys may contain '/' */
            return 0;
        }
    }
    return -1;
}

/* the scopes that may use a route with a method; 0 = no token needed, ~0u = any valid token */
static unsigned route_scopes(route_id_t id, unsigned method)
{
    switch (id) {
    case R_HEALTH:
    case R_OPENID: return 0;
    case R_PURGE_KEY:
    case R_PURGE_BATCH:
    case R_PURGE_URL: return ADMIN_SCOPE_PURGE_SELECT | ADMIN_SCOPE_GLOBAL;
    case R_PURGE_ALL: return ADMIN_SCOPE_PURGE_ALL | ADMIN_SCOPE_GLOBAL;
    case R_PURGE_STATUS: return ADMIN_SCOPE_PURGE_SELECT | ADMIN_SCOPE_GLOBAL | ADMIN_SCOPE_GLOBAL_READ;
    case R_TOKEN_SELF: return ~0u;
    case R_TOKENS:
    case R_TOKEN_ONE: return ADMIN_SCOPE_GLOBAL;
    case R_SETTINGS: return method == M_GET ? (ADMIN_SCOPE_GLOBAL | ADMIN_SCOPE_GLOBAL_READ) : ADMIN_SCOPE_GLOBAL;
    }
    return ADMIN_SCOPE_GLOBAL;
}

static unsigned method_of(h2o_req_t *req)
{
    const h2o_iovec_t m = req->method;
    if (h2o_memis(m.base, m.len, H2O_STRLIT("GET")) || h2o_memis(m.base, m.len, H2O_STRLIT("HEAD")))
        return M_GET;
    if (h2o_memis(m.base, m.len, H2O_STRLIT("POST")))
        return M_POST;
    if (h2o_memis(m.base, m.len, H2O_STRLIT("PUT")))
        return M_PUT;
    if (h2o_memis(m.base, m.len, H2O_STRLIT("DELETE")))
        return M_DELETE;
    return 0;
}

static void send_405(h2o_req_t *req, unsigned allowed)
{
    char allow[40] = "";
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{M_GET, "GET, HEAD"}, {M_POST, "POST"}, {M_PUT, "PUT"}, {M_DELETE, "DELETE"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (allowed & names[i].bit) {
            if (allow[0] != '\0')
                strcat(allow, ", ");
            strcat(allow, names[i].name);
        }
    }
    h2o_iovec_t v = h2o_strdup(&req->pool, allow, SIZE_MAX);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, v.base, v.len);
    admin_send_json_error(req, 405, "Method not allowed", NULL);
}

/* ---- small endpoints ---- */

static void send_openid(h2o_req_t *req)
{
    char base[300];
    const h2o_iovec_t a = req->authority;
    int ok = a.len > 0 && a.len < 256;
    for (size_t i = 0; ok && i < a.len; i++)
        ok = a.base[i] > 0x20 && a.base[i] < 0x7f && a.base[i] != '"' && a.base[i] != '\\';
    if (ok)
        snprintf(base, sizeof(base), "http://%.*s/realms/fastly", (int)a.len, a.base);
    else
        snprintf(base, sizeof(base), "http://localhost/realms/fastly");
    json_t *o = json_object();
    char buf[400];
    json_object_set_new(o, "issuer", json_string(base));
    snprintf(buf, sizeof(buf), "%s/protocol/openid-connect/auth", base);
    json_object_set_new(o, "authorization_endpoint", json_string(buf));
    snprintf(buf, sizeof(buf), "%s/protocol/openid-connect/token", base);
    json_object_set_new(o, "token_endpoint", json_string(buf));
    snprintf(buf, sizeof(buf), "%s/protocol/openid-connect/userinfo", base);
    json_object_set_new(o, "userinfo_endpoint", json_string(buf));
    snprintf(buf, sizeof(buf), "%s/protocol/openid-connect/certs", base);
    json_object_set_new(o, "jwks_uri", json_string(buf));
    snprintf(buf, sizeof(buf), "%s/protocol/openid-connect/logout", base);
    json_object_set_new(o, "end_session_endpoint", json_string(buf));
    json_object_set_new(o, "response_types_supported", json_pack("[s]", "code"));
    json_object_set_new(o, "subject_types_supported", json_pack("[s]", "public"));
    json_object_set_new(o, "id_token_signing_alg_values_supported", json_pack("[s]", "RS256"));
    admin_send_json_value(req, 200, o);
}

static json_t *parse_body_or_respond(h2o_req_t *req)
{
    json_error_t jerr;
    char detail[200];
    json_t *doc;

    if (req->entity.base == NULL || req->entity.len == 0) {
        admin_send_json_error(req, 400, "Bad request", "body: a JSON object is required");
        return NULL;
    }
    if ((doc = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        snprintf(detail, sizeof(detail), "body: invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        admin_send_json_error(req, 400, "Bad request", detail);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        admin_send_json_error(req, 400, "Bad request", "body: must be a JSON object");
        return NULL;
    }
    return doc;
}

static void handle_settings(admin_t *admin, h2o_req_t *req, unsigned method)
{
    admin_settings_t cur, next;
    char detail[320];

    admin_settings_cell_get(&admin->settings, &cur);
    if (method == M_GET) {
        admin_send_json_value(req, 200, admin_settings_to_json(&cur));
        return;
    }
    json_t *doc = parse_body_or_respond(req);
    if (doc == NULL)
        return;
    next = cur;
    if (admin_settings_apply_json(&next, doc, detail, sizeof(detail)) != 0) {
        json_decref(doc);
        admin_send_json_error(req, 400, "Bad request", detail);
        return;
    }
    json_decref(doc);
    /* durable first, then visible: a crash after the 200 can never bring back the old values */
    json_t *out = admin_settings_to_json(&next);
    char *s = json_dumps(out, JSON_COMPACT);
    if (s == NULL)
        abort();
    int ret = store_kv_put_sync(admin->store, "config", "settings", s, strlen(s));
    free(s);
    if (ret != 0) {
        json_decref(out);
        admin_send_json_error(req, 500, "Could not save the settings", "store: write failed; nothing was changed");
        return;
    }
    admin_settings_cell_set(&admin->settings, &next);
    admin_send_json_value(req, 200, out);
}

static void handle_token_create(admin_t *admin, h2o_req_t *req)
{
    admin_token_rec_t rec;
    char token[ADMIN_TOKEN_STR_CAP], hash[ADMIN_TOKEN_HASH_HEX], detail[200];
    const char *key;
    json_t *v, *doc = parse_body_or_respond(req);
    unsigned scopes = 0;
    int have_scope = 0;

    if (doc == NULL)
        return;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.name, sizeof(rec.name), "api");
    json_object_foreach (doc, key, v) {
        if (strcmp(key, "name") == 0) {
            if (!json_is_string(v) || admin_token_name_validate(json_string_value(v), json_string_length(v)) != 0) {
                snprintf(detail, sizeof(detail), "name: must be a string of 1..%d printable characters", ADMIN_MAX_NAME_LEN);
                goto bad;
            }
            memcpy(rec.name, json_string_value(v), json_string_length(v) + 1);
        } else if (strcmp(key, "scope") == 0 || strcmp(key, "scopes") == 0) {
            char err[160];
            if (json_is_string(v)) {
                if (admin_scopes_parse(json_string_value(v), json_string_length(v), &scopes, err, sizeof(err)) != 0) {
                    snprintf(detail, sizeof(detail), "%s: %s", key, err);
                    goto bad;
                }
            } else if (json_is_array(v) && json_array_size(v) > 0) {
                size_t i;
                json_t *e;
                json_array_foreach (v, i, e) {
                    if (!json_is_string(e) ||
                        admin_scopes_parse(json_string_value(e), json_string_length(e), &scopes, err, sizeof(err)) != 0) {
                        snprintf(detail, sizeof(detail), "%s: %s", key,
                                 json_is_string(e) ? err : "must be a string or an array of strings");
                        goto bad;
                    }
                }
            } else {
                snprintf(detail, sizeof(detail), "%s: must be a string or a non-empty array of strings", key);
                goto bad;
            }
            have_scope = 1;
        } else {
            char shown[72]; /* a bounded prefix of the untrusted name, cut between characters */
            snprintf(detail, sizeof(detail), "%s: unknown field (known: name, scope)",
                     text_escape(shown, sizeof(shown), key, strlen(key)));
            goto bad;
        }
    }
    if (!have_scope) {
        snprintf(detail, sizeof(detail), "scope: required (purge_select, purge_all, global, global:read)");
        goto bad;
    }
    json_decref(doc);
    rec.scopes = scopes;
    rec.created = (int64_t)time(NULL);
    admin_token_generate(token, rec.id);
    admin_token_hash_hex(token, strlen(token), hash);
    char *s = admin_token_rec_dump(&rec);
    int ret = store_kv_put_sync(admin->store, "tokens", hash, s, strlen(s));
    free(s);
    if (ret != 0) {
        sodium_memzero(token, sizeof(token));
        admin_send_json_error(req, 500, "Could not save the token", "store: write failed");
        return;
    }
    json_t *out = admin_token_rec_to_json(&rec);
    json_object_set_new(out, "access_token", json_string(token));
    sodium_memzero(token, sizeof(token));
    admin_send_json_value(req, 200, out);
    return;
bad:
    json_decref(doc);
    admin_send_json_error(req, 400, "Bad request", detail);
}

static int list_one(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    admin_token_rec_t rec;
    (void)key, (void)key_len;
    if (admin_token_rec_parse(val, val_len, &rec) == 0)
        json_array_append_new((json_t *)arg, admin_token_rec_to_json(&rec));
    return 0;
}

static void handle_token_list(admin_t *admin, h2o_req_t *req)
{
    json_t *arr = json_array();
    if (arr == NULL)
        abort();
    store_kv_foreach(admin->store, "tokens", list_one, arr);
    admin_send_json_value(req, 200, arr);
}

static void handle_token_delete(admin_t *admin, h2o_req_t *req, h2o_iovec_t raw_id)
{
    char id[ADMIN_TOKEN_ID_HEX + 8], hash[ADMIN_TOKEN_HASH_HEX];
    admin_token_rec_t rec;
    ssize_t n = admin_percent_decode(raw_id.base, raw_id.len, id, sizeof(id) - 1);

    if (n < 0 || (size_t)n != ADMIN_TOKEN_ID_HEX - 1) {
        admin_send_json_error(req, 404, "Record not found", "no token with that id");
        return;
    }
    id[n] = '\0';
    if (admin_token_find(admin->store, id, hash, &rec, 1) != 0) {
        admin_send_json_error(req, 404, "Record not found", "no token with that id");
        return;
    }
    int ret = store_kv_put_sync(admin->store, "tokens", hash, NULL, 0);
    if (ret != 0 && ret != STORE_ENOTFOUND) {
        admin_send_json_error(req, 500, "Could not revoke the token", "store: write failed");
        return;
    }
    admin_send_json(req, 204, "", 0);
}

/* the routes that read, change and store configuration: one thread at a time (config_lock) */
static void handle_config_route(admin_t *admin, h2o_req_t *req, const route_t *r, unsigned method)
{
    pthread_mutex_lock(&admin->config_lock);
    switch (r->id) {
    case R_TOKENS:
        if (method == M_GET)
            handle_token_list(admin, req);
        else
            handle_token_create(admin, req);
        break;
    case R_TOKEN_ONE: handle_token_delete(admin, req, r->rest); break;
    case R_SETTINGS: handle_settings(admin, req, method); break;
    default: abort(); /* on_req sends only these here */
    }
    pthread_mutex_unlock(&admin->config_lock);
}

/* ---- the handler ---- */

static int sid_matches(admin_t *admin, h2o_iovec_t raw)
{
    char sid[sizeof(admin->cfg->service_id)];
    ssize_t n = admin_percent_decode(raw.base, raw.len, sid, sizeof(sid) - 1);
    if (n < 0)
        return 0;
    return (size_t)n == strlen(admin->cfg->service_id) && memcmp(sid, admin->cfg->service_id, (size_t)n) == 0;
}

/* routes served by other files (admin_ext.h), tried after the table above */
static const admin_ext_route_t *const ext_routes[] = {
    &admin_header_rules_route, &admin_backends_route,  &admin_stats_route,   &admin_realtime_route,
    &admin_stats_fastly_route, &admin_dashboard_route, &cluster_admin_route, NULL};

/* an extension route: the same 405 / auth / scope checks as the built-in routes */
static int handle_ext_route(admin_t *admin, h2o_req_t *req, const char *path, size_t path_len)
{
    for (size_t i = 0; ext_routes[i] != NULL; ++i) {
        const admin_ext_route_t *x = ext_routes[i];
        unsigned methods = 0;
        if (!x->match(path, path_len, &methods))
            continue;
        unsigned method = method_of(req);
        if ((method & methods) == 0) {
            send_405(req, methods);
            return 1;
        }
        unsigned need = x->scopes(path, path_len, method);
        if (need != 0) {
            const char *tok;
            size_t tok_len;
            admin_token_rec_t rec;
            if (!admin_request_token(req, &tok, &tok_len)) {
                admin_auth_send_401(admin, req, 0);
                return 1;
            }
            if (admin_token_lookup(admin->store, tok, tok_len, &rec) != 0) {
                admin_auth_send_401(admin, req, 1);
                return 1;
            }
            if ((rec.scopes & need) == 0) {
                admin_auth_send_403(req);
                return 1;
            }
        }
        pthread_mutex_lock(&admin->config_lock);
        x->handle(admin, req, method, path, path_len);
        pthread_mutex_unlock(&admin->config_lock);
        return 1;
    }
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    admin_t *admin = ((admin_handler_t *)self)->admin;
    const char *path = req->path.base, *q;
    size_t path_len = req->path.len;
    route_t r;
    unsigned method, need;
    admin_token_rec_t rec;
    char detail[200];

    assert(admin->magic == ADMIN_MAGIC);
    /* a Surrogate-Key on several lines is one space-separated list: the batch purge and the
     * shield forward read one line, which must be all of it */
    admin_join_header_lines(req, H2O_STRLIT("surrogate-key"), ' ');
    if ((q = memchr(path, '?', path_len)) != NULL)
        path_len = (size_t)(q - path);
    int matched = route_match(path, path_len, req->path.base, req->path.len, &r) == 0;
    /* a batch purge may carry as many keys in a JSON body as in its Surrogate-Key header */
    size_t max_body = matched && r.id == R_PURGE_BATCH ? ADMIN_MAX_BATCH_BODY : ADMIN_MAX_BODY;
    if (req->entity.base != NULL && req->entity.len > max_body) {
        snprintf(detail, sizeof(detail), "body: larger than %zu bytes", max_body);
        req->http1_is_persistent = 0;
        admin_send_json_error(req, 413, "Payload too large", detail);
        return 0;
    }
    if (!matched) {
        if (handle_ext_route(admin, req, path, path_len))
            return 0;
        admin_send_json_error(req, 404, "Not found", "no such endpoint");
        return 0;
    }
    method = method_of(req);
    if (r.id == R_PURGE_KEY && method == M_GET && r.rest.len > 7 &&
        memcmp(r.rest.base + r.rest.len - 7, "/status", 7) == 0) { /* a purge's status, not a purge */
        r.id = R_PURGE_STATUS;
        r.methods = M_GET;
        r.rest.len -= 7;
    }
    if ((method & r.methods) == 0) {
        send_405(req, r.methods);
        return 0;
    }

    need = route_scopes(r.id, method);
    if (need != 0) {
        const char *tok;
        size_t tok_len;
        if (!admin_request_token(req, &tok, &tok_len)) {
            admin_auth_send_401(admin, req, 0);
            return 0;
        }
        if (admin_token_lookup(admin->store, tok, tok_len, &rec) != 0) {
            admin_auth_send_401(admin, req, 1);
            return 0;
        }
        if (r.sid.base != NULL && !sid_matches(admin, r.sid)) {
            char shown[80];
            size_t n = 0;
            for (size_t i = 0; i < r.sid.len && n < 64; i++)
                shown[n++] = (r.sid.base[i] > 0x20 && r.sid.base[i] < 0x7f) ? r.sid.base[i] : '?';
            shown[n] = '\0';
            snprintf(detail, sizeof(detail), "Cannot find service '%s'", shown);
            admin_send_json_error(req, 404, "Record not found", detail);
            return 0;
        }
        if ((rec.scopes & need) == 0) {
            admin_auth_send_403(req);
            return 0;
        }
    }

    switch (r.id) {
    case R_HEALTH:
        if (!cluster_cache_usable()) /* a cluster node still applying the purges it missed (cluster/cluster.h) */
            admin_send_json(req, 503, H2O_STRLIT("{\"status\":\"catching_up\"}"));
        else
            admin_send_json(req, 200, H2O_STRLIT("{\"status\":\"ok\"}"));
        return 0;
    case R_OPENID: send_openid(req); return 0;
    case R_PURGE_KEY: return admin_purge_key(admin, req, r.rest.base, r.rest.len);
    case R_PURGE_BATCH: return admin_purge_batch(admin, req);
    case R_PURGE_ALL: return admin_purge_everything(admin, req);
    case R_PURGE_URL: return admin_purge_url(admin, req, r.rest.base, r.rest.len);
    case R_PURGE_STATUS: cluster_api_purge_status(req, r.rest.base, r.rest.len); return 0;
    case R_TOKENS:
    case R_TOKEN_ONE:
    case R_SETTINGS: handle_config_route(admin, req, &r, method); return 0;
    case R_TOKEN_SELF: admin_send_json_value(req, 200, admin_token_rec_to_json(&rec)); return 0;
    }
    admin_send_json_error(req, 404, "Not found", NULL);
    return 0;
}

void admin_router_register(admin_t *admin, h2o_pathconf_t *pathconf)
{
    admin_handler_t *handler = (admin_handler_t *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->admin = admin;
}

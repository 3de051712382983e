/*
 * admin-api/header_rules_api.c — the header rules over the admin API.
 *
 *   GET    /config/header-rules        the ordered list
 *   POST   /config/header-rules        append one rule (a JSON object)
 *   PUT    /config/header-rules        replace the whole list (a JSON array)
 *   DELETE /config/header-rules        remove every rule
 *   DELETE /config/header-rules/<i>    remove rule i (0-based)
 *
 * Every change is validated whole (nothing half-applied), written to the store's
 * `config` database (synced), and then swapped into the proxy: the next request on
 * every worker uses it. Runs on the admin thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "admin-api/admin_ext.h"
#include "admin-api/admin_int.h"
#include "server/header_rules.h"
#include "server/proxy.h"

#define RULES_PATH "/config/header-rules"

static int rules_match(const char *path, size_t len, unsigned *methods)
{
    size_t base = sizeof(RULES_PATH) - 1;
    if (len == base && memcmp(path, RULES_PATH, base) == 0) {
        *methods = ADMIN_M_GET | ADMIN_M_POST | ADMIN_M_PUT | ADMIN_M_DELETE;
        return 1;
    }
    if (len > base + 1 && memcmp(path, RULES_PATH "/", base + 1) == 0) {
        *methods = ADMIN_M_DELETE;
        return 1;
    }
    return 0;
}

static unsigned rules_scopes(const char *path, size_t len, unsigned method)
{
    (void)path;
    (void)len;
    return method == ADMIN_M_GET ? (ADMIN_SCOPE_GLOBAL | ADMIN_SCOPE_GLOBAL_READ) : ADMIN_SCOPE_GLOBAL;
}

/* validate, persist and publish a new list (takes a reference to `array`); sends the response */
static void commit_rules(admin_t *admin, h2o_req_t *req, json_t *array)
{
    header_rules_t *rules = NULL;
    char err[256];
    if (header_rules_parse(array, &rules, err, sizeof(err)) != 0) {
        json_decref(array);
        admin_send_json_error(req, 400, "Bad request", err);
        return;
    }
    char *text = json_dumps(array, JSON_COMPACT);
    json_decref(array);
    if (text == NULL) { /* the client's document: an error answer, never the end of the process */
        header_rules_free(&rules);
        admin_send_json_error(req, 500, "Internal error", "the header rules could not be encoded");
        return;
    }
    if (store_kv_put_sync(admin->store, "config", "header_rules", text, strlen(text)) != 0) {
        free(text);
        header_rules_free(&rules);
        admin_send_json_error(req, 500, "Internal error", "the store could not save the header rules");
        return;
    }
    free(text);
    if (rules->count == 0)
        header_rules_free(&rules);
    proxy_header_rules_replace(rules);
    admin_send_json_value(req, 200, header_rules_to_json(proxy_header_rules()));
}

static void rules_handle(admin_t *admin, h2o_req_t *req, unsigned method, const char *path, size_t len)
{
    size_t base = sizeof(RULES_PATH) - 1;
    json_t *current = header_rules_to_json(proxy_header_rules());

    if (method == ADMIN_M_GET) {
        admin_send_json_value(req, 200, current);
        return;
    }
    if (method == ADMIN_M_DELETE && len == base) {
        json_decref(current);
        commit_rules(admin, req, json_array());
        return;
    }
    if (method == ADMIN_M_DELETE) {
        char digits[24];
        size_t n = len - base - 1;
        char *end = NULL;
        if (n == 0 || n >= sizeof(digits)) {
            json_decref(current);
            admin_send_json_error(req, 404, "Not found", "no such rule");
            return;
        }
        memcpy(digits, path + base + 1, n);
        digits[n] = '\0';
        unsigned long index = strtoul(digits, &end, 10);
        if (*end != '\0' || digits[0] < '0' || digits[0] > '9' || index >= json_array_size(current)) {
            json_decref(current);
            admin_send_json_error(req, 404, "Not found", "no such rule");
            return;
        }
        json_array_remove(current, index);
        commit_rules(admin, req, current);
        return;
    }

    /* POST and PUT take a JSON body */
    json_error_t jerr;
    json_t *body = req->entity.base != NULL ? json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr)
                                            : NULL;
    if (body == NULL) {
        char detail[200];
        snprintf(detail, sizeof(detail), "body: invalid JSON%s%s", req->entity.base != NULL ? ": " : "",
                 req->entity.base != NULL ? jerr.text : " (empty)");
        json_decref(current);
        admin_send_json_error(req, 400, "Bad request", detail);
        return;
    }
    if (method == ADMIN_M_POST) {
        if (!json_is_object(body)) {
            json_decref(body);
            json_decref(current);
            admin_send_json_error(req, 400, "Bad request", "body: a rule object is required");
            return;
        }
        json_array_append_new(current, body);
        commit_rules(admin, req, current);
        return;
    }
    json_decref(current);
    if (!json_is_array(body)) {
        json_decref(body);
        admin_send_json_error(req, 400, "Bad request", "body: an array of rules is required");
        return;
    }
    commit_rules(admin, req, body);
}

const admin_ext_route_t admin_header_rules_route = {"header-rules", rules_match, rules_scopes, rules_handle};

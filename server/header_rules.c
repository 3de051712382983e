/*
 * server/header_rules.c — parsing and applying header rules.
 *
 * Rules come from the config file (and later the admin API) as JSON; they are parsed
 * once into an immutable list that any worker thread may read. Applying a rule never
 * copies header bytes: list entries borrow from the request, the origin's response or
 * the rule itself, all of which outlive the list they are put in.
 *
 * Conditions are evaluated against the client's request (its path and headers) in
 * every phase, so one rule can say "for /api/ responses, unset Set-Cookie before
 * storing" without depending on what the origin sent.
 *
 * Invariant: no parsed rule names a header edgecache writes itself for the message's framing
 * or the connection (header_rules_refused_name), in any phase or action. The rules are added
 * after the filters that drop those headers, so such a rule would put a second, conflicting
 * line beside ours: two Content-Lengths and a Transfer-Encoding before a plain body, or a
 * chunked request with a second Host on a pooled origin connection (a desync).
 */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/alloc.h"
#include "common/ascii.h"
#include "cluster/cluster.h"
#include "server/header_rules.h"
#include "server/http_fields.h"
#include "server/text.h"

static char *dup_lower(const char *s, size_t len, int lower)
{
    char *p = alloc_xmalloc(len + 1, "header rules");
    for (size_t i = 0; i != len; ++i)
        p[i] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
    p[len] = '\0';
    return p;
}

/* RFC 9110 token characters for field names (without the locale: common/ascii.h) */
static int is_token(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (!ascii_is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/* field values: visible characters, spaces and tabs; no CR/LF/NUL (header injection) */
static int is_field_value(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n' || c == 0 || (c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

static int name_is(const char *name, size_t len, const char *lit)
{
    return len == strlen(lit) && strncasecmp(name, lit, len) == 0;
}

const char *header_rules_refused_name(const char *name, size_t len)
{
    if (name_is(name, len, "host"))
        return "the origin's Host is the client's, or the backend's override_host: set that instead";
    if (name_is(name, len, "content-length") || name_is(name, len, "transfer-encoding"))
        return "edgecache frames every message itself";
    if (http_fields_is_hop_by_hop(name, len)) /* compares case-insensitively */
        return "a hop-by-hop header, which edgecache removes in both directions";
    if (name_is(name, len, CLUSTER_SEQ_HEADER))
        return "edgecache sends it (a cluster node's applied purge sequence, which its peers trust)";
    return NULL;
}

static int get_string(const json_t *obj, const char *field, const char **out, size_t *len, size_t index, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, field);
    if (v == NULL) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "header_rules[%zu].%s: expected a string", index, field);
        return -1;
    }
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

/* with skip_log != NULL, a rule naming a refused header is left out (one line there each) instead of failing */
static int parse_rules(const json_t *array, FILE *skip_log, size_t *skipped, header_rules_t **out, char *err, size_t errlen)
{
    header_rules_t *rules = NULL;
    size_t index;
    const json_t *item;

    if (!json_is_array(array)) {
        snprintf(err, errlen, "header_rules: expected an array of rules");
        return -1;
    }
    if (json_array_size(array) > 256) {
        snprintf(err, errlen, "header_rules: at most 256 rules");
        return -1;
    }
    rules = alloc_xcalloc(1, sizeof(*rules), "header rules");
    rules->rules = alloc_xcalloc(json_array_size(array) + 1, sizeof(*rules->rules), "header rules");

    json_array_foreach (array, index, item) {
        header_rule_t *r = &rules->rules[rules->count];
        const char *s, *key;
        size_t len = 0;
        json_t *v;
        if (!json_is_object(item)) {
            snprintf(err, errlen, "header_rules[%zu]: expected an object", index);
            goto fail;
        }
        json_object_foreach ((json_t *)item, key, v) {
            if (strcmp(key, "phase") != 0 && strcmp(key, "action") != 0 && strcmp(key, "header") != 0 &&
                strcmp(key, "value") != 0 && strcmp(key, "condition") != 0) {
                char shown[72]; /* a bounded prefix of the untrusted name, cut between characters */
                snprintf(err, errlen, "header_rules[%zu]: unknown field '%s'", index,
                         text_escape(shown, sizeof(shown), key, strlen(key)));
                goto fail;
            }
        }
        if (get_string(item, "phase", &s, &len, index, err, errlen) != 0)
            goto fail;
        if (s == NULL || (strcmp(s, "request") != 0 && strcmp(s, "fetch") != 0 && strcmp(s, "deliver") != 0)) {
            snprintf(err, errlen, "header_rules[%zu].phase: expected \"request\", \"fetch\" or \"deliver\"", index);
            goto fail;
        }
        r->phase = strcmp(s, "request") == 0 ? HR_PHASE_REQUEST : strcmp(s, "fetch") == 0 ? HR_PHASE_FETCH : HR_PHASE_DELIVER;
        if (get_string(item, "action", &s, &len, index, err, errlen) != 0)
            goto fail;
        if (s == NULL || (strcmp(s, "set") != 0 && strcmp(s, "append") != 0 && strcmp(s, "unset") != 0)) {
            snprintf(err, errlen, "header_rules[%zu].action: expected \"set\", \"append\" or \"unset\"", index);
            goto fail;
        }
        r->action = strcmp(s, "set") == 0 ? HR_SET : strcmp(s, "append") == 0 ? HR_APPEND : HR_UNSET;
        if (get_string(item, "header", &s, &len, index, err, errlen) != 0)
            goto fail;
        if (s == NULL || !is_token(s, len) || len > 128) {
            snprintf(err, errlen, "header_rules[%zu].header: expected a header name", index);
            goto fail;
        }
        const char *why = header_rules_refused_name(s, len);
        if (why != NULL) {
            char *name = dup_lower(s, len, 1); /* a token, and one of a few names: safe to show */
            if (skip_log == NULL) {
                snprintf(err, errlen, "header_rules[%zu].header: \"%s\" is not allowed: %s", index, name, why);
                free(name);
                goto fail;
            }
            fprintf(skip_log, "edgecache: header_rules[%zu]: the stored rule for \"%s\" is skipped: %s\n", index, name, why);
            free(name);
            memset(r, 0, sizeof(*r)); /* nothing of it was allocated yet: the slot goes to the next rule */
            if (skipped != NULL)
                ++*skipped;
            continue;
        }
        r->name = dup_lower(s, len, 1);
        r->name_len = len;
        if (get_string(item, "value", &s, &len, index, err, errlen) != 0)
            goto fail;
        if (r->action == HR_UNSET) {
            if (s != NULL) {
                snprintf(err, errlen, "header_rules[%zu].value: not allowed with \"unset\"", index);
                goto fail;
            }
        } else {
            if (s == NULL || !is_field_value(s, len) || len > 8192) {
                snprintf(err, errlen, "header_rules[%zu].value: expected a header value (no CR, LF or NUL)", index);
                goto fail;
            }
            r->value = dup_lower(s, len, 0);
            r->value_len = len;
        }
        const json_t *cond = json_object_get(item, "condition");
        if (cond != NULL && !json_is_null(cond)) {
            if (!json_is_object(cond)) {
                snprintf(err, errlen, "header_rules[%zu].condition: expected an object", index);
                goto fail;
            }
            json_object_foreach ((json_t *)cond, key, v) {
                if (strcmp(key, "path_prefix") != 0 && strcmp(key, "header") != 0 && strcmp(key, "equals") != 0) {
                    char shown[72];
                    snprintf(err, errlen, "header_rules[%zu].condition: unknown field '%s'", index,
                             text_escape(shown, sizeof(shown), key, strlen(key)));
                    goto fail;
                }
            }
            if (get_string(cond, "path_prefix", &s, &len, index, err, errlen) != 0)
                goto fail;
            if (s != NULL) {
                if (len == 0 || s[0] != '/') {
                    snprintf(err, errlen, "header_rules[%zu].condition.path_prefix: expected a path starting with /", index);
                    goto fail;
                }
                r->cond_path_prefix = dup_lower(s, len, 0);
                r->cond_path_prefix_len = len;
            }
            if (get_string(cond, "header", &s, &len, index, err, errlen) != 0)
                goto fail;
            if (s != NULL) {
                if (!is_token(s, len) || len > 128) {
                    snprintf(err, errlen, "header_rules[%zu].condition.header: expected a header name", index);
                    goto fail;
                }
                r->cond_header = dup_lower(s, len, 1);
                r->cond_header_len = len;
            }
            if (get_string(cond, "equals", &s, &len, index, err, errlen) != 0)
                goto fail;
            if (s != NULL) {
                if (r->cond_header == NULL) {
                    snprintf(err, errlen, "header_rules[%zu].condition.equals: needs \"header\"", index);
                    goto fail;
                }
                r->cond_equals = dup_lower(s, len, 0);
                r->cond_equals_len = len;
            }
        }
        rules->count_by_phase[r->phase]++;
        rules->count++;
    }
    *out = rules;
    return 0;

fail:
    rules->count++; /* free the partly filled rule too */
    header_rules_free(&rules);
    return -1;
}

int header_rules_parse(const json_t *array, header_rules_t **out, char *err, size_t errlen)
{
    return parse_rules(array, NULL, NULL, out, err, errlen);
}

static int parse_text(const char *text, FILE *skip_log, size_t *skipped, header_rules_t **out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "header_rules: invalid JSON: %s", jerr.text);
        return -1;
    }
    int rc = parse_rules(root, skip_log, skipped, out, err, errlen);
    json_decref(root);
    return rc;
}

int header_rules_parse_text(const char *text, header_rules_t **out, char *err, size_t errlen)
{
    return parse_text(text, NULL, NULL, out, err, errlen);
}

int header_rules_parse_stored(const char *text, FILE *log, size_t *skipped, header_rules_t **out, char *err, size_t errlen)
{
    assert(log != NULL);
    if (skipped != NULL)
        *skipped = 0;
    return parse_text(text, log, skipped, out, err, errlen);
}

json_t *header_rules_to_json(const header_rules_t *rules)
{
    static const char *phases[] = {"request", "fetch", "deliver"};
    static const char *actions[] = {"set", "append", "unset"};
    json_t *arr = json_array();
    for (size_t i = 0; rules != NULL && i != rules->count; ++i) {
        const header_rule_t *r = &rules->rules[i];
        json_t *o = json_object();
        json_object_set_new(o, "phase", json_string(phases[r->phase]));
        json_object_set_new(o, "action", json_string(actions[r->action]));
        json_object_set_new(o, "header", json_stringn(r->name, r->name_len));
        if (r->value != NULL)
            json_object_set_new(o, "value", json_stringn(r->value, r->value_len));
        if (r->cond_path_prefix != NULL || r->cond_header != NULL) {
            json_t *c = json_object();
            if (r->cond_path_prefix != NULL)
                json_object_set_new(c, "path_prefix", json_stringn(r->cond_path_prefix, r->cond_path_prefix_len));
            if (r->cond_header != NULL)
                json_object_set_new(c, "header", json_stringn(r->cond_header, r->cond_header_len));
            if (r->cond_equals != NULL)
                json_object_set_new(c, "equals", json_stringn(r->cond_equals, r->cond_equals_len));
            json_object_set_new(o, "condition", c);
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

void header_rules_free(header_rules_t **rules)
{
    if (*rules == NULL)
        return;
    for (size_t i = 0; i != (*rules)->count; ++i) {
        header_rule_t *r = &(*rules)->rules[i];
        free(r->name);
        free(r->value);
        free(r->cond_path_prefix);
        free(r->cond_header);
        free(r->cond_equals);
    }
    free((*rules)->rules);
    free(*rules);
    *rules = NULL;
}

int header_rule_matches(const header_rule_t *rule, const char *path, size_t path_len, hr_lookup_cb lookup, void *ctx)
{
    if (rule->cond_path_prefix != NULL &&
        (path_len < rule->cond_path_prefix_len || memcmp(path, rule->cond_path_prefix, rule->cond_path_prefix_len) != 0))
        return 0;
    if (rule->cond_header != NULL) {
        size_t vlen = 0;
        const char *v = lookup != NULL ? lookup(ctx, rule->cond_header, rule->cond_header_len, &vlen) : NULL;
        if (v == NULL)
            return 0;
        if (rule->cond_equals != NULL && (vlen != rule->cond_equals_len || memcmp(v, rule->cond_equals, vlen) != 0))
            return 0;
    }
    return 1;
}

void hr_list_push(hr_list_t *list, const char *name, size_t name_len, const char *value, size_t value_len)
{
    if (list->size == list->capacity) {
        list->capacity = list->capacity < 16 ? 16 : list->capacity * 2;
        list->entries = alloc_xrealloc(list->entries, list->capacity * sizeof(*list->entries), "header rules");
    }
    list->entries[list->size++] = (obj_header_t){name, (uint32_t)name_len, value, (uint32_t)value_len};
}

void hr_list_unset(hr_list_t *list, const char *name, size_t name_len)
{
    size_t dst = 0;
    for (size_t i = 0; i != list->size; ++i) {
        const obj_header_t *h = &list->entries[i];
        if (h->name_len == name_len && strncasecmp(h->name, name, name_len) == 0)
            continue;
        list->entries[dst++] = *h;
    }
    list->size = dst;
}

void hr_list_dispose(hr_list_t *list)
{
    free(list->entries);
    *list = (hr_list_t){0};
}

void header_rules_apply(const header_rules_t *rules, hr_phase_t phase, hr_list_t *list, const char *path, size_t path_len,
                        hr_lookup_cb lookup, void *ctx)
{
    if (rules == NULL || rules->count_by_phase[phase] == 0)
        return;
    for (size_t i = 0; i != rules->count; ++i) {
        const header_rule_t *r = &rules->rules[i];
        if (r->phase != phase || !header_rule_matches(r, path, path_len, lookup, ctx))
            continue;
        switch (r->action) {
        case HR_SET:
            hr_list_unset(list, r->name, r->name_len);
            hr_list_push(list, r->name, r->name_len, r->value, r->value_len);
            break;
        case HR_APPEND: hr_list_push(list, r->name, r->name_len, r->value, r->value_len); break;
        case HR_UNSET: hr_list_unset(list, r->name, r->name_len); break;
        }
    }
}

/*
 * server/header_rules.h — operator header rules: an ordered list of
 * {phase, action, header, value, condition} applied to the request sent to the
 * origin (`request`), to the origin's response before it is stored (`fetch`) and
 * to the response sent to the client (`deliver`).
 *
 * A rule list is immutable once parsed and may be read by any thread.
 */
#ifndef EDGECACHE_HEADER_RULES_H
#define EDGECACHE_HEADER_RULES_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include "storage/object.h"

typedef enum { HR_PHASE_REQUEST, HR_PHASE_FETCH, HR_PHASE_DELIVER } hr_phase_t;
typedef enum { HR_SET, HR_APPEND, HR_UNSET } hr_action_t;

typedef struct header_rule {
    hr_phase_t phase;
    hr_action_t action;
    char *name; /* lower-case */
    size_t name_len;
    char *value; /* NULL for unset */
    size_t value_len;
    char *cond_path_prefix; /* NULL: any path */
    size_t cond_path_prefix_len;
    char *cond_header; /* lower-case; NULL: no header condition */
    size_t cond_header_len;
    char *cond_equals; /* NULL: the header only has to be present */
    size_t cond_equals_len;
} header_rule_t;

typedef struct header_rules {
    size_t count;
    header_rule_t *rules;
    size_t count_by_phase[3];
} header_rules_t;

/** A growable list of headers; entries borrow their bytes (from the request, the origin, or a rule). */
typedef struct hr_list {
    obj_header_t *entries;
    size_t size, capacity;
} hr_list_t;

/** Looks up a request header (lower-case name) for conditions; returns its value or NULL. */
typedef const char *(*hr_lookup_cb)(void *ctx, const char *name, size_t name_len, size_t *value_len);

/**
 * Why no rule may name the header `name` (`len` bytes, any case), or NULL when a rule may.
 * Refused: what edgecache writes itself for the message's framing and the connection, and
 * what a second line of would corrupt: Host (the backend's override_host sets it),
 * Content-Length, Transfer-Encoding, the hop-by-hop headers (http_fields_is_hop_by_hop:
 * Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, Proxy-Authenticate,
 * Proxy-Authorization) and Edgecache-Purge-Seq. The reason is a static string.
 */
const char *header_rules_refused_name(const char *name, size_t len);

/**
 * Parse a JSON array of rules. Returns 0 and a new list in *out (free with
 * header_rules_free), or -1 with a message naming the rule index and field in err
 * (a refused header name: the name and why).
 */
int header_rules_parse(const json_t *array, header_rules_t **out, char *err, size_t errlen);

/** Parse from JSON text (an array). Same contract as header_rules_parse. */
int header_rules_parse_text(const char *text, header_rules_t **out, char *err, size_t errlen);

/**
 * Parse the rules the store kept, which an older edgecache (before names were refused) may
 * have written: as header_rules_parse_text, except that a rule naming a refused header is
 * left out, with one line on `log` naming its index, the header and why, instead of failing
 * the list; *skipped (unless NULL) says how many. Any other error fails the whole list, as before.
 */
int header_rules_parse_stored(const char *text, FILE *log, size_t *skipped, header_rules_t **out, char *err, size_t errlen);

/** Serialize the rules back to a JSON array (new reference). */
json_t *header_rules_to_json(const header_rules_t *rules);

/** Free a list; sets *rules to NULL. NULL is fine. */
void header_rules_free(header_rules_t **rules);

/** Does the rule's condition hold for this request path and headers? */
int header_rule_matches(const header_rule_t *rule, const char *path, size_t path_len, hr_lookup_cb lookup, void *ctx);

/** Apply every rule of `phase` whose condition holds to `list`, in order. */
void header_rules_apply(const header_rules_t *rules, hr_phase_t phase, hr_list_t *list, const char *path, size_t path_len,
                        hr_lookup_cb lookup, void *ctx);

/** List operations. hr_list_push never fails (out of memory is fatal). */
void hr_list_push(hr_list_t *list, const char *name, size_t name_len, const char *value, size_t value_len);
void hr_list_unset(hr_list_t *list, const char *name, size_t name_len);
void hr_list_dispose(hr_list_t *list);

#endif

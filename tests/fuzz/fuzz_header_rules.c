/*
 * tests/fuzz/fuzz_header_rules.c — operator header rules (config file "header_rules" and
 * the admin API's /config/header-rules body): header_rules_parse_text, then the rules
 * applied to a small header list in every phase.
 *
 * Invariants: a parsed rule's header name is a non-empty lower-case token, none that
 * edgecache writes itself for framing or the connection (header_rules_refused_name), and its
 * value (when it has one) holds no CR, LF or NUL — what would let a rule inject a header; the
 * rules serialized with header_rules_to_json parse back to as many rules; applying them
 * leaves every list entry with such a name and value.
 */
#include <string.h>
#include <jansson.h>
#include "server/header_rules.h"
#include "tests/fuzz/fuzz.h"

static const char *lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    (void)ctx;
    if (name_len == 6 && memcmp(name, "cookie", 6) == 0) {
        *value_len = 3;
        return "a=1";
    }
    return NULL;
}

static void check_value(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(v[i] != '\r' && v[i] != '\n' && v[i] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';

    header_rules_t *rules = NULL;
    char err[256];
    int rc = header_rules_parse_text(text, &rules, err, sizeof(err));
    free(text);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc != 0) {
        FUZZ_CHECK(rules == NULL);
        return 0;
    }
    FUZZ_CHECK(rules != NULL);
    for (size_t i = 0; i < rules->count; i++) {
        const header_rule_t *r = &rules->rules[i];
        FUZZ_CHECK(r->name != NULL && r->name_len > 0);
        for (size_t k = 0; k < r->name_len; k++)
            FUZZ_CHECK(!(r->name[k] >= 'A' && r->name[k] <= 'Z') && (unsigned char)r->name[k] > 0x20);
        FUZZ_CHECK(header_rules_refused_name(r->name, r->name_len) == NULL);
        if (r->value != NULL)
            check_value(r->value, r->value_len);
    }

    json_t *j = header_rules_to_json(rules);
    char *dumped = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    FUZZ_CHECK(dumped != NULL);
    header_rules_t *again = NULL;
    FUZZ_CHECK(header_rules_parse_text(dumped, &again, err, sizeof(err)) == 0);
    FUZZ_CHECK(again->count == rules->count);
    header_rules_free(&again);
    free(dumped);

    for (int phase = HR_PHASE_REQUEST; phase <= HR_PHASE_DELIVER; phase++) {
        hr_list_t list = {0};
        hr_list_push(&list, "content-type", 12, "text/plain", 10);
        hr_list_push(&list, "set-cookie", 10, "x=1", 3);
        header_rules_apply(rules, (hr_phase_t)phase, &list, "/api/x", 6, lookup, NULL);
        for (size_t i = 0; i < list.size; i++) {
            FUZZ_CHECK(list.entries[i].name_len > 0);
            check_value(list.entries[i].value, list.entries[i].value_len);
        }
        hr_list_dispose(&list);
    }
    header_rules_free(&rules);
    FUZZ_CHECK(rules == NULL);
    return 0;
}

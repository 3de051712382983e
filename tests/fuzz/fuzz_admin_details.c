/*
 * tests/fuzz/fuzz_admin_details.c — the error details the admin API builds from request
 * bytes (issue 19, item 2: one that was not UTF-8 made json_pack fail and the process
 * abort). The input is a request body: it goes through the form parser of the backend
 * endpoints and, when it is a JSON object, through every validator whose detail quotes a
 * field name (backends, health checks, settings, header rules), through the token-scope
 * parser (its error names the scope), and through text_escape at several capacities.
 *
 * Invariants: every detail is well-formed UTF-8 (so json_pack takes it as it is); what
 * text_escape writes is UTF-8 without control bytes, fits its buffer, and json_pack takes it.
 */
#include <string.h>
#include <jansson.h>
#include "admin-api/admin_int.h"
#include "server/backend.h"
#include "server/header_rules.h"
#include "server/text.h"
#include "tests/fuzz/fuzz.h"

static void check_detail(const char *detail, size_t cap)
{
    size_t n = strnlen(detail, cap);
    FUZZ_CHECK(n < cap);
    FUZZ_CHECK(text_utf8_valid(detail, n));
    json_t *o = json_pack("{s:s}", "detail", detail);
    FUZZ_CHECK(o != NULL);
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char detail[300];

    /* text_escape: any bytes, any capacity */
    static const size_t caps[] = {1, 2, 4, 5, 8, 72, 300};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        char out[300];
        memset(out, 'Z', sizeof(out));
        text_escape(out, caps[i], s, size);
        size_t n = strnlen(out, caps[i]);
        FUZZ_CHECK(n < caps[i]);
        FUZZ_CHECK(caps[i] == sizeof(out) || out[caps[i]] == 'Z');
        for (size_t k = 0; k < n; k++)
            FUZZ_CHECK((unsigned char)out[k] >= 0x20 && out[k] != 0x7f);
        check_detail(out, caps[i]);
    }

    /* token scopes ("scope": "<input>") */
    unsigned mask = 0;
    char err[160];
    if (admin_scopes_parse(s, size, &mask, err, sizeof(err)) != 0)
        check_detail(err, sizeof(err));

    /* a form-encoded backend body */
    json_t *form = NULL;
    detail[0] = '\0';
    if (backend_form_to_json(s, size, &form, detail, sizeof(detail)) == 0) {
        backend_conf_t c;
        backend_conf_defaults(&c);
        if (backend_conf_apply_json(&c, form, detail, sizeof(detail)) != 0)
            check_detail(detail, sizeof(detail));
        backend_conf_release(&c); /* the PEM fields it may have taken */
        json_decref(form);
    } else {
        check_detail(detail, sizeof(detail));
    }

    /* a JSON body */
    json_error_t jerr;
    json_t *doc = json_loadb(s, size, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return 0;
    if (json_is_object(doc)) {
        backend_conf_t c;
        backend_conf_defaults(&c);
        if (backend_conf_apply_json(&c, doc, detail, sizeof(detail)) != 0)
            check_detail(detail, sizeof(detail));
        backend_conf_release(&c);
        backend_healthcheck_conf_t hc;
        backend_healthcheck_defaults(&hc);
        if (backend_healthcheck_apply_json(&hc, doc, detail, sizeof(detail)) != 0)
            check_detail(detail, sizeof(detail));
        admin_settings_t st = {0};
        if (admin_settings_apply_json(&st, doc, detail, sizeof(detail)) != 0)
            check_detail(detail, sizeof(detail));
        json_t *one = json_array();
        json_array_append(one, doc);
        header_rules_t *rules = NULL;
        if (header_rules_parse(one, &rules, detail, sizeof(detail)) != 0)
            check_detail(detail, sizeof(detail));
        else
            header_rules_free(&rules);
        json_decref(one);
    } else if (json_is_array(doc)) {
        header_rules_t *rules = NULL;
        if (header_rules_parse(doc, &rules, detail, sizeof(detail)) != 0)
            check_detail(detail, sizeof(detail));
        else
            header_rules_free(&rules);
    }
    json_decref(doc);
    return 0;
}

/*
 * tests/fuzz/fuzz_admin_settings.c — the body of PUT /config/settings: JSON text parsed
 * as the admin handler does (json_loadb, duplicates rejected) and applied with
 * admin_settings_apply_json.
 *
 * Invariants: all or nothing (on error the settings are untouched and the detail is a
 * non-empty string); accepted values are within ADMIN_SETTINGS_MAX_SECONDS and
 * purge_requires_auth is 0 or 1; the settings serialized with admin_settings_to_json
 * apply back to themselves.
 */
#include <string.h>
#include <jansson.h>
#include "admin-api/admin_int.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return 0;

    admin_settings_t s = {
        .default_ttl = 120, .default_grace = 7, .max_heuristic_ttl = 86400, .negative_ttl = 5, .purge_requires_auth = 1};
    admin_settings_t before = s;
    char detail[256];
    memset(detail, 0x5a, sizeof(detail));
    int rc = admin_settings_apply_json(&s, doc, detail, sizeof(detail));
    FUZZ_CHECK(rc == 0 || rc == ADMIN_EINVAL);
    if (rc != 0) {
        FUZZ_CHECK(memcmp(&s, &before, sizeof(s)) == 0);
        size_t n = strnlen(detail, sizeof(detail));
        FUZZ_CHECK(n > 0 && n < sizeof(detail));
    } else {
        FUZZ_CHECK(s.default_ttl <= ADMIN_SETTINGS_MAX_SECONDS);
        FUZZ_CHECK(s.default_grace <= ADMIN_SETTINGS_MAX_SECONDS);
        FUZZ_CHECK(s.max_heuristic_ttl <= ADMIN_SETTINGS_MAX_SECONDS);
        FUZZ_CHECK(s.negative_ttl <= ADMIN_SETTINGS_MAX_SECONDS);
        FUZZ_CHECK(s.purge_requires_auth == 0 || s.purge_requires_auth == 1);
        json_t *out = admin_settings_to_json(&s);
        admin_settings_t back = {0};
        FUZZ_CHECK(admin_settings_apply_json(&back, out, detail, sizeof(detail)) == 0);
        FUZZ_CHECK(memcmp(&back, &s, sizeof(s)) == 0);
        json_decref(out);
    }
    json_decref(doc);
    return 0;
}

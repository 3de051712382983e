/*
 * tests/fuzz/fuzz_admin_token_rec.c — a token record read back from the `tokens`
 * database (admin_token_rec_parse: untrusted JSON bytes from disk).
 *
 * Invariants: a parsed record has NUL-terminated id and name within their arrays, only
 * known scope bits, and dumping it (admin_token_rec_dump) parses back to the same record.
 * The JSON shown to API clients (admin_token_rec_to_json) never names a hash.
 */
#include <string.h>
#include <jansson.h>
#include "admin-api/admin_int.h"
#include "tests/fuzz/fuzz.h"

#define KNOWN_SCOPES (ADMIN_SCOPE_PURGE_SELECT | ADMIN_SCOPE_PURGE_ALL | ADMIN_SCOPE_GLOBAL_READ | ADMIN_SCOPE_GLOBAL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    admin_token_rec_t rec, back;
    memset(&rec, 0x5a, sizeof(rec));
    int rc = admin_token_rec_parse((const char *)data, size, &rec);
    FUZZ_CHECK(rc == 0 || rc == ADMIN_EINVAL);
    if (rc != 0)
        return 0;
    FUZZ_CHECK(strnlen(rec.id, sizeof(rec.id)) == ADMIN_TOKEN_ID_HEX - 1);
    FUZZ_CHECK(strnlen(rec.name, sizeof(rec.name)) < sizeof(rec.name));
    FUZZ_CHECK((rec.scopes & ~(unsigned)KNOWN_SCOPES) == 0);

    char *dumped = admin_token_rec_dump(&rec);
    memset(&back, 0, sizeof(back));
    FUZZ_CHECK(admin_token_rec_parse(dumped, strlen(dumped), &back) == 0);
    FUZZ_CHECK(strcmp(back.id, rec.id) == 0 && strcmp(back.name, rec.name) == 0);
    FUZZ_CHECK(back.scopes == rec.scopes && back.created == rec.created);
    free(dumped);

    json_t *shown = admin_token_rec_to_json(&rec);
    FUZZ_CHECK(json_is_object(shown));
    FUZZ_CHECK(json_object_get(shown, "hash") == NULL);
    json_decref(shown);
    return 0;
}

/*
 * tests/fuzz/fuzz_policy_decide.c — policy_decide over a whole response header block.
 *
 * Input: byte 0-1 the status (mod 700), byte 2 flags (bit 0: the request had
 * Authorization, bit 1: not GET/HEAD, bit 2: default_grace 60, bit 3: negative_ttl 30),
 * then "name: value" lines separated by '\n' (a line without ':' is a name with an empty
 * value). Names are lower-cased as the proxy does before it asks; values are passed as
 * they are. At most 100 headers, the proxy's own limit.
 *
 * Invariants: those of the decision's contract in server/cache_policy.h; and for a 4xx/5xx,
 * negative_ttl changes nothing about a response stored without it (explicit freshness or
 * public), and bounds the lifetime of one stored only with it.
 */
#include <string.h>
#include "server/cache_policy.h"
#include "tests/fuzz/fuzz.h"

#define MAX_HEADERS 100
#define DELTA_CAP 2147483648u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const reasons[] = {"method",  "status",     "partial", "no-store",
                                          "private", "set-cookie", "vary",    "authorization"};
    policy_header_t headers[MAX_HEADERS];
    size_t n = 0;

    if (size < 3)
        return 0;
    int status = ((int)data[0] << 8 | data[1]) % 700;
    unsigned flags = data[2];
    char *block = malloc(size - 3 + 1);
    if (block == NULL)
        abort();
    memcpy(block, data + 3, size - 3);
    size_t len = size - 3;

    size_t start = 0;
    for (size_t i = 0; i <= len && n < MAX_HEADERS; i++) {
        if (i != len && block[i] != '\n')
            continue;
        char *line = block + start;
        size_t line_len = i - start;
        start = i + 1;
        char *colon = memchr(line, ':', line_len);
        size_t name_len = colon ? (size_t)(colon - line) : line_len;
        for (size_t k = 0; k < name_len; k++)
            if (line[k] >= 'A' && line[k] <= 'Z')
                line[k] = (char)(line[k] + 32);
        const char *value = colon ? colon + 1 : line + line_len;
        size_t value_len = colon ? line_len - name_len - 1 : 0;
        while (value_len > 0 && (*value == ' ' || *value == '\t')) {
            value++;
            value_len--;
        }
        headers[n++] = (policy_header_t){line, name_len, value, value_len};
    }

    policy_request_info_t req = {.method_is_get_or_head = !(flags & 2),
                                 .has_authorization = (flags & 1) != 0,
                                 .request_time = 1700000000,
                                 .response_time = 1700000002};
    policy_settings_t settings = {.default_ttl = 120,
                                  .max_heuristic_ttl = 86400,
                                  .default_grace = (flags & 4) ? 60 : 0,
                                  .negative_ttl = (flags & 8) ? 30 : 0};
    policy_decision_t d;
    policy_decide(status, headers, n, &req, &settings, &d);

    if (status >= 400) {
        policy_settings_t without = settings, with = settings;
        without.negative_ttl = 0;
        with.negative_ttl = 30;
        policy_decision_t d0, d30;
        policy_decide(status, headers, n, &req, &without, &d0);
        policy_decide(status, headers, n, &req, &with, &d30);
        if (d0.storable)
            FUZZ_CHECK(d30.storable && d30.ttl == d0.ttl);
        else if (d30.storable)
            FUZZ_CHECK(d30.ttl <= 30 && strcmp(d0.not_stored_reason, "status") == 0);
    }

    if (!d.storable) {
        int known = 0;
        FUZZ_CHECK(d.not_stored_reason != NULL);
        for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
            known |= strcmp(d.not_stored_reason, reasons[i]) == 0;
        FUZZ_CHECK(known);
        FUZZ_CHECK(d.ttl == 0 && d.stale_while_revalidate == 0 && d.stale_if_error == 0 && !d.no_cache);
    } else {
        FUZZ_CHECK(req.method_is_get_or_head);
        FUZZ_CHECK(status >= 200 && status <= 599 && status != 304 && status != 206);
        FUZZ_CHECK(d.ttl <= DELTA_CAP);
    }
    FUZZ_CHECK(d.initial_age <= DELTA_CAP);
    if (d.no_cache)
        FUZZ_CHECK(d.stale_while_revalidate == 0 && d.stale_if_error == 0);

    /* the same block again with a different clock must not crash either (Date/Expires math) */
    req.request_time = INT64_MIN / 2;
    req.response_time = INT64_MAX / 2;
    policy_decide(status, headers, n, &req, &settings, &d);
    FUZZ_CHECK(d.initial_age <= DELTA_CAP && d.ttl <= DELTA_CAP);
    free(block);
    return 0;
}

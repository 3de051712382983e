/*
 * tests/fuzz/fuzz_cc_parse.c — Cache-Control / CDN-Cache-Control / Surrogate-Control.
 *
 * Input: field values separated by '\n'. Each line is merged into one policy_cc_t with
 * policy_cc_parse (several header lines of one response); the whole input is then given
 * to policy_decide once as Cache-Control, as CDN-Cache-Control and as Surrogate-Control
 * (the surrogate grammar — targeted directives, no-store-remote, max-age=N+M — is only
 * reachable through policy_decide).
 *
 * Invariants checked: delta-seconds are POLICY_UNSET or at most 2^31; an invalid max-age /
 * s-maxage leaves the value unset; the decision honours its own contract (see
 * check_decision). Restrictive directives cannot be hidden: whatever the input, the input
 * followed by ", no-store" (or ", private") has no-store (private) set, as Cache-Control and
 * as Surrogate-Control — an unterminated quoted-string or junk must not swallow them.
 * (CDN-Cache-Control is an RFC 8941 Dictionary, where a broken field is ignored as a whole:
 * fuzz_sf_dict covers it.)
 */
#include <string.h>
#include "server/cache_policy.h"
#include "tests/fuzz/fuzz.h"

#define DELTA_CAP 2147483648u

static void check_delta(uint32_t v)
{
    FUZZ_CHECK(v == POLICY_UNSET || v <= DELTA_CAP);
}

static void check_decision(const policy_decision_t *d)
{
    static const char *const reasons[] = {"method",  "status",     "partial", "no-store",
                                          "private", "set-cookie", "vary",    "authorization"};
    if (!d->storable) {
        int known = 0;
        FUZZ_CHECK(d->not_stored_reason != NULL);
        for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
            known |= strcmp(d->not_stored_reason, reasons[i]) == 0;
        FUZZ_CHECK(known);
        FUZZ_CHECK(d->ttl == 0 && d->stale_while_revalidate == 0 && d->stale_if_error == 0);
    } else {
        FUZZ_CHECK(d->ttl <= DELTA_CAP);
        FUZZ_CHECK(d->stale_while_revalidate <= DELTA_CAP);
    }
    FUZZ_CHECK(d->initial_age <= DELTA_CAP);
    /* no-cache: revalidate before every use, so no stale window may remain */
    if (d->no_cache)
        FUZZ_CHECK(d->stale_while_revalidate == 0 && d->stale_if_error == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    policy_cc_t cc;

    policy_cc_init(&cc);
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || s[i] == '\n') {
            policy_cc_parse(&cc, s + start, i - start);
            start = i + 1;
        }
    }
    check_delta(cc.max_age);
    check_delta(cc.s_maxage);
    check_delta(cc.stale_while_revalidate);
    check_delta(cc.stale_if_error);
    if (cc.max_age_invalid)
        FUZZ_CHECK(cc.max_age == POLICY_UNSET);
    if (cc.s_maxage_invalid)
        FUZZ_CHECK(cc.s_maxage == POLICY_UNSET);

    /* appended restrictive directives always count */
    static const char *const tails[] = {", no-store", ", private"};
    for (size_t t = 0; t < 2; t++) {
        size_t tlen = strlen(tails[t]);
        char *buf = malloc(size + tlen);
        if (buf == NULL)
            abort();
        memcpy(buf, s, size);
        memcpy(buf + size, tails[t], tlen);
        policy_cc_t with;
        policy_cc_init(&with);
        policy_cc_parse(&with, buf, size + tlen);
        FUZZ_CHECK(t == 0 ? with.no_store : with.private_);
        policy_header_t sh = {"surrogate-control", 17, buf, size + tlen};
        policy_request_info_t r = {.method_is_get_or_head = 1, .request_time = 1700000000, .response_time = 1700000001};
        policy_settings_t st = {.default_ttl = 120, .max_heuristic_ttl = 86400, .default_grace = 30, .negative_ttl = 0};
        policy_decision_t sd;
        policy_decide(200, &sh, 1, &r, &st, &sd);
        FUZZ_CHECK(!sd.storable);
        free(buf);
    }

    static const char *const names[] = {"cache-control", "cdn-cache-control", "surrogate-control"};
    policy_request_info_t req = {.method_is_get_or_head = 1, .request_time = 1700000000, .response_time = 1700000001};
    policy_settings_t settings = {.default_ttl = 120, .max_heuristic_ttl = 86400, .default_grace = 30, .negative_ttl = 0};
    for (size_t k = 0; k < 3; k++) {
        policy_header_t h = {names[k], strlen(names[k]), s, size};
        policy_decision_t d;
        policy_decide(200, &h, 1, &req, &settings, &d);
        check_decision(&d);
    }
    return 0;
}

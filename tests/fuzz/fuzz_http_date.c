/*
 * tests/fuzz/fuzz_http_date.c — policy_parse_http_date (IMF-fixdate, RFC 850, asctime).
 *
 * Input: the date string. The first 8 bytes, when there are at least 8, also pick the
 * "now" used by the RFC 850 two-digit-year rule, so far-away centuries are tried too.
 *
 * Invariant: a date that parses to a time in 0001..9999 formats back (IMF-fixdate) to a
 * string that parses to the same time — except a leap second (":60"), which names the
 * first second of the next minute and so formats as that.
 */
#include <string.h>
#include "server/cache_policy.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_TIME_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define FUZZ_TIME_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t t, back, now = 1700000000;

    (void)policy_parse_http_date((const char *)data, size, &t);
    if (size >= 8) {
        uint64_t raw;
        memcpy(&raw, data, 8);
        /* anything from year 1 to 9999, the range policy_decide clamps to */
        now = FUZZ_TIME_MIN + (int64_t)(raw % (uint64_t)(FUZZ_TIME_MAX - FUZZ_TIME_MIN));
        (void)policy_parse_http_date_at((const char *)data + 8, size - 8, now, &t);
    }
    if (policy_parse_http_date_at((const char *)data, size, 1700000000, &t) != 0)
        return 0;
    if (t < FUZZ_TIME_MIN || t > FUZZ_TIME_MAX)
        return 0;
    char buf[32];
    size_t n = policy_format_http_date(t, buf);
    FUZZ_CHECK(n == 29);
    FUZZ_CHECK(policy_parse_http_date_at(buf, n, 1700000000, &back) == 0);
    FUZZ_CHECK(back == t);
    return 0;
}

/*
 * tests/fuzz/fuzz_stats_records.c — what the stats endpoints read from outside: the history
 * records read back from the store (stats_sample_decode, stats_bw_decode) and the from/to
 * query values of Fastly's historical API (admin_stats_parse_time).
 *
 * Input: the first byte picks the reader, the rest is its bytes.
 *
 * Invariants: a record that decodes encodes back to one that decodes to the same sample
 * (fields a newer version appended are dropped, fields missing read as 0 either way); a time
 * that parses is the same when parsed again, and "now" is the clock given.
 */
#include <string.h>
#include "admin-api/stats_api.h"
#include "server/stats.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0: {
        stats_sample_t s, back;
        if (stats_sample_decode(p, n, &s) != 0)
            return 0;
        size_t len;
        void *rec = stats_sample_encode(&s, &len);
        FUZZ_CHECK(stats_sample_decode(rec, len, &back) == 0);
        FUZZ_CHECK(memcmp(&s, &back, sizeof(s)) == 0);
        free(rec);
        break;
    }
    case 1: {
        stats_bw_sample_t b, back;
        if (stats_bw_decode(p, n, &b) != 0)
            return 0;
        size_t len;
        void *rec = stats_bw_encode(&b, &len);
        FUZZ_CHECK(stats_bw_decode(rec, len, &back) == 0);
        FUZZ_CHECK(back.start == b.start && back.interval == b.interval && back.bytes == b.bytes);
        free(rec);
        break;
    }
    default: {
        char text[256];
        int64_t t, again, now = 1700000000;
        if (n >= sizeof(text))
            n = sizeof(text) - 1;
        memcpy(text, p, n);
        text[n] = '\0';
        if (admin_stats_parse_time(text, now, &t) != 0)
            return 0;
        FUZZ_CHECK(admin_stats_parse_time(text, now, &again) == 0 && again == t);
        if (strcmp(text, "now") == 0)
            FUZZ_CHECK(t == now);
        break;
    }
    }
    return 0;
}

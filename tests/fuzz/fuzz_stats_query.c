/*
 * tests/fuzz/fuzz_stats_query.c — the stats endpoints' parsers of request bytes: the query
 * values of the historical API and /stats/sla (admin_stats_query_param: from, to, by, region,
 * month, then admin_stats_parse_time on from and to), the paths the stats, Fastly-stats and
 * real-time routes claim, and the real-time part after "/ts/" (admin_realtime_parse_ts).
 *
 * Input: a request path with its query string, as h2o hands it to the router.
 *
 * Invariants: a query value found is NUL-terminated inside its buffer and holds no NUL (a %00
 * is refused); a time that parses parses again the same; a real-time ask is one of the three,
 * its limit 1..STATS_RT_KEEP and its timestamp a positive number of at most 12 digits; a
 * refusal always says why.
 */
#include <string.h>
#include "admin-api/stats_api.h"
#include "admin-api/metrics_int.h"
#include "server/stats_realtime.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"from", "to", "by", "region", "month", "limit"};
    const char *path = (const char *)data;
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    req.path = h2o_iovec_init(path, size);

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char buf[128];
        memset(buf, 0x5a, sizeof(buf));
        int rc = admin_stats_query_param(&req, names[i], buf, sizeof(buf));
        FUZZ_CHECK(rc == -1 || rc == 0 || rc == 1);
        if (rc != 1)
            continue;
        size_t n = strnlen(buf, sizeof(buf));
        FUZZ_CHECK(n < sizeof(buf));
        if (i <= 1) {
            int64_t t, again, now = 1700000000;
            if (admin_stats_parse_time(buf, now, &t) == 0)
                FUZZ_CHECK(admin_stats_parse_time(buf, now, &again) == 0 && again == t);
        }
    }

    /* the path without its query, as the router matches it */
    const char *q = memchr(path, '?', size);
    size_t plen = q != NULL ? (size_t)(q - path) : size;
    unsigned methods = 0;
    if (admin_stats_route.match(path, plen, &methods))
        FUZZ_CHECK(methods != 0);
    if (admin_stats_fastly_route.match(path, plen, &methods))
        FUZZ_CHECK(methods != 0);
    if (admin_realtime_route.match(path, plen, &methods))
        FUZZ_CHECK(methods != 0);

    admin_rt_ask_t ask;
    int64_t after;
    size_t limit;
    const char *detail = NULL;
    if (admin_realtime_parse_ts(path, size, &ask, &after, &limit, &detail) == 0) {
        FUZZ_CHECK(ask == ADMIN_RT_LAST || ask == ADMIN_RT_HOUR || ask == ADMIN_RT_AFTER);
        FUZZ_CHECK(limit >= 1 && limit <= STATS_RT_KEEP);
        if (ask == ADMIN_RT_AFTER)
            FUZZ_CHECK(after > 0 && after < INT64_C(1000000000000));
    } else {
        FUZZ_CHECK(detail != NULL && detail[0] != '\0');
    }
    return 0;
}

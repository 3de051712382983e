/*
 * server/stats_sla.c — the SLA arithmetic behind /stats/sla and the `sla` of /stats: the
 * standard 95th percentile of the bandwidth samples, whether a minute was degraded, and the
 * availability band of a month.
 *
 * What it owns: nothing; every function is pure (stats_p95_standard sorts the array it is
 * given, in place). Exact where it decides: a degraded minute and the band are computed
 * with integers (128-bit against overflow), never with floating point, so a figure at a
 * band's edge always falls on the same side.
 *
 * Threads: any.
 */
#include <stdint.h>
#include <stdlib.h>
#include "server/stats.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t stats_p95_standard(uint64_t *vals, size_t n)
{
    if (n == 0)
        return 0;
    qsort(vals, n, sizeof(*vals), cmp_u64);
    size_t drop = n / 20; /* the top 5%, rounded down */
    return vals[n - 1 - drop];
}

int stats_minute_degraded(uint64_t requests, uint64_t synth_5xx, uint32_t share_ppm)
{
    if (requests == 0)
        return 0;
    /* synth_5xx / requests > share_ppm / 1e6, without division; 128-bit against overflow */
    return (unsigned __int128)synth_5xx * 1000000u > (unsigned __int128)share_ppm * requests;
}

stats_sla_band_t stats_sla_band(uint64_t total, uint64_t degraded)
{
    if (total == 0 || degraded == 0)
        return STATS_SLA_100_9999;
    if (degraded > total)
        degraded = total;
    unsigned __int128 up = (unsigned __int128)(total - degraded), t = total;
    /* availability >= X% <=> up * 10000 >= X*100 * total */
    if (up * 10000 >= t * 9999)
        return STATS_SLA_100_9999;
    if (up * 1000 >= t * 999)
        return STATS_SLA_9999_999;
    if (up * 100 >= t * 99)
        return STATS_SLA_999_990;
    if (up * 100 >= t * 98)
        return STATS_SLA_990_980;
    return STATS_SLA_BELOW_980;
}

const char *stats_sla_band_name(stats_sla_band_t band)
{
    switch (band) {
    case STATS_SLA_100_9999: return "100%-99.99%";
    case STATS_SLA_9999_999: return "99.99%-99.9%";
    case STATS_SLA_999_990: return "99.9%-99.0%";
    case STATS_SLA_990_980: return "99.0%-98.0%";
    case STATS_SLA_BELOW_980: return "below 98.0%";
    }
    return "unknown";
}

/*
 * server/stats_int.h — internals shared by the statistics files: stats.c (per-thread
 * counters, the logger, the readers, the life cycle), stats_history.c (the history in the
 * store and its sampler thread) and stats_sla.c (the SLA arithmetic). Not a public
 * interface: nothing outside server/stats*.c includes it; server/stats.h is the module's.
 */
#ifndef EDGECACHE_STATS_INT_H
#define EDGECACHE_STATS_INT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "common/alloc.h"
#include "storage/store.h"

/** The history's state at start_time, for these periods (stats_init; main thread, before
 * any stats_tick or sampler). Borrows store, which must outlive stats_history_stop. */
void stats_history_init(store_t *store, int64_t start_time, uint32_t minute_seconds, uint32_t sample_interval,
                        uint32_t retention_days);

/** Start the sampler thread (stats_start; main thread, once). Returns 0 or -1 with a message. */
int stats_sampler_start(char *err, size_t errlen);

/** Stop and join the sampler if it runs, then write the current partial periods
 * (stats_stop; main thread, before the counters are freed). */
void stats_history_stop(void);

#endif

/*
 * server/stats_realtime.h — the stats module's real-time figures: one sample per second of
 * wall-clock time, kept in memory for the last STATS_RT_KEEP seconds, behind Fastly's
 * real-time analytics API (GET /v1/channel/<sid>/ts/..., admin-api/realtime_api.c).
 *
 * A sample is the difference between two snapshots of the per-thread counters
 * (stats_snapshot) taken by the real-time thread just after each second boundary, plus the
 * gauges of that moment (objects and bytes in memory and on disk, each backend's health).
 * The hit path pays nothing for it: the thread only reads the counters the requests already
 * write.
 *
 * Part of the stats module (server/stats.h); its own header so that the readers of the
 * real-time figures need not see the history's records.
 */
#ifndef EDGECACHE_STATS_REALTIME_H
#define EDGECACHE_STATS_REALTIME_H

#include <stddef.h>
#include <stdint.h>
#include "server/backend.h"
#include "server/stats.h"

/* seconds kept: Fastly's ts/h answers the last 120 */
#define STATS_RT_KEEP 120
/* backends carried in each sample at most (the rest are left out of the real-time figures) */
#define STATS_RT_BACKENDS 16

typedef struct stats_rt_backend {
    char name[BACKEND_NAME_MAX + 1];
    int healthy;
    uint64_t requests, errors; /* during the second */
} stats_rt_backend_t;

/* one second */
typedef struct stats_rt_sample {
    int64_t recorded; /* unix second covered: [recorded, recorded + 1) */
    stats_totals_t d; /* the counters' increase during it (purge_latency_max_us: the running max) */
    uint64_t mem_objects, mem_bytes, disk_objects, disk_bytes; /* gauges at its end */
    size_t nbackends;
    stats_rt_backend_t backends[STATS_RT_BACKENDS];
} stats_rt_sample_t;

/**
 * Start the thread that closes one sample a second (after stats_init; main thread). Takes
 * the counters' baseline now. Returns 0 or -1 with a message.
 */
int stats_rt_start(char *err, size_t errlen);

/** Stop and join the thread (no-op when not running). Main thread, before stats_stop frees
 * the counters. */
void stats_rt_stop(void);

/**
 * Close the sample of the second before `now` (unix seconds): the counters' increase since
 * the previous call. A call for a second already closed (the clock went back, or two calls
 * in one second) adds nothing and keeps the counts for the next one. The first call only
 * takes the baseline. Real-time thread, or a unit test with the thread not running.
 */
void stats_rt_tick(int64_t now);

/** The newest sample's second, or -1 when there is none yet. Any thread. */
int64_t stats_rt_latest(void);

/**
 * Copy the samples with recorded > after, oldest first, at most `max` (the newest ones when
 * there are more), into out (caller's array of `max`). Returns the number copied. Any thread
 * (a short lock, never held by the request path).
 */
size_t stats_rt_read(int64_t after, stats_rt_sample_t *out, size_t max);

/** The datacenter key of this node's figures: the name given to stats_rt_set_node_name, else
 * purge_node_name's (the host name). Any thread; the text is static. */
const char *stats_rt_node_name(void);

/** Name this node's figures (--node-name; copied, at most 63 bytes). Main thread, before
 * stats_start; NULL or "" keeps the host name. */
void stats_rt_set_node_name(const char *name);

#endif

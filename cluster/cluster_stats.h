/*
 * cluster/cluster_stats.h — the cluster's counters for the admin API (/stats, /metrics).
 */
#ifndef EDGECACHE_CLUSTER_STATS_H
#define EDGECACHE_CLUSTER_STATS_H

#include <stddef.h>
#include <jansson.h>

/** The "cluster" object of /stats (a new reference); JSON null when not a cluster. Any thread. */
json_t *cluster_stats_json(void);

/** The edgecache_cluster_* Prometheus lines into buf (NUL-terminated, whole lines); returns their length, 0 when not a cluster. */
size_t cluster_metrics_format(char *buf, size_t cap);

#endif

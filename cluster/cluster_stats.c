/*
 * cluster/cluster_stats.c — the cluster's counters as the admin API shows them: a "cluster"
 * object in /stats and edgecache_cluster_* lines in /metrics. Kept here so that the stats
 * and metrics files only call in (one line each). Any thread: it reads a snapshot.
 */
#include "cluster/cluster_stats.h"

#include <stdio.h>
#include "cluster/cluster.h"

json_t *cluster_stats_json(void)
{
    cluster_stats_t s;
    cluster_get_stats(&s);
    if (!s.enabled)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "connected", json_boolean(s.connected));
    json_object_set_new(o, "connect_error", s.connect_error[0] != '\0' ? json_string(s.connect_error) : json_null());
    json_object_set_new(o, "ready", json_boolean(s.ready));
    json_object_set_new(o, "applied_seq", json_integer((json_int_t)s.applied_seq));
    json_object_set_new(o, "stream_last_seq", json_integer((json_int_t)s.stream_last_seq));
    json_object_set_new(o, "lag", json_integer((json_int_t)s.lag));
    json_object_set_new(o, "published", json_integer((json_int_t)s.published));
    json_object_set_new(o, "publish_failed", json_integer((json_int_t)s.publish_failed));
    json_object_set_new(o, "applied", json_integer((json_int_t)s.applied));
    json_object_set_new(o, "redelivered", json_integer((json_int_t)s.redelivered));
    json_object_set_new(o, "duplicates_skipped", json_integer((json_int_t)s.duplicates));
    json_object_set_new(o, "invalid_skipped", json_integer((json_int_t)s.invalid));
    json_object_set_new(o, "catchup_runs", json_integer((json_int_t)s.catchup_runs));
    json_object_set_new(o, "consumer_stalls", json_integer((json_int_t)s.consumer_stalls));
    json_object_set_new(o, "gap_invalidations", json_integer((json_int_t)s.gap_invalidations));
    json_object_set_new(o, "local_only", json_integer((json_int_t)s.local_only));
    json_object_set_new(o, "outbox", json_integer((json_int_t)s.outbox));
    json_object_set_new(o, "stale_peer_not_stored", json_integer((json_int_t)s.stale_peer_not_stored));
    return o;
}

size_t cluster_metrics_format(char *buf, size_t cap)
{
    cluster_stats_t s;
    cluster_get_stats(&s);
    if (!s.enabled || cap == 0) {
        if (cap > 0)
            buf[0] = '\0';
        return 0;
    }
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"edgecache_cluster_connected", "gauge", "1 when the NATS connection is up."},
        {"edgecache_cluster_ready", "gauge", "1 once caught up with the purge stream as it was at start."},
        {"edgecache_cluster_applied_sequence", "gauge", "The purge stream sequence applied on this node."},
        {"edgecache_cluster_lag", "gauge", "Purges in the stream not yet applied on this node."},
        {"edgecache_cluster_published_total", "counter", "Purges this node published and the stream stored."},
        {"edgecache_cluster_publish_failed_total", "counter", "Publishes the stream did not acknowledge."},
        {"edgecache_cluster_applied_total", "counter", "Purges applied from the purge stream."},
        {"edgecache_cluster_redelivered_total", "counter", "Stream messages delivered more than once."},
        {"edgecache_cluster_duplicates_total", "counter", "Stream messages skipped: already applied."},
        {"edgecache_cluster_invalid_total", "counter", "Stream messages that were not purges (skipped)."},
        {"edgecache_cluster_catchup_runs_total", "counter", "Consumer set-ups from the applied sequence."},
        {"edgecache_cluster_consumer_stalls_total",
         "counter", "Consumer set-ups because it delivered nothing for 3 s (15 s without a leader) while this node was behind the stream."},
        {"edgecache_cluster_gap_invalidations_total", "counter",
         "Whole-cache invalidations: the stream no longer held what this node missed."},
        {"edgecache_cluster_local_only_total", "counter", "Purges applied on this node only (no quorum)."},
    };
    uint64_t v[] = {(uint64_t)s.connected, (uint64_t)s.ready, s.applied_seq,       s.lag,        s.published,
                    s.publish_failed,      s.applied,         s.redelivered,       s.duplicates, s.invalid,
                    s.catchup_runs,        s.consumer_stalls, s.gap_invalidations, s.local_only};
    size_t len = 0;
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        int n = snprintf(buf + len, cap - len, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", m[i].name, m[i].help, m[i].name,
                         m[i].type, m[i].name, (unsigned long long)v[i]);
        if (n < 0 || (size_t)n >= cap - len) {
            buf[len] = '\0'; /* whole lines only */
            break;
        }
        len += (size_t)n;
    }
    return len;
}

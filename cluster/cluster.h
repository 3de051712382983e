/*
 * cluster/cluster.h — a cache network: every purge accepted by any node reaches every node,
 * through a NATS JetStream stream (the purge stream), with nothing home-made in between.
 *
 * Off unless --cluster is given: then edgecache is the single node it always was, and no
 * NATS is touched. On, every purge the purge module takes from an HTTP door is published to
 * the stream (its first purge id as the message id, so that a retried publish is stored once)
 * and answered only once the stream acknowledged it and this node applied it; every node
 * applies the stream in order through its own durable consumer and records the sequence it
 * applied with the purges (store_note_bus_seq), so that each purge is applied once per node.
 * The event loops never wait on NATS: a consumer thread and publisher threads do.
 */
#ifndef EDGECACHE_CLUSTER_H
#define EDGECACHE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "storage/store.h"

/** The purge stream and its subject (one per NATS account). */
#define CLUSTER_STREAM "EDGECACHE_PURGES"
#define CLUSTER_SUBJECT "edgecache.purge"

typedef struct cluster_options {
    const char *urls;         /* "nats://HOST:PORT[,...]" (validated by config) */
    const char *node;         /* [A-Za-z0-9_]{1,32} (validated by config) */
    uint64_t retention_s;     /* the stream's MaxAge when this node creates it */
    int local_on_unavailable; /* 1: cluster.on_unavailable local; 0: reject */
    store_t *store;           /* borrowed; must outlive cluster_stop */
    /* how the node proves itself and checks NATS; NULL or "" = not used (all borrowed, read during cluster_start) */
    const char *creds;        /* a .creds file: user JWT and NKey seed */
    const char *nkey_seed;    /* a user NKey seed file */
    const char *tls_ca;       /* TLS to NATS, servers verified with this CA file */
    const char *tls_cert;     /* client certificate (with tls_key) */
    const char *tls_key;      /* its private key */
    const char *tls_hostname; /* the name the servers' certificates must carry */
} cluster_options_t;

/** Counters and state for /stats and /metrics (a snapshot; any thread). */
typedef struct cluster_stats {
    int enabled;                    /* --cluster given */
    int connected;                  /* the NATS connection is up */
    char connect_error[160];        /* why the last connection attempt failed or the server said no, "" if none */
    int ready;                      /* caught up with the stream as it was at start (cluster_cache_usable) */
    uint64_t applied_seq;           /* the stream sequence applied here (durable) */
    uint64_t stream_last_seq;       /* the stream's last sequence, as last seen */
    uint64_t lag;                   /* stream_last_seq - applied_seq (0 when ahead) */
    uint64_t published;             /* purges this node published and the stream acknowledged */
    uint64_t publish_failed;        /* publishes the stream did not acknowledge (answered 503, or applied locally) */
    uint64_t applied;               /* purges applied from the bus (this node's own included) */
    uint64_t redelivered;           /* messages delivered more than once */
    uint64_t duplicates;            /* messages skipped: at or below the applied sequence */
    uint64_t invalid;               /* messages that were not well-formed purges (skipped) */
    uint64_t catchup_runs;          /* consumer set-ups from the applied sequence (start, reconnects) */
    uint64_t consumer_stalls;       /* of them, because it delivered nothing for 3 s (15 s without a leader) while behind */
    uint64_t gap_invalidations;     /* whole-cache invalidations: the stream no longer held what this node missed */
    uint64_t local_only;            /* purges applied here only (cluster.on_unavailable local) */
    uint64_t outbox;                /* of those, publishes still queued */
    uint64_t stale_peer_not_stored; /* peer (shield) responses served but not stored: the peer was behind */
} cluster_stats_t;

/**
 * Start the cluster: register with the purge module (purge_module_set_bus, the node name in
 * purge ids) and start the threads that connect to NATS (retrying forever, with backoff), make
 * or bind the purge stream, and apply it. Returns at once: nothing here waits for NATS.
 * Returns 0, or -1 with one line in err (the NATS options could not be set up, or a credentials,
 * seed, CA or certificate file could not be read: a configuration error). err never holds a
 * password, token or seed.
 * Call once, after purge_module_init and before any loop submits a purge.
 */
int cluster_start(const cluster_options_t *opt, char *err, size_t errlen);

/** Stop the threads and close the connection (purges still waiting are answered 503). */
void cluster_stop(void);

/** 1 when --cluster is on. */
int cluster_enabled(void);

/**
 * 1 when the cache may be served: not a cluster, or caught up with the purge stream as it was
 * when this node started, or when its store last failed to apply it (a full disk) (until then
 * the proxy passes requests to the origin, so that a node that missed purges never serves what
 * they removed). Any thread; an atomic read.
 */
int cluster_cache_usable(void);

/**
 * GET /cluster: this node, the stream's last sequence and every node heard, alive or not,
 * with its applied sequence and lag. A new reference; NULL when not a cluster. Any thread.
 */
json_t *cluster_nodes_json(void);

/**
 * Which nodes have applied purge `id` (untrusted bytes, compared only): {"id","seq",
 * "applied":[...],"pending":[...],"complete"}; NULL when not a cluster or the id is not among
 * the CLUSTER_RECENT_IDS last this node applied. A new reference. Any thread.
 */
json_t *cluster_purge_status_json(const char *id, size_t id_len);

/** The stream sequence applied here (durable); 0 when not a cluster. Any thread. */
uint64_t cluster_applied_seq(void);

/** The response header name every cluster node sends, and its value (this node's applied sequence). */
#define CLUSTER_SEQ_HEADER "edgecache-purge-seq"

/** Write this node's Edgecache-Purge-Seq value into buf (cap >= 21); its length, 0 when not a cluster. */
size_t cluster_seq_header_value(char *buf, size_t cap);

/**
 * 1 when a peer's response with Edgecache-Purge-Seq `value` (untrusted) must not be stored by a
 * fetch that began when this node had applied `since`: the peer was behind (counted). 0 when
 * not a cluster, when the value is not a decimal, or when the peer was not behind.
 */
int cluster_peer_copy_is_stale(const char *value, size_t len, uint64_t since);

/** A snapshot of the counters (all zero when not a cluster). Any thread. */
void cluster_get_stats(cluster_stats_t *out);

#endif

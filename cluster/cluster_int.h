/*
 * cluster/cluster_int.h — what the cluster's files share: the one cluster state (cl), its
 * threads' hand-over structures and the counters. Internal to cluster/.
 *
 * Threads: the consumer thread (cluster.c) sets up the stream and applies it; the publisher
 * threads (cluster_pub.c) publish the purges of this node's loops and wait for their
 * acknowledgements (the first one also sends the heartbeats, cluster_nodes.c); cnats runs
 * its own threads for the connection and delivers the other nodes' heartbeats on one. They meet under cl.lock:
 * the publish queue, the outbox and the waiters (purges published, to be answered when the
 * consumer has applied their sequence). Counters are atomics, read by any thread.
 */
#ifndef EDGECACHE_CLUSTER_INT_H
#define EDGECACHE_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <nats/nats.h>
#include "cluster/cluster.h"
#include "server/purge.h"

#define CLUSTER_PUBLISHERS 16
#define CLUSTER_PUBLISH_WAIT_MS 2000   /* one attempt's wait for the stream's acknowledgement */
#define CLUSTER_PUBLISH_BUDGET_MS 6000 /* from the purge's arrival: a stream leader's failover fits; then no quorum (503) */
#define CLUSTER_APPLY_WAIT_MS 10000    /* acknowledged, then applied here: after this, 503 "not yet applied" */
#define CLUSTER_OUTBOX_PREFIX "cluster.outbox."
#define CLUSTER_MAX_NODES 64
#define CLUSTER_ALIVE_MS 10000                 /* a node not heard for this long is not alive (> CLUSTER_WAIT_ALL_MS) */
#define CLUSTER_WAIT_ALL_MS 5000               /* Edgecache-Purge-Wait: all waits at most this long */
#define CLUSTER_RECENT_IDS 4096                /* purge ids remembered with their stream sequence (purge status) */
#define CLUSTER_NODE_SUBJECT "edgecache.node." /* + node name: its applied sequence, after each batch and every second */
#define CLUSTER_STREAM_ID_KEY "cluster.stream_created" /* config record: the stream bus_seq counts in (cluster.c) */

/* a node as last heard (core NATS heartbeats; this node's own entry too) */
typedef struct cluster_node {
    char name[33];
    uint64_t applied;
    int64_t heard_ms;
} cluster_node_t;

typedef struct cluster_recent {
    char id[PURGE_ID_CAP];
    uint64_t seq;
} cluster_recent_t;

/* one publish: a purge of this node's loops (job set), or an outbox entry (job NULL) */
typedef struct cluster_pub {
    struct cluster_pub *next;
    char *data; /* the encoded purge (cluster_msg.h), owned */
    size_t len;
    char msg_id[PURGE_ID_CAP];
    int renewed; /* the stream's message id is msg_id, or msg_id.rN after N answers of "duplicate" with no sequence */
    purge_job_t *job;
    int wait_all;        /* Edgecache-Purge-Wait: all */
    int64_t deadline_ms; /* job: give up publishing then (CLUSTER_PUBLISH_BUDGET_MS after it came) */
} cluster_pub_t;

/* a published purge whose answer waits until the consumer has applied seq */
typedef struct cluster_waiter {
    struct cluster_waiter *next;
    uint64_t seq;
    int64_t deadline_ms;
    purge_job_t *job;
    int wait_all;          /* then wait for every live node (cluster_nodes.c) */
    uint64_t epoch_needed; /* 0, or seq may count in a stream made anew: applied once stream_epoch reaches this */
    int applied;           /* scratch for cluster_waiters_settle */
} cluster_waiter_t;

typedef struct cluster_state {
    int on;
    char node[33];
    char durable[64]; /* the node's consumer */
    store_t *store;
    int local_on_unavailable;
    uint64_t retention_s;
    int num_urls;

    natsOptions *opts;
    /* set by the consumer thread when it connects; cnats reconnects it; replaced (the consumer thread, under
     * conn_lock held for writing) only when cnats closed it for good. Other threads use nc and js under
     * conn_lock held for reading, and find them NULL between a close and the next connection. */
    pthread_rwlock_t conn_lock;
    natsConnection *nc;
    jsCtx *js;

    pthread_t consumer, publishers[CLUSTER_PUBLISHERS];
    int threads_started, publishers_started;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* publishers: work queued, or stopping; the consumer sleeps on it between retries */
    int stopping;
    int connected_once;      /* nc and js are set (under lock) */
    char connect_error[160]; /* the last reason NATS could not be reached or refused us; "" once connected */
    cluster_pub_t *queue, **queue_tail;
    cluster_pub_t *outbox, **outbox_tail; /* publishes owed by purges applied locally only */
    size_t outbox_len;
    cluster_waiter_t *waiters; /* sorted by seq */
    cluster_waiter_t *waitall; /* applied here, waiting for the other live nodes */
    cluster_node_t nodes[CLUSTER_MAX_NODES];
    size_t num_nodes;
    cluster_recent_t *recent; /* ring of CLUSTER_RECENT_IDS */
    size_t recent_next;
    cluster_recent_t *applied_msgs; /* ring of CLUSTER_RECENT_IDS: the message ids applied lately, one per message */
    size_t applied_msgs_next;
    natsSubscription *node_sub;
    int64_t stream_created; /* the bound stream's identity (the consumer thread's) */

    _Atomic uint64_t stream_epoch; /* moves on each time the consumer invalidates everything (a new stream, a gap) */
    _Atomic uint64_t applied_seq;  /* durable: the consumer sets it once store_note_bus_seq is done */
    _Atomic uint64_t stream_last;
    _Atomic uint64_t start_target; /* ready once applied up to it: the stream's last sequence at the first set-up (or
                                      when the store last failed to apply, or when the stream was made anew) */
    _Atomic int ready, connected, target_known;

    _Atomic uint64_t n_published, n_publish_failed, n_applied, n_redelivered, n_duplicates, n_invalid, n_catchups, n_gaps,
        n_local_only, n_stale_peer, n_stalls;
} cluster_state_t;

extern cluster_state_t cl;

/* cluster_auth.c */

/** Set the credentials and TLS of opt on opts (files read now). 0, or -1 with one line in err (no secret in it). */
int cluster_auth_setup(natsOptions *opts, const cluster_options_t *opt, char *err, size_t errlen);

/* cluster_pub.c */

/** The purge module's bus hook: encode, queue for a publisher (a loop's thread; never blocks). */
void cluster_pub_submit(void *arg, purge_job_t *job);

/** Start the publisher threads (and load the durable outbox). 0 or -1 with err. */
int cluster_pub_start(char *err, size_t errlen);

/** Stop them (after cl.stopping is set and broadcast); answer whatever still waits. */
void cluster_pub_stop(void);

/** The consumer applied up to seq: answer the waiters at or below it, and those past their deadline. */
void cluster_waiters_settle(uint64_t applied, int64_t now_ms);

/* cluster_absent.c */

/**
 * The stream info request said "not found": is the stream really gone? 1 only when every NATS
 * server that answered within a moment says "not found" (and, when knew_stream, on three calls
 * in a row); 0 when it may be there (do not make it; set up again later). The consumer thread.
 */
int cluster_stream_absent(int knew_stream);

/* cluster_stall.c */

#define CLUSTER_STALL_TICKS 3             /* ticks (about 1 s each) behind the stream with nothing applied: a stall */
#define CLUSTER_STALL_LEADERLESS_MS 15000 /* so long, while NATS names no leader for the consumer (an election) */

enum { CLUSTER_STALL_NONE, CLUSTER_STALL_WAIT_LEADER, CLUSTER_STALL_SETUP };

/* whether this node's consumer is stuck: the consumer thread's (zeroed to begin) */
typedef struct cluster_stall {
    int stalled;             /* ticks in a row behind the stream with nothing applied */
    int limit;               /* ticks that make a stall: CLUSTER_STALL_TICKS, doubled after each set-up, to 60 */
    int leaderless;          /* set by the caller: the consumer's last info timed out or named no leader */
    int said_leaderless;     /* this stall's wait for a leader was said */
    int64_t since_ms;        /* this stall's first tick */
    uint64_t applied_before; /* the applied sequence the tick before */
} cluster_stall_t;

/**
 * One tick: the stream's last sequence, what the node has applied, and whether the store is
 * failing (then nothing is a stall). CLUSTER_STALL_SETUP: set the consumer up again (say why);
 * CLUSTER_STALL_WAIT_LEADER: a stall, but waiting for NATS to elect the consumer a leader
 * (say so: once per stall); CLUSTER_STALL_NONE otherwise.
 */
int cluster_stall_tick(cluster_stall_t *st, uint64_t stream_last, uint64_t applied, int store_failing, int64_t now_ms);

/* cluster_nodes.c */

/** Subscribe to the other nodes' heartbeats (the consumer thread, once connected). */
void cluster_nodes_start(void);

/** Say this node's applied sequence to the others (and note it in the table). Never blocks. */
void cluster_nodes_announce(void);

/** A purge applied here that waits for every live node: answered by cluster_waitall_settle. Under cl.lock. */
void cluster_waitall_add(purge_job_t *job, uint64_t seq, int64_t now_ms);

/** Answer the wait-all purges every live node has applied, and those past their deadline (all, when stopping). */
void cluster_waitall_settle(int64_t now_ms);

/** Remember that purge `id` is stream sequence `seq` (the consumer thread). */
void cluster_recent_note(const char *id, size_t id_len, uint64_t seq);

/** Remember that message `id` (its first purge id) is stream sequence `seq`, applied here (the consumer thread). */
void cluster_msg_applied_note(const char *id, size_t id_len, uint64_t seq);

/** 1 when message `id` was applied here as sequence `seq` (among the CLUSTER_RECENT_IDS last). Under cl.lock. */
int cluster_msg_applied_locked(const char *id, uint64_t seq);

#endif

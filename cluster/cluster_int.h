/*
 * cluster/cluster_int.h — what the cluster's files share: the one cluster state (cl), its
 * threads' hand-over structures and the counters. Internal to cluster/.
 *
 * Threads: the consumer thread (cluster.c) sets up the stream and applies it; the publisher
 * threads (cluster_pub.c) publish the purges of this node's loops and wait for their
 * acknowledgements; cnats runs its own threads for the connection. They meet under cl.lock:
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

#define CLUSTER_PUBLISHERS 4
#define CLUSTER_PUBLISH_WAIT_MS 2000   /* one attempt's wait for the stream's acknowledgement */
#define CLUSTER_PUBLISH_BUDGET_MS 6000 /* from the purge's arrival: a stream leader's failover fits; then no quorum (503) */
#define CLUSTER_APPLY_WAIT_MS 10000    /* acknowledged, then applied here: after this, 503 "not yet applied" */
#define CLUSTER_OUTBOX_PREFIX "cluster.outbox."

/* one publish: a purge of this node's loops (job set), or an outbox entry (job NULL) */
typedef struct cluster_pub {
    struct cluster_pub *next;
    char *data; /* the encoded purge (cluster_msg.h), owned */
    size_t len;
    char msg_id[PURGE_ID_CAP];
    purge_job_t *job;
    int64_t deadline_ms; /* job: give up publishing then (CLUSTER_PUBLISH_BUDGET_MS after it came) */
} cluster_pub_t;

/* a published purge whose answer waits until the consumer has applied seq */
typedef struct cluster_waiter {
    struct cluster_waiter *next;
    uint64_t seq;
    int64_t deadline_ms;
    purge_job_t *job;
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
    natsConnection *nc; /* set once by the consumer thread's first connect; cnats reconnects it */
    jsCtx *js;

    pthread_t consumer, publishers[CLUSTER_PUBLISHERS];
    int threads_started, publishers_started;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* publishers: work queued, or stopping; the consumer sleeps on it between retries */
    int stopping;
    int connected_once; /* nc and js are set (under lock) */
    cluster_pub_t *queue, **queue_tail;
    cluster_pub_t *outbox, **outbox_tail; /* publishes owed by purges applied locally only */
    size_t outbox_len;
    cluster_waiter_t *waiters; /* sorted by seq */

    _Atomic uint64_t applied_seq; /* durable: the consumer sets it once store_note_bus_seq is done */
    _Atomic uint64_t stream_last;
    _Atomic uint64_t start_target; /* the stream's last sequence when this process first set up */
    _Atomic int ready, connected, target_known;

    _Atomic uint64_t n_published, n_publish_failed, n_applied, n_redelivered, n_duplicates, n_invalid, n_catchups, n_gaps,
        n_local_only;
} cluster_state_t;

extern cluster_state_t cl;

/* cluster_pub.c */

/** The purge module's bus hook: encode, queue for a publisher (a loop's thread; never blocks). */
void cluster_pub_submit(void *arg, purge_job_t *job);

/** Start the publisher threads (and load the durable outbox). 0 or -1 with err. */
int cluster_pub_start(char *err, size_t errlen);

/** Stop them (after cl.stopping is set and broadcast); answer whatever still waits. */
void cluster_pub_stop(void);

/** The consumer applied up to seq: answer the waiters at or below it, and those past their deadline. */
void cluster_waiters_settle(uint64_t applied, int64_t now_ms);

#endif

/*
 * cluster/cluster.c — the cluster's lifecycle and its consumer: connect to NATS, make or bind
 * the purge stream, catch up, and apply every purge of the stream to this node, in order.
 *
 * The invariant: meta "bus_seq" (store_note_bus_seq) is never ahead of the purges it covers.
 * The consumer takes a batch of messages, submits their purges and then the batch's last
 * sequence to the store under one store_hold (so, one journal segment), waits until all of
 * them are durable, and only then acks the messages and moves cl.applied_seq. A message at or
 * below the applied sequence (a redelivery: an ack lost, a restart) is skipped, so each purge
 * is applied once per node. This node's own purges take the same path: a loop's purge is
 * published (cluster_pub.c) and answered when the consumer has applied its sequence here.
 *
 * Catch-up: each (re)connection starts the node's durable consumer afresh at applied + 1
 * (DeliverByStartSequence), so the store's record, not the server's ack floor, decides where
 * the node resumes. If the stream no longer holds applied + 1 (retention passed, or a stream
 * made anew), the node invalidates its whole cache (a purge-all, which covers everything
 * published until now) and records the stream's last sequence as applied. The node is ready
 * (cluster_cache_usable) once it has applied the stream's last sequence as it was at its
 * first set-up; until then the proxy does not serve from the cache. A store that cannot apply
 * a batch (a full disk) makes the node not ready again, with the stream's last sequence as it
 * is then as the target: its cache still holds what the batch removes.
 *
 * A sequence means something only in the stream it counts in: the store keeps that stream's
 * identity (its creation time, config record CLUSTER_STREAM_ID_KEY) beside bus_seq. A stream
 * deleted and made anew restarts at 1, so a node that finds another identity invalidates
 * everything (as for a gap) and counts from the new stream's last sequence; the record is
 * written only after that purge-all is durable. While running, the tick notices a stream made
 * anew at once, and a stream or a durable consumer deleted under it after three ticks (a pull
 * consumer that is gone may only time out), and sets the consumer up again.
 *
 * Threads: the consumer thread owns the subscription and the set-up; cnats owns the
 * connection's threads (its reconnects, forever, with backoff). Nothing here runs on an
 * event loop except cluster_cache_usable and cluster_get_stats (atomic reads).
 */
#include "cluster/cluster_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cluster/cluster_msg.h"
#include "common/alloc.h"
#include "common/errbuf.h"
#include "common/now.h"

#define FETCH_BATCH 256
#define FETCH_WAIT_MS 250
#define DUPLICATE_WINDOW_S 600   /* the stream's msg-id dedupe window: a publish retried within it is stored once */
#define STREAM_MAX_MSG (1 << 20) /* the stream refuses larger messages (NATS' default max_payload too) */

cluster_state_t cl;

/* one batch's purges and its bus seq, on their way through the store */
typedef struct apply_batch {
    pthread_mutex_t lock;
    pthread_cond_t done;
    size_t pending;
    int err;
} apply_batch_t;

/* ---------------------------------------------------------------- small helpers */

static void sleep_or_stop(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&cl.lock);
    while (!cl.stopping && pthread_cond_timedwait(&cl.wake, &cl.lock, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&cl.lock);
}

static int stopping(void)
{
    pthread_mutex_lock(&cl.lock);
    int s = cl.stopping;
    pthread_mutex_unlock(&cl.lock);
    return s;
}

static void on_batch_part(void *arg, int err)
{
    apply_batch_t *b = arg;
    pthread_mutex_lock(&b->lock);
    if (err != 0 && b->err == 0)
        b->err = err;
    if (--b->pending == 0)
        pthread_cond_signal(&b->done);
    pthread_mutex_unlock(&b->lock);
}

static void on_job_done(void *arg, const purge_result_t *res)
{
    on_batch_part(arg, res->store_err);
}

static void on_seq_done(void *arg, const store_purge_result_t *res)
{
    on_batch_part(arg, res->err);
}

static void batch_wait(apply_batch_t *b)
{
    pthread_mutex_lock(&b->lock);
    while (b->pending > 0)
        pthread_cond_wait(&b->done, &b->lock);
    pthread_mutex_unlock(&b->lock);
}

/* Submit jobs[0..n) and then bus seq `seq` in one store hold; wait until all are durable. 0 or a store error. */
static int apply_durably(purge_job_t **jobs, size_t n, uint64_t seq)
{
    apply_batch_t b = {.pending = n + 1};
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.done, NULL);
    store_hold_begin(cl.store);
    for (size_t i = 0; i < n; i++)
        purge_job_submit(jobs[i], NULL, on_job_done, &b);
    store_note_bus_seq(cl.store, seq, on_seq_done, &b);
    store_hold_end(cl.store);
    batch_wait(&b);
    pthread_mutex_destroy(&b.lock);
    pthread_cond_destroy(&b.done);
    if (b.err == 0)
        atomic_store(&cl.applied_seq, seq);
    return b.err;
}

/* ---------------------------------------------------------------- applying the stream */

static purge_job_t *job_from_msg(const cluster_msg_t *m)
{
    purge_job_t *job = purge_job_new(m->kind, m->soft, PURGE_FROM_BUS);
    for (size_t i = 0; i < m->num_items; i++)
        purge_job_add_key_with_id(job, m->items[i].key != NULL ? m->items[i].key : "", m->items[i].key_len, m->items[i].id,
                                  m->items[i].id_len);
    return job;
}

static void note_stream_last(uint64_t last)
{
    uint64_t cur = atomic_load(&cl.stream_last);
    while (last > cur && !atomic_compare_exchange_weak(&cl.stream_last, &cur, last))
        ;
}

static void check_ready(void)
{
    if (!atomic_load(&cl.ready) && atomic_load(&cl.target_known) &&
        atomic_load(&cl.applied_seq) >= atomic_load(&cl.start_target)) {
        atomic_store(&cl.ready, 1);
        fprintf(stderr, "edgecache: cluster: node %s caught up with the purge stream (sequence %llu): serving the cache\n",
                cl.node, (unsigned long long)atomic_load(&cl.applied_seq));
    }
}

/* the consumer was just set up: its first message may be past applied + 1 (messages deleted from the stream) */
static int fresh_consumer;

/* the last batch could not be made durable (a full disk, an I/O error): said once, retried with backoff */
static int store_failing;

/*
 * Apply one fetched batch, in stream order. Returns 0 when every message is acked (applied or
 * skipped); -2 when the store could not make them durable (nothing acked); -1 when a message
 * is missing before one that came (a delivery lost on the way would otherwise be skipped for
 * good when it came back below the applied sequence): what is past it is not acked. On either,
 * the caller starts the consumer again at applied + 1.
 */
static int apply_batch(natsMsgList *list)
{
    purge_job_t **jobs = alloc_xcalloc((size_t)list->Count, sizeof(*jobs), "cluster batch");
    size_t n = 0;
    int count = list->Count, gap = 0;
    uint64_t applied = atomic_load(&cl.applied_seq), last = applied;
    for (int i = 0; i < count; i++) {
        jsMsgMetaData *md = NULL;
        if (natsMsg_GetMetaData(&md, list->Msgs[i]) != NATS_OK)
            continue; /* not a stream message (a status): nothing to apply or ack */
        uint64_t seq = md->Sequence.Stream;
        note_stream_last(seq + md->NumPending);
        if (md->NumDelivered > 1)
            atomic_fetch_add(&cl.n_redelivered, 1);
        jsMsgMetaData_Destroy(md);
        if (seq <= last) { /* applied already (a redelivery, or a consumer started again below it) */
            atomic_fetch_add(&cl.n_duplicates, 1);
            continue;
        }
        if (seq != last + 1 && !fresh_consumer) {
            count = i; /* acks stop here too */
            gap = 1;
            break;
        }
        fresh_consumer = 0;
        cluster_msg_t m;
        if (cluster_msg_decode(natsMsg_GetData(list->Msgs[i]), (size_t)natsMsg_GetDataLength(list->Msgs[i]), &m) != 0) {
            /* hostile or foreign bytes on our subject: passed over, never applied */
            if (atomic_fetch_add(&cl.n_invalid, 1) < 10)
                fprintf(stderr, "edgecache: cluster: stream message %llu is not a purge; skipped\n", (unsigned long long)seq);
        } else {
            for (size_t k = 0; k < m.num_items; k++)
                cluster_recent_note(m.items[k].id, m.items[k].id_len, seq);
            cluster_msg_applied_note(m.items[0].id, m.items[0].id_len, seq); /* its message id */
            jobs[n++] = job_from_msg(&m);
            cluster_msg_free(&m);
        }
        last = seq;
    }
    if (last > applied) {
        int err = apply_durably(jobs, n, last);
        if (err != 0) {
            if (!store_failing) { /* once per episode: a full disk fails every retry */
                fprintf(stderr,
                        "edgecache: cluster: the store could not apply %zu purge(s) from the stream (error %d); they will "
                        "be delivered again (retrying with backoff); not serving the cache until they are applied\n",
                        n, err);
                /* the cache still holds what those purges remove: pass requests to the origin (as at start)
                 * until the node has applied the stream as far as it is now */
                uint64_t target = atomic_load(&cl.stream_last);
                if (target < last)
                    target = last;
                atomic_store(&cl.start_target, target);
                atomic_store(&cl.ready, 0);
            }
            store_failing = 1;
            free(jobs);
            return -2; /* nothing acked: the consumer starts again at the applied sequence */
        }
        atomic_fetch_add(&cl.n_applied, n);
        if (store_failing)
            fprintf(stderr, "edgecache: cluster: the store applies the stream's purges again\n");
        store_failing = 0;
    }
    free(jobs);
    for (int i = 0; i < count; i++)
        natsMsg_Ack(list->Msgs[i], NULL); /* a lost ack is a redelivery, skipped above */
    check_ready();
    if (last > applied)
        cluster_nodes_announce(); /* before the answers: a wait for all counts this node by its table entry */
    cluster_waiters_settle(atomic_load(&cl.applied_seq), now_mono_ms());
    return gap ? -1 : 0;
}

/* ---------------------------------------------------------------- set-up */

/* Say why a set-up step failed, once per different reason (it is retried forever). */
static void setup_failed(const char *step, natsStatus s, jsErrCode jerr)
{
    static char last[256];
    char line[256];
    snprintf(line, sizeof(line), "%s: %s (JetStream error %d)", step, natsStatus_GetText(s), (int)jerr);
    if (strcmp(line, last) != 0) {
        memcpy(last, line, sizeof(last));
        fprintf(stderr, "edgecache: cluster: %s; retrying\n", line);
    }
}

static int stream_replicas(void)
{
    char **servers = NULL;
    int count = 0, n = cl.num_urls;
    if (natsConnection_GetServers(cl.nc, &servers, &count) == NATS_OK) {
        for (int i = 0; i < count; i++)
            free(servers[i]);
        free(servers);
        n = count > n ? count : n;
    }
    return n >= 3 ? 3 : n >= 1 ? n : 1;
}

static int64_t stream_id_load(void);

/* The stream's first and last sequences and its creation time (its identity), making the stream when it is missing. */
static int stream_bind(uint64_t *first, uint64_t *last, int64_t *created)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, cl.js, CLUSTER_STREAM, NULL, &jerr);
    /* servers recovering a quorum say "not found" for a moment about a stream that is there: a
     * stream made then would replace it (cluster_absent.c) */
    if ((s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) &&
        !cluster_stream_absent(cl.stream_created != 0 || stream_id_load() != 0))
        return -1;
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        jsStreamConfig sc;
        const char *subjects[] = {CLUSTER_SUBJECT};
        jsStreamConfig_Init(&sc);
        sc.Name = CLUSTER_STREAM;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Retention = js_LimitsPolicy;
        sc.Discard = js_DiscardOld;
        sc.Replicas = stream_replicas();
        sc.MaxAge = (int64_t)cl.retention_s * 1000000000LL;
        sc.Duplicates = (int64_t)DUPLICATE_WINDOW_S * 1000000000LL;
        sc.MaxMsgSize = STREAM_MAX_MSG; /* one fetch holds at most FETCH_BATCH of them, whatever max_payload is */
        s = js_AddStream(&si, cl.js, &sc, NULL, &jerr);
        if (s == NATS_OK)
            fprintf(stderr, "edgecache: cluster: made the purge stream %s (%lld replica(s), file storage, retention %llus)\n",
                    CLUSTER_STREAM, (long long)sc.Replicas, (unsigned long long)cl.retention_s);
    }
    if (s != NATS_OK) {
        setup_failed("the purge stream", s, jerr);
        if (si != NULL)
            jsStreamInfo_Destroy(si);
        return -1;
    }
    *first = si->State.FirstSeq;
    *last = si->State.LastSeq;
    *created = si->Created;
    jsStreamInfo_Destroy(si);
    return 0;
}

/*
 * The stream the applied sequence counts in: config record CLUSTER_STREAM_ID_KEY, the stream's
 * creation time in decimal nanoseconds (the same on every NATS server: it is the stream's
 * assignment's). 0 when never recorded (a store from before it, or a first start).
 */
static int64_t stream_id_load(void)
{
    char *val = NULL;
    size_t len = 0;
    int64_t id = 0;
    if (store_kv_get(cl.store, "config", CLUSTER_STREAM_ID_KEY, &val, &len) != 0)
        return 0;
    for (size_t i = 0; i < len && len <= 19; i++) { /* untrusted disk bytes: a decimal, or nothing */
        if (val[i] < '0' || val[i] > '9') {
            id = 0;
            break;
        }
        id = id * 10 + (val[i] - '0');
    }
    free(val);
    return id;
}

static int stream_id_save(int64_t created)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%lld", (long long)created);
    return store_kv_put_sync(cl.store, "config", CLUSTER_STREAM_ID_KEY, buf, (size_t)n);
}

/* This node missed purges the stream no longer holds: invalidate everything, once, durably. */
static int invalidate_all(uint64_t upto, uint64_t first)
{
    fprintf(stderr,
            "edgecache: cluster: node %s applied the purge stream up to %llu but the stream now holds %llu..%llu "
            "(retention passed, or a new stream): invalidating the whole cache\n",
            cl.node, (unsigned long long)atomic_load(&cl.applied_seq), (unsigned long long)first, (unsigned long long)upto);
    purge_job_t *job = purge_job_new(PURGE_ALL, 0, PURGE_FROM_BUS);
    if (apply_durably(&job, 1, upto) != 0)
        return -1;
    atomic_fetch_add(&cl.n_gaps, 1);
    atomic_fetch_add(&cl.stream_epoch, 1); /* what waits on a sequence of a stream made anew is covered now */
    return 0;
}

/* Make or bind the stream, catch up over a gap, and start the node's consumer at applied + 1. */
static natsSubscription *consumer_setup(void)
{
    uint64_t first = 0, last = 0;
    int64_t created = 0;
    if (stream_bind(&first, &last, &created) != 0)
        return NULL;
    uint64_t applied = atomic_load(&cl.applied_seq);
    int64_t known = stream_id_load();
    /*
     * A stream made anew (an operator deleted it; every node's sequences restart at 1) is not
     * the one our applied sequence counts in: starting at applied + 1 would skip its first
     * purges, and what the old stream held past our sequence is gone. Both are covered by
     * invalidating everything and counting from the new stream's last sequence. A store that
     * never recorded an identity (first start, or written by an older edgecache) keeps the
     * sequence checks below.
     */
    int new_stream = known != 0 && created != 0 && known != created;
    if (new_stream) {
        atomic_store(&cl.stream_last, last); /* the old stream's figure means nothing now */
        fprintf(stderr, "edgecache: cluster: the purge stream %s was made anew since this node last applied it\n",
                CLUSTER_STREAM);
    }
    note_stream_last(last);
    if (new_stream || applied > last || (last > applied && first > applied + 1)) {
        if (invalidate_all(last, first) != 0)
            return NULL;
        applied = last;
        if (new_stream && atomic_load(&cl.target_known))
            atomic_store(&cl.start_target, last); /* a target counted in the old stream means nothing now */
    }
    /* after the purges it covers are durable: a crash before this invalidates once more, never less */
    if (created != 0 && known != created && stream_id_save(created) != 0) {
        fprintf(stderr, "edgecache: cluster: cannot record the purge stream's identity in the store; retrying\n");
        return NULL;
    }
    cl.stream_created = created;
    if (!atomic_load(&cl.target_known)) {
        atomic_store(&cl.start_target, last);
        atomic_store(&cl.target_known, 1);
    }
    jsErrCode jerr = 0;
    js_DeleteConsumer(cl.js, CLUSTER_STREAM, cl.durable, NULL, &jerr); /* start from our own record, not its ack floor */
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = cl.durable;
    cc.DeliverPolicy = js_DeliverByStartSequence;
    cc.OptStartSeq = applied + 1;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = 30LL * 1000000000LL;
    cc.MaxAckPending = 20000;
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_AddConsumer(&ci, cl.js, CLUSTER_STREAM, &cc, NULL, &jerr);
    if (s != NATS_OK) {
        setup_failed("the node's consumer", s, jerr);
        return NULL;
    }
    jsConsumerInfo_Destroy(ci);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = CLUSTER_STREAM;
    so.Consumer = cl.durable;
    natsSubscription *sub = NULL;
    s = js_PullSubscribe(&sub, cl.js, CLUSTER_SUBJECT, cl.durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        setup_failed("the node's subscription", s, jerr);
        return NULL;
    }
    atomic_fetch_add(&cl.n_catchups, 1);
    fresh_consumer = 1;
    check_ready();
    return sub;
}

/*
 * Every second or so: the stream's last sequence (for the lag), and answers past their
 * deadline. Returns 1 when the consumer must be set up again because the stream was
 * deleted or made anew (its creation time changed), or the node's durable consumer was
 * deleted; 2 when it is stuck (cluster_stall.c says when).
 */
static int tick(int64_t *next_ms)
{
    int64_t now = now_mono_ms();
    if (now < *next_ms)
        return 0;
    *next_ms = now + 1000;
    atomic_store(&cl.connected, natsConnection_Status(cl.nc) == NATS_CONN_STATUS_CONNECTED);
    /* "not found" three ticks in a row, not once: NATS servers that are recovering (a quorum
     * coming back) may say so for a moment about a stream that is there */
    static int not_found;
    static cluster_stall_t stall;
    int again = 0, missing = 0;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, cl.js, CLUSTER_STREAM, NULL, &jerr);
    if (s == NATS_OK) {
        uint64_t applied = atomic_load(&cl.applied_seq), last = si->State.LastSeq;
        if (cl.stream_created != 0 && si->Created != cl.stream_created) {
            again = 1; /* another stream: certain at once */
            stall.applied_before = applied;
        } else {
            note_stream_last(last);
            switch (cluster_stall_tick(&stall, last, applied, store_failing, now)) {
            case CLUSTER_STALL_WAIT_LEADER:
                fprintf(stderr,
                        "edgecache: cluster: this node's consumer has no leader (a NATS server gone?): waiting up to %d s "
                        "for NATS to elect one before setting it up again\n",
                        CLUSTER_STALL_LEADERLESS_MS / 1000);
                break;
            case CLUSTER_STALL_SETUP:
                fprintf(stderr,
                        "edgecache: cluster: this node's consumer delivered nothing for %d s while the stream holds %llu "
                        "purge(s) past sequence %llu: setting it up again\n",
                        (int)((now - stall.since_ms) / 1000) + 1, (unsigned long long)(last - applied),
                        (unsigned long long)applied);
                atomic_fetch_add(&cl.n_stalls, 1);
                again = 2;
                break;
            }
        }
        jsStreamInfo_Destroy(si);
    } else if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        missing = 1;
    }
    if (!again && !missing) {
        jsConsumerInfo *ci = NULL;
        jerr = 0;
        s = js_GetConsumerInfo(&ci, cl.js, CLUSTER_STREAM, cl.durable, NULL, &jerr);
        /* no answer in the wait, or a cluster's answer naming no leader: an election (a lone server has no Cluster) */
        stall.leaderless = s == NATS_TIMEOUT || (s == NATS_OK && ci->Cluster != NULL &&
                                                 (ci->Cluster->Leader == NULL || ci->Cluster->Leader[0] == '\0'));
        if (s == NATS_OK)
            jsConsumerInfo_Destroy(ci);
        else if (s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr)
            missing = 1;
    } else {
        stall.leaderless = 0;
    }
    not_found = missing ? not_found + 1 : 0;
    if (not_found >= 3) {
        again = 1;
        not_found = 0;
    }
    if (again == 1)
        fprintf(stderr, "edgecache: cluster: the purge stream or this node's consumer was deleted or made anew: setting up "
                        "again from the applied sequence\n");
    cluster_waiters_settle(atomic_load(&cl.applied_seq), now);
    return again;
}

/*
 * Note why NATS cannot be reached or said no (for /stats), and log it once per different
 * reason. The text is cnats' (a status, or the server's -ERR such as "Authorization
 * Violation"): it never holds a URL's password, a token or a seed.
 */
static void note_connect_error(const char *why)
{
    int changed;
    if (why[0] == '(' && strstr(why, "): ") != NULL) /* cnats' "(conn.c:1905): " source position */
        why = strstr(why, "): ") + 3;
    pthread_mutex_lock(&cl.lock);
    changed = strncmp(cl.connect_error, why, sizeof(cl.connect_error) - 1) != 0;
    if (changed)
        snprintf(cl.connect_error, sizeof(cl.connect_error), "%s", why);
    pthread_mutex_unlock(&cl.lock);
    if (changed && why[0] != '\0')
        fprintf(stderr, "edgecache: cluster: NATS: %s; purges are refused (503) until it works, retrying\n", why);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)closure;
    atomic_store(&cl.connected, 0);
    const char *why = NULL;
    if (natsConnection_GetLastError(nc, &why) != NATS_OK && why != NULL && why[0] != '\0')
        note_connect_error(why);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    atomic_store(&cl.connected, 1);
    note_connect_error("");
}

/* asynchronous errors: a permission the server refused (a subject this user may not use), a slow consumer */
static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)sub, (void)closure;
    const char *why = NULL;
    if (natsConnection_GetLastError(nc, &why) == NATS_OK || why == NULL || why[0] == '\0')
        why = natsStatus_GetText(err);
    note_connect_error(why);
}

static int connect_once(void)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_Connect(&nc, cl.opts);
    if (s != NATS_OK) {
        natsStatus ls;
        const char *why = nats_GetLastError(&ls);
        note_connect_error(why != NULL && why[0] != '\0' ? why : natsStatus_GetText(s));
        return -1;
    }
    note_connect_error("");
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = CLUSTER_PUBLISH_WAIT_MS;
    if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK) {
        natsConnection_Destroy(nc);
        return -1;
    }
    atomic_store(&cl.connected, natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED);
    pthread_rwlock_wrlock(&cl.conn_lock);
    pthread_mutex_lock(&cl.lock);
    cl.nc = nc;
    cl.js = js;
    cl.connected_once = 1;
    pthread_cond_broadcast(&cl.wake);
    pthread_mutex_unlock(&cl.lock);
    pthread_rwlock_unlock(&cl.conn_lock);
    return 0;
}

/*
 * cnats gives a connection up for good when a server refuses its reconnects twice for the same
 * reason (credentials revoked or rotated on the servers' side): drop it, so that the loop below
 * connects anew and the node comes back by itself once NATS takes it again.
 */
static void drop_closed_connection(void)
{
    if (cl.nc == NULL || !natsConnection_IsClosed(cl.nc))
        return;
    fprintf(stderr, "edgecache: cluster: NATS closed the connection for good; connecting anew\n");
    atomic_store(&cl.connected, 0);
    pthread_rwlock_wrlock(&cl.conn_lock);
    if (cl.node_sub != NULL)
        natsSubscription_Destroy(cl.node_sub);
    cl.node_sub = NULL;
    jsCtx_Destroy(cl.js);
    natsConnection_Destroy(cl.nc);
    pthread_mutex_lock(&cl.lock);
    cl.js = NULL;
    cl.nc = NULL;
    pthread_mutex_unlock(&cl.lock);
    pthread_rwlock_unlock(&cl.conn_lock);
}

static void *consumer_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "ec-cluster");
    int64_t backoff = 100, next_tick = 0, store_backoff = 100;
    while (!stopping()) {
        drop_closed_connection();
        if (cl.nc == NULL && connect_once() != 0) {
            sleep_or_stop(backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            continue;
        }
        natsSubscription *sub = consumer_setup();
        if (sub == NULL) {
            cluster_waiters_settle(atomic_load(&cl.applied_seq), now_mono_ms());
            sleep_or_stop(backoff);
            backoff = backoff < 5000 ? backoff * 2 : 5000;
            continue;
        }
        backoff = 100;
        cluster_nodes_start();
        cluster_nodes_announce();
        int failures = 0;
        while (!stopping() && failures < 20) {
            natsMsgList list = {0};
            jsErrCode jerr = 0;
            natsStatus s = natsSubscription_Fetch(&list, sub, FETCH_BATCH, FETCH_WAIT_MS, &jerr);
            if (s == NATS_OK) {
                int rc = apply_batch(&list);
                if (rc == 0) {
                    failures = 0;
                    store_backoff = 100;
                } else {
                    failures = 20; /* set the consumer up again at applied + 1 */
                    sleep_or_stop(rc == -2 ? store_backoff : 100);
                    if (rc == -2)
                        store_backoff = store_backoff < 5000 ? store_backoff * 2 : 5000;
                }
            } else if (s != NATS_TIMEOUT) {
                failures++; /* disconnected, no leader: cnats reconnects; a consumer lost for long is set up again */
                sleep_or_stop(100);
            }
            natsMsgList_Destroy(&list);
            if (tick(&next_tick))
                failures = 20;
        }
        natsSubscription_Destroy(sub);
    }
    return NULL;
}

/* ---------------------------------------------------------------- start, stop, state */

/* "nats://a:1,nats://b:2" (validated by config) as cnats' server list */
static natsStatus set_servers(natsOptions *opts, const char *urls)
{
    char *copy = alloc_xmalloc(strlen(urls) + 1, "cluster");
    const char *list[64];
    int n = 0;
    strcpy(copy, urls);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL && n < 64; tok = strtok_r(NULL, ",", &save))
        list[n++] = tok;
    natsStatus s = natsOptions_SetServers(opts, list, n);
    free(copy);
    return s;
}

static int count_urls(const char *urls)
{
    int n = 1;
    for (const char *p = urls; *p != '\0'; p++)
        n += *p == ',';
    return n;
}

int cluster_start(const cluster_options_t *opt, char *err, size_t errlen)
{
    memset(&cl, 0, sizeof(cl));
    snprintf(cl.node, sizeof(cl.node), "%s", opt->node);
    snprintf(cl.durable, sizeof(cl.durable), "edgecache_%s", opt->node);
    cl.store = opt->store;
    cl.local_on_unavailable = opt->local_on_unavailable;
    cl.retention_s = opt->retention_s;
    cl.num_urls = count_urls(opt->urls);
    cl.queue_tail = &cl.queue;
    cl.outbox_tail = &cl.outbox;
    atomic_store(&cl.applied_seq, store_bus_seq(opt->store));
    pthread_mutex_init(&cl.lock, NULL);
    pthread_cond_init(&cl.wake, NULL);
    pthread_rwlock_init(&cl.conn_lock, NULL);

    natsStatus s = nats_Open(-1);
    if (s == NATS_OK)
        s = natsOptions_Create(&cl.opts);
    if (s == NATS_OK)
        s = set_servers(cl.opts, opt->urls);
    if (s == NATS_OK)
        s = natsOptions_SetName(cl.opts, cl.durable);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(cl.opts, -1); /* forever */
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(cl.opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectJitter(cl.opts, 250, 1000);
    /* no natsOptions_SetRetryOnFailedConnect: without a callback cnats retries inside Connect, forever here
     * and deaf to cluster_stop (a node that NATS refused could not be stopped); consumer_main retries
     * instead, between attempts that each end, with its own backoff */
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(cl.opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(cl.opts, on_disconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(cl.opts, on_reconnected, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(cl.opts, on_async_error, NULL);
    if (s != NATS_OK) {
        errbuf_printf(err, errlen, "--cluster: cannot set up the NATS client: %s", natsStatus_GetText(s));
        return -1;
    }
    if (cluster_auth_setup(cl.opts, opt, err, errlen) != 0)
        return -1;
    cl.on = 1;
    purge_module_set_node(cl.node);
    purge_module_set_bus(cluster_pub_submit, NULL);
    if (cluster_pub_start(err, errlen) != 0)
        return -1;
    int rc = pthread_create(&cl.consumer, NULL, consumer_main, NULL);
    if (rc != 0) {
        errbuf_printf(err, errlen, "--cluster: cannot start the cluster thread: %s", strerror(rc));
        return -1;
    }
    cl.threads_started = 1;
    return 0;
}

void cluster_stop(void)
{
    if (!cl.on)
        return;
    pthread_mutex_lock(&cl.lock);
    cl.stopping = 1;
    pthread_cond_broadcast(&cl.wake);
    pthread_mutex_unlock(&cl.lock);
    if (cl.threads_started)
        pthread_join(cl.consumer, NULL);
    cluster_pub_stop();
    if (cl.node_sub != NULL)
        natsSubscription_Destroy(cl.node_sub);
    free(cl.recent);
    free(cl.applied_msgs);
    if (cl.nc != NULL) {
        jsCtx_Destroy(cl.js);
        natsConnection_Destroy(cl.nc);
    }
    natsOptions_Destroy(cl.opts);
    cl.on = 0;
}

int cluster_enabled(void)
{
    return cl.on;
}

int cluster_cache_usable(void)
{
    return !cl.on || atomic_load_explicit(&cl.ready, memory_order_acquire);
}

void cluster_get_stats(cluster_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!cl.on)
        return;
    out->enabled = 1;
    out->connected = atomic_load(&cl.connected);
    out->ready = atomic_load(&cl.ready);
    out->applied_seq = atomic_load(&cl.applied_seq);
    out->stream_last_seq = atomic_load(&cl.stream_last);
    out->lag = out->stream_last_seq > out->applied_seq ? out->stream_last_seq - out->applied_seq : 0;
    out->published = atomic_load(&cl.n_published);
    out->publish_failed = atomic_load(&cl.n_publish_failed);
    out->applied = atomic_load(&cl.n_applied);
    out->redelivered = atomic_load(&cl.n_redelivered);
    out->duplicates = atomic_load(&cl.n_duplicates);
    out->invalid = atomic_load(&cl.n_invalid);
    out->catchup_runs = atomic_load(&cl.n_catchups);
    out->consumer_stalls = atomic_load(&cl.n_stalls);
    out->gap_invalidations = atomic_load(&cl.n_gaps);
    out->local_only = atomic_load(&cl.n_local_only);
    out->stale_peer_not_stored = atomic_load(&cl.n_stale_peer);
    pthread_mutex_lock(&cl.lock);
    out->outbox = cl.outbox_len;
    memcpy(out->connect_error, cl.connect_error, sizeof(out->connect_error));
    pthread_mutex_unlock(&cl.lock);
}

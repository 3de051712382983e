/*
 * cluster/cluster_pub.c — this node's purges onto the stream: the purge module hands each job
 * of a loop here (cluster_pub_submit, on that loop's thread: encode and queue, never wait); a
 * publisher thread publishes it with its first purge id as the message id and waits for the
 * stream's acknowledgement; the job then waits (a waiter) until the consumer has applied its
 * stream sequence here, and is answered then (purge_job_bus_done). So a purge is answered
 * only once it is stored in the stream and applied on this node, and it is applied here once,
 * by the consumer, like every other node's.
 *
 * No acknowledgement (no quorum, no connection) within CLUSTER_PUBLISH_WAIT_MS: with
 * cluster.on_unavailable reject the purge is answered 503 and nothing is applied; with local,
 * it is applied here at once (a bus job: the store's journal makes it durable) and answered
 * "local only", and its publish is queued in the outbox, which is durable: each entry is a
 * record in the store's "config" database (CLUSTER_OUTBOX_PREFIX + purge id) until the
 * stream acknowledges it, and a restart loads them again. Its message id makes a publish
 * that was stored after all (an acknowledgement lost) count once.
 *
 * Threads: cluster_pub_submit on loops; publishers; cluster_waiters_settle on the consumer
 * thread. Shared lists under cl.lock (cluster_int.h).
 */
#include "cluster/cluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cluster/cluster_msg.h"
#include "common/alloc.h"
#include "common/errbuf.h"
#include "common/now.h"

/* ---------------------------------------------------------------- waiters */

/* Has this node applied the waiter's purge? Its sequence alone says so, unless the sequence may
 * count in another stream than the one applied_seq counts in (epoch_needed: see wait_for_apply). */
static int waiter_applied(const cluster_waiter_t *w, uint64_t applied)
{
    return w->seq <= applied && (w->epoch_needed == 0 || atomic_load(&cl.stream_epoch) >= w->epoch_needed);
}

void cluster_waiters_settle(uint64_t applied, int64_t now_ms)
{
    cluster_waiter_t *done = NULL, **tail = &done;
    pthread_mutex_lock(&cl.lock);
    for (cluster_waiter_t **pp = &cl.waiters; *pp != NULL;) {
        cluster_waiter_t *w = *pp;
        w->applied = waiter_applied(w, applied);
        if (w->applied && w->wait_all && !cl.stopping) {
            *pp = w->next; /* applied here: now the others */
            cluster_waitall_add(w->job, w->seq, now_ms);
            free(w);
        } else if (w->applied || w->deadline_ms <= now_ms || cl.stopping) {
            *pp = w->next;
            w->next = NULL;
            *tail = w;
            tail = &w->next;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&cl.lock);
    cluster_waitall_settle(now_ms);
    while (done != NULL) {
        cluster_waiter_t *w = done;
        done = w->next;
        purge_job_bus_done(w->job, w->applied ? 0 : PURGE_BUS_ENOTAPPLIED, 0, NULL);
        free(w);
    }
}

/*
 * The stream stored the job's purge (message id msg_id) as seq: answer it once the consumer has
 * applied it. An acknowledged sequence at or below the applied one is either the consumer being
 * quicker than our acknowledgement (then it noted the message id with that sequence), or a
 * stream made anew that this node has not noticed yet (its sequences restarted below ours):
 * then the purge is applied only once the consumer has bound the new stream, whose purge-all
 * covers it (the stream epoch moves on).
 */
static void wait_for_apply(purge_job_t *job, const char *msg_id, uint64_t seq, int wait_all)
{
    cluster_waiter_t *w = alloc_xcalloc(1, sizeof(*w), "cluster");
    w->seq = seq;
    w->deadline_ms = now_mono_ms() + CLUSTER_APPLY_WAIT_MS;
    w->job = job;
    w->wait_all = wait_all;
    pthread_mutex_lock(&cl.lock);
    if (atomic_load(&cl.applied_seq) >= seq && !cluster_msg_applied_locked(msg_id, seq))
        w->epoch_needed = atomic_load(&cl.stream_epoch) + 1;
    if (waiter_applied(w, atomic_load(&cl.applied_seq))) { /* the consumer was quicker than our acknowledgement */
        if (wait_all)
            cluster_waitall_add(job, seq, now_mono_ms());
        pthread_mutex_unlock(&cl.lock);
        free(w);
        if (wait_all)
            cluster_waitall_settle(now_mono_ms());
        else
            purge_job_bus_done(job, 0, 0, NULL);
        return;
    }
    cluster_waiter_t **pp = &cl.waiters;
    while (*pp != NULL && (*pp)->seq <= seq)
        pp = &(*pp)->next;
    w->next = *pp;
    *pp = w;
    pthread_mutex_unlock(&cl.lock);
}

/* ---------------------------------------------------------------- the outbox */

static void outbox_key(char *buf, size_t cap, const char *msg_id)
{
    snprintf(buf, cap, "%s%s", CLUSTER_OUTBOX_PREFIX, msg_id);
}

static void outbox_push_locked(cluster_pub_t *p)
{
    p->next = NULL;
    *cl.outbox_tail = p;
    cl.outbox_tail = &p->next;
    cl.outbox_len++;
}

static int outbox_load_one(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    (void)arg;
    size_t plen = strlen(CLUSTER_OUTBOX_PREFIX);
    cluster_msg_t m;
    if (key_len <= plen || memcmp(key, CLUSTER_OUTBOX_PREFIX, plen) != 0 || key_len - plen >= PURGE_ID_CAP)
        return 0;
    if (cluster_msg_decode(val, val_len, &m) != 0)
        return 0; /* not ours to publish */
    cluster_msg_free(&m);
    cluster_pub_t *p = alloc_xcalloc(1, sizeof(*p), "cluster");
    p->data = alloc_xmalloc(val_len, "cluster");
    memcpy(p->data, val, val_len);
    p->len = val_len;
    memcpy(p->msg_id, key + plen, key_len - plen);
    outbox_push_locked(p);
    return 0;
}

/* ---------------------------------------------------------------- publishing */

void cluster_pub_submit(void *arg, purge_job_t *job)
{
    (void)arg;
    size_t n;
    const purge_item_t *items = purge_job_items(job, &n);
    cluster_pub_t *p = alloc_xcalloc(1, sizeof(*p), "cluster");
    if (cluster_msg_encode(purge_job_kind(job), purge_job_soft(job), items, n, &p->data, &p->len) != 0) {
        free(p);
        purge_job_bus_done(job, PURGE_BUS_EINVAL, 0, NULL);
        return;
    }
    snprintf(p->msg_id, sizeof(p->msg_id), "%s", items[0].id);
    p->job = job;
    p->wait_all = purge_job_wants_wait_all(job);
    p->deadline_ms = now_mono_ms() + CLUSTER_PUBLISH_BUDGET_MS;
    pthread_mutex_lock(&cl.lock);
    if (cl.stopping) { /* shutting down: not published, not acknowledged */
        pthread_mutex_unlock(&cl.lock);
        free(p->data);
        free(p);
        purge_job_bus_done(job, PURGE_BUS_EUNAVAILABLE, 0, NULL);
        return;
    }
    *cl.queue_tail = p;
    cl.queue_tail = &p->next;
    pthread_cond_signal(&cl.wake);
    pthread_mutex_unlock(&cl.lock);
}

/*
 * One attempt, waiting at most wait_ms for the stream's acknowledgement. 0 with *seq, or -1.
 *
 * An acknowledgement with sequence 0 is not one. A NATS stream leader (2.9) notes a message id
 * (with sequence 0, "pending") before it proposes the message to its replicas; when that
 * proposal is not committed yet (or is lost with the leader's quorum) a retry with that id is
 * answered "duplicate" with sequence 0 although the stream has not stored it (newer servers
 * refuse it instead). Believed, the purge would be answered at once (sequence 0 is at or below
 * any applied sequence), or dropped from the outbox, before any node has it. So the attempt fails and
 * the next one uses a new message id (msg_id.rN): stored twice at worst, if the lost proposal
 * is committed after all, and a purge applied twice removes nothing it should not.
 */
static int publish_once(cluster_pub_t *p, int64_t wait_ms, uint64_t *seq)
{
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    jsPubOptions po;
    char id[PURGE_ID_CAP + 16];
    if (p->renewed == 0)
        snprintf(id, sizeof(id), "%s", p->msg_id);
    else
        snprintf(id, sizeof(id), "%s.r%d", p->msg_id, p->renewed);
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.MaxWait = wait_ms;
    po.ExpectStream = CLUSTER_STREAM;
    if (natsMsg_Create(&m, CLUSTER_SUBJECT, NULL, p->data, (int)p->len) != NATS_OK)
        return -1;
    pthread_rwlock_rdlock(&cl.conn_lock);
    natsStatus s = cl.js != NULL ? js_PublishMsg(&pa, cl.js, m, &po, &jerr) : NATS_CONNECTION_CLOSED;
    pthread_rwlock_unlock(&cl.conn_lock);
    natsMsg_Destroy(m);
    if (s != NATS_OK)
        return -1;
    *seq = pa->Sequence;
    jsPubAck_Destroy(pa);
    if (*seq == 0) {
        fprintf(stderr,
                "edgecache: cluster: the stream answered purge message %s as a duplicate with no sequence (a publish "
                "it lost without a quorum): publishing it again under a new message id\n",
                id);
        p->renewed++;
        return -1;
    }
    return 0;
}

/*
 * Publish until the stream acknowledges or the purge's budget is spent: a stream whose
 * leader went away elects another within seconds, and the message id makes every attempt
 * after the first one that was stored a duplicate the stream answers with the same sequence.
 */
static int publish(cluster_pub_t *p, uint64_t *seq)
{
    for (;;) {
        int64_t now = now_mono_ms(), left = p->job != NULL ? p->deadline_ms - now : CLUSTER_PUBLISH_WAIT_MS;
        if (left <= 0)
            return -1;
        int64_t t0 = now;
        if (publish_once(p, left < CLUSTER_PUBLISH_WAIT_MS ? left : CLUSTER_PUBLISH_WAIT_MS, seq) == 0)
            return 0;
        if (p->job == NULL)
            return -1; /* the outbox retries on its own */
        pthread_mutex_lock(&cl.lock);
        int stop = cl.stopping;
        pthread_mutex_unlock(&cl.lock);
        if (stop)
            return -1; /* shutting down: answered 503, not acknowledged */
        if (now_mono_ms() - t0 < 200)
            usleep(200 * 1000); /* refused at once (no responders): not a busy loop */
    }
}

static void on_local_done(void *arg, const purge_result_t *res)
{
    purge_job_t *orig = arg;
    if (res->store_err != 0)
        purge_job_bus_done(orig, PURGE_BUS_EUNAVAILABLE, 0, NULL);
    else
        purge_job_bus_done(orig, 0, PURGE_BUS_F_LOCAL_ONLY, NULL);
}

/* No quorum and cluster.on_unavailable local: apply here, keep the publish in the durable outbox. */
static void apply_locally(cluster_pub_t *p)
{
    cluster_msg_t m;
    char key[PURGE_ID_CAP + 32];
    outbox_key(key, sizeof(key), p->msg_id);
    if (cluster_msg_decode(p->data, p->len, &m) != 0 ||
        store_kv_put_sync(cl.store, "config", key, p->data, p->len) != 0) { /* not durable: not acknowledged */
        purge_job_bus_done(p->job, PURGE_BUS_EUNAVAILABLE, 0, NULL);
        free(p->data);
        free(p);
        return;
    }
    purge_job_t *job = purge_job_new(m.kind, m.soft, PURGE_FROM_BUS);
    for (size_t i = 0; i < m.num_items; i++)
        purge_job_add_key_with_id(job, m.items[i].key != NULL ? m.items[i].key : "", m.items[i].key_len, m.items[i].id,
                                  m.items[i].id_len);
    cluster_msg_free(&m);
    purge_job_t *orig = p->job;
    p->job = NULL;
    atomic_fetch_add(&cl.n_local_only, 1);
    pthread_mutex_lock(&cl.lock);
    outbox_push_locked(p);
    pthread_mutex_unlock(&cl.lock);
    purge_job_submit(job, NULL, on_local_done, orig);
}

static void *publisher_main(void *arg)
{
    /* the first publisher also says every second how far this node has applied (a heartbeat
     * that does not depend on the consumer thread, which may wait on the store or a set-up) */
    int heartbeats = arg != NULL;
    pthread_setname_np(pthread_self(), "ec-cluster-pub");
    int64_t outbox_retry_ms = 0, next_heartbeat_ms = 0;
    pthread_mutex_lock(&cl.lock);
    for (;;) {
        cluster_pub_t *p = NULL;
        int from_outbox = 0;
        if (heartbeats && cl.connected_once && !cl.stopping && now_mono_ms() >= next_heartbeat_ms) {
            next_heartbeat_ms = now_mono_ms() + 1000;
            pthread_mutex_unlock(&cl.lock);
            cluster_nodes_announce();
            pthread_mutex_lock(&cl.lock);
            continue;
        }
        /* never connected yet (NATS unreachable, or refusing our credentials): a purge still gets its
         * answer when its budget is spent (publish fails at once, no connection touched) */
        if (cl.queue != NULL && (cl.connected_once || now_mono_ms() >= cl.queue->deadline_ms)) {
            p = cl.queue;
            cl.queue = p->next;
            if (cl.queue == NULL)
                cl.queue_tail = &cl.queue;
        } else if (cl.connected_once && cl.outbox != NULL && now_mono_ms() >= outbox_retry_ms && atomic_load(&cl.connected)) {
            p = cl.outbox;
            cl.outbox = p->next;
            if (cl.outbox == NULL)
                cl.outbox_tail = &cl.outbox;
            from_outbox = 1; /* still counted in outbox_len until the stream has it */
        } else if (cl.stopping) {
            break;
        } else {
            /* nothing to do (or not connected yet): wake on new work, or to retry the outbox */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250 * 1000000L; /* the heartbeat's clock */
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&cl.wake, &cl.lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&cl.lock);
        uint64_t seq = 0;
        int rc = publish(p, &seq);
        if (rc == 0) {
            atomic_fetch_add(&cl.n_published, 1);
            if (p->job != NULL) {
                wait_for_apply(p->job, p->msg_id, seq, p->wait_all);
            } else {
                char key[PURGE_ID_CAP + 32];
                outbox_key(key, sizeof(key), p->msg_id);
                store_kv_put_sync(cl.store, "config", key, NULL, 0); /* published: no longer owed */
                pthread_mutex_lock(&cl.lock);
                cl.outbox_len--;
                pthread_mutex_unlock(&cl.lock);
            }
            free(p->data);
            free(p);
        } else {
            atomic_fetch_add(&cl.n_publish_failed, from_outbox ? 0 : 1);
            if (from_outbox) {
                outbox_retry_ms = now_mono_ms() + 1000;
                pthread_mutex_lock(&cl.lock);
                cl.outbox_len--; /* counted again as it goes back */
                outbox_push_locked(p);
                pthread_mutex_unlock(&cl.lock);
            } else if (cl.local_on_unavailable) {
                apply_locally(p);
            } else {
                purge_job_bus_done(p->job, PURGE_BUS_EUNAVAILABLE, 0, NULL);
                free(p->data);
                free(p);
            }
        }
        pthread_mutex_lock(&cl.lock);
    }
    pthread_mutex_unlock(&cl.lock);
    return NULL;
}

int cluster_pub_start(char *err, size_t errlen)
{
    pthread_mutex_lock(&cl.lock);
    store_kv_foreach(cl.store, "config", outbox_load_one, NULL);
    if (cl.outbox_len > 0)
        fprintf(stderr, "edgecache: cluster: %zu purge(s) applied here only are still to be published\n", cl.outbox_len);
    pthread_mutex_unlock(&cl.lock);
    for (int i = 0; i < CLUSTER_PUBLISHERS; i++) {
        int rc = pthread_create(&cl.publishers[i], NULL, publisher_main, i == 0 ? &cl : NULL);
        if (rc != 0) {
            errbuf_printf(err, errlen, "--cluster: cannot start a publisher thread: %s", strerror(rc));
            return -1;
        }
        cl.publishers_started = i + 1;
    }
    return 0;
}

void cluster_pub_stop(void)
{
    for (int i = 0; i < cl.publishers_started; i++)
        pthread_join(cl.publishers[i], NULL);
    /* purges queued but never published: not acknowledged */
    while (cl.queue != NULL) {
        cluster_pub_t *p = cl.queue;
        cl.queue = p->next;
        purge_job_bus_done(p->job, PURGE_BUS_EUNAVAILABLE, 0, NULL);
        free(p->data);
        free(p);
    }
    while (cl.outbox != NULL) { /* durable in the store: loaded again at the next start */
        cluster_pub_t *p = cl.outbox;
        cl.outbox = p->next;
        free(p->data);
        free(p);
    }
    cluster_waiters_settle(0, 0);
    cluster_waitall_settle(0);
}

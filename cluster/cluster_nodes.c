/*
 * cluster/cluster_nodes.c — who is in the cluster and how far each node has applied the
 * purge stream: each node publishes its applied sequence on core NATS (CLUSTER_NODE_SUBJECT
 * + its name) after every batch it applies and every second, and listens to everyone's.
 * A node heard within CLUSTER_ALIVE_MS is alive. This feeds GET /cluster, the purge status
 * (which nodes have applied a purge: those whose applied sequence has passed its sequence)
 * and Edgecache-Purge-Wait: all (a purge answered once every live node has applied it, or
 * after CLUSTER_WAIT_ALL_MS naming those that had not).
 *
 * Heartbeats are untrusted network bytes: the subject's last token must be a valid node name
 * and the payload a decimal sequence (at most INT64_MAX), else they are ignored; one that
 * claims this node's own name is ignored too. They carry no purge: losing one costs nothing
 * but a late answer. A forged one can only make a node look further or less far than it is
 * until that node's next heartbeat (the last word wins); what stops forgery is the NATS
 * account's permissions, not this file.
 *
 * Threads: the table, the wait-all list and the recent ids are under cl.lock; heartbeats
 * arrive on a cnats thread; announcements go out from the consumer thread (after a batch)
 * and from the first publisher thread (every second, whatever the consumer is waiting on).
 */
#include "cluster/cluster_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/alloc.h"
#include "common/now.h"

static int node_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 32)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* Note a node's applied sequence (under cl.lock). */
static void node_heard_locked(const char *name, size_t len, uint64_t applied, int64_t now_ms)
{
    cluster_node_t *n = NULL;
    for (size_t i = 0; i < cl.num_nodes && n == NULL; i++)
        if (strlen(cl.nodes[i].name) == len && memcmp(cl.nodes[i].name, name, len) == 0)
            n = &cl.nodes[i];
    if (n == NULL) {
        if (cl.num_nodes == CLUSTER_MAX_NODES) { /* full: the longest silent one makes room */
            size_t oldest = 0;
            for (size_t i = 1; i < cl.num_nodes; i++)
                if (cl.nodes[i].heard_ms < cl.nodes[oldest].heard_ms)
                    oldest = i;
            n = &cl.nodes[oldest];
        } else {
            n = &cl.nodes[cl.num_nodes++];
        }
        memcpy(n->name, name, len);
        n->name[len] = '\0';
        n->applied = 0;
    }
    /* the last word wins, not the highest: a forged heartbeat (anyone who may publish on the
     * subject) with a huge sequence then lasts until the node's own next one, a second at most,
     * instead of passing the node off as caught up for good (a node back from a wiped disk
     * reports less too). Its own two announcers may cross: a second late, never wrong for long. */
    n->applied = applied;
    n->heard_ms = now_ms;
}

static void on_heartbeat(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    const char *subject = natsMsg_GetSubject(msg), *data = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    size_t plen = strlen(CLUSTER_NODE_SUBJECT);
    uint64_t applied = 0;
    int ok = subject != NULL && strncmp(subject, CLUSTER_NODE_SUBJECT, plen) == 0 &&
             node_name_ok(subject + plen, strlen(subject + plen)) && data != NULL && len >= 1 && len <= 20;
    for (int i = 0; ok && i < len; i++) {
        ok = data[i] >= '0' && data[i] <= '9' && applied <= (UINT64_MAX - 9) / 10;
        applied = applied * 10 + (uint64_t)(data[i] - '0');
    }
    /* beyond INT64_MAX no stream gets (and JSON would show it negative); this node's own entry
     * is noted by cluster_nodes_announce, never from the network (where anyone may claim it) */
    ok = ok && applied <= (uint64_t)INT64_MAX && strcmp(subject + plen, cl.node) != 0;
    if (ok) {
        int64_t now = now_mono_ms();
        pthread_mutex_lock(&cl.lock);
        node_heard_locked(subject + plen, strlen(subject + plen), applied, now);
        pthread_mutex_unlock(&cl.lock);
        cluster_waitall_settle(now);
    }
    natsMsg_Destroy(msg);
}

void cluster_nodes_start(void)
{
    if (cl.node_sub == NULL)
        natsConnection_Subscribe(&cl.node_sub, cl.nc, CLUSTER_NODE_SUBJECT "*", on_heartbeat, NULL);
}

void cluster_nodes_announce(void)
{
    char subject[64], payload[24];
    uint64_t applied = atomic_load(&cl.applied_seq);
    snprintf(subject, sizeof(subject), "%s%s", CLUSTER_NODE_SUBJECT, cl.node);
    snprintf(payload, sizeof(payload), "%llu", (unsigned long long)applied);
    pthread_mutex_lock(&cl.lock);
    node_heard_locked(cl.node, strlen(cl.node), applied, now_mono_ms());
    pthread_mutex_unlock(&cl.lock);
    pthread_rwlock_rdlock(&cl.conn_lock);
    if (cl.nc != NULL)
        natsConnection_PublishString(cl.nc, subject, payload); /* buffered by cnats; lost while disconnected */
    pthread_rwlock_unlock(&cl.conn_lock);
}

/* ---------------------------------------------------------------- wait for all */

void cluster_waitall_add(purge_job_t *job, uint64_t seq, int64_t now_ms)
{
    cluster_waiter_t *w = alloc_xcalloc(1, sizeof(*w), "cluster");
    w->seq = seq;
    w->job = job;
    w->deadline_ms = now_ms + CLUSTER_WAIT_ALL_MS;
    w->next = cl.waitall;
    cl.waitall = w;
}

/* The live nodes that have not applied seq, as "A,B" into buf (under cl.lock); their count. */
static size_t pending_nodes_locked(uint64_t seq, int64_t now_ms, char *buf, size_t cap)
{
    size_t n = 0, len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cl.num_nodes; i++) {
        const cluster_node_t *nd = &cl.nodes[i];
        if (now_ms - nd->heard_ms > CLUSTER_ALIVE_MS || nd->applied >= seq)
            continue;
        n++;
        int w = snprintf(buf + len, cap - len, "%s%s", len > 0 ? "," : "", nd->name);
        if (w > 0 && (size_t)w < cap - len)
            len += (size_t)w;
    }
    return n;
}

void cluster_waitall_settle(int64_t now_ms)
{
    typedef struct answer {
        purge_job_t *job;
        unsigned flags;
        char note[CLUSTER_MAX_NODES * 34 + 40];
    } answer_t;
    answer_t *out = NULL;
    size_t nout = 0;
    pthread_mutex_lock(&cl.lock);
    for (cluster_waiter_t **pp = &cl.waitall; *pp != NULL;) {
        cluster_waiter_t *w = *pp;
        char names[CLUSTER_MAX_NODES * 34];
        size_t pending = pending_nodes_locked(w->seq, now_ms, names, sizeof(names));
        if (pending > 0 && now_ms < w->deadline_ms && !cl.stopping) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        out = alloc_xrealloc(out, (nout + 1) * sizeof(*out), "cluster");
        answer_t *a = &out[nout++];
        a->job = w->job;
        a->flags = pending == 0 ? PURGE_BUS_F_WAITED_ALL : PURGE_BUS_F_WAIT_TIMEOUT;
        if (pending == 0)
            snprintf(a->note, sizeof(a->note), "applied on every live node");
        else
            snprintf(a->note, sizeof(a->note), "not yet applied on: %s", names);
        free(w);
    }
    pthread_mutex_unlock(&cl.lock);
    for (size_t i = 0; i < nout; i++)
        purge_job_bus_done(out[i].job, 0, out[i].flags, out[i].note);
    free(out);
}

/* ---------------------------------------------------------------- purge ids */

void cluster_recent_note(const char *id, size_t id_len, uint64_t seq)
{
    if (id_len >= PURGE_ID_CAP)
        return;
    pthread_mutex_lock(&cl.lock);
    if (cl.recent == NULL)
        cl.recent = alloc_xcalloc(CLUSTER_RECENT_IDS, sizeof(*cl.recent), "cluster");
    cluster_recent_t *r = &cl.recent[cl.recent_next++ % CLUSTER_RECENT_IDS];
    memcpy(r->id, id, id_len);
    r->id[id_len] = '\0';
    r->seq = seq;
    pthread_mutex_unlock(&cl.lock);
}

void cluster_msg_applied_note(const char *id, size_t id_len, uint64_t seq)
{
    if (id_len >= PURGE_ID_CAP)
        return;
    pthread_mutex_lock(&cl.lock);
    if (cl.applied_msgs == NULL)
        cl.applied_msgs = alloc_xcalloc(CLUSTER_RECENT_IDS, sizeof(*cl.applied_msgs), "cluster");
    cluster_recent_t *r = &cl.applied_msgs[cl.applied_msgs_next++ % CLUSTER_RECENT_IDS];
    memcpy(r->id, id, id_len);
    r->id[id_len] = '\0';
    r->seq = seq;
    pthread_mutex_unlock(&cl.lock);
}

int cluster_msg_applied_locked(const char *id, uint64_t seq)
{
    for (size_t i = 0; cl.applied_msgs != NULL && i < CLUSTER_RECENT_IDS; i++)
        if (cl.applied_msgs[i].seq == seq && strcmp(cl.applied_msgs[i].id, id) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- for the admin API */

json_t *cluster_nodes_json(void)
{
    if (!cl.on)
        return NULL;
    int64_t now = now_mono_ms();
    uint64_t last = atomic_load(&cl.stream_last);
    json_t *o = json_object(), *arr = json_array();
    pthread_mutex_lock(&cl.lock);
    for (size_t i = 0; i < cl.num_nodes; i++) {
        const cluster_node_t *n = &cl.nodes[i];
        json_t *e = json_object();
        json_object_set_new(e, "node", json_string(n->name));
        json_object_set_new(e, "self", json_boolean(strcmp(n->name, cl.node) == 0));
        json_object_set_new(e, "alive", json_boolean(now - n->heard_ms <= CLUSTER_ALIVE_MS));
        json_object_set_new(e, "applied_seq", json_integer((json_int_t)n->applied));
        json_object_set_new(e, "lag", json_integer((json_int_t)(last > n->applied ? last - n->applied : 0)));
        json_object_set_new(e, "last_heard_ms_ago", json_integer((json_int_t)(now - n->heard_ms)));
        json_array_append_new(arr, e);
    }
    pthread_mutex_unlock(&cl.lock);
    json_object_set_new(o, "node", json_string(cl.node));
    json_object_set_new(o, "stream", json_string(CLUSTER_STREAM));
    json_object_set_new(o, "stream_last_seq", json_integer((json_int_t)last));
    json_object_set_new(o, "nodes", arr);
    return o;
}

json_t *cluster_purge_status_json(const char *id, size_t id_len)
{
    if (!cl.on)
        return NULL;
    uint64_t seq = 0;
    int64_t now = now_mono_ms();
    pthread_mutex_lock(&cl.lock);
    for (size_t i = 0; cl.recent != NULL && i < CLUSTER_RECENT_IDS && seq == 0; i++)
        if (cl.recent[i].seq != 0 && strlen(cl.recent[i].id) == id_len && memcmp(cl.recent[i].id, id, id_len) == 0)
            seq = cl.recent[i].seq;
    if (seq == 0) {
        pthread_mutex_unlock(&cl.lock);
        return NULL;
    }
    json_t *o = json_object(), *applied = json_array(), *pending = json_array();
    for (size_t i = 0; i < cl.num_nodes; i++) {
        const cluster_node_t *n = &cl.nodes[i];
        if (n->applied >= seq)
            json_array_append_new(applied, json_string(n->name));
        else if (now - n->heard_ms <= CLUSTER_ALIVE_MS)
            json_array_append_new(pending, json_string(n->name));
    }
    pthread_mutex_unlock(&cl.lock);
    json_object_set_new(o, "id", json_stringn(id, id_len));
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "applied", applied);
    json_object_set_new(o, "pending", pending);
    json_object_set_new(o, "complete", json_boolean(json_array_size(pending) == 0));
    return o;
}

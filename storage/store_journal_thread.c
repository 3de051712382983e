/*
 * storage/store_journal_thread.c — the journal thread: the first of the two threads
 * every write passes.
 *
 * It takes all queued operations, writes their purges to the purge journal (one
 * synced write; storage/journal.c owns the format), answers the hard URL and key
 * purges among them at once (store_batch_ack_early: their objects join the pending
 * set that store_get checks) and hands everything on, in order, to the writer
 * (s->ahead). It keeps the puts it handed on and the writer has not finished as
 * "in flight" (s->infl), so that an early answer covers them too.
 *
 * Invariants: a purge is applied only once its journal record is durable; a purge
 * whose record could not be written is never applied and is answered STORE_EIO; ops
 * reach the writer in the order they were queued, numbered from 1 (op->order).
 *
 * Threads: the journal thread alone (store_front_main) touches front_order, infl and
 * journal_next and appends to the journal; the hand-over (ahead) is under s->lock.
 */
#include "storage/store_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "storage/le.h"

#define STORE_ACK_EARLY_MAX 4096    /* objects a purge may name and be answered before its commit */
#define STORE_PEND_MAX 65536        /* objects the pending set holds at most (2.5 MiB) */
#define STORE_APPLY_AHEAD_MAX 16384 /* ops the journal thread may hand the writer before it waits */
#define STORE_INFLIGHT_MAX 1024     /* queued puts an early answer looks through; more: answered after the commit */

static int store_op_is_purge(const store_op_t *op)
{
    return op->kind == STORE_OP_PURGE_URL || op->kind == STORE_OP_PURGE_SKEY || op->kind == STORE_OP_PURGE_ALL ||
           op->kind == STORE_OP_BUS_SEQ; /* journaled like a purge, so that it is durable in order with them */
}

static void store_front_drain(store_t *s);

/*
 * One synced write of the purge journal, timed: a durable purge waits for it, so its
 * time is what the disk adds to every purge (/stats shows the total and the longest).
 */
static int store_journal_append(store_t *s, const journal_rec_t *recs, size_t n)
{
    int64_t start = now_mono_us();
    int rc = journal_append(s->journal, recs, n, atomic_load(&s->durable_seq));
    if (rc == 0) {
        uint64_t us = (uint64_t)(now_mono_us() - start);
        atomic_fetch_add_explicit(&s->st_journal_write_us, us, memory_order_relaxed);
        store_atomic_max(&s->st_journal_write_max_us, us);
    }
    return rc;
}

/*
 * Write the batch's purges to the journal, synced, before the transaction that applies
 * them: a purge is applied only once its record is durable, and the main store is not
 * synced for it. The segment may go over records the main store has synced. A purge
 * whose record could not be written is not applied and is answered STORE_EIO.
 */
static void store_batch_journal(store_t *s, store_batch_t *b)
{
    size_t n = 0, cap = 0;
    for (store_op_t *op = b->ops; op != NULL; op = op->next)
        cap += store_op_is_purge(op);
    if (cap == 0)
        return;
    journal_rec_t *recs = alloc_xcalloc(cap, sizeof(*recs), "store");
    for (store_op_t *op = b->ops; op != NULL; op = op->next) {
        if (!store_op_is_purge(op))
            continue;
        assert(n < cap);
        journal_rec_t *r = &recs[n];
        r->seq = s->journal_next + n;
        r->flags = op->soft ? JOURNAL_F_SOFT : 0;
        switch (op->kind) {
        case STORE_OP_PURGE_URL:
            r->kind = JOURNAL_URL;
            r->payload = op->hash;
            r->payload_len = CACHE_HASH_LEN;
            break;
        case STORE_OP_PURGE_SKEY:
            if (op->key_len == 0)
                continue; /* an empty key names nothing: nothing to make durable */
            r->kind = JOURNAL_SKEY;
            r->payload = op->key;
            r->payload_len = op->key_len;
            break;
        case STORE_OP_BUS_SEQ:
            r->kind = JOURNAL_BUS_SEQ;
            r->flags = 0;
            le_put_u64(op->hash, op->bus_seq); /* the op outlives the append */
            r->payload = op->hash;
            r->payload_len = 8;
            break;
        default: /* STORE_OP_PURGE_ALL */
            r->kind = JOURNAL_ALL;
            r->flags = 0;
            break;
        }
        op->journal_seq = r->seq;
        n++;
    }
    int rc = n == 0 ? 0 : store_journal_append(s, recs, n);
    if (rc == JOURNAL_EFULL && store_sync_main(s) == 0) /* the checkpointer is far behind: sync here */
        rc = store_journal_append(s, recs, n);
    if (rc == JOURNAL_EFULL) { /* the ring holds records the writer has yet to apply */
        store_front_drain(s);
        if (store_sync_main(s) == 0)
            rc = store_journal_append(s, recs, n);
    }
    if (rc != JOURNAL_EFULL)
        s->journal_next += n; /* after a failed write too: what it wrote may be intact, never reuse its seqs */
    if (rc == 0 && n > 0) {
        atomic_fetch_add_explicit(&s->st_journal_commits, 1, memory_order_relaxed);
        uint64_t written = journal_sectors_written(s->journal);
        atomic_store_explicit(&s->journal_sectors, written, memory_order_release);
        if (written - atomic_load_explicit(&s->checkpoint_from, memory_order_acquire) > journal_ring_sectors(s->journal) / 4 &&
            !atomic_exchange(&s->checkpoint_asked, 1)) {
            pthread_mutex_lock(&s->lock); /* the checkpointer tests the flag under it before waiting */
            pthread_cond_signal(&s->checkpoint_wake);
            pthread_mutex_unlock(&s->lock);
        }
    } else if (rc != 0) {
        fprintf(stderr, "edgecache: store: purge journal write failed; %zu purge(s) not applied\n", n);
        for (store_op_t *op = b->ops; op != NULL; op = op->next) {
            if (op->journal_seq != 0) {
                op->journal_failed = 1;
                if (rc == JOURNAL_EFULL)
                    op->journal_seq = 0; /* nothing written: the seq is used again */
                /* else its seq stays: the record may be intact, and meta's journal_seq must pass it (a crash must
                 * not apply a purge answered STORE_EIO over puts stored after it) */
            }
        }
    }
    free(recs);
}

/* Forget the queued puts the writer has finished (committed, or dropped). */
static void store_inflight_prune(store_t *s)
{
    uint64_t done = atomic_load_explicit(&s->applied_order, memory_order_acquire);
    while (s->infl_head < s->infl_n && s->infl[s->infl_head].order <= done) {
        store_inflight_t *f = &s->infl[s->infl_head++];
        obj_unref(&f->obj);
        store_hashvec_free(&f->tags);
    }
    if (s->infl_head == s->infl_n)
        s->infl_head = s->infl_n = 0;
}

static void store_inflight_add(store_t *s, const store_op_t *op)
{
    if (s->infl_n == s->infl_cap) {
        if (s->infl_head > 0) { /* slide the live part down first */
            memmove(s->infl, s->infl + s->infl_head, (s->infl_n - s->infl_head) * sizeof(*s->infl));
            s->infl_n -= s->infl_head;
            s->infl_head = 0;
        }
        if (s->infl_n == s->infl_cap) {
            s->infl_cap = s->infl_cap ? s->infl_cap * 2 : 64;
            s->infl = alloc_xrealloc(s->infl, s->infl_cap * sizeof(*s->infl), "store");
        }
    }
    store_inflight_t *f = &s->infl[s->infl_n++];
    memset(f, 0, sizeof(*f));
    f->order = op->order;
    f->has_since = op->has_since;
    f->obj = obj_ref(op->obj);
    store_obj_tags(f->obj->key, f->obj->key_len, f->obj->skeys, f->obj->skeys_len, &f->tags);
}

static void store_inflight_free(store_t *s)
{
    atomic_store(&s->applied_order, UINT64_MAX);
    store_inflight_prune(s);
    free(s->infl);
    s->infl = NULL;
    s->infl_cap = 0;
}

/*
 * Does the queued put f belong to what op, which names `tag`, purges? Those queued
 * ahead of it do; so do those queued behind it whose fetch began before it is answered
 * (all but a plain store_put, which stores new content).
 */
static int store_inflight_named(const store_inflight_t *f, const store_op_t *op, const uint8_t tag[CACHE_HASH_LEN])
{
    return (f->order < op->order || f->has_since) && store_hashvec_has(&f->tags, tag);
}

/*
 * Answer the batch's hard URL and key purges as soon as their journal records are
 * durable, before the writer's transaction deletes their objects: what each one names
 * is looked up in a read-only snapshot and among the puts not committed yet (queued
 * ahead of it, or behind it for a fetch that began before it; see
 * store_inflight_named), those objects join the pending set (store_get treats them as
 * gone), leave the memory tier (with the puts queued since the batch was taken), and
 * the callbacks run. The writer applies them later,
 * in order, and takes them out of the pending set once that commits; if it fails they
 * stay hidden and go first into every later transaction (s->unapplied), and
 * committed_seq and meta's journal_seq stay below them, so that a crash meanwhile has
 * them replayed from the journal. Soft purges (which rewrite records that stay
 * readable), purges naming more than STORE_ACK_EARLY_MAX objects (or too many for the
 * pending set), purges behind more than STORE_INFLIGHT_MAX queued puts, and every purge
 * while such a failed transaction is being retried, are answered after the commit.
 *
 * Why: a purge's deletes dirty a few random LMDB pages per object, and far fewer per
 * object when many share one transaction. Answered here, a purge waits for its journal
 * write only, and the writer may gather thousands of them into one transaction.
 *
 * Also numbers the batch's ops for the writer and records its puts as queued.
 */
static int store_op_may_ack_early(const store_op_t *op)
{
    return (op->kind == STORE_OP_PURGE_URL || op->kind == STORE_OP_PURGE_SKEY) && !op->soft && !op->journal_failed;
}

/*
 * Should the writer apply this op without waiting for more? All but an answered purge,
 * which the writer may hold back a little to apply many in one transaction. (A put
 * waits for no one either, but while it is queued every early answer looks through it,
 * and a fill keeps the queue full of them.)
 */
int store_op_urgent(const store_op_t *op)
{
    return !op->acked;
}

static void store_batch_ack_early(store_t *s, store_batch_t *b)
{
    store_hashvec_t targets = {0}, mem = {0}, tags = {0};
    MDB_txn *txn = NULL;
    int acked = 0, may = s->journal != NULL && !atomic_load_explicit(&s->apply_failing, memory_order_acquire);
    /* before the snapshot: a put forgotten here is committed, so in the snapshot */
    store_inflight_prune(s);
    /* the batch's puts, after a purge too: their fetches began before it is answered */
    for (store_op_t *op = b->ops; op != NULL; op = op->next) {
        op->order = ++s->front_order;
        if (op->kind == STORE_OP_PUT)
            store_inflight_add(s, op);
    }
    for (store_op_t *op = b->ops; op != NULL; op = op->next) {
        if (!may || !store_op_may_ack_early(op) || s->infl_n - s->infl_head > STORE_INFLIGHT_MAX)
            continue;
        if (op->kind == STORE_OP_PURGE_SKEY && op->key_len == 0)
            continue; /* names nothing, so the writer purges nothing for it: nor may the answer */
        if (txn == NULL && (txn = store_rtxn_begin(s)) == NULL) {
            may = 0; /* answered after the commit, as before */
            continue;
        }
        uint8_t tag[CACHE_HASH_LEN];
        int rc = 0;
        targets.n = 0;
        if (op->kind == STORE_OP_PURGE_URL) {
            memcpy(tag, op->hash, CACHE_HASH_LEN);
            store_hashvec_push(&targets, op->hash); /* may sit in memory without a disk copy: always a target */
            rc = store_txn_collect_dups(txn, s->dbi_variants, op->hash, CACHE_HASH_LEN, &targets);
        } else {
            store_skey_tag(op->key, op->key_len, tag);
            rc = store_txn_collect_dups(txn, s->dbi_skeys, op->key, op->key_len, &targets);
        }
        if (rc != 0) {
            may = 0; /* this one and the rest are answered after the commit */
            continue;
        }
        size_t in_snapshot = targets.n;
        for (size_t i = s->infl_head; i < s->infl_n; i++)
            if (store_inflight_named(&s->infl[i], op, tag))
                store_hashvec_push(&targets, s->infl[i].obj->hash);
        if (targets.n > STORE_ACK_EARLY_MAX ||
            atomic_load_explicit(&s->pend_n, memory_order_relaxed) + targets.n > STORE_PEND_MAX)
            continue;
        pthread_mutex_lock(&s->pend_lock);
        for (size_t i = 0; i < targets.n; i++) {
            MDB_val k = {CACHE_HASH_LEN, targets.v[i]}, v;
            if (i >= in_snapshot || mdb_get(txn, s->dbi_objects, &k, &v) == 0) {
                if (store_pend_add_locked(s, targets.v[i]))
                    op->res.objects++;
                store_hashvec_push(&op->pended, targets.v[i]);
            }
            store_hashvec_push(&mem, targets.v[i]);
        }
        pthread_mutex_unlock(&s->pend_lock);
        store_hashvec_push(&tags, tag);
        op->acked = 1;
        acked = 1;
    }
    if (txn != NULL)
        mdb_txn_reset(txn);
    if (acked) {
        uint64_t epoch = store_plog_publish(s, &tags); /* as after a commit: the memory tier next */
        for (size_t i = 0; s->mem != NULL && i < mem.n; i++)
            mem_remove(s->mem, mem.v[i]);
        store_memonly_purge(s, &tags, 0);           /* after the puts in flight: one the writer dropped since is listed */
        store_hide_queued_puts(s, &tags, epoch, 1); /* puts queued since this batch was taken */
        for (store_op_t *op = b->ops; op != NULL; op = op->next) {
            if (op->acked && op->cb != NULL) {
                op->cb(op->cb_arg, &op->res);
                op->cb = NULL;
            }
        }
    }
    store_hashvec_free(&targets);
    store_hashvec_free(&mem);
    store_hashvec_free(&tags);
}

/* Wait until the writer has applied everything handed to it. */
static void store_front_drain(store_t *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->ahead != NULL || s->applying)
        pthread_cond_wait(&s->apply_room, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

void *store_front_main(void *arg)
{
    store_t *s = arg;
    pthread_setname_np(pthread_self(), "ec-journal"); /* shown by top -H, ps -L, perf */
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->head == NULL && !s->stopping)
            pthread_cond_wait(&s->wake, &s->lock);
        if (s->head == NULL)
            break; /* stopping, and all of it handed on */
        /* take what is queued: the batch's purges go to the journal as one segment, which has a size limit */
        store_batch_t b = {0};
        store_op_t **tailp = &b.ops, *last = NULL;
        size_t n = 0, journal_bytes = 0;
        while (s->head != NULL && n < STORE_BATCH_MAX_OPS) {
            store_op_t *op = s->head;
            size_t jcost = op->kind == STORE_OP_PURGE_URL    ? 4 + CACHE_HASH_LEN
                           : op->kind == STORE_OP_PURGE_SKEY ? 4 + op->key_len
                           : op->kind == STORE_OP_PURGE_ALL  ? 4
                           : op->kind == STORE_OP_BUS_SEQ    ? 4 + 8
                                                             : 0;
            if (n > 0 && journal_bytes + jcost > JOURNAL_MAX_SEGMENT_BYTES)
                break; /* (a key too long for the journal is never journaled: see store_batch_journal) */
            journal_bytes += jcost;
            s->head = op->next;
            op->next = NULL;
            *tailp = last = op;
            tailp = &op->next;
            n++;
        }
        if (s->head == NULL)
            s->tail = NULL;
        s->transit = b.ops; /* its puts stay visible to store_hide_queued_puts */
        pthread_mutex_unlock(&s->lock);
        store_batch_journal(s, &b);
        store_batch_ack_early(s, &b);
        size_t urgent = 0;
        for (store_op_t *op = b.ops; op != NULL; op = op->next)
            urgent += store_op_urgent(op);
        pthread_mutex_lock(&s->lock);
        s->transit = NULL;
        int was_empty = s->ahead == NULL;
        if (s->atail != NULL) {
            s->atail->next = b.ops;
        } else {
            s->ahead = b.ops;
            s->ahead_since_ms = now_mono_ms();
        }
        s->atail = last;
        s->an += n;
        s->a_urgent += urgent;
        /* a writer gathering answered purges wakes at its deadline anyway: wake it only to change that;
         * and without the lock, or it wakes only to wait for it */
        if (was_empty || urgent > 0 || s->an >= STORE_APPLY_GROUP) {
            pthread_mutex_unlock(&s->lock);
            pthread_cond_signal(&s->apply_wake);
            pthread_mutex_lock(&s->lock);
        }
        while (s->an > STORE_APPLY_AHEAD_MAX) /* the writer is far behind: let it catch up */
            pthread_cond_wait(&s->apply_room, &s->lock);
    }
    s->front_done = 1;
    pthread_cond_signal(&s->apply_wake);
    pthread_mutex_unlock(&s->lock);
    store_inflight_free(s);
    return NULL;
}

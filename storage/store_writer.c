/*
 * storage/store_writer.c — the write queue and the writer thread.
 *
 * Every write is an op, queued under s->lock by the caller's thread (store_enqueue,
 * or store_submit_wait for the callers that wait; store_hold_begin/end gathers a
 * thread's ops and queues them in one go). The journal thread passes them on; the one
 * writer thread owns every write transaction: it applies what it was handed in one
 * transaction (group commit; answered purges may wait up to STORE_APPLY_DELAY_MS for
 * more), commits, syncs when one of the operations needs durability, then bumps the
 * purge epoch, updates the memory tier, and finally runs the other callbacks and
 * wakes waiters. A batch that hits a full map or a full file system evicts and tries
 * again, then drops its puts. When its queue is idle it reclaims objects of old
 * generations (store_evict.c), then unmaps the data file's pages (store_maptrim.c).
 *
 * Invariant: the memory tier never holds an object that the disk no longer indexes:
 * after a commit that removes objects (purges, deletes, evictions) the writer bumps
 * the purge epoch and then removes them from the memory tier, and a put the writer
 * drops is removed from the memory tier too. The one exception: a put dropped for want
 * of room stays in memory, listed in the memory-only set (store_memonly.c). Answered
 * purges whose transaction failed stay in s->unapplied and go first into every later
 * transaction.
 *
 * Threads: the writer thread (store_writer_main); the queue's entry points run on the
 * callers' threads.
 */
#include "storage/store_int.h"

#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "migrations/mig_int.h"

#define STORE_APPLY_DELAY_MS 50 /* how long the writer may wait for STORE_APPLY_GROUP of them */
#define STORE_YIELD_EVERY 64    /* ops a transaction applies between two sched_yield()s */
#define STORE_BATCH_MAX_BYTES ((size_t)64 << 20)
/* puts stop at this fill (or at the high water mark when that is set higher), whatever
 * eviction managed: the rest of the map stays for purges, deletes and kv records */
#define STORE_PUT_FILL_MAX 0.92

static int store_lmdb_err(int rc)
{
    if (rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT)
        return STORE_EFULL;
    return STORE_EIO;
}

/* One attempt at the whole batch in one write transaction. Returns 0 once committed. */
static int store_batch_attempt(store_t *s, store_batch_t *b, int with_puts)
{
    MDB_txn *txn;
    b->gen = atomic_load_explicit(&s->generation, memory_order_acquire);
    b->need_sync = b->any_purge = b->purge_all = b->any_removal = 0;
    b->journal_seq = 0;
    b->bus_seq_set = 0;
    b->soft_marked = 0;
    b->mem_remove.n = b->mem_soft.n = b->plog_tags.n = 0;
    b->puts = b->deletes = 0;
    b->kv_cost = 0;
    uint64_t used = atomic_load_explicit(&s->st_bytes_used, memory_order_relaxed);
    double fill = s->high_water > STORE_PUT_FILL_MAX ? s->high_water : STORE_PUT_FILL_MAX;
    uint64_t cap = (uint64_t)((double)store_budget(s) * fill);
    b->put_room = cap > used ? cap - used : 0;
    for (store_op_t *op = b->ops; op != NULL; op = op->next) {
        op->rc = 0;
        op->dropped = STORE_PUT_KEPT;
        memset(&op->res, 0, sizeof(op->res));
    }
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    /*
     * A group of thousands of answered purges is 20-50 ms of CPU in one transaction. On a
     * machine whose cores are all busy, the threads that answer requests (the journal
     * thread, the admin and proxy loops) wait behind it for their next slice: purges
     * answered during such a transaction had a p99 of about 5 ms, the others about 2.
     * The writer holds no lock here, only LMDB's write transaction, so it steps aside
     * every STORE_YIELD_EVERY ops (which brought those to 2.5-4.5 ms); with nothing else
     * runnable a yield is a cheap system call.
     */
    size_t applied = 0;
    for (store_op_t *op = b->ops; op != NULL; op = op->next) {
        if ((rc = store_txn_apply(s, txn, b, op, with_puts)) != 0) {
            mdb_txn_abort(txn);
            return rc;
        }
        if (++applied % STORE_YIELD_EVERY == 0)
            sched_yield();
    }
    /*
     * A transaction that changes objects records how far the journal is applied: up to
     * this batch's last record, or the last committed one, or the last one answered with
     * an error (not applied, never to be). Records the journal thread wrote since wait in
     * the queue behind this batch. Required for puts: a purge applied again after a crash
     * must not remove an object stored after it. Not written by a batch of purges that
     * found nothing, so that those dirty no page here.
     */
    uint64_t seq = atomic_load_explicit(&s->committed_seq, memory_order_acquire);
    seq = b->journal_seq > seq ? b->journal_seq : seq;
    seq = s->writer_seq > seq ? s->writer_seq : seq;
    if (s->journal != NULL && seq > 0 && (b->puts || b->deletes || b->soft_marked || b->purge_all || b->bus_seq_set) &&
        (rc = store_meta_put_u64(s, txn, MIG_META_JOURNAL_SEQ, seq)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    if (rc == 0)
        atomic_fetch_add_explicit(&s->st_commits, 1, memory_order_relaxed);
    return rc;
}

void store_op_free(store_op_t *op)
{
    if (op->charged != NULL)
        atomic_fetch_sub_explicit(&op->charged->put_backlog, op->backlog_bytes, memory_order_relaxed);
    store_hashvec_free(&op->pended);
    obj_unref(&op->obj);
    free(op->key);
    free(op->val);
    free(op);
}

static void store_op_finish(store_t *s, store_op_t *op)
{
    if (op->cb != NULL)
        op->cb(op->cb_arg, &op->res);
    if (op->waited) {
        pthread_mutex_lock(&s->lock);
        op->done = 1;
        pthread_cond_signal(&op->done_cond);
        pthread_mutex_unlock(&s->lock);
    } else {
        store_op_free(op);
    }
}

static void store_batch_process(store_t *s, store_batch_t *b)
{
    store_space_grow(&s->space, now_mono_ms()); /* a budget the file system cut: has space come back? */
    uint64_t high = store_high_bytes(s), low = store_low_bytes(s);
    uint64_t used = atomic_load_explicit(&s->st_bytes_used, memory_order_relaxed);

    if (s->unapplied != NULL) { /* answered earlier, their transaction failed: they go first */
        store_op_t *last = s->unapplied;
        while (last->next != NULL)
            last = last->next;
        last->next = b->ops;
        b->ops = s->unapplied;
        s->unapplied = NULL;
    }

    /* a purge whose journal write failed is never applied: this commit's journal_seq passes it already */
    for (store_op_t *op = b->ops; op != NULL; op = op->next)
        if (op->journal_failed && op->journal_seq > s->writer_seq)
            s->writer_seq = op->journal_seq;

    /* make room before the puts land, so that the map never fills */
    if (b->has_puts && used + b->put_cost > high)
        store_evict_to(s, high > b->put_cost && high - b->put_cost < low ? high - b->put_cost : low);

    /*
     * The file system refusing a write is handled as the map filling up: the budget is cut
     * to what the file holds, eviction frees pages inside it, and the retry reuses them.
     * Without puts too: a purge-all or a delete must get through on a full disk.
     */
    int rc = store_batch_attempt(s, b, 1);
    int full = rc == MDB_MAP_FULL || store_write_refused(s, rc);
    if ((full || rc == MDB_TXN_FULL) && (b->has_puts || full)) {
        uint64_t extra = b->put_cost + store_budget(s) / 10;
        low = store_low_bytes(s);
        store_evict_to(s, low > extra ? low - extra : 0);
        store_advance_txnid(s);
        rc = store_batch_attempt(s, b, 1);
        store_write_refused(s, rc);
    }
    if (rc != 0 && b->has_puts) { /* keep the purges and kv writes; drop the puts */
        store_advance_txnid(s);
        rc = store_batch_attempt(s, b, 0);
        store_write_refused(s, rc);
    }

    if (rc == 0 && b->journal_seq != 0)
        atomic_store_explicit(&s->committed_seq, b->journal_seq, memory_order_release);
    if (rc == 0)
        store_pend_release(s, b->ops); /* the answered purges this committed */
    int sync_rc = 0;
    if (rc == 0 && b->need_sync) { /* kv writes and flushes; purges are durable through the journal */
        sync_rc = store_sync_main(s);
        if (sync_rc != 0)
            fprintf(stderr, "edgecache: store: sync failed: %s\n", mdb_strerror(sync_rc));
    }
    if (rc != 0)
        fprintf(stderr, "edgecache: store: write transaction failed: %s\n", mdb_strerror(rc));

    if (rc == 0) {
        atomic_fetch_add_explicit(&s->st_puts, b->puts, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->st_deletes, b->deletes, memory_order_relaxed);
        if (b->bus_seq_set)
            atomic_store_explicit(&s->bus_seq, b->bus_seq, memory_order_release);
        if (b->purge_all) {
            atomic_store_explicit(&s->generation, b->gen, memory_order_release);
            s->reclaim_gen = b->gen; /* start (or restart) the background pass */
            s->reclaim_has_pos = 0;
        }
        if (b->any_purge || b->any_removal) {
            uint64_t epoch = store_plog_publish(s, &b->plog_tags);
            store_hide_queued_puts(s, &b->plog_tags, epoch, 0); /* puts queued behind this batch */
        }
        if (s->mem != NULL) {
            if (b->purge_all)
                mem_clear(s->mem);
            for (size_t i = 0; i < b->mem_remove.n; i++)
                mem_remove(s->mem, b->mem_remove.v[i]);
            for (size_t i = 0; i < b->mem_soft.n; i++) {
                cache_obj_t *obj = mem_lookup(s->mem, b->mem_soft.v[i]);
                if (obj != NULL) {
                    atomic_fetch_or_explicit(&obj->flags, OBJ_F_SOFT_PURGED, memory_order_release);
                    obj_unref(&obj);
                }
            }
        }
    }

    /* acknowledge everything but flushes now; a flush also waits for the eviction below,
     * so that whoever flushed sees the store settled (and its counters current) */
    store_op_t *flushes = NULL, **unapplied_tail = &s->unapplied;
    uint64_t order = 0;
    int keep = 0;
    for (store_op_t *op = b->ops; op != NULL; op = op->next) {
        order = op->order > order ? op->order : order;
        keep |= op->acked && rc != 0;
        if (op->kind != STORE_OP_PUT)
            continue;
        /* before any answer: a put dropped for a purge earlier in this batch must be out of memory by then */
        if (rc != 0 && op->dropped == STORE_PUT_KEPT)
            op->dropped = STORE_PUT_MAP_FULL;
        int no_room = op->dropped == STORE_PUT_MAP_FULL || op->dropped == STORE_PUT_TOO_LARGE;
        if (no_room)
            atomic_fetch_add_explicit(&s->st_map_full, 1, memory_order_relaxed);
        if (op->dropped == STORE_PUT_KEPT || s->mem == NULL)
            continue;
        if (no_room)
            store_memonly_add(s, op->obj); /* the disk's trouble: it still serves from memory */
        else
            mem_remove_if_same(s->mem, op->obj->hash, op->obj); /* purged, or of an old generation */
    }
    /* this batch's purges cover the memory-only objects too, those just listed included */
    if (rc == 0 && (b->purge_all || b->plog_tags.n > 0))
        store_memonly_purge(s, &b->plog_tags, b->purge_all);
    atomic_store_explicit(&s->apply_failing, keep, memory_order_release); /* before any answer below */
    for (store_op_t *op = b->ops, *next; op != NULL; op = next) {
        next = op->next;
        if (op->acked && rc != 0) { /* answered already: keep it for the next transaction */
            op->next = NULL;
            *unapplied_tail = op;
            unapplied_tail = &op->next;
            continue;
        }
        if (rc != 0) /* answered with the error, never applied (journal_failed ones: see above) */
            s->writer_seq = op->journal_seq > s->writer_seq ? op->journal_seq : s->writer_seq;
        if (op->journal_failed) {
            op->res.err = STORE_EIO;
        } else if (rc != 0) {
            op->res.err = store_lmdb_err(rc);
            op->rc = STORE_EIO;
        } else if (sync_rc != 0 && (op->kind == STORE_OP_KV || op->kind == STORE_OP_FLUSH)) {
            op->res.err = STORE_EIO;
            op->rc = STORE_EIO;
        }
        if (op->kind == STORE_OP_FLUSH) {
            op->next = flushes;
            flushes = op;
        } else {
            store_op_finish(s, op);
        }
    }
    b->ops = NULL;
    if (order > atomic_load_explicit(&s->applied_order, memory_order_relaxed))
        atomic_store_explicit(&s->applied_order, order, memory_order_release);

    if (store_measure(s, &used) == 0 && used > high)
        store_evict_to(s, low);
    for (store_op_t *op = flushes, *next; op != NULL; op = next) {
        next = op->next;
        store_op_finish(s, op);
    }
}

/* Run one batch with s->lock held on entry and exit; the journal thread may wait for applying to drop. */
static void store_writer_run(store_t *s, store_batch_t *b)
{
    s->applying = 1;
    pthread_mutex_unlock(&s->lock);
    store_batch_process(s, b);
    store_hashvec_free(&b->mem_remove);
    store_hashvec_free(&b->mem_soft);
    store_hashvec_free(&b->plog_tags);
    pthread_mutex_lock(&s->lock);
    s->applying = 0;
    pthread_cond_broadcast(&s->apply_room);
}

void *store_writer_main(void *arg)
{
    store_t *s = arg;
    uint64_t used;
    pthread_setname_np(pthread_self(), "ec-store"); /* shown by top -H, ps -L, perf */
    if (store_measure(s, &used) == 0 && used > store_high_bytes(s))
        store_evict_to(s, store_low_bytes(s)); /* e.g. reopened with a smaller map */

    pthread_mutex_lock(&s->lock);
    for (;;) {
        uint64_t budget = store_budget(s); /* the file system may cut it, and give it back */
        size_t max_put_cost = budget / 8 < STORE_BATCH_MAX_BYTES ? (size_t)(budget / 8) : STORE_BATCH_MAX_BYTES;
        if (s->ahead == NULL) {
            if (s->front_done)
                break;
            if (s->unapplied != NULL) {
                /* answered purges whose transaction failed: try again each second */
                struct timespec ts;
                store_deadline(&ts, 1000);
                if (pthread_cond_timedwait(&s->apply_wake, &s->lock, &ts) == ETIMEDOUT && s->ahead == NULL) {
                    store_batch_t b = {0}; /* empty: store_batch_process puts them in */
                    store_writer_run(s, &b);
                }
            } else if (s->reclaim_gen != 0 && now_mono_ms() < s->reclaim_retry_ms) {
                struct timespec ts; /* a step failed for room: wait a little, or for work */
                store_deadline(&ts, s->reclaim_retry_ms - now_mono_ms());
                pthread_cond_timedwait(&s->apply_wake, &s->lock, &ts);
            } else if (s->reclaim_gen != 0) {
                pthread_mutex_unlock(&s->lock);
                store_reclaim_step(s);
                pthread_mutex_lock(&s->lock);
            } else {
                int64_t trim_in = store_map_trim_idle(s); /* nothing to apply: unmap the data file's pages */
                if (trim_in > 0) {
                    struct timespec ts;
                    store_deadline(&ts, trim_in);
                    pthread_cond_timedwait(&s->apply_wake, &s->lock, &ts);
                } else if (trim_in == 0) {
                    pthread_cond_wait(&s->apply_wake, &s->lock);
                }
            }
            continue;
        }
        /* only answered purges: wait a little for more, so that they share a transaction */
        int64_t due = s->ahead_since_ms + STORE_APPLY_DELAY_MS, now;
        if (s->a_urgent == 0 && s->an < STORE_APPLY_GROUP && !s->front_done && s->unapplied == NULL &&
            (now = now_mono_ms()) < due) {
            struct timespec ts;
            store_deadline(&ts, due - now);
            pthread_cond_timedwait(&s->apply_wake, &s->lock, &ts);
            continue;
        }
        /* take what waits, bounded so that one transaction stays small next to the map */
        store_batch_t b = {0};
        store_op_t **tailp = &b.ops;
        size_t n = 0;
        while (s->ahead != NULL && n < STORE_BATCH_MAX_OPS) {
            store_op_t *op = s->ahead;
            size_t cost = op->kind == STORE_OP_PUT ? store_rec_cost(s, op->obj->rec_len) : 0;
            if (n > 0 && cost > 0 && b.put_cost + cost > max_put_cost)
                break;
            s->ahead = op->next;
            op->next = NULL;
            *tailp = op;
            tailp = &op->next;
            s->a_urgent -= store_op_urgent(op);
            b.put_cost += cost;
            b.has_puts |= op->kind == STORE_OP_PUT;
            n++;
        }
        if (s->ahead == NULL)
            s->atail = NULL;
        else
            s->ahead_since_ms = now_mono_ms(); /* roughly: what is left waits no longer than that */
        s->an -= n;
        pthread_cond_broadcast(&s->apply_room);
        store_writer_run(s, &b);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

store_op_t *store_op_new(store_op_kind_t kind)
{
    store_op_t *op = alloc_xcalloc(1, sizeof(*op), "store");
    op->kind = kind;
    return op;
}

/* what this thread holds back between store_hold_begin and store_hold_end */
typedef struct store_held {
    store_t *s; /* NULL: not holding */
    store_op_t *head, *tail;
} store_held_t;
static __thread store_held_t store_held;

/*
 * Append the chain head..tail to the queue (s->lock held). Returns 1 when the queue was
 * empty: the journal thread may be waiting, and the caller signals s->wake once it has
 * let go of the lock (signalled under it, the thread woke only to wait for the lock:
 * two more futex calls and a task switch per purge). A queue that was not empty needs
 * no signal: the journal thread waits only on an empty one, and whoever filled it
 * signals.
 */
static int store_queue_locked(store_t *s, store_op_t *head, store_op_t *tail)
{
    int was_empty = s->head == NULL;
    if (s->tail != NULL)
        s->tail->next = head;
    else
        s->head = head;
    s->tail = tail;
    return was_empty;
}

/* Queue an op the caller does not wait for. Returns 0, or -1 when the store takes no writes (op not queued). */
int store_enqueue(store_t *s, store_op_t *op)
{
    if (store_held.s == s) {
        if (store_held.tail != NULL)
            store_held.tail->next = op;
        else
            store_held.head = op;
        store_held.tail = op;
        return 0;
    }
    pthread_mutex_lock(&s->lock);
    if (s->stopping || !s->writer_started) {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    int wake = store_queue_locked(s, op, op);
    pthread_mutex_unlock(&s->lock);
    if (wake)
        pthread_cond_signal(&s->wake);
    return 0;
}

void store_hold_begin(store_t *s)
{
    assert(s != NULL && s->magic == STORE_MAGIC && store_held.s == NULL);
    store_held.s = s;
}

void store_hold_end(store_t *s)
{
    assert(store_held.s == s);
    store_op_t *head = store_held.head, *tail = store_held.tail;
    store_held.s = NULL;
    store_held.head = store_held.tail = NULL;
    if (head == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->stopping || !s->writer_started) {
        pthread_mutex_unlock(&s->lock);
        for (store_op_t *op = head, *next; op != NULL; op = next) {
            next = op->next;
            op->next = NULL;
            store_refuse(op);
        }
        return;
    }
    int wake = store_queue_locked(s, head, tail);
    pthread_mutex_unlock(&s->lock);
    if (wake)
        pthread_cond_signal(&s->wake);
}

/* Queue an op on the caller's stack and wait until the writer finished it. Returns op->rc. */
int store_submit_wait(store_t *s, store_op_t *op)
{
    if (store_held.s == s) { /* what this thread queued before goes first */
        store_hold_end(s);
        store_hold_begin(s);
    }
    op->waited = 1;
    pthread_cond_init(&op->done_cond, NULL);
    pthread_mutex_lock(&s->lock);
    if (s->stopping || !s->writer_started) {
        pthread_mutex_unlock(&s->lock);
        pthread_cond_destroy(&op->done_cond);
        return STORE_EIO;
    }
    if (store_queue_locked(s, op, op)) { /* signalled without the lock, as store_enqueue */
        pthread_mutex_unlock(&s->lock);
        pthread_cond_signal(&s->wake);
        pthread_mutex_lock(&s->lock);
    }
    while (!op->done)
        pthread_cond_wait(&op->done_cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
    pthread_cond_destroy(&op->done_cond);
    return op->rc;
}

/* an op the store did not take: a purge's callback hears STORE_EIO */
void store_refuse(store_op_t *op)
{
    if (op->cb != NULL) {
        store_purge_result_t res = {.err = STORE_EIO};
        op->cb(op->cb_arg, &res);
    }
    store_op_free(op);
}

/*
 * storage/store.c — the LMDB store's public API (storage/store.h) once it is open:
 * reads, the write entry points, stats, and the config/tokens/stats key-value records.
 * The rest of the store lives beside it, sharing storage/store_int.h:
 *   store_open.c            the lifecycle: store_open and store_close
 *   store_txn.c             records and their indexes inside one write transaction
 *                           (the LMDB layout is described there)
 *   store_writer.c          the write queue and the writer thread (group commit)
 *   store_journal_thread.c  the journal thread: journals purges, answers them early
 *   store_checkpoint.c      the checkpointer, and replay of the purge journal at open
 *   store_plog.c            the purge log ("purged since") and the pending set
 *   store_memonly.c         objects only the memory tier holds (the disk had no room)
 *   store_evict.c           the budget, eviction, reclaim of old generations
 *   store_rtxn.c            per-thread read transactions
 *   store_maptrim.c         unmaps the data file's pages from the process when the writer is idle
 *   journal.c, store_space.c, store_check.c, store_state.c: the purge journal's file,
 *                           the room on the file system, the soundness checks
 *
 * Invariants (the readers here check the last two):
 *   - The memory tier never holds an object that the disk no longer indexes
 *     (store_writer.c), except the memory-only set, which every purge is matched
 *     against as well (store_memonly.c).
 *   - The fill figures are fractions of the budget (store_evict.c).
 *   - An object whose generation is below the current generation is a miss.
 *   - An object in the pending set (a purge of it was answered, the transaction
 *     deleting it has not committed) is a miss (store_plog.c).
 *
 * Threads: any thread reads (store_get, kv reads) through read-only transactions
 * (MDB_NOTLS, so a transaction is not tied to its thread; store_get and store_kv_get
 * keep one per (thread, store), reset between reads). Writes pass two threads in turn. The
 * journal thread takes all queued operations, writes their purges to the journal
 * (one synced write), answers the hard URL and key purges among them at once
 * (store_batch_ack_early: their objects join the pending set that store_get
 * checks) and hands everything on in order. The one writer thread owns every write
 * transaction: it applies what it was handed in one transaction (group commit;
 * answered purges may wait up to STORE_APPLY_DELAY_MS for more), commits, syncs
 * when one of the operations needs durability, then bumps the purge epoch, updates
 * the memory tier, and finally runs the other callbacks and wakes waiters. When its
 * queue is idle it reclaims objects of old generations. store_open starts both and
 * the checkpointer; store_close drains and joins them (store_open.c). A store opened
 * read-only has none of them; store_kv_put_sync then writes directly.
 */
#include "storage/store_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "migrations/mig_int.h"

/* ---- small helpers ---- */

void store_hashvec_push(store_hashvec_t *hv, const uint8_t hash[CACHE_HASH_LEN])
{
    if (hv->n == hv->cap) {
        hv->cap = hv->cap ? hv->cap * 2 : 16;
        hv->v = alloc_xrealloc(hv->v, hv->cap * CACHE_HASH_LEN, "store");
    }
    memcpy(hv->v[hv->n++], hash, CACHE_HASH_LEN);
}

void store_hashvec_free(store_hashvec_t *hv)
{
    free(hv->v);
    memset(hv, 0, sizeof(*hv));
}

int store_hashvec_has(const store_hashvec_t *hv, const uint8_t hash[CACHE_HASH_LEN])
{
    for (size_t i = 0; i < hv->n; i++)
        if (memcmp(hv->v[i], hash, CACHE_HASH_LEN) == 0)
            return 1;
    return 0;
}

/* *ts = now + ms on CLOCK_MONOTONIC, the clock of the store's condition variables */
void store_deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- reads ---- */

int store_get(store_t *s, const uint8_t hash[CACHE_HASH_LEN], const char *key, size_t key_len, cache_obj_t **out)
{
    assert(s != NULL && s->magic == STORE_MAGIC);
    *out = NULL;
    for (int attempt = 0;; attempt++) {
        /* read before the snapshot is taken: a commit that emptied the pending set since shows */
        uint64_t pend_gen = atomic_load_explicit(&s->pend_gen, memory_order_acquire);
        MDB_txn *txn = store_rtxn_begin(s);
        if (txn == NULL)
            return STORE_EIO;
        int ret;
        MDB_val k = {CACHE_HASH_LEN, (void *)hash}, v;
        int rc = mdb_get(txn, s->dbi_objects, &k, &v);
        if (rc == MDB_NOTFOUND) {
            ret = STORE_ENOTFOUND;
        } else if (rc != 0) {
            ret = STORE_EIO;
        } else {
            int err = 0;
            cache_obj_t *obj = obj_decode(hash, v.mv_data, v.mv_size, &err);
            if (obj == NULL) {
                atomic_fetch_add_explicit(&s->st_corrupt, 1, memory_order_relaxed);
                store_op_t *op = store_op_new(STORE_OP_DELETE_CORRUPT);
                memcpy(op->hash, hash, CACHE_HASH_LEN);
                if (store_enqueue(s, op) != 0)
                    store_op_free(op);
                ret = STORE_ECORRUPT;
            } else if (obj->key_len != key_len || memcmp(obj->key, key, key_len) != 0 ||
                       obj->meta.generation < atomic_load_explicit(&s->generation, memory_order_acquire) ||
                       store_pend_has(s, hash)) {
                obj_unref(&obj);
                ret = STORE_ENOTFOUND;
            } else {
                *out = obj;
                ret = 0;
            }
        }
        mdb_txn_reset(txn);
        if (ret != 0 || atomic_load_explicit(&s->pend_gen, memory_order_acquire) == pend_gen)
            return ret;
        /* the set was emptied while we read: our snapshot may predate the commit that deleted it */
        obj_unref(out);
        if (attempt == 2)
            return STORE_ENOTFOUND; /* a miss is always safe */
    }
}

uint64_t store_bus_seq(store_t *s)
{
    return atomic_load_explicit(&s->bus_seq, memory_order_acquire);
}

void store_note_bus_seq(store_t *s, uint64_t seq, store_purge_cb cb, void *arg)
{
    assert(s != NULL && s->magic == STORE_MAGIC);
    store_op_t *op = store_op_new(STORE_OP_BUS_SEQ);
    op->bus_seq = seq;
    op->cb = cb;
    op->cb_arg = arg;
    if (store_enqueue(s, op) != 0)
        store_refuse(op);
}

uint64_t store_generation(store_t *s)
{
    return atomic_load_explicit(&s->generation, memory_order_acquire);
}

uint64_t store_purge_epoch(store_t *s)
{
    return atomic_load_explicit(&s->purge_epoch, memory_order_acquire);
}

/* ---- writes ---- */

/*
 * A put holds its object until the writer is done with it, and the queue has no other
 * bound: behind a disk that stalls, or slower than the origin, queued puts would pin
 * ever more memory (objects the memory tier already evicted included) until the process
 * is killed. So they are counted in bytes, from the queue to the op's free, and a put
 * that would take the count past put_backlog_max is refused. The count is taken before
 * the check, so that two threads never both pass it on the same room.
 */
static int store_put_op(store_t *s, cache_obj_t *obj, int has_since, uint64_t since_epoch)
{
    assert(s != NULL && s->magic == STORE_MAGIC && obj != NULL && obj->magic == OBJ_MAGIC);
    size_t bytes = obj->rec_len; /* the record holds the body */
    uint64_t before = atomic_fetch_add_explicit(&s->put_backlog, bytes, memory_order_relaxed);
    if (before != 0 && before + bytes > s->put_backlog_max) {
        atomic_fetch_sub_explicit(&s->put_backlog, bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->st_puts_refused_backlog, 1, memory_order_relaxed);
        return STORE_EBACKLOG;
    }
    store_op_t *op = store_op_new(STORE_OP_PUT);
    op->obj = obj_ref(obj);
    op->has_since = has_since;
    op->since_epoch = since_epoch;
    op->charged = s;
    op->backlog_bytes = bytes;
    if (store_enqueue(s, op) != 0) {
        store_op_free(op);
        return STORE_EIO;
    }
    return 0;
}

int store_put(store_t *s, cache_obj_t *obj)
{
    return store_put_op(s, obj, 0, 0);
}

int store_put_since(store_t *s, cache_obj_t *obj, uint64_t since_epoch)
{
    return store_put_op(s, obj, 1, since_epoch);
}

int store_purged_since(store_t *s, uint64_t since_epoch, const char *key, size_t key_len, const char *skeys, size_t skeys_len)
{
    assert(s != NULL && s->magic == STORE_MAGIC);
    /* nothing committed since: a purge still in the queue is caught by the writer (store_put_since) */
    if (atomic_load_explicit(&s->purge_epoch, memory_order_acquire) == since_epoch)
        return 0;
    store_hashvec_t tags = {0};
    store_obj_tags(key, key_len, skeys, skeys_len, &tags);
    int purged = store_plog_purged(s, since_epoch, &tags);
    store_hashvec_free(&tags);
    return purged;
}

void store_delete(store_t *s, const uint8_t hash[CACHE_HASH_LEN])
{
    assert(s != NULL && s->magic == STORE_MAGIC);
    store_op_t *op = store_op_new(STORE_OP_DELETE);
    memcpy(op->hash, hash, CACHE_HASH_LEN);
    if (store_enqueue(s, op) != 0)
        store_op_free(op);
}

static void store_purge_submit(store_t *s, store_op_kind_t kind, const char *key, size_t key_len, int soft, store_purge_cb cb,
                               void *arg)
{
    assert(s != NULL && s->magic == STORE_MAGIC);
    store_op_t *op = store_op_new(kind);
    if (kind == STORE_OP_PURGE_URL) {
        obj_key_hash(key, key_len, op->hash); /* all the writer needs; hashed here, off its thread */
    } else if (kind == STORE_OP_PURGE_SKEY) {
        /* from here on the purge names the key's index key (at most 511 bytes, so it fits
         * the skeys index and a journal record whatever the key's length) */
        uint8_t ikey[OBJ_SKEY_INDEX_KEY_MAX];
        size_t ilen = key != NULL ? obj_skey_index_key(key, key_len, ikey) : 0;
        op->key = alloc_xmemdup(ikey, ilen, 1, "store");
        op->key_len = ilen;
    } else if (key != NULL) {
        op->key = alloc_xmemdup(key, key_len, 1, "store");
        op->key_len = key_len;
    }
    op->soft = soft;
    op->cb = cb;
    op->cb_arg = arg;
    if (store_enqueue(s, op) != 0)
        store_refuse(op);
}

void store_purge_key_url(store_t *s, const char *key, size_t key_len, int soft, store_purge_cb cb, void *arg)
{
    store_purge_submit(s, STORE_OP_PURGE_URL, key, key_len, soft, cb, arg);
}

void store_purge_surrogate_key(store_t *s, const char *skey, size_t skey_len, int soft, store_purge_cb cb, void *arg)
{
    store_purge_submit(s, STORE_OP_PURGE_SKEY, skey, skey_len, soft, cb, arg);
}

void store_purge_all(store_t *s, store_purge_cb cb, void *arg)
{
    store_purge_submit(s, STORE_OP_PURGE_ALL, NULL, 0, 0, cb, arg);
}

int store_flush(store_t *s)
{
    assert(s != NULL && s->magic == STORE_MAGIC);
    if (s->read_only)
        return 0;
    store_op_t op = {.kind = STORE_OP_FLUSH};
    return store_submit_wait(s, &op);
}

void store_get_stats(store_t *s, store_stats_t *out)
{
    assert(s != NULL && s->magic == STORE_MAGIC);
    memset(out, 0, sizeof(*out));
    out->objects = atomic_load_explicit(&s->st_objects, memory_order_relaxed);
    out->bytes_used = atomic_load_explicit(&s->st_bytes_used, memory_order_relaxed);
    out->map_size = s->map_size;
    out->puts = atomic_load_explicit(&s->st_puts, memory_order_relaxed);
    out->deletes = atomic_load_explicit(&s->st_deletes, memory_order_relaxed);
    out->evictions = atomic_load_explicit(&s->st_evictions, memory_order_relaxed);
    out->commits = atomic_load_explicit(&s->st_commits, memory_order_relaxed);
    out->syncs = atomic_load_explicit(&s->st_syncs, memory_order_relaxed);
    out->journal_commits = atomic_load_explicit(&s->st_journal_commits, memory_order_relaxed);
    out->checkpoints = atomic_load_explicit(&s->st_checkpoints, memory_order_relaxed);
    out->journal_write_us = atomic_load_explicit(&s->st_journal_write_us, memory_order_relaxed);
    out->journal_write_max_us = atomic_load_explicit(&s->st_journal_write_max_us, memory_order_relaxed);
    out->journal_direct = s->journal != NULL && journal_is_direct(s->journal);
    out->writemap = s->writemap;
    uint64_t committed = atomic_load(&s->committed_seq), durable = atomic_load(&s->durable_seq);
    out->journal_unsynced = committed > durable ? committed - durable : 0;
    out->map_full_errors = atomic_load_explicit(&s->st_map_full, memory_order_relaxed);
    out->corrupt_records = atomic_load_explicit(&s->st_corrupt, memory_order_relaxed);
    out->generation = store_generation(s);
    out->budget = store_budget(s);
    out->enospc = atomic_load_explicit(&s->space.enospc, memory_order_relaxed);
    out->memory_only = atomic_load_explicit(&s->memonly_count, memory_order_relaxed);
    out->map_trims = atomic_load_explicit(&s->st_map_trims, memory_order_relaxed);
    out->put_backlog_bytes = atomic_load_explicit(&s->put_backlog, memory_order_relaxed);
    out->put_backlog_limit = s->put_backlog_max;
    out->puts_refused_backlog = atomic_load_explicit(&s->st_puts_refused_backlog, memory_order_relaxed);
}

/* ---- key/value records ---- */

static int store_dbi_for_kv(store_t *s, const char *db, MDB_dbi *dbi)
{
    if (db == NULL)
        return STORE_EIO;
    if (strcmp(db, MIG_DB_CONFIG) == 0)
        *dbi = s->dbi_config;
    else if (strcmp(db, MIG_DB_TOKENS) == 0)
        *dbi = s->dbi_tokens;
    else if (strcmp(db, MIG_DB_STATS) == 0)
        *dbi = s->dbi_stats;
    else
        return STORE_EIO;
    return 0;
}

int store_kv_get(store_t *s, const char *db, const char *key, char **val, size_t *val_len)
{
    assert(s != NULL && s->magic == STORE_MAGIC);
    MDB_dbi dbi;
    MDB_txn *txn;
    *val = NULL;
    if (val_len != NULL)
        *val_len = 0;
    size_t klen = key != NULL ? strlen(key) : 0;
    if (store_dbi_for_kv(s, db, &dbi) != 0 || klen == 0 || klen > s->max_keysize)
        return STORE_EIO;
    /* this thread's read transaction, renewed: the admin API reads a token on every request,
     * and a transaction begun afresh (a calloc and a reader slot taken and given back) was
     * most of that read */
    if ((txn = store_rtxn_begin(s)) == NULL)
        return STORE_EIO;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v), ret;
    if (rc == 0) {
        *val = alloc_xmemdup(v.mv_data, v.mv_size, 1, "store");
        if (val_len != NULL)
            *val_len = v.mv_size;
        ret = 0;
    } else {
        ret = rc == MDB_NOTFOUND ? STORE_ENOTFOUND : STORE_EIO;
    }
    mdb_txn_reset(txn);
    return ret;
}

/* read_only store: write in the calling thread (LMDB serializes writers across processes) */
static int store_kv_write_direct(store_t *s, MDB_dbi dbi, const char *key, size_t klen, const void *val, size_t val_len)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn), ret = 0;
    if (rc != 0)
        return STORE_EIO;
    MDB_val k = {klen, (void *)key};
    if (val != NULL) {
        MDB_val v = {val_len, (void *)val};
        if (store_measure(s, NULL) != 0 || !store_kv_fits(s, store_rec_cost(s, klen + val_len))) {
            mdb_txn_abort(txn);
            return STORE_EIO;
        }
        rc = mdb_put(txn, dbi, &k, &v, 0);
    } else {
        rc = mdb_del(txn, dbi, &k, NULL);
        if (rc == MDB_NOTFOUND) {
            ret = STORE_ENOTFOUND;
            rc = 0;
        }
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return STORE_EIO;
    }
    if (mdb_txn_commit(txn) != 0 || mdb_env_sync(s->env, 1) != 0)
        return STORE_EIO;
    return ret;
}

int store_kv_put_sync(store_t *s, const char *db, const char *key, const void *val, size_t val_len)
{
    assert(s != NULL && s->magic == STORE_MAGIC);
    MDB_dbi dbi;
    size_t klen = key != NULL ? strlen(key) : 0;
    if (store_dbi_for_kv(s, db, &dbi) != 0 || klen == 0 || klen > s->max_keysize)
        return STORE_EIO;
    if (s->read_only)
        return store_kv_write_direct(s, dbi, key, klen, val, val_len);
    store_op_t op = {.kind = STORE_OP_KV,
                     .dbi = dbi,
                     .key = (char *)key,
                     .key_len = klen,
                     .val = val != NULL ? (void *)val : NULL,
                     .val_len = val_len};
    if (val != NULL && val_len == 0)
        op.val = (void *)""; /* an empty value is a value, not a delete */
    return store_submit_wait(s, &op);
}

int store_kv_foreach(store_t *s, const char *db,
                     int (*fn)(void *arg, const char *key, size_t key_len, const void *val, size_t val_len), void *arg)
{
    return store_kv_foreach_from(s, db, NULL, fn, arg);
}

int store_kv_foreach_from(store_t *s, const char *db, const char *from,
                          int (*fn)(void *arg, const char *key, size_t key_len, const void *val, size_t val_len), void *arg)
{
    assert(s != NULL && s->magic == STORE_MAGIC);
    MDB_dbi dbi;
    MDB_txn *txn;
    MDB_cursor *c;
    if (store_dbi_for_kv(s, db, &dbi) != 0)
        return STORE_EIO;
    /* its own transaction, not this thread's (fn may read through that one); it maps pages too */
    store_map_note_read(s);
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return STORE_EIO;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc == 0) {
        MDB_val k = {.mv_size = from != NULL ? strlen(from) : 0, .mv_data = (void *)from}, v;
        /* MDB_SET_RANGE: the first key >= from, so a walk over a time range skips what is older */
        rc = mdb_cursor_get(c, &k, &v, from != NULL && from[0] != '\0' ? MDB_SET_RANGE : MDB_FIRST);
        while (rc == 0) {
            if (fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size) != 0)
                break;
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : STORE_EIO;
}

/*
 * storage/store_evict.c — the room the store fills, eviction of the oldest objects,
 * and the background reclaim of objects of old generations.
 *
 * Invariants:
 *   - The fill figures are fractions of the budget (store_budget), which is the
 *     map size unless the file system has less room (storage/store_space_int.h);
 *     a write the file system refuses cuts it and is handled like MDB_MAP_FULL
 *     (store_write_refused).
 *   - Eviction keeps the bytes in use between the low and high water marks of the
 *     budget, oldest response first (the evict index); the objects it removes leave
 *     the memory tier after its commit, behind a purge-epoch bump.
 *   - An object whose generation is below the current generation is a miss; reclaim
 *     deletes them in the background, a bounded step at a time, and records the pass
 *     as done in meta ("reclaimed_generation").
 *
 * Threads: the writer thread alone evicts and reclaims (between batches; reclaim when
 * its queue is idle). store_measure also runs at open and in a read-only store's
 * direct kv writes; any thread reads the budget.
 */
#include "storage/store_int.h"

#include <stdio.h>
#include <string.h>
#include "migrations/mig_int.h"

#define STORE_EVICT_CHUNK 1000 /* objects per eviction transaction */
#define STORE_EVICT_MAX_ROUNDS 64
#define STORE_RECLAIM_SCAN_MAX 20000 /* records looked at per reclaim transaction */
#define STORE_RECLAIM_SCAN_BYTES ((size_t)32 << 20)
/* kv writes (not deletes) stop at this fill: eviction cannot free kv records, and a
 * completely full LMDB map cannot even delete (a delete copies pages too) */
#define STORE_KV_FILL_MAX 0.95

/* The end of the data LMDB holds: what its file has written (allocated) so far. */
static uint64_t store_data_end(store_t *s)
{
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) != 0)
        return 0;
    return ((uint64_t)info.me_last_pgno + 1) * s->psize;
}

/*
 * A write transaction failed with rc: if for want of room on the file system, the
 * budget is cut to the data the file holds (store_space_full) and 1 is returned, so
 * that the caller evicts inside the file, as for MDB_MAP_FULL.
 */
int store_write_refused(store_t *s, int rc)
{
    if (rc == 0 || rc == MDB_MAP_FULL || rc < 0) /* LMDB's own codes are negative; the file system's are errno */
        return 0;
    return store_space_full(&s->space, rc, store_data_end(s), now_mono_ms());
}

/*
 * The bytes the store may fill: the map size, or less when the file system has less
 * room than that (store_space_int.h). Every fill figure (eviction's water marks, the
 * room of puts and kv records) is a fraction of it.
 */
uint64_t store_budget(store_t *s)
{
    return store_space_budget_now(&s->space);
}

/* Is there room for `extra` more bytes of kv records (see STORE_KV_FILL_MAX)? */
int store_kv_fits(store_t *s, size_t extra)
{
    uint64_t used = atomic_load_explicit(&s->st_bytes_used, memory_order_relaxed);
    return (double)(used + extra) <= (double)store_budget(s) * STORE_KV_FILL_MAX;
}

/* Bytes in use: pages of every tree (free list, main, named) times the page size. Also refreshes the object count. */
int store_measure(store_t *s, uint64_t *used_out)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    MDB_dbi dbis[] = {
        0,           1, s->dbi_meta, s->dbi_objects, s->dbi_skeys, s->dbi_variants, s->dbi_evict, s->dbi_config, s->dbi_tokens,
        s->dbi_stats};
    uint64_t pages = 0;
    for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
        MDB_stat st;
        if ((rc = mdb_stat(txn, dbis[i], &st)) != 0)
            break;
        pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
        if (dbis[i] == s->dbi_objects)
            atomic_store_explicit(&s->st_objects, st.ms_entries, memory_order_relaxed);
    }
    mdb_txn_abort(txn);
    if (rc != 0)
        return rc;
    uint64_t used = pages * s->psize;
    atomic_store_explicit(&s->st_bytes_used, used, memory_order_relaxed);
    if (used_out != NULL)
        *used_out = used;
    return 0;
}

/*
 * Delete the oldest objects (by the `evict` index) until the bytes in use are at most
 * `target`. Runs on the writer thread between batches. Each round is one transaction
 * of at most STORE_EVICT_CHUNK objects; a round that hits MDB_MAP_FULL is retried with
 * fewer objects (a delete needs a few fresh pages too).
 */
void store_evict_to(store_t *s, uint64_t target)
{
    size_t chunk = STORE_EVICT_CHUNK;
    store_hashvec_t evicted = {0};
    for (int round = 0; round < STORE_EVICT_MAX_ROUNDS; round++) {
        uint64_t used;
        if (store_measure(s, &used) != 0 || used <= target)
            break;
        uint64_t need = used - target, freed = 0;
        MDB_txn *txn = NULL;
        MDB_cursor *c = NULL;
        size_t visited = 0;
        int rc = mdb_txn_begin(s->env, NULL, 0, &txn), empty = 0;
        evicted.n = 0;
        if (rc == 0)
            rc = mdb_cursor_open(txn, s->dbi_evict, &c);
        while (rc == 0 && evicted.n < chunk && freed < need && visited < chunk * 4) {
            MDB_val k, v;
            rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
            if (rc == MDB_NOTFOUND) {
                empty = 1;
                rc = 0;
                break;
            }
            if (rc != 0)
                break;
            visited++;
            uint8_t ek[STORE_EVICT_KEY_LEN];
            int well_formed = k.mv_size == sizeof(ek);
            if (well_formed)
                memcpy(ek, k.mv_data, sizeof(ek));
            if ((rc = mdb_cursor_del(c, 0)) != 0 || !well_formed)
                continue;
            const uint8_t *hash = ek + 8;
            cache_obj_t *obj;
            int present;
            if ((rc = store_txn_load(s, txn, hash, &obj, &present)) != 0 || !present)
                continue;
            if (obj != NULL) {
                uint8_t cur[STORE_EVICT_KEY_LEN];
                store_evict_key(cur, obj->meta.response_time_ms, hash);
                size_t rec_len = obj->rec_len;
                if (memcmp(cur, ek, sizeof(ek)) != 0) { /* stale entry: the record was replaced */
                    obj_unref(&obj);
                    continue;
                }
                rc = store_txn_unindex(s, txn, hash, obj, 1);
                obj_unref(&obj);
                freed += store_rec_cost(s, rec_len);
            }
            if (rc == 0) {
                MDB_val hk = {CACHE_HASH_LEN, (void *)hash};
                rc = mdb_del(txn, s->dbi_objects, &hk, NULL);
                store_hashvec_push(&evicted, hash);
            }
        }
        if (c != NULL)
            mdb_cursor_close(c);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else if (txn != NULL)
            mdb_txn_abort(txn);
        if (rc != 0) {
            store_write_refused(s, rc); /* a delete needs fresh pages too: smaller rounds need fewer */
            if (chunk == 1)
                break;
            chunk = chunk > 8 ? chunk / 8 : 1;
            continue;
        }
        atomic_fetch_add_explicit(&s->st_commits, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->st_evictions, evicted.n, memory_order_relaxed);
        if (evicted.n > 0 && s->mem != NULL) {
            /* a reader that fetched one of these from disk must not promote it now */
            store_purge_epoch_bump(s);
            for (size_t i = 0; i < evicted.n; i++)
                mem_remove(s->mem, evicted.v[i]);
        }
        if (empty && evicted.n == 0)
            break;
    }
    store_hashvec_free(&evicted);
}

/*
 * LMDB reuses the pages a transaction freed only from the transaction after next
 * (the last committed snapshot stays intact). After evicting to make room for a
 * batch that failed with MDB_MAP_FULL, commit one tiny transaction so that the
 * retry can use the pages the eviction freed.
 */
void store_advance_txnid(store_t *s)
{
    MDB_txn *txn;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
        return;
    if (store_meta_put_u64(s, txn, MIG_META_WRITER_TICK, atomic_load(&s->st_commits)) != 0) {
        mdb_txn_abort(txn);
        return;
    }
    if (mdb_txn_commit(txn) == 0)
        atomic_fetch_add_explicit(&s->st_commits, 1, memory_order_relaxed);
}

uint64_t store_high_bytes(store_t *s)
{
    return (uint64_t)((double)store_budget(s) * s->high_water);
}

uint64_t store_low_bytes(store_t *s)
{
    return (uint64_t)((double)store_budget(s) * s->low_water);
}

/*
 * One step of the background reclaim of old-generation objects: look at up to
 * STORE_RECLAIM_SCAN_MAX records from where the last step stopped and delete up to
 * STORE_RECLAIM_DELETE_MAX of them in one transaction. At the end of the objects,
 * record the pass as done in meta.
 */
void store_reclaim_step(store_t *s)
{
    uint64_t gen = atomic_load_explicit(&s->generation, memory_order_acquire);
    store_hashvec_t old = {0};
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    size_t scanned = 0, bytes = 0;
    int at_end = 0, rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    uint8_t pos[CACHE_HASH_LEN];
    int has_pos = s->reclaim_has_pos;
    memcpy(pos, s->reclaim_pos, sizeof(pos));

    if (rc != 0)
        goto fail;
    if ((rc = mdb_cursor_open(txn, s->dbi_objects, &c)) != 0)
        goto fail;
    MDB_val k = {sizeof(pos), pos}, v;
    if (has_pos) {
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == sizeof(pos) && memcmp(k.mv_data, pos, sizeof(pos)) == 0)
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    }
    while (rc == 0 && scanned < STORE_RECLAIM_SCAN_MAX && old.n < s->reclaim_chunk && bytes < STORE_RECLAIM_SCAN_BYTES) {
        if (k.mv_size == CACHE_HASH_LEN) {
            memcpy(pos, k.mv_data, sizeof(pos));
            has_pos = 1;
            int err;
            cache_obj_t *obj = obj_decode(pos, v.mv_data, v.mv_size, &err);
            if (obj == NULL || obj->meta.generation < gen)
                store_hashvec_push(&old, pos);
            obj_unref(&obj);
        }
        scanned++;
        bytes += v.mv_size;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND) {
        at_end = 1;
        rc = 0;
    }
    mdb_cursor_close(c);
    c = NULL;
    if (rc != 0)
        goto fail;
    for (size_t i = 0; i < old.n; i++) {
        int found;
        if ((rc = store_txn_delete_object(s, txn, old.v[i], &found)) != 0)
            goto fail;
    }
    if (at_end && (rc = store_meta_put_u64(s, txn, MIG_META_RECLAIMED, s->reclaim_gen)) != 0)
        goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        goto fail;
    atomic_fetch_add_explicit(&s->st_commits, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->st_deletes, old.n, memory_order_relaxed);
    if (s->reclaim_chunk < STORE_RECLAIM_DELETE_MAX) /* room again: back to full steps */
        s->reclaim_chunk = s->reclaim_chunk * 2 < STORE_RECLAIM_DELETE_MAX ? s->reclaim_chunk * 2 : STORE_RECLAIM_DELETE_MAX;
    if (at_end) {
        s->reclaim_gen = 0;
    } else {
        memcpy(s->reclaim_pos, pos, sizeof(pos));
        s->reclaim_has_pos = has_pos;
    }
    store_hashvec_free(&old);
    store_measure(s, NULL);
    return;

fail:
    if (c != NULL)
        mdb_cursor_close(c);
    if (txn != NULL)
        mdb_txn_abort(txn);
    store_hashvec_free(&old);
    if (rc == MDB_MAP_FULL || store_write_refused(s, rc)) {
        /*
         * No room for the deletes' copies of pages: the very thing reclaim gives back. Go on
         * later with fewer deletes a step (each needs fewer fresh pages), and let eviction,
         * which frees the oldest objects, old generations first, make room meanwhile.
         */
        if (s->reclaim_chunk == STORE_RECLAIM_DELETE_MAX)
            fprintf(stderr, "edgecache: store: reclaim of old generations paused, no room: %s; retrying\n", mdb_strerror(rc));
        s->reclaim_chunk = s->reclaim_chunk > 8 ? s->reclaim_chunk / 8 : 1;
        s->reclaim_retry_ms = now_mono_ms() + STORE_SPACE_RETRY_MS;
        uint64_t used;
        if (store_measure(s, &used) == 0 && used > store_high_bytes(s))
            store_evict_to(s, store_low_bytes(s));
        return;
    }
    /* try again after the next purge-all or restart rather than spin */
    fprintf(stderr, "edgecache: store: reclaim of old generations stopped: %s\n", mdb_strerror(rc));
    s->reclaim_gen = 0;
}

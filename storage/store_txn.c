/*
 * storage/store_txn.c — records and their indexes inside one write transaction:
 * object put and delete, soft purge, URL and surrogate-key purges, and the meta
 * counters. Nothing here commits: the caller (the writer's batch, recovery, eviction,
 * reclaim) owns the transaction.
 *
 * Layout (created by migrations/0001_initial.c; names in migrations/mig_int.h):
 *   meta      "schema_version" u32 LE, "generation" u64 LE,
 *             "reclaimed_generation" u64 LE (no object older than it is left),
 *             "writer_tick" u64 LE (scratch; see store_advance_txnid),
 *             "journal_seq" u64 LE (the purge journal applied so far, v2),
 *             "journal_key" 16 bytes (the journal's checksum key, v3),
 *             "journal_keyed" u64 LE 1 (the journal is written under it)
 *             "bus_seq" u64 LE (the cluster bus's purges applied up to this stream
 *             sequence, v5)
 *   objects   16-byte hash -> record (storage/object.h encoding)
 *   skeys     index key of a surrogate key -> 16-byte hash (sorted duplicates, fixed
 *             size). The index key (obj_skey_index_key) is the key itself up to 511
 *             bytes, else NUL + BLAKE2b-256 of it: every key the API accepts (up to
 *             OBJ_SKEY_MAX_LEN) fits an LMDB key. A key purge names its index key from
 *             submission on (the op, the purge journal's record, the purge-log tag).
 *   variants  obj_key_hash(key) -> variant hash, for records with a non-empty vary
 *   evict     u64 BE time ms | 16-byte hash -> empty. The time is the record's
 *             response_time_ms (clamped at 0): the record alone tells where its
 *             eviction entry is, so replacing or deleting an object finds it.
 *   config, tokens, stats   opaque key -> value
 *
 * Invariant: every index entry of a record is written and removed in the same write
 * transaction as the record. An entry whose record is gone (after a corrupt record was
 * deleted) is harmless: readers check, writers clean it up.
 *
 * Threads: the writer thread (and store_open's recovery, before it starts); the
 * journal thread's early answers read the indexes through store_txn_collect_dups in a
 * read-only snapshot.
 */
#include "storage/store_int.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>
#include "common/skey.h"
#include "migrations/mig_int.h"
#include "storage/le.h"

/* Bytes a record of `len` bytes takes in the map: big records go to overflow pages. */
size_t store_rec_cost(const store_t *s, size_t len)
{
    if (len + 64 >= s->psize / 2)
        return (len + 16 + s->psize - 1) / s->psize * s->psize + 128;
    return len + 128;
}

void store_evict_key(uint8_t out[STORE_EVICT_KEY_LEN], int64_t time_ms, const uint8_t hash[CACHE_HASH_LEN])
{
    uint64_t t = time_ms > 0 ? (uint64_t)time_ms : 0;
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(t >> (56 - 8 * i));
    memcpy(out + 8, hash, CACHE_HASH_LEN);
}

int store_meta_get_u64(store_t *s, MDB_txn *txn, const char *name, uint64_t *out, int *present)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    *present = 0;
    int rc = mdb_get(txn, s->dbi_meta, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (v.mv_size != 8)
        return MDB_CORRUPTED;
    *out = le_get_u64(v.mv_data);
    *present = 1;
    return 0;
}

int store_meta_put_u64(store_t *s, MDB_txn *txn, const char *name, uint64_t val)
{
    uint8_t buf[8];
    le_put_u64(buf, val);
    MDB_val k = {strlen(name), (void *)name}, v = {sizeof(buf), buf};
    return mdb_put(txn, s->dbi_meta, &k, &v, 0);
}

/* Delete one exact (key, value) pair of a dupsort index; a missing pair is fine. */
static int store_index_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len, const uint8_t hash[CACHE_HASH_LEN])
{
    MDB_val k = {key_len, (void *)key}, v = {CACHE_HASH_LEN, (void *)hash};
    int rc = mdb_del(txn, dbi, &k, &v);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

typedef int (*store_skey_fn)(store_t *s, MDB_txn *txn, const char *ikey, size_t len, const uint8_t hash[CACHE_HASH_LEN]);

/*
 * Call fn with the index key of each surrogate key of skeys[0..len): the keys that count
 * (obj_skeys_next) to index a record, every token (all_tokens: skey_next without limits) to unindex one, so that the
 * entries an older version wrote by other rules go too (deleting one that is not there is
 * harmless).
 */
static int store_skeys_each(store_t *s, MDB_txn *txn, const char *skeys, size_t len, const uint8_t hash[CACHE_HASH_LEN],
                            int all_tokens, store_skey_fn fn)
{
    size_t pos = 0, tok_len;
    uint8_t ikey[OBJ_SKEY_INDEX_KEY_MAX];
    for (const char *tok; (tok = all_tokens ? skey_next(skeys, len, &pos, &tok_len, SIZE_MAX, SIZE_MAX)
                                            : obj_skeys_next(skeys, len, &pos, &tok_len)) != NULL;) {
        size_t ilen = obj_skey_index_key(tok, tok_len, ikey);
        int rc = fn(s, txn, (const char *)ikey, ilen, hash);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int store_skey_add(store_t *s, MDB_txn *txn, const char *tok, size_t len, const uint8_t hash[CACHE_HASH_LEN])
{
    MDB_val k = {len, (void *)tok}, v = {CACHE_HASH_LEN, (void *)hash};
    int rc = mdb_put(txn, s->dbi_skeys, &k, &v, MDB_NODUPDATA);
    return rc == MDB_KEYEXIST ? 0 : rc; /* the same key twice in one header */
}

static int store_skey_del(store_t *s, MDB_txn *txn, const char *tok, size_t len, const uint8_t hash[CACHE_HASH_LEN])
{
    return store_index_del(txn, s->dbi_skeys, tok, len, hash);
}

/* Remove the index entries of a decoded record stored under `hash`. */
int store_txn_unindex(store_t *s, MDB_txn *txn, const uint8_t hash[CACHE_HASH_LEN], const cache_obj_t *obj, int keep_evict)
{
    int rc = store_skeys_each(s, txn, obj->skeys, obj->skeys_len, hash, 1, store_skey_del);
    if (rc == 0 && obj->vary_len > 0) {
        uint8_t url[CACHE_HASH_LEN];
        obj_key_hash(obj->key, obj->key_len, url);
        rc = store_index_del(txn, s->dbi_variants, url, sizeof(url), hash);
    }
    if (rc == 0 && !keep_evict) {
        uint8_t ek[STORE_EVICT_KEY_LEN];
        store_evict_key(ek, obj->meta.response_time_ms, hash);
        MDB_val k = {sizeof(ek), ek};
        rc = mdb_del(txn, s->dbi_evict, &k, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    return rc;
}

/*
 * Load and decode the record under hash. *obj is a new reference or NULL; *present
 * says whether a record (valid or not) exists. A corrupt record gives present=1, obj=NULL.
 */
int store_txn_load(store_t *s, MDB_txn *txn, const uint8_t hash[CACHE_HASH_LEN], cache_obj_t **obj, int *present)
{
    MDB_val k = {CACHE_HASH_LEN, (void *)hash}, v;
    *obj = NULL;
    *present = 0;
    int rc = mdb_get(txn, s->dbi_objects, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    *present = 1;
    int err = 0;
    *obj = obj_decode(hash, v.mv_data, v.mv_size, &err);
    if (*obj == NULL)
        atomic_fetch_add_explicit(&s->st_corrupt, 1, memory_order_relaxed);
    return 0;
}

/* Delete the object under hash with its index entries; *found = 1 if there was one. */
int store_txn_delete_object(store_t *s, MDB_txn *txn, const uint8_t hash[CACHE_HASH_LEN], int *found)
{
    cache_obj_t *old;
    int present, rc = store_txn_load(s, txn, hash, &old, &present);
    *found = 0;
    if (rc != 0 || !present)
        return rc;
    if (old != NULL) {
        rc = store_txn_unindex(s, txn, hash, old, 0);
        obj_unref(&old);
        if (rc != 0)
            return rc;
    }
    MDB_val k = {CACHE_HASH_LEN, (void *)hash};
    rc = mdb_del(txn, s->dbi_objects, &k, NULL);
    if (rc == 0)
        *found = 1;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int store_txn_put(store_t *s, MDB_txn *txn, store_batch_t *b, store_op_t *op)
{
    cache_obj_t *obj = op->obj;
    int found, rc;
    if (obj->meta.generation < b->gen) {
        op->dropped = STORE_PUT_OLD_GENERATION;
        return 0;
    }
    if (obj->rec_len > store_budget(s) / 8) {
        op->dropped = STORE_PUT_TOO_LARGE;
        return 0;
    }
    if (op->has_since) {
        /* fetched before a purge that names it was applied (earlier in the queue): it is purged content */
        store_hashvec_t tags = {0};
        store_obj_tags(obj->key, obj->key_len, obj->skeys, obj->skeys_len, &tags);
        int purged = store_plog_purged(s, op->since_epoch, &tags);
        for (size_t i = 0; !purged && i < b->plog_tags.n; i++) /* not published yet: later than any epoch */
            purged = store_hashvec_has(&tags, b->plog_tags.v[i]);
        store_hashvec_free(&tags);
        if (purged) {
            op->dropped = STORE_PUT_PURGED;
            return 0;
        }
    }
    size_t cost = store_rec_cost(s, obj->rec_len);
    if (cost > b->put_room) { /* eviction could not make room (the map holds other data) */
        op->dropped = STORE_PUT_MAP_FULL;
        return 0;
    }
    b->put_room -= cost;
    if ((rc = store_txn_delete_object(s, txn, obj->hash, &found)) != 0)
        return rc;
    MDB_val k = {CACHE_HASH_LEN, obj->hash}, v = {obj->rec_len, obj->rec};
    if ((rc = mdb_put(txn, s->dbi_objects, &k, &v, 0)) != 0)
        return rc;
    if ((rc = store_skeys_each(s, txn, obj->skeys, obj->skeys_len, obj->hash, 0, store_skey_add)) != 0)
        return rc;
    if (obj->vary_len > 0) {
        uint8_t url[CACHE_HASH_LEN];
        obj_key_hash(obj->key, obj->key_len, url);
        MDB_val uk = {sizeof(url), url}, hv = {CACHE_HASH_LEN, obj->hash};
        rc = mdb_put(txn, s->dbi_variants, &uk, &hv, MDB_NODUPDATA);
        if (rc != 0 && rc != MDB_KEYEXIST)
            return rc;
    }
    uint8_t ek[STORE_EVICT_KEY_LEN];
    store_evict_key(ek, obj->meta.response_time_ms, obj->hash);
    MDB_val ekv = {sizeof(ek), ek}, empty = {0, (void *)""};
    if ((rc = mdb_put(txn, s->dbi_evict, &ekv, &empty, 0)) != 0)
        return rc;
    b->puts++;
    return 0;
}

/* Mark one object soft-purged: rewrite its record with OBJ_F_SOFT_PURGED (same times, same index entries). */
static int store_txn_soft_purge(store_t *s, MDB_txn *txn, const uint8_t hash[CACHE_HASH_LEN], int *found)
{
    cache_obj_t *old;
    int present, rc = store_txn_load(s, txn, hash, &old, &present);
    *found = 0;
    if (rc != 0 || !present)
        return rc;
    if (old == NULL) { /* corrupt: nothing to keep serving */
        MDB_val k = {CACHE_HASH_LEN, (void *)hash};
        rc = mdb_del(txn, s->dbi_objects, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    *found = 1;
    if ((old->meta.flags & OBJ_F_SOFT_PURGED) == 0) {
        obj_meta_t meta = old->meta;
        meta.flags |= OBJ_F_SOFT_PURGED;
        cache_obj_t *marked = obj_rebuild(old, &meta, old->headers, old->num_headers);
        MDB_val k = {CACHE_HASH_LEN, (void *)hash}, v = {marked->rec_len, marked->rec};
        rc = mdb_put(txn, s->dbi_objects, &k, &v, 0);
        obj_unref(&marked);
    }
    obj_unref(&old);
    return rc;
}

/* Purge one object (hard or soft); records it for the memory tier. */
static int store_txn_purge_one(store_t *s, MDB_txn *txn, store_batch_t *b, const uint8_t hash[CACHE_HASH_LEN], int soft,
                               int *found)
{
    int rc;
    if (soft) {
        rc = store_txn_soft_purge(s, txn, hash, found);
        if (rc == 0 && *found) {
            store_hashvec_push(&b->mem_soft, hash);
            b->soft_marked++;
        }
    } else {
        rc = store_txn_delete_object(s, txn, hash, found);
        if (rc == 0 && *found) {
            if (!b->applying_acked)
                store_hashvec_push(&b->mem_remove, hash);
            b->deletes++;
        }
    }
    return rc;
}

/* Collect the hashes stored under `key` in a dupsort index. */
int store_txn_collect_dups(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len, store_hashvec_t *out)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc != 0)
        return rc;
    MDB_val k = {key_len, (void *)key}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    while (rc == 0) {
        if (v.mv_size == CACHE_HASH_LEN)
            store_hashvec_push(out, v.mv_data);
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Purge every variant of the URL whose cache-key hash is `url`; *objects counts what went. */
int store_txn_purge_url_hash(store_t *s, MDB_txn *txn, store_batch_t *b, const uint8_t url[CACHE_HASH_LEN], int soft,
                             uint64_t *objects)
{
    store_hashvec_t targets = {0};
    if (!b->applying_acked)
        store_hashvec_push(&b->plog_tags, url);
    store_hashvec_push(&targets, url);
    int rc = store_txn_collect_dups(txn, s->dbi_variants, url, CACHE_HASH_LEN, &targets);
    for (size_t i = 0; rc == 0 && i < targets.n; i++) {
        int found;
        rc = store_txn_purge_one(s, txn, b, targets.v[i], soft, &found);
        if (rc == 0 && found)
            (*objects)++;
        if (rc == 0 && !found && i > 0) /* variant entry without its record */
            rc = store_index_del(txn, s->dbi_variants, url, CACHE_HASH_LEN, targets.v[i]);
    }
    /* the plain URL may sit in memory without a disk copy; never let it survive a purge */
    if (rc == 0 && !b->applying_acked)
        store_hashvec_push(soft ? &b->mem_soft : &b->mem_remove, url);
    store_hashvec_free(&targets);
    return rc;
}

/* Purge every object tagged with the surrogate key whose index key is skey[0..len) (an op's
 * key, or a journal record's payload); *objects counts what went. */
int store_txn_purge_skey_bytes(store_t *s, MDB_txn *txn, store_batch_t *b, const char *skey, size_t len, int soft,
                               uint64_t *objects)
{
    store_hashvec_t targets = {0};
    if (len == 0 || len > OBJ_SKEY_INDEX_KEY_MAX)
        return 0; /* no index key has that length: nothing was ever indexed under it */
    uint8_t tag[CACHE_HASH_LEN];
    store_skey_tag(skey, len, tag);
    if (!b->applying_acked)
        store_hashvec_push(&b->plog_tags, tag);
    int rc = store_txn_collect_dups(txn, s->dbi_skeys, skey, len, &targets);
    for (size_t i = 0; rc == 0 && i < targets.n; i++) {
        int found;
        rc = store_txn_purge_one(s, txn, b, targets.v[i], soft, &found);
        if (rc == 0 && found)
            (*objects)++;
        if (rc == 0 && !found)
            rc = store_index_del(txn, s->dbi_skeys, skey, len, targets.v[i]);
    }
    store_hashvec_free(&targets);
    return rc;
}

int store_txn_apply(store_t *s, MDB_txn *txn, store_batch_t *b, store_op_t *op, int with_puts)
{
    int rc = 0, found;
    switch (op->kind) {
    case STORE_OP_PUT:
        if (!with_puts) {
            op->dropped = STORE_PUT_MAP_FULL;
            return 0;
        }
        return store_txn_put(s, txn, b, op);
    case STORE_OP_DELETE:
        rc = store_txn_delete_object(s, txn, op->hash, &found);
        if (rc == 0) {
            store_hashvec_push(&b->mem_remove, op->hash);
            b->any_removal = 1;
            b->deletes += found;
        }
        return rc;
    case STORE_OP_DELETE_CORRUPT: {
        MDB_val k = {CACHE_HASH_LEN, op->hash}, v;
        rc = mdb_get(txn, s->dbi_objects, &k, &v);
        if (rc == MDB_NOTFOUND)
            return 0;
        if (rc == 0 && obj_record_validate(v.mv_data, v.mv_size) != 0) {
            rc = mdb_del(txn, s->dbi_objects, &k, NULL);
            b->deletes++;
        }
        return rc;
    }
    case STORE_OP_PURGE_URL:
    case STORE_OP_PURGE_SKEY:
        /* durable through its journal record (synced before this transaction began) */
        if (op->journal_failed)
            return 0;
        b->any_purge |= !op->acked; /* an answered one bumped the epoch then */
        if (op->journal_seq > b->journal_seq)
            b->journal_seq = op->journal_seq;
        b->applying_acked = op->acked;
        if (op->kind == STORE_OP_PURGE_URL)
            rc = store_txn_purge_url_hash(s, txn, b, op->hash, op->soft, &op->res.objects);
        else
            rc = store_txn_purge_skey_bytes(s, txn, b, op->key, op->key_len, op->soft, &op->res.objects);
        b->applying_acked = 0;
        return rc;
    case STORE_OP_PURGE_ALL:
        if (op->journal_failed)
            return 0;
        b->any_purge = 1;
        b->purge_all = 1;
        if (op->journal_seq > b->journal_seq)
            b->journal_seq = op->journal_seq;
        b->gen++;
        op->res.generation = b->gen;
        return store_meta_put_u64(s, txn, MIG_META_GENERATION, b->gen);
    case STORE_OP_KV: {
        MDB_val k = {op->key_len, op->key};
        b->need_sync = 1;
        if (op->val != NULL) {
            MDB_val v = {op->val_len, op->val};
            b->kv_cost += store_rec_cost(s, op->key_len + op->val_len);
            if (!store_kv_fits(s, b->kv_cost)) {
                op->rc = STORE_EIO;
                return 0;
            }
            return mdb_put(txn, op->dbi, &k, &v, 0);
        }
        rc = mdb_del(txn, op->dbi, &k, NULL);
        if (rc == MDB_NOTFOUND) {
            op->rc = STORE_ENOTFOUND;
            rc = 0;
        }
        return rc;
    }
    case STORE_OP_FLUSH: b->need_sync = 1; return 0;
    case STORE_OP_BUS_SEQ:
        /* in the transaction of the purges queued before it (or a later one): never ahead of them */
        if (op->journal_failed)
            return 0;
        if (op->journal_seq > b->journal_seq)
            b->journal_seq = op->journal_seq;
        b->bus_seq_set = 1;
        b->bus_seq = op->bus_seq;
        return store_meta_put_u64(s, txn, MIG_META_BUS_SEQ, op->bus_seq);
    }
    assert(!"unknown store op");
    return 0;
}

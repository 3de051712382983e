/*
 * storage/store_plog.c — the purge log ("purged since") and the pending set of purges
 * answered before their commit.
 *
 * The purge log: what each purge named (the URL's hash, or the tag of a surrogate
 * key: the hash of its index key, in a namespace apart from URL hashes), tagged with
 * the purge epoch its commit (or its early answer) produces. A fetch records the
 * epoch when it begins; store_purged_since and the writer (for a store_put_since)
 * ask whether a purge published after that named the object. The log is a ring of
 * PURGE_LOG_SIZE: when it no longer reaches back to an epoch, the answer is "purged"
 * (a miss is always safe). Publishing bumps the epoch and logs the tags as one step
 * under plog_lock.
 *
 * The pending set: the objects of purges answered before the transaction that
 * deletes them commits (store_batch_ack_early): store_get treats them as gone. The
 * journal thread adds to it when it answers; the writer takes each purge's objects
 * out once the transaction that applied it commits; both under pend_lock, and
 * readers skip the lock while pend_n is 0. pend_gen counts the removals: a read that
 * overlapped one retries, since its snapshot may predate the commit.
 *
 * Invariant: an object in the pending set is a miss; a purge's references in the set
 * are dropped only by the commit that applied it.
 *
 * Threads: both writing threads publish and hide queued puts; any thread asks
 * store_plog_purged and store_pend_has.
 */
#include "storage/store_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include "storage/le.h"

void store_purge_epoch_bump(store_t *s)
{
    atomic_fetch_add_explicit(&s->purge_epoch, 1, memory_order_release);
}

/* the tag of a surrogate key in the purge log: the hash of its index key (all of it: two
 * long keys sharing a prefix have different tags), in a namespace apart from URL hashes */
void store_skey_tag(const char *ikey, size_t len, uint8_t tag[CACHE_HASH_LEN])
{
    char buf[1 + OBJ_SKEY_INDEX_KEY_MAX];
    assert(len <= OBJ_SKEY_INDEX_KEY_MAX);
    buf[0] = '\x01';
    memcpy(buf + 1, ikey, len);
    obj_key_hash(buf, len + 1, tag);
}

/*
 * What names an object (cache key key, surrogate keys skeys) in the purge log: its
 * URL's hash, then the tag of each surrogate key (the two are apart: see
 * store_skey_tag). Replaces out's contents.
 */
void store_obj_tags(const char *key, size_t key_len, const char *skeys, size_t skeys_len, store_hashvec_t *out)
{
    uint8_t tag[CACHE_HASH_LEN];
    size_t pos = 0, len;
    out->n = 0;
    obj_key_hash(key, key_len, tag);
    store_hashvec_push(out, tag);
    uint8_t ikey[OBJ_SKEY_INDEX_KEY_MAX];
    for (const char *tok; (tok = obj_skeys_next(skeys, skeys_len, &pos, &len)) != NULL;) {
        size_t ilen = obj_skey_index_key(tok, len, ikey);
        store_skey_tag((const char *)ikey, ilen, tag);
        store_hashvec_push(out, tag);
    }
}

/*
 * Publish purges: bump the purge epoch and log what they named under the new epoch, as
 * one step (both writing threads publish). A fetch that began at an earlier epoch then
 * sees them (store_purged_since).
 */
uint64_t store_plog_publish(store_t *s, const store_hashvec_t *tags)
{
    pthread_mutex_lock(&s->plog_lock);
    uint64_t epoch = atomic_fetch_add_explicit(&s->purge_epoch, 1, memory_order_acq_rel) + 1;
    for (size_t i = 0; i < tags->n; i++) {
        purge_log_entry_t *e = &s->plog[s->plog_count++ % PURGE_LOG_SIZE];
        e->epoch = epoch;
        memcpy(e->tag, tags->v[i], CACHE_HASH_LEN);
    }
    pthread_mutex_unlock(&s->plog_lock);
    return epoch;
}

int store_tag_cmp(const void *a, const void *b)
{
    return memcmp(a, b, CACHE_HASH_LEN);
}

/* push the puts among ops whose fetch began before epoch, with a reference each */
static void store_puts_before(const store_op_t *ops, uint64_t epoch, cache_obj_t ***v, size_t *n, size_t *cap)
{
    for (const store_op_t *op = ops; op != NULL; op = op->next) {
        if (op->kind != STORE_OP_PUT || !op->has_since || op->since_epoch >= epoch)
            continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *v = alloc_xrealloc(*v, *cap * sizeof(**v), "store");
        }
        (*v)[(*n)++] = obj_ref(op->obj);
    }
}

/*
 * Take out of the memory tier every queued put (in the queue, with the journal thread,
 * or waiting for the writer) that `tags` name, purges just published under `epoch`,
 * and whose fetch began before it: a fetch that finished after the purge arrived, and
 * queued its put behind it, before the purge was published (so its own
 * store_purged_since checks found nothing). The writer drops such puts
 * (store_txn_put), but only after the purge is answered. A put queued after this looks
 * is seen by its fetch's second check. The queues are copied under the lock and
 * matched outside it. With head_only (for the journal thread's early answers, whose
 * in-flight list covers the other two), the queue alone.
 */
void store_hide_queued_puts(store_t *s, const store_hashvec_t *tags, uint64_t epoch, int head_only)
{
    if (s->mem == NULL || tags->n == 0)
        return;
    cache_obj_t **v = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&s->lock);
    store_puts_before(s->head, epoch, &v, &n, &cap);
    if (!head_only) {
        store_puts_before(s->transit, epoch, &v, &n, &cap);
        store_puts_before(s->ahead, epoch, &v, &n, &cap); /* up to STORE_APPLY_GROUP ops: not on every answer */
    }
    pthread_mutex_unlock(&s->lock);
    if (n == 0)
        return;
    uint8_t(*sorted)[CACHE_HASH_LEN] = alloc_xmemdup(tags->v, tags->n * CACHE_HASH_LEN, 0, "store");
    qsort(sorted, tags->n, CACHE_HASH_LEN, store_tag_cmp);
    store_hashvec_t obj_tags = {0};
    for (size_t i = 0; i < n; i++) {
        store_obj_tags(v[i]->key, v[i]->key_len, v[i]->skeys, v[i]->skeys_len, &obj_tags);
        for (size_t t = 0; t < obj_tags.n; t++) {
            if (bsearch(obj_tags.v[t], sorted, tags->n, CACHE_HASH_LEN, store_tag_cmp) != NULL) {
                mem_remove_if_same(s->mem, v[i]->hash, v[i]);
                break;
            }
        }
        obj_unref(&v[i]);
    }
    store_hashvec_free(&obj_tags);
    free(sorted);
    free(v);
}

/* 1 when a purge published after epoch `since` named one of an object's tags (store_obj_tags) */
int store_plog_purged(store_t *s, uint64_t since, const store_hashvec_t *obj_tags)
{
    int purged = 0;
    pthread_mutex_lock(&s->plog_lock);
    uint64_t n = s->plog_count < PURGE_LOG_SIZE ? s->plog_count : PURGE_LOG_SIZE;
    if (s->plog_count > PURGE_LOG_SIZE && s->plog[s->plog_count % PURGE_LOG_SIZE].epoch > since) {
        purged = 1; /* the log no longer reaches back to since: assume the worst */
    } else {
        for (uint64_t k = 0; k != n && !purged; ++k) {
            const purge_log_entry_t *e = &s->plog[(s->plog_count - 1 - k) % PURGE_LOG_SIZE];
            purged = e->epoch > since && store_hashvec_has(obj_tags, e->tag);
        }
    }
    pthread_mutex_unlock(&s->plog_lock);
    return purged;
}

static size_t store_pend_home(const store_t *s, const uint8_t hash[CACHE_HASH_LEN])
{
    return (size_t)le_get_u64(hash) & (s->pend_cap - 1); /* hashes are uniform already */
}

/* 1 and its slot if hash is in the set; else 0 and the free slot where it would go */
static int store_pend_find_locked(const store_t *s, const uint8_t hash[CACHE_HASH_LEN], size_t *slot)
{
    size_t mask = s->pend_cap - 1;
    for (size_t i = store_pend_home(s, hash);; i = (i + 1) & mask) {
        if (s->pend[i].refs == 0) {
            *slot = i;
            return 0;
        }
        if (memcmp(s->pend[i].hash, hash, CACHE_HASH_LEN) == 0) {
            *slot = i;
            return 1;
        }
    }
}

/* Take a reference on hash (under pend_lock); 1 if it was not pending yet. */
int store_pend_add_locked(store_t *s, const uint8_t hash[CACHE_HASH_LEN])
{
    size_t n = atomic_load_explicit(&s->pend_n, memory_order_relaxed), slot;
    if ((n + 1) * 2 > s->pend_cap) { /* keep it at most half full */
        size_t old_cap = s->pend_cap, cap = old_cap < 256 ? 256 : old_cap * 2;
        store_pend_ent_t *old = s->pend;
        s->pend = alloc_xcalloc(cap, sizeof(*s->pend), "store");
        s->pend_cap = cap;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].refs != 0 && !store_pend_find_locked(s, old[i].hash, &slot))
                s->pend[slot] = old[i];
        free(old);
    }
    if (store_pend_find_locked(s, hash, &slot)) {
        s->pend[slot].refs++;
        return 0;
    }
    memcpy(s->pend[slot].hash, hash, CACHE_HASH_LEN);
    s->pend[slot].refs = 1;
    atomic_store_explicit(&s->pend_n, n + 1, memory_order_release);
    return 1;
}

/* Drop a reference on hash (under pend_lock); the last one frees its slot. */
static void store_pend_release_locked(store_t *s, const uint8_t hash[CACHE_HASH_LEN])
{
    size_t i, mask = s->pend_cap - 1;
    if (s->pend_cap == 0 || !store_pend_find_locked(s, hash, &i) || --s->pend[i].refs > 0)
        return;
    /* backward-shift deletion: move up each later entry of the run that may fill the hole */
    for (size_t j = (i + 1) & mask; s->pend[j].refs != 0; j = (j + 1) & mask) {
        size_t home = store_pend_home(s, s->pend[j].hash);
        /* j stays if its home lies cyclically in (i, j] */
        if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
            continue;
        s->pend[i] = s->pend[j];
        s->pend[j].refs = 0;
        i = j;
    }
    s->pend[i].refs = 0;
    atomic_fetch_sub_explicit(&s->pend_n, 1, memory_order_release);
}

int store_pend_has(store_t *s, const uint8_t hash[CACHE_HASH_LEN])
{
    if (atomic_load_explicit(&s->pend_n, memory_order_acquire) == 0)
        return 0;
    size_t slot;
    pthread_mutex_lock(&s->pend_lock);
    int has = s->pend_cap > 0 && store_pend_find_locked(s, hash, &slot);
    pthread_mutex_unlock(&s->pend_lock);
    return has;
}

/* After the commit that applied them: the answered purges among ops are pending no more. */
void store_pend_release(store_t *s, store_op_t *ops)
{
    int any = 0;
    for (store_op_t *op = ops; op != NULL && !any; op = op->next)
        any = op->pended.n > 0;
    if (!any)
        return;
    atomic_fetch_add_explicit(&s->pend_gen, 1, memory_order_acq_rel); /* before: see store_get */
    pthread_mutex_lock(&s->pend_lock);
    for (store_op_t *op = ops; op != NULL; op = op->next) {
        for (size_t i = 0; i < op->pended.n; i++)
            store_pend_release_locked(s, op->pended.v[i]);
        store_hashvec_free(&op->pended);
    }
    if (atomic_load_explicit(&s->pend_n, memory_order_relaxed) == 0 && s->pend_cap > 4096) {
        free(s->pend); /* a big key purge grew it: give the memory back */
        s->pend = NULL;
        s->pend_cap = 0;
    }
    pthread_mutex_unlock(&s->pend_lock);
}

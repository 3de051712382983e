/*
 * storage/store_memonly.c — the memory-only set: objects only the memory tier holds,
 * because the disk had no room for them.
 *
 * Objects whose put the disk could not take (no room) stay in the memory tier, and are
 * listed here with what names them (store_obj_tags): a purge finds objects through the
 * disk's indexes, so both writing threads also match the purges they apply or answer
 * against this list and take what matches out of the memory tier. A ring of
 * STORE_MEMONLY_MAX; the oldest entry that falls off leaves the memory tier too.
 *
 * Invariant: an object is listed before applied_order passes its put, so an early
 * answer (which looks at the puts in flight first, then at this list) never misses it;
 * memonly_count equals the live entries and lets purges skip the lock when it is 0.
 *
 * Threads: the writer adds (store_memonly_add); the writer and the journal thread
 * purge (store_memonly_purge); all under memonly_lock. store_close frees it.
 */
#include "storage/store_int.h"

#include <stdlib.h>
#include <string.h>

#define STORE_MEMONLY_MAX 16384

typedef struct store_memonly {
    uint8_t hash[CACHE_HASH_LEN];
    store_hashvec_t tags; /* store_obj_tags; n == 0: taken out already */
} store_memonly_t;

/*
 * The writer dropped obj's put for want of room: keep it in the memory tier and list it.
 * Called before applied_order passes the put, so that an early answer (which looks at
 * the puts in flight first, then at this list) never misses it.
 */
void store_memonly_add(store_t *s, const cache_obj_t *obj)
{
    store_hashvec_t tags = {0};
    uint8_t fell_off[CACHE_HASH_LEN];
    int falls = 0;
    store_obj_tags(obj->key, obj->key_len, obj->skeys, obj->skeys_len, &tags);
    pthread_mutex_lock(&s->memonly_lock);
    if (s->memonly == NULL)
        s->memonly = alloc_xcalloc(STORE_MEMONLY_MAX, sizeof(*s->memonly), "store");
    if (s->memonly_n == STORE_MEMONLY_MAX) {
        store_memonly_t *old = &s->memonly[s->memonly_head];
        if (old->tags.n > 0) {
            memcpy(fell_off, old->hash, CACHE_HASH_LEN);
            falls = 1;
            atomic_fetch_sub_explicit(&s->memonly_count, 1, memory_order_relaxed);
        }
        store_hashvec_free(&old->tags);
        s->memonly_head = (s->memonly_head + 1) % STORE_MEMONLY_MAX;
        s->memonly_n--;
    }
    store_memonly_t *e = &s->memonly[(s->memonly_head + s->memonly_n) % STORE_MEMONLY_MAX];
    memcpy(e->hash, obj->hash, CACHE_HASH_LEN);
    e->tags = tags;
    s->memonly_n++;
    atomic_fetch_add_explicit(&s->memonly_count, 1, memory_order_release);
    pthread_mutex_unlock(&s->memonly_lock);
    if (falls) /* no purge could find it any more */
        mem_remove(s->mem, fell_off);
}

/*
 * Take out of the memory tier the listed objects that purges naming `tags` (URL hashes,
 * store_skey_tag) cover; all of them with `all` (purge-all). Either writing thread, before
 * it answers those purges. Taking out more than a purge named is harmless: a miss.
 */
void store_memonly_purge(store_t *s, const store_hashvec_t *tags, int all)
{
    if (s->mem == NULL || (tags->n == 0 && !all) || atomic_load_explicit(&s->memonly_count, memory_order_acquire) == 0)
        return;
    uint8_t(*sorted)[CACHE_HASH_LEN] = NULL;
    if (!all) {
        sorted = alloc_xmemdup(tags->v, tags->n * CACHE_HASH_LEN, 0, "store");
        qsort(sorted, tags->n, CACHE_HASH_LEN, store_tag_cmp);
    }
    store_hashvec_t gone = {0};
    pthread_mutex_lock(&s->memonly_lock);
    for (size_t i = 0; i < s->memonly_n; i++) {
        store_memonly_t *e = &s->memonly[(s->memonly_head + i) % STORE_MEMONLY_MAX];
        int named = all && e->tags.n > 0;
        for (size_t t = 0; !named && t < e->tags.n; t++)
            named = bsearch(e->tags.v[t], sorted, tags->n, CACHE_HASH_LEN, store_tag_cmp) != NULL;
        if (named) {
            store_hashvec_push(&gone, e->hash);
            store_hashvec_free(&e->tags);
            atomic_fetch_sub_explicit(&s->memonly_count, 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&s->memonly_lock);
    for (size_t i = 0; i < gone.n; i++)
        mem_remove(s->mem, gone.v[i]);
    store_hashvec_free(&gone);
    free(sorted);
}

void store_memonly_free(store_t *s)
{
    for (size_t i = 0; s->memonly != NULL && i < s->memonly_n; i++)
        store_hashvec_free(&s->memonly[(s->memonly_head + i) % STORE_MEMONLY_MAX].tags);
    free(s->memonly);
    s->memonly = NULL;
    s->memonly_n = 0;
}

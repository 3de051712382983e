/*
 * storage/store_rtxn.c — per-thread read transactions of the store.
 *
 * One process-wide pthread key holds the calling thread's list of slots, one per
 * store it has read from. A slot is owned by its thread (only that thread links,
 * unlinks or frees it); every slot is also on a global list so that store_close
 * can abort the transactions of a closing store (then marks the slot orphaned)
 * and so that leak checkers see the slots of threads that never exit. The
 * destructor aborts the thread's live transactions at thread exit.
 *
 * Invariant: a slot's transaction is reset between reads (MDB_NOTLS, so it is not
 * tied to its thread by LMDB; the slot ties it): store_rtxn_begin renews it, the
 * caller resets it. store_slots_lock guards the global list and slot->store.
 *
 * Threads: any thread reading (store_get, the journal thread's early answers);
 * store_slots_orphan from store_close.
 */
#include "storage/store_int.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct store_rtxn_slot {
    uint64_t serial; /* store serial, immutable */
    store_t *store;  /* NULL once that store closed (guarded by store_slots_lock) */
    MDB_txn *txn;    /* reset between reads; NULL until first use */
    struct store_rtxn_slot *thread_next;
    struct store_rtxn_slot *all_prev, *all_next;
} store_rtxn_slot_t;

static pthread_once_t store_slots_once = PTHREAD_ONCE_INIT;
static pthread_key_t store_slots_key;
static pthread_mutex_t store_slots_lock = PTHREAD_MUTEX_INITIALIZER;
static store_rtxn_slot_t *store_slots_all;

static void store_slot_unlink_all(store_rtxn_slot_t *slot)
{
    if (slot->all_prev != NULL)
        slot->all_prev->all_next = slot->all_next;
    else
        store_slots_all = slot->all_next;
    if (slot->all_next != NULL)
        slot->all_next->all_prev = slot->all_prev;
}

static void store_slots_destroy(void *head)
{
    pthread_mutex_lock(&store_slots_lock);
    for (store_rtxn_slot_t *slot = head, *next; slot != NULL; slot = next) {
        next = slot->thread_next;
        if (slot->store != NULL && slot->txn != NULL)
            mdb_txn_abort(slot->txn);
        store_slot_unlink_all(slot);
        free(slot);
    }
    pthread_mutex_unlock(&store_slots_lock);
}

static void store_slots_init(void)
{
    if (pthread_key_create(&store_slots_key, store_slots_destroy) != 0) {
        fprintf(stderr, "edgecache: pthread_key_create failed\n");
        abort();
    }
}

static store_rtxn_slot_t *store_slot_get(store_t *s)
{
    pthread_once(&store_slots_once, store_slots_init);
    store_rtxn_slot_t *head = pthread_getspecific(store_slots_key);
    for (store_rtxn_slot_t *slot = head; slot != NULL; slot = slot->thread_next)
        if (slot->serial == s->serial)
            return slot;

    /* first read of this store by this thread: drop slots of closed stores, add one */
    pthread_mutex_lock(&store_slots_lock);
    store_rtxn_slot_t **pp = &head;
    while (*pp != NULL) {
        store_rtxn_slot_t *slot = *pp;
        if (slot->store == NULL) {
            *pp = slot->thread_next;
            store_slot_unlink_all(slot);
            free(slot);
        } else {
            pp = &slot->thread_next;
        }
    }
    store_rtxn_slot_t *slot = alloc_xcalloc(1, sizeof(*slot), "store");
    slot->serial = s->serial;
    slot->store = s;
    slot->thread_next = head;
    slot->all_next = store_slots_all;
    if (store_slots_all != NULL)
        store_slots_all->all_prev = slot;
    store_slots_all = slot;
    pthread_mutex_unlock(&store_slots_lock);
    pthread_setspecific(store_slots_key, slot);
    return slot;
}

/* store_close: abort every thread's transaction on this store; the slots stay with their threads. */
void store_slots_orphan(store_t *s)
{
    pthread_mutex_lock(&store_slots_lock);
    for (store_rtxn_slot_t *slot = store_slots_all; slot != NULL; slot = slot->all_next) {
        if (slot->store == s && slot->serial == s->serial) {
            if (slot->txn != NULL)
                mdb_txn_abort(slot->txn);
            slot->txn = NULL;
            slot->store = NULL;
        }
    }
    pthread_mutex_unlock(&store_slots_lock);
}

/* This thread's read-only transaction on s, renewed: a fresh snapshot. NULL on error. */
MDB_txn *store_rtxn_begin(store_t *s)
{
    store_rtxn_slot_t *slot = store_slot_get(s);
    int rc;
    store_map_note_read(s);
    if (slot->txn == NULL) {
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &slot->txn);
        if (rc != 0)
            slot->txn = NULL;
    } else if ((rc = mdb_txn_renew(slot->txn)) != 0) {
        mdb_txn_abort(slot->txn);
        slot->txn = NULL;
    }
    return slot->txn;
}

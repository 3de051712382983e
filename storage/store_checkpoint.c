/*
 * storage/store_checkpoint.c — the purge journal's way into the main store: the
 * checkpointer thread, and recovery (replay) at open.
 *
 * A purge is durable once its journal record is synced (store_journal_thread.c); the
 * main environment is not synced for it. The checkpointer syncs the main environment
 * in the background (every checkpoint_ms when anything was committed, sooner when the
 * journal thread asks because a quarter of the ring is unsynced); durable_seq then
 * says which journal records the ring may overwrite. At open, before the writer
 * starts, store_journal_recover applies again the journaled purges above meta's
 * journal_seq (the main store lost unsynced writes in a crash), syncs, and empties
 * the journal; store_journal_rekey moves a store migrated to schema 3 onto its own
 * journal key.
 *
 * Invariants: durable_seq only grows (store_atomic_max) and never passes
 * committed_seq as read before the sync that made it durable; meta's journal_seq
 * never passes a purge answered but not applied.
 *
 * Threads: the checkpointer thread; store_sync_main also from the writer, the journal
 * thread and store_close; recovery and the journal key from store_open.
 */
#include "storage/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include "migrations/mig_int.h"
#include "storage/le.h"

#define STORE_JOURNAL_MAX_BYTES ((size_t)32 << 20) /* the largest new purge journal */
#define STORE_CHECKPOINT_SLICE ((off_t)256 << 10)  /* bytes of the file written back at a time */

/* raise *a to at least v (two threads advance durable_seq) */
void store_atomic_max(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(a, memory_order_acquire);
    while (cur < v && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_acq_rel, memory_order_acquire))
        ;
}

/* Sync the main environment now: every purge committed so far becomes durable there. */
int store_sync_main(store_t *s)
{
    uint64_t seq = atomic_load_explicit(&s->committed_seq, memory_order_acquire);
    int rc = mdb_env_sync(s->env, 1);
    atomic_fetch_add_explicit(&s->st_syncs, 1, memory_order_relaxed);
    if (rc == 0)
        store_atomic_max(&s->durable_seq, seq);
    return rc;
}

/*
 * The size of a new purge journal: a sixteenth of the map, from JOURNAL_MIN_SIZE to
 * STORE_JOURNAL_MAX_BYTES (an older journal keeps its size). A purge storm writes about
 * 1.3 MB of segments a second; the 32 MiB a store of 512 MiB or more gets is ~25 s of them,
 * room for checkpoints that a slow disk stretches to several seconds before the writer
 * must sync the main store itself (an 8 MiB ring ran out in such runs, and the purges
 * waiting on that sync saw 60-370 ms).
 */
size_t store_journal_size(size_t map_size)
{
    size_t size = map_size / 16 / JOURNAL_SECTOR * JOURNAL_SECTOR;
    return size < JOURNAL_MIN_SIZE ? JOURNAL_MIN_SIZE : size > STORE_JOURNAL_MAX_BYTES ? STORE_JOURNAL_MAX_BYTES : size;
}

/*
 * Write the main environment's dirty pages out a slice at a time before the sync that
 * makes them durable. A device queue holds writes in order: a purge's journal commit
 * that arrives behind a whole second's worth of random page writes waits for all of
 * them (tens of ms). Slices of STORE_CHECKPOINT_SLICE bytes, each waited for, keep at
 * most that much ahead of it; the sync that follows then finds little left to write.
 */
static void store_checkpoint_writeback(store_t *s)
{
    int fd;
    MDB_envinfo info;
    if (mdb_env_get_fd(s->env, &fd) != 0 || mdb_env_info(s->env, &info) != 0)
        return;
    off_t end = (off_t)(info.me_last_pgno + 1) * (off_t)s->psize;
    for (off_t off = 0; off < end && !s->checkpointer_stopping; off += STORE_CHECKPOINT_SLICE) {
        if (sync_file_range(fd, off, STORE_CHECKPOINT_SLICE,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0)
            return; /* not supported here: the sync does it all */
    }
}

/*
 * The checkpointer thread: every checkpoint_ms (sooner when the writer asks), if
 * anything was committed since its last sync, sync the main environment (an fdatasync
 * that runs while the writer goes on committing). Purges acknowledged through the
 * journal then become durable in the main store too, and their journal records can be
 * trimmed; puts stop being at the mercy of the kernel's writeback.
 */
void *store_checkpoint_main(void *arg)
{
    store_t *s = arg;
    uint64_t synced_commits = atomic_load(&s->st_commits);
    int failing = 0;
    pthread_setname_np(pthread_self(), "ec-checkpoint"); /* shown by top -H, ps -L, perf */
    pthread_mutex_lock(&s->lock);
    while (!s->checkpointer_stopping) {
        struct timespec ts;
        store_deadline(&ts, s->checkpoint_ms);
        while (!s->checkpointer_stopping && !atomic_load(&s->checkpoint_asked) &&
               pthread_cond_timedwait(&s->checkpoint_wake, &s->lock, &ts) != ETIMEDOUT)
            ;
        if (s->checkpointer_stopping)
            break;
        atomic_store(&s->checkpoint_asked, 0);
        atomic_store(&s->checkpoint_from, atomic_load(&s->journal_sectors));
        /* read the seq before the sync: what was committed by then is what it makes durable */
        uint64_t seq = atomic_load_explicit(&s->committed_seq, memory_order_acquire);
        uint64_t commits = atomic_load_explicit(&s->st_commits, memory_order_acquire);
        if (commits == synced_commits && seq <= atomic_load(&s->durable_seq))
            continue;
        pthread_mutex_unlock(&s->lock);
        store_checkpoint_writeback(s);
        int rc = mdb_env_sync(s->env, 1);
        pthread_mutex_lock(&s->lock);
        if (rc == 0) {
            synced_commits = commits;
            store_atomic_max(&s->durable_seq, seq);
            atomic_fetch_add_explicit(&s->st_checkpoints, 1, memory_order_relaxed);
            failing = 0;
        } else if (!failing) {
            failing = 1; /* said once until it works again; the journal keeps every purge meanwhile */
            fprintf(stderr, "edgecache: store: checkpoint sync failed: %s\n", mdb_strerror(rc));
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

typedef struct store_replay {
    store_t *s;
    MDB_txn *txn;
    store_batch_t b;
    uint64_t records, objects;
} store_replay_t;

static int store_replay_one(void *arg, const journal_rec_t *rec)
{
    store_replay_t *r = arg;
    int soft = (rec->flags & JOURNAL_F_SOFT) != 0;
    r->records++;
    switch (rec->kind) {
    case JOURNAL_URL: return store_txn_purge_url_hash(r->s, r->txn, &r->b, rec->payload, soft, &r->objects);
    case JOURNAL_SKEY:
        return store_txn_purge_skey_bytes(r->s, r->txn, &r->b, rec->payload, rec->payload_len, soft, &r->objects);
    case JOURNAL_ALL:
        r->b.gen++;
        r->b.purge_all = 1;
        return store_meta_put_u64(r->s, r->txn, MIG_META_GENERATION, r->b.gen);
    case JOURNAL_BUS_SEQ: return store_meta_put_u64(r->s, r->txn, MIG_META_BUS_SEQ, le_get_u64(rec->payload));
    }
    return MDB_CORRUPTED; /* journal_foreach validated the kind */
}

/*
 * At open, before the writer starts: apply again the journaled purges the main store
 * does not hold (it lost unsynced writes in a crash of the machine), sync, and empty
 * the journal. Reads only the records above meta's journal_seq: normally none.
 */
int store_journal_recover(store_t *s, char *errbuf, size_t errlen)
{
    MDB_txn *txn;
    uint64_t applied = 0;
    int present, rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc == 0)
        rc = store_meta_get_u64(s, txn, MIG_META_JOURNAL_SEQ, &applied, &present);
    if (rc != 0) {
        if (txn != NULL)
            mdb_txn_abort(txn);
        errbuf_printf(errbuf, errlen, "store: cannot read the purge journal position: %s", mdb_strerror(rc));
        return STORE_EIO;
    }
    uint64_t last = journal_last_seq(s->journal);
    if (last > applied) {
        store_replay_t r = {.s = s, .txn = txn};
        r.b.gen = atomic_load(&s->generation);
        rc = journal_foreach(s->journal, applied, store_replay_one, &r);
        if (rc == 0)
            rc = store_meta_put_u64(s, txn, MIG_META_JOURNAL_SEQ, last);
        if (rc == 0) {
            rc = mdb_txn_commit(txn);
            txn = NULL;
        }
        if (rc == 0)
            rc = mdb_env_sync(s->env, 1);
        if (txn != NULL)
            mdb_txn_abort(txn);
        if (rc != 0) {
            errbuf_printf(errbuf, errlen, "store: cannot apply the purge journal's %llu unapplied purge(s): %s",
                          (unsigned long long)(last - applied), rc < 0 ? "a journal record is invalid" : mdb_strerror(rc));
            store_hashvec_free(&r.b.mem_remove);
            store_hashvec_free(&r.b.mem_soft);
            store_hashvec_free(&r.b.plog_tags);
            return STORE_EIO;
        }
        if (r.b.purge_all) {
            atomic_store(&s->generation, r.b.gen);
            s->reclaim_gen = r.b.gen;
            s->reclaim_has_pos = 0;
        }
        for (size_t i = 0; s->mem != NULL && i < r.b.mem_remove.n; i++)
            mem_remove(s->mem, r.b.mem_remove.v[i]);
        for (size_t i = 0; s->mem != NULL && i < r.b.mem_soft.n; i++)
            mem_remove(s->mem, r.b.mem_soft.v[i]); /* reread from disk, where it is marked */
        store_hashvec_free(&r.b.mem_remove);
        store_hashvec_free(&r.b.mem_soft);
        store_hashvec_free(&r.b.plog_tags);
        s->plog_count = 0; /* they precede every fetch of this process: none must be dropped for them */
        fprintf(stderr,
                "edgecache: store: applied %llu purge(s) again from the purge journal (%llu object(s)): "
                "the store had not kept them (a crash, or a write that failed)\n",
                (unsigned long long)r.records, (unsigned long long)r.objects);
    } else {
        mdb_txn_abort(txn);
    }
    /* every record in the ring is now in the synced main store: all of it may be overwritten */
    uint64_t top = last > applied ? last : applied;
    s->journal_next = top + 1;
    atomic_store(&s->committed_seq, top);
    atomic_store(&s->durable_seq, top);
    return 0;
}

/* The journal's checksum key (meta, from schema version 3) and whether the journal is written under it yet. */
int store_journal_key(store_t *s, uint8_t key[JOURNAL_KEY_BYTES], int *keyed)
{
    MDB_txn *txn;
    uint64_t flag = 0;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    MDB_val k = {sizeof(MIG_META_JOURNAL_KEY) - 1, (void *)MIG_META_JOURNAL_KEY}, v;
    rc = mdb_get(txn, s->dbi_meta, &k, &v);
    _Static_assert(MIG_JOURNAL_KEY_BYTES == JOURNAL_KEY_BYTES, "meta journal_key is the journal's key");
    if (rc == 0 && v.mv_size != JOURNAL_KEY_BYTES)
        rc = MDB_CORRUPTED;
    if (rc == 0)
        memcpy(key, v.mv_data, JOURNAL_KEY_BYTES);
    if (rc == 0)
        rc = store_meta_get_u64(s, txn, MIG_META_JOURNAL_KEYED, &flag, keyed);
    *keyed = rc == 0 && *keyed && flag == 1;
    mdb_txn_abort(txn);
    return rc;
}

/*
 * A store migrated to version 3 still has a journal written under the old public key:
 * once store_journal_recover has applied it, record that the journal is keyed and sync
 * (what the old segments protect is then all in the synced main store), and only then
 * write under the store's key. A crash in between finds either the old journal, not yet
 * marked, or the mark with everything the old one held already synced.
 */
int store_journal_rekey(store_t *s, const uint8_t key[JOURNAL_KEY_BYTES])
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    if ((rc = store_meta_put_u64(s, txn, MIG_META_JOURNAL_KEYED, 1)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn)) != 0 || (rc = mdb_env_sync(s->env, 1)) != 0)
        return rc;
    journal_rekey(s->journal, key);
    return 0;
}

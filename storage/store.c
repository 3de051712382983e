/*
 * storage/store.c — the LMDB store's public API (storage/store.h) and its lifecycle:
 * open and close, reads, the write entry points, stats, and the config/tokens/stats
 * key-value records. The rest of the store lives beside it, sharing storage/store_int.h:
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
 * the checkpointer; store_close drains and joins them. A store opened read-only has
 * none of them; store_kv_put_sync then writes directly.
 */
#include "storage/store_int.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "migrations/mig.h"
#include "migrations/mig_int.h"
#include "storage/store_check.h"

#define STORE_DEFAULT_MAP_SIZE ((size_t)1 << 30)
/*
 * The checkpointer syncs the main environment this often when anything was committed,
 * or sooner once the purges it has not synced fill a quarter of the journal ring. Each
 * sync writes every page dirtied since the last one, and LMDB's copy-on-write dirties
 * new pages each second under a purge storm: at 1 s, a storm of single-object purges
 * on 100,000 objects wrote 35-40 MB/s; at 5 s, 18-25 MB/s. Those writes share the
 * disk (and its cache flushes) with the journal writes every purge waits for.
 */
#define STORE_CHECKPOINT_MS 5000

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

/* ---- open / close ---- */

/* unique per open: keys the per-thread read transactions (store_rtxn.c) */
static _Atomic uint64_t store_next_serial = 1;

static int store_mkdir_p(const char *dir)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--; /* "data/" names "data": the last component is the one made private */
    char *path = alloc_xmemdup(dir, len, 1, "store");
    int rc = 0;
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            /* the data directory itself is private (data.mdb holds token hashes); parents as mkdir -p */
            if (mkdir(path, c == '\0' ? 0700 : 0755) != 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    free(path);
    if (rc == 0) {
        struct stat st;
        if (stat(dir, &st) != 0)
            return -errno;
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
    }
    return rc;
}

static int store_open_dbis(store_t *s, char *errbuf, size_t errlen)
{
    static const struct {
        const char *name;
        size_t off;
        unsigned flags;
    } dbs[] = {
        {MIG_DB_META, offsetof(store_t, dbi_meta), 0},
        {MIG_DB_OBJECTS, offsetof(store_t, dbi_objects), 0},
        {MIG_DB_SKEYS, offsetof(store_t, dbi_skeys), MIG_INDEX_DB_FLAGS},
        {MIG_DB_VARIANTS, offsetof(store_t, dbi_variants), MIG_INDEX_DB_FLAGS},
        {MIG_DB_EVICT, offsetof(store_t, dbi_evict), 0},
        {MIG_DB_CONFIG, offsetof(store_t, dbi_config), 0},
        {MIG_DB_TOKENS, offsetof(store_t, dbi_tokens), 0},
        {MIG_DB_STATS, offsetof(store_t, dbi_stats), 0},
    };
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        errbuf_printf(errbuf, errlen, "store: cannot begin a read transaction: %s", mdb_strerror(rc));
        return STORE_EIO;
    }
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        MDB_dbi *dbi = (MDB_dbi *)((char *)s + dbs[i].off);
        if ((rc = mdb_dbi_open(txn, dbs[i].name, dbs[i].flags, dbi)) != 0) {
            errbuf_printf(errbuf, errlen, "store: cannot open database '%s': %s", dbs[i].name, mdb_strerror(rc));
            mdb_txn_abort(txn);
            return STORE_EIO;
        }
    }
    uint64_t gen = 0, reclaimed = 0;
    int present, present_r;
    rc = store_meta_get_u64(s, txn, MIG_META_GENERATION, &gen, &present);
    if (rc == 0)
        rc = store_meta_get_u64(s, txn, MIG_META_RECLAIMED, &reclaimed, &present_r);
    if (rc != 0 || !present || gen == 0) {
        errbuf_printf(errbuf, errlen, "store: meta 'generation' is %s", rc != 0 ? mdb_strerror(rc) : "missing or zero");
        mdb_txn_abort(txn);
        return STORE_EIO;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) { /* commit keeps the handles open for the environment */
        errbuf_printf(errbuf, errlen, "store: cannot open databases: %s", mdb_strerror(rc));
        return STORE_EIO;
    }
    atomic_store(&s->generation, gen);
    if (gen > 1 && reclaimed < gen)
        s->reclaim_gen = gen; /* a pass was interrupted: finish it in the background */
    return 0;
}

static int store_load_bus_seq(store_t *s);

int store_open(store_t **out, const store_options_t *opt, char *errbuf, size_t errlen)
{
    store_t *s = NULL;
    int rc, ret = STORE_EIO;
    *out = NULL;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (opt == NULL || opt->dir == NULL || opt->dir[0] == '\0') {
        errbuf_printf(errbuf, errlen, "store: no data directory given");
        return STORE_EIO;
    }
    if ((rc = store_mkdir_p(opt->dir)) != 0) {
        errbuf_printf(errbuf, errlen, "store: cannot create data directory %s: %s", opt->dir, strerror(-rc));
        return STORE_EIO;
    }
    /* nothing maps data.mdb before it passes the checks (storage/store_check.h) */
    store_state_t state;
    char cerr[900];
    if (store_check_secure_dir(opt->dir, cerr, sizeof(cerr)) != 0 ||
        (rc = store_check_at_open(opt->dir, !opt->read_only, &state, cerr, sizeof(cerr))) != 0) {
        int damaged = rc == STORE_CHECK_EDAMAGED;
        errbuf_printf(errbuf, errlen, "store %s: %s%s", opt->dir, cerr,
                      damaged ? "; refusing to open it (see `edgecache check --data-dir DIR`; restore a backup or move "
                                "the directory away to start empty)"
                              : "");
        return damaged ? STORE_EDAMAGED : STORE_EIO;
    }

    s = alloc_xcalloc(1, sizeof(*s), "store");
    s->magic = STORE_MAGIC;
    s->state = state;
    s->serial = atomic_fetch_add(&store_next_serial, 1);
    s->mem = opt->mem;
    s->read_only = opt->read_only;
    s->checkpoint_ms = opt->checkpoint_ms != 0 ? opt->checkpoint_ms : STORE_CHECKPOINT_MS;
    s->high_water = opt->evict_high_water > 0 && opt->evict_high_water < 1 ? opt->evict_high_water : 0.85;
    s->low_water = opt->evict_low_water > 0 && opt->evict_low_water < s->high_water ? opt->evict_low_water : 0.75;
    if (s->low_water >= s->high_water)
        s->low_water = s->high_water * 0.88;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->plog_lock, NULL);
    pthread_mutex_init(&s->pend_lock, NULL);
    pthread_mutex_init(&s->memonly_lock, NULL);
    s->plog = calloc(PURGE_LOG_SIZE, sizeof(*s->plog));
    if (s->plog == NULL)
        abort();
    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &cattr);
    pthread_cond_init(&s->apply_wake, &cattr);
    pthread_cond_init(&s->apply_room, &cattr);
    pthread_cond_init(&s->checkpoint_wake, &cattr);
    pthread_condattr_destroy(&cattr);

    size_t want = opt->map_size;
    if (want == 0) {
        size_t dlen = strlen(opt->dir);
        char *path = alloc_xcalloc(1, dlen + sizeof("/data.mdb"), "store");
        memcpy(path, opt->dir, dlen);
        memcpy(path + dlen, "/data.mdb", sizeof("/data.mdb"));
        struct stat st;
        if (stat(path, &st) != 0)
            want = STORE_DEFAULT_MAP_SIZE; /* a new store; an existing one keeps its size */
        free(path);
    }
    /*
     * MDB_NORDAHEAD (madvise MADV_RANDOM on the map): records are laid out in hash order,
     * so the pages around one object hold unrelated objects, and the kernel's read-around
     * of a fault only evicts what the page cache held. bench/cold (30,000 x 4 KiB, a 16 MiB
     * memory tier, restart, page cache dropped, 2,000 random reads): see bench/README.md.
     */
    unsigned flags = MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD;
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = mdb_env_create(&s->env)) != 0) {
            errbuf_printf(errbuf, errlen, "store: mdb_env_create: %s", mdb_strerror(rc));
            goto fail;
        }
        mdb_env_set_maxdbs(s->env, 16);
        mdb_env_set_maxreaders(s->env, 256);
        if (want != 0 && (rc = mdb_env_set_mapsize(s->env, want)) != 0) {
            errbuf_printf(errbuf, errlen, "store: map size %zu: %s", want, mdb_strerror(rc));
            goto fail;
        }
        rc = mdb_env_open(s->env, opt->dir, flags, 0600);
        if (rc == 0)
            break;
        mdb_env_close(s->env);
        s->env = NULL;
        if (rc == EACCES && opt->read_only && !(flags & MDB_RDONLY)) {
            flags |= MDB_RDONLY; /* a CLI status command on a directory it may only read */
            continue;
        }
        errbuf_printf(errbuf, errlen, "store: cannot open LMDB environment in %s: %s", opt->dir, mdb_strerror(rc));
        goto fail;
    }
    if (s->env == NULL) {
        errbuf_printf(errbuf, errlen, "store: cannot open LMDB environment in %s", opt->dir);
        goto fail;
    }

    store_check_opened(&s->state);

    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    s->map_size = info.me_mapsize;
    s->psize = st.ms_psize;
    s->max_keysize = (size_t)mdb_env_get_maxkeysize(s->env);
    s->reclaim_chunk = STORE_RECLAIM_DELETE_MAX;
    store_space_open(&s->space, STORE_SPACE_MAP, -1, s->map_size, s->psize); /* until the writer's is set up */
    if (want != 0 && s->map_size > want)
        fprintf(stderr,
                "edgecache: store: the data file in %s already extends past the requested map size %zu; "
                "LMDB keeps a map of %zu bytes (eviction keeps the data within it)\n",
                opt->dir, want, s->map_size);

    unsigned from = 0, to = 0;
    if (!opt->read_only) {
        char merr[256];
        size_t nsteps;
        const mig_step_t *steps = mig_builtin(&nsteps);
        rc = mig_run(s->env, steps, nsteps, &from, &to, merr, sizeof(merr));
        if (rc == MIG_ENEWER) {
            errbuf_printf(errbuf, errlen, "store %s: %s; refusing to open it (upgrade edgecache)", opt->dir, merr);
            ret = STORE_ESCHEMA;
            goto fail;
        }
        if (rc != 0) {
            errbuf_printf(errbuf, errlen, "store %s: %s", opt->dir, merr);
            goto fail;
        }
    } else {
        if ((rc = mig_current_version(s->env, &from)) != 0) {
            errbuf_printf(errbuf, errlen, "store %s: cannot read schema version: %s", opt->dir, mdb_strerror(rc));
            goto fail;
        }
        if (from != mig_latest()) {
            errbuf_printf(errbuf, errlen,
                          "store %s: schema version %u, this binary needs %u (%s); read-only open does not migrate", opt->dir,
                          from, mig_latest(), from > mig_latest() ? "the store is newer" : "open it read-write once to migrate");
            ret = STORE_ESCHEMA;
            goto fail;
        }
    }
    if ((ret = store_open_dbis(s, errbuf, errlen)) != 0)
        goto fail;
    if (!opt->read_only && store_map_locate(s) != 0)
        fprintf(stderr, "edgecache: store: cannot find the data file's map in /proc/self/maps; its pages stay mapped\n");
    ret = STORE_EIO;
    if ((rc = store_measure(s, NULL)) != 0) {
        errbuf_printf(errbuf, errlen, "store %s: cannot read database statistics: %s", opt->dir, mdb_strerror(rc));
        goto fail;
    }

    if (!opt->read_only) {
        char jerr[256];
        uint8_t jkey[JOURNAL_KEY_BYTES];
        int keyed;
        if ((rc = store_journal_key(s, jkey, &keyed)) != 0) {
            errbuf_printf(errbuf, errlen, "store %s: cannot read the purge journal's key: %s", opt->dir,
                          rc == MDB_NOTFOUND ? "missing" : mdb_strerror(rc));
            goto fail;
        }
        if (journal_open(&s->journal, opt->dir, store_journal_size(s->map_size), keyed ? jkey : NULL, jerr, sizeof(jerr)) != 0) {
            errbuf_printf(errbuf, errlen, "store %s: %s", opt->dir, jerr);
            goto fail;
        }
        if ((ret = store_journal_recover(s, errbuf, errlen)) != 0)
            goto fail;
        ret = STORE_EIO;
        if ((rc = store_load_bus_seq(s)) != 0) {
            errbuf_printf(errbuf, errlen, "store %s: cannot read meta 'bus_seq': %s", opt->dir, mdb_strerror(rc));
            goto fail;
        }
        if (!keyed && (rc = store_journal_rekey(s, jkey)) != 0) {
            errbuf_printf(errbuf, errlen, "store %s: cannot key the purge journal: %s", opt->dir, mdb_strerror(rc));
            goto fail;
        }
        sodium_memzero(jkey, sizeof(jkey));
        /* after the journal took its room: the data file's reservation, or its budget, from what is left */
        int data_fd;
        if (mdb_env_get_fd(s->env, &data_fd) == 0)
            store_space_open(&s->space, opt->space_mode, data_fd, s->map_size, s->psize);
        if ((rc = pthread_create(&s->writer, NULL, store_writer_main, s)) != 0) {
            errbuf_printf(errbuf, errlen, "store: cannot start the writer thread: %s", strerror(rc));
            goto fail;
        }
        s->applier_started = 1;
        if ((rc = pthread_create(&s->front, NULL, store_front_main, s)) != 0) {
            store_close(&s); /* the writer is running: stop it the normal way */
            errbuf_printf(errbuf, errlen, "store: cannot start the journal thread: %s", strerror(rc));
            return STORE_EIO;
        }
        s->front_started = 1;
        s->writer_started = 1;
        if ((rc = pthread_create(&s->checkpointer, NULL, store_checkpoint_main, s)) != 0) {
            /* the writer is running: stop it the normal way */
            store_close(&s);
            errbuf_printf(errbuf, errlen, "store: cannot start the checkpoint thread: %s", strerror(rc));
            return STORE_EIO;
        }
        s->checkpointer_started = 1;
    } else {
        s->reclaim_gen = 0;
    }
    *out = s;
    return 0;

fail:
    journal_close(&s->journal);
    if (s->env != NULL)
        mdb_env_close(s->env);
    store_check_at_close(&s->state, 0); /* not clean: it stays "open" and the next open checks it */
    pthread_cond_destroy(&s->checkpoint_wake);
    pthread_cond_destroy(&s->apply_room);
    pthread_cond_destroy(&s->apply_wake);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s->plog);
    s->plog = NULL;
    free(s->pend);
    s->pend = NULL;
    s->magic = 0;
    free(s);
    return ret;
}

void store_close(store_t **storep)
{
    store_t *s = *storep;
    if (s == NULL)
        return;
    assert(s->magic == STORE_MAGIC);
    *storep = NULL;
    if (s->applier_started) {
        pthread_mutex_lock(&s->lock);
        s->stopping = 1; /* refuse new ops; the two threads drain what is queued, then exit */
        pthread_cond_signal(&s->wake);
        if (!s->front_started) {
            s->front_done = 1;
            pthread_cond_signal(&s->apply_wake);
        }
        pthread_mutex_unlock(&s->lock);
        if (s->front_started)
            pthread_join(s->front, NULL);
        pthread_join(s->writer, NULL);
    }
    while (s->unapplied != NULL) { /* their transaction kept failing: the next open replays them */
        store_op_t *op = s->unapplied;
        s->unapplied = op->next;
        store_op_free(op);
    }
    if (s->checkpointer_started) {
        pthread_mutex_lock(&s->lock);
        s->checkpointer_stopping = 1;
        pthread_cond_signal(&s->checkpoint_wake);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->checkpointer, NULL);
    }
    int synced = s->applier_started && store_sync_main(s) == 0; /* the journal's records are then all in the main store */
    journal_close(&s->journal);
    store_memonly_free(s);
    assert(s->head == NULL && s->ahead == NULL);
    store_slots_orphan(s);
    mdb_env_close(s->env);
    store_check_at_close(&s->state, synced); /* a clean close spares the next open its tree check */
    pthread_cond_destroy(&s->checkpoint_wake);
    pthread_cond_destroy(&s->apply_room);
    pthread_cond_destroy(&s->apply_wake);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s->plog);
    s->plog = NULL;
    free(s->pend);
    s->pend = NULL;
    s->magic = 0;
    free(s);
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

/* After the journal's recovery (which may have moved it): the bus sequence the store holds. */
static int store_load_bus_seq(store_t *s)
{
    MDB_txn *txn;
    uint64_t seq = 0;
    int present, rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    rc = store_meta_get_u64(s, txn, MIG_META_BUS_SEQ, &seq, &present);
    mdb_txn_abort(txn);
    if (rc == 0)
        atomic_store(&s->bus_seq, seq);
    return rc;
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

void store_put(store_t *s, cache_obj_t *obj)
{
    assert(s != NULL && s->magic == STORE_MAGIC && obj != NULL && obj->magic == OBJ_MAGIC);
    store_op_t *op = store_op_new(STORE_OP_PUT);
    op->obj = obj_ref(obj);
    if (store_enqueue(s, op) != 0)
        store_op_free(op);
}

void store_put_since(store_t *s, cache_obj_t *obj, uint64_t since_epoch)
{
    assert(s != NULL && s->magic == STORE_MAGIC && obj != NULL && obj->magic == OBJ_MAGIC);
    store_op_t *op = store_op_new(STORE_OP_PUT);
    op->obj = obj_ref(obj);
    op->has_since = 1;
    op->since_epoch = since_epoch;
    if (store_enqueue(s, op) != 0)
        store_op_free(op);
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
    uint64_t committed = atomic_load(&s->committed_seq), durable = atomic_load(&s->durable_seq);
    out->journal_unsynced = committed > durable ? committed - durable : 0;
    out->map_full_errors = atomic_load_explicit(&s->st_map_full, memory_order_relaxed);
    out->corrupt_records = atomic_load_explicit(&s->st_corrupt, memory_order_relaxed);
    out->generation = store_generation(s);
    out->budget = store_budget(s);
    out->enospc = atomic_load_explicit(&s->space.enospc, memory_order_relaxed);
    out->memory_only = atomic_load_explicit(&s->memonly_count, memory_order_relaxed);
    out->map_trims = atomic_load_explicit(&s->st_map_trims, memory_order_relaxed);
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

/*
 * storage/store_open.c — the store's lifecycle: store_open and store_close.
 *
 * store_open makes the data directory (private), passes it through the checks of
 * storage/store_check.h, opens the LMDB environment and runs the schema migrations
 * (a read-only open only checks the version), opens the databases, opens the purge
 * journal and replays it into the main store (store_checkpoint.c), then starts the
 * writer, the journal thread and the checkpointer, in that order. store_close stops
 * them in the order of the work they hand on: the two writing threads drain the queue
 * and exit, then the checkpointer; a last sync of the main environment makes the
 * close clean.
 *
 * Invariants: nothing maps data.mdb before it passes the checks. The fields of struct
 * store that are set at open are set here, before the thread that reads them starts.
 * An open that fails before the writer runs frees what it made and leaves the store
 * state "open" (not clean), so the next open checks the trees; once the writer runs,
 * a failure goes through store_close like any other close.
 * A store opened read-only starts no thread and opens no journal.
 *
 * Threads: the caller's, once each; no store thread runs before store_open starts
 * them or after store_close has joined them.
 */
#include "storage/store_int.h"

#include <assert.h>
#include <errno.h>
#include <linux/magic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
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

/* The last step of a failed open and of a close: s's threads are joined and its environment closed. */
static void store_free(store_t *s)
{
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

/*
 * MDB_WRITEMAP: the writer changes pages in the map itself, where LMDB otherwise builds
 * each dirty page in a copy of its own (a sorted list it searches on every touch) and
 * writes the copies with pwritev at commit (the kernel's buffered-write path).
 * bench/fill (200,000 x 1 KiB, three alternations): the writer's CPU per stored object
 * 8.3-9.8 -> 6.3-8.5 us in the first 100,000 and 10.6-12.7 -> 7.1-9.3 us in the next.
 *
 * What it risks, and why the conditions below: a write through a shared map into a block
 * the file system has not allocated gets its block at the page fault, and a file system
 * with no room answers that with SIGBUS, which would end the process, where a pwritev
 * returns ENOSPC for store_space to handle. So the map is writable only when
 *   - the store reserves its room (STORE_SPACE_PREALLOCATE) and is opened read-write;
 *   - its file system overwrites allocated blocks in place: ext4 and tmpfs. Not a
 *     copy-on-write one (btrfs, or XFS with extents shared by a reflink copy), which
 *     allocates anew on every overwrite, preallocated or not;
 *   - the whole map is allocated on disk, here, before LMDB writes through it
 *     (fallocate; LMDB then sets the file's size to the map's), and that allocation still
 *     leaves the purge journal (opened next) and store_space's slack their room.
 * Otherwise the store opens as it always did, and store_space reserves what it can.
 * LMDB's documentation warns against mixing processes with and without MDB_WRITEMAP on
 * one environment (the CLI's token and status commands open it read-only-mapped while the
 * server runs): that is for systems without a unified page cache; on Linux a write
 * through the map and a pwrite land in the same cached page, and a sync of the file
 * writes both.
 * Also given up: a stray write by any thread into the map would change the file where a
 * read-only map would have faulted. Every object record carries a checksum its reader
 * checks (storage/object.c), so such damage to a record is found, not served.
 */
static int store_writemap_ready(MDB_env *env, const store_options_t *opt)
{
    if (opt->read_only || opt->space_mode != STORE_SPACE_PREALLOCATE)
        return 0;
    int fd;
    struct statfs fs;
    MDB_envinfo info;
    if (mdb_env_get_fd(env, &fd) != 0 || fstatfs(fd, &fs) != 0 || mdb_env_info(env, &info) != 0)
        return 0;
    if (fs.f_type != EXT4_SUPER_MAGIC && fs.f_type != TMPFS_MAGIC)
        return 0;
    return store_space_allocate_all(fd, info.me_mapsize, store_journal_size(info.me_mapsize));
}

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
    s->put_backlog_max = opt->put_backlog != 0 ? opt->put_backlog : STORE_PUT_BACKLOG_DEFAULT;
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
    int writemap_tried = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
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
        if (rc == 0 && !writemap_tried && store_writemap_ready(s->env, opt)) {
            mdb_env_close(s->env); /* and again, mapped writable: only LMDB's open has used this one */
            s->env = NULL;
            flags |= MDB_WRITEMAP;
            writemap_tried = 1;
            continue;
        }
        if (rc == 0)
            break;
        mdb_env_close(s->env);
        s->env = NULL;
        if (flags & MDB_WRITEMAP) { /* as it opened a moment ago */
            fprintf(stderr, "edgecache: store: cannot map %s writable (%s); it is mapped read-only\n", opt->dir,
                    mdb_strerror(rc));
            flags &= ~(unsigned)MDB_WRITEMAP;
            continue;
        }
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
    s->writemap = (flags & MDB_WRITEMAP) != 0;

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
    store_free(s);
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
    store_free(s);
}

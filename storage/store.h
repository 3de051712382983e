/*
 * storage/store.h — the LMDB store: objects, the surrogate-key reverse index,
 * the purge-all generation, config and tokens, in one LMDB environment.
 *
 * Threads: any thread may read (store_get, store_generation, store_config_get);
 * every write goes through the store's journal thread (which writes purges to the
 * purge journal and answers them) and then its single writer thread, which
 * group-commits whatever is queued. Callers never block on a write, except
 * store_flush and the *_sync helpers, which exist for the CLI and tests.
 *
 * Durability: object puts are committed without fsync (they survive kill -9
 * because committed pages are in the OS page cache; a power loss may lose the
 * newest ones, which only costs a miss); a checkpoint thread syncs the environment
 * every 5 s, or sooner when unsynced purges fill a quarter of the journal. A purge
 * is acknowledged (its callback runs) only after its record in the purge journal
 * (<dir>/journal.log) is synced and neither store_get nor the memory tier returns
 * what it purged. A hard URL or key purge is acknowledged before the transaction
 * that deletes its objects commits (store_get hides them meanwhile); soft purges
 * and purge-all after it. store_open applies again any journaled purge the
 * environment lost.
 * Config and token writes are acknowledged after their commit is synced.
 */
#ifndef EDGECACHE_STORE_H
#define EDGECACHE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "storage/object.h"
#include "storage/mem.h"

typedef struct store store_t;

/* errors: negative, outside errno's range */
#define STORE_ENOTFOUND (-30950) /* no such object (or it belongs to an old generation) */
#define STORE_ECORRUPT (-30951)  /* a record failed validation; it is deleted in the background */
#define STORE_ESCHEMA (-30952)   /* the store was written by a newer schema */
#define STORE_EIO (-30953)       /* LMDB error; see the message */
#define STORE_EFULL (-30954)     /* the map (or the file system) is full even after eviction */
#define STORE_EDAMAGED (-30958)  /* store_open: the data file is not sound (truncated, damaged pages); refused */
#define STORE_EBACKLOG (-30959)  /* store_put: the puts queued for disk already hold the backlog's bytes */

/* how the store makes sure of its room on the file system (storage/store_space_int.h) */
enum {
    STORE_SPACE_MAP = 0,     /* the map size is the budget; nothing is reserved (CLI commands, tests) */
    STORE_SPACE_PREALLOCATE, /* allocate the data file up to the map size, or as far as the file system allows */
    STORE_SPACE_FREE,        /* no preallocation: the budget follows the file system's free space */
};

typedef struct store_options {
    const char *dir;         /* data directory; created if missing */
    size_t map_size;         /* LMDB map size in bytes (the disk budget) */
    mem_tier_t *mem;         /* memory tier to keep coherent on purges (may be NULL) */
    int read_only;           /* open without a writer thread (CLI status commands) */
    double evict_high_water; /* start evicting at this fraction of the map (default 0.85 when 0) */
    double evict_low_water;  /* evict down to this fraction (default 0.75 when 0) */
    unsigned checkpoint_ms;  /* background sync interval (default 5000 when 0; tests set it) */
    int space_mode;          /* STORE_SPACE_*: 0 = STORE_SPACE_MAP */
    size_t put_backlog;      /* bytes of objects queued for disk at most (default STORE_PUT_BACKLOG_DEFAULT when 0) */
} store_options_t;

/* 256 MiB: several seconds of a fast disk's writes; what a stalled disk may pin in memory */
#define STORE_PUT_BACKLOG_DEFAULT ((size_t)256 << 20)

typedef struct store_stats {
    uint64_t objects;    /* entries in `objects` */
    uint64_t bytes_used; /* pages in use * page size */
    uint64_t map_size;
    uint64_t puts, deletes, evictions, commits, syncs, map_full_errors, corrupt_records;
    uint64_t generation;
    uint64_t journal_commits;      /* purge journal segments written (each synced: one per purge batch) */
    uint64_t checkpoints;          /* background syncs of the main store */
    uint64_t journal_unsynced;     /* journaled purges the main store has committed but not yet synced */
    uint64_t journal_write_us;     /* time spent in those synced segment writes (the ones that worked), in all */
    uint64_t journal_write_max_us; /* the longest of them */
    int journal_direct;            /* those writes go to the device directly (O_DIRECT), not through the page cache */
    int writemap;                  /* the data file is mapped writable (MDB_WRITEMAP): its whole map is allocated */
    uint64_t budget;               /* bytes the store may fill: the map size, or less when the file system has less room */
    uint64_t enospc;               /* times the file system had no room: a budget short of the map, a write refused */
    uint64_t memory_only;          /* objects kept in the memory tier although the disk could not take them */
    uint64_t map_trims;            /* times the data file's pages were unmapped from the process (store_maptrim.c) */
    uint64_t put_backlog_bytes;    /* bytes of objects queued for disk now */
    uint64_t put_backlog_limit;    /* ... at most (store_options_t.put_backlog) */
    uint64_t puts_refused_backlog; /* puts refused because that backlog was full (STORE_EBACKLOG) */
} store_stats_t;

/* what a purge did */
typedef struct store_purge_result {
    int err;             /* 0 or STORE_E* */
    uint64_t objects;    /* objects removed or marked stale */
    uint64_t generation; /* generation after the purge (purge_all) */
} store_purge_result_t;

/**
 * Callback run once a purge is durable (see Durability above) and neither store_get
 * nor the memory tier returns the purged objects: on the store's journal thread for a
 * purge answered before its commit, on its writer thread otherwise (so answers may
 * come in another order than the purges were queued). It must not block; to reach an
 * event loop, post an h2o_multithread message. `res` is borrowed for the call.
 */
typedef void (*store_purge_cb)(void *arg, const store_purge_result_t *res);

/**
 * Open (creating if needed) the environment in opt->dir, run pending schema migrations
 * (migrations/mig.h) and start the journal and writer threads. No scan of the data at start-up,
 * except after an unclean shutdown: then the B-tree is walked in a child process first
 * (storage/store_check.h). Files are created 0600, a missing directory 0700.
 * On error returns a negative code (STORE_EDAMAGED: the data file is not sound and was
 * never mapped by this process) and writes a one-line message into errbuf.
 */
int store_open(store_t **out, const store_options_t *opt, char *errbuf, size_t errlen);

/** Flush queued writes, stop the writer, close the environment; sets *store to NULL. */
void store_close(store_t **store);

/**
 * Read an object by hash, comparing the full key. Any thread; uses a read-only
 * transaction private to the calling thread, reset before returning.
 * On success *out is a new reference (refcount 1, not yet in the memory tier).
 * Returns 0, STORE_ENOTFOUND (also for an object of an older generation) or STORE_ECORRUPT.
 */
int store_get(store_t *store, const uint8_t hash[CACHE_HASH_LEN], const char *key, size_t key_len, cache_obj_t **out);

/** The current purge-all generation (atomic read, no LMDB access). */
uint64_t store_generation(store_t *store);

/**
 * The purge epoch: a counter the writer increments (atomically, release order) after
 * each purge commit and before it removes the purged objects from the memory tier.
 * A reader that took an epoch before store_get or before an origin fetch and sees a
 * different one afterwards must not insert/store what it got (it may be purged content).
 */
uint64_t store_purge_epoch(store_t *store);

/**
 * Queue an object for writing (object record, surrogate-key index entries and eviction
 * index in one transaction). Takes its own reference. Objects whose generation is older
 * than the current one when the writer gets to them are dropped.
 *
 * Returns 0 (queued), STORE_EBACKLOG (refused, nothing queued: the objects queued for disk
 * already hold the backlog's bytes, see store_options_t.put_backlog; a writer that falls
 * behind, as behind a stalled disk, must not pin ever more objects in memory) or STORE_EIO
 * (the store takes no writes). An object alone in the queue is never refused, whatever its size.
 */
int store_put(store_t *store, cache_obj_t *obj);

/**
 * store_put for an object fetched from the origin: `since_epoch` is store_purge_epoch()
 * taken when its fetch began. The writer drops the put (and the object's memory-tier copy)
 * if a purge naming the object's URL or one of its surrogate keys was applied after that
 * epoch, including a purge queued before this put but not yet committed. Returns as store_put.
 */
int store_put_since(store_t *store, cache_obj_t *obj, uint64_t since_epoch);

/**
 * 1 when a purge naming this URL (the full cache key) or one of `skeys` (space separated,
 * may be NULL) has been applied since `since_epoch`, or when the purge log no longer reaches
 * back that far; else 0. Any thread.
 */
int store_purged_since(store_t *store, uint64_t since_epoch, const char *key, size_t key_len, const char *skeys,
                       size_t skeys_len);

/** Queue the deletion of an object by hash (and its index entries). */
void store_delete(store_t *store, const uint8_t hash[CACHE_HASH_LEN]);

/**
 * Purge one URL: every object whose full key is `key` (every Vary variant).
 * soft: mark stale (OBJ_F_SOFT_PURGED) instead of deleting. Asynchronous; `cb` as above.
 */
void store_purge_key_url(store_t *store, const char *key, size_t key_len, int soft, store_purge_cb cb, void *arg);

/** Purge every object tagged with surrogate key `skey` (any length; a key that
 * obj_skeys_next would not count, e.g. one over OBJ_SKEY_MAX_LEN, tags nothing, so it purges
 * nothing). Asynchronous; `cb` as above. Copies skey. */
void store_purge_surrogate_key(store_t *store, const char *skey, size_t skey_len, int soft, store_purge_cb cb, void *arg);

/** Purge everything: bump the generation (O(1)); old objects are reclaimed in the background. */
void store_purge_all(store_t *store, store_purge_cb cb, void *arg);

/**
 * The cluster bus (cluster/cluster.h): record that its purges up to stream sequence `seq`
 * are applied. Journaled, and committed to meta "bus_seq", behind every purge queued before
 * it (by any thread, and under store_hold_begin in the same journal segment as the calling
 * thread's held purges): once durable, they are too. A later call may record a lower seq
 * (the stream was recreated). cb as for a purge (res->err 0 once durable and committed, else
 * STORE_EIO: nothing recorded). Asynchronous.
 */
void store_note_bus_seq(store_t *store, uint64_t seq, store_purge_cb cb, void *arg);

/** The bus sequence the store has committed (meta "bus_seq", 0 when never recorded). Any thread. */
uint64_t store_bus_seq(store_t *store);

/** Block until everything queued before the call is committed and synced. Returns 0 or STORE_EIO. */
int store_flush(store_t *store);

/**
 * Hold back what the calling thread queues until store_hold_end: then it all goes to
 * the writer under one lock with one wake-up. For an event loop that answers many
 * requests per wake-up (the admin API: about a dozen purges per epoll_wait at load),
 * where a lock and a wake-up per purge cost more than the purge's own share of the
 * writer. Order is kept: a waited call (store_flush, store_kv_put_sync) on a holding
 * thread first releases what it holds. Ops held when the store stops are refused as
 * if queued then (a purge's callback gets STORE_EIO on this thread).
 */
void store_hold_begin(store_t *store);
void store_hold_end(store_t *store);

/** Counters (approximate, any thread). */
void store_get_stats(store_t *store, store_stats_t *out);

/* ---- small key/value records in the `config` and `tokens` databases ---- */

/**
 * Read a value from database `db` ("config" or "tokens"). On success *val is a malloc'd
 * copy the caller frees, NUL-terminated for convenience. Returns 0 or STORE_ENOTFOUND.
 */
int store_kv_get(store_t *store, const char *db, const char *key, char **val, size_t *val_len);

/**
 * Write (val != NULL) or delete (val == NULL) a value synchronously: returns once
 * committed and synced. Returns 0, STORE_ENOTFOUND (delete of a missing key) or STORE_EIO.
 * Works on a store opened read_only=0 by another process too (LMDB is multi-process).
 */
int store_kv_put_sync(store_t *store, const char *db, const char *key, const void *val, size_t val_len);

/**
 * Call fn for every key/value in `db` in key order (read transaction held during the walk;
 * the pointers are valid only during the call). Stop when fn returns non-zero.
 */
int store_kv_foreach(store_t *store, const char *db,
                     int (*fn)(void *arg, const char *key, size_t key_len, const void *val, size_t val_len), void *arg);

/**
 * store_kv_foreach starting at the first key >= `from` (NULL or "": the first key), so that a
 * walk over a range of ordered keys (the stats history's time-ordered ones) does not pay for
 * what comes before it. Same contract otherwise.
 */
int store_kv_foreach_from(store_t *store, const char *db, const char *from,
                          int (*fn)(void *arg, const char *key, size_t key_len, const void *val, size_t val_len), void *arg);

#endif

/*
 * storage/store_int.h — the store's internals, shared by the pieces of storage/store.c
 * and nothing else (the public interface is storage/store.h).
 *
 * struct store's fields are grouped by who may touch them: set once at open, atomics,
 * each mutex with what it guards (plog_lock, pend_lock, memonly_lock, lock), and the
 * fields private to the journal thread and to the writer thread. A write is a
 * store_op_t: queued by the caller, taken by the journal thread, applied by the writer
 * in a store_batch_t (one group commit).
 */
#ifndef EDGECACHE_STORE_INT_H
#define EDGECACHE_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "common/alloc.h"
#include "common/errbuf.h"
#include "common/now.h"
#include "storage/journal_int.h"
#include "storage/store.h"
#include "storage/store_check.h"
#include "storage/store_space_int.h"

#define STORE_MAGIC 0x5170e7c1u
#define STORE_BATCH_MAX_OPS 4096
#define STORE_APPLY_GROUP 4096        /* answered purges the writer gathers into one transaction */
#define STORE_RECLAIM_DELETE_MAX 1000 /* old objects deleted per reclaim transaction */
#define STORE_EVICT_KEY_LEN (8 + CACHE_HASH_LEN)

typedef struct store_hashvec {
    uint8_t (*v)[CACHE_HASH_LEN];
    size_t n, cap;
} store_hashvec_t;

typedef enum store_op_kind {
    STORE_OP_PUT,
    STORE_OP_DELETE,
    STORE_OP_DELETE_CORRUPT, /* delete only if the record still fails validation */
    STORE_OP_PURGE_URL,
    STORE_OP_PURGE_SKEY,
    STORE_OP_PURGE_ALL,
    STORE_OP_KV,
    STORE_OP_FLUSH,
    STORE_OP_BUS_SEQ, /* the cluster bus's purges up to bus_seq are applied (store_note_bus_seq) */
} store_op_kind_t;

enum { STORE_PUT_KEPT = 0, STORE_PUT_OLD_GENERATION, STORE_PUT_TOO_LARGE, STORE_PUT_MAP_FULL, STORE_PUT_PURGED };

/*
 * The purge log: what each purge named (the URL's hash, or the hash of a surrogate key),
 * tagged with the purge epoch that publishes it (store_plog_publish: the writer after the
 * commit, the journal thread for early answers); read by the writer for puts and by fetches.
 */
#define PURGE_LOG_SIZE 8192
typedef struct purge_log_entry {
    uint64_t epoch;
    uint8_t tag[CACHE_HASH_LEN];
} purge_log_entry_t;

typedef struct store_op {
    store_op_kind_t kind;
    struct store_op *next;
    cache_obj_t *obj;             /* PUT: our reference */
    uint8_t hash[CACHE_HASH_LEN]; /* DELETE, DELETE_CORRUPT; PURGE_URL: obj_key_hash of the URL */
    char *key;                    /* PURGE_SKEY, KV (owned, NUL-terminated) */
    size_t key_len;
    void *val; /* KV: value (owned); NULL deletes */
    size_t val_len;
    MDB_dbi dbi; /* KV */
    int soft;
    store_purge_cb cb;
    void *cb_arg;
    /* completion of a waited op (store_flush, store_kv_put_sync): the caller owns the op */
    int waited, done;
    pthread_cond_t done_cond;
    int rc;                 /* KV, FLUSH */
    int dropped;            /* PUT: STORE_PUT_* */
    int has_since;          /* PUT: since_epoch is set (store_put_since) */
    uint64_t since_epoch;   /* PUT: the purge epoch when the object's fetch began */
    uint64_t journal_seq;   /* PURGE_*, BUS_SEQ: its purge journal record; 0 = not journaled (nothing to do) */
    uint64_t bus_seq;       /* BUS_SEQ: the stream sequence it records (its journal payload is in hash, LE) */
    int journal_failed;     /* PURGE_*: the journal write failed: not applied, answered STORE_EIO */
    int acked;              /* PURGE_*: answered before its transaction committed (store_batch_ack_early) */
    store_hashvec_t pended; /* acked: what it holds in the pending set until its transaction commits */
    uint64_t order;         /* position in the stream the journal thread hands the writer (from 1) */
    struct store *charged;  /* PUT: the store whose put backlog counts backlog_bytes until the op is freed */
    size_t backlog_bytes;
    store_purge_result_t res;
} store_op_t;

/* a put the journal thread handed the writer, not yet committed (see store_batch_ack_early) */
typedef struct store_inflight {
    uint64_t order;
    int has_since;        /* its fetch's start is known (store_put_since) */
    cache_obj_t *obj;     /* a reference */
    store_hashvec_t tags; /* store_obj_tags */
} store_inflight_t;

/* a slot of the pending set: refs = 0 is free */
typedef struct store_pend_ent {
    uint8_t hash[CACHE_HASH_LEN];
    uint32_t refs; /* answered purges holding it */
} store_pend_ent_t;

struct store {
    /*
     * Set by store_open before any thread starts, read-only after (store_close tears
     * them down once the threads are joined).
     */
    uint32_t magic;
    uint64_t serial; /* unique per open: keys the per-thread read transactions */
    MDB_env *env;
    MDB_dbi dbi_meta, dbi_objects, dbi_skeys, dbi_variants, dbi_evict, dbi_config, dbi_tokens, dbi_stats;
    mem_tier_t *mem;
    int read_only;
    int writemap;    /* LMDB maps the data file writable (MDB_WRITEMAP: store_open.c says when) */
    size_t map_size; /* the map actually in use */
    size_t psize, max_keysize;
    void *map_addr; /* where LMDB mapped the data file (store_map_locate); NULL: unknown, never trimmed */
    size_t map_len;
    double high_water, low_water;
    unsigned checkpoint_ms;
    store_state_t state; /* <dir>/store.state, held shared while open (storage/store_check.h) */
    /* the purge journal (NULL for a read-only store); see journal_int.h. Only the journal thread appends */
    journal_t *journal;
    pthread_t writer, front, checkpointer;
    int front_started, applier_started, checkpointer_started; /* store_open sets them, store_close reads them */

    /* Atomics, each written by the thread(s) named, read by any thread. */
    _Atomic uint64_t generation;      /* the writer (a purge-all's commit); recovery at open */
    _Atomic uint64_t bus_seq;         /* the writer (a BUS_SEQ op's commit); store_open: meta bus_seq */
    _Atomic uint64_t purge_epoch;     /* both writing threads (store_plog_publish), eviction */
    _Atomic uint64_t applied_order;   /* the writer: the order of the last op it has finished */
    _Atomic uint64_t committed_seq;   /* the writer: highest journaled purge committed to the main store */
    _Atomic uint64_t durable_seq;     /* store_sync_main, checkpointer: highest journaled purge the main store synced */
    _Atomic uint64_t journal_sectors; /* the journal thread: journal_sectors_written after its last append */
    _Atomic uint64_t checkpoint_from; /* the checkpointer: journal_sectors when the running or last checkpoint began */
    _Atomic int checkpoint_asked;     /* the journal thread wants one now: a quarter of the ring is unsynced */
    _Atomic int apply_failing;        /* the writer: unapplied is not empty; the journal thread answers after commits */

    /* The purge log (store_plog.c): guarded by plog_lock. */
    pthread_mutex_t plog_lock;
    purge_log_entry_t *plog; /* ring of PURGE_LOG_SIZE */
    uint64_t plog_count;     /* entries ever appended */

    /*
     * The objects of purges answered before the transaction that deletes them commits
     * (store_batch_ack_early): store_get treats them as gone. The journal thread adds
     * to it when it answers; the writer takes each purge's objects out once the
     * transaction that applied it commits; both under pend_lock, and readers skip the
     * lock while pend_n is 0. pend_gen counts the removals: a read that overlapped one
     * retries, since its snapshot may predate the commit.
     */
    pthread_mutex_t pend_lock;
    store_pend_ent_t *pend; /* open addressing, linear probing */
    size_t pend_cap;
    _Atomic size_t pend_n;
    _Atomic uint64_t pend_gen;

    /*
     * Objects whose put the disk could not take (no room) stay in the memory tier, and are
     * listed here with what names them (store_obj_tags): a purge finds objects through the
     * disk's indexes, so both writing threads also match the purges they apply or answer
     * against this list and take what matches out of the memory tier. A ring of
     * STORE_MEMONLY_MAX; the oldest entry that falls off leaves the memory tier too.
     * Guarded by memonly_lock (store_memonly.c).
     */
    pthread_mutex_t memonly_lock;
    struct store_memonly *memonly; /* ring, allocated on first use */
    size_t memonly_head, memonly_n;
    _Atomic size_t memonly_count; /* = memonly_n, read without the lock */

    /*
     * Guarded by lock: the queue (head), and the hand-over between the two threads that
     * write. The journal thread (store_front_main) takes the queue, writes the purges'
     * journal records, answers the purges it can at once, and hands everything on, in
     * order, to the writer (ahead), which applies it to LMDB in transactions as large as
     * what waits allows. applied_order is the order of the last op the writer has
     * finished: the journal thread's view of which puts are committed.
     */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    store_op_t *head, *tail;
    int stopping;
    int writer_started;  /* the store takes writes */
    store_op_t *transit; /* the batch the journal thread has taken from head */
    store_op_t *ahead, *atail;
    size_t an;                /* ops in ahead */
    size_t a_urgent;          /* of them, ops someone waits for (see store_op_urgent) */
    int64_t ahead_since_ms;   /* when the oldest op in ahead was handed on */
    int applying, front_done; /* the writer is in a batch; the journal thread has exited */
    pthread_cond_t apply_wake, apply_room;
    int checkpointer_stopping; /* the checkpointer waits on checkpoint_wake under lock */
    pthread_cond_t checkpoint_wake;

    /* Journal-thread-private (store_journal_thread.c; store_open's recovery sets journal_next first). */
    uint64_t front_order;
    store_inflight_t *infl; /* FIFO: [infl_head, infl_n) */
    size_t infl_head, infl_n, infl_cap;
    uint64_t journal_next; /* seq of the next record */

    /* Writer-private (store_writer.c, store_evict.c; store_open sets the first values). */
    store_op_t *unapplied; /* answered purges whose transaction failed, retried first */
    uint64_t writer_seq;   /* highest journaled purge it answered after a failure */
    uint64_t reclaim_gen;  /* generation of the running reclaim pass; 0 = none */
    uint8_t reclaim_pos[CACHE_HASH_LEN];
    int reclaim_has_pos;
    size_t reclaim_chunk;     /* old objects one reclaim transaction deletes; smaller after one failed for room */
    int64_t reclaim_retry_ms; /* a step that failed for room is tried again from then on */
    /* the room on the file system (store_space_int.h): the budget replaces the map size in every fill figure.
     * The writer grows and cuts it (store_open sets it up); any thread reads the budget */
    store_space_t space;
    /* the map trim (store_maptrim.c): what the last trim had seen, and when it ran; what
     * the writer saw when it last looked, and when that last changed */
    int trimmed_once;
    uint64_t trim_commits, trim_reads, trim_seen_commits, trim_seen_reads;
    int64_t trim_last_ms, trim_active_ms;

    /* counters: atomics, any thread */
    _Atomic uint64_t st_objects, st_bytes_used;
    _Atomic uint64_t st_puts, st_deletes, st_evictions, st_commits, st_syncs, st_map_full, st_corrupt;
    _Atomic uint64_t st_journal_commits, st_checkpoints;
    _Atomic uint64_t map_reads, st_map_trims; /* read transactions begun; trims of the map (store_maptrim.c) */
    _Atomic uint64_t put_backlog;             /* bytes of the objects of the puts queued and not yet freed */
    _Atomic uint64_t st_puts_refused_backlog; /* puts refused because put_backlog was at put_backlog_max */
    uint64_t put_backlog_max;                 /* store_options_t.put_backlog */
    _Atomic int map_clean; /* the writer has trimmed the map and no read has woken it since (store_maptrim.c) */
    _Atomic uint64_t st_journal_write_us, st_journal_write_max_us; /* the synced journal writes that worked */
};

/* one group commit */
typedef struct store_batch {
    store_op_t *ops;
    size_t put_cost; /* estimated bytes the puts take in the map */
    int has_puts;
    /* per attempt */
    uint64_t gen;
    int need_sync, any_purge, purge_all, any_removal;
    int applying_acked;        /* the purge being applied was answered already: purge log and memory tier done */
    store_hashvec_t plog_tags; /* what this attempt's unanswered purges named: published at its commit */
    uint64_t journal_seq;      /* highest journal seq applied by this attempt (0: none) */
    int bus_seq_set;           /* this attempt wrote meta bus_seq = bus_seq */
    uint64_t bus_seq;
    uint64_t soft_marked; /* objects this attempt marked soft-purged */
    store_hashvec_t mem_remove, mem_soft;
    uint64_t puts, deletes;
    size_t kv_cost;
    uint64_t put_room; /* bytes puts may still add in this batch */
} store_batch_t;

/* ---- store.c ---- */

/* Append one hash to hv, growing it. */
void store_hashvec_push(store_hashvec_t *hv, const uint8_t hash[CACHE_HASH_LEN]);

/* Free hv's array and zero it. */
void store_hashvec_free(store_hashvec_t *hv);

/* 1 when hv holds hash (a linear search). */
int store_hashvec_has(const store_hashvec_t *hv, const uint8_t hash[CACHE_HASH_LEN]);

/* *ts = now + ms on CLOCK_MONOTONIC, the clock of the store's condition variables. */
void store_deadline(struct timespec *ts, int64_t ms);

/* ---- store_rtxn.c ---- */

/* store_close: abort every thread's read transaction on s; the slots stay with their threads. */
void store_slots_orphan(store_t *s);

/* This thread's read-only transaction on s, renewed (a fresh snapshot); mdb_txn_reset it after; NULL on error. */
MDB_txn *store_rtxn_begin(store_t *s);

/* ---- store_maptrim.c ---- */

/*
 * The writer, idle, with s->lock held (dropped around the trim): unmap the data file's
 * pages from the process when pages may have been mapped since the last trim. Returns 0
 * when there is nothing to trim (wait for work), > 0 the ms until a trim is due (wait at
 * most that long), < 0 when it trimmed (look at the queue again).
 */
int64_t store_map_trim_idle(store_t *s);

/* store_open, before the writer starts: find where LMDB mapped the data file (s->map_addr). 0, or -1: unknown (no trims). */
int store_map_locate(store_t *s);

/* A read transaction is about to read the map (the caller does not hold s->lock): the first since a trim wakes the writer. */
void store_map_note_read(store_t *s);

/* ---- store_memonly.c ---- */

/* The writer dropped obj's put for want of room: keep it in the memory tier and list it. */
void store_memonly_add(store_t *s, const cache_obj_t *obj);

/* Take the listed memory-only objects that tags name (all with all) out of the memory tier. */
void store_memonly_purge(store_t *s, const store_hashvec_t *tags, int all);

/* Free the memory-only list (store_close). */
void store_memonly_free(store_t *s);

/* ---- store_plog.c ---- */

/* Bump the purge epoch with nothing logged (objects left the disk: eviction). */
void store_purge_epoch_bump(store_t *s);

/* The purge-log tag of the surrogate key whose index key is ikey[0..len). */
void store_skey_tag(const char *ikey, size_t len, uint8_t tag[CACHE_HASH_LEN]);

/* What names an object in the purge log (its URL hash, its surrogate keys' tags), into out. */
void store_obj_tags(const char *key, size_t key_len, const char *skeys, size_t skeys_len, store_hashvec_t *out);

/* Bump the purge epoch and log tags under it, as one step; returns the new epoch. */
uint64_t store_plog_publish(store_t *s, const store_hashvec_t *tags);

/* qsort/bsearch order of CACHE_HASH_LEN-byte tags. */
int store_tag_cmp(const void *a, const void *b);

/* Take queued puts that tags name (fetched before epoch) out of the memory tier; head_only: the queue alone. */
void store_hide_queued_puts(store_t *s, const store_hashvec_t *tags, uint64_t epoch, int head_only);

/* 1 when a purge published after epoch since named one of obj_tags (or the log no longer reaches back). */
int store_plog_purged(store_t *s, uint64_t since, const store_hashvec_t *obj_tags);

/* Take a reference on hash in the pending set (pend_lock held); 1 if it was not pending yet. */
int store_pend_add_locked(store_t *s, const uint8_t hash[CACHE_HASH_LEN]);

/* 1 when hash is in the pending set (answered purge not committed yet): a miss for store_get. */
int store_pend_has(store_t *s, const uint8_t hash[CACHE_HASH_LEN]);

/* After the commit that applied them: drop the pending-set references of ops' answered purges. */
void store_pend_release(store_t *s, store_op_t *ops);

/* ---- store_txn.c ---- */

/* Bytes a record of len bytes takes in the map (big records go to overflow pages). */
size_t store_rec_cost(const store_t *s, size_t len);

/* The evict index key of a record: u64 BE time ms (clamped at 0) | hash. */
void store_evict_key(uint8_t out[STORE_EVICT_KEY_LEN], int64_t time_ms, const uint8_t hash[CACHE_HASH_LEN]);

/* Read meta u64 name in txn; *present = 0 when absent (then 0 returned); MDB_CORRUPTED when not 8 bytes. */
int store_meta_get_u64(store_t *s, MDB_txn *txn, const char *name, uint64_t *out, int *present);

/* Write meta u64 name in the write transaction txn; an LMDB code. */
int store_meta_put_u64(store_t *s, MDB_txn *txn, const char *name, uint64_t val);

/* Remove the index entries of the decoded record obj stored under hash (its evict entry too unless keep_evict). */
int store_txn_unindex(store_t *s, MDB_txn *txn, const uint8_t hash[CACHE_HASH_LEN], const cache_obj_t *obj, int keep_evict);

/* Load and decode the record under hash: *obj a new reference or NULL (corrupt), *present whether one exists. */
int store_txn_load(store_t *s, MDB_txn *txn, const uint8_t hash[CACHE_HASH_LEN], cache_obj_t **obj, int *present);

/* Delete the object under hash with its index entries; *found = 1 if there was one. */
int store_txn_delete_object(store_t *s, MDB_txn *txn, const uint8_t hash[CACHE_HASH_LEN], int *found);

/* Append the hashes stored under key in the dupsort index dbi to out. */
int store_txn_collect_dups(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len, store_hashvec_t *out);

/* Purge (hard or soft) every variant of the URL whose cache-key hash is url; *objects counts them. */
int store_txn_purge_url_hash(store_t *s, MDB_txn *txn, store_batch_t *b, const uint8_t url[CACHE_HASH_LEN], int soft,
                             uint64_t *objects);

/* Purge every object under the surrogate key whose index key is skey[0..len); *objects counts them. */
int store_txn_purge_skey_bytes(store_t *s, MDB_txn *txn, store_batch_t *b, const char *skey, size_t len, int soft,
                               uint64_t *objects);

/* Apply one op in the write transaction txn, recording its effects in b; an LMDB code aborts the attempt. */
int store_txn_apply(store_t *s, MDB_txn *txn, store_batch_t *b, store_op_t *op, int with_puts);

/* ---- store_evict.c ---- */

/* A write failed with rc: 1 when the file system refused it for room (the budget is then cut). */
int store_write_refused(store_t *s, int rc);

/* The bytes the store may fill now: the map size, or less when the file system has less room. */
uint64_t store_budget(store_t *s);

/* 1 when extra more bytes of kv records stay under STORE_KV_FILL_MAX of the budget. */
int store_kv_fits(store_t *s, size_t extra);

/* Bytes in use (into *used_out when not NULL), refreshing st_bytes_used and st_objects; an LMDB code. */
int store_measure(store_t *s, uint64_t *used_out);

/* Writer thread: delete the oldest objects until the bytes in use are at most target. */
void store_evict_to(store_t *s, uint64_t target);

/* Writer thread: commit a tiny transaction so that the pages the last one freed can be reused. */
void store_advance_txnid(store_t *s);

/* The high water mark in bytes (eviction starts above it). */
uint64_t store_high_bytes(store_t *s);

/* The low water mark in bytes (eviction stops at it). */
uint64_t store_low_bytes(store_t *s);

/* Writer thread: one transaction of the background reclaim of old-generation objects. */
void store_reclaim_step(store_t *s);

/* ---- store_checkpoint.c ---- */

/* Raise *a to at least v. */
void store_atomic_max(_Atomic uint64_t *a, uint64_t v);

/* Sync the main environment now: every purge committed so far becomes durable there. */
int store_sync_main(store_t *s);

/* The size of a new purge journal for a map of map_size bytes. */
size_t store_journal_size(size_t map_size);

/* The checkpointer thread (arg: the store_t): syncs the main environment in the background. */
void *store_checkpoint_main(void *arg);

/* At open, before the writer starts: apply the journaled purges the main store lacks, sync, and empty the journal. */
int store_journal_recover(store_t *s, char *errbuf, size_t errlen);

/* Read the journal's checksum key from meta, and whether the journal is written under it yet. */
int store_journal_key(store_t *s, uint8_t key[JOURNAL_KEY_BYTES], int *keyed);

/* Mark the journal keyed in meta, sync, then write the journal under key (after recovery). */
int store_journal_rekey(store_t *s, const uint8_t key[JOURNAL_KEY_BYTES]);

/* ---- store_journal_thread.c ---- */

/* 1 when the writer should apply op without waiting for more (all but an answered purge). */
int store_op_urgent(const store_op_t *op);

/* The journal thread (arg: the store_t): journals the queued purges, answers them early, hands all on to the writer. */
void *store_front_main(void *arg);

/* ---- store_writer.c ---- */

/* Free an op the store owns, with its references. */
void store_op_free(store_op_t *op);

/* The writer thread (arg: the store_t): applies what the journal thread hands it, reclaims when idle. */
void *store_writer_main(void *arg);

/* A new zeroed op of kind; the caller owns it until it is queued. */
store_op_t *store_op_new(store_op_kind_t kind);

/* Queue an op nobody waits for (takes it); -1 when the store takes no writes (op still the caller's). */
int store_enqueue(store_t *s, store_op_t *op);

/* Queue op (on the caller's stack) and wait until the writer finished it; returns op->rc. */
int store_submit_wait(store_t *s, store_op_t *op);

/* An op the store did not take: a purge's callback hears STORE_EIO; frees op. */
void store_refuse(store_op_t *op);

#endif

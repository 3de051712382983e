/*
 * storage/journal_int.h — the purge journal: a small preallocated ring file
 * (<data dir>/journal.log) in which every purge is recorded, and synced, before it is
 * acknowledged. Internal to storage/: the store (store_int.h) owns the only journal of
 * a store; its unit test uses it directly to simulate a main store that lost writes.
 *
 * Why it exists: syncing the main LMDB environment makes every page dirtied since the
 * last sync reach the disk; a purge of one object dirties about five random pages there
 * (objects, skeys, evict, free list), so a sync per purge batch held durable purges to
 * a fraction of an in-memory cache's rate. A journal commit is one sequential write of
 * a few hundred bytes, made durable by one O_DSYNC write.
 *
 * On disk: a file of JOURNAL_MIN_SIZE to JOURNAL_MAX_SIZE bytes (a multiple of 512),
 * written with zeros when created (so later writes never change the file's size or
 * block map, need no room on a full disk, and a sync carries no metadata; each open
 * allocates any block a copy left as a hole); it keeps the size it was created with. A
 * commit is one segment at a 512-byte boundary:
 *   header (32 bytes, little-endian): u32 magic "ECJ1", u16 version (1), u16 sectors,
 *     u64 first_seq, u32 records, u32 payload bytes, u64 checksum (SipHash-2-4 of the
 *     32-byte header with this field zeroed, then the payload; keyed by the store's
 *     secret meta "journal_key" from schema version 3, by the public "edgecache-journl"
 *     before: surrogate keys are client bytes, and with a public key a purge whose key
 *     held a well-formed segment could, once the ring wrapped over its real header, be
 *     read back as a purge-all or purges of other keys)
 *   payload: per record u8 kind, u8 flags, u16 length, that many bytes
 * Records of a segment have seqs first_seq, first_seq + 1, ... Segments go round the
 * ring; one is never written over a record the main store has not synced. A torn or
 * stale segment fails its checksum and is ignored: it was never acknowledged.
 *
 * Record kinds:
 *   JOURNAL_URL   payload = the 16-byte hash of the URL's cache key (obj_key_hash)
 *   JOURNAL_SKEY  payload = the surrogate key's index key (1 .. 511 bytes: the key
 *                 itself, or NUL + BLAKE2b-256 of a longer one; obj_skey_index_key)
 *   JOURNAL_ALL   payload = empty (one purge-all: one generation bump)
 *   JOURNAL_BUS_SEQ payload = u64 LE: the cluster bus's purges up to this stream sequence
 *                 are applied (every one of them was queued, so journaled, before it;
 *                 schema version 5, cluster/cluster.h)
 * flags: JOURNAL_F_SOFT for a soft purge.
 *
 * The rule that makes it correct: the main store's `meta` records, in each transaction
 * that changes objects, the highest seq journaled so far (MIG_META_JOURNAL_SEQ); all of
 * those purges are applied by then. After a crash that loses unsynced main-store
 * writes, the records above the value the main store kept are the acknowledged purges
 * it may have lost, and store_open applies them again. Applying one twice is harmless:
 * no object stored after it is in the main store, or the value would be higher.
 *
 * Threads: one writer (the store's journal thread, or store_open before it starts);
 * journal_is_direct from any thread.
 */
#ifndef EDGECACHE_JOURNAL_INT_H
#define EDGECACHE_JOURNAL_INT_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_FILE "journal.log"
#define JOURNAL_VERSION 1
#define JOURNAL_MIN_SIZE ((size_t)8 << 20) /* also the size of the first version's journals */
#define JOURNAL_MAX_SIZE ((size_t)1 << 30)
#define JOURNAL_SECTOR 512
#define JOURNAL_MAX_PAYLOAD 511
/* the most record bytes one segment may carry; callers bound their batches by it */
#define JOURNAL_MAX_SEGMENT_BYTES (JOURNAL_MIN_SIZE / 4 - 512)

enum { JOURNAL_URL = 'U', JOURNAL_SKEY = 'K', JOURNAL_ALL = 'A', JOURNAL_BUS_SEQ = 'S' };
#define JOURNAL_F_SOFT 0x01

typedef struct journal journal_t;

typedef struct journal_rec {
    uint64_t seq;
    int kind; /* JOURNAL_URL, JOURNAL_SKEY, JOURNAL_ALL */
    unsigned flags;
    const void *payload; /* borrowed: valid for the call it is passed to (or returned by) */
    size_t payload_len;
} journal_rec_t;

/* errors: negative, outside errno's range (store.h's codes are -30950..) */
#define JOURNAL_EIO (-30960)   /* I/O error (message on stderr) */
#define JOURNAL_EFULL (-30961) /* the ring holds only records the main store has not synced */

#define JOURNAL_KEY_BYTES 16

/**
 * Open <dir>/journal.log, creating and zero-filling it (size_if_new bytes, synced: a
 * multiple of JOURNAL_SECTOR from JOURNAL_MIN_SIZE to JOURNAL_MAX_SIZE) if it is missing.
 * An existing one keeps its size; one whose size is not such a size, or that is not a
 * regular file, gives JOURNAL_EIO and is left alone (it may hold the only record of
 * acknowledged purges). `key`: the secret its segments' checksums are keyed with (the
 * store's, from meta); NULL for the public key of journals written before schema
 * version 3. On error writes a one-line message into errbuf.
 */
int journal_open(journal_t **out, const char *dir, size_t size_if_new, const uint8_t key[JOURNAL_KEY_BYTES], char *errbuf,
                 size_t errlen);

/**
 * Write every later segment under `key`. Every segment already in the ring fails its
 * checksum from then on, so the caller must have the main store synced with all of
 * them applied, and the key recorded durably, before the next append.
 */
void journal_rekey(journal_t *j, const uint8_t key[JOURNAL_KEY_BYTES]);

/** Close; sets *j to NULL. Nothing is lost: every append is already durable. */
void journal_close(journal_t **j);

/**
 * Append recs[0..n) as one segment and return once it is durable. Their seqs must be
 * consecutive and above every seq appended before. `synced_upto`: records with a seq at
 * or below it may be overwritten (the main store has synced them). Each record takes 4
 * bytes plus its payload; together at most JOURNAL_MAX_SEGMENT_BYTES. Returns 0,
 * JOURNAL_EFULL (nothing written: sync the main store and try again with a higher
 * synced_upto) or JOURNAL_EIO (a write failed; the caller must not use these seqs
 * again). Payloads are copied.
 */
int journal_append(journal_t *j, const journal_rec_t *recs, size_t n, uint64_t synced_upto);

/**
 * Call fn for each record with seq > after in the ring, in seq order (rec is valid only
 * during the call). Reads only the segments that hold such records (journal_open's scan,
 * and the appends since, noted where they are), each on its own and checked again: one
 * that changed since is skipped like any damaged segment. fn returning non-zero stops the
 * walk and is returned; a read error, or an intact record of an unknown kind anywhere in
 * the ring, gives JOURNAL_EIO.
 */
int journal_foreach(journal_t *j, uint64_t after, int (*fn)(void *arg, const journal_rec_t *rec), void *arg);

/** Do appends go to the device directly (O_DIRECT), rather than through the page cache? Any thread. */
int journal_is_direct(journal_t *j);

/** The highest seq in the ring (found by journal_open, then kept), 0 when there is none. */
uint64_t journal_last_seq(journal_t *j);

/**
 * Sectors appends have used since the journal was opened, the end a wrap skipped
 * included; with journal_ring_sectors, how much of the ring has gone round since some
 * earlier reading (the store checkpoints before a quarter of it holds unsynced records).
 */
uint64_t journal_sectors_written(journal_t *j);
size_t journal_ring_sectors(journal_t *j);

#endif

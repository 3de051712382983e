/*
 * migrations/mig_int.h — internals of the migration runner: the numbered steps
 * (one file each, NNNN_name.c) that mig_builtin() lists, and the names and
 * encodings of the databases they create, shared with the store (storage/store*.c).
 * Not a public interface: only migrations/ and storage/store*.c include it.
 */
#ifndef EDGECACHE_MIG_INT_H
#define EDGECACHE_MIG_INT_H

#include <lmdb.h>

/* named databases created by migration 0001 (flags as passed to mdb_dbi_open) */
#define MIG_DB_META "meta"
#define MIG_DB_OBJECTS "objects"   /* 16-byte hash -> record (storage/object.h) */
#define MIG_DB_SKEYS "skeys"       /* index key of a surrogate key (storage/object.h) -> 16-byte hash, sorted duplicates */
#define MIG_DB_VARIANTS "variants" /* obj_key_hash(key) -> variant hash, sorted duplicates */
#define MIG_DB_EVICT "evict"       /* u64 BE insert time ms | 16-byte hash -> empty */
#define MIG_DB_CONFIG "config"
#define MIG_DB_TOKENS "tokens"
#define MIG_DB_STATS "stats"
#define MIG_INDEX_DB_FLAGS (MDB_DUPSORT | MDB_DUPFIXED) /* skeys, variants */

/* keys in `meta` */
#define MIG_META_SCHEMA_VERSION "schema_version"  /* u32 LE */
#define MIG_META_GENERATION "generation"          /* u64 LE, purge-all generation (>= 1) */
#define MIG_META_RECLAIMED "reclaimed_generation" /* u64 LE: no object older than this is left */
#define MIG_META_WRITER_TICK "writer_tick"        /* u64 LE scratch the writer rewrites to advance the txn id */
#define MIG_META_JOURNAL_SEQ "journal_seq"        /* u64 LE: highest purge journal record applied (v2) */
#define MIG_META_JOURNAL_KEY "journal_key"        /* 16 random bytes: the purge journal's checksum key (v3) */
#define MIG_META_JOURNAL_KEYED "journal_keyed"    /* u64 LE 1: the journal is written under journal_key */
#define MIG_META_BUS_SEQ "bus_seq"                /* u64 LE: the cluster bus's purges applied up to this seq (v5) */
#define MIG_JOURNAL_KEY_BYTES 16

/** Migration 1, "initial": create every database above and set generation = 1. */
int mig_0001_initial_up(MDB_txn *txn);

/** Migration 2, "purge_journal": meta journal_seq = 0 (purges are journaled from now on). */
int mig_0002_purge_journal_up(MDB_txn *txn);

/** Migration 3, "journal_key": meta journal_key = 16 random bytes (the journal's checksum key). */
int mig_0003_journal_key_up(MDB_txn *txn);

/** Migration 4, "long_skeys": index the surrogate keys over 511 bytes of the stored objects by their hash. */
int mig_0004_long_skeys_up(MDB_txn *txn);

/** Migration 5, "bus_seq": meta bus_seq = 0 (the purge journal may hold JOURNAL_BUS_SEQ records from now on). */
int mig_0005_bus_seq_up(MDB_txn *txn);

#endif

/*
 * migrations/0002_purge_journal.c — schema version 2: purges are journaled.
 *
 * From version 2 on, a purge is acknowledged once its record is synced in the purge
 * journal (<data dir>/journal.mdb, storage/journal_int.h) and its deletes are committed
 * here without a sync of this environment; `meta` carries "journal_seq", the highest
 * journal record whose purge this environment holds. store_open applies the records
 * above it again. An older binary would ignore the journal and could bring back a
 * purged object after a power loss, which is why this is a schema step (a version 1
 * binary refuses a version 2 store) although it only adds one key.
 *
 * Runs inside the runner's single write transaction (migrations/mig.c).
 */
#include "migrations/mig_int.h"

#include <stdint.h>

int mig_0002_purge_journal_up(MDB_txn *txn)
{
    MDB_dbi meta;
    int rc = mdb_dbi_open(txn, MIG_DB_META, 0, &meta);
    if (rc != 0)
        return rc;
    uint8_t zero[8] = {0};
    MDB_val k = {sizeof(MIG_META_JOURNAL_SEQ) - 1, (void *)MIG_META_JOURNAL_SEQ};
    MDB_val v = {sizeof(zero), zero};
    rc = mdb_put(txn, meta, &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc;
}

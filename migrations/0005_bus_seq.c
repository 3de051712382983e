/*
 * migrations/0005_bus_seq.c — schema version 5: a node of a cluster records how far it has
 * applied the purge stream.
 *
 * Adds meta "bus_seq" (u64 LE, 0): the stream sequence up to which the cluster bus's purges
 * are applied (cluster/cluster.h). It is written in the transaction that applies them, and
 * the purge journal carries it as a JOURNAL_BUS_SEQ record behind the purges it covers, so
 * that a crash never leaves it ahead of them. A version 4 binary would take such a record
 * for a damaged journal and refuse to open the store, which is why this is a schema step
 * (it refuses a version 5 store with a clear message instead).
 *
 * Runs inside the runner's single write transaction (migrations/mig.c).
 */
#include "migrations/mig_int.h"

#include <stdint.h>

int mig_0005_bus_seq_up(MDB_txn *txn)
{
    MDB_dbi meta;
    int rc = mdb_dbi_open(txn, MIG_DB_META, 0, &meta);
    if (rc != 0)
        return rc;
    uint8_t zero[8] = {0};
    MDB_val k = {sizeof(MIG_META_BUS_SEQ) - 1, (void *)MIG_META_BUS_SEQ};
    MDB_val v = {sizeof(zero), zero};
    rc = mdb_put(txn, meta, &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc;
}

/*
 * migrations/0001_initial.c — schema version 1: the databases of the first
 * store layout (see migrations/mig_int.h for their keys and values) and the
 * purge-all generation, which starts at 1.
 *
 * Runs inside the runner's single write transaction (migrations/mig.c) on the
 * thread that opens the store; it commits nothing itself, so a failure here
 * leaves the environment exactly as it was.
 */
#include "migrations/mig_int.h"

#include <stdint.h>

int mig_0001_initial_up(MDB_txn *txn)
{
    static const struct {
        const char *name;
        unsigned flags;
    } dbs[] = {
        {MIG_DB_META, 0},
        {MIG_DB_OBJECTS, 0},
        {MIG_DB_SKEYS, MIG_INDEX_DB_FLAGS},
        {MIG_DB_VARIANTS, MIG_INDEX_DB_FLAGS},
        {MIG_DB_EVICT, 0},
        {MIG_DB_CONFIG, 0},
        {MIG_DB_TOKENS, 0},
        {MIG_DB_STATS, 0},
    };
    MDB_dbi meta = 0;
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        MDB_dbi dbi;
        int rc = mdb_dbi_open(txn, dbs[i].name, dbs[i].flags | MDB_CREATE, &dbi);
        if (rc != 0)
            return rc;
        if (i == 0)
            meta = dbi;
    }

    uint8_t gen[8] = {1, 0, 0, 0, 0, 0, 0, 0}; /* u64 LE 1 */
    MDB_val k = {sizeof(MIG_META_GENERATION) - 1, (void *)MIG_META_GENERATION};
    MDB_val v = {sizeof(gen), gen};
    return mdb_put(txn, meta, &k, &v, 0);
}

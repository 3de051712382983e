/*
 * migrations/0003_journal_key.c — schema version 3: the purge journal's checksums are
 * keyed by a secret of the store.
 *
 * Adds meta "journal_key": 16 random bytes, the SipHash key of the purge journal's
 * segment checksums (storage/journal_int.h). Until version 3 that key was a constant,
 * so a surrogate key (client bytes, copied into the journal) could carry a well-formed
 * segment that a later open would replay. store_open rekeys the journal once it has
 * applied and synced what the old key protected, and records that in meta
 * "journal_keyed". A version 2 binary would check the checksums with the old key, find
 * no segment and lose the purges they hold after a crash, which is why this is a
 * schema step.
 *
 * Runs inside the runner's single write transaction (migrations/mig.c).
 */
#include "migrations/mig_int.h"

#include <sodium.h>
#include <stdint.h>

int mig_0003_journal_key_up(MDB_txn *txn)
{
    MDB_dbi meta;
    uint8_t key[MIG_JOURNAL_KEY_BYTES];
    if (sodium_init() < 0)
        return MDB_PANIC;
    int rc = mdb_dbi_open(txn, MIG_DB_META, 0, &meta);
    if (rc != 0)
        return rc;
    randombytes_buf(key, sizeof(key));
    MDB_val k = {sizeof(MIG_META_JOURNAL_KEY) - 1, (void *)MIG_META_JOURNAL_KEY};
    MDB_val v = {sizeof(key), key};
    rc = mdb_put(txn, meta, &k, &v, MDB_NOOVERWRITE);
    sodium_memzero(key, sizeof(key));
    return rc == MDB_KEYEXIST ? 0 : rc;
}

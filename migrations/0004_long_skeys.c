/*
 * migrations/0004_long_skeys.c — schema version 4: surrogate keys longer than an LMDB
 * key are indexed (by their hash).
 *
 * Until version 4 the skeys index skipped every key over LMDB's 511-byte key limit, so
 * the objects such keys tagged could not be purged by them, although the admin API took
 * keys of up to 1,024 bytes and answered ok. From version 4 on each key is indexed under
 * its index key (storage/object.h: the key itself up to 511 bytes, else NUL + its
 * BLAKE2b-256). Keys of 511 bytes or less keep the entries they have; this step adds the
 * entries of the longer keys of the objects already stored, so that a purge by such a
 * key also reaches what an older version cached. It reads each record's surrogate-key
 * field only (obj_record_skeys: the first bytes of the record, no checksum): a record
 * that is not well formed is skipped, and an entry for a record that turns out corrupt
 * is harmless (the store's readers check, its writers clean up). A version 3 binary
 * would leave the hashed entries behind when it replaces an object, which is why this
 * is a schema step.
 *
 * Runs inside the runner's single write transaction (migrations/mig.c); its cost is
 * one read of the start of every record, once.
 */
#include "migrations/mig_int.h"

#include <stdint.h>
#include "storage/object.h"

int mig_0004_long_skeys_up(MDB_txn *txn)
{
    MDB_dbi objects, skeys;
    MDB_cursor *c;
    int rc = mdb_dbi_open(txn, MIG_DB_OBJECTS, 0, &objects);
    if (rc == 0)
        rc = mdb_dbi_open(txn, MIG_DB_SKEYS, MIG_INDEX_DB_FLAGS, &skeys);
    if (rc != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, objects, &c)) != 0)
        return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const char *list;
        size_t list_len, pos = 0, tok_len;
        if (k.mv_size != CACHE_HASH_LEN || obj_record_skeys(v.mv_data, v.mv_size, &list, &list_len) != 0)
            continue;
        for (const char *tok; (tok = obj_skeys_next(list, list_len, &pos, &tok_len)) != NULL;) {
            uint8_t ikey[OBJ_SKEY_INDEX_KEY_MAX];
            size_t ilen = obj_skey_index_key(tok, tok_len, ikey);
            if (ilen != OBJ_SKEY_HASHED_LEN || ikey[0] != 0)
                continue; /* indexed as itself already */
            MDB_val ik = {ilen, ikey}, hv = {CACHE_HASH_LEN, k.mv_data};
            int prc = mdb_put(txn, skeys, &ik, &hv, MDB_NODUPDATA);
            if (prc != 0 && prc != MDB_KEYEXIST) {
                mdb_cursor_close(c);
                return prc;
            }
        }
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

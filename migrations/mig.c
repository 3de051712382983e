/*
 * migrations/mig.c — the schema migration runner and the table of built-in steps.
 *
 * The schema version is a u32 LE under "schema_version" in the `meta` database;
 * an environment without it (or without `meta`) is version 0. mig_run opens one
 * write transaction, reads the version, refuses a newer one, applies every step
 * above it in order, records the new version and commits (then syncs, since the
 * store runs with MDB_NOSYNC). Any failure aborts the transaction: a store is
 * either fully at the old version or fully at the new one, never in between, and
 * a refused store is left byte-for-byte untouched (nothing is written).
 *
 * Invariants: a step table is ordered, its versions consecutive from 1; each
 * step's `up` only works inside the transaction it is given and never commits.
 *
 * Threads: called by store_open (and tests) before any other thread uses the
 * environment; mdb_dbi_open must not race with other transactions of the process.
 */
#include "migrations/mig.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "common/errbuf.h"
#include "migrations/mig_int.h"

/* one step a line */
/* clang-format off */
static const mig_step_t mig_steps[] = {
    {1, "initial", mig_0001_initial_up},
    {2, "purge_journal", mig_0002_purge_journal_up},
    {3, "journal_key", mig_0003_journal_key_up},
    {4, "long_skeys", mig_0004_long_skeys_up},
    {5, "bus_seq", mig_0005_bus_seq_up},
};
/* clang-format on */

const mig_step_t *mig_builtin(size_t *count)
{
    *count = sizeof(mig_steps) / sizeof(mig_steps[0]);
    return mig_steps;
}

unsigned mig_latest(void)
{
    return mig_steps[sizeof(mig_steps) / sizeof(mig_steps[0]) - 1].version;
}

/* A step may return an LMDB code, an errno or its own negative code. */
static const char *mig_errstr(int rc, char *buf, size_t len)
{
    if (rc > 0 || (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE))
        return mdb_strerror(rc);
    snprintf(buf, len, "error %d", rc);
    return buf;
}

/* Read the version inside txn. `meta` absent or key absent: 0. A malformed value is MIG_EFAIL. */
static int mig_read_version(MDB_txn *txn, MDB_dbi meta, int have_meta, unsigned *version)
{
    *version = 0;
    if (!have_meta)
        return 0;
    MDB_val k = {sizeof(MIG_META_SCHEMA_VERSION) - 1, (void *)MIG_META_SCHEMA_VERSION}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (v.mv_size != 4)
        return MIG_EFAIL;
    const uint8_t *p = v.mv_data;
    *version = (unsigned)p[0] | (unsigned)p[1] << 8 | (unsigned)p[2] << 16 | (unsigned)p[3] << 24;
    return 0;
}

int mig_current_version(MDB_env *env, unsigned *version)
{
    MDB_txn *txn;
    MDB_dbi meta;
    *version = 0;
    int rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_dbi_open(txn, MIG_DB_META, 0, &meta);
    if (rc == MDB_NOTFOUND) {
        rc = 0; /* fresh environment */
    } else if (rc == 0) {
        rc = mig_read_version(txn, meta, 1, version);
    }
    mdb_txn_abort(txn);
    return rc;
}

int mig_run(MDB_env *env, const mig_step_t *steps, size_t count, unsigned *from, unsigned *to, char *errbuf, size_t errlen)
{
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    unsigned cur = 0, last = count ? steps[count - 1].version : 0;
    int rc;

    if (from != NULL)
        *from = 0;
    for (size_t i = 0; i < count; i++) {
        if (steps[i].version != i + 1 || steps[i].up == NULL) {
            errbuf_printf(errbuf, errlen, "migration table is invalid at entry %zu (version %u, expected %zu)", i,
                          steps[i].version, i + 1);
            rc = MIG_EFAIL;
            goto fail;
        }
    }

    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0) {
        errbuf_printf(errbuf, errlen, "cannot begin migration transaction: %s", mdb_strerror(rc));
        rc = MIG_EFAIL;
        goto fail;
    }
    /* Open `meta` without creating it first: a refused store must not be written. */
    rc = mdb_dbi_open(txn, MIG_DB_META, 0, &meta);
    int have_meta = rc == 0;
    if (rc != 0 && rc != MDB_NOTFOUND) {
        errbuf_printf(errbuf, errlen, "cannot open the meta database: %s", mdb_strerror(rc));
        rc = MIG_EFAIL;
        goto fail;
    }
    if ((rc = mig_read_version(txn, meta, have_meta, &cur)) != 0) {
        if (rc == MIG_EFAIL)
            errbuf_printf(errbuf, errlen, "stored schema_version is malformed (not a u32)");
        else
            errbuf_printf(errbuf, errlen, "cannot read schema_version: %s", mdb_strerror(rc));
        rc = MIG_EFAIL;
        goto fail;
    }
    if (from != NULL)
        *from = cur;
    if (cur > last) {
        errbuf_printf(errbuf, errlen, "store schema version %u is newer than this binary's latest schema version %u", cur, last);
        rc = MIG_ENEWER;
        goto fail;
    }
    if (cur == last) {
        mdb_txn_abort(txn); /* nothing to do; write nothing */
        if (to != NULL)
            *to = cur;
        return 0;
    }

    for (size_t i = cur; i < count; i++) {
        rc = steps[i].up(txn);
        if (rc != 0) {
            char ebuf[32];
            errbuf_printf(errbuf, errlen, "migration %u (%s) failed: %s", steps[i].version, steps[i].name,
                          mig_errstr(rc, ebuf, sizeof(ebuf)));
            rc = MIG_EFAIL;
            goto fail;
        }
    }

    if (!have_meta && (rc = mdb_dbi_open(txn, MIG_DB_META, MDB_CREATE, &meta)) != 0) {
        errbuf_printf(errbuf, errlen, "cannot create the meta database: %s", mdb_strerror(rc));
        rc = MIG_EFAIL;
        goto fail;
    }
    uint8_t vbuf[4] = {(uint8_t)last, (uint8_t)(last >> 8), (uint8_t)(last >> 16), (uint8_t)(last >> 24)};
    MDB_val k = {sizeof(MIG_META_SCHEMA_VERSION) - 1, (void *)MIG_META_SCHEMA_VERSION};
    MDB_val v = {sizeof(vbuf), vbuf};
    if ((rc = mdb_put(txn, meta, &k, &v, 0)) != 0) {
        errbuf_printf(errbuf, errlen, "cannot record schema version %u: %s", last, mdb_strerror(rc));
        rc = MIG_EFAIL;
        goto fail;
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0) {
        errbuf_printf(errbuf, errlen, "cannot commit migrations %u..%u: %s", cur + 1, last, mdb_strerror(rc));
        rc = MIG_EFAIL;
        goto fail;
    }
    if ((rc = mdb_env_sync(env, 1)) != 0) {
        errbuf_printf(errbuf, errlen, "cannot sync after migrating to %u: %s", last, mdb_strerror(rc));
        rc = MIG_EFAIL;
        goto fail;
    }
    if (to != NULL)
        *to = last;
    return 0;

fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (to != NULL)
        *to = cur;
    return rc;
}

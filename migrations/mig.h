/*
 * migrations/mig.h — numbered, ordered LMDB schema migrations.
 *
 * The schema version lives in the `meta` database under "schema_version"
 * (u32 little endian). mig_run applies every migration newer than the stored
 * version, in order, each inside the one write transaction it is given, and
 * refuses (MIG_ENEWER) a store written by a newer schema without touching it.
 */
#ifndef EDGECACHE_MIG_H
#define EDGECACHE_MIG_H

#include <lmdb.h>

#define MIG_ENEWER (-30970) /* store schema is newer than this binary knows */
#define MIG_EFAIL (-30971)  /* a migration step failed (message in errbuf) */

typedef struct mig_step {
    unsigned version; /* 1, 2, 3, ... consecutive */
    const char *name;
    /** Apply the step inside txn. Return 0 or an LMDB/negative error. */
    int (*up)(MDB_txn *txn);
} mig_step_t;

/** The migrations this binary ships (borrowed, static). */
const mig_step_t *mig_builtin(size_t *count);

/** Version of the last built-in migration. */
unsigned mig_latest(void);

/**
 * Bring the environment up to the last step of `steps` (pass mig_builtin()). Runs in one
 * write transaction; on any error nothing is changed. Returns 0, MIG_ENEWER or MIG_EFAIL.
 * *from / *to (may be NULL) receive the versions before and after.
 */
int mig_run(MDB_env *env, const mig_step_t *steps, size_t count, unsigned *from, unsigned *to, char *errbuf, size_t errlen);

/** Read the stored schema version (0 for a fresh environment). Returns 0 or an LMDB error. */
int mig_current_version(MDB_env *env, unsigned *version);

#endif

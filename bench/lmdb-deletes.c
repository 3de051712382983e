/*
 * bench/lmdb-deletes.c — what one deleted object costs LMDB, by transaction size.
 *
 * A purge storm on edgecache deletes objects in no particular order. Each delete
 * touches one leaf page in each of the store's tables (objects, skeys, evict); LMDB
 * copies every page a transaction dirties and writes it at commit. How many of those
 * pages one transaction shares between its deletes decides the writer thread's CPU
 * and the bytes it hands the kernel. This program measures that alone, with the
 * store's table shapes (16-byte hash keys, a 300-byte record, a dupsort key index, a
 * 24-byte eviction key) and no server around it:
 *
 *   usage: lmdb-deletes DIR [OBJECTS [TXN_SIZE...]]
 *
 * For each transaction size it fills a new environment in DIR/<size> with OBJECTS
 * objects (default 100,000), syncs it, then deletes 96% of them in a shuffled order,
 * committing every TXN_SIZE deletes (defaults 16 64 256 1024 4096), as edgecache's
 * writer does (MDB_NOSYNC, commits not synced). It prints microseconds per delete and
 * the bytes written per delete (wchar of /proc/self/io), then removes the environment.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_BYTES 300

static long long written_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    long long v = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "wchar:", 6) == 0)
            v = atoll(line + 6);
    fclose(f);
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* the keys of object i: its hash, its surrogate key "k<i>", its eviction key (time, hash) */
typedef struct keys {
    uint8_t hash[16], evict[24];
    char skey[16];
    size_t skey_len;
} keys_t;

static void keys_of(uint32_t i, keys_t *k)
{
    uint32_t x = i * 2654435761u + 1;
    for (int j = 0; j < 16; j++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        k->hash[j] = (uint8_t)x;
    }
    memset(k->evict, 0, 8);
    k->evict[4] = (uint8_t)(i >> 24), k->evict[5] = (uint8_t)(i >> 16);
    k->evict[6] = (uint8_t)(i >> 8), k->evict[7] = (uint8_t)i;
    memcpy(k->evict + 8, k->hash, 16);
    k->skey_len = (size_t)snprintf(k->skey, sizeof(k->skey), "k%u", (unsigned)i);
}

static int check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "lmdb-deletes: %s: %s\n", what, mdb_strerror(rc));
        exit(1);
    }
    return rc;
}

static void run(const char *dir, uint32_t objects, uint32_t txn_size)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%u", dir, (unsigned)txn_size);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "lmdb-deletes: mkdir %s: %s\n", path, strerror(errno));
        exit(1);
    }
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi objs, skeys, evict;
    check(mdb_env_create(&env), "mdb_env_create");
    mdb_env_set_maxdbs(env, 8);
    check(mdb_env_set_mapsize(env, (size_t)2 << 30), "mdb_env_set_mapsize");
    check(mdb_env_open(env, path, MDB_NOSYNC, 0644), "mdb_env_open");
    check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
    check(mdb_dbi_open(txn, "objects", MDB_CREATE, &objs), "mdb_dbi_open");
    check(mdb_dbi_open(txn, "skeys", MDB_CREATE | MDB_DUPSORT, &skeys), "mdb_dbi_open");
    check(mdb_dbi_open(txn, "evict", MDB_CREATE, &evict), "mdb_dbi_open");

    static char record[RECORD_BYTES];
    memset(record, 'x', sizeof(record));
    for (uint32_t i = 0; i < objects; i++) { /* filled as the store is: small transactions */
        keys_t k;
        keys_of(i, &k);
        MDB_val h = {16, k.hash}, rec = {sizeof(record), record}, sk = {k.skey_len, k.skey};
        MDB_val ek = {24, k.evict}, none = {0, ""};
        check(mdb_put(txn, objs, &h, &rec, 0), "mdb_put");
        check(mdb_put(txn, skeys, &sk, &h, 0), "mdb_put");
        check(mdb_put(txn, evict, &ek, &none, 0), "mdb_put");
        if (i % 100 == 99) {
            check(mdb_txn_commit(txn), "mdb_txn_commit");
            check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
        }
    }
    check(mdb_txn_commit(txn), "mdb_txn_commit");
    check(mdb_env_sync(env, 1), "mdb_env_sync");

    uint32_t *order = malloc(objects * sizeof(*order));
    if (order == NULL)
        abort();
    for (uint32_t i = 0; i < objects; i++)
        order[i] = i;
    uint64_t r = 7;
    for (uint32_t i = objects - 1; i > 0; i--) { /* a fixed shuffle, the same for every size */
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t j = (uint32_t)((r >> 33) % (i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint32_t deletes = objects / 100 * 96;
    long long w0 = written_bytes();
    double t0 = now_s();
    check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
    for (uint32_t n = 0; n < deletes; n++) {
        keys_t k;
        keys_of(order[n], &k);
        MDB_val h = {16, k.hash}, rec, sk = {k.skey_len, k.skey}, ek = {24, k.evict};
        check(mdb_get(txn, objs, &h, &rec), "mdb_get"); /* the store reads the record for its keys */
        check(mdb_del(txn, skeys, &sk, &h), "mdb_del");
        check(mdb_del(txn, evict, &ek, NULL), "mdb_del");
        check(mdb_del(txn, objs, &h, NULL), "mdb_del");
        if (n % txn_size == txn_size - 1) {
            check(mdb_txn_commit(txn), "mdb_txn_commit");
            check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
        }
    }
    check(mdb_txn_commit(txn), "mdb_txn_commit");
    double secs = now_s() - t0;
    long long w = written_bytes() - w0;
    printf("%6u deletes per transaction: %5.1f us per delete, %5.1f KB written per delete (%.0f deletes/s)\n",
           (unsigned)txn_size, secs * 1e6 / deletes, w0 < 0 ? -1.0 : (double)w / 1024 / deletes, deletes / secs);
    free(order);
    mdb_env_close(env);
    snprintf(path, sizeof(path), "%s/%u/data.mdb", dir, (unsigned)txn_size);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%u/lock.mdb", dir, (unsigned)txn_size);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%u", dir, (unsigned)txn_size);
    rmdir(path);
}

int main(int argc, char **argv)
{
    static const uint32_t default_sizes[] = {16, 64, 256, 1024, 4096};
    if (argc < 2) {
        fprintf(stderr, "usage: lmdb-deletes DIR [OBJECTS [TXN_SIZE...]]\n");
        return 2;
    }
    uint32_t objects = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 100000;
    if (objects < 1000 || objects > 10000000) {
        fprintf(stderr, "lmdb-deletes: OBJECTS must be 1000 to 10000000\n");
        return 2;
    }
    printf("%u objects, %u deleted in a shuffled order; environment in %s\n", (unsigned)objects,
           (unsigned)(objects / 100 * 96), argv[1]);
    if (argc > 3) {
        for (int i = 3; i < argc; i++) {
            unsigned long n = strtoul(argv[i], NULL, 10);
            if (n < 1 || n > 1000000) {
                fprintf(stderr, "lmdb-deletes: TXN_SIZE must be 1 to 1000000\n");
                return 2;
            }
            run(argv[1], objects, (uint32_t)n);
        }
    } else {
        for (size_t i = 0; i < sizeof(default_sizes) / sizeof(default_sizes[0]); i++)
            run(argv[1], objects, default_sizes[i]);
    }
    return 0;
}

/*
 * storage/store_check.h — is the store's data file sound enough to map?
 *
 * LMDB maps data.mdb and follows page numbers it finds there without checking them
 * against the file: a truncated file gives SIGBUS and a page of garbage gives SIGSEGV,
 * in whichever thread touches it first. So nothing maps a data file before it passes:
 *
 *   1. the meta check (every open, cheap: two preads): both meta pages are LMDB meta
 *      pages of a version and page size this build reads, their numbers are in range,
 *      and the file holds every page the newest one says is used (pages past the end
 *      of the file must all be listed free, which is read with pread too);
 *   2. the tree check, in a child process, after an unclean shutdown (the state file
 *      below says so) and for `edgecache check`: the child maps the file, walks every
 *      named database and every record with cursors and checks that each record lies
 *      inside the file; with `full` it also reads every value and runs the validating
 *      record decoder on each object. A SIGBUS or SIGSEGV kills only the child; the
 *      parent refuses the store.
 *
 * The state file <dir>/store.state says whether the last process that had the store
 * open read-write closed it ("clean") or not ("open"), and carries a flock: every
 * process holds it shared while the store is open, the first one takes it exclusive
 * while it checks, so a second process (the token CLI beside a running server) does
 * not walk a store that a live process is using, and a closing process writes "clean"
 * only when it is the last one.
 *
 * Files are created 0600 and the directory 0700 (data.mdb holds token hashes and the
 * purge journal's key): see store_check_secure_dir. The checks are in store_check.c,
 * the state file and the modes in store_state.c.
 *
 * Threads: called by store_open/store_close (and the CLI) on the calling thread; it
 * forks, so call it before starting threads that hold locks a child would need (glibc's
 * malloc is safe across fork; the child calls only LMDB and the decoder).
 */
#ifndef EDGECACHE_STORE_CHECK_H
#define EDGECACHE_STORE_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* errors: negative, outside errno's range (store.h: -30950..) */
#define STORE_CHECK_EDAMAGED (-30970) /* the data file is not sound: refuse it */
#define STORE_CHECK_EIO (-30971)      /* could not look (I/O error, fork failed): not a verdict */

#define STORE_CHECK_STATE_FILE "store.state"

/* What the meta check learned from the newest meta page (LMDB 0.9 on-disk format, 64-bit). */
typedef struct store_check_meta {
    uint32_t psize;      /* page size */
    uint64_t last_pg;    /* last page number in use */
    uint64_t txnid;      /* the transaction that wrote it */
    uint64_t mapsize;    /* map size recorded in the file */
    uint64_t free_root;  /* root of the free-page database (UINT64_MAX: empty) */
    uint64_t main_root;  /* root of the main database (UINT64_MAX: empty) */
    uint16_t free_depth; /* depth of the free-page tree */
    int newest;          /* 0 or 1: which meta page it is */
} store_check_meta_t;

/**
 * Validate LMDB's two meta pages. A pure function of its input: `head` holds the first
 * `head_len` bytes of the data file (pass at least 2 * 32768 + 4096 when the file is that
 * long: the second meta page sits at the page size), `file_size` is the file's size.
 * Checks both pages (type, page number, magic, version, page size, last page, tree roots
 * and depths), that they agree (transaction ids at most one apart, the older using no
 * more pages than the newer), and the file size against the newest: a multiple of the
 * page size, and holding both roots. Pages between the end of the file and last_pg are NOT checked here
 * (out->last_pg tells the caller to look; see store_check_file).
 * Returns 0 and fills *out, or STORE_CHECK_EDAMAGED with a one-line reason in errbuf.
 */
int store_check_meta(const uint8_t *head, size_t head_len, uint64_t file_size, store_check_meta_t *out, char *errbuf,
                     size_t errlen);

/**
 * The meta check of <dir>/data.mdb with pread only (nothing is mapped): store_check_meta,
 * then, when the file ends before last_pg, a walk of the free-page tree (pread) proving
 * that every page past the end is free (LMDB may allocate pages at the end and free them
 * in the same transaction without writing them).
 * Returns 1 when there is no data.mdb (or an empty one left by an interrupted creation
 * that `allow_empty` accepts), 0 when it passed (*out filled when out != NULL),
 * STORE_CHECK_EDAMAGED or STORE_CHECK_EIO with a one-line message in errbuf.
 */
int store_check_file(const char *dir, int allow_empty, store_check_meta_t *out, char *errbuf, size_t errlen);

/* What the tree check found (for `edgecache check`). */
typedef struct store_check_report {
    uint64_t databases;   /* named databases walked */
    uint64_t records;     /* records (duplicates counted) in them */
    uint64_t objects;     /* records in `objects` */
    uint64_t decoded;     /* object records that passed the decoder (full check) */
    uint64_t value_bytes; /* bytes of values read (full check) */
} store_check_report_t;

/**
 * The tree check of <dir>, in a child process (see the top of this file). Run it only
 * after store_check_file passed. `full`: also read every value and decode every object
 * record (reads the whole file). `log`: when not NULL, the child's per-database lines
 * are copied there. Returns 0 (sound; *rep filled when not NULL), STORE_CHECK_EDAMAGED
 * (the child found damage or died of a signal) or STORE_CHECK_EIO, with a one-line
 * message in errbuf.
 */
int store_check_tree(const char *dir, int full, FILE *log, store_check_report_t *rep, char *errbuf, size_t errlen);

/**
 * Create <dir> 0700 when missing (parents like mkdir -p, 0755), and make the store's
 * existing files (data.mdb, lock.mdb, journal.log, store.state) 0600 when they allow more.
 * A directory that exists and is open to the group or others is left as it is (it may
 * be shared or managed by someone else) with a warning on stderr: the files in it are
 * 0600 anyway. Returns 0 or -errno (message in errbuf).
 */
int store_check_secure_dir(const char *dir, char *errbuf, size_t errlen);

/* An opener's hold on the state file (storage/store_state.c). */
typedef struct store_state {
    int fd;         /* the state file, flock'd shared; -1: none (could not open it) */
    int first;      /* nobody else had the store open when this opener came */
    int read_write; /* this opener may write the store (and the state) */
} store_state_t;

/**
 * At open, before LMDB maps anything: take the state file's lock, run the meta check
 * and, when this process is the only one and the state is not "clean", the tree check;
 * a read-write opener then marks the state "open". *st receives the hold (fd -1 if the
 * file could not be opened: then the tree check runs whenever a data file exists).
 * Returns 0, STORE_CHECK_EDAMAGED or STORE_CHECK_EIO with a one-line message in errbuf.
 * On error st->fd is -1 and nothing is held.
 */
int store_check_at_open(const char *dir, int read_write, store_state_t *st, char *errbuf, size_t errlen);

/**
 * After LMDB opened the environment: a store this process just created goes from "new"
 * (an empty data.mdb is an interrupted creation, not damage) to "open".
 */
void store_check_opened(store_state_t *st);

/**
 * At close, after LMDB is closed: with `clean` (everything synced), a read-write opener
 * that was first in and is the last one out marks the state "clean" (one that came while
 * another held it never does: that other may have died uncleanly meanwhile). The lock
 * is released and st->fd set to -1.
 */
void store_check_at_close(store_state_t *st, int clean);

#endif

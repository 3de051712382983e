/*
 * storage/store_state.c — what store_open does around LMDB's open: the state file that
 * says whether the store was closed cleanly (and so whether the tree check runs), and
 * the modes of the store's files (storage/store_check.h says why and how).
 *
 * The state file <dir>/store.state holds one word: "new" (LMDB is creating data.mdb;
 * an empty one is then an interrupted creation, not a truncation), "open" (a read-write
 * process has it open, or died with it open), "clean" (the last one closed it after a
 * sync), "damaged" (the last opener refused it). Its flock: shared while a process has
 * the store open; exclusive for the first one in while it checks and for the last one
 * out while it writes "clean". Every write is one pwrite at 0, a truncate and an
 * fdatasync; anything unreadable counts as not clean.
 *
 * Threads: the caller's (store_open, store_close, the CLI).
 */
#include "storage/store_check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/errbuf.h"
#include "common/path.h"

/* ---- file modes ---- */

int store_check_secure_dir(const char *dir, char *errbuf, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        int err = errno;
        errbuf_printf(errbuf, errlen, "%s: %s", dir, strerror(err));
        return -err;
    }
    if (!S_ISDIR(st.st_mode)) {
        errbuf_printf(errbuf, errlen, "%s is not a directory", dir);
        return -ENOTDIR;
    }
    if (st.st_mode & 077)
        fprintf(stderr,
                "edgecache: warning: data directory %s is open to %s (mode %03o); its files are private (0600), "
                "but consider chmod 700\n",
                dir, (st.st_mode & 007) ? "all users" : "its group", (unsigned)(st.st_mode & 0777));
    static const char *const files[] = {"data.mdb", "lock.mdb", "journal.log", STORE_CHECK_STATE_FILE};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *path = path_join(dir, files[i], "store state");
        /* lstat: never follow a link someone put there to a file we would then chmod */
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) && chmod(path, st.st_mode & 0700) != 0)
            fprintf(stderr, "edgecache: warning: cannot make %s private: %s\n", path, strerror(errno));
        free(path);
    }
    return 0;
}

/* ---- the state file ---- */

static const char chk_state_open[] = "open\n";
static const char chk_state_clean[] = "clean\n";
static const char chk_state_damaged[] = "damaged\n";
static const char chk_state_new[] = "new\n";

static void chk_state_read(int fd, char *buf, size_t cap)
{
    ssize_t r = pread(fd, buf, cap - 1, 0);
    buf[r > 0 ? r : 0] = '\0';
}

static void chk_state_write(int fd, const char *state)
{
    size_t len = strlen(state);
    /* one write at 0 and a truncate: a torn write reads as neither "clean" nor anything else we trust */
    if (pwrite(fd, state, len, 0) != (ssize_t)len || ftruncate(fd, (off_t)len) != 0 || fdatasync(fd) != 0)
        fprintf(stderr, "edgecache: warning: cannot write the store's state file: %s\n", strerror(errno));
}

int store_check_at_open(const char *dir, int read_write, store_state_t *st, char *errbuf, size_t errlen)
{
    char *path = path_join(dir, STORE_CHECK_STATE_FILE, "store state");
    char state[32] = "";
    int first = 1, rc;
    st->fd = -1;
    st->first = 0;
    st->read_write = read_write;
    int fd = open(path, (read_write ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd >= 0) {
        /* the first process in takes it exclusive while it checks; the others wait for it */
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            first = 0;
            while (flock(fd, LOCK_SH) != 0 && errno == EINTR)
                ;
        }
        chk_state_read(fd, state, sizeof(state));
    }
    if (!first && strcmp(state, chk_state_damaged) == 0) {
        /* the process we waited for refused it */
        errbuf_printf(errbuf, errlen, "the store was found damaged by the process that opened it before");
        close(fd);
        return STORE_CHECK_EDAMAGED;
    }
    /* an empty data.mdb is ours only when our own creation was interrupted ("new") */
    int allow_empty = strcmp(state, chk_state_new) == 0;
    char why[768];
    rc = store_check_file(dir, allow_empty, NULL, why, sizeof(why));
    int creating = rc == 1, walked = 0;
    if (creating) {
        rc = 0;
    } else if (rc == 0 && first && strcmp(state, chk_state_clean) != 0) {
        /* nobody else has it open and it was not closed cleanly: walk it before we map it */
        rc = store_check_tree(dir, 0, NULL, NULL, why, sizeof(why));
        walked = 1;
    }
    if (rc != 0) {
        errbuf_printf(errbuf, errlen, "%s%s",
                      walked && rc == STORE_CHECK_EDAMAGED ? "data.mdb is damaged (checked after an unclean shutdown): " : "",
                      why);
        if (rc == STORE_CHECK_EDAMAGED && first && read_write && fd >= 0)
            chk_state_write(fd, chk_state_damaged);
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (first && read_write && fd >= 0)
        chk_state_write(fd, creating ? chk_state_new : chk_state_open); /* "new": LMDB creates it next */
    if (fd >= 0 && first)
        flock(fd, LOCK_SH); /* keep holding it while the store is open */
    st->fd = fd;
    st->first = first;
    return 0;
}

void store_check_opened(store_state_t *st)
{
    char state[32];
    if (st->fd < 0 || !st->read_write || !st->first)
        return;
    chk_state_read(st->fd, state, sizeof(state));
    if (strcmp(state, chk_state_new) == 0)
        chk_state_write(st->fd, chk_state_open);
}

void store_check_at_close(store_state_t *st, int clean)
{
    int fd = st->fd;
    st->fd = -1;
    if (fd < 0)
        return;
    /* the last process out says it was clean, if it was also the first in; while others
     * hold it, it stays "open" */
    if (clean && st->read_write && st->first && flock(fd, LOCK_EX | LOCK_NB) == 0)
        chk_state_write(fd, chk_state_clean);
    close(fd);
}

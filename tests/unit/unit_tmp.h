/*
 * tests/unit/unit_tmp.h — temporary directories for the unit suites that use the disk.
 * main() makes one base directory, /tmp/ec-<suite>-XXXXXX, before the suite runs and
 * removes it after, so that what a failed test (check forks each one) left behind goes
 * too; each test works in its own directory under it (tmpdir_new / tmpdir_free).
 * Header-only: static functions, one copy per suite.
 */
#ifndef EDGECACHE_UNIT_TMP_H
#define EDGECACHE_UNIT_TMP_H

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

static char unit_tmp_base[64];

static inline int unit_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove dir and everything below it. */
static inline void unit_rm_tree(const char *dir)
{
    nftw(dir, unit_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Make the base /tmp/ec-<suite>-XXXXXX. Returns 0, or -1 after saying why on stderr. */
static inline int unit_tmp_base_make(const char *suite)
{
    snprintf(unit_tmp_base, sizeof(unit_tmp_base), "/tmp/ec-%.32s-XXXXXX", suite);
    if (mkdtemp(unit_tmp_base) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

/* A new directory under the base (malloc'd path; tmpdir_free removes and frees it). */
static inline char *tmpdir_new(void)
{
    char *dir = malloc(sizeof(unit_tmp_base) + 16);
    ck_assert_ptr_nonnull(dir);
    snprintf(dir, sizeof(unit_tmp_base) + 16, "%s/t-XXXXXX", unit_tmp_base);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static inline void tmpdir_free(char *dir)
{
    unit_rm_tree(dir);
    free(dir);
}

#endif

/*
 * tests/unit/unit_stats.h — what the stats suites (test_stats_history.c,
 * test_stats_export.c) share: a real store in a fresh /tmp/edgecache-stats-XXXXXX directory
 * (one at a time: close_store removes it), stats_init on it with two threads, and the
 * nftw callback that removes a tree.
 * Header-only: static inline functions, one copy per suite.
 */
#ifndef EDGECACHE_UNIT_STATS_H
#define EDGECACHE_UNIT_STATS_H

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include "server/stats.h"
#include "storage/store.h"

static char tmpdir[64];

static inline int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static inline store_t *open_store(void)
{
    store_t *s = NULL;
    char err[256];
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/edgecache-stats-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    store_options_t opt = {.dir = tmpdir, .map_size = 64u << 20};
    int rc = store_open(&s, &opt, err, sizeof(err));
    ck_assert_msg(rc == 0, "store_open: %d %s", rc, err);
    return s;
}

static inline void close_store(store_t **s)
{
    store_close(s);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void init_stats(config_t *cfg, store_t *store)
{
    char err[256];
    config_defaults(cfg);
    cfg->threads = 2;
    ck_assert_int_eq(stats_init(cfg, store, NULL, err, sizeof(err)), 0);
}

#endif

/*
 * tests/unit/test_store_space.c — the disk store's room on its file system
 * (storage/store_space.c): the pure budget arithmetic (slack, never below what the file
 * holds, all of the map when it fits), which write errors count as "no room", the three
 * modes on a real file (preallocation keeps the file's size and allocates its blocks),
 * a refused write cutting the budget and the budget growing back; and, through the
 * store, objects the disk has no room for: they stay in the memory tier and every kind
 * of purge (hard key purges answered early, soft purges, URL purges of a variant,
 * purge-all) still takes them out of it. And where the store maps its data file writable
 * (MDB_WRITEMAP: only with the whole map allocated, on ext4 or tmpfs): data written that
 * way and read back the other way, across closes, with evictions cycling the whole map.
 * The full-disk behaviour end to end (a real tmpfs) is tests/integration/test_full_disk.py.
 * Every test works in its own mkdtemp directory under /tmp; main() removes them all.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "common/now.h"
#include "storage/mem.h"
#include "storage/object.h"
#include "storage/store.h"
#include "storage/store_space_int.h"
#include "tests/unit/unit_tmp.h"

#define MiB ((uint64_t)1 << 20)
#define PSIZE 4096

/* ---- the pure budget ---- */

START_TEST(test_slack_bounds)
{
    ck_assert_uint_eq(store_space_slack(0), MiB); /* at least 1 MiB */
    ck_assert_uint_eq(store_space_slack(32 * MiB), MiB);
    ck_assert_uint_eq(store_space_slack(640 * MiB), 10 * MiB);          /* 1/64 */
    ck_assert_uint_eq(store_space_slack((uint64_t)1 << 40), 256 * MiB); /* at most 256 MiB */
}
END_TEST

START_TEST(test_budget_whole_map_when_it_fits)
{
    /* the map fits in what is free: all of it, even if that eats into the slack */
    ck_assert_uint_eq(store_space_budget(128 * MiB, 0, 128 * MiB, 1024 * MiB, PSIZE), 128 * MiB);
    ck_assert_uint_eq(store_space_budget(128 * MiB, 100 * MiB, 28 * MiB, 1024 * MiB, PSIZE), 128 * MiB);
    /* the file holds the whole map already */
    ck_assert_uint_eq(store_space_budget(128 * MiB, 128 * MiB, 0, 1024 * MiB, PSIZE), 128 * MiB);
    ck_assert_uint_eq(store_space_budget(128 * MiB, 200 * MiB, 0, 1024 * MiB, PSIZE), 128 * MiB);
}
END_TEST

START_TEST(test_budget_short_leaves_the_slack)
{
    /* 24 MiB free on a 32 MiB file system (slack 1 MiB), nothing held yet: 23 MiB */
    ck_assert_uint_eq(store_space_budget(128 * MiB, 0, 24 * MiB, 32 * MiB, PSIZE), 23 * MiB);
    /* what the file holds counts: 10 MiB held + 14 MiB free - 1 MiB */
    ck_assert_uint_eq(store_space_budget(128 * MiB, 10 * MiB, 14 * MiB, 32 * MiB, PSIZE), 23 * MiB);
    /* whole pages only */
    uint64_t b = store_space_budget(128 * MiB, 0, 24 * MiB + 1000, 32 * MiB, PSIZE);
    ck_assert_uint_eq(b % PSIZE, 0);
    ck_assert_uint_eq(b, 23 * MiB);
}
END_TEST

START_TEST(test_budget_never_below_what_the_file_holds)
{
    /* a full file system: the budget is the room the file has, not less */
    ck_assert_uint_eq(store_space_budget(128 * MiB, 20 * MiB, 0, 32 * MiB, PSIZE), 20 * MiB);
    ck_assert_uint_eq(store_space_budget(128 * MiB, 20 * MiB, MiB / 2, 32 * MiB, PSIZE), 20 * MiB);
    ck_assert_uint_eq(store_space_budget(128 * MiB, 0, 0, 32 * MiB, PSIZE), 0);
}
END_TEST

START_TEST(test_refused_errors)
{
    ck_assert(store_space_refused(ENOSPC, 100 * MiB, MiB));
    ck_assert(store_space_refused(EDQUOT, 100 * MiB, MiB));
    /* LMDB reports a short write as EIO: no room only if the file system is (nearly) full */
    ck_assert(store_space_refused(EIO, 0, MiB));
    ck_assert(!store_space_refused(EIO, 100 * MiB, MiB));
    ck_assert(!store_space_refused(MDB_MAP_FULL, 0, MiB)); /* the map's own limit: handled apart */
    ck_assert(!store_space_refused(MDB_CORRUPTED, 0, MiB));
    ck_assert(!store_space_refused(0, 0, MiB));
}
END_TEST

/* ---- the modes on a real file (under /tmp: a file system with room to spare) ---- */

static int make_file(const char *dir, size_t size)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    if (size > 0) {
        char *buf = calloc(1, size);
        ck_assert_int_eq(pwrite(fd, buf, size, 0), (ssize_t)size);
        free(buf);
    }
    return fd;
}

START_TEST(test_mode_map_is_the_map)
{
    store_space_t sp;
    store_space_open(&sp, STORE_SPACE_MAP, -1, 64 * MiB, PSIZE);
    ck_assert_uint_eq(store_space_budget_now(&sp), 64 * MiB);
    store_space_grow(&sp, 1 << 30);
    ck_assert_uint_eq(store_space_budget_now(&sp), 64 * MiB);
    ck_assert_uint_eq(sp.enospc, 0);
}
END_TEST

START_TEST(test_mode_preallocate_keeps_the_size)
{
    char *dir = tmpdir_new();
    int fd = make_file(dir, 3 * PSIZE);
    store_space_t sp;
    store_space_open(&sp, STORE_SPACE_PREALLOCATE, fd, 8 * MiB, PSIZE);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_size, 3 * PSIZE); /* LMDB (and the soundness checks) read the size: unchanged */
    if (sp.mode == STORE_SPACE_PREALLOCATE) {
        ck_assert_uint_ge((uint64_t)st.st_blocks * 512, 8 * MiB); /* the room is the file's */
        ck_assert_uint_eq(sp.reserved, 8 * MiB);
    } else {
        fprintf(stderr, "test_store_space: /tmp cannot preallocate; checked the fallback only\n");
        ck_assert_int_eq(sp.mode, STORE_SPACE_FREE);
    }
    ck_assert_uint_eq(store_space_budget_now(&sp), 8 * MiB);
    ck_assert_uint_eq(sp.enospc, 0);
    close(fd);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_full_cuts_and_grow_gives_back)
{
    char *dir = tmpdir_new();
    int fd = make_file(dir, 0);
    store_space_t sp;
    store_space_open(&sp, STORE_SPACE_FREE, fd, 8 * MiB, PSIZE);
    ck_assert_uint_eq(store_space_budget_now(&sp), 8 * MiB);

    /* an error that is not about room changes nothing (/tmp has room: EIO is an I/O error there) */
    ck_assert_int_eq(store_space_full(&sp, EIO, 2 * MiB, 1000), 0);
    ck_assert_int_eq(store_space_full(&sp, MDB_MAP_FULL, 2 * MiB, 1000), 0);
    ck_assert_uint_eq(store_space_budget_now(&sp), 8 * MiB);
    ck_assert_uint_eq(sp.enospc, 0);

    /* ENOSPC: cut to the data the file holds (whole pages), counted */
    ck_assert_int_eq(store_space_full(&sp, ENOSPC, 2 * MiB + 100, 1000), 1);
    ck_assert_uint_eq(store_space_budget_now(&sp), 2 * MiB);
    ck_assert_uint_ge(sp.enospc, 1);

    /* not before the retry time; then, the file system having room, the whole map again */
    store_space_grow(&sp, 1000 + STORE_SPACE_RETRY_MS - 1);
    ck_assert_uint_eq(store_space_budget_now(&sp), 2 * MiB);
    store_space_grow(&sp, 1000 + STORE_SPACE_RETRY_MS);
    ck_assert_uint_eq(store_space_budget_now(&sp), 8 * MiB);
    close(fd);
    tmpdir_free(dir);
}
END_TEST

/* ---- through the store: objects the disk has no room for ---- */

static cache_obj_t *make_obj(const char *key, const char *skeys, const char *vary, size_t body_len, uint64_t generation)
{
    obj_meta_t meta = {.status = 200, .generation = generation, .ttl = 300};
    meta.request_time_ms = meta.response_time_ms = now_wall_ms();
    obj_header_t hdr = {"content-type", 12, "text/plain", 10};
    obj_builder_t *b = obj_builder_begin(&meta, key, strlen(key), skeys, strlen(skeys), vary, strlen(vary), &hdr, 1, body_len);
    char buf[4096];
    memset(buf, 'x', sizeof(buf));
    for (size_t off = 0; off < body_len; off += sizeof(buf))
        obj_builder_append(b, buf, body_len - off < sizeof(buf) ? body_len - off : sizeof(buf));
    return obj_builder_finish(b);
}

typedef struct {
    int calls;
    store_purge_result_t last;
} purge_rec_t;

static void on_purge(void *arg, const store_purge_result_t *res)
{
    purge_rec_t *r = arg;
    r->calls++;
    r->last = *res;
}

#define MAP (2 * MiB)
#define TOO_BIG (MAP / 4) /* over map / 8: the disk never takes it */

typedef struct {
    char *dir;
    mem_tier_t *mem;
    store_t *s;
} fixture_t;

static void fixture_open(fixture_t *f)
{
    f->dir = tmpdir_new();
    f->mem = mem_create(64 * MiB, 0);
    store_options_t opt = {.dir = f->dir, .map_size = MAP, .mem = f->mem};
    char err[256];
    ck_assert_msg(store_open(&f->s, &opt, err, sizeof(err)) == 0, "store_open: %s", err);
}

static void fixture_close(fixture_t *f)
{
    store_close(&f->s);
    mem_destroy(&f->mem);
    tmpdir_free(f->dir);
}

/* put obj (in memory first, as the proxy does) and wait for the writer: the disk refuses it */
static void put_refused(fixture_t *f, cache_obj_t *obj)
{
    store_stats_t st0, st;
    store_get_stats(f->s, &st0);
    ck_assert_int_eq(mem_insert(f->mem, obj), 0);
    store_put(f->s, obj);
    ck_assert_int_eq(store_flush(f->s), 0);
    store_get_stats(f->s, &st);
    ck_assert_uint_eq(st.map_full_errors, st0.map_full_errors + 1);
    cache_obj_t *got = NULL;
    ck_assert_int_eq(store_get(f->s, obj->hash, obj->key, obj->key_len, &got), STORE_ENOTFOUND);
}

static int resident(fixture_t *f, const cache_obj_t *obj)
{
    cache_obj_t *got = mem_lookup(f->mem, obj->hash);
    int same = got == obj;
    obj_unref(&got);
    return same;
}

START_TEST(test_refused_put_stays_in_memory)
{
    fixture_t f;
    fixture_open(&f);
    cache_obj_t *a = make_obj("example.com/a", "ka", "", TOO_BIG, 1);
    put_refused(&f, a);
    ck_assert(resident(&f, a)); /* the disk's trouble does not empty the memory tier */
    store_stats_t st;
    store_get_stats(f.s, &st);
    ck_assert_uint_eq(st.memory_only, 1);
    obj_unref(&a);
    fixture_close(&f);
}
END_TEST

START_TEST(test_key_purge_finds_memory_only)
{
    fixture_t f;
    fixture_open(&f);
    cache_obj_t *a = make_obj("example.com/a", "shared ka", "", TOO_BIG, 1);
    cache_obj_t *b = make_obj("example.com/b", "kb", "", TOO_BIG, 1);
    put_refused(&f, a);
    put_refused(&f, b);
    /* a hard key purge is answered by the journal thread before its commit */
    purge_rec_t pr = {0};
    store_purge_surrogate_key(f.s, "shared", 6, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(f.s), 0);
    ck_assert_int_eq(pr.calls, 1);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert(!resident(&f, a));
    ck_assert(resident(&f, b)); /* not named */
    /* a soft purge is applied, and answered, by the writer */
    purge_rec_t soft = {0};
    store_purge_surrogate_key(f.s, "kb", 2, 1, on_purge, &soft);
    ck_assert_int_eq(store_flush(f.s), 0);
    ck_assert_int_eq(soft.last.err, 0);
    ck_assert(!resident(&f, b)); /* taken out: a miss, revalidated from the origin */
    store_stats_t st;
    store_get_stats(f.s, &st);
    ck_assert_uint_eq(st.memory_only, 0);
    obj_unref(&a);
    obj_unref(&b);
    fixture_close(&f);
}
END_TEST

START_TEST(test_url_purge_finds_memory_only_variant)
{
    fixture_t f;
    fixture_open(&f);
    /* a variant's hash is not the URL's: only the disk's variants index, or the list, finds it */
    cache_obj_t *v = make_obj("example.com/v", "", "accept-encoding: gzip", TOO_BIG, 1);
    uint8_t url[CACHE_HASH_LEN];
    obj_key_hash(v->key, v->key_len, url);
    ck_assert_mem_ne(url, v->hash, CACHE_HASH_LEN);
    put_refused(&f, v);
    ck_assert(resident(&f, v));
    purge_rec_t pr = {0};
    store_purge_key_url(f.s, "example.com/v", 13, 0, on_purge, &pr);
    ck_assert_int_eq(store_flush(f.s), 0);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert(!resident(&f, v));
    obj_unref(&v);
    fixture_close(&f);
}
END_TEST

START_TEST(test_purge_all_clears_memory_only)
{
    fixture_t f;
    fixture_open(&f);
    cache_obj_t *a = make_obj("example.com/a", "ka", "", TOO_BIG, 1);
    put_refused(&f, a);
    purge_rec_t pr = {0};
    store_purge_all(f.s, on_purge, &pr);
    ck_assert_int_eq(store_flush(f.s), 0);
    ck_assert_int_eq(pr.last.err, 0);
    ck_assert(!resident(&f, a));
    store_stats_t st;
    store_get_stats(f.s, &st);
    ck_assert_uint_eq(st.memory_only, 0);
    obj_unref(&a);
    fixture_close(&f);
}
END_TEST

/* ---- the writable map (store_open.c: store_writemap_ready) ---- */

#define WM_MAP (8 * MiB)
#define WM_BODY 4000

static store_t *wm_open(const char *dir, int space_mode, int read_only)
{
    store_options_t opt = {.dir = dir, .map_size = WM_MAP, .space_mode = space_mode, .read_only = read_only};
    char err[256];
    store_t *s = NULL;
    ck_assert_msg(store_open(&s, &opt, err, sizeof(err)) == 0, "store_open: %s", err);
    return s;
}

static int wm_mapped_writable(store_t *s)
{
    store_stats_t st;
    store_get_stats(s, &st);
    return st.writemap;
}

static void wm_put(store_t *s, int i)
{
    char key[32];
    snprintf(key, sizeof(key), "/wm/%d", i);
    cache_obj_t *obj = make_obj(key, "wm", "", WM_BODY, store_generation(s));
    ck_assert_int_eq(store_put(s, obj), 0);
    obj_unref(&obj);
}

/* objects first..last-1 are all on disk */
static void wm_check(store_t *s, int first, int last)
{
    for (int i = first; i < last; i++) {
        char key[32];
        snprintf(key, sizeof(key), "/wm/%d", i);
        uint8_t hash[CACHE_HASH_LEN];
        obj_key_hash(key, strlen(key), hash);
        cache_obj_t *got = NULL;
        ck_assert_msg(store_get(s, hash, key, strlen(key), &got) == 0, "%s is gone", key);
        ck_assert_uint_eq(got->body_len, WM_BODY);
        obj_unref(&got);
    }
}

/*
 * In a fresh directory under base: does the store there map its file writable exactly
 * when it should, and does what it writes either way read back the other way?
 */
static void wm_roundtrip(const char *base)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/wm-XXXXXX", base);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct statfs fs;
    struct statvfs vfs;
    ck_assert_int_eq(statfs(dir, &fs), 0);
    ck_assert_int_eq(statvfs(dir, &vfs), 0);
    /* the map, the journal (8 MiB at least) and the slack (1 MiB at least) must fit */
    int in_place = fs.f_type == EXT4_SUPER_MAGIC || fs.f_type == TMPFS_MAGIC;
    int want = in_place && (uint64_t)vfs.f_bavail * vfs.f_frsize >
                               WM_MAP + 8 * MiB + store_space_slack((uint64_t)vfs.f_blocks * vfs.f_frsize);
    if (!want)
        fprintf(stderr, "test_store_space: %s is not ext4 or tmpfs with room: checked that it stays read-only\n", base);

    store_t *s = wm_open(dir, STORE_SPACE_PREALLOCATE, 0);
    ck_assert_int_eq(wm_mapped_writable(s), want);
    char path[160];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    if (want) {
        ck_assert_uint_ge((uint64_t)st.st_blocks * 512, WM_MAP); /* every page LMDB may write is allocated */
        ck_assert_int_eq(st.st_size, WM_MAP);                    /* LMDB sized the file to the map */
    }
    for (int i = 0; i < 300; i++)
        wm_put(s, i);
    ck_assert_int_eq(store_flush(s), 0);
    store_close(&s);

    /* read-only map (no preallocation asked): reads what the writable one wrote, and writes */
    s = wm_open(dir, STORE_SPACE_FREE, 0);
    ck_assert_int_eq(wm_mapped_writable(s), 0);
    wm_check(s, 0, 300);
    for (int i = 300; i < 400; i++)
        wm_put(s, i);
    ck_assert_int_eq(store_flush(s), 0);
    store_close(&s);
    s = wm_open(dir, STORE_SPACE_PREALLOCATE, 1); /* a read-only open (CLI) never maps writable */
    ck_assert_int_eq(wm_mapped_writable(s), 0);
    wm_check(s, 0, 400);
    store_close(&s);

    /* writable again: everything is there, and 3x the map of new objects cycle the map through eviction */
    s = wm_open(dir, STORE_SPACE_PREALLOCATE, 0);
    ck_assert_int_eq(wm_mapped_writable(s), want);
    wm_check(s, 0, 400);
    int last = 400 + (int)(3 * WM_MAP / WM_BODY);
    for (int i = 400; i < last; i++) {
        wm_put(s, i);
        if (i % 200 == 0)
            ck_assert_int_eq(store_flush(s), 0);
    }
    ck_assert_int_eq(store_flush(s), 0);
    store_stats_t ss;
    store_get_stats(s, &ss);
    ck_assert_uint_gt(ss.evictions, 0);
    ck_assert_uint_le(ss.bytes_used, WM_MAP);
    wm_check(s, last - 100, last); /* the newest are kept */
    store_close(&s);
    s = wm_open(dir, STORE_SPACE_FREE, 0);
    wm_check(s, last - 100, last);
    store_close(&s);
    unit_rm_tree(dir);
}

START_TEST(test_writemap_on_tmp)
{
    wm_roundtrip(unit_tmp_base);
}
END_TEST

/* main() makes it when /dev/shm is a tmpfs, and removes it whatever a test left there */
static char shm_base[64];

START_TEST(test_writemap_on_shm)
{
    if (shm_base[0] == '\0') {
        fprintf(stderr, "test_store_space: no tmpfs at /dev/shm; the writable map is checked on /tmp only\n");
        return;
    }
    wm_roundtrip(shm_base);
}
END_TEST

START_TEST(test_writemap_not_in_map_mode)
{
    char *dir = tmpdir_new();
    store_t *s = wm_open(dir, STORE_SPACE_MAP, 0); /* the budget is the map: nothing allocated ahead */
    ck_assert_int_eq(wm_mapped_writable(s), 0);
    store_close(&s);
    tmpdir_free(dir);
}
END_TEST

static Suite *store_space_suite(void)
{
    Suite *s = suite_create("store_space");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_slack_bounds);
    tcase_add_test(tc, test_budget_whole_map_when_it_fits);
    tcase_add_test(tc, test_budget_short_leaves_the_slack);
    tcase_add_test(tc, test_budget_never_below_what_the_file_holds);
    tcase_add_test(tc, test_refused_errors);
    tcase_add_test(tc, test_mode_map_is_the_map);
    tcase_add_test(tc, test_mode_preallocate_keeps_the_size);
    tcase_add_test(tc, test_full_cuts_and_grow_gives_back);
    tcase_add_test(tc, test_refused_put_stays_in_memory);
    tcase_add_test(tc, test_key_purge_finds_memory_only);
    tcase_add_test(tc, test_url_purge_finds_memory_only_variant);
    tcase_add_test(tc, test_purge_all_clears_memory_only);
    tcase_add_test(tc, test_writemap_on_tmp);
    tcase_add_test(tc, test_writemap_on_shm);
    tcase_add_test(tc, test_writemap_not_in_map_mode);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("store_space") != 0)
        return 1;
    struct statfs fs;
    snprintf(shm_base, sizeof(shm_base), "/dev/shm/ec-store_space-XXXXXX");
    if (statfs("/dev/shm", &fs) != 0 || fs.f_type != TMPFS_MAGIC || mkdtemp(shm_base) == NULL)
        shm_base[0] = '\0';
    SRunner *sr = srunner_create(store_space_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    if (shm_base[0] != '\0')
        unit_rm_tree(shm_base);
    return failed == 0 ? 0 : 1;
}

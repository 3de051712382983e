/*
 * tests/unit/test_store_check.c — storage/store_check.h: the meta-page validator (a pure
 * function, fed real meta pages, every single-byte change of them and random bytes), the
 * file check against truncation, the tree check in a child against overwritten pages and
 * a branch page pointing back into the tree,
 * store_open refusing a damaged store (STORE_EDAMAGED, never a signal), the state file
 * (clean / open) and the files' modes whatever the umask.
 */
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/now.h"
#include "storage/le.h"
#include "storage/store.h"
#include "storage/store_check.h"
#include "tests/unit/unit_tmp.h"

#define HEAD_LEN 65536

/* A store with `n` objects (bodies of `body` bytes), closed cleanly. */
static void make_store(const char *dir, int n, size_t body)
{
    store_t *s = NULL;
    char err[1024];
    store_options_t opt = {.dir = dir, .map_size = (size_t)64 << 20};
    ck_assert_msg(store_open(&s, &opt, err, sizeof(err)) == 0, "store_open: %s", err);
    char *buf = malloc(body + 1);
    memset(buf, 'x', body);
    for (int i = 0; i < n; i++) {
        char key[64];
        int kl = snprintf(key, sizeof(key), "example.com/o/%d", i);
        obj_meta_t meta = {.status = 200,
                           .generation = store_generation(s),
                           .ttl = 300,
                           .request_time_ms = now_wall_ms() + i,
                           .response_time_ms = now_wall_ms() + i};
        obj_header_t hdr = {"content-type", 12, "text/plain", 10};
        obj_builder_t *b = obj_builder_begin(&meta, key, (size_t)kl, "all", 3, "", 0, &hdr, 1, body);
        obj_builder_append(b, buf, body);
        cache_obj_t *o = obj_builder_finish(b);
        store_put(s, o);
        obj_unref(&o);
    }
    ck_assert_int_eq(store_flush(s), 0);
    store_close(&s);
    free(buf);
}

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static off_t file_size(const char *dir, const char *name)
{
    char *p = path_in(dir, name);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    free(p);
    return st.st_size;
}

static void truncate_to(const char *dir, off_t size)
{
    char *p = path_in(dir, "data.mdb");
    ck_assert_int_eq(truncate(p, size), 0);
    free(p);
}

static void set_state(const char *dir, const char *state)
{
    char *p = path_in(dir, STORE_CHECK_STATE_FILE);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(state, f);
    fclose(f);
    free(p);
}

static void read_state(const char *dir, char *buf, size_t cap)
{
    char *p = path_in(dir, STORE_CHECK_STATE_FILE);
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    free(p);
}

/* the head of data.mdb (up to HEAD_LEN bytes) */
static size_t read_head(const char *dir, uint8_t *head)
{
    char *p = path_in(dir, "data.mdb");
    int fd = open(p, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ssize_t n = pread(fd, head, HEAD_LEN, 0);
    ck_assert_int_gt(n, 0);
    close(fd);
    free(p);
    return (size_t)n;
}

static int open_rc(const char *dir, char *err, size_t errlen)
{
    store_t *s = NULL;
    store_options_t opt = {.dir = dir, .map_size = (size_t)64 << 20};
    int rc = store_open(&s, &opt, err, errlen);
    if (rc == 0)
        store_close(&s);
    return rc;
}

START_TEST(test_meta_of_a_real_store)
{
    char *dir = tmpdir_new();
    make_store(dir, 50, 3000);
    uint8_t *head = malloc(HEAD_LEN);
    size_t n = read_head(dir, head);
    uint64_t size = (uint64_t)file_size(dir, "data.mdb");
    store_check_meta_t m;
    char err[256];
    ck_assert_msg(store_check_meta(head, n, size, &m, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(m.psize, (uint32_t)sysconf(_SC_PAGESIZE));
    ck_assert_uint_ge(m.last_pg, 2);
    ck_assert_uint_le((m.last_pg + 1) * m.psize, m.mapsize);
    ck_assert_uint_lt(m.main_root, size / m.psize);
    ck_assert_int_eq(store_check_file(dir, 0, NULL, err, sizeof(err)), 0);
    free(head);
    tmpdir_free(dir);
}
END_TEST

/* every single byte of both meta pages' fields, changed: an error or a meta that still makes sense */
START_TEST(test_meta_every_byte_flipped)
{
    char *dir = tmpdir_new();
    make_store(dir, 20, 3000);
    uint8_t *head = malloc(HEAD_LEN);
    size_t n = read_head(dir, head);
    uint64_t size = (uint64_t)file_size(dir, "data.mdb");
    store_check_meta_t m0;
    char err[256];
    ck_assert_int_eq(store_check_meta(head, n, size, &m0, err, sizeof(err)), 0);
    size_t ps = m0.psize;
    static const uint8_t patterns[] = {0x00, 0xff, 0x80, 0x01, 0x7f};
    unsigned refused = 0;
    for (int page = 0; page < 2; page++) {
        for (size_t off = 0; off < 16 + 136; off++) {
            for (size_t k = 0; k < sizeof(patterns); k++) {
                size_t at = page * ps + off;
                uint8_t saved = head[at];
                head[at] = saved ^ (patterns[k] ? patterns[k] : 0xa5);
                store_check_meta_t m;
                int rc = store_check_meta(head, n, size, &m, err, sizeof(err));
                ck_assert(rc == 0 || rc == STORE_CHECK_EDAMAGED);
                if (rc == 0) {
                    ck_assert(m.psize >= 512 && m.psize <= 32768 && (m.psize & (m.psize - 1)) == 0);
                    ck_assert_uint_eq(size % m.psize, 0);
                    ck_assert(m.main_root == UINT64_MAX || m.main_root < size / m.psize);
                    ck_assert(m.free_root == UINT64_MAX || m.free_root < size / m.psize);
                    ck_assert_uint_ge(m.last_pg, 1);
                } else {
                    refused++;
                    ck_assert_msg(strlen(err) > 0 && strchr(err, '\n') == NULL, "one line: %s", err);
                }
                head[at] = saved;
            }
        }
    }
    ck_assert_uint_gt(refused, 0);
    /* transaction ids two apart, or an older snapshot using more pages than the newer: refused */
    store_check_meta_t cur;
    ck_assert_int_eq(store_check_meta(head, n, size, &cur, err, sizeof(err)), 0);
    size_t older_off = (cur.newest == 0 ? ps : 0);
    uint8_t saved_meta[16];
    memcpy(saved_meta, head + older_off + 136, 16);
    le_put_u64(head + older_off + 144, cur.txnid - 2);
    ck_assert_int_eq(store_check_meta(head, n, size, &cur, err, sizeof(err)), STORE_CHECK_EDAMAGED);
    ck_assert_ptr_nonnull(strstr(err, "not consecutive"));
    memcpy(head + older_off + 136, saved_meta, 16);
    le_put_u64(head + older_off + 136, m0.last_pg + 1);
    ck_assert_int_eq(store_check_meta(head, n, size, &cur, err, sizeof(err)), STORE_CHECK_EDAMAGED);
    ck_assert_ptr_nonnull(strstr(err, "older meta page"));
    memcpy(head + older_off + 136, saved_meta, 16);
    /* the fields that name what the file is must refuse any change */
    static const size_t must[] = {0, 10, 16, 17, 20, 40, 41};
    for (int page = 0; page < 2; page++) {
        for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++) {
            size_t at = page * ps + must[i];
            head[at] ^= 0x40;
            store_check_meta_t m;
            ck_assert_msg(store_check_meta(head, n, size, &m, err, sizeof(err)) == STORE_CHECK_EDAMAGED, "page %d byte %zu",
                          page, must[i]);
            head[at] ^= 0x40;
        }
    }
    free(head);
    tmpdir_free(dir);
}
END_TEST

/* a head cut anywhere, and sizes that do not fit: refused, never read past what was given */
START_TEST(test_meta_short_head_and_sizes)
{
    char *dir = tmpdir_new();
    make_store(dir, 20, 3000);
    uint8_t *head = malloc(HEAD_LEN);
    size_t n = read_head(dir, head);
    uint64_t size = (uint64_t)file_size(dir, "data.mdb");
    store_check_meta_t m;
    char err[256];
    ck_assert_int_eq(store_check_meta(head, n, size, &m, err, sizeof(err)), 0);
    size_t ps = m.psize;
    for (size_t cut = 0; cut < ps + 16 + 136; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exactly `cut` bytes: ASan sees any read past them */
        memcpy(copy, head, cut);
        ck_assert_int_eq(store_check_meta(copy, cut, size, &m, err, sizeof(err)), STORE_CHECK_EDAMAGED);
        free(copy);
    }
    ck_assert_int_eq(store_check_meta(head, n, size - 1, &m, err, sizeof(err)), STORE_CHECK_EDAMAGED);
    ck_assert_int_eq(store_check_meta(head, n, size + 100, &m, err, sizeof(err)), STORE_CHECK_EDAMAGED);
    ck_assert_int_eq(store_check_meta(head, n, 2 * ps, &m, err, sizeof(err)), STORE_CHECK_EDAMAGED);
    ck_assert_ptr_nonnull(strstr(err, "truncated"));
    free(head);
    tmpdir_free(dir);
}
END_TEST

/* random meta pages with the magic and version right, so the checks behind them are reached */
START_TEST(test_meta_random)
{
    uint8_t *head = malloc(2 * 4096);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        for (size_t i = 0; i < 2 * 4096; i += 8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            memcpy(head + i, &seed, 8);
        }
        for (int p = 0; p < 2; p++) {
            uint8_t *pg = head + p * 4096;
            le_put_u64(pg, (uint64_t)p);
            le_put_u16(pg + 10, 0x08);
            le_put_u32(pg + 16, 0xBEEFC0DEu);
            le_put_u32(pg + 20, 1);
            if (iter % 2)
                le_put_u32(pg + 40, 4096);
            if (iter % 4 == 1) { /* small sane numbers, so some pass */
                le_put_u64(pg + 32, (uint64_t)1 << 30);
                le_put_u16(pg + 46, (uint16_t)(iter % 3));
                le_put_u64(pg + 80, iter % 3 ? (uint64_t)(2 + iter % 5) : UINT64_MAX);
                le_put_u16(pg + 46 + 48, 1);
                le_put_u64(pg + 80 + 48, (uint64_t)(2 + iter % 7));
                for (int f = 0; f < 4; f++)
                    le_put_u64(pg + 48 + 8 * f, f == 1);
                for (int f = 0; f < 4; f++)
                    le_put_u64(pg + 48 + 48 + 8 * f, f == 1);
                le_put_u64(pg + 136, 10);
                le_put_u64(pg + 144, (uint64_t)(5 + p)); /* consecutive transactions */
            }
        }
        store_check_meta_t m;
        char err[256];
        uint64_t size = (uint64_t)(iter % 64) * 4096;
        int rc = store_check_meta(head, 2 * 4096, size, &m, err, sizeof(err));
        ck_assert(rc == 0 || rc == STORE_CHECK_EDAMAGED);
        if (rc == 0) {
            ok++;
            ck_assert(m.main_root == UINT64_MAX || m.main_root < size / m.psize);
        }
    }
    ck_assert_uint_gt(ok, 0);
    free(head);
}
END_TEST

START_TEST(test_truncated_file_refused)
{
    char *dir = tmpdir_new();
    make_store(dir, 200, 3000);
    off_t size = file_size(dir, "data.mdb");
    long ps = sysconf(_SC_PAGESIZE);
    const off_t sizes[] = {0, 100, ps, 2 * ps, 3 * ps, (size / 2 / ps) * ps, size - 100, size - 1};
    char err[1024];
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *copy = tmpdir_new();
        make_store(copy, 200, 3000);
        truncate_to(copy, sizes[i]);
        ck_assert_msg(store_check_file(copy, 0, NULL, err, sizeof(err)) == STORE_CHECK_EDAMAGED, "size %lld",
                      (long long)sizes[i]);
        ck_assert_msg(open_rc(copy, err, sizeof(err)) == STORE_EDAMAGED, "store_open of a %lld-byte file: %s",
                      (long long)sizes[i], err);
        ck_assert_msg(strchr(err, '\n') == NULL && strstr(err, "refusing") != NULL, "%s", err);
        /* and it stays refused: nothing was recreated in its place */
        ck_assert_int_eq(open_rc(copy, err, sizeof(err)), STORE_EDAMAGED);
        ck_assert_int_eq(file_size(copy, "data.mdb"), sizes[i]);
        tmpdir_free(copy);
    }
    tmpdir_free(dir);
}
END_TEST

/* a last page far past the file's end: refused from the sizes alone, before anything is
 * allocated for it (a bitmap of the missing pages would be terabytes) */
START_TEST(test_absurd_last_page_refused)
{
    char *dir = tmpdir_new();
    make_store(dir, 20, 3000);
    uint8_t *head = malloc(HEAD_LEN);
    size_t n = read_head(dir, head);
    store_check_meta_t m;
    char err[1024];
    ck_assert_int_eq(store_check_meta(head, n, (uint64_t)file_size(dir, "data.mdb"), &m, err, sizeof(err)), 0);
    char *p = path_in(dir, "data.mdb");
    int fd = open(p, O_WRONLY);
    uint8_t big[8];
    le_put_u64(big, (uint64_t)1 << 44);
    for (int page = 0; page < 2; page++)
        ck_assert_int_eq(pwrite(fd, big, 8, (off_t)(page * m.psize + 136)), 8);
    close(fd);
    ck_assert_int_eq(store_check_file(dir, 0, NULL, err, sizeof(err)), STORE_CHECK_EDAMAGED);
    ck_assert_ptr_nonnull(strstr(err, "in use"));
    free(p);
    free(head);
    tmpdir_free(dir);
}
END_TEST

/* whole pages cut off the end: the file check (pread only) either refuses, or the store
 * really is whole: the full walk, which reads every record through the map, passes */
START_TEST(test_truncated_by_pages_never_accepted_wrongly)
{
    char *dir = tmpdir_new();
    make_store(dir, 150, 3000);
    char *p = path_in(dir, "data.mdb");
    off_t size = file_size(dir, "data.mdb");
    long ps = sysconf(_SC_PAGESIZE);
    char *saved = malloc((size_t)size);
    int fd = open(p, O_RDONLY);
    ck_assert_int_eq(pread(fd, saved, (size_t)size, 0), (ssize_t)size);
    close(fd);
    char err[1024];
    unsigned refused = 0;
    for (off_t cut = 1; cut <= 40 && cut * ps < size; cut++) {
        fd = open(p, O_WRONLY | O_TRUNC);
        ck_assert_int_eq(pwrite(fd, saved, (size_t)(size - cut * ps), 0), (ssize_t)(size - cut * ps));
        close(fd);
        int rc = store_check_file(dir, 0, NULL, err, sizeof(err));
        ck_assert(rc == 0 || rc == STORE_CHECK_EDAMAGED);
        if (rc == 0)
            ck_assert_msg(store_check_tree(dir, 1, NULL, NULL, err, sizeof(err)) == 0,
                          "%lld pages cut: accepted, but the walk says %s", (long long)cut, err);
        else
            refused++;
    }
    ck_assert_uint_gt(refused, 0);
    free(saved);
    free(p);
    tmpdir_free(dir);
}
END_TEST

/* the branch and leaf pages overwritten: the walk in the child finds it, the parent lives */
START_TEST(test_garbage_pages_found_by_the_walk)
{
    char *dir = tmpdir_new();
    make_store(dir, 300, 3000);
    uint8_t *head = malloc(HEAD_LEN);
    size_t n = read_head(dir, head);
    store_check_meta_t m;
    char err[1024];
    ck_assert_int_eq(store_check_meta(head, n, (uint64_t)file_size(dir, "data.mdb"), &m, err, sizeof(err)), 0);
    uint64_t pages = (uint64_t)file_size(dir, "data.mdb") / m.psize;
    /* every page whose header says branch or leaf, except the main database's root (so
     * that LMDB itself can still open the named databases and the walk is what finds it) */
    char *p = path_in(dir, "data.mdb");
    int fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    uint8_t *page = malloc(m.psize), *junk = malloc(m.psize);
    for (size_t i = 0; i < m.psize; i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    unsigned hit = 0;
    for (uint64_t pg = 2; pg < pages; pg++) {
        ck_assert_int_eq(pread(fd, page, m.psize, (off_t)(pg * m.psize)), (ssize_t)m.psize);
        uint16_t flags = le_get_u16(page + 10);
        if (le_get_u64(page) == pg && (flags & 0x03) && pg != m.main_root && pg != m.free_root) {
            memcpy(junk, page, 8); /* keep the page number: only the contents are garbage */
            ck_assert_int_eq(pwrite(fd, junk, m.psize, (off_t)(pg * m.psize)), (ssize_t)m.psize);
            hit++;
        }
    }
    close(fd);
    ck_assert_uint_gt(hit, 0);
    ck_assert_int_eq(store_check_file(dir, 0, NULL, err, sizeof(err)), 0); /* the meta pages are fine */
    ck_assert_int_eq(store_check_tree(dir, 0, NULL, NULL, err, sizeof(err)), STORE_CHECK_EDAMAGED);
    ck_assert(strlen(err) > 0);
    /* after an unclean shutdown store_open walks it and refuses; after a clean one it does not walk */
    set_state(dir, "open\n");
    ck_assert_int_eq(open_rc(dir, err, sizeof(err)), STORE_EDAMAGED);
    ck_assert_ptr_nonnull(strstr(err, "unclean shutdown"));
    char state[32];
    read_state(dir, state, sizeof(state));
    ck_assert_str_eq(state, "damaged\n");
    free(page);
    free(junk);
    free(p);
    free(head);
    tmpdir_free(dir);
}
END_TEST

/* object bodies overwritten: the quick walk does not read them; the full check decodes and refuses */
START_TEST(test_garbage_bodies_found_by_the_full_check)
{
    char *dir = tmpdir_new();
    make_store(dir, 100, 9000); /* bodies on overflow pages */
    char err[1024];
    store_check_report_t rep;
    ck_assert_int_eq(store_check_tree(dir, 1, NULL, &rep, err, sizeof(err)), 0);
    ck_assert_uint_eq(rep.objects, 100);
    ck_assert_uint_eq(rep.decoded, 100);
    uint8_t *head = malloc(HEAD_LEN);
    size_t n = read_head(dir, head);
    store_check_meta_t m;
    ck_assert_int_eq(store_check_meta(head, n, (uint64_t)file_size(dir, "data.mdb"), &m, err, sizeof(err)), 0);
    /* the record bytes past an overflow page's header: 'x' runs of a body */
    char *p = path_in(dir, "data.mdb");
    int fd = open(p, O_RDWR);
    uint8_t *page = malloc(m.psize);
    unsigned hit = 0;
    for (uint64_t pg = 2; pg <= m.last_pg && hit < 3; pg++) {
        if (pread(fd, page, m.psize, (off_t)(pg * m.psize)) != (ssize_t)m.psize)
            break;
        if (le_get_u16(page + 10) == 0x04 && le_get_u64(page) == pg) {
            ck_assert_int_eq(pwrite(fd, "GARBAGE!", 8, (off_t)((pg + 1) * m.psize - 64)), 8);
            hit++;
        }
    }
    close(fd);
    ck_assert_uint_gt(hit, 0);
    ck_assert_int_eq(store_check_tree(dir, 0, NULL, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(store_check_tree(dir, 1, NULL, NULL, err, sizeof(err)), STORE_CHECK_EDAMAGED);
    ck_assert_ptr_nonnull(strstr(err, "validation"));
    free(page);
    free(p);
    free(head);
    tmpdir_free(dir);
}
END_TEST

/* little-endian fields of page `pg` of data.mdb */
static uint64_t page_u64(int fd, uint32_t ps, uint64_t pg, size_t off)
{
    uint8_t b[8];
    ck_assert_int_eq(pread(fd, b, 8, (off_t)(pg * ps + off)), 8);
    return le_get_u64(b);
}

static uint16_t page_u16(int fd, uint32_t ps, uint64_t pg, size_t off)
{
    uint8_t b[2];
    ck_assert_int_eq(pread(fd, b, 2, (off_t)(pg * ps + off)), 2);
    return le_get_u16(b);
}

/* a branch page whose second child is its first again: LMDB would walk leaf pages twice
 * (and a pointer back up the tree, forever); the walk sees keys out of order and stops */
START_TEST(test_tree_pointing_back_is_refused)
{
    char *dir = tmpdir_new();
    make_store(dir, 400, 3000); /* 16-byte keys of overflow records: a few leaves under a branch */
    uint8_t *head = malloc(HEAD_LEN);
    size_t n = read_head(dir, head);
    store_check_meta_t m;
    char err[1024];
    ck_assert_int_eq(store_check_meta(head, n, (uint64_t)file_size(dir, "data.mdb"), &m, err, sizeof(err)), 0);
    char *p = path_in(dir, "data.mdb");
    int fd = open(p, O_RDWR);
    ck_assert_int_ge(fd, 0);
    /* the main database's root is a leaf naming each database; find "objects" and its root */
    uint32_t ps = m.psize;
    ck_assert_uint_eq(page_u16(fd, ps, m.main_root, 10), 0x02);
    unsigned nkeys = (page_u16(fd, ps, m.main_root, 12) - 16) / 2;
    uint64_t objects_root = UINT64_MAX;
    for (unsigned i = 0; i < nkeys; i++) {
        uint16_t off = page_u16(fd, ps, m.main_root, 16 + 2 * i);
        uint16_t ksize = page_u16(fd, ps, m.main_root, off + 6);
        char name[16] = "";
        if (ksize == 7)
            ck_assert_int_eq(pread(fd, name, 7, (off_t)(m.main_root * ps + off + 8)), 7);
        if (memcmp(name, "objects", 7) == 0)
            objects_root = page_u64(fd, ps, m.main_root, off + 8 + ksize + 40); /* MDB_db: root at +40 */
    }
    ck_assert_uint_ne(objects_root, UINT64_MAX);
    ck_assert_uint_eq(page_u16(fd, ps, objects_root, 10), 0x01); /* a branch page */
    ck_assert_uint_ge((page_u16(fd, ps, objects_root, 12) - 16) / 2, 2);
    /* child 1 := child 0 (a branch node's child is lo | hi << 16 | flags << 32: its first 6 bytes) */
    uint16_t off0 = page_u16(fd, ps, objects_root, 16), off1 = page_u16(fd, ps, objects_root, 18);
    uint8_t child0[6];
    ck_assert_int_eq(pread(fd, child0, 6, (off_t)(objects_root * ps + off0)), 6);
    ck_assert_int_eq(pwrite(fd, child0, 6, (off_t)(objects_root * ps + off1)), 6);
    close(fd);
    ck_assert_int_eq(store_check_tree(dir, 0, NULL, NULL, err, sizeof(err)), STORE_CHECK_EDAMAGED);
    ck_assert_msg(strstr(err, "out of order") != NULL, "%s", err);
    set_state(dir, "open\n");
    ck_assert_int_eq(open_rc(dir, err, sizeof(err)), STORE_EDAMAGED);
    free(p);
    free(head);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_state_file)
{
    char *dir = tmpdir_new();
    char state[32], err[1024];
    make_store(dir, 5, 100);
    read_state(dir, state, sizeof(state));
    ck_assert_str_eq(state, "clean\n");
    store_t *s = NULL;
    store_options_t opt = {.dir = dir, .map_size = (size_t)64 << 20};
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), 0);
    read_state(dir, state, sizeof(state));
    ck_assert_str_eq(state, "open\n");
    /* a second opener (its own open file description, as another process has) does not
     * mark it clean while we hold it */
    store_state_t second;
    ck_assert_int_eq(store_check_at_open(dir, 1, &second, err, sizeof(err)), 0);
    ck_assert_int_eq(second.first, 0);
    store_check_at_close(&second, 1);
    read_state(dir, state, sizeof(state));
    ck_assert_str_eq(state, "open\n");
    store_close(&s);
    read_state(dir, state, sizeof(state));
    ck_assert_str_eq(state, "clean\n");
    /* nor when it outlives the first one, which may have died without closing */
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), 0);
    ck_assert_int_eq(store_check_at_open(dir, 1, &second, err, sizeof(err)), 0);
    store_close(&s);
    read_state(dir, state, sizeof(state));
    ck_assert_str_eq(state, "open\n");
    store_check_at_close(&second, 1);
    read_state(dir, state, sizeof(state));
    ck_assert_str_eq(state, "open\n");
    /* an empty data.mdb is an interrupted creation only while the state says "new" */
    truncate_to(dir, 0);
    ck_assert_int_eq(open_rc(dir, err, sizeof(err)), STORE_EDAMAGED);
    set_state(dir, "new\n");
    ck_assert_int_eq(open_rc(dir, err, sizeof(err)), 0);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_files_private_whatever_the_umask)
{
    char *base = tmpdir_new();
    char *dir = path_in(base, "data");
    mode_t old = umask(0);
    make_store(dir, 3, 100);
    static const char *const files[] = {"data.mdb", "lock.mdb", "journal.log", STORE_CHECK_STATE_FILE};
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0700);
    for (size_t i = 0; i < 4; i++) {
        char *p = path_in(dir, files[i]);
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_msg((st.st_mode & 0777) == 0600, "%s is %o", files[i], st.st_mode & 0777);
        ck_assert_int_eq(chmod(p, 0644), 0); /* as an older version left them */
        free(p);
    }
    char err[1024];
    ck_assert_int_eq(open_rc(dir, err, sizeof(err)), 0);
    for (size_t i = 0; i < 4; i++) {
        char *p = path_in(dir, files[i]);
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_msg((st.st_mode & 0777) == 0600, "%s was not tightened: %o", files[i], st.st_mode & 0777);
        free(p);
    }
    /* "DIR/" names DIR: it is the one made private, not left 0755 like a parent */
    char *dir2 = path_in(base, "second/data/");
    make_store(dir2, 1, 10);
    ck_assert_int_eq(stat(dir2, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0700);
    umask(old);
    free(dir2);
    free(dir);
    tmpdir_free(base);
}
END_TEST

static Suite *store_check_suite(void)
{
    Suite *s = suite_create("store_check");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_meta_of_a_real_store);
    tcase_add_test(tc, test_meta_every_byte_flipped);
    tcase_add_test(tc, test_meta_short_head_and_sizes);
    tcase_add_test(tc, test_meta_random);
    tcase_add_test(tc, test_truncated_file_refused);
    tcase_add_test(tc, test_truncated_by_pages_never_accepted_wrongly);
    tcase_add_test(tc, test_absurd_last_page_refused);
    tcase_add_test(tc, test_garbage_pages_found_by_the_walk);
    tcase_add_test(tc, test_garbage_bodies_found_by_the_full_check);
    tcase_add_test(tc, test_tree_pointing_back_is_refused);
    tcase_add_test(tc, test_state_file);
    tcase_add_test(tc, test_files_private_whatever_the_umask);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("store_check") != 0)
        return 1;
    SRunner *sr = srunner_create(store_check_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

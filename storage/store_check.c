/*
 * storage/store_check.c — refuse a data file that is not sound before LMDB maps it
 * (why and what: storage/store_check.h): the meta check, the free-page walk, the tree
 * check in a child. The state file and the files' modes are in storage/store_state.c.
 *
 * LMDB's on-disk format, read here from its documented layout (lmdb.h, mdb.c:
 * MDB_page, MDB_meta, MDB_db, MDB_node) for LMDB 0.9 on a 64-bit little-endian host,
 * which is what the file's own native-endian fields are on every platform we build for:
 *   page header (16 bytes): u64 pgno, u16 pad, u16 flags, u16 lower, u16 upper
 *     (for an overflow page lower|upper is u32 pages, the length of its run)
 *   pages 0 and 1 are meta pages; each holds at byte 16 an MDB_meta:
 *     u32 magic 0xBEEFC0DE, u32 version 1, u64 address, u64 mapsize,
 *     MDB_db free (48 bytes), MDB_db main (48 bytes), u64 last_pg, u64 txnid
 *     where MDB_db = u32 pad (the page size, in the free DB's), u16 flags, u16 depth,
 *     u64 branch_pages, u64 leaf_pages, u64 overflow_pages, u64 entries, u64 root
 *   the newest meta (highest txnid) is the one LMDB uses; page 1 is at offset psize.
 *   branch and leaf pages: u16 offsets of their nodes from byte 16 to `lower`; a node
 *     is u16 lo, u16 hi, u16 flags, u16 ksize, key, data; a branch node's child page is
 *     lo | hi << 16 | flags << 32, a leaf node's data size lo | hi << 16, and a leaf node
 *     with F_BIGDATA holds the u64 number of the overflow page its data starts on.
 *   the free-page database maps a txnid to an ID list: u64 count, count page numbers.
 *
 * Invariants: nothing here maps data.mdb in this process; every number read from the
 * file is checked before it is used as an offset or a size. The tree check maps it in
 * a child that reports one line per database and a last line "ok ..." or "damaged: ...",
 * and exits 0 only after "ok"; anything else (a signal, a sanitizer's exit, no verdict)
 * is damage.
 *
 * Threads: the caller's (store_open, store_close, the CLI).
 */
#include "storage/store_check.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/errbuf.h"
#include "common/path.h"
#include "migrations/mig_int.h"
#include "storage/le.h"
#include "storage/object.h"

_Static_assert(sizeof(size_t) == 8, "the LMDB format read here is the 64-bit one");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "LMDB writes native byte order; read here as little-endian");

#define CHK_PAGEHDR 16
#define CHK_META_OFF CHK_PAGEHDR
#define CHK_META_LEN 136
#define CHK_DB_LEN 48
#define CHK_MAGIC 0xBEEFC0DEu
#define CHK_VERSION 1u
#define CHK_P_BRANCH 0x01
#define CHK_P_LEAF 0x02
#define CHK_P_OVERFLOW 0x04
#define CHK_P_META 0x08
#define CHK_P_LEAF2 0x20
#define CHK_F_BIGDATA 0x01
#define CHK_F_SUBDATA 0x02
#define CHK_F_DUPDATA 0x04
#define CHK_NODEHDR 8
#define CHK_MIN_PSIZE 512
#define CHK_MAX_PSIZE 32768 /* LMDB 0.9's MAX_PAGESIZE */
#define CHK_MAX_DEPTH 32    /* LMDB's CURSOR_STACK */
#define CHK_INVALID UINT64_MAX
#define CHK_HEAD_LEN (2 * CHK_MAX_PSIZE)

/* ---- the meta check (pure) ---- */

typedef struct chk_db {
    uint32_t pad;
    uint16_t flags, depth;
    uint64_t branch, leaf, overflow, entries, root;
} chk_db_t;

static void chk_db_read(const uint8_t *p, chk_db_t *db)
{
    db->pad = le_get_u32(p);
    db->flags = le_get_u16(p + 4);
    db->depth = le_get_u16(p + 6);
    db->branch = le_get_u64(p + 8);
    db->leaf = le_get_u64(p + 16);
    db->overflow = le_get_u64(p + 24);
    db->entries = le_get_u64(p + 32);
    db->root = le_get_u64(p + 40);
}

/* a tree as a meta page describes it: empty, or a root page in use with a sane depth */
static int chk_db_ok(const chk_db_t *db, uint64_t last_pg)
{
    if (db->root == CHK_INVALID)
        return db->depth == 0;
    if (db->root < 2 || db->root > last_pg || db->depth == 0 || db->depth > CHK_MAX_DEPTH)
        return 0;
    /* the pages a tree counts must fit between the meta pages and last_pg */
    uint64_t room = last_pg - 1;
    return db->branch <= room && db->leaf <= room && db->overflow <= room && db->branch + db->leaf + db->overflow <= room &&
           db->leaf >= 1;
}

/* One meta page at p (page `pgno`), `avail` bytes of it present. */
static int chk_meta_one(const uint8_t *p, size_t avail, unsigned pgno, uint32_t psize_expected, store_check_meta_t *m,
                        char *errbuf, size_t errlen)
{
    if (avail < CHK_META_OFF + CHK_META_LEN) {
        errbuf_printf(errbuf, errlen, "meta page %u is cut short (the file ends inside it)", pgno);
        return STORE_CHECK_EDAMAGED;
    }
    uint64_t page_no = le_get_u64(p);
    uint16_t flags = le_get_u16(p + 10);
    const uint8_t *meta = p + CHK_META_OFF;
    uint32_t magic = le_get_u32(meta), version = le_get_u32(meta + 4);
    if (page_no != pgno || flags != CHK_P_META) {
        errbuf_printf(errbuf, errlen, "page %u is not an LMDB meta page (page number %llu, flags 0x%x)", pgno,
                      (unsigned long long)page_no, flags);
        return STORE_CHECK_EDAMAGED;
    }
    if (magic != CHK_MAGIC) {
        errbuf_printf(errbuf, errlen, "meta page %u has magic 0x%08x, not LMDB's 0x%08x", pgno, magic, CHK_MAGIC);
        return STORE_CHECK_EDAMAGED;
    }
    if (version != CHK_VERSION) {
        errbuf_printf(errbuf, errlen, "meta page %u has data format version %u, this build reads %u", pgno, version,
                      CHK_VERSION);
        return STORE_CHECK_EDAMAGED;
    }
    chk_db_t fdb, mdb;
    chk_db_read(meta + 24, &fdb);
    chk_db_read(meta + 24 + CHK_DB_LEN, &mdb);
    uint32_t psize = fdb.pad;
    uint64_t mapsize = le_get_u64(meta + 16);
    uint64_t last_pg = le_get_u64(meta + 24 + 2 * CHK_DB_LEN);
    uint64_t txnid = le_get_u64(meta + 32 + 2 * CHK_DB_LEN);
    if (psize < CHK_MIN_PSIZE || psize > CHK_MAX_PSIZE || (psize & (psize - 1)) != 0 ||
        (psize_expected != 0 && psize != psize_expected)) {
        errbuf_printf(errbuf, errlen, "meta page %u has page size %u (expected a power of two from %u to %u%s)", pgno, psize,
                      CHK_MIN_PSIZE, CHK_MAX_PSIZE, psize_expected != 0 ? ", the same in both meta pages" : "");
        return STORE_CHECK_EDAMAGED;
    }
    /* last_pg bounds every page number below. (The recorded map size is not checked
     * against it: LMDB raises a map size that is too small, as files of old versions
     * have, so it decides nothing.) */
    if (last_pg < 1 || last_pg > (UINT64_MAX / 2) / psize) {
        errbuf_printf(errbuf, errlen, "meta page %u has last page %llu, which does not fit any file", pgno,
                      (unsigned long long)last_pg);
        return STORE_CHECK_EDAMAGED;
    }
    if (!chk_db_ok(&fdb, last_pg) || !chk_db_ok(&mdb, last_pg)) {
        errbuf_printf(errbuf, errlen, "meta page %u describes a tree outside pages 2..%llu (free root %llu, main root %llu)",
                      pgno, (unsigned long long)last_pg, (unsigned long long)fdb.root, (unsigned long long)mdb.root);
        return STORE_CHECK_EDAMAGED;
    }
    m->psize = psize;
    m->last_pg = last_pg;
    m->txnid = txnid;
    m->mapsize = mapsize;
    m->free_root = fdb.root;
    m->main_root = mdb.root;
    m->free_depth = fdb.depth;
    m->newest = (int)pgno;
    return 0;
}

int store_check_meta(const uint8_t *head, size_t head_len, uint64_t file_size, store_check_meta_t *out, char *errbuf,
                     size_t errlen)
{
    store_check_meta_t m0, m1;
    memset(out, 0, sizeof(*out));
    if (head_len > file_size)
        head_len = (size_t)file_size;
    int rc = chk_meta_one(head, head_len, 0, 0, &m0, errbuf, errlen);
    if (rc != 0)
        return rc;
    /* page 1 sits one page size in */
    size_t off1 = m0.psize;
    rc = chk_meta_one(head + (off1 < head_len ? off1 : head_len), off1 < head_len ? head_len - off1 : 0, 1, m0.psize, &m1,
                      errbuf, errlen);
    if (rc != 0)
        return rc;
    const store_check_meta_t *m = m1.txnid > m0.txnid ? &m1 : &m0; /* LMDB's choice */
    const store_check_meta_t *older = m == &m1 ? &m0 : &m1;
    /* each commit writes the meta page of its transaction's parity, one after the other:
     * two transactions apart means a damaged id, and LMDB would trust the wrong snapshot */
    if (m->txnid - older->txnid > 1) {
        errbuf_printf(errbuf, errlen, "the meta pages name transactions %llu and %llu, which are not consecutive",
                      (unsigned long long)m0.txnid, (unsigned long long)m1.txnid);
        return STORE_CHECK_EDAMAGED;
    }
    if (older->last_pg > m->last_pg) {
        errbuf_printf(errbuf, errlen, "the older meta page uses pages up to %llu, the newer only up to %llu",
                      (unsigned long long)older->last_pg, (unsigned long long)m->last_pg);
        return STORE_CHECK_EDAMAGED;
    }
    uint64_t psize = m->psize;
    if (file_size % psize != 0) {
        errbuf_printf(errbuf, errlen, "the file is %llu bytes, not a whole number of %llu-byte pages (truncated?)",
                      (unsigned long long)file_size, (unsigned long long)psize);
        return STORE_CHECK_EDAMAGED;
    }
    uint64_t file_pages = file_size / psize;
    uint64_t roots[2] = {m->free_root, m->main_root};
    for (int i = 0; i < 2; i++) {
        if (roots[i] != CHK_INVALID && roots[i] >= file_pages) {
            errbuf_printf(errbuf, errlen,
                          "the file is %llu bytes (%llu pages) but its newest meta page needs page %llu (truncated?)",
                          (unsigned long long)file_size, (unsigned long long)file_pages, (unsigned long long)roots[i]);
            return STORE_CHECK_EDAMAGED;
        }
    }
    *out = *m;
    return 0;
}

/* ---- the free-page walk (pread) for a file that ends before last_pg ---- */

typedef struct chk_free_walk {
    int fd;
    uint32_t psize;
    uint64_t file_pages, last_pg;
    uint8_t *tail;       /* bitmap of pages [file_pages, last_pg]: listed free */
    uint64_t tail_found; /* bits set */
    uint64_t pages_read; /* bounds the walk: a cycle cannot make it run forever */
    char *errbuf;
    size_t errlen;
} chk_free_walk_t;

/* Read page pgno (n pages of it) into buf; the page must lie inside the file. */
static int chk_read_pages(chk_free_walk_t *w, uint64_t pgno, uint64_t n, uint8_t *buf)
{
    if (pgno < 2 || pgno > w->last_pg || n > w->last_pg - pgno + 1 || pgno + n > w->file_pages) {
        errbuf_printf(w->errbuf, w->errlen,
                      "the free-page list refers to page %llu (+%llu), past the end of the file (%llu pages)",
                      (unsigned long long)pgno, (unsigned long long)n, (unsigned long long)w->file_pages);
        return STORE_CHECK_EDAMAGED;
    }
    size_t len = (size_t)(n * w->psize), done = 0;
    while (done < len) {
        ssize_t r = pread(w->fd, buf + done, len - done, (off_t)(pgno * w->psize + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            errbuf_printf(w->errbuf, w->errlen, "cannot read page %llu: %s", (unsigned long long)pgno,
                          r < 0 ? strerror(errno) : "end of file");
            return r < 0 ? STORE_CHECK_EIO : STORE_CHECK_EDAMAGED;
        }
        done += (size_t)r;
    }
    if (le_get_u64(buf) != pgno) {
        errbuf_printf(w->errbuf, w->errlen, "page %llu says it is page %llu", (unsigned long long)pgno,
                      (unsigned long long)le_get_u64(buf));
        return STORE_CHECK_EDAMAGED;
    }
    return 0;
}

/* One ID list (u64 count, then page numbers) of `len` bytes. */
static int chk_free_idl(chk_free_walk_t *w, const uint8_t *idl, size_t len)
{
    if (len < 8 || le_get_u64(idl) > (len - 8) / 8) {
        errbuf_printf(w->errbuf, w->errlen, "a free-page list record is malformed");
        return STORE_CHECK_EDAMAGED;
    }
    uint64_t n = le_get_u64(idl);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t pg = le_get_u64(idl + 8 + 8 * i);
        if (pg < 2 || pg > w->last_pg) {
            errbuf_printf(w->errbuf, w->errlen, "the free-page list names page %llu, outside 2..%llu", (unsigned long long)pg,
                          (unsigned long long)w->last_pg);
            return STORE_CHECK_EDAMAGED;
        }
        if (pg >= w->file_pages) {
            uint64_t bit = pg - w->file_pages;
            if (!(w->tail[bit / 8] & (1u << (bit % 8)))) {
                w->tail[bit / 8] |= (uint8_t)(1u << (bit % 8));
                w->tail_found++;
            }
        }
    }
    return 0;
}

static int chk_free_page(chk_free_walk_t *w, uint64_t pgno, unsigned depth_left)
{
    uint32_t ps = w->psize;
    if (depth_left == 0 || ++w->pages_read > w->last_pg) {
        errbuf_printf(w->errbuf, w->errlen, "the free-page tree is deeper or larger than its meta page says");
        return STORE_CHECK_EDAMAGED;
    }
    uint8_t *page = malloc(ps);
    if (page == NULL)
        abort();
    int rc = chk_read_pages(w, pgno, 1, page);
    if (rc != 0)
        goto out;
    uint16_t flags = le_get_u16(page + 10), lower = le_get_u16(page + 12), upper = le_get_u16(page + 14);
    int branch = flags == CHK_P_BRANCH, leaf = flags == CHK_P_LEAF;
    if ((!branch && !leaf) || lower < CHK_PAGEHDR || lower > upper || upper > ps || (lower - CHK_PAGEHDR) % 2 != 0) {
        errbuf_printf(w->errbuf, w->errlen, "free-page tree page %llu is not a branch or leaf page (flags 0x%x)",
                      (unsigned long long)pgno, flags);
        rc = STORE_CHECK_EDAMAGED;
        goto out;
    }
    unsigned nkeys = (unsigned)(lower - CHK_PAGEHDR) / 2;
    for (unsigned i = 0; i < nkeys && rc == 0; i++) {
        uint16_t off = le_get_u16(page + CHK_PAGEHDR + 2 * i);
        if (off < upper || (size_t)off + CHK_NODEHDR > ps) {
            rc = STORE_CHECK_EDAMAGED;
            break;
        }
        const uint8_t *node = page + off;
        uint64_t lo = le_get_u16(node), hi = le_get_u16(node + 2), nflags = le_get_u16(node + 4);
        size_t ksize = le_get_u16(node + 6);
        if ((size_t)off + CHK_NODEHDR + ksize > ps) {
            rc = STORE_CHECK_EDAMAGED;
            break;
        }
        if (branch) {
            rc = chk_free_page(w, lo | hi << 16 | nflags << 32, depth_left - 1);
            continue;
        }
        size_t dsize = (size_t)(lo | hi << 16);
        const uint8_t *data = node + CHK_NODEHDR + ksize;
        if (nflags & CHK_F_BIGDATA) {
            if ((size_t)off + CHK_NODEHDR + ksize + 8 > ps) {
                rc = STORE_CHECK_EDAMAGED;
                break;
            }
            uint64_t ov = le_get_u64(data);
            uint64_t npages = ((uint64_t)CHK_PAGEHDR + dsize + ps - 1) / ps;
            /* before allocating: a list cannot name more pages than there are, nor lie outside the file */
            if (dsize > 8 * (w->last_pg + 2) || ov < 2 || ov >= w->file_pages || npages > w->file_pages - ov) {
                errbuf_printf(w->errbuf, w->errlen, "a free-page list record of %zu bytes at page %llu does not fit the file",
                              dsize, (unsigned long long)ov);
                rc = STORE_CHECK_EDAMAGED;
                break;
            }
            uint8_t *run = malloc((size_t)npages * ps);
            if (run == NULL)
                abort();
            rc = npages <= w->last_pg ? chk_read_pages(w, ov, npages, run) : STORE_CHECK_EDAMAGED;
            if (rc == 0 && (le_get_u16(run + 10) != CHK_P_OVERFLOW || le_get_u32(run + 12) < npages))
                rc = STORE_CHECK_EDAMAGED; /* not the overflow run the node says */
            if (rc == 0)
                rc = chk_free_idl(w, run + CHK_PAGEHDR, dsize);
            free(run);
        } else {
            if ((size_t)off + CHK_NODEHDR + ksize + dsize > ps) {
                rc = STORE_CHECK_EDAMAGED;
                break;
            }
            rc = chk_free_idl(w, data, dsize);
        }
    }
    if (rc == STORE_CHECK_EDAMAGED && w->errbuf != NULL && w->errbuf[0] == '\0')
        errbuf_printf(w->errbuf, w->errlen, "free-page tree page %llu is malformed", (unsigned long long)pgno);
out:
    free(page);
    return rc;
}

int store_check_file(const char *dir, int allow_empty, store_check_meta_t *out, char *errbuf, size_t errlen)
{
    char *path = path_join(dir, "data.mdb", "store check");
    uint8_t *head = NULL;
    int rc = STORE_CHECK_EIO;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 && errno == ENOENT) {
        rc = 1;
        goto out;
    }
    if (fd < 0 || fstat(fd, &st) != 0) {
        errbuf_printf(errbuf, errlen, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        errbuf_printf(errbuf, errlen, "%s is not a regular file", path);
        rc = STORE_CHECK_EDAMAGED;
        goto out;
    }
    if (st.st_size == 0) {
        /* LMDB would quietly make a new, empty store of it: every object, token and setting gone */
        if (allow_empty) {
            rc = 1;
            goto out;
        }
        errbuf_printf(errbuf, errlen, "%s is empty (truncated?)", path);
        rc = STORE_CHECK_EDAMAGED;
        goto out;
    }
    size_t want = (uint64_t)st.st_size < CHK_HEAD_LEN ? (size_t)st.st_size : CHK_HEAD_LEN, got = 0;
    head = malloc(CHK_HEAD_LEN);
    if (head == NULL)
        abort();
    while (got < want) {
        ssize_t r = pread(fd, head + got, want - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            errbuf_printf(errbuf, errlen, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    store_check_meta_t m;
    char why[256];
    if ((rc = store_check_meta(head, got, (uint64_t)st.st_size, &m, why, sizeof(why))) != 0) {
        errbuf_printf(errbuf, errlen, "%s is damaged: %s", path, why);
        goto out;
    }
    uint64_t file_pages = (uint64_t)st.st_size / m.psize;
    if (file_pages < m.last_pg + 1) {
        /* legal only when every page past the end is free: prove it from the free-page tree */
        uint64_t tail = m.last_pg + 1 - file_pages;
        if (tail > (uint64_t)st.st_size / 8) {
            /* the free-page lists that would have to name them (8 bytes each) do not fit in the file */
            errbuf_printf(errbuf, errlen,
                          "%s is damaged: the file is %llu bytes (%llu pages) but pages up to %llu are in use (truncated?)",
                          path, (unsigned long long)st.st_size, (unsigned long long)file_pages, (unsigned long long)m.last_pg);
            rc = STORE_CHECK_EDAMAGED;
            goto out;
        }
        chk_free_walk_t w = {
            .fd = fd, .psize = m.psize, .file_pages = file_pages, .last_pg = m.last_pg, .errbuf = why, .errlen = sizeof(why)};
        why[0] = '\0';
        w.tail = calloc((size_t)(tail / 8 + 1), 1);
        if (w.tail == NULL)
            abort();
        rc = m.free_root == CHK_INVALID ? 0 : chk_free_page(&w, m.free_root, m.free_depth);
        if (rc == 0 && w.tail_found != tail) {
            errbuf_printf(why, sizeof(why), "pages %llu..%llu are in use but past the end of the file",
                          (unsigned long long)file_pages, (unsigned long long)m.last_pg);
            rc = STORE_CHECK_EDAMAGED;
        }
        free(w.tail);
        if (rc != 0) {
            errbuf_printf(errbuf, errlen, "%s is damaged: the file is %llu bytes (%llu pages), %s (truncated?)", path,
                          (unsigned long long)st.st_size, (unsigned long long)file_pages, why);
            goto out;
        }
    }
    if (out != NULL)
        *out = m;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(head);
    free(path);
    return rc;
}

/* ---- the tree check (in a child) ---- */

typedef struct chk_child {
    FILE *out;
    int full;
    const char *map;    /* the child's mapping of data.mdb */
    uint64_t file_size; /* what of it is backed by the file */
    uint64_t records, objects, decoded, value_bytes, databases;
} chk_child_t;

/* does [p, p + len) lie inside the part of the map that the file backs? */
static int chk_in_file(const chk_child_t *c, const void *p, size_t len)
{
    const char *q = p;
    if (len == 0)
        return 1; /* LMDB may point an empty value anywhere */
    return q >= c->map && (uint64_t)(q - c->map) <= c->file_size && len <= c->file_size - (uint64_t)(q - c->map);
}

static int chk_meta_value_ok(const MDB_val *k, const MDB_val *v)
{
    static const struct {
        const char *name;
        size_t len;
    } known[] = {
        {MIG_META_SCHEMA_VERSION, 4}, {MIG_META_GENERATION, 8},  {MIG_META_RECLAIMED, 8},
        {MIG_META_WRITER_TICK, 8},    {MIG_META_JOURNAL_SEQ, 8}, {MIG_META_JOURNAL_KEY, MIG_JOURNAL_KEY_BYTES},
        {MIG_META_JOURNAL_KEYED, 8},  {MIG_META_BUS_SEQ, 8},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (k->mv_size == strlen(known[i].name) && memcmp(k->mv_data, known[i].name, k->mv_size) == 0)
            return v->mv_size == known[i].len;
    return 1; /* a record a later version added */
}

/* Walk one database: every record inside the file, as many as it says it has, and what we know of each. */
static int chk_walk_db(chk_child_t *c, MDB_txn *txn, MDB_dbi dbi, const char *name)
{
    MDB_stat st;
    MDB_cursor *cur = NULL;
    int rc = mdb_stat(txn, dbi, &st);
    if (rc == 0)
        rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0) {
        fprintf(c->out, "damaged: database '%s': %s\n", name, mdb_strerror(rc));
        return -1;
    }
    int is_objects = strcmp(name, MIG_DB_OBJECTS) == 0, is_meta = strcmp(name, MIG_DB_META) == 0;
    int is_index = strcmp(name, MIG_DB_SKEYS) == 0 || strcmp(name, MIG_DB_VARIANTS) == 0;
    int is_evict = strcmp(name, MIG_DB_EVICT) == 0;
    unsigned dbflags = 0;
    mdb_dbi_flags(txn, dbi, &dbflags);
    int dupsort = (dbflags & MDB_DUPSORT) != 0;
    uint64_t n = 0;
    MDB_val k, v;
    /* the previous record, copied: keys (and a key's duplicates) must come in strictly
     * increasing order, which a page that points back into the tree breaks at once */
    static uint8_t prev_key[CHK_MAX_PSIZE], prev_data[CHK_MAX_PSIZE];
    MDB_val pk = {0, prev_key}, pd = {0, prev_data};
    const char *bad = NULL;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        /* and however the tree is linked, no database holds more records than it says */
        if (++n > st.ms_entries) {
            bad = "more records than the database says it holds";
            break;
        }
        if (!chk_in_file(c, k.mv_data, k.mv_size) || !chk_in_file(c, v.mv_data, v.mv_size)) {
            bad = "a record lies past the end of the file";
            break;
        }
        if (n > 1) {
            int kc = mdb_cmp(txn, dbi, &pk, &k);
            if (kc > 0 || (kc == 0 && (!dupsort || mdb_dcmp(txn, dbi, &pd, &v) >= 0))) {
                bad = "records out of order (a page points back into the tree)";
                break;
            }
        }
        if (k.mv_size > sizeof(prev_key) || (dupsort && v.mv_size > sizeof(prev_data))) {
            bad = "a key or sorted value is longer than a page";
            break;
        }
        memcpy(prev_key, k.mv_data, k.mv_size);
        pk.mv_size = k.mv_size;
        if (dupsort) {
            memcpy(prev_data, v.mv_data, v.mv_size);
            pd.mv_size = v.mv_size;
        }
        if (is_objects && k.mv_size != CACHE_HASH_LEN)
            bad = "an object's key is not a 16-byte hash";
        else if (is_index && v.mv_size != CACHE_HASH_LEN)
            bad = "an index entry is not a 16-byte hash";
        else if (is_evict && (k.mv_size != 8 + CACHE_HASH_LEN || v.mv_size != 0))
            bad = "an eviction entry has the wrong size";
        else if (is_meta && !chk_meta_value_ok(&k, &v))
            bad = "a meta record has the wrong size";
        if (bad != NULL)
            break;
        if (is_objects)
            c->objects++;
        if (c->full) {
            /* read every byte of the value: a hole or a page past the end faults here, in the child */
            volatile uint8_t sum = 0;
            for (size_t i = 0; i < v.mv_size; i += 512)
                sum ^= ((const uint8_t *)v.mv_data)[i];
            (void)sum;
            c->value_bytes += v.mv_size;
            if (is_objects) {
                if (obj_record_validate(v.mv_data, v.mv_size) != 0) {
                    bad = "an object record fails validation (bad length or checksum)";
                    break;
                }
                c->decoded++;
            }
        }
    }
    mdb_cursor_close(cur);
    if (bad == NULL && rc != 0 && rc != MDB_NOTFOUND) {
        fprintf(c->out, "damaged: database '%s' after %llu records: %s\n", name, (unsigned long long)n, mdb_strerror(rc));
        return -1;
    }
    if (bad == NULL && n != st.ms_entries) {
        fprintf(c->out, "damaged: database '%s' holds %llu records but says %llu\n", name, (unsigned long long)n,
                (unsigned long long)st.ms_entries);
        return -1;
    }
    if (bad != NULL) {
        fprintf(c->out, "damaged: database '%s', record %llu: %s\n", name, (unsigned long long)n, bad);
        return -1;
    }
    fprintf(c->out, "db %s records %llu depth %u pages %llu\n", name, (unsigned long long)n, st.ms_depth,
            (unsigned long long)(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages));
    c->records += n;
    c->databases++;
    return 0;
}

static int chk_child_main(const char *dir, int full, FILE *out)
{
    chk_child_t c = {.out = out, .full = full};
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    struct stat st;
    char *path = path_join(dir, "data.mdb", "store check");
    int rc = stat(path, &st);
    free(path);
    if (rc != 0) {
        fprintf(out, "error: %s\n", strerror(errno));
        return 1;
    }
    c.file_size = (uint64_t)st.st_size;
    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 64)) != 0 ||
        (rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0 ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0) {
        /* LMDB's own codes are about the file; an errno is about us (permissions, memory) */
        int about_file = rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE;
        fprintf(out, "%s: LMDB cannot open it: %s\n", about_file ? "damaged" : "error", mdb_strerror(rc));
        return 1;
    }
    /* where LMDB mapped the file (mdb_env_info's me_mapaddr is only the MDB_FIXEDMAP address):
     * the mapping of data.mdb's inode at offset 0 in /proc/self/maps */
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4352];
    while (maps != NULL && c.map == NULL && fgets(line, sizeof(line), maps) != NULL) {
        unsigned long long start, end, off, ino;
        char perms[8], devs[16];
        if (sscanf(line, "%llx-%llx %7s %llx %15s %llu", &start, &end, perms, &off, devs, &ino) == 6 && off == 0 &&
            ino == (unsigned long long)st.st_ino && strstr(line, "/data.mdb") != NULL)
            c.map = (const char *)(uintptr_t)start;
    }
    if (maps != NULL)
        fclose(maps);
    if (c.map == NULL) {
        fprintf(out, "error: cannot find LMDB's mapping of data.mdb in /proc/self/maps\n");
        return 1;
    }

    /* the free-page database (handle 0): its records are page lists the next writer reuses */
    if (chk_walk_db(&c, txn, 0, "(free pages)") != 0)
        return 1;
    c.databases = c.records = 0; /* not a named database */
    MDB_dbi main_dbi;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 || (rc = mdb_cursor_open(txn, main_dbi, &cur)) != 0) {
        fprintf(out, "damaged: the main database: %s\n", mdb_strerror(rc));
        return 1;
    }
    MDB_val k, v;
    MDB_stat main_st;
    if ((rc = mdb_stat(txn, main_dbi, &main_st)) != 0) {
        fprintf(out, "damaged: the main database: %s\n", mdb_strerror(rc));
        return 1;
    }
    uint64_t names = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char name[65];
        /* a page pointing back would list the same databases forever */
        if (++names > main_st.ms_entries || names > 64) {
            fprintf(out, "damaged: the main database lists more databases than it holds\n");
            return 1;
        }
        if (!chk_in_file(&c, k.mv_data, k.mv_size) || k.mv_size == 0 || k.mv_size >= sizeof(name) ||
            memchr(k.mv_data, '\0', k.mv_size) != NULL) {
            fprintf(out, "damaged: the main database names a database that is not a name\n");
            return 1;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        MDB_dbi dbi;
        if ((rc = mdb_dbi_open(txn, name, 0, &dbi)) != 0) {
            fprintf(out, "damaged: database '%s': %s\n", name, mdb_strerror(rc));
            return 1;
        }
        if (chk_walk_db(&c, txn, dbi, name) != 0)
            return 1;
    }
    if (rc != MDB_NOTFOUND) {
        fprintf(out, "damaged: the main database: %s\n", mdb_strerror(rc));
        return 1;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    fprintf(out, "ok databases %llu records %llu objects %llu decoded %llu value_bytes %llu\n",
            (unsigned long long)c.databases, (unsigned long long)c.records, (unsigned long long)c.objects,
            (unsigned long long)c.decoded, (unsigned long long)c.value_bytes);
    return 0;
}

int store_check_tree(const char *dir, int full, FILE *log, store_check_report_t *rep, char *errbuf, size_t errlen)
{
    int fds[2];
    if (rep != NULL)
        memset(rep, 0, sizeof(*rep));
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (pipe2(fds, O_CLOEXEC) != 0) {
        errbuf_printf(errbuf, errlen, "store check: pipe: %s", strerror(errno));
        return STORE_CHECK_EIO;
    }
    fflush(NULL); /* the child must not write out our buffered output again */
    pid_t pid = fork();
    if (pid < 0) {
        errbuf_printf(errbuf, errlen, "store check: fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return STORE_CHECK_EIO;
    }
    if (pid == 0) {
        /* the child: a fault here is the verdict, not a crash to keep */
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        /* nor a report on the server's stderr (a sanitizer build prints one for the fault) */
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (devnull >= 0)
            dup2(devnull, STDERR_FILENO);
        signal(SIGPIPE, SIG_DFL);
        close(fds[0]);
        FILE *out = fdopen(fds[1], "w");
        int code = out != NULL ? chk_child_main(dir, full, out) : 1;
        if (out != NULL && fflush(out) != 0)
            code = 1;
        _exit(code); /* not exit(): the parent's atexit handlers and buffers are not ours */
    }
    close(fds[1]);
    /* read the report: per-database lines, then "ok ..." or "damaged: ..." */
    char line[512];
    size_t len = 0;
    char last[512] = "";
    int verdict_ok = 0;
    FILE *in = fdopen(fds[0], "r");
    if (in == NULL) {
        close(fds[0]);
    } else {
        while (fgets(line, sizeof(line), in) != NULL) {
            len = strlen(line);
            if (len > 0 && line[len - 1] == '\n')
                line[--len] = '\0';
            if (log != NULL && strncmp(line, "db ", 3) == 0)
                fprintf(log, "  %s\n", line + 3);
            snprintf(last, sizeof(last), "%s", line);
        }
        fclose(in);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            errbuf_printf(errbuf, errlen, "store check: waitpid: %s", strerror(errno));
            return STORE_CHECK_EIO;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && strncmp(last, "ok ", 3) == 0) {
        unsigned long long dbs, recs, objs, dec, bytes;
        if (sscanf(last, "ok databases %llu records %llu objects %llu decoded %llu value_bytes %llu", &dbs, &recs, &objs, &dec,
                   &bytes) == 5 &&
            rep != NULL) {
            rep->databases = dbs;
            rep->records = recs;
            rep->objects = objs;
            rep->decoded = dec;
            rep->value_bytes = bytes;
        }
        verdict_ok = 1;
    }
    if (verdict_ok)
        return 0;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (sig != SIGSEGV && sig != SIGBUS && sig != SIGABRT && sig != SIGILL && sig != SIGFPE) {
            /* killed from outside (the OOM killer, an operator): no verdict on the file */
            errbuf_printf(errbuf, errlen, "store check: the walking process was killed (%s)", strsignal(sig));
            return STORE_CHECK_EIO;
        }
        errbuf_printf(errbuf, errlen, "walking its B-tree hit %s (a page is damaged or past the end of the file)",
                      strsignal(sig));
    } else if (strncmp(last, "damaged: ", 9) == 0)
        errbuf_printf(errbuf, errlen, "%s", last + 9);
    else if (strncmp(last, "error: ", 7) == 0) {
        errbuf_printf(errbuf, errlen, "store check: %s", last + 7);
        return STORE_CHECK_EIO;
    } else
        errbuf_printf(errbuf, errlen, "walking its B-tree failed (exit status %d; a page is damaged)",
                      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return STORE_CHECK_EDAMAGED;
}

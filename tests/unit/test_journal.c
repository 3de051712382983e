/*
 * tests/unit/test_journal.c — the purge journal (storage/journal.c): creating the ring
 * file, round trips through close and reopen, the ring filling up and wrapping round
 * only over records the caller says are synced, torn and corrupt segments being
 * skipped, files of the wrong size or type being refused and left alone, and segments
 * written by hand from the layout documented in journal_int.h (which cross-checks the
 * documented format against the code, in both directions), segments across the pieces
 * the open reads the ring in, and the memory an open and a replay of a 32 MiB ring take.
 * Every test works in its own mkdtemp directory under /tmp; main() removes them all.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "storage/journal_int.h"
#include "tests/unit/unit_tmp.h"

/* the layout as journal_int.h documents it (the test's own copy, on purpose) */
#define SEG_HEADER 32
#define SEG_OFF_CHECKSUM 24
#define RING_SIZE JOURNAL_MIN_SIZE /* what the tests create, unless they say otherwise */
#define RING_SECTORS (RING_SIZE / JOURNAL_SECTOR)
static const uint8_t seg_key[crypto_shorthash_KEYBYTES] = {'e', 'd', 'g', 'e', 'c', 'a', 'c', 'h',
                                                           'e', '-', 'j', 'o', 'u', 'r', 'n', 'l'};

/* ---- helpers: directories and files ---- */

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static journal_t *open_journal(const char *dir)
{
    char err[512] = "";
    journal_t *j = NULL;
    int rc = journal_open(&j, dir, RING_SIZE, NULL, err, sizeof(err));
    ck_assert_msg(rc == 0, "journal_open: %d %s", rc, err);
    ck_assert_ptr_nonnull(j);
    return j;
}

static void reopen(journal_t **j, const char *dir)
{
    journal_close(j);
    ck_assert_ptr_null(*j);
    *j = open_journal(dir);
}

/* The whole of a file (malloc'd; *len its size). */
static uint8_t *read_whole(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t r = pread(fd, buf + done, (size_t)st.st_size - done, (off_t)done);
        ck_assert_int_gt(r, 0);
        done += (size_t)r;
    }
    close(fd);
    *len = done;
    return buf;
}

static void write_whole(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

static void read_at(const char *path, size_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void write_at(const char *path, size_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

static void flip_byte(const char *path, size_t off)
{
    uint8_t b;
    read_at(path, off, &b, 1);
    b ^= 0x5a;
    write_at(path, off, &b, 1);
}

static int file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- helpers: the documented on-disk layout ---- */

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

typedef struct seg_hdr {
    uint32_t magic;
    unsigned version, sectors;
    uint64_t first_seq;
    uint32_t records, bytes;
    uint64_t checksum;
} seg_hdr_t;

static seg_hdr_t parse_hdr(const uint8_t *p)
{
    seg_hdr_t h = {.magic = (uint32_t)get_le(p, 4),
                   .version = (unsigned)get_le(p + 4, 2),
                   .sectors = (unsigned)get_le(p + 6, 2),
                   .first_seq = get_le(p + 8, 8),
                   .records = (uint32_t)get_le(p + 16, 4),
                   .bytes = (uint32_t)get_le(p + 20, 4),
                   .checksum = get_le(p + 24, 8)};
    return h;
}

/* The header of whatever is at `sector` of dir's journal.log. */
static seg_hdr_t hdr_at(const char *dir, size_t sector)
{
    char *path = path_in(dir, JOURNAL_FILE);
    uint8_t raw[SEG_HEADER];
    read_at(path, sector * JOURNAL_SECTOR, raw, sizeof(raw));
    free(path);
    return parse_hdr(raw);
}

/*
 * The documented checksum: SipHash-2-4 (crypto_shorthash) keyed "edgecache-journl" over
 * the 32 header bytes with the checksum field zeroed, then the payload; written as the
 * 8 output bytes (i.e. the little-endian u64 of the output).
 */
static uint64_t seg_checksum(const uint8_t *seg, size_t payload_len)
{
    uint8_t *copy = malloc(SEG_HEADER + payload_len), out[crypto_shorthash_BYTES];
    memcpy(copy, seg, SEG_HEADER + payload_len);
    memset(copy + SEG_OFF_CHECKSUM, 0, 8);
    crypto_shorthash(out, copy, SEG_HEADER + payload_len, seg_key);
    free(copy);
    return get_le(out, 8);
}

/* ---- helpers: records ---- */

/* A list of records that owns copies of their payloads. */
typedef struct rec_list {
    journal_rec_t *v;
    size_t n, cap;
} rec_list_t;

static void rec_list_push(rec_list_t *l, const journal_rec_t *r)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        ck_assert_ptr_nonnull(l->v);
    }
    journal_rec_t *c = &l->v[l->n++];
    *c = *r;
    void *p = malloc(r->payload_len ? r->payload_len : 1);
    if (r->payload_len)
        memcpy(p, r->payload, r->payload_len);
    c->payload = p;
}

static void rec_list_free(rec_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free((void *)l->v[i].payload);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* What journal_foreach handed to collect(): a copy of each record; stop at seq stop_at. */
typedef struct collector {
    rec_list_t got;
    uint64_t stop_at; /* 0: never stop */
    int stop_ret;
} collector_t;

static int collect(void *arg, const journal_rec_t *rec)
{
    collector_t *c = arg;
    rec_list_push(&c->got, rec);
    return c->stop_at != 0 && rec->seq == c->stop_at ? c->stop_ret : 0;
}

static void assert_rec_eq(const journal_rec_t *got, const journal_rec_t *want)
{
    ck_assert_uint_eq(got->seq, want->seq);
    ck_assert_msg(got->kind == want->kind, "seq %llu: kind %d, want %d", (unsigned long long)want->seq, got->kind, want->kind);
    ck_assert_msg(got->flags == want->flags, "seq %llu: flags %u, want %u", (unsigned long long)want->seq, got->flags,
                  want->flags);
    ck_assert_msg(got->payload_len == want->payload_len, "seq %llu: payload_len %zu, want %zu", (unsigned long long)want->seq,
                  got->payload_len, want->payload_len);
    if (want->payload_len)
        ck_assert_msg(memcmp(got->payload, want->payload, want->payload_len) == 0, "seq %llu: payload differs",
                      (unsigned long long)want->seq);
}

/* journal_foreach(after) returns 0 and exactly the records of `want` with seq > after, in order. */
static void expect_foreach(journal_t *j, uint64_t after, const rec_list_t *want)
{
    collector_t c = {0};
    int rc = journal_foreach(j, after, collect, &c);
    ck_assert_int_eq(rc, 0);
    size_t k = 0;
    for (size_t i = 0; i < want->n; i++) {
        if (want->v[i].seq <= after)
            continue;
        ck_assert_msg(k < c.got.n, "after %llu: record seq %llu missing (got %zu records)", (unsigned long long)after,
                      (unsigned long long)want->v[i].seq, c.got.n);
        assert_rec_eq(&c.got.v[k], &want->v[i]);
        k++;
    }
    ck_assert_msg(k == c.got.n, "after %llu: %zu records, want %zu", (unsigned long long)after, c.got.n, k);
    rec_list_free(&c.got);
}

/* One journal_append's worth of records, with their payload storage. */
#define BATCH_MAX 4096
typedef struct batch {
    journal_rec_t recs[BATCH_MAX];
    uint8_t payload[BATCH_MAX][JOURNAL_MAX_PAYLOAD];
    size_t n;
} batch_t;

static batch_t *batch_new(void)
{
    batch_t *b = calloc(1, sizeof(*b));
    ck_assert_ptr_nonnull(b);
    return b;
}

/* Payload bytes that differ from record to record. */
static void fill_payload(uint8_t *p, size_t len, uint64_t seq)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seq * 131 + i * 7 + (seq >> 8) + 1);
}

/* Add a record with the next seq (first_seq + n); payload length by kind (len for SKEY). */
static void batch_add(batch_t *b, uint64_t first_seq, int kind, unsigned flags, size_t len)
{
    ck_assert_uint_lt(b->n, BATCH_MAX);
    journal_rec_t *r = &b->recs[b->n];
    r->seq = first_seq + b->n;
    r->kind = kind;
    r->flags = flags;
    r->payload_len = kind == JOURNAL_URL ? 16 : kind == JOURNAL_ALL ? 0 : len;
    fill_payload(b->payload[b->n], r->payload_len, r->seq);
    r->payload = b->payload[b->n];
    b->n++;
}

static size_t batch_bytes(const batch_t *b)
{
    size_t bytes = 0;
    for (size_t i = 0; i < b->n; i++)
        bytes += 4 + b->recs[i].payload_len;
    return bytes;
}

/* Sectors the batch's segment takes, by the documented layout. */
static size_t batch_sectors(const batch_t *b)
{
    return (SEG_HEADER + batch_bytes(b) + JOURNAL_SECTOR - 1) / JOURNAL_SECTOR;
}

/* Append b; when it is written, add its records to *want. Returns journal_append's code. */
static int append_batch(journal_t *j, const batch_t *b, uint64_t synced_upto, rec_list_t *want)
{
    int rc = journal_append(j, b->recs, b->n, synced_upto);
    if (rc == 0)
        for (size_t i = 0; i < b->n; i++)
            rec_list_push(want, &b->recs[i]);
    return rc;
}

/* A batch of `n` SKEY records of 511 bytes (the biggest records there are). */
static void batch_big(batch_t *b, uint64_t first_seq, size_t n)
{
    b->n = 0;
    for (size_t i = 0; i < n; i++)
        batch_add(b, first_seq, JOURNAL_SKEY, i % 3 == 0 ? JOURNAL_F_SOFT : 0, JOURNAL_MAX_PAYLOAD);
}

/* ---- tests ---- */

START_TEST(test_open_creates_empty)
{
    char *dir = tmpdir_new();
    char *path = path_in(dir, JOURNAL_FILE), *tmp = path_in(dir, JOURNAL_FILE ".tmp");
    ck_assert(!file_exists(path));
    journal_t *j = open_journal(dir);

    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_uint_eq((uintmax_t)st.st_size, RING_SIZE);
    ck_assert(!file_exists(tmp));
    size_t len;
    uint8_t *all = read_whole(path, &len);
    ck_assert_uint_eq(len, RING_SIZE);
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(all[i] == 0, "byte %zu of a new journal is %u", i, all[i]);
    free(all);

    ck_assert_uint_eq(journal_last_seq(j), 0);
    rec_list_t none = {0};
    expect_foreach(j, 0, &none);

    reopen(&j, dir);
    ck_assert_uint_eq(journal_last_seq(j), 0);
    expect_foreach(j, 0, &none);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq((uintmax_t)st.st_size, RING_SIZE);
    ck_assert(!file_exists(tmp));

    journal_close(&j);
    ck_assert_ptr_null(j);
    journal_close(&j); /* closing a NULL journal is a no-op */
    free(tmp);
    free(path);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_round_trip)
{
    char *dir = tmpdir_new();
    journal_t *j = open_journal(dir);
    batch_t *b = batch_new();
    rec_list_t want = {0};
    uint64_t seq = 1;

    /* one of each kind, flags both ways */
    b->n = 0;
    batch_add(b, seq, JOURNAL_URL, 0, 0);
    batch_add(b, seq, JOURNAL_SKEY, JOURNAL_F_SOFT, 1);
    batch_add(b, seq, JOURNAL_ALL, 0, 0);
    batch_add(b, seq, JOURNAL_URL, JOURNAL_F_SOFT, 0);
    ck_assert_int_eq(append_batch(j, b, 0, &want), 0);
    seq += b->n;
    ck_assert_uint_eq(journal_last_seq(j), seq - 1);
    /* a single record of the biggest payload */
    b->n = 0;
    batch_add(b, seq, JOURNAL_SKEY, JOURNAL_F_SOFT, JOURNAL_MAX_PAYLOAD);
    ck_assert_int_eq(append_batch(j, b, 0, &want), 0);
    seq += b->n;
    /* a segment of several sectors, SKEY lengths 1..511 */
    b->n = 0;
    for (size_t len = 1; len <= JOURNAL_MAX_PAYLOAD; len += 51)
        batch_add(b, seq, JOURNAL_SKEY, len % 2 ? JOURNAL_F_SOFT : 0, len);
    batch_add(b, seq, JOURNAL_SKEY, 0, JOURNAL_MAX_PAYLOAD);
    batch_add(b, seq, JOURNAL_ALL, 0, 0);
    ck_assert_uint_gt(batch_sectors(b), 2);
    ck_assert_int_eq(append_batch(j, b, 0, &want), 0);
    seq += b->n;
    /* and a last small one */
    b->n = 0;
    batch_add(b, seq, JOURNAL_ALL, 0, 0);
    batch_add(b, seq, JOURNAL_URL, JOURNAL_F_SOFT, 0);
    ck_assert_int_eq(append_batch(j, b, 0, &want), 0);
    uint64_t last = b->recs[b->n - 1].seq;
    ck_assert_uint_eq(journal_last_seq(j), last);
    expect_foreach(j, 0, &want); /* before closing too */

    reopen(&j, dir);
    ck_assert_uint_eq(journal_last_seq(j), last);
    expect_foreach(j, 0, &want);
    for (uint64_t after = 1; after <= last + 2; after++)
        expect_foreach(j, after, &want);
    expect_foreach(j, UINT64_MAX, &want);

    /* fn returning non-zero stops the walk, and that value comes back */
    collector_t c = {.stop_at = 6, .stop_ret = 7};
    ck_assert_int_eq(journal_foreach(j, 0, collect, &c), 7);
    ck_assert_uint_eq(c.got.n, 6);
    ck_assert_uint_eq(c.got.v[5].seq, 6);
    rec_list_free(&c.got);
    collector_t c2 = {.stop_at = 3, .stop_ret = -12345};
    ck_assert_int_eq(journal_foreach(j, 2, collect, &c2), -12345);
    ck_assert_uint_eq(c2.got.n, 1);
    ck_assert_uint_eq(c2.got.v[0].seq, 3);
    rec_list_free(&c2.got);

    journal_close(&j);
    rec_list_free(&want);
    free(b);
    tmpdir_free(dir);
}
END_TEST

/* Appends after a reopen go right after the newest segment, and are kept. */
START_TEST(test_reopen_appends_after_newest)
{
    char *dir = tmpdir_new();
    journal_t *j = open_journal(dir);
    batch_t *b = batch_new();
    rec_list_t want = {0};
    uint64_t seq = 1;
    size_t sector = 0;
    for (int i = 0; i < 3; i++) {
        batch_big(b, seq, (size_t)(1 + 2 * i)); /* 1, 3 and 5 records: 2, 4 and 6 sectors */
        ck_assert_int_eq(append_batch(j, b, 0, &want), 0);
        seg_hdr_t h = hdr_at(dir, sector);
        ck_assert_uint_eq(h.first_seq, seq);
        ck_assert_uint_eq(h.sectors, batch_sectors(b));
        sector += batch_sectors(b);
        seq += b->n;
    }
    reopen(&j, dir);
    ck_assert_uint_eq(journal_last_seq(j), seq - 1);
    b->n = 0;
    batch_add(b, seq, JOURNAL_URL, 0, 0);
    ck_assert_int_eq(append_batch(j, b, 0, &want), 0);
    seg_hdr_t h = hdr_at(dir, sector);
    ck_assert_uint_eq(h.first_seq, seq);
    ck_assert_uint_eq(h.records, 1);
    reopen(&j, dir);
    ck_assert_uint_eq(journal_last_seq(j), seq);
    expect_foreach(j, 0, &want);
    journal_close(&j);
    rec_list_free(&want);
    free(b);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_ring_full_then_wraps)
{
    char *dir = tmpdir_new();
    char *path = path_in(dir, JOURNAL_FILE);
    journal_t *j = open_journal(dir);
    batch_t *b = batch_new();
    rec_list_t want = {0};
    uint64_t seq = 1;
    enum { MAXSEG = 1024 };
    static size_t seg_sector[MAXSEG];
    static uint64_t seg_first[MAXSEG], seg_last[MAXSEG];
    size_t nseg = 0, used = 0, payload_total = 0;

    /* synced_upto 0: nothing may be overwritten, so the ring must fill up */
    int rc = 0;
    size_t iter;
    for (iter = 0; iter < RING_SECTORS; iter++) {
        batch_big(b, seq, 120);
        size_t secs = batch_sectors(b);
        uint8_t *before = NULL;
        size_t blen = 0;
        if (used + secs > RING_SECTORS)
            before = read_whole(path, &blen);
        rc = append_batch(j, b, 0, &want);
        if (rc == JOURNAL_EFULL) {
            ck_assert_msg(used + secs > RING_SECTORS, "EFULL with %zu of %zu sectors used, segment of %zu", used,
                          (size_t)RING_SECTORS, secs);
            ck_assert_ptr_nonnull(before);
            size_t alen;
            uint8_t *after = read_whole(path, &alen);
            ck_assert_uint_eq(alen, blen);
            ck_assert_msg(memcmp(before, after, alen) == 0, "JOURNAL_EFULL changed the file");
            free(after);
            free(before);
            break;
        }
        free(before);
        ck_assert_int_eq(rc, 0);
        ck_assert_msg(used + secs <= RING_SECTORS, "append wrapped over unsynced records (used %zu, segment %zu)", used, secs);
        ck_assert_uint_lt(nseg, MAXSEG);
        seg_sector[nseg] = used;
        seg_first[nseg] = seq;
        seg_last[nseg] = seq + b->n - 1;
        nseg++;
        used += secs;
        payload_total += batch_bytes(b);
        seq += b->n;
    }
    ck_assert_int_eq(rc, JOURNAL_EFULL);
    ck_assert_uint_lt(payload_total, RING_SIZE);
    ck_assert_uint_ge(nseg, 3);
    ck_assert_uint_eq(journal_last_seq(j), seq - 1);
    /* a full ring stays full while nothing is synced */
    ck_assert_int_eq(journal_append(j, b->recs, b->n, 0), JOURNAL_EFULL);

    /* everything synced: the same segment wraps round to sector 0 */
    uint64_t wrap_first = seq;
    ck_assert_int_eq(append_batch(j, b, seq - 1, &want), 0);
    seq += b->n;
    ck_assert_uint_eq(journal_last_seq(j), seq - 1);
    seg_hdr_t h = hdr_at(dir, 0);
    ck_assert_uint_eq(h.first_seq, wrap_first);
    ck_assert_uint_eq(h.sectors, batch_sectors(b));
    h = hdr_at(dir, seg_sector[1]); /* the second segment is untouched */
    ck_assert_uint_eq(h.first_seq, seg_first[1]);

    reopen(&j, dir);
    ck_assert_uint_eq(journal_last_seq(j), seq - 1);
    rec_list_t newest = {0};
    for (size_t i = 0; i < want.n; i++)
        if (want.v[i].seq >= wrap_first)
            rec_list_push(&newest, &want.v[i]);
    ck_assert_uint_eq(newest.n, b->n);
    expect_foreach(j, wrap_first - 1, &newest);
    /* the first segment is gone, every other is still there */
    rec_list_t kept = {0};
    for (size_t i = 0; i < want.n; i++)
        if (want.v[i].seq > seg_last[0])
            rec_list_push(&kept, &want.v[i]);
    expect_foreach(j, 0, &kept);

    /* after the reopen the next segment goes over the second one: only once it is synced */
    batch_big(b, seq, 120);
    ck_assert_int_eq(journal_append(j, b->recs, b->n, 0), JOURNAL_EFULL);
    ck_assert_int_eq(journal_append(j, b->recs, b->n, seg_last[1] - 1), JOURNAL_EFULL);
    ck_assert_int_eq(journal_append(j, b->recs, b->n, seg_last[1]), 0);
    h = hdr_at(dir, seg_sector[1]);
    ck_assert_uint_eq(h.first_seq, seq);
    seq += b->n;
    /* and the one after that needs the third segment synced */
    batch_big(b, seq, 120);
    ck_assert_int_eq(journal_append(j, b->recs, b->n, seg_last[1]), JOURNAL_EFULL);
    ck_assert_int_eq(journal_append(j, b->recs, b->n, seg_last[2]), 0);
    ck_assert_uint_eq(journal_last_seq(j), b->recs[b->n - 1].seq);

    journal_close(&j);
    rec_list_free(&kept);
    rec_list_free(&newest);
    rec_list_free(&want);
    free(b);
    free(path);
    tmpdir_free(dir);
}
END_TEST

/* Three segments, the second spanning two sectors; a damaged byte at `off` within the file. */
typedef struct three_segs {
    rec_list_t seg[3];
    size_t sector[3];
    uint64_t last[3];
} three_segs_t;

static void write_three(journal_t *j, const char *dir, three_segs_t *t)
{
    batch_t *b = batch_new();
    uint64_t seq = 1;
    size_t sector = 0;
    memset(t, 0, sizeof(*t));
    for (int s = 0; s < 3; s++) {
        b->n = 0;
        if (s == 0) {
            batch_add(b, seq, JOURNAL_URL, 0, 0);
            batch_add(b, seq, JOURNAL_ALL, 0, 0);
        } else if (s == 1) {
            for (int i = 0; i < 3; i++)
                batch_add(b, seq, JOURNAL_SKEY, i == 1 ? JOURNAL_F_SOFT : 0, 300);
            ck_assert_uint_eq(batch_sectors(b), 2);
        } else {
            batch_add(b, seq, JOURNAL_SKEY, JOURNAL_F_SOFT, 10);
            batch_add(b, seq, JOURNAL_URL, JOURNAL_F_SOFT, 0);
        }
        ck_assert_int_eq(append_batch(j, b, 0, &t->seg[s]), 0);
        /* find the segment from the file: the first at 0, each after the previous one's sectors */
        seg_hdr_t h = hdr_at(dir, sector);
        ck_assert_uint_eq(h.first_seq, seq);
        t->sector[s] = sector;
        sector += h.sectors;
        seq += b->n;
        t->last[s] = seq - 1;
    }
    free(b);
}

static void free_three(three_segs_t *t)
{
    for (int s = 0; s < 3; s++)
        rec_list_free(&t->seg[s]);
}

START_TEST(test_corrupt_segment_skipped)
{
    /* where to damage the second segment, relative to its start; -1: zero its second sector */
    static const struct {
        const char *what;
        long off;
        int survives; /* the padding after the payload is not covered by the checksum */
    } damage[] = {
        {"magic", 0, 0},
        {"first_seq", 8, 0},
        {"records", 16, 0},
        {"checksum", 24, 0},
        {"first payload byte", 32, 0},
        {"a payload byte in the first sector", 200, 0},
        {"last payload byte (second sector)", 32 + 3 * 304 - 1, 0},
        {"second sector torn (zeroed)", -1, 0},
        {"padding after the payload", 1000, 1},
    };
    for (size_t d = 0; d < sizeof(damage) / sizeof(damage[0]); d++) {
        char *dir = tmpdir_new();
        char *path = path_in(dir, JOURNAL_FILE);
        journal_t *j = open_journal(dir);
        three_segs_t t;
        write_three(j, dir, &t);
        journal_close(&j);

        size_t base = t.sector[1] * JOURNAL_SECTOR;
        if (damage[d].off >= 0) {
            flip_byte(path, base + (size_t)damage[d].off);
        } else {
            uint8_t zeros[JOURNAL_SECTOR] = {0};
            write_at(path, base + JOURNAL_SECTOR, zeros, sizeof(zeros));
        }

        j = open_journal(dir);
        ck_assert_msg(journal_last_seq(j) == t.last[2], "%s: last_seq %llu, want %llu", damage[d].what,
                      (unsigned long long)journal_last_seq(j), (unsigned long long)t.last[2]);
        rec_list_t want = {0};
        for (int s = 0; s < 3; s++)
            if (s != 1 || damage[d].survives)
                for (size_t i = 0; i < t.seg[s].n; i++)
                    rec_list_push(&want, &t.seg[s].v[i]);
        collector_t c = {0};
        ck_assert_int_eq(journal_foreach(j, 0, collect, &c), 0);
        ck_assert_msg(c.got.n == want.n, "%s: %zu records, want %zu", damage[d].what, c.got.n, want.n);
        rec_list_free(&c.got);
        expect_foreach(j, 0, &want);

        rec_list_free(&want);
        free_three(&t);
        journal_close(&j);
        free(path);
        tmpdir_free(dir);
    }
}
END_TEST

/* A torn newest segment was never acknowledged: the journal goes on from the one before. */
START_TEST(test_torn_newest_segment)
{
    char *dir = tmpdir_new();
    char *path = path_in(dir, JOURNAL_FILE);
    journal_t *j = open_journal(dir);
    three_segs_t t;
    write_three(j, dir, &t);
    journal_close(&j);
    flip_byte(path, t.sector[2] * JOURNAL_SECTOR + SEG_HEADER + 5);

    j = open_journal(dir);
    ck_assert_uint_eq(journal_last_seq(j), t.last[1]);
    rec_list_t want = {0};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < t.seg[s].n; i++)
            rec_list_push(&want, &t.seg[s].v[i]);
    expect_foreach(j, 0, &want);

    /* the same seqs again (the store reuses them): written where the torn one was */
    batch_t *b = batch_new();
    batch_add(b, t.last[1] + 1, JOURNAL_ALL, 0, 0);
    ck_assert_int_eq(append_batch(j, b, 0, &want), 0);
    seg_hdr_t h = hdr_at(dir, t.sector[2]);
    ck_assert_uint_eq(h.first_seq, t.last[1] + 1);
    ck_assert_uint_eq(h.records, 1);
    reopen(&j, dir);
    ck_assert_uint_eq(journal_last_seq(j), t.last[1] + 1);
    expect_foreach(j, 0, &want);

    journal_close(&j);
    free(b);
    rec_list_free(&want);
    free_three(&t);
    free(path);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_wrong_size_refused)
{
    static const size_t sizes[] = {0, 1000, JOURNAL_MIN_SIZE - JOURNAL_SECTOR, JOURNAL_MIN_SIZE + 1, 2 * JOURNAL_MIN_SIZE - 1};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        char *dir = tmpdir_new();
        char *path = path_in(dir, JOURNAL_FILE), *tmp = path_in(dir, JOURNAL_FILE ".tmp");
        uint8_t *content = malloc(sizes[s] + 1);
        for (size_t i = 0; i < sizes[s]; i++)
            content[i] = (uint8_t)(i * 13 + 5);
        write_whole(path, content, sizes[s]);

        char err[512] = "";
        journal_t *dummy = (journal_t *)err, *j = dummy;
        ck_assert_int_eq(journal_open(&j, dir, RING_SIZE, NULL, err, sizeof(err)), JOURNAL_EIO);
        ck_assert_ptr_null(j);
        ck_assert_msg(strstr(err, path) != NULL, "size %zu: message does not name %s: %s", sizes[s], path, err);
        size_t len;
        uint8_t *now = read_whole(path, &len);
        ck_assert_uint_eq(len, sizes[s]);
        ck_assert_msg(len == 0 || memcmp(now, content, len) == 0, "size %zu: the file was changed", sizes[s]);
        ck_assert(!file_exists(tmp));
        free(now);
        free(content);
        free(tmp);
        free(path);
        tmpdir_free(dir);
    }

    /* larger than any journal (sparse: made with ftruncate) */
    {
        char *dir = tmpdir_new();
        char *path = path_in(dir, JOURNAL_FILE);
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)(JOURNAL_MAX_SIZE + JOURNAL_SECTOR)), 0);
        close(fd);
        char err[512] = "";
        journal_t *j = NULL;
        ck_assert_int_eq(journal_open(&j, dir, RING_SIZE, NULL, err, sizeof(err)), JOURNAL_EIO);
        ck_assert_ptr_null(j);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq((uintmax_t)st.st_size, JOURNAL_MAX_SIZE + JOURNAL_SECTOR);
        free(path);
        tmpdir_free(dir);
    }

    /* a directory of that name */
    char *dir = tmpdir_new();
    char *path = path_in(dir, JOURNAL_FILE), *inside = path_in(path, "keep");
    ck_assert_int_eq(mkdir(path, 0755), 0);
    write_whole(inside, "x", 1);
    char err[512] = "";
    journal_t *j = NULL;
    ck_assert_int_eq(journal_open(&j, dir, RING_SIZE, NULL, err, sizeof(err)), JOURNAL_EIO);
    ck_assert_ptr_null(j);
    ck_assert_msg(strstr(err, path) != NULL, "message does not name %s: %s", path, err);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert(file_exists(inside));
    free(inside);
    free(path);
    tmpdir_free(dir);
}
END_TEST

/* A record written by hand: kind, flags, payload. */
typedef struct hand_rec {
    int kind;
    unsigned flags;
    const char *payload;
    size_t len;
} hand_rec_t;

/*
 * Write one segment by the documented layout at `sector` of path (which must exist);
 * returns the sectors it takes.
 */
static size_t write_segment(const char *path, size_t sector, uint64_t first_seq, const hand_rec_t *recs, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += 4 + recs[i].len;
    size_t sectors = (SEG_HEADER + bytes + JOURNAL_SECTOR - 1) / JOURNAL_SECTOR;
    uint8_t *seg = calloc(sectors, JOURNAL_SECTOR);
    memcpy(seg, "ECJ1", 4);
    put_le(seg + 4, JOURNAL_VERSION, 2);
    put_le(seg + 6, sectors, 2);
    put_le(seg + 8, first_seq, 8);
    put_le(seg + 16, n, 4);
    put_le(seg + 20, bytes, 4);
    uint8_t *q = seg + SEG_HEADER;
    for (size_t i = 0; i < n; i++) {
        q[0] = (uint8_t)recs[i].kind;
        q[1] = (uint8_t)recs[i].flags;
        put_le(q + 2, recs[i].len, 2);
        memcpy(q + 4, recs[i].payload, recs[i].len);
        q += 4 + recs[i].len;
    }
    put_le(seg + SEG_OFF_CHECKSUM, seg_checksum(seg, bytes), 8);
    write_at(path, sector * JOURNAL_SECTOR, seg, sectors * JOURNAL_SECTOR);
    free(seg);
    return sectors;
}

/* A zero-filled journal.log of the right size, made by the test (not by journal_open). */
static char *zero_journal(const char *dir)
{
    char *path = path_in(dir, JOURNAL_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)RING_SIZE), 0);
    close(fd);
    return path;
}

START_TEST(test_hand_written_segments)
{
    ck_assert_int_ge(sodium_init(), 0);
    static const char url[16] = "0123456789abcdef";
    char big[JOURNAL_MAX_PAYLOAD];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 3);

    /* valid records, at sectors 5 and 9 of an otherwise zero file */
    {
        char *dir = tmpdir_new();
        char *path = zero_journal(dir);
        hand_rec_t a[] = {
            {JOURNAL_URL, JOURNAL_F_SOFT, url, 16},
            {JOURNAL_SKEY, 0, "purge-me", 8},
            {JOURNAL_ALL, 0, "", 0},
        };
        hand_rec_t bb[] = {
            {JOURNAL_SKEY, JOURNAL_F_SOFT, big, sizeof(big)},
            {JOURNAL_SKEY, 0, "k", 1},
        };
        ck_assert_uint_eq(write_segment(path, 5, 100, a, 3), 1);
        size_t next = 9 + write_segment(path, 9, 103, bb, 2);
        rec_list_t want = {0};
        for (size_t i = 0; i < 3; i++) {
            journal_rec_t r = {
                .seq = 100 + i, .kind = a[i].kind, .flags = a[i].flags, .payload = a[i].payload, .payload_len = a[i].len};
            rec_list_push(&want, &r);
        }
        for (size_t i = 0; i < 2; i++) {
            journal_rec_t r = {
                .seq = 103 + i, .kind = bb[i].kind, .flags = bb[i].flags, .payload = bb[i].payload, .payload_len = bb[i].len};
            rec_list_push(&want, &r);
        }
        journal_t *j = open_journal(dir);
        ck_assert_uint_eq(journal_last_seq(j), 104);
        expect_foreach(j, 0, &want);
        expect_foreach(j, 102, &want);

        /* the journal goes on after the newest hand-written segment */
        batch_t *b = batch_new();
        batch_add(b, 105, JOURNAL_URL, JOURNAL_F_SOFT, 0);
        batch_add(b, 105, JOURNAL_SKEY, 0, 77);
        ck_assert_int_eq(append_batch(j, b, 0, &want), 0);
        journal_close(&j);

        /* and what journal_append wrote matches the documented layout, checksum included */
        uint8_t raw[JOURNAL_SECTOR];
        read_at(path, next * JOURNAL_SECTOR, raw, sizeof(raw));
        seg_hdr_t h = parse_hdr(raw);
        ck_assert_mem_eq(raw, "ECJ1", 4);
        ck_assert_uint_eq(h.version, JOURNAL_VERSION);
        ck_assert_uint_eq(h.sectors, 1);
        ck_assert_uint_eq(h.first_seq, 105);
        ck_assert_uint_eq(h.records, 2);
        ck_assert_uint_eq(h.bytes, 4 + 16 + 4 + 77);
        ck_assert_uint_eq(h.checksum, seg_checksum(raw, h.bytes));
        ck_assert_uint_eq(raw[SEG_HEADER], JOURNAL_URL);
        ck_assert_uint_eq(raw[SEG_HEADER + 1], JOURNAL_F_SOFT);
        ck_assert_uint_eq(get_le(raw + SEG_HEADER + 2, 2), 16);
        ck_assert_mem_eq(raw + SEG_HEADER + 4, b->payload[0], 16);
        ck_assert_uint_eq(raw[SEG_HEADER + 20], JOURNAL_SKEY);
        ck_assert_uint_eq(get_le(raw + SEG_HEADER + 22, 2), 77);
        ck_assert_mem_eq(raw + SEG_HEADER + 24, b->payload[1], 77);

        j = open_journal(dir);
        ck_assert_uint_eq(journal_last_seq(j), 106);
        expect_foreach(j, 0, &want);
        journal_close(&j);
        free(b);
        rec_list_free(&want);
        free(path);
        tmpdir_free(dir);
    }

    /* an intact record this version does not know: never half-apply a journal */
    static const hand_rec_t bad[] = {
        {'Z', 0, "abc", 3},        /* unknown kind */
        {0, 0, "", 0},             /* kind 0 */
        {JOURNAL_URL, 0, url, 15}, /* a URL hash of the wrong length */
        {JOURNAL_SKEY, 0, "", 0},  /* an empty surrogate key */
        {JOURNAL_ALL, 0, "x", 1},  /* purge-all with a payload */
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        char *dir = tmpdir_new();
        char *path = zero_journal(dir);
        hand_rec_t recs[] = {{JOURNAL_SKEY, 0, "fine", 4}, bad[k]};
        write_segment(path, 0, 7, recs, 2);
        journal_t *j = open_journal(dir);
        ck_assert_uint_eq(journal_last_seq(j), 8);
        collector_t c = {0};
        ck_assert_msg(journal_foreach(j, 0, collect, &c) == JOURNAL_EIO, "bad record %zu not refused", k);
        rec_list_free(&c.got);
        /* also when the bad record is at or below `after` */
        ck_assert_int_eq(journal_foreach(j, 8, collect, &c), JOURNAL_EIO);
        ck_assert_uint_eq(c.got.n, 0);
        rec_list_free(&c.got);
        journal_close(&j);
        free(path);
        tmpdir_free(dir);
    }
}
END_TEST

/* A tiny deterministic generator, so a failure can be replayed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* With nothing synced, fill every sector; every record ever appended is still there. */
/* Fill a ring with the biggest segments (4071 records of 511 bytes: 4095 sectors each)
 * until one does not fit; returns how many did. */
static size_t fill_with_big_segments(journal_t *j, batch_t *b, uint64_t *seq)
{
    for (size_t n = 0;; n++) {
        batch_big(b, *seq, 4071);
        ck_assert_uint_le(batch_bytes(b), JOURNAL_MAX_SEGMENT_BYTES);
        ck_assert_uint_eq(batch_sectors(b), 4095);
        int rc = journal_append(j, b->recs, b->n, 0);
        if (rc == JOURNAL_EFULL)
            return n;
        ck_assert_int_eq(rc, 0);
        *seq += b->n;
    }
}

START_TEST(test_size_chosen_at_creation_and_kept)
{
    char *dir = tmpdir_new();
    char *path = path_in(dir, JOURNAL_FILE);
    char err[512] = "";
    journal_t *j = NULL;
    batch_t *b = batch_new();
    struct stat st;
    uint64_t seq = 1;

    /* a new journal gets the size asked for, and its ring is that long: 16 MiB hold 8
     * segments of 4095 sectors (32760 of 32768 sectors), where 8 MiB hold 4 */
    ck_assert_int_eq(journal_open(&j, dir, 2 * JOURNAL_MIN_SIZE, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq((uintmax_t)st.st_size, 2 * JOURNAL_MIN_SIZE);
    ck_assert_uint_eq(fill_with_big_segments(j, b, &seq), 8);
    uint64_t last = seq - 1;
    journal_close(&j);

    /* reopened asking for another size: it keeps its own, and everything in it */
    ck_assert_int_eq(journal_open(&j, dir, JOURNAL_MIN_SIZE, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq((uintmax_t)st.st_size, 2 * JOURNAL_MIN_SIZE);
    ck_assert_uint_eq(journal_last_seq(j), last);
    ck_assert_int_eq(journal_append(j, b->recs, b->n, 0), JOURNAL_EFULL);
    /* once synced, the next big segment wraps at its own end (8 of its 32768 sectors
     * are left there), back to sector 0 */
    batch_big(b, seq, 4071);
    ck_assert_int_eq(journal_append(j, b->recs, b->n, last), 0);
    ck_assert_uint_eq(hdr_at(dir, 0).first_seq, seq);
    journal_close(&j);

    /* a journal of the first version's size (8 MiB) keeps working as one */
    char *dir2 = tmpdir_new();
    free(zero_journal(dir2));
    seq = 1;
    ck_assert_int_eq(journal_open(&j, dir2, 4 * JOURNAL_MIN_SIZE, NULL, err, sizeof(err)), 0);
    ck_assert_uint_eq(fill_with_big_segments(j, b, &seq), 4);
    journal_close(&j);
    ck_assert_int_eq(stat(path, &st), 0);

    free(b);
    free(path);
    tmpdir_free(dir2);
    tmpdir_free(dir);
}
END_TEST

START_TEST(test_full_ring_keeps_everything)
{
    char *dir = tmpdir_new();
    journal_t *j = open_journal(dir);
    batch_t *b = batch_new();
    rec_list_t want = {0};
    uint64_t seq = 1, first_last = 0;
    size_t used = 0;
    int efull_big = 0;

    /* random segments (1..200 records of every kind) until one does not fit */
    for (size_t iter = 0; iter < RING_SECTORS; iter++) {
        b->n = 0;
        size_t n = 1 + rng_next() % 200;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rng_next();
            int kind = r % 4 == 0 ? JOURNAL_URL : r % 4 == 1 ? JOURNAL_ALL : JOURNAL_SKEY;
            batch_add(b, seq, kind, (r >> 8) % 2 ? JOURNAL_F_SOFT : 0, 1 + (r >> 16) % JOURNAL_MAX_PAYLOAD);
        }
        size_t secs = batch_sectors(b);
        int rc = append_batch(j, b, 0, &want);
        if (rc == JOURNAL_EFULL) {
            ck_assert_msg(used + secs > RING_SECTORS, "EFULL with %zu sectors used, segment of %zu", used, secs);
            efull_big = 1;
            break;
        }
        ck_assert_int_eq(rc, 0);
        ck_assert_msg(used + secs <= RING_SECTORS, "append wrapped over unsynced records");
        if (used == 0)
            first_last = b->recs[b->n - 1].seq;
        used += secs;
        seq += b->n;
    }
    ck_assert(efull_big);
    /* then one-sector segments until not even those fit */
    int rc = 0;
    for (size_t iter = 0; iter <= RING_SECTORS && rc == 0; iter++) {
        b->n = 0;
        batch_add(b, seq, JOURNAL_SKEY, 0, 1 + rng_next() % (JOURNAL_SECTOR - SEG_HEADER - 4));
        rc = append_batch(j, b, 0, &want);
        if (rc == 0) {
            used++;
            seq++;
        }
    }
    ck_assert_int_eq(rc, JOURNAL_EFULL);
    ck_assert_uint_eq(used, RING_SECTORS);
    ck_assert_uint_eq(journal_last_seq(j), seq - 1);
    expect_foreach(j, 0, &want);

    reopen(&j, dir);
    ck_assert_uint_eq(journal_last_seq(j), seq - 1);
    expect_foreach(j, 0, &want);
    expect_foreach(j, seq / 2, &want);
    /* after the reopen it is just as full */
    b->n = 0;
    batch_add(b, seq, JOURNAL_ALL, 0, 0);
    ck_assert_int_eq(journal_append(j, b->recs, 1, 0), JOURNAL_EFULL);
    ck_assert_int_eq(journal_append(j, b->recs, 1, first_last - 1), JOURNAL_EFULL);
    reopen(&j, dir);
    expect_foreach(j, 0, &want);
    /* once the first segment is synced, the ring wraps over it (and only it) */
    ck_assert_int_eq(journal_append(j, b->recs, 1, first_last), 0);
    seg_hdr_t h = hdr_at(dir, 0);
    ck_assert_uint_eq(h.first_seq, seq);
    ck_assert_uint_eq(journal_last_seq(j), seq);

    journal_close(&j);
    rec_list_free(&want);
    free(b);
    tmpdir_free(dir);
}
END_TEST

/* Open dir's journal under `key` (NULL: the public key of version 2 journals). */
static journal_t *open_journal_keyed(const char *dir, const uint8_t *key)
{
    char err[512] = "";
    journal_t *j = NULL;
    int rc = journal_open(&j, dir, RING_SIZE, key, err, sizeof(err));
    ck_assert_msg(rc == 0, "journal_open: %d %s", rc, err);
    return j;
}

static size_t count_records(journal_t *j, uint64_t *max_seq, int *saw_all)
{
    collector_t c = {0};
    ck_assert_int_eq(journal_foreach(j, 0, collect, &c), 0);
    rec_list_t got = c.got;
    size_t n = got.n;
    *max_seq = 0;
    *saw_all = 0;
    for (size_t i = 0; i < got.n; i++) {
        if (got.v[i].seq > *max_seq)
            *max_seq = got.v[i].seq;
        *saw_all |= got.v[i].kind == JOURNAL_ALL;
    }
    rec_list_free(&got);
    return n;
}

/*
 * A surrogate key is client bytes, copied into the journal. One that holds a
 * well-formed segment (a purge-all, seq 1000) at a sector boundary is read back as a
 * segment of its own once the real header before it is gone (the ring wrapping over
 * it, here zeroed by hand) — if the checksum's key is known. Under the store's secret
 * key it is not.
 */
START_TEST(test_forged_segment_needs_the_key)
{
    ck_assert_int_ge(sodium_init(), 0);
    char *dir = tmpdir_new(), *scratch = tmpdir_new();
    uint8_t key[JOURNAL_KEY_BYTES];
    randombytes_buf(key, sizeof(key));

    /* the forged segment, by the documented layout with the public key */
    char *spath = zero_journal(scratch);
    hand_rec_t all = {JOURNAL_ALL, 0, "", 0};
    ck_assert_uint_eq(write_segment(spath, 0, 1000, &all, 1), 1);
    uint8_t forged[SEG_HEADER + 4];
    read_at(spath, 0, forged, sizeof(forged));

    /* one real segment: a 472-byte key, then a key made of the forged bytes, which land at sector 1 */
    journal_t *j = open_journal_keyed(dir, key);
    uint8_t pad[472];
    memset(pad, 'p', sizeof(pad));
    journal_rec_t recs[2] = {{.seq = 1, .kind = JOURNAL_SKEY, .payload = pad, .payload_len = sizeof(pad)},
                             {.seq = 2, .kind = JOURNAL_SKEY, .payload = forged, .payload_len = sizeof(forged)}};
    ck_assert_int_eq(journal_append(j, recs, 2, 0), 0);
    journal_close(&j);
    char *path = path_in(dir, JOURNAL_FILE);
    uint8_t at1[4];
    read_at(path, JOURNAL_SECTOR, at1, sizeof(at1));
    ck_assert(memcmp(at1, "ECJ1", 4) == 0); /* the forged header sits at a sector boundary */

    uint64_t max_seq;
    int saw_all;
    j = open_journal_keyed(dir, key);
    ck_assert_uint_eq(count_records(j, &max_seq, &saw_all), 2);
    journal_close(&j);

    uint8_t zero[JOURNAL_SECTOR] = {0};
    write_at(path, 0, zero, sizeof(zero)); /* the real header is gone */
    j = open_journal_keyed(dir, key);
    ck_assert_uint_eq(count_records(j, &max_seq, &saw_all), 0);
    ck_assert_uint_eq(journal_last_seq(j), 0);
    journal_close(&j);

    /* with the public key (version 2's journals) the forgery was read back */
    j = open_journal_keyed(dir, NULL);
    ck_assert_uint_eq(count_records(j, &max_seq, &saw_all), 1);
    ck_assert_uint_eq(max_seq, 1000);
    ck_assert(saw_all);
    journal_close(&j);

    free(path);
    free(spath);
    tmpdir_free(dir);
    tmpdir_free(scratch);
}
END_TEST

/* journal_rekey: segments before it are read only with the old key, segments after it only with the new one. */
START_TEST(test_rekey)
{
    ck_assert_int_ge(sodium_init(), 0);
    char *dir = tmpdir_new();
    uint8_t key[JOURNAL_KEY_BYTES];
    randombytes_buf(key, sizeof(key));
    journal_t *j = open_journal_keyed(dir, NULL);
    batch_t *b = batch_new();
    batch_add(b, 1, JOURNAL_URL, 0, 16);
    batch_add(b, 1, JOURNAL_SKEY, 0, 20); /* seqs 1 and 2 */
    ck_assert_int_eq(journal_append(j, b->recs, b->n, 0), 0);
    journal_rekey(j, key);
    batch_t *b2 = batch_new();
    batch_add(b2, 3, JOURNAL_SKEY, 0, 30);
    ck_assert_int_eq(journal_append(j, b2->recs, b2->n, 0), 0);
    journal_close(&j);

    uint64_t max_seq;
    int saw_all;
    j = open_journal_keyed(dir, key);
    ck_assert_uint_eq(count_records(j, &max_seq, &saw_all), 1);
    ck_assert_uint_eq(max_seq, 3);
    journal_close(&j);
    j = open_journal_keyed(dir, NULL);
    ck_assert_uint_eq(count_records(j, &max_seq, &saw_all), 2);
    ck_assert_uint_eq(max_seq, 2);
    journal_close(&j);
    free(b);
    free(b2);
    tmpdir_free(dir);
}
END_TEST

/* Bytes of the file at path that the kernel's page cache holds (mincore over a map of it). */
static size_t cached_bytes(const char *path)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = ((size_t)st.st_size + page - 1) / page, n = 0;
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    ck_assert(map != MAP_FAILED);
    unsigned char *vec = malloc(pages);
    ck_assert_int_eq(mincore(map, (size_t)st.st_size, vec), 0);
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    free(vec);
    munmap(map, (size_t)st.st_size);
    close(fd);
    return n * page;
}

/* The journal keeps cached only a window from its write position (1 MiB, moved every 256 KiB
 * the writer goes), not the ring (32 MiB here, the default size) its opens, replays and
 * creation read or wrote whole. */
START_TEST(test_page_cache_holds_only_the_window)
{
    /* the window, a step, and the folios that straddle the window's edges (whole folios of
     * up to 2 MiB: ext4's large folios; what the ring's creation wrote may be of that size) */
    const size_t most = (size_t)4 << 20;
    char *dir = tmpdir_new();
    struct statfs fs;
    ck_assert_int_eq(statfs(dir, &fs), 0);
    if (fs.f_type == 0x01021994 /* TMPFS_MAGIC */ || fs.f_type == 0x794c7630 /* OVERLAYFS_SUPER_MAGIC */) {
        fprintf(stderr, "test_page_cache_holds_only_the_window: skipped: %s is tmpfs or overlayfs\n", dir);
        tmpdir_free(dir);
        return;
    }
    char *path = path_in(dir, JOURNAL_FILE);
    char err[512] = "";
    journal_t *j = NULL; /* created zero-filled: every page was written */
    ck_assert_msg(journal_open(&j, dir, (size_t)32 << 20, NULL, err, sizeof(err)) == 0, "journal_open: %s", err);
    ck_assert_msg(cached_bytes(path) <= most, "after creation: %zu bytes cached", cached_bytes(path));
    batch_t *b = batch_new();
    rec_list_t want = {0};
    uint64_t seq = 1;
    /* 100 records of 515 bytes a segment (~50 KiB): 800 of them go round the 32 MiB ring once and more */
    for (int i = 0; i < 800; i++) {
        batch_big(b, seq, 100);
        ck_assert_int_eq(append_batch(j, b, seq - 1, &want), 0);
        seq += b->n;
        size_t c = cached_bytes(path);
        ck_assert_msg(c <= most, "after %d appends: %zu bytes cached", i + 1, c);
    }
    rec_list_t tail = {0}; /* records still in the ring: the last 30 MiB's worth */
    for (size_t i = want.n - 600 * 100; i < want.n; i++)
        rec_list_push(&tail, &want.v[i]);
    reopen(&j, dir);
    ck_assert_msg(cached_bytes(path) <= most, "after reopening: %zu bytes cached", cached_bytes(path));
    expect_foreach(j, tail.v[0].seq - 1, &tail);
    ck_assert_msg(cached_bytes(path) <= most, "after a replay: %zu bytes cached", cached_bytes(path));
    journal_close(&j);
    rec_list_free(&tail);
    rec_list_free(&want);
    free(b);
    free(path);
    tmpdir_free(dir);
}
END_TEST

/* Add hand-written records (seqs first_seq, first_seq + 1, ...) to *want. */
static void push_hand(rec_list_t *want, uint64_t first_seq, const hand_rec_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        journal_rec_t r = {.seq = first_seq + i,
                           .kind = recs[i].kind,
                           .flags = recs[i].flags,
                           .payload = recs[i].payload,
                           .payload_len = recs[i].len};
        rec_list_push(want, &r);
    }
}

/* n SKEY records of 511 bytes, each's payload its own (storage: *mem, n * 511 bytes, caller frees). */
static hand_rec_t *hand_big(size_t n, uint64_t first_seq, char **mem)
{
    hand_rec_t *recs = calloc(n, sizeof(*recs));
    *mem = malloc(n * JOURNAL_MAX_PAYLOAD);
    for (size_t i = 0; i < n; i++) {
        fill_payload((uint8_t *)*mem + i * JOURNAL_MAX_PAYLOAD, JOURNAL_MAX_PAYLOAD, first_seq + i);
        recs[i] = (hand_rec_t){JOURNAL_SKEY, i % 2 ? JOURNAL_F_SOFT : 0, *mem + i * JOURNAL_MAX_PAYLOAD, JOURNAL_MAX_PAYLOAD};
    }
    return recs;
}

/*
 * journal_open reads the ring in pieces of a MiB: a segment that starts in one piece and
 * runs into the next ones is found whole, the biggest there is starting at the last sector
 * before the first MiB's end; so are segments across each later MiB boundary, one right
 * after the big one, and one in the ring's last sector. A replay reads each segment again on
 * its own: one that changed since the open is skipped like any damaged segment.
 */
START_TEST(test_segments_across_scan_pieces)
{
    ck_assert_int_ge(sodium_init(), 0);
    const size_t mib = ((size_t)1 << 20) / JOURNAL_SECTOR; /* sectors in a MiB */
    char *dir = tmpdir_new();
    char *path = zero_journal(dir);
    rec_list_t want = {0};
    uint64_t seq = 1;
    hand_rec_t small[] = {{JOURNAL_URL, 0, "0123456789abcdef", 16}, {JOURNAL_SKEY, JOURNAL_F_SOFT, "small", 5}};
    ck_assert_uint_eq(write_segment(path, 0, seq, small, 2), 1);
    push_hand(&want, seq, small, 2);
    seq += 2;

    /* the biggest segment (4071 records of 511 bytes: 4095 sectors), from the first MiB's last sector */
    char *big_mem, *mem;
    hand_rec_t *big = hand_big(4071, seq, &big_mem);
    size_t at = mib - 1, n = write_segment(path, at, seq, big, 4071);
    ck_assert_uint_eq(n, 4095);
    push_hand(&want, seq, big, 4071);
    seq += 4071;
    size_t after_big = at + n, after_big_first = seq;
    ck_assert_uint_eq(write_segment(path, after_big, seq, small, 2), 1);
    push_hand(&want, seq, small, 2);
    seq += 2;

    /* 40 records of 511 bytes (41 sectors) across each later MiB boundary but the last */
    for (size_t m = 4; m < RING_SIZE / ((size_t)1 << 20); m++) {
        hand_rec_t *mid = hand_big(40, seq, &mem);
        ck_assert_uint_eq(write_segment(path, m * mib - 20, seq, mid, 40), 41);
        push_hand(&want, seq, mid, 40);
        seq += 40;
        free(mid);
        free(mem);
    }
    ck_assert_uint_eq(write_segment(path, RING_SECTORS - 1, seq, small, 2), 1);
    push_hand(&want, seq, small, 2);
    seq += 2;

    journal_t *j = open_journal(dir);
    ck_assert_uint_eq(journal_last_seq(j), seq - 1);
    expect_foreach(j, 0, &want);
    expect_foreach(j, 3000, &want); /* from within the big segment */

    /* a payload byte of the segment after the big one changes after the open */
    flip_byte(path, after_big * JOURNAL_SECTOR + SEG_HEADER + 10);
    rec_list_t rest = {0};
    for (size_t i = 0; i < want.n; i++)
        if (want.v[i].seq != after_big_first && want.v[i].seq != after_big_first + 1)
            rec_list_push(&rest, &want.v[i]);
    expect_foreach(j, 0, &rest);

    /* the journal goes on after the newest segment, the ring's last sector: at its start */
    journal_rec_t r = {.seq = seq, .kind = JOURNAL_ALL};
    ck_assert_int_eq(journal_append(j, &r, 1, seq - 1), 0);
    ck_assert_uint_eq(hdr_at(dir, 0).first_seq, seq);
    journal_close(&j);

    free(big);
    free(big_mem);
    rec_list_free(&rest);
    rec_list_free(&want);
    free(path);
    tmpdir_free(dir);
}
END_TEST

/*
 * Intact records this version does not know, in ten segments at the ring's start: every
 * replay is refused, whatever `after` says, until appends have gone round the ring over
 * all of them (the open noted them; a replay reads again only what it applies). Ten: more
 * than the list of them first holds.
 */
START_TEST(test_unknown_records_refused_until_overwritten)
{
    ck_assert_int_ge(sodium_init(), 0);
    char *dir = tmpdir_new();
    char *path = zero_journal(dir);
    for (size_t k = 0; k < 10; k++) {
        hand_rec_t recs[] = {{JOURNAL_SKEY, 0, "fine", 4}, {'Z', 0, "abc", 3}};
        ck_assert_uint_eq(write_segment(path, k, 1 + 2 * k, recs, 2), 1);
    }
    journal_t *j = open_journal(dir);
    ck_assert_uint_eq(journal_last_seq(j), 20);
    collector_t c = {0};
    ck_assert_int_eq(journal_foreach(j, 0, collect, &c), JOURNAL_EIO);
    rec_list_free(&c.got);
    ck_assert_int_eq(journal_foreach(j, 20, collect, &c), JOURNAL_EIO);
    ck_assert_uint_eq(c.got.n, 0);

    /* three of the biggest segments fit after them; the fourth goes round to the ring's start */
    batch_t *b = batch_new();
    rec_list_t want = {0};
    uint64_t seq = 21;
    for (int i = 0; i < 4; i++) {
        batch_big(b, seq, 4071);
        ck_assert_int_eq(append_batch(j, b, seq - 1, &want), 0);
        seq += b->n;
        if (i < 3)
            ck_assert_int_eq(journal_foreach(j, seq - 1, collect, &c), JOURNAL_EIO);
    }
    ck_assert_uint_eq(hdr_at(dir, 0).first_seq, seq - 4071);
    expect_foreach(j, 20 + 4071, &want); /* the first of the four was gone over too */
    journal_close(&j);
    rec_list_free(&c.got);
    rec_list_free(&want);
    free(b);
    free(path);
    tmpdir_free(dir);
}
END_TEST

/* A line of /proc/self/status, in KiB. */
static size_t status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    size_t kib = 0, flen = strlen(field);
    int found = 0;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            found = sscanf(line + flen + 1, "%zu", &kib) == 1;
    fclose(f);
    ck_assert_msg(found, "no %s in /proc/self/status", field);
    return kib;
}

/* Counts the records it is given, as long as they come in seq order from 1 with the biggest
 * payloads; no ck_assert in it (each allocates in check, which would be counted as the
 * journal's memory under ASan, whose quarantine keeps freed blocks resident). */
static int count_rec(void *arg, const journal_rec_t *rec)
{
    uint64_t *n = arg;
    if (rec->seq != *n + 1 || rec->payload_len != JOURNAL_MAX_PAYLOAD)
        return 1;
    (*n)++;
    return 0;
}

/*
 * Opening a 32 MiB ring (the default size) and replaying all of it never holds much
 * memory: the open reads the ring in pieces, the replay each segment on its own. Reading
 * the ring whole took 32 MiB at every start (twice over when a replay followed). Measured
 * as the process's peak resident memory (VmHWM, reset by /proc/self/clear_refs) over the
 * open and the replay, less what was resident before.
 */
START_TEST(test_open_and_replay_hold_little_memory)
{
    const size_t ring = (size_t)32 << 20, most_kib = 12 << 10;
    char *dir = tmpdir_new();
    char err[512] = "";
    journal_t *j = NULL;
    ck_assert_msg(journal_open(&j, dir, ring, NULL, err, sizeof(err)) == 0, "journal_open: %s", err);
    batch_t *b = batch_new();
    uint64_t seq = 1;
    for (int i = 0; i < 15; i++) { /* 15 segments of 4095 sectors: 30 MiB of records */
        batch_big(b, seq, 4071);
        ck_assert_int_eq(journal_append(j, b->recs, b->n, 0), 0);
        seq += b->n;
    }
    journal_close(&j);

    FILE *f = fopen("/proc/self/clear_refs", "w");
    ck_assert_msg(f != NULL && fputs("5", f) >= 0 && fclose(f) == 0, "cannot reset the peak resident memory");
    size_t before = status_kib("VmRSS");
    ck_assert_msg(journal_open(&j, dir, ring, NULL, err, sizeof(err)) == 0, "journal_open: %s", err);
    uint64_t n = 0;
    ck_assert_int_eq(journal_foreach(j, 0, count_rec, &n), 0);
    ck_assert_uint_eq(n, seq - 1);
    journal_close(&j);
    size_t peak = status_kib("VmHWM");
    ck_assert_msg(peak - before <= most_kib, "open and replay of a 32 MiB ring: peak %zu KiB over the %zu KiB before",
                  peak - before, before);
    free(b);
    tmpdir_free(dir);
}
END_TEST

static Suite *journal_suite(void)
{
    Suite *s = suite_create("journal");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_open_creates_empty);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_reopen_appends_after_newest);
    tcase_add_test(tc, test_ring_full_then_wraps);
    tcase_add_test(tc, test_corrupt_segment_skipped);
    tcase_add_test(tc, test_torn_newest_segment);
    tcase_add_test(tc, test_wrong_size_refused);
    tcase_add_test(tc, test_hand_written_segments);
    tcase_add_test(tc, test_full_ring_keeps_everything);
    tcase_add_test(tc, test_size_chosen_at_creation_and_kept);
    tcase_add_test(tc, test_forged_segment_needs_the_key);
    tcase_add_test(tc, test_rekey);
    tcase_add_test(tc, test_page_cache_holds_only_the_window);
    tcase_add_test(tc, test_segments_across_scan_pieces);
    tcase_add_test(tc, test_unknown_records_refused_until_overwritten);
    tcase_add_test(tc, test_open_and_replay_hold_little_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("journal") != 0)
        return 1;
    SRunner *sr = srunner_create(journal_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

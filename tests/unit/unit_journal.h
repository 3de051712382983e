/*
 * tests/unit/unit_journal.h — what the journal's suites (test_journal.c,
 * test_journal_damage.c, test_journal_replay.c) share: the on-disk layout as
 * journal_int.h documents it (the tests' own copy, on purpose, so that the code and the
 * document are checked against each other), files read and written at offsets, segment
 * headers parsed and segments written by hand, lists of records and the batches appended.
 * Header-only: static functions, one copy per suite.
 */
#ifndef EDGECACHE_UNIT_JOURNAL_H
#define EDGECACHE_UNIT_JOURNAL_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "storage/journal_int.h"

/* the layout as journal_int.h documents it (the test's own copy, on purpose) */
#define SEG_HEADER 32
#define SEG_OFF_CHECKSUM 24
#define RING_SIZE JOURNAL_MIN_SIZE /* what the tests create, unless they say otherwise */
#define RING_SECTORS (RING_SIZE / JOURNAL_SECTOR)
static const uint8_t seg_key[crypto_shorthash_KEYBYTES] = {'e', 'd', 'g', 'e', 'c', 'a', 'c', 'h',
                                                           'e', '-', 'j', 'o', 'u', 'r', 'n', 'l'};

/* ---- helpers: directories and files ---- */

static inline char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static inline journal_t *open_journal(const char *dir)
{
    char err[512] = "";
    journal_t *j = NULL;
    int rc = journal_open(&j, dir, RING_SIZE, NULL, err, sizeof(err));
    ck_assert_msg(rc == 0, "journal_open: %d %s", rc, err);
    ck_assert_ptr_nonnull(j);
    return j;
}

static inline void reopen(journal_t **j, const char *dir)
{
    journal_close(j);
    ck_assert_ptr_null(*j);
    *j = open_journal(dir);
}

/* The whole of a file (malloc'd; *len its size). */
static inline uint8_t *read_whole(const char *path, size_t *len)
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

static inline void read_at(const char *path, size_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static inline void write_at(const char *path, size_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

static inline void flip_byte(const char *path, size_t off)
{
    uint8_t b;
    read_at(path, off, &b, 1);
    b ^= 0x5a;
    write_at(path, off, &b, 1);
}

static inline int file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- helpers: the documented on-disk layout ---- */

static inline void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le(const uint8_t *p, int n)
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

static inline seg_hdr_t parse_hdr(const uint8_t *p)
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
static inline seg_hdr_t hdr_at(const char *dir, size_t sector)
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
static inline uint64_t seg_checksum(const uint8_t *seg, size_t payload_len)
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

static inline void rec_list_push(rec_list_t *l, const journal_rec_t *r)
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

static inline void rec_list_free(rec_list_t *l)
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

static inline int collect(void *arg, const journal_rec_t *rec)
{
    collector_t *c = arg;
    rec_list_push(&c->got, rec);
    return c->stop_at != 0 && rec->seq == c->stop_at ? c->stop_ret : 0;
}

static inline void assert_rec_eq(const journal_rec_t *got, const journal_rec_t *want)
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
static inline void expect_foreach(journal_t *j, uint64_t after, const rec_list_t *want)
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

static inline batch_t *batch_new(void)
{
    batch_t *b = calloc(1, sizeof(*b));
    ck_assert_ptr_nonnull(b);
    return b;
}

/* Payload bytes that differ from record to record. */
static inline void fill_payload(uint8_t *p, size_t len, uint64_t seq)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seq * 131 + i * 7 + (seq >> 8) + 1);
}

/* Add a record with the next seq (first_seq + n); payload length by kind (len for SKEY). */
static inline void batch_add(batch_t *b, uint64_t first_seq, int kind, unsigned flags, size_t len)
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

static inline size_t batch_bytes(const batch_t *b)
{
    size_t bytes = 0;
    for (size_t i = 0; i < b->n; i++)
        bytes += 4 + b->recs[i].payload_len;
    return bytes;
}

/* Sectors the batch's segment takes, by the documented layout. */
static inline size_t batch_sectors(const batch_t *b)
{
    return (SEG_HEADER + batch_bytes(b) + JOURNAL_SECTOR - 1) / JOURNAL_SECTOR;
}

/* Append b; when it is written, add its records to *want. Returns journal_append's code. */
static inline int append_batch(journal_t *j, const batch_t *b, uint64_t synced_upto, rec_list_t *want)
{
    int rc = journal_append(j, b->recs, b->n, synced_upto);
    if (rc == 0)
        for (size_t i = 0; i < b->n; i++)
            rec_list_push(want, &b->recs[i]);
    return rc;
}

/* A batch of `n` SKEY records of 511 bytes (the biggest records there are). */
static inline void batch_big(batch_t *b, uint64_t first_seq, size_t n)
{
    b->n = 0;
    for (size_t i = 0; i < n; i++)
        batch_add(b, first_seq, JOURNAL_SKEY, i % 3 == 0 ? JOURNAL_F_SOFT : 0, JOURNAL_MAX_PAYLOAD);
}

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
static inline size_t write_segment(const char *path, size_t sector, uint64_t first_seq, const hand_rec_t *recs, size_t n)
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
static inline char *zero_journal(const char *dir)
{
    char *path = path_in(dir, JOURNAL_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)RING_SIZE), 0);
    close(fd);
    return path;
}

#endif

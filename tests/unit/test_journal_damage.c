/*
 * tests/unit/test_journal_damage.c — what the purge journal (storage/journal.c) makes of
 * a ring it did not write the way it was left: corrupt and torn segments skipped, files of
 * the wrong size or type refused and left alone, segments written by hand from the layout
 * documented in journal_int.h (which cross-checks the documented format against the code,
 * in both directions), a segment forged inside a record's payload read only under a known
 * key, and a journal rekeyed.
 * Every test works in its own mkdtemp directory under /tmp; main() removes them all.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "storage/journal_int.h"
#include "tests/unit/unit_journal.h"
#include "tests/unit/unit_tmp.h"

/* ---- helpers: files ---- */

static void write_whole(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

/* ---- tests ---- */

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

static Suite *journal_damage_suite(void)
{
    Suite *s = suite_create("journal_damage");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_corrupt_segment_skipped);
    tcase_add_test(tc, test_torn_newest_segment);
    tcase_add_test(tc, test_wrong_size_refused);
    tcase_add_test(tc, test_hand_written_segments);
    tcase_add_test(tc, test_forged_segment_needs_the_key);
    tcase_add_test(tc, test_rekey);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("journal_damage") != 0)
        return 1;
    SRunner *sr = srunner_create(journal_damage_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

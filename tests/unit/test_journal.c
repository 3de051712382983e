/*
 * tests/unit/test_journal.c — the purge journal (storage/journal.c): creating the ring
 * file, round trips through close and reopen, appends after a reopen going right after the
 * newest segment, the ring filling up and wrapping round only over records the caller says
 * are synced, the ring's size chosen at creation and kept, and a full ring keeping every
 * record; appends direct to the device where the file system allows. Damaged, forged and hand-written segments: test_journal_damage.c; the open's scan
 * in pieces, replays and the memory and page cache they take: test_journal_replay.c.
 * Every test works in its own mkdtemp directory under /tmp; main() removes them all.
 */
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "storage/journal_int.h"
#include "tests/unit/unit_journal.h"
#include "tests/unit/unit_tmp.h"

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

/* A tiny deterministic generator, so a failure can be replayed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

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

/* With nothing synced, fill every sector; every record ever appended is still there. */
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

/* Descriptors of this process open on path with O_DIRECT. */
static int direct_fds_on(const char *path)
{
    int found = 0;
    char link[64], target[4096];
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        int fl = fcntl(fd, F_GETFL);
        found += strcmp(target, path) == 0 && fl >= 0 && (fl & O_DIRECT) != 0;
    }
    return found;
}

/*
 * Appends go to the device directly (O_DIRECT, no page cache) where the file system
 * takes direct I/O, and through the page cache where it does not; either way what they
 * write reads back.
 */
START_TEST(test_appends_direct_where_the_file_system_allows)
{
    char *dir = tmpdir_new();
    journal_t *j = open_journal(dir);
    char *path = path_in(dir, JOURNAL_FILE), real[4096];
    ck_assert_ptr_nonnull(realpath(path, real));
    int fd = open(real, O_RDWR | O_DIRECT);
    ck_assert_int_eq(journal_is_direct(j), fd >= 0);
    if (fd >= 0)
        close(fd);
    ck_assert_int_eq(direct_fds_on(real), journal_is_direct(j));
    batch_t *b = batch_new();
    rec_list_t want = {0};
    batch_add(b, 1, JOURNAL_URL, 0, 0);
    batch_add(b, 1, JOURNAL_SKEY, JOURNAL_F_SOFT, 300);
    ck_assert_int_eq(append_batch(j, b, 0, &want), 0);
    reopen(&j, dir);
    expect_foreach(j, 0, &want);
    journal_close(&j);
    ck_assert_int_eq(direct_fds_on(real), 0);
    rec_list_free(&want);
    free(b);
    free(path);
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
    tcase_add_test(tc, test_full_ring_keeps_everything);
    tcase_add_test(tc, test_size_chosen_at_creation_and_kept);
    tcase_add_test(tc, test_appends_direct_where_the_file_system_allows);
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

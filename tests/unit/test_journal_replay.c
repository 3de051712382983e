/*
 * tests/unit/test_journal_replay.c — the purge journal (storage/journal.c) opening and
 * replaying a ring: segments across the pieces the open reads the ring in, records this
 * version does not know refusing every replay until appends have gone over them, the page
 * cache holding only a window from the write position, and the memory an open and a
 * replay of a 32 MiB ring take.
 * Every test works in its own mkdtemp directory under /tmp; main() removes them all.
 */
#include <check.h>
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
#include "tests/unit/unit_journal.h"
#include "tests/unit/unit_tmp.h"

/* ---- tests ---- */

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

static Suite *journal_replay_suite(void)
{
    Suite *s = suite_create("journal_replay");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_page_cache_holds_only_the_window);
    tcase_add_test(tc, test_segments_across_scan_pieces);
    tcase_add_test(tc, test_unknown_records_refused_until_overwritten);
    tcase_add_test(tc, test_open_and_replay_hold_little_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("journal_replay") != 0)
        return 1;
    SRunner *sr = srunner_create(journal_replay_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}

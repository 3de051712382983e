/*
 * tests/unit/test_h2_frames.c — the request-body bytes of HTTP/2 input (server/h2_frames.c),
 * which server/inflow.c counts against --request-body-memory as they arrive.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "server/h2_frames.h"

static uint8_t buf[1 << 17];
static size_t len;

/* append one frame: a 24-bit length, type, flags, stream 1, then `payload` bytes (pad length first when padded) */
static void frame(uint8_t type, uint8_t flags, size_t payload, int pad)
{
    uint8_t *h = buf + len;
    h[0] = (uint8_t)(payload >> 16);
    h[1] = (uint8_t)(payload >> 8);
    h[2] = (uint8_t)payload;
    h[3] = type;
    h[4] = flags;
    h[5] = h[6] = h[7] = 0;
    h[8] = 1;
    memset(h + 9, 'x', payload);
    if (pad >= 0 && payload != 0)
        h[9] = (uint8_t)pad;
    len += 9 + payload;
}

START_TEST(test_preface)
{
    static const char p[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    ck_assert_int_eq(h2_frames_preface((const uint8_t *)p, 24), H2_FRAMES_START_PREFACE);
    ck_assert_int_eq(h2_frames_preface((const uint8_t *)p, 25), H2_FRAMES_START_PREFACE); /* and more after it */
    ck_assert_int_eq(h2_frames_preface((const uint8_t *)p, 10), H2_FRAMES_START_PARTIAL);
    ck_assert_int_eq(h2_frames_preface((const uint8_t *)p, 0), H2_FRAMES_START_PARTIAL);
    ck_assert_int_eq(h2_frames_preface((const uint8_t *)"PRI * HTTP/1.1\r\n", 16), H2_FRAMES_START_OTHER);
    ck_assert_int_eq(h2_frames_preface((const uint8_t *)"POST / HTTP/1.1\r\n", 17), H2_FRAMES_START_OTHER);
}
END_TEST

START_TEST(test_only_data_payloads_count)
{
    len = 0;
    frame(0x4, 0, 12, -1);    /* SETTINGS */
    frame(0x1, 0x4, 40, -1);  /* HEADERS */
    frame(0x0, 0, 16384, -1); /* DATA */
    frame(0x8, 0, 4, -1);     /* WINDOW_UPDATE */
    frame(0x0, 0x1, 100, -1); /* DATA, END_STREAM */
    frame(0x6, 0, 8, -1);     /* PING */
    frame(0x0, 0, 0, -1);     /* an empty DATA */
    ck_assert_uint_eq(h2_frames_data_bytes(buf, len), 16484);
}
END_TEST

START_TEST(test_padding_is_not_body)
{
    len = 0;
    frame(0x0, 0x8, 100, 9); /* 1 pad length byte, 90 of body, 9 of padding */
    ck_assert_uint_eq(h2_frames_data_bytes(buf, len), 90);
    len = 0;
    frame(0x0, 0x8, 10, 9);  /* all padding */
    frame(0x0, 0x8, 10, 10); /* more padding than the frame holds: h2o refuses it; nothing counted */
    frame(0x0, 0x8, 0, -1);  /* padded with no room for the pad length */
    frame(0x1, 0x8, 10, 3);  /* a padded HEADERS: not a body */
    ck_assert_uint_eq(h2_frames_data_bytes(buf, len), 0);
}
END_TEST

START_TEST(test_a_frame_cut_short_counts_once_whole)
{
    len = 0;
    frame(0x0, 0, 1000, -1);
    frame(0x0, 0, 2000, -1);
    for (size_t cut = 0; cut < 9 + 1000; cut++)
        ck_assert_uint_eq(h2_frames_data_bytes(buf, cut), 0);
    ck_assert_uint_eq(h2_frames_data_bytes(buf, 9 + 1000), 1000);
    ck_assert_uint_eq(h2_frames_data_bytes(buf, len - 1), 1000);
    ck_assert_uint_eq(h2_frames_data_bytes(buf, len), 3000);
    /* what h2o leaves after consuming the first frame is counted from there: 2000 once the rest arrives */
    ck_assert_uint_eq(h2_frames_data_bytes(buf + 9 + 1000, len - 9 - 1000), 2000);
}
END_TEST

START_TEST(test_a_huge_length_waits)
{
    /* a frame header claiming 16 MiB: more than the input holds, so nothing (h2o closes the connection) */
    static const uint8_t h[9] = {0xff, 0xff, 0xff, 0x0, 0x0, 0, 0, 0, 1};
    ck_assert_uint_eq(h2_frames_data_bytes(h, sizeof(h)), 0);
}
END_TEST

START_TEST(test_next_reads_the_header)
{
    len = 0;
    frame(0x3, 0, 4, -1); /* RST_STREAM on stream 1 */
    buf[5] = 0x80;        /* the reserved bit set: not part of the stream id */
    buf[8] = 7;
    frame(0x0, 0x9, 30, 4); /* DATA, PADDED and END_STREAM: 25 bytes of body */
    h2_frame_t f;
    ck_assert_int_eq(h2_frames_next(buf, len, &f), 1);
    ck_assert_uint_eq(f.type, H2_FRAMES_TYPE_RST_STREAM);
    ck_assert_uint_eq(f.stream_id, 7);
    ck_assert_uint_eq(f.size, 13);
    ck_assert_uint_eq(f.body, 0);
    ck_assert_int_eq(h2_frames_next(buf + f.size, len - f.size, &f), 1);
    ck_assert_uint_eq(f.type, H2_FRAMES_TYPE_DATA);
    ck_assert_uint_eq(f.flags & H2_FRAMES_FLAG_END_STREAM, H2_FRAMES_FLAG_END_STREAM);
    ck_assert_uint_eq(f.stream_id, 1);
    ck_assert_uint_eq(f.body, 25);
    ck_assert_int_eq(h2_frames_next(buf + 13, len - 14, &f), 0); /* one byte short */
    ck_assert_int_eq(h2_frames_next(buf, 8, &f), 0);             /* not even the header */
}
END_TEST

static Suite *h2_frames_suite(void)
{
    Suite *s = suite_create("h2_frames");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_preface);
    tcase_add_test(tc, test_only_data_payloads_count);
    tcase_add_test(tc, test_padding_is_not_body);
    tcase_add_test(tc, test_a_frame_cut_short_counts_once_whole);
    tcase_add_test(tc, test_a_huge_length_waits);
    tcase_add_test(tc, test_next_reads_the_header);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(h2_frames_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * tests/unit/test_common.c — common/'s pure parts: the reason-phrase table, the surrogate-key
 * tokenizer (with and without the record's limits), the error-message formatter, the path
 * join, ASCII lower-casing, and the clocks.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/alloc.h"
#include "common/now.h"
#include "common/reason.h"
#include "common/skey.h"
#include "common/ascii.h"
#include "common/errbuf.h"
#include "common/path.h"

START_TEST(reason_phrases)
{
    /* the purge answers' statuses */
    ck_assert_str_eq(reason_phrase(200), "OK");
    ck_assert_str_eq(reason_phrase(400), "Bad Request");
    ck_assert_str_eq(reason_phrase(401), "Unauthorized");
    ck_assert_str_eq(reason_phrase(403), "Forbidden");
    ck_assert_str_eq(reason_phrase(500), "Internal Server Error");
    ck_assert_str_eq(reason_phrase(502), "Bad Gateway");
    ck_assert_str_eq(reason_phrase(503), "Service Unavailable");
    /* the proxy's */
    ck_assert_str_eq(reason_phrase(206), "Partial Content");
    ck_assert_str_eq(reason_phrase(304), "Not Modified");
    ck_assert_str_eq(reason_phrase(416), "Range Not Satisfiable");
    ck_assert_str_eq(reason_phrase(504), "Gateway Timeout");
    ck_assert_str_eq(reason_phrase(299), "Unknown");
    ck_assert_str_eq(reason_phrase(0), "Unknown");
}
END_TEST

/* every token of s, joined by '|', tokenized with the given limits */
static void tokens(const char *s, size_t max_tok, size_t max_list, char *out, size_t cap)
{
    size_t pos = 0, len = strlen(s), tl, o = 0;
    const char *t;
    out[0] = '\0';
    while ((t = skey_next(s, len, &pos, &tl, max_tok, max_list)) != NULL) {
        ck_assert_uint_gt(tl, 0);
        ck_assert_uint_lt(o + tl + 2, cap);
        if (o > 0)
            out[o++] = '|';
        memcpy(out + o, t, tl);
        o += tl;
        out[o] = '\0';
    }
    ck_assert_uint_eq(pos, len);
    ck_assert_uint_eq(tl, 0);
}

START_TEST(skey_tokenizer)
{
    char out[128];
    tokens("", SIZE_MAX, SIZE_MAX, out, sizeof(out));
    ck_assert_str_eq(out, "");
    tokens(" \t ", SIZE_MAX, SIZE_MAX, out, sizeof(out));
    ck_assert_str_eq(out, "");
    tokens("  a\tbb  ccc ", SIZE_MAX, SIZE_MAX, out, sizeof(out));
    ck_assert_str_eq(out, "a|bb|ccc");
    /* a token over max_tok ends the list there, whatever follows */
    tokens("a bbbb c", 3, SIZE_MAX, out, sizeof(out));
    ck_assert_str_eq(out, "a");
    tokens("a bbb c", 3, SIZE_MAX, out, sizeof(out));
    ck_assert_str_eq(out, "a|bbb|c");
    /* so does one ending past max_list */
    tokens("a bb ccc", SIZE_MAX, 4, out, sizeof(out));
    ck_assert_str_eq(out, "a|bb");
    tokens("a bb ccc", SIZE_MAX, 8, out, sizeof(out));
    ck_assert_str_eq(out, "a|bb|ccc");
}
END_TEST

START_TEST(errbuf_and_path_join)
{
    char buf[8];
    errbuf_printf(buf, sizeof(buf), "%s %d", "abc", 12345);
    ck_assert_str_eq(buf, "abc 123"); /* truncated, NUL-terminated */
    errbuf_printf(NULL, 10, "%s", "ignored");
    memcpy(buf, "keep", 5);
    errbuf_printf(buf, 0, "%s", "ignored");
    ck_assert_str_eq(buf, "keep");

    char *p = path_join("/var/lib/edgecache", "data.mdb", "test");
    ck_assert_str_eq(p, "/var/lib/edgecache/data.mdb");
    free(p);
    p = path_join("", "x", "test");
    ck_assert_str_eq(p, "/x");
    free(p);
}
END_TEST

START_TEST(ascii_lower_and_memdup)
{
    ck_assert_int_eq(ascii_lower('A'), 'a');
    ck_assert_int_eq(ascii_lower('Z'), 'z');
    ck_assert_int_eq(ascii_lower('a'), 'a');
    ck_assert_int_eq(ascii_lower('@'), '@');
    ck_assert_int_eq(ascii_lower('['), '[');
    ck_assert_int_eq(ascii_lower((char)0xC4), (char)0xC4);

    char *d = alloc_xmemdup("abc", 3, 1, "test");
    ck_assert_str_eq(d, "abc");
    free(d);
    d = alloc_xmalloc(0, "test"); /* never NULL, even for 0 bytes */
    ck_assert_ptr_nonnull(d);
    free(d);
}
END_TEST

START_TEST(clocks)
{
    int64_t us = now_mono_us(), ms = now_mono_ms(), wall = now_wall_ms();
    ck_assert_int_gt(us, 0);
    ck_assert_int_ge(ms, us / 1000);
    ck_assert_int_gt(wall, (int64_t)1600000000 * 1000); /* after 2020 */
    for (int i = 0; i < 1000; i++) {
        int64_t us2 = now_mono_us(), ms2 = now_mono_ms();
        ck_assert_int_ge(us2, us);
        ck_assert_int_ge(ms2, ms);
        us = us2;
        ms = ms2;
    }
}
END_TEST

static Suite *common_suite(void)
{
    Suite *s = suite_create("common");
    TCase *t = tcase_create("pure");
    tcase_add_test(t, reason_phrases);
    tcase_add_test(t, skey_tokenizer);
    tcase_add_test(t, errbuf_and_path_join);
    tcase_add_test(t, ascii_lower_and_memdup);
    tcase_add_test(t, clocks);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(common_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

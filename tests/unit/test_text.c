/*
 * tests/unit/test_text.c — server/text.c: UTF-8 validation agrees with jansson, and whatever
 * text_escape writes, from any bytes and any capacity, is UTF-8 jansson accepts, never runs
 * past its buffer and never splits a character.
 */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "server/text.h"

START_TEST(utf8_validation)
{
    static const struct {
        const char *s;
        size_t len;
        int valid;
    } cases[] = {
        {"", 0, 1},
        {"plain", 5, 1},
        {"\xc3\xa9", 2, 1},         /* é */
        {"\xe2\x82\xac", 3, 1},     /* € */
        {"\xf0\x9f\x98\x80", 4, 1}, /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, 1}, /* U+10FFFF */
        {"\xc3", 1, 0},             /* cut */
        {"\xe2\x82", 2, 0},         /* cut */
        {"\xf0\x9f\x98", 3, 0},     /* cut */
        {"\xff\xfe", 2, 0},
        {"\xc0\xaf", 2, 0},         /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0},     /* overlong */
        {"\xf0\x80\x80\xaf", 4, 0}, /* overlong */
        {"\xed\xa0\x80", 3, 0},     /* surrogate D800 */
        {"\xf4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
        {"\x80", 1, 0},             /* lone continuation */
        {"a\0b", 3, 1},             /* NUL is a character (callers check controls) */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(text_utf8_valid(cases[i].s, cases[i].len) == cases[i].valid, "case %zu", i);
        /* jansson agrees (json_stringn takes a NUL byte as a character too) */
        json_t *v = json_stringn(cases[i].s, cases[i].len);
        ck_assert_msg((v != NULL) == cases[i].valid, "jansson disagrees on case %zu", i);
        json_decref(v);
    }
}
END_TEST

START_TEST(escape_examples)
{
    char out[64];
    ck_assert_str_eq(text_escape(out, sizeof(out), "abc", 3), "abc");
    ck_assert_str_eq(text_escape(out, sizeof(out), "\xff\xfe", 2), "\\xff\\xfe");
    ck_assert_str_eq(text_escape(out, sizeof(out), "caf\xc3\xa9", 5), "caf\xc3\xa9");
    ck_assert_str_eq(text_escape(out, sizeof(out), "a\nb\x7f", 4), "a\\x0ab\\x7f");
    ck_assert_str_eq(text_escape(out, sizeof(out), "x\xc3", 2), "x\\xc3"); /* a cut character is escaped */
    /* 63 bytes of 'a' and then é: cut between characters, never inside é */
    char in[70];
    memset(in, 'a', 63);
    memcpy(in + 63, "\xc3\xa9", 2);
    char small[65];
    text_escape(small, sizeof(small), in, 65);
    ck_assert(text_utf8_valid(small, strlen(small)));
    ck_assert_uint_le(strlen(small), sizeof(small) - 1);
    ck_assert_str_eq(small + strlen(small) - 3, "...");
    /* an exact fit needs no "..." */
    char fit[4];
    ck_assert_str_eq(text_escape(fit, sizeof(fit), "abc", 3), "abc");
    ck_assert_str_eq(text_escape(fit, 1, "abc", 3), "");
}
END_TEST

/* any bytes, any capacity: the output is valid for jansson and within cap */
START_TEST(escape_random_bytes)
{
    unsigned seed = 19;
    char in[300], out[200];
    for (int round = 0; round < 5000; round++) {
        size_t len = (size_t)rand_r(&seed) % sizeof(in);
        for (size_t i = 0; i < len; i++) {
            /* weighted towards UTF-8 lead and continuation bytes */
            unsigned r = (unsigned)rand_r(&seed);
            in[i] = (char)((r & 3) == 0 ? 0x80 + (r >> 8) % 0x40 : (r & 3) == 1 ? 0xc0 + (r >> 8) % 0x40 : (r >> 8) & 0xff);
        }
        size_t cap = 1 + (size_t)rand_r(&seed) % (sizeof(out) - 8);
        memset(out, 'Z', sizeof(out));
        text_escape(out, cap, in, len);
        size_t n = strlen(out);
        ck_assert_uint_lt(n, cap);
        ck_assert(out[cap] == 'Z' || cap == sizeof(out)); /* nothing written past cap */
        ck_assert(text_utf8_valid(out, n));
        for (size_t i = 0; i < n; i++)
            ck_assert((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
        json_t *v = json_pack("{s:s}", "detail", out);
        ck_assert_ptr_nonnull(v);
        json_decref(v);
    }
}
END_TEST

static Suite *text_suite(void)
{
    Suite *s = suite_create("text");
    TCase *t = tcase_create("text");
    tcase_set_timeout(t, 60); /* the random rounds under ASan */
    tcase_add_test(t, utf8_validation);
    tcase_add_test(t, escape_examples);
    tcase_add_test(t, escape_random_bytes);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(text_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

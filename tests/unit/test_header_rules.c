/*
 * tests/unit/test_header_rules.c — server/header_rules.c: the header names no rule may touch
 * (framing, hop-by-hop, Host, the cluster's purge sequence) are refused in every phase and
 * action, whatever their case, with a detail naming the header; ordinary names and the ones
 * edgecache writes but a rule may replace (Date, Age, X-Cache) still parse; and rules an older
 * version stored with a refused name are skipped, with a line each, when read back.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/header_rules.h"

static const char *const refused[] = {
    "content-length", "Transfer-Encoding",  "CONNECTION",          "keep-alive", "Proxy-Connection",   "te", "trailer",
    "Upgrade",        "proxy-authenticate", "proxy-authorization", "HOST",       "edgecache-purge-seq"};

START_TEST(refused_names)
{
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        ck_assert_msg(header_rules_refused_name(refused[i], strlen(refused[i])) != NULL, "%s", refused[i]);
    static const char *const allowed[] = {
        "x-foo",        "Date",          "age",        "x-cache", "x-forwarded-for", "forwarded",
        "content-type", "content-range", "set-cookie", "hosts",   "content-lengthx", "t"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        ck_assert_msg(header_rules_refused_name(allowed[i], strlen(allowed[i])) == NULL, "%s", allowed[i]);
    ck_assert_ptr_nonnull(strstr(header_rules_refused_name("Host", 4), "override_host"));
}
END_TEST

START_TEST(parse_refuses_in_every_phase_and_action)
{
    static const char *const phases[] = {"request", "fetch", "deliver"};
    static const char *const actions[] = {"set", "append", "unset"};
    for (size_t p = 0; p < 3; p++)
        for (size_t a = 0; a < 3; a++)
            for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                char text[512], err[256] = "", want[128];
                header_rules_t *rules = NULL;
                snprintf(text, sizeof(text),
                         "[{\"phase\":\"deliver\",\"action\":\"set\",\"header\":\"x-ok\",\"value\":\"1\"},"
                         "{\"phase\":\"%s\",\"action\":\"%s\",\"header\":\"%s\"%s}]",
                         phases[p], actions[a], refused[i], a == 2 ? "" : ",\"value\":\"chunked\"");
                ck_assert_int_eq(header_rules_parse_text(text, &rules, err, sizeof(err)), -1);
                ck_assert_ptr_null(rules);
                char lower[32];
                size_t n = strlen(refused[i]);
                for (size_t k = 0; k <= n; k++)
                    lower[k] = (char)(refused[i][k] >= 'A' && refused[i][k] <= 'Z' ? refused[i][k] + 32 : refused[i][k]);
                snprintf(want, sizeof(want), "header_rules[1].header: \"%s\" is not allowed: ", lower);
                ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s: %s", text, err);
            }
}
END_TEST

START_TEST(parse_keeps_ordinary_names)
{
    header_rules_t *rules = NULL;
    char err[256] = "";
    static const char text[] = "[{\"phase\":\"request\",\"action\":\"set\",\"header\":\"X-Foo\",\"value\":\"1\"},"
                               "{\"phase\":\"fetch\",\"action\":\"unset\",\"header\":\"Set-Cookie\"},"
                               "{\"phase\":\"deliver\",\"action\":\"set\",\"header\":\"x-cache\",\"value\":\"edge\"}]";
    ck_assert_msg(header_rules_parse_text(text, &rules, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(rules->count, 3);
    ck_assert_str_eq(rules->rules[0].name, "x-foo");
    header_rules_free(&rules);
}
END_TEST

/* rules stored before names were refused: those are skipped with a line each, the rest kept in order */
START_TEST(stored_refused_rules_are_skipped)
{
    static const char stored[] =
        "[{\"phase\":\"deliver\",\"action\":\"set\",\"header\":\"Transfer-Encoding\",\"value\":\"chunked\"},"
        "{\"phase\":\"request\",\"action\":\"set\",\"header\":\"x-a\",\"value\":\"1\",\"condition\":{\"path_prefix\":\"/a/"
        "\"}},"
        "{\"phase\":\"fetch\",\"action\":\"set\",\"header\":\"content-length\",\"value\":\"99999\","
        "\"condition\":{\"header\":\"cookie\"}},"
        "{\"phase\":\"deliver\",\"action\":\"unset\",\"header\":\"x-b\"}]";
    header_rules_t *rules = NULL;
    char err[256] = "", *log = NULL;
    size_t log_len = 0, skipped = 99;
    FILE *f = open_memstream(&log, &log_len);
    ck_assert_ptr_nonnull(f);

    ck_assert_msg(header_rules_parse_stored(stored, f, &skipped, &rules, err, sizeof(err)) == 0, "%s", err);
    fclose(f);
    ck_assert_uint_eq(skipped, 2);
    ck_assert_uint_eq(rules->count, 2);
    ck_assert_str_eq(rules->rules[0].name, "x-a");
    ck_assert_str_eq(rules->rules[0].cond_path_prefix, "/a/");
    ck_assert_str_eq(rules->rules[1].name, "x-b");
    ck_assert_ptr_null(rules->rules[1].cond_path_prefix);
    ck_assert_ptr_null(rules->rules[1].cond_header);
    ck_assert_uint_eq(rules->count_by_phase[HR_PHASE_REQUEST], 1);
    ck_assert_uint_eq(rules->count_by_phase[HR_PHASE_FETCH], 0);
    ck_assert_uint_eq(rules->count_by_phase[HR_PHASE_DELIVER], 1);
    ck_assert_ptr_nonnull(strstr(log, "header_rules[0]: the stored rule for \"transfer-encoding\" is skipped: "));
    ck_assert_ptr_nonnull(strstr(log, "header_rules[2]: the stored rule for \"content-length\" is skipped: "));
    header_rules_free(&rules);
    free(log);

    /* the same text through the ordinary parser (config file, admin API) is refused whole */
    ck_assert_int_eq(header_rules_parse_text(stored, &rules, err, sizeof(err)), -1);
    ck_assert_ptr_null(rules);

    /* any other error in a stored list still fails it, as before */
    f = open_memstream(&log, &log_len);
    ck_assert_int_eq(
        header_rules_parse_stored("[{\"phase\":\"deliver\",\"action\":\"set\",\"header\":\"host\",\"value\":\"x\"},"
                                  "{\"phase\":\"deliver\",\"action\":\"bogus\",\"header\":\"x-c\"}]",
                                  f, NULL, &rules, err, sizeof(err)),
        -1);
    fclose(f);
    ck_assert_ptr_null(rules);
    ck_assert_ptr_nonnull(strstr(err, "header_rules[1].action"));
    free(log);
}
END_TEST

static Suite *header_rules_suite(void)
{
    Suite *s = suite_create("header_rules");
    TCase *t = tcase_create("header_rules");
    tcase_add_test(t, refused_names);
    tcase_add_test(t, parse_refuses_in_every_phase_and_action);
    tcase_add_test(t, parse_keeps_ordinary_names);
    tcase_add_test(t, stored_refused_rules_are_skipped);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(header_rules_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

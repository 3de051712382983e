/*
 * tests/unit/test_stats_export.c — the two ways the numbers leave the process as text: the
 * Prometheus exposition (admin-api/metrics.c: label escaping and value formatting, and every
 * line of a render checked against the text exposition format) and the access log
 * (server/accesslog.c: the line, escaped and capped, and the writer thread across a reopen).
 */
#include <check.h>
#include <ftw.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin-api/stats_api.h"
#include "server/accesslog.h"
#include "server/stats.h"
#include "tests/unit/unit_stats.h"

/* ---------------------------------------------------------------- Prometheus */

START_TEST(test_prom_formatting)
{
    char buf[64];
    ck_assert_uint_eq(admin_prom_escape_label("a\"b\\c\nd", 7, buf, sizeof(buf)), 10);
    ck_assert_str_eq(buf, "a\\\"b\\\\c\\nd");
    ck_assert_uint_eq(admin_prom_escape_label("abcdef", 6, buf, 4), 3); /* truncated, NUL-terminated */
    ck_assert_str_eq(buf, "abc");
    admin_prom_format_value(42, buf, sizeof(buf));
    ck_assert_str_eq(buf, "42");
    admin_prom_format_value(0, buf, sizeof(buf));
    ck_assert_str_eq(buf, "0");
    admin_prom_format_value(0.25, buf, sizeof(buf));
    ck_assert_str_eq(buf, "0.25");
    admin_prom_format_value(1e-6, buf, sizeof(buf));
    ck_assert_double_eq(strtod(buf, NULL), 1e-6);
    /* the fewest digits that read back: not 0.046739000000000003 */
    admin_prom_format_value(0.046739, buf, sizeof(buf));
    ck_assert_str_eq(buf, "0.046739");
    admin_prom_format_value(0.1 + 0.2, buf, sizeof(buf));
    ck_assert_double_eq(strtod(buf, NULL), 0.1 + 0.2);
    admin_prom_format_value(1.0 / 3.0, buf, sizeof(buf));
    ck_assert_double_eq(strtod(buf, NULL), 1.0 / 3.0);
    /* microseconds as exact decimal seconds */
    static const struct {
        uint64_t us;
        const char *text;
    } us_cases[] = {{0, "0"},
                    {1, "0.000001"},
                    {1500, "0.0015"},
                    {46739, "0.046739"},
                    {60000000, "60"},
                    {1234567, "1.234567"},
                    {10000000001, "10000.000001"}};
    for (size_t i = 0; i < sizeof(us_cases) / sizeof(us_cases[0]); i++) {
        admin_prom_format_us(us_cases[i].us, buf, sizeof(buf));
        ck_assert_str_eq(buf, us_cases[i].text);
    }
    admin_prom_format_value(INFINITY, buf, sizeof(buf));
    ck_assert_str_eq(buf, "+Inf");
    admin_prom_format_value(-INFINITY, buf, sizeof(buf));
    ck_assert_str_eq(buf, "-Inf");
    admin_prom_format_value(NAN, buf, sizeof(buf));
    ck_assert_str_eq(buf, "NaN");
}
END_TEST

/* every line of the exposition against the text format (0.0.4): HELP/TYPE comments, then
 * samples `name{label="value",...} number` of a declared family; histogram buckets
 * cumulative with le ascending and +Inf equal to _count */
START_TEST(test_metrics_render_format)
{
    config_t cfg;
    store_t *s = open_store();
    init_stats(&cfg, s);
    stats_note_purge(STATS_PURGE_KEY, 1500);
    stats_note_purge(STATS_PURGE_KEY, 500);
    size_t len;
    char *text = admin_metrics_render(&len);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert(len > 0 && text[len - 1] == '\n');

    regex_t help, type, sample;
    ck_assert_int_eq(regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* [^\n]+$", REG_EXTENDED), 0);
    ck_assert_int_eq(
        regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$", REG_EXTENDED), 0);
    ck_assert_int_eq(regcomp(&sample,
                             "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*\\})? "
                             "(-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|\\+Inf|-Inf|NaN)$",
                             REG_EXTENDED),
                     0);
    char family[128] = "", ftype[32] = "";
    int samples = 0, histos = 0;
    double last_le = -1, last_bucket = -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        regmatch_t m[8];
        if (strncmp(line, "# HELP ", 7) == 0) {
            ck_assert_msg(regexec(&help, line, 0, NULL, 0) == 0, "bad HELP line: %s", line);
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            ck_assert_msg(regexec(&type, line, 8, m, 0) == 0, "bad TYPE line: %s", line);
            snprintf(family, sizeof(family), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
            snprintf(ftype, sizeof(ftype), "%.*s", (int)(m[2].rm_eo - m[2].rm_so), line + m[2].rm_so);
            if (strcmp(ftype, "counter") == 0)
                ck_assert_msg(strlen(family) > 6 && strcmp(family + strlen(family) - 6, "_total") == 0,
                              "counter %s without _total", family);
        } else {
            ck_assert_msg(regexec(&sample, line, 8, m, 0) == 0, "bad sample line: %s", line);
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
            ck_assert_msg(family[0] != '\0' && strncmp(name, family, strlen(family)) == 0, "sample %s outside its family %s",
                          name, family);
            const char *suffix = name + strlen(family);
            if (strcmp(ftype, "histogram") == 0) {
                ck_assert_msg(strcmp(suffix, "_bucket") == 0 || strcmp(suffix, "_sum") == 0 || strcmp(suffix, "_count") == 0,
                              "histogram sample %s", name);
                double v = strtod(strrchr(line, ' ') + 1, NULL);
                if (strcmp(suffix, "_bucket") == 0) {
                    const char *le = strstr(line, "le=\"");
                    ck_assert_ptr_nonnull(le);
                    double lev = strncmp(le + 4, "+Inf", 4) == 0 ? INFINITY : strtod(le + 4, NULL);
                    if (last_le >= 0 && lev > last_le)
                        ck_assert(v >= last_bucket);
                    last_le = lev;
                    last_bucket = v;
                } else if (strcmp(suffix, "_count") == 0) {
                    ck_assert(isinf(last_le));
                    ck_assert_double_eq(v, last_bucket);
                    last_le = -1;
                    histos++;
                }
            } else if (strcmp(ftype, "summary") == 0) {
                ck_assert(strcmp(suffix, "_sum") == 0 || strcmp(suffix, "_count") == 0);
            } else {
                ck_assert_msg(*suffix == '\0', "sample %s of family %s", name, family);
            }
            samples++;
        }
    }
    ck_assert_int_eq(histos, 3); /* hit, miss, pass */
    ck_assert_int_gt(samples, 100);
    free(text);

    text = admin_metrics_render(&len);
    ck_assert_ptr_nonnull(strstr(text, "\nedgecache_purges_total{kind=\"key\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nedgecache_purge_duration_seconds_sum{kind=\"key\"} 0.002\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nedgecache_request_duration_seconds_bucket{cache=\"hit\",le=\"0.000001\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nedgecache_request_duration_seconds_bucket{cache=\"miss\",le=\"60\"} 0\n"));
    free(text);
    regfree(&help);
    regfree(&type);
    regfree(&sample);
    stats_stop();
    close_store(&s);
}
END_TEST

/* ---------------------------------------------------------------- access log line */

static socklen_t fake_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn;
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    memset(in, 0, sizeof(*in));
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(0x7f000001);
    return sizeof(*in);
}

START_TEST(test_accesslog_line)
{
    static const h2o_conn_callbacks_t cbs = {.get_peername = fake_peername};
    h2o_conn_t conn = {.callbacks = &cbs};
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    req.conn = &conn;
    req.input.method = h2o_iovec_init(H2O_STRLIT("GET"));
    req.input.path = h2o_iovec_init(H2O_STRLIT("/a b?\"q\"=\x01\xc3\xa9"));
    req.version = 0x101;
    req.res.status = 200;
    req.bytes_sent = 1234;
    req.timestamps.request_begin_at.tv_sec = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
    h2o_add_header(&req.pool, &req.headers, H2O_TOKEN_USER_AGENT, NULL, H2O_STRLIT("curl/8 \"x\""));
    accesslog_entry_t e = {.cache_status = "HIT", .backend = "origin-1", .backend_len = 8, .ttfb_us = 1500, .total_us = 2000250};
    char buf[ACCESSLOG_MAX_LINE];
    size_t n = accesslog_format(buf, sizeof(buf), &req, &e);
    buf[n] = '\0';
    ck_assert_str_eq(buf,
                     "127.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET /a b?\\x22q\\x22=\\x01\\xc3\\xa9 HTTP/1.1\" 200 1234 "
                     "\"-\" \"curl/8 \\x22x\\x22\" HIT origin-1 0.001500 2.000250\n");

    /* nothing sent, no cache status, no backend, no first byte */
    req.bytes_sent = 0;
    req.res.status = 0;
    req.version = 0x100;
    accesslog_entry_t none = {.ttfb_us = -1, .total_us = 7};
    n = accesslog_format(buf, sizeof(buf), &req, &none);
    buf[n] = '\0';
    ck_assert_ptr_nonnull(strstr(buf, " HTTP/1.0\" 0 - \"-\" \"curl/8 \\x22x\\x22\" - - - 0.000007\n"));

    /* a huge target is cut, the line stays one line within the cap */
    size_t big = 20000;
    char *path = malloc(big);
    memset(path, 'a', big);
    req.input.path = h2o_iovec_init(path, big);
    n = accesslog_format(buf, 512, &req, &e);
    ck_assert_uint_le(n, 512);
    ck_assert_int_eq(buf[n - 1], '\n');
    ck_assert_ptr_null(memchr(buf, '\n', n - 1));
    free(path);
    h2o_mem_clear_pool(&req.pool);
}
END_TEST

/* the writer thread: lines reach the file after a flush, and after a reopen they go to the new file */
START_TEST(test_accesslog_file_and_reopen)
{
    char dir[] = "/tmp/edgecache-alog-XXXXXX", path[128], rotated[128], err[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/access.log.1", dir);
    ck_assert_int_eq(accesslog_open(path, 2, err, sizeof(err)), 0);
    ck_assert_int_eq(accesslog_enabled(), 1);

    static const h2o_conn_callbacks_t cbs = {.get_peername = fake_peername};
    h2o_conn_t conn = {.callbacks = &cbs};
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    req.conn = &conn;
    req.input.method = h2o_iovec_init(H2O_STRLIT("GET"));
    req.input.path = h2o_iovec_init(H2O_STRLIT("/one"));
    req.version = 0x101;
    req.res.status = 200;
    accesslog_entry_t e = {.cache_status = "MISS", .ttfb_us = 1, .total_us = 2};
    accesslog_write_request(0, &req, &e);
    accesslog_write_request(1, &req, &e);
    accesslog_flush(0);
    accesslog_flush(1);

    /* wait (bounded) for two lines */
    char content[4096];
    size_t got = 0;
    for (int i = 0; i < 300; i++) {
        FILE *f = fopen(path, "r");
        got = f != NULL ? fread(content, 1, sizeof(content) - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        content[got] = '\0';
        char *nl = strchr(content, '\n');
        if (nl != NULL && strchr(nl + 1, '\n') != NULL)
            break;
        usleep(10000);
    }
    ck_assert_ptr_nonnull(strstr(content, "\"GET /one HTTP/1.1\" 200 - \"-\" \"-\" MISS - 0.000001 0.000002\n"));
    ck_assert_ptr_nonnull(strstr(strstr(content, "\n") + 1, "GET /one"));

    ck_assert_int_eq(rename(path, rotated), 0);
    accesslog_reopen();
    /* the reopen is asynchronous: lines written after it land in the new file once it exists */
    req.input.path = h2o_iovec_init(H2O_STRLIT("/two"));
    for (int i = 0; i < 200 && access(path, F_OK) != 0; i++)
        usleep(10000);
    ck_assert_int_eq(access(path, F_OK), 0);
    accesslog_write_request(0, &req, &e);
    accesslog_close(); /* flushes and writes everything */
    ck_assert_int_eq(accesslog_enabled(), 0);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    got = fread(content, 1, sizeof(content) - 1, f);
    fclose(f);
    content[got] = '\0';
    ck_assert_ptr_nonnull(strstr(content, "GET /two"));
    ck_assert_ptr_null(strstr(content, "GET /one"));
    ck_assert_uint_eq(accesslog_dropped_lines(), 0);
    h2o_mem_clear_pool(&req.pool);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
END_TEST

static Suite *stats_export_suite(void)
{
    Suite *s = suite_create("stats_export");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_prom_formatting);
    tcase_add_test(tc, test_metrics_render_format);
    tcase_add_test(tc, test_accesslog_line);
    tcase_add_test(tc, test_accesslog_file_and_reopen);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stats_export_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

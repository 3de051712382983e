/*
 * tests/unit/test_config.c — server/config.c: defaults, flags, the JSON file, precedence,
 * and the exact one-line message of every error path.
 */
#include "server/config.h"
#include "server/tls.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static int file_seq;

static void setup(void)
{
    strcpy(tmpdir, "/tmp/edgecache-test-config-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    file_seq = 0;
}

static void teardown(void)
{
    char path[128];
    for (int i = 0; i < file_seq; i++) {
        snprintf(path, sizeof(path), "%s/%d.json", tmpdir, i);
        unlink(path);
    }
    rmdir(tmpdir);
}

/* write a config file; returns its path (static buffer per call index) */
static const char *write_file(const char *content)
{
    static char paths[32][128];
    ck_assert_int_lt(file_seq, 32);
    char *p = paths[file_seq];
    snprintf(p, 128, "%s/%d.json", tmpdir, file_seq);
    file_seq++;
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    return p;
}

/* run config_parse_args over defaults with the given flags (NULL-terminated) */
static int parse(config_t *cfg, char *err, size_t errlen, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    argv[argc++] = "edgecache";
    va_start(ap, errlen);
    for (char *a; (a = va_arg(ap, char *)) != NULL;) {
        ck_assert_int_lt(argc, 63);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    config_defaults(cfg);
    err[0] = '\0';
    return config_parse_args(cfg, argc, argv, 1, err, errlen);
}

/* expect failure with exactly this message */
#define EXPECT_ERR(msg, ...)                                                 \
    do {                                                                     \
        config_t c_;                                                         \
        char e_[512];                                                        \
        ck_assert_int_eq(parse(&c_, e_, sizeof(e_), __VA_ARGS__, NULL), -1); \
        ck_assert_str_eq(e_, msg);                                           \
    } while (0)

START_TEST(defaults)
{
    config_t c;
    memset(&c, 0x5a, sizeof(c));
    config_defaults(&c);
    ck_assert_str_eq(c.listen.host, "127.0.0.1");
    ck_assert_uint_eq(c.listen.port, 8080);
    ck_assert_str_eq(c.admin_listen.host, "127.0.0.1");
    ck_assert_uint_eq(c.admin_listen.port, 8081);
    ck_assert_uint_eq(c.num_backends, 0);
    ck_assert_str_eq(c.data_dir, "./edgecache-data");
    ck_assert_uint_eq(c.memory_size, 256ull << 20);
    ck_assert_uint_eq(c.disk_size, 1ull << 30);
    ck_assert_uint_eq(c.default_ttl, 120);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_uint_eq(c.threads, cores < 1 ? 1 : cores > 256 ? 256 : (unsigned)cores);
    ck_assert_uint_eq(c.admin_threads, 1);
    ck_assert_str_eq(c.config_file, "");
    ck_assert_str_eq(c.service_id, "edgecache");
    ck_assert_uint_eq(c.max_heuristic_ttl, 86400);
    ck_assert_uint_eq(c.default_grace, 0);
    ck_assert_uint_eq(c.negative_ttl, 0); /* an error without freshness is not stored */
    ck_assert_uint_eq(c.origin_timeout_ms, 15000);
    ck_assert_uint_eq(c.shutdown_timeout_ms, 5000);
}
END_TEST

START_TEST(request_body_limits)
{
    config_t c;
    char err[512];
    ck_assert_int_eq(parse(&c, err, sizeof(err), NULL), 0);
    ck_assert_uint_eq(c.max_request_body, 8ull << 20);
    ck_assert_uint_eq(c.request_body_memory, 256ull << 20);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--max-request-body", "64M", "--request-body-memory=1G", NULL), 0);
    ck_assert_uint_eq(c.max_request_body, 64ull << 20);
    ck_assert_uint_eq(c.request_body_memory, 1ull << 30);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--max-request-body", "0", NULL), 0);
    ck_assert_uint_eq(c.max_request_body, 0);
    EXPECT_ERR("--max-request-body: invalid size '2G' (expected 0 to 1G, e.g. 8M)", "--max-request-body", "2G");
    EXPECT_ERR("--request-body-memory: invalid size 'x' (expected 0 to 1T, e.g. 256M)", "--request-body-memory", "x");
    /* a budget smaller than one allowed body could never take that body */
    EXPECT_ERR("--request-body-memory: 1048576 bytes is less than --max-request-body (2097152)", "--max-request-body", "2M",
               "--request-body-memory", "1M");
    const char *path = write_file("{\"max_request_body\": \"1M\", \"request_body_memory\": 4194304}");
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--config", path, NULL), 0);
    ck_assert_uint_eq(c.max_request_body, 1ull << 20);
    ck_assert_uint_eq(c.request_body_memory, 4ull << 20);
}
END_TEST

START_TEST(put_backlog)
{
    config_t c;
    char err[512];
    /* not given: 256M, or --memory-size when that is less */
    ck_assert_int_eq(parse(&c, err, sizeof(err), NULL), 0);
    ck_assert_uint_eq(c.disk_put_backlog, 0);
    ck_assert_uint_eq(config_put_backlog(&c), 256ull << 20);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--memory-size", "64M", NULL), 0);
    ck_assert_uint_eq(config_put_backlog(&c), 64ull << 20);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--memory-size", "4G", NULL), 0);
    ck_assert_uint_eq(config_put_backlog(&c), 256ull << 20);
    /* given: whatever the memory tier's size */
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--memory-size", "64M", "--disk-put-backlog", "1G", NULL), 0);
    ck_assert_uint_eq(config_put_backlog(&c), 1ull << 30);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--disk-put-backlog=1M", NULL), 0);
    ck_assert_uint_eq(config_put_backlog(&c), 1ull << 20);
    EXPECT_ERR("--disk-put-backlog: invalid size '0' (expected 1M to 1T, e.g. 256M)", "--disk-put-backlog", "0");
    EXPECT_ERR("--disk-put-backlog: invalid size '2T' (expected 1M to 1T, e.g. 256M)", "--disk-put-backlog", "2T");
    EXPECT_ERR("--disk-put-backlog: invalid size 'lots' (expected 1M to 1T, e.g. 256M)", "--disk-put-backlog", "lots");
    const char *path = write_file("{\"disk_put_backlog\": \"32M\", \"memory_size\": 16777216}");
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--config", path, NULL), 0);
    ck_assert_uint_eq(config_put_backlog(&c), 32ull << 20);
    path = write_file("{\"disk_put_backlog\": 8388608}");
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--config", path, NULL), 0);
    ck_assert_uint_eq(config_put_backlog(&c), 8ull << 20);
}
END_TEST

START_TEST(accept_spread)
{
    config_t c;
    char err[512];
    ck_assert_int_eq(parse(&c, err, sizeof(err), NULL), 0);
    ck_assert_uint_eq(c.accept_spread, 50);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--accept-spread", "0", NULL), 0);
    ck_assert_uint_eq(c.accept_spread, 0);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--accept-spread=100", NULL), 0);
    ck_assert_uint_eq(c.accept_spread, 100);
    EXPECT_ERR("--accept-spread: invalid value '101' (expected a percentage 0-100)", "--accept-spread", "101");
    EXPECT_ERR("--accept-spread: invalid value '-1' (expected a percentage 0-100)", "--accept-spread", "-1");
    EXPECT_ERR("--accept-spread: invalid value '50%' (expected a percentage 0-100)", "--accept-spread", "50%");
    EXPECT_ERR("--accept-spread: missing value", "--accept-spread=");
    const char *path = write_file("{\"accept_spread\": 75}");
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--config", path, NULL), 0);
    ck_assert_uint_eq(c.accept_spread, 75);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--config", path, "--accept-spread", "10", NULL), 0);
    ck_assert_uint_eq(c.accept_spread, 10);
}
END_TEST

START_TEST(sizes)
{
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"4096", 4096},
        {"64k", 64ull << 10},
        {"64K", 64ull << 10},
        {"256M", 256ull << 20},
        {"256m", 256ull << 20},
        {"1G", 1ull << 30},
        {"1g", 1ull << 30},
        {"2T", 2ull << 40},
        {"256MB", 256ull << 20},
        {"1gb", 1ull << 30},
        {"4096B", 4096},
        {"00012", 12},
        {"18446744073709551615", UINT64_MAX},
        {"16777215T", 16777215ull << 40},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 1;
        ck_assert_msg(config_parse_size(ok[i].s, &v) == 0, "'%s' should parse", ok[i].s);
        ck_assert_msg(v == ok[i].v, "'%s' gave %llu", ok[i].s, (unsigned long long)v);
    }
    static const char *const bad[] = {"",
                                      "M",
                                      "abc",
                                      "-1",
                                      "+5",
                                      " 5",
                                      "5 ",
                                      "1.5G",
                                      "10X",
                                      "10MM",
                                      "10BB",
                                      "0x10",
                                      "1e9",
                                      "5MiB",
                                      "16777216T",
                                      "18446744073709551616",
                                      "99999999999999999999999",
                                      "17179869184G"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 7;
        ck_assert_msg(config_parse_size(bad[i], &v) == -1, "'%s' should be invalid", bad[i]);
        ck_assert_uint_eq(v, 7);
    }
    uint64_t v;
    ck_assert_int_eq(config_parse_size(NULL, &v), -1);
}
END_TEST

START_TEST(addrs)
{
    config_addr_t a;
    ck_assert_int_eq(config_parse_addr("127.0.0.1:8080", &a), 0);
    ck_assert_str_eq(a.host, "127.0.0.1");
    ck_assert_uint_eq(a.port, 8080);
    ck_assert_int_eq(config_parse_addr("origin.example.com:443", &a), 0);
    ck_assert_str_eq(a.host, "origin.example.com");
    ck_assert_uint_eq(a.port, 443);
    ck_assert_int_eq(config_parse_addr("[::1]:80", &a), 0);
    ck_assert_str_eq(a.host, "::1");
    ck_assert_uint_eq(a.port, 80);
    ck_assert_int_eq(config_parse_addr("[fe80::1%eth0]:65535", &a), 0);
    ck_assert_str_eq(a.host, "fe80::1%eth0");
    ck_assert_uint_eq(a.port, 65535);
    ck_assert_int_eq(config_parse_addr("localhost:0", &a), 0); /* ephemeral: allowed here */
    ck_assert_uint_eq(a.port, 0);

    char longest[300];
    memset(longest, 'a', 255);
    strcpy(longest + 255, ":1");
    ck_assert_int_eq(config_parse_addr(longest, &a), 0);
    ck_assert_uint_eq(strlen(a.host), 255);
    memset(longest, 'a', 256);
    strcpy(longest + 256, ":1");
    ck_assert_int_eq(config_parse_addr(longest, &a), -1);

    static const char *const bad[] = {
        "",      "127.0.0.1", ":80",    "host:",    "host:65536",  "host:-1", "host:+80", "host:8o",  "::1:80",    "[::1]80",
        "[::1]", "[]:80",     "[::1]:", "ho st:80", "host:080000", "h/x:80",  "a@b:80",   "host:80 ", "host:99999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(config_parse_addr(bad[i], &a) == -1, "'%s' should be invalid", bad[i]);
    ck_assert_int_eq(config_parse_addr(NULL, &a), -1);
}
END_TEST

START_TEST(flags_both_syntaxes)
{
    config_t c;
    char err[512];
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--listen", "0.0.0.0:0", "--admin-listen=[::1]:9001", "--backend",
                           "10.0.0.1:80", "--backend=[::1]:8081", "--data-dir", "/var/cache/ec", "--memory-size=1g",
                           "--disk-size", "10G", "--default-ttl", "0", "--threads=3", "--service-id", "svc-1",
                           "--default-grace=600", "--max-heuristic-ttl", "7200", "--origin-timeout", "2500",
                           "--shutdown-timeout=0", "--negative-ttl", "30", NULL),
                     0);
    ck_assert_str_eq(c.listen.host, "0.0.0.0");
    ck_assert_uint_eq(c.listen.port, 0);
    ck_assert_str_eq(c.admin_listen.host, "::1");
    ck_assert_uint_eq(c.admin_listen.port, 9001);
    ck_assert_uint_eq(c.num_backends, 2);
    ck_assert_str_eq(c.backends[0].host, "10.0.0.1");
    ck_assert_uint_eq(c.backends[0].port, 80);
    ck_assert_str_eq(c.backends[1].host, "::1");
    ck_assert_uint_eq(c.backends[1].port, 8081);
    ck_assert_str_eq(c.data_dir, "/var/cache/ec");
    ck_assert_uint_eq(c.memory_size, 1ull << 30);
    ck_assert_uint_eq(c.disk_size, 10ull << 30);
    ck_assert_uint_eq(c.default_ttl, 0);
    ck_assert_uint_eq(c.threads, 3);
    ck_assert_str_eq(c.service_id, "svc-1");
    ck_assert_uint_eq(c.default_grace, 600);
    ck_assert_uint_eq(c.max_heuristic_ttl, 7200);
    ck_assert_uint_eq(c.negative_ttl, 30);
    ck_assert_uint_eq(c.origin_timeout_ms, 2500);
    ck_assert_uint_eq(c.shutdown_timeout_ms, 0);
    ck_assert_str_eq(c.config_file, "");

    /* the last of a repeated flag wins; nothing given → defaults */
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--threads", "2", "--threads", "5", NULL), 0);
    ck_assert_uint_eq(c.threads, 5);
    ck_assert_int_eq(parse(&c, err, sizeof(err), NULL), 0);
    ck_assert_uint_eq(c.listen.port, 8080);
    /* range edges */
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--threads", "256", "--default-ttl", "2147483647", "--memory-size", "1M",
                           "--disk-size", "1T", "--admin-threads", "64", NULL),
                     0);
    ck_assert_uint_eq(c.threads, 256);
    ck_assert_uint_eq(c.admin_threads, 64);
    ck_assert_uint_eq(c.default_ttl, 2147483647u);
    ck_assert_uint_eq(c.memory_size, 1ull << 20);
    ck_assert_uint_eq(c.disk_size, 1ull << 40);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--admin-threads=1", NULL), 0);
    ck_assert_uint_eq(c.admin_threads, 1);
    /* "first" skips leading arguments (a subcommand) */
    char *argv[] = {"edgecache", "sub", "--threads", "7", NULL};
    config_defaults(&c);
    ck_assert_int_eq(config_parse_args(&c, 4, argv, 2, err, sizeof(err)), 0);
    ck_assert_uint_eq(c.threads, 7);
}
END_TEST

START_TEST(help)
{
    config_t c;
    char err[512];
    /* --help prints to stdout: send it to /dev/null for these calls, then restore */
    fflush(stdout);
    int saved_stdout = dup(STDOUT_FILENO);
    ck_assert_int_ge(saved_stdout, 0);
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stdout));
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--help", NULL), 1);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "-h", NULL), 1);
    /* help wins even next to bad flags or a missing config file */
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--threads", "x", "--help", NULL), 1);
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--config", "/nonexistent/x.json", "-h", NULL), 1);
    /* a value never starts with "--", so this is --listen without a value, then --help */
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--listen", "--help", NULL), 1);
    fflush(stdout);
    ck_assert_int_ge(dup2(saved_stdout, STDOUT_FILENO), 0);
    close(saved_stdout);
    clearerr(stdout);

    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    config_print_help(f);
    long n = ftell(f);
    ck_assert_int_gt(n, 0);
    char *text = calloc(1, (size_t)n + 1);
    rewind(f);
    ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    static const char *const must[] = {
        "edgecache [OPTIONS]",
        "edgecache migrate --status --data-dir DIR",
        "edgecache token create|list|revoke",
        "--listen HOST:PORT",
        "--admin-listen HOST:PORT",
        "--backend HOST:PORT",
        "--data-dir DIR",
        "--memory-size SIZE",
        "--disk-size SIZE",
        "--default-ttl SECONDS",
        "--threads N",
        "--config FILE",
        "--service-id ID",
        "--default-grace SECONDS",
        "--max-heuristic-ttl SECONDS",
        "--negative-ttl SECONDS",
        "--origin-timeout MS",
        "--shutdown-timeout MS",
        "--help",
        "(default: 127.0.0.1:8080)",
        "(default: 127.0.0.1:8081)",
        "(default: ./edgecache-data)",
        "(default: 256M)",
        "(default: 1G)",
        "(default: 120)",
        "(default: edgecache)",
        "(default: 86400)",
        "(default: 15000)",
        "(default: 5000)",
    };
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        ck_assert_msg(strstr(text, must[i]) != NULL, "help lacks '%s'", must[i]);
    /* one line per flag: no line is absurdly long */
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
        ck_assert_msg(strlen(line) < 160, "long help line: %s", line);
    free(text);
}
END_TEST

START_TEST(file_load)
{
    const char *path = write_file("{\n"
                                  "  \"listen\": \"0.0.0.0:8000\",\n"
                                  "  \"admin_listen\": \"[::1]:8001\",\n"
                                  "  \"backends\": [\"10.0.0.1:80\", \"origin.example:8080\"],\n"
                                  "  \"data_dir\": \"/srv/ec\",\n"
                                  "  \"memory_size\": \"512M\",\n"
                                  "  \"disk_size\": 2147483648,\n"
                                  "  \"default_ttl\": 300,\n"
                                  "  \"threads\": 4,\n"
                                  "  \"admin_threads\": 3,\n"
                                  "  \"service_id\": \"site\",\n"
                                  "  \"max_heuristic_ttl\": 600,\n"
                                  "  \"default_grace\": 60,\n"
                                  "  \"negative_ttl\": 15,\n"
                                  "  \"origin_timeout\": 3000,\n"
                                  "  \"shutdown_timeout\": 100\n"
                                  "}\n");
    config_t c;
    char err[512];
    config_defaults(&c);
    ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), 0);
    ck_assert_str_eq(c.listen.host, "0.0.0.0");
    ck_assert_uint_eq(c.listen.port, 8000);
    ck_assert_str_eq(c.admin_listen.host, "::1");
    ck_assert_uint_eq(c.num_backends, 2);
    ck_assert_str_eq(c.backends[1].host, "origin.example");
    ck_assert_uint_eq(c.backends[1].port, 8080);
    ck_assert_str_eq(c.data_dir, "/srv/ec");
    ck_assert_uint_eq(c.memory_size, 512ull << 20);
    ck_assert_uint_eq(c.disk_size, 2ull << 30);
    ck_assert_uint_eq(c.default_ttl, 300);
    ck_assert_uint_eq(c.threads, 4);
    ck_assert_uint_eq(c.admin_threads, 3);
    ck_assert_str_eq(c.service_id, "site");
    ck_assert_uint_eq(c.max_heuristic_ttl, 600);
    ck_assert_uint_eq(c.default_grace, 60);
    ck_assert_uint_eq(c.negative_ttl, 15);
    ck_assert_uint_eq(c.origin_timeout_ms, 3000);
    ck_assert_uint_eq(c.shutdown_timeout_ms, 100);

    /* keys left out keep their values; an empty object is fine */
    config_defaults(&c);
    ck_assert_int_eq(config_load_file(&c, write_file("{}"), err, sizeof(err)), 0);
    ck_assert_uint_eq(c.default_ttl, 120);
    /* through --config */
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--config", path, NULL), 0);
    ck_assert_uint_eq(c.threads, 4);
    ck_assert_str_eq(c.config_file, path);
}
END_TEST

START_TEST(flags_win)
{
    const char *path = write_file("{\"threads\": 4, \"default_ttl\": 300, \"backends\": [\"a:1\", \"b:2\", \"c:3\"],"
                                  " \"service_id\": \"fromfile\"}");
    config_t c;
    char err[512];
    char cfg_eq[200];
    snprintf(cfg_eq, sizeof(cfg_eq), "--config=%s", path);

    /* flag before --config */
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--threads", "2", "--config", path, NULL), 0);
    ck_assert_uint_eq(c.threads, 2);
    ck_assert_uint_eq(c.default_ttl, 300);
    ck_assert_str_eq(c.service_id, "fromfile");
    ck_assert_uint_eq(c.num_backends, 3);
    /* flag after --config=FILE */
    ck_assert_int_eq(parse(&c, err, sizeof(err), cfg_eq, "--default-ttl", "5", NULL), 0);
    ck_assert_uint_eq(c.threads, 4);
    ck_assert_uint_eq(c.default_ttl, 5);
    /* --backend flags replace the file's list, not append */
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--backend", "x:9", cfg_eq, "--backend", "y:10", NULL), 0);
    ck_assert_uint_eq(c.num_backends, 2);
    ck_assert_str_eq(c.backends[0].host, "x");
    ck_assert_str_eq(c.backends[1].host, "y");
    ck_assert_uint_eq(c.backends[1].port, 10);
}
END_TEST

START_TEST(flag_errors)
{
    EXPECT_ERR("--threads: invalid value 'x' (expected an integer 1-256)", "--threads", "x");
    EXPECT_ERR("--threads: invalid value '0' (expected an integer 1-256)", "--threads", "0");
    EXPECT_ERR("--threads: invalid value '257' (expected an integer 1-256)", "--threads=257");
    EXPECT_ERR("--threads: invalid value '-1' (expected an integer 1-256)", "--threads=-1");
    EXPECT_ERR("--admin-threads: invalid value '0' (expected an integer 1-64)", "--admin-threads", "0");
    EXPECT_ERR("--admin-threads: invalid value '65' (expected an integer 1-64)", "--admin-threads=65");
    EXPECT_ERR("unknown option '--foo' (see --help)", "--foo");
    EXPECT_ERR("unknown option '--foo' (see --help)", "--foo=bar");
    EXPECT_ERR("unknown option '-x' (see --help)", "-x");
    EXPECT_ERR("unexpected argument 'stray' (see --help)", "stray");
    EXPECT_ERR("unknown option '--' (see --help)", "--");
    EXPECT_ERR("--listen: missing value", "--listen");
    EXPECT_ERR("--listen: missing value", "--listen=");
    EXPECT_ERR("--listen: missing value", "--listen", "--threads", "2");
    EXPECT_ERR("--help: does not take a value", "--help=yes");
    EXPECT_ERR("--listen: invalid address 'nope' (expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080)", "--listen", "nope");
    EXPECT_ERR("--admin-listen: invalid address '1.2.3.4:70000' (expected HOST:PORT, e.g. 127.0.0.1:8080 or "
               "[::1]:8080)",
               "--admin-listen=1.2.3.4:70000");
    EXPECT_ERR("--backend: invalid address 'origin:0' (expected HOST:PORT with a port 1-65535)", "--backend", "origin:0");
    EXPECT_ERR("--backend: invalid address 'origin' (expected HOST:PORT with a port 1-65535)", "--backend", "origin");
    EXPECT_ERR("--memory-size: invalid size 'abc' (use e.g. 256M)", "--memory-size", "abc");
    EXPECT_ERR("--memory-size: invalid size '512K' (must be at least 1M)", "--memory-size", "512K");
    EXPECT_ERR("--disk-size: invalid size '99999999999999999999' (use e.g. 1G)", "--disk-size", "99999999999999999999");
    EXPECT_ERR("--disk-size: invalid size '2T' (must be between 1M and 1T)", "--disk-size", "2T");
    EXPECT_ERR("--disk-size: invalid size '1048575' (must be at least 1M)", "--disk-size", "1048575");
    EXPECT_ERR("--default-ttl: invalid value '2147483648' (expected seconds 0-2147483647)", "--default-ttl", "2147483648");
    EXPECT_ERR("--default-ttl: invalid value '1h' (expected seconds 0-2147483647)", "--default-ttl", "1h");
    EXPECT_ERR("--default-grace: invalid value '-5' (expected seconds 0-2147483647)", "--default-grace=-5");
    EXPECT_ERR("--max-heuristic-ttl: invalid value 'x' (expected seconds 0-2147483647)", "--max-heuristic-ttl", "x");
    EXPECT_ERR("--negative-ttl: invalid value '-1' (expected seconds 0-2147483647)", "--negative-ttl=-1");
    EXPECT_ERR("--negative-ttl: invalid value '2147483648' (expected seconds 0-2147483647)", "--negative-ttl", "2147483648");
    EXPECT_ERR("--origin-timeout: invalid value '0' (expected milliseconds 1-2147483647)", "--origin-timeout", "0");
    EXPECT_ERR("--shutdown-timeout: invalid value '1.5' (expected milliseconds 0-2147483647)", "--shutdown-timeout", "1.5");
    EXPECT_ERR("--service-id: invalid service id 'a/b' (expected 1-127 printable characters, no '/')", "--service-id", "a/b");
    /* errors come in argv order: the first bad flag is named */
    EXPECT_ERR("--threads: invalid value 'x' (expected an integer 1-256)", "--threads", "x", "--bogus");
    EXPECT_ERR("unknown option '--bogus' (see --help)", "--bogus", "--threads", "x");

    /* too many backends */
    config_t c;
    char err[512];
    char *argv[2 + 2 * (CONFIG_MAX_BACKENDS + 1)];
    int argc = 0;
    argv[argc++] = "edgecache";
    for (int i = 0; i <= CONFIG_MAX_BACKENDS; i++) {
        argv[argc++] = "--backend";
        argv[argc++] = "10.0.0.1:80";
    }
    argv[argc] = NULL;
    config_defaults(&c);
    ck_assert_int_eq(config_parse_args(&c, argc - 2, argv, 1, err, sizeof(err)), 0);
    ck_assert_uint_eq(c.num_backends, CONFIG_MAX_BACKENDS);
    config_defaults(&c);
    ck_assert_int_eq(config_parse_args(&c, argc, argv, 1, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "--backend: too many backends (at most 64)");

    /* messages never overflow a small buffer */
    char small[16];
    memset(small, 'z', sizeof(small));
    char *argv2[] = {"edgecache", "--threads", "xxxxxxxxxxxxxxxxxxxxxxxxxx", NULL};
    config_defaults(&c);
    ck_assert_int_eq(config_parse_args(&c, 3, argv2, 1, small, sizeof(small)), -1);
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
}
END_TEST

START_TEST(file_errors)
{
    config_t c;
    char err[512], want[700];
    const char *p;

#define FILE_ERR(content, fmt)                                           \
    do {                                                                 \
        p = write_file(content);                                         \
        config_defaults(&c);                                             \
        ck_assert_int_eq(config_load_file(&c, p, err, sizeof(err)), -1); \
        snprintf(want, sizeof(want), fmt, p);                            \
        ck_assert_str_eq(err, want);                                     \
    } while (0)

    FILE_ERR("{\"thread\": 4}", "%s: unknown key 'thread'");
    FILE_ERR("{\"threads\": \"4\"}", "%s: key 'threads': expected an integer, got a string");
    FILE_ERR("{\"threads\": 4.5}", "%s: key 'threads': expected an integer, got a number with a fraction");
    FILE_ERR("{\"threads\": 0}", "%s: key 'threads': invalid value '0' (expected an integer 1-256)");
    FILE_ERR("{\"admin_threads\": \"2\"}", "%s: key 'admin_threads': expected an integer, got a string");
    FILE_ERR("{\"accept_spread\": \"50\"}", "%s: key 'accept_spread': expected an integer, got a string");
    FILE_ERR("{\"accept_spread\": 200}", "%s: key 'accept_spread': invalid value '200' (expected a percentage 0-100)");
    FILE_ERR("{\"default_ttl\": -1}", "%s: key 'default_ttl': invalid value '-1' (expected seconds 0-2147483647)");
    FILE_ERR("{\"default_ttl\": true}", "%s: key 'default_ttl': expected an integer, got a boolean");
    FILE_ERR("{\"negative_ttl\": \"60\"}", "%s: key 'negative_ttl': expected an integer, got a string");
    FILE_ERR("{\"negative_ttl\": -1}", "%s: key 'negative_ttl': invalid value '-1' (expected seconds 0-2147483647)");
    FILE_ERR("{\"listen\": 8080}", "%s: key 'listen': expected a string, got an integer");
    FILE_ERR("{\"listen\": \"localhost\"}", "%s: key 'listen': invalid address 'localhost' (expected HOST:PORT, e.g. "
                                            "127.0.0.1:8080 or [::1]:8080)");
    FILE_ERR("{\"memory_size\": \"lots\"}", "%s: key 'memory_size': invalid size 'lots' (use e.g. 256M)");
    FILE_ERR("{\"memory_size\": 1024}", "%s: key 'memory_size': invalid size '1024' (must be at least 1M)");
    FILE_ERR("{\"memory_size\": null}",
             "%s: key 'memory_size': expected a number of bytes or a size string like \"256M\", got null");
    FILE_ERR("{\"disk_size\": \"2T\"}", "%s: key 'disk_size': invalid size '2T' (must be between 1M and 1T)");
    FILE_ERR("{\"backends\": \"a:1\"}",
             "%s: key 'backends': expected an array of \"HOST:PORT\" strings or backend objects, got a string");
    FILE_ERR("{\"backends\": [{\"address\": \"a\", \"use_ssl\": true, \"min_tls_version\": \"1.0\"}]}",
             "%s: key 'backends': element 0: min_tls_version: TLS 1.0 is not supported (\"1.2\" or \"1.3\")");
    FILE_ERR("{\"backends\": [{\"address\": \"a\", \"ssl_ca_cert\": \"x\"}]}",
             "%s: key 'backends': element 0: ssl_ca_cert: must be PEM text (-----BEGIN ...), at most 16384 bytes (or null)");
    FILE_ERR("{\"backends\": [{\"port\": 443}]}", "%s: key 'backends': element 0: address: required");
    FILE_ERR("{\"backends\": [\"a:1\", 2]}", "%s: key 'backends': element 1: expected a \"HOST:PORT\" string, got an "
                                             "integer");
    FILE_ERR("{\"backends\": [\"a:0\"]}",
             "%s: key 'backends': invalid address 'a:0' (expected HOST:PORT with a port 1-65535)");
    FILE_ERR("{\"config\": \"x\"}", "%s: unknown key 'config'");
    FILE_ERR("[1, 2]", "%s: expected a JSON object at the top level, got an array");
    FILE_ERR("{\"threads\": 4,\n  \"listen\": }", "%s:2:13: unexpected token near '}'");
    FILE_ERR("{\"threads\": 4, \"threads\": 5}", "%s:1:24: duplicate object key near '\"threads\"'");

    /* a file that cannot be read names itself */
    config_defaults(&c);
    ck_assert_int_eq(config_load_file(&c, "/nonexistent/edgecache.json", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/edgecache.json"));
    ck_assert_ptr_null(strchr(err, '\n'));

    /* a bad file through --config fails the whole parse */
    p = write_file("{\"bogus\": 1}");
    ck_assert_int_eq(parse(&c, err, sizeof(err), "--threads", "2", "--config", p, NULL), -1);
    snprintf(want, sizeof(want), "%s: unknown key 'bogus'", p);
    ck_assert_str_eq(err, want);
#undef FILE_ERR
}
END_TEST

START_TEST(tls_cert_value)
{
    config_tls_cert_t c;
    char err[256];
    ck_assert_int_eq(config_parse_tls_cert("Example.COM=/etc/c.pem,/etc/k.pem", 1, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.host, "example.com");
    ck_assert_str_eq(c.cert, "/etc/c.pem");
    ck_assert_str_eq(c.key, "/etc/k.pem");
    /* the key is what follows the last comma; '=' may appear in paths after HOST= */
    ck_assert_int_eq(config_parse_tls_cert("*.a.test=/x,y/c=1.pem,/k.pem", 1, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.host, "*.a.test");
    ck_assert_str_eq(c.cert, "/x,y/c=1.pem");
    ck_assert_str_eq(c.key, "/k.pem");
    ck_assert_int_eq(config_parse_tls_cert("default=c,k", 1, &c, err, sizeof(err)), 0);
    ck_assert_int_eq(config_parse_tls_cert("*=c,k", 1, &c, err, sizeof(err)), 0);
    ck_assert_int_eq(config_parse_tls_cert("/c.pem,/k.pem", 0, &c, err, sizeof(err)), 0);
    ck_assert_str_eq(c.host, "");
    ck_assert_str_eq(c.cert, "/c.pem");
    const char *bad[] = {"c.pem,k.pem", "=c,k",   "a.test=c.pem", "a.test=,k", "a.test=c,", "a..test=c,k",
                         "a test=c,k",  "*.=c,k", "a.*.test=c,k", "**.a=c,k",  ".a=c,k",    "a.=c,k"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(config_parse_tls_cert(bad[i], 1, &c, err, sizeof(err)) != 0, "accepted '%s'", bad[i]);
    ck_assert_int_ne(config_parse_tls_cert("c.pem", 0, &c, err, sizeof(err)), 0);

    /* flags: a name twice (the default's two spellings are one name), a listener without a certificate */
    config_t cfg;
    ck_assert_int_eq(parse(&cfg, err, sizeof(err), "--tls-listen", "127.0.0.1:0", NULL), -1);
    ck_assert_str_eq(err, "--tls-listen: no certificate (give at least one --tls-cert HOST=CERT.pem,KEY.pem)");
    ck_assert_int_eq(parse(&cfg, err, sizeof(err), "--tls-cert", "a.test=c,k", "--tls-cert", "A.TEST=d,e", NULL), -1);
    ck_assert_str_eq(err, "--tls-cert: name 'a.test' is listed twice");
    ck_assert_int_eq(parse(&cfg, err, sizeof(err), "--tls-cert", "default=c,k", "--tls-cert", "*=d,e", NULL), -1);
    /* a certificate without its listener: said at start, never ignored */
    ck_assert_int_eq(parse(&cfg, err, sizeof(err), "--tls-cert", "a.test=c,k", NULL), -1);
    ck_assert_str_eq(err,
                     "--tls-cert: no --tls-listen to serve it on (the admin API's HTTPS listener takes --admin-tls-cert)");
    ck_assert_int_eq(parse(&cfg, err, sizeof(err), "--admin-tls-listen", "127.0.0.1:0", "--admin-tls-cert", "c,k",
                           "--tls-cert", "a.test=c,k", NULL),
                     -1);
    ck_assert_int_eq(parse(&cfg, err, sizeof(err), "--admin-tls-cert", "c,k", NULL), -1);
    ck_assert_str_eq(err, "--admin-tls-cert: no --admin-tls-listen to serve it on");
    ck_assert_int_eq(parse(&cfg, err, sizeof(err), "--admin-tls-listen", "127.0.0.1:0", "--admin-tls-cert", "c,k", NULL), 0);
    ck_assert_int_eq(parse(&cfg, err, sizeof(err), "--tls-listen", "[::1]:8443", "--tls-listen", "127.0.0.1:443", "--tls-cert",
                           "a.test=c,k", "--tls-cert", "*.b.test=d,e", NULL),
                     0);
    ck_assert_uint_eq(cfg.num_tls_listen, 2);
    ck_assert_uint_eq(cfg.tls_listen[0].port, 8443);
    ck_assert_uint_eq(cfg.num_tls_certs, 2);
    ck_assert_str_eq(cfg.tls_certs[1].host, "*.b.test");
}
END_TEST

START_TEST(tls_pick)
{
    config_tls_cert_t certs[4];
    memset(certs, 0, sizeof(certs));
    strcpy(certs[0].host, "a.test");
    strcpy(certs[1].host, "*.w.test");
    strcpy(certs[2].host, "x.w.test");
    ck_assert_uint_eq(tls_pick_cert(certs, 3, "a.test"), 0);
    ck_assert_uint_eq(tls_pick_cert(certs, 3, "A.TEST"), 0);
    ck_assert_uint_eq(tls_pick_cert(certs, 3, "y.w.test"), 1);
    ck_assert_uint_eq(tls_pick_cert(certs, 3, "x.w.test"), 2);   /* an exact name wins over a wildcard */
    ck_assert_uint_eq(tls_pick_cert(certs, 3, "a.y.w.test"), 0); /* one label only */
    ck_assert_uint_eq(tls_pick_cert(certs, 3, "w.test"), 0);
    ck_assert_uint_eq(tls_pick_cert(certs, 3, ".w.test"), 0);
    ck_assert_uint_eq(tls_pick_cert(certs, 3, NULL), 0);
    ck_assert_uint_eq(tls_pick_cert(certs, 3, ""), 0);
    strcpy(certs[3].host, "default");
    ck_assert_uint_eq(tls_pick_cert(certs, 4, "nobody.test"), 3);
    ck_assert_uint_eq(tls_pick_cert(certs, 4, NULL), 3);
    ck_assert_uint_eq(tls_pick_cert(certs, 4, "a.test"), 0);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, sizes);
    tcase_add_test(tc, request_body_limits);
    tcase_add_test(tc, put_backlog);
    tcase_add_test(tc, accept_spread);
    tcase_add_test(tc, addrs);
    tcase_add_test(tc, flags_both_syntaxes);
    tcase_add_test(tc, help);
    tcase_add_test(tc, file_load);
    tcase_add_test(tc, flags_win);
    tcase_add_test(tc, flag_errors);
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, tls_cert_value);
    tcase_add_test(tc, tls_pick);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * tests/fuzz/fuzz_config_load.c — the JSON config file loader (config_load_file).
 *
 * config.c reads only from a path, so the input is written to one memfd (created once,
 * truncated for each input) and loaded through /proc/self/fd/N: no file system litter and
 * no change to server/config.c.
 *
 * Invariants: the result is 0 or -1; on -1 the message is a NUL-terminated, non-empty
 * string within its buffer; on 0 the values are within the ranges the flags allow
 * (threads 1..256, at most CONFIG_MAX_BACKENDS backends, strings NUL-terminated).
 */
#include <sys/mman.h>
#include <unistd.h>
#include <string.h>
#include "server/config.h"
#include "tests/fuzz/fuzz.h"

static int g_fd = -1;
static char g_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_fd < 0) {
        g_fd = memfd_create("edgecache-fuzz-config", MFD_CLOEXEC);
        FUZZ_CHECK(g_fd >= 0);
        snprintf(g_path, sizeof(g_path), "/proc/self/fd/%d", g_fd);
    }
    FUZZ_CHECK(ftruncate(g_fd, 0) == 0);
    size_t off = 0;
    while (off < size) {
        ssize_t w = pwrite(g_fd, data + off, size - off, (off_t)off);
        FUZZ_CHECK(w > 0);
        off += (size_t)w;
    }

    static config_t cfg;
    char err[512];
    config_defaults(&cfg);
    memset(err, 0x5a, sizeof(err));
    int rc = config_load_file(&cfg, g_path, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -1);
    /* the allocations a config owns (config.h has no dispose function) */
    free(cfg.header_rules_json);
    cfg.header_rules_json = NULL;
    free(cfg.backends_json);
    cfg.backends_json = NULL;
    free(cfg.shield_tls_ca);
    cfg.shield_tls_ca = NULL;
    if (rc != 0) {
        size_t n = strnlen(err, sizeof(err));
        FUZZ_CHECK(n > 0 && n < sizeof(err));
        return 0;
    }
    FUZZ_CHECK(cfg.threads >= 1 && cfg.threads <= 256);
    FUZZ_CHECK(cfg.num_backends <= CONFIG_MAX_BACKENDS);
    for (size_t i = 0; i < cfg.num_backends; i++)
        FUZZ_CHECK(strnlen(cfg.backends[i].host, sizeof(cfg.backends[i].host)) < sizeof(cfg.backends[i].host));
    FUZZ_CHECK(strnlen(cfg.listen.host, sizeof(cfg.listen.host)) < sizeof(cfg.listen.host));
    FUZZ_CHECK(strnlen(cfg.admin_listen.host, sizeof(cfg.admin_listen.host)) < sizeof(cfg.admin_listen.host));
    FUZZ_CHECK(strnlen(cfg.data_dir, sizeof(cfg.data_dir)) < sizeof(cfg.data_dir));
    FUZZ_CHECK(strnlen(cfg.service_id, sizeof(cfg.service_id)) < sizeof(cfg.service_id));
    return 0;
}

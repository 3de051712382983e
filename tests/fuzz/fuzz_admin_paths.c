/*
 * tests/fuzz/fuzz_admin_paths.c — the admin API's request-path and header parsers:
 * the URL-purge target (admin_parse_url_target), percent-decoding of surrogate keys
 * (admin_percent_decode + admin_skey_valid), token scopes (admin_scopes_parse) and the
 * Fastly-Soft-Purge value (purge_soft_value). Byte 0 picks nothing: every parser sees the rest of the input.
 *
 * Invariants: the host returned points into the target and is 1..255 bytes; the path is
 * within the caller's buffer, starts with '/' and has no control bytes or spaces; a
 * decoded key is never longer than its encoding and holds no NUL its encoding did not; parsed scopes
 * are known bits only.
 */
#include <string.h>
#include "admin-api/admin_int.h"
#include "server/purge.h"
#include "tests/fuzz/fuzz.h"

#define KNOWN_SCOPES (ADMIN_SCOPE_PURGE_SELECT | ADMIN_SCOPE_PURGE_ALL | ADMIN_SCOPE_GLOBAL_READ | ADMIN_SCOPE_GLOBAL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char detail[160];

    /* URL target: the buffer as admin_purge_url sizes it, and one byte short of that */
    for (size_t slack = 0; slack <= 2; slack += 2) {
        size_t pathcap = size + slack;
        char *path = malloc(pathcap ? pathcap : 1);
        const char *host = NULL;
        size_t host_len = 0, path_len = 0;
        if (path == NULL)
            abort();
        int rc = admin_parse_url_target(s, size, &host, &host_len, path, pathcap, &path_len, detail, sizeof(detail));
        FUZZ_CHECK(rc == 0 || rc == ADMIN_EINVAL);
        if (rc == 0) {
            FUZZ_CHECK(host >= s && host_len >= 1 && host_len <= 255 && (size_t)(host - s) + host_len <= size);
            FUZZ_CHECK(path_len >= 1 && path_len <= pathcap && path[0] == '/');
            for (size_t i = 0; i < path_len; i++)
                FUZZ_CHECK((unsigned char)path[i] > 0x20 && (unsigned char)path[i] != 0x7f);
        } else {
            FUZZ_CHECK(strnlen(detail, sizeof(detail)) > 0);
        }
        free(path);
    }

    /* a surrogate key from the request path */
    char *key = malloc(size ? size : 1);
    if (key == NULL)
        abort();
    ssize_t n = admin_percent_decode(s, size, key, size);
    FUZZ_CHECK(n >= -1 && n <= (ssize_t)size);
    if (n > 0) {
        /* %00 is refused; a raw NUL (which h2o never lets into a path) is merely copied */
        if (memchr(s, '\0', size) == NULL)
            FUZZ_CHECK(memchr(key, '\0', (size_t)n) == NULL);
        (void)admin_skey_valid(key, (size_t)n);
    }
    (void)admin_skey_valid(s, size);
    free(key);

    unsigned mask = 0;
    char err[128];
    if (admin_scopes_parse(s, size, &mask, err, sizeof(err)) == 0)
        FUZZ_CHECK(mask != 0 && (mask & ~(unsigned)KNOWN_SCOPES) == 0);
    (void)purge_soft_value(s, size);
    return 0;
}

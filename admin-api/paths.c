/*
 * admin-api/paths.c — small pure helpers: the parsers of what admin request paths carry
 * (percent-escapes, surrogate keys, URL-purge targets).
 *
 * Everything here reads untrusted bytes (request paths and headers) and validates them;
 * nothing asserts on input. No I/O, no shared state: any thread.
 */
#include <stdio.h>
#include <string.h>
#include "common/ascii.h"
#include "admin-api/admin_int.h"
#include "server/cache_key.h"

ssize_t admin_percent_decode(const char *src, size_t len, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len)
                return -1;
            hi = ascii_hexval(src[i + 1]);
            lo = ascii_hexval(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return -1;
            i += 2;
        }
        if (o >= cap)
            return -1;
        dst[o++] = c;
    }
    return (ssize_t)o;
}

int admin_skey_valid(const char *k, size_t len)
{
    if (len == 0 || len > ADMIN_MAX_SKEY_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c <= 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

static int prefix_ci(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && h2o_lcstris(s, n, prefix, n);
}

int admin_parse_url_target(const char *target, size_t len, const char **host, size_t *host_len, char *pathbuf, size_t pathcap,
                           size_t *path_len, char *detail, size_t detail_len)
{
    static const struct {
        const char *prefix;
        int https;
    } schemes[] = {
        {"http://", 0}, {"https://", 1}, {"http%3a%2f%2f", 0}, {"https%3a%2f%2f", 1}, {"http:/", 0}, {"https:/", 1},
    };
    int https = 0;
    size_t i = 0, h;

    /* "http:/host" appears when something on the way merged the double slash */
    for (size_t s = 0; s < sizeof(schemes) / sizeof(schemes[0]); s++) {
        if (prefix_ci(target, len, schemes[s].prefix)) {
            i = strlen(schemes[s].prefix);
            https = schemes[s].https;
            break;
        }
    }
    h = i;
    while (i < len && target[i] != '/' && target[i] != '?')
        i++;
    *host = target + h;
    *host_len = i - h;
    if (*host_len == 0) {
        snprintf(detail, detail_len, "url: no host (use /purge/<host>/<path>)");
        return ADMIN_EINVAL;
    }
    if (*host_len > 255) {
        snprintf(detail, detail_len, "url: host too long");
        return ADMIN_EINVAL;
    }
    /* the proxy's own check of Host: a host it would refuse names nothing it stored */
    if (!cache_key_authority_valid(*host, *host_len)) {
        snprintf(detail, detail_len, "url: invalid host (RFC 3986 host[:port])");
        return ADMIN_EINVAL;
    }
    if (https && *host_len > 4 && memcmp(*host + *host_len - 4, ":443", 4) == 0)
        *host_len -= 4;

    /* the path keeps its query; "host" and "host?q" get the "/" they imply */
    size_t rest = len - i, o = 0;
    if (rest == 0 || target[i] == '?') {
        if (pathcap < 1)
            goto too_long;
        pathbuf[o++] = '/';
    }
    if (rest > pathcap - o)
        goto too_long;
    for (size_t k = 0; k < rest; k++) {
        unsigned char c = (unsigned char)target[i + k];
        if (c <= 0x20 || c == 0x7f) {
            snprintf(detail, detail_len, "url: invalid byte in path");
            return ADMIN_EINVAL;
        }
    }
    memcpy(pathbuf + o, target + i, rest);
    *path_len = o + rest;
    return 0;
too_long:
    snprintf(detail, detail_len, "url: too long");
    return ADMIN_EINVAL;
}

/*
 * server/cache_policy_int.h — internals of the cache policy module shared by its pieces
 * (server/cache_control.c, sf_dict.c, http_date.c, cache_policy.c): the small lexers over
 * header bytes, the delta-seconds and time bounds, and the one field parser the decision
 * calls with Surrogate-Control's rules. Not a public interface: the module's is
 * server/cache_policy.h. Everything here is pure; the inline functions take untrusted
 * bytes and never assert on them.
 */
#ifndef EDGECACHE_CACHE_POLICY_INT_H
#define EDGECACHE_CACHE_POLICY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "common/ascii.h"
#include "server/cache_policy.h"

#define POLICY_DELTA_SECONDS_CAP 2147483648u /* RFC 9111 1.2.2 */

#define POLICY_TIME_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define POLICY_TIME_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */

/** t within [POLICY_TIME_MIN, POLICY_TIME_MAX]: keeps date arithmetic far from int64 overflow. */
static inline int64_t policy_clamp_time(int64_t t)
{
    return t < POLICY_TIME_MIN ? POLICY_TIME_MIN : t > POLICY_TIME_MAX ? POLICY_TIME_MAX : t;
}

/** 1 for an RFC 9110 tchar (never for NUL). */
static inline int policy_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/** 1 for optional whitespace: SP or HTAB. */
static inline int policy_is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/** 1 when s[0..len) equals the lower-case literal lit, ignoring ASCII case. */
static inline int policy_eq_ci(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (n != len)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ascii_lower(s[i]) != (unsigned char)lit[i])
            return 0;
    return 1;
}

/** 1*DIGIT delta-seconds from s[0..len), capped at 2^31. Returns 0 or -1. */
static inline int policy_parse_digits(const char *s, size_t len, uint32_t *out)
{
    uint64_t acc = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < '0' || c > '9')
            return -1;
        if (acc < POLICY_DELTA_SECONDS_CAP)
            acc = acc * 10 + (uint64_t)(c - '0');
    }
    *out = acc > POLICY_DELTA_SECONDS_CAP ? POLICY_DELTA_SECONDS_CAP : (uint32_t)acc;
    return 0;
}

/**
 * Parse one Cache-Control-style field line v[0..len) (v may be NULL) into cc, merging with
 * what cc holds. surrogate: Surrogate-Control's rules (targeted directives skipped,
 * no-store-remote, max-age=N+M). Returns the number of well-formed directives.
 * server/cache_control.c.
 */
int policy_cc_parse_field(policy_cc_t *cc, const char *v, size_t len, int surrogate);

#endif

/*
 * server/cache_key.c — the cache key and the authority it is built from.
 *
 * The invariant: two (host, path-with-query) pairs get the same key only when they are
 * the same pair after the key's normalisation (host case, a ":80" port, the query rules),
 * whatever bytes they hold. The old key glued the host onto the path, so a Host of
 * "example.com/assets" with path "/app.js" keyed like "/assets/app.js" on "example.com"
 * and any client could replace any object. Now the key is
 *
 *     <host, lower-cased, ":80" dropped, escaped> '\n' <path and query, rules applied>
 *
 * and the host part is written in an alphabet without '\n': the bytes an RFC 3986
 * authority may hold (unreserved, sub-delims, ':', '[', ']') stand for themselves, every
 * other byte, '%' included, is written %XX. That escaping is one-to-one, so the first '\n'
 * of a key always ends the host part and both parts can be read back: no two different
 * pairs can share a key even when the host was never validated (the proxy does validate
 * it, with cache_key_authority_valid, before it gets here; the escaping is the second
 * wall). Keys of the old format never contain '\n' (HTTP/1 and HPACK parsers refuse a
 * line feed in a target or field value), so objects stored before the change are misses,
 * never served under a new key.
 *
 * With cache_key.include_scheme the key is "http://" or "https://" followed by the above. The
 * host part never holds a '/' (escaped %2F), so a key of one form can never be read as the
 * other: the scheme, when there, ends at the first "//", and the one-to-one argument above
 * holds for the rest.
 *
 * Pure functions: the rules come in as an argument (cache_key_rules_t). Any thread.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/alloc.h"
#include "server/cache_key.h"

#define MAX_REWRITTEN_PARAMS 64

/* ---------------------------------------------------------------- the authority */

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 unreserved / sub-delims: the bytes a reg-name holds besides pct-encoded (a table:
 * every request's Host goes through it twice, once checked and once keyed) */
static const unsigned char reg_name_bytes[256] = {
    ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['!'] = 1, ['$'] = 1,
    ['&'] = 1,         ['\''] = 1,        ['('] = 1,         [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1, [';'] = 1, ['='] = 1,
};

static inline int is_reg_name_byte(unsigned char c)
{
    return reg_name_bytes[c];
}

/* "[" IPv6address "]" at the start of a; returns the length taken, 0 when not one */
static size_t ipv6_literal_len(const char *a, size_t len)
{
    const char *close = memchr(a, ']', len);
    if (a[0] != '[' || close == NULL)
        return 0;
    size_t inner = (size_t)(close - a) - 1;
    char text[INET6_ADDRSTRLEN + 1];
    if (inner == 0 || inner > INET6_ADDRSTRLEN)
        return 0;
    /* only what an IPv6address is made of: inet_pton must not see a NUL, a zone id or spaces */
    for (size_t i = 0; i != inner; ++i) {
        unsigned char c = (unsigned char)a[1 + i];
        if (!is_hex(c) && c != ':' && c != '.')
            return 0;
    }
    memcpy(text, a + 1, inner);
    text[inner] = '\0';
    struct in6_addr addr;
    if (inet_pton(AF_INET6, text, &addr) != 1)
        return 0;
    return inner + 2;
}

int cache_key_authority_valid(const char *a, size_t len)
{
    size_t i = 0;
    if (len == 0)
        return 0;
    if (a[0] == '[') {
        if ((i = ipv6_literal_len(a, len)) == 0)
            return 0;
    } else {
        /* reg-name (an IPv4 address is one too) */
        while (i < len && a[i] != ':') {
            unsigned char c = (unsigned char)a[i];
            if (c == '%') {
                if (len - i < 3 || !is_hex((unsigned char)a[i + 1]) || !is_hex((unsigned char)a[i + 2]))
                    return 0;
                i += 3;
            } else if (is_reg_name_byte(c)) {
                ++i;
            } else {
                return 0;
            }
        }
        if (i == 0)
            return 0; /* empty host */
    }
    if (i == len)
        return 1;
    if (a[i] != ':')
        return 0;
    /* port = *DIGIT; a real one fits 16 bits */
    size_t digits = len - i - 1;
    if (digits > 5)
        return 0;
    unsigned port = 0;
    for (size_t k = i + 1; k != len; ++k) {
        if (a[k] < '0' || a[k] > '9')
            return 0;
        port = port * 10 + (unsigned)(a[k] - '0');
    }
    return port <= 65535;
}

int cache_key_split_absolute(const char *target, size_t len, size_t *authority_off, size_t *authority_len, size_t *path_off)
{
    size_t start;
    if (len >= 7 && strncasecmp(target, "http://", 7) == 0)
        start = 7;
    else if (len >= 8 && strncasecmp(target, "https://", 8) == 0)
        start = 8;
    else
        return -1;
    /* RFC 3986 3.2: the authority ends at the next '/', '?' or '#'; a '#' is left in it on
     * purpose, so that the validator refuses a target carrying a fragment there */
    size_t end = start;
    while (end < len && target[end] != '/' && target[end] != '?')
        ++end;
    *authority_off = start;
    *authority_len = end - start;
    *path_off = end;
    return 0;
}

/* ---------------------------------------------------------------- the query */

typedef struct query_param {
    const char *p;
    size_t len;
} query_param_t;

/* is query parameter `param` (its name runs up to '=' or the end) one the rules ignore? */
static int query_param_ignored(const cache_key_rules_t *rules, const char *param, size_t len)
{
    const char *eq = memchr(param, '=', len);
    size_t name_len = eq != NULL ? (size_t)(eq - param) : len;
    for (size_t i = 0; i != rules->num_ignore_params; ++i) {
        const char *ign = rules->ignore_params[i];
        if (strlen(ign) == name_len && memcmp(ign, param, name_len) == 0)
            return 1;
    }
    return 0;
}

static int query_param_cmp(const void *a, const void *b)
{
    const query_param_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/*
 * The path with its query (q points at its '?') rewritten by the rules into out (room for
 * path_len bytes): empty and ignored parameters dropped, the rest sorted when asked.
 * Returns the length. A query of more parameters than MAX_REWRITTEN_PARAMS is kept as it
 * came: such a key is only ever equal to the very same query.
 */
static size_t rewrite_query(const cache_key_rules_t *rules, const char *path, size_t path_len, const char *q, char *out)
{
    size_t n = (size_t)(q - path);
    memcpy(out, path, n);
    query_param_t params[MAX_REWRITTEN_PARAMS];
    size_t nparams = 0;
    const char *p = q + 1, *end = path + path_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t len = (size_t)((amp != NULL ? amp : end) - p);
        if (len != 0 && !query_param_ignored(rules, p, len)) {
            if (nparams == MAX_REWRITTEN_PARAMS) {
                memcpy(out, path, path_len);
                return path_len;
            }
            params[nparams++] = (query_param_t){p, len};
        }
        p += len + 1;
    }
    if (rules->sort_query)
        qsort(params, nparams, sizeof(params[0]), query_param_cmp);
    for (size_t i = 0; i != nparams; ++i) {
        out[n++] = i == 0 ? '?' : '&';
        memcpy(out + n, params[i].p, params[i].len);
        n += params[i].len;
    }
    return n;
}

/* ---------------------------------------------------------------- the key */

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* the bytes that stand for themselves in the key's host part (after lower-casing): the
 * reg-name bytes and ':', '[', ']'; never '\n' or '%' (a table: one look-up per host byte) */
static const unsigned char key_host_bytes[256] = {
    ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1, ['-'] = 1,  ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['!'] = 1,         ['$'] = 1,         ['&'] = 1,         ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1,
    ['+'] = 1,         [','] = 1,         [';'] = 1,         ['='] = 1,  [':'] = 1, ['['] = 1, [']'] = 1,
};

/* the host part of the key into o (room for 3 * host_len bytes); returns its end */
static char *write_key_host(char *o, const char *host, size_t host_len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i != host_len; ++i) {
        unsigned char c = lower((unsigned char)host[i]);
        if (key_host_bytes[c]) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    return o;
}

/* scheme, host part, '\n', path at buf (which has room for all of it); returns the length */
static size_t write_key(char *buf, const char *scheme, size_t scheme_len, const char *host, size_t host_len, const char *path,
                        size_t path_len)
{
    memcpy(buf, scheme, scheme_len);
    char *o = write_key_host(buf + scheme_len, host, host_len);
    *o++ = '\n';
    if (path_len != 0)
        memcpy(o, path, path_len);
    return (size_t)(o - buf) + path_len;
}

size_t cache_key_build(const cache_key_rules_t *rules, const char *host, size_t host_len, const char *path, size_t path_len,
                       char *buf, size_t cap)
{
    return cache_key_build_scheme(rules, 0, host, host_len, path, path_len, buf, cap);
}

size_t cache_key_build_scheme(const cache_key_rules_t *rules, int https, const char *host, size_t host_len, const char *path,
                              size_t path_len, char *buf, size_t cap)
{
    if (!rules->include_host)
        host_len = 0;
    if (host_len > 3 && memcmp(host + host_len - 3, ":80", 3) == 0)
        host_len -= 3;

    const char *q = memchr(path, '?', path_len);
    char stackbuf[2048], *tmp = NULL;
    if (q != NULL && (rules->num_ignore_params != 0 || rules->sort_query)) {
        /* rewrite first, so that the length checked against cap is the key's real length */
        tmp = path_len <= sizeof(stackbuf) ? stackbuf : alloc_xmalloc(path_len, "cache key");
        path_len = rewrite_query(rules, path, path_len, q, tmp);
        path = tmp;
    }

    const char *scheme = !rules->include_scheme ? "" : https ? "https://" : "http://";
    size_t scheme_len = strlen(scheme);
    size_t total;
    if (scheme_len + 3 * host_len + 1 + path_len <= cap) {
        /* room for the worst case (the proxy's buffers always have it): one pass */
        total = write_key(buf, scheme, scheme_len, host, host_len, path, path_len);
    } else {
        /* a tight buffer: count first, write only when the key fits */
        size_t host_part = 0;
        for (size_t i = 0; i != host_len; ++i)
            host_part += key_host_bytes[lower((unsigned char)host[i])] ? 1 : 3;
        total = scheme_len + host_part + 1 + path_len;
        if (total <= cap)
            write_key(buf, scheme, scheme_len, host, host_len, path, path_len);
    }
    if (tmp != NULL && tmp != stackbuf)
        free(tmp);
    return total;
}

/*
 * server/cache_key.h — the cache key of a request, and the checks of what goes into it:
 * the authority (Host, :authority, or an absolute-form target's) and the request target.
 *
 * Pure functions: the key's rules come in as an argument, nothing here reads a global or
 * opens a store, so the key can be unit-tested and fuzzed on its own. Any thread.
 */
#ifndef EDGECACHE_CACHE_KEY_H
#define EDGECACHE_CACHE_KEY_H

#include <stddef.h>

/** The cache-key rules of the configuration ("cache_key" in the config file). */
typedef struct cache_key_rules {
    int include_host;                 /* 0: the host is left out (one site behind the cache) */
    int include_scheme;               /* 1: "http://" or "https://" leads the key: the two never share an object */
    int sort_query;                   /* sort the query's parameters */
    const char *const *ignore_params; /* parameter names dropped from the query (borrowed) */
    size_t num_ignore_params;
} cache_key_rules_t;

/**
 * 1 when `authority` (len bytes, no NUL needed) is RFC 3986 `host [ ":" port ]`: host a
 * non-empty reg-name (unreserved, sub-delims, pct-encoded with two hex digits), which
 * covers IPv4 addresses, or a bracketed IPv6 literal; port at most 5 digits, <= 65535,
 * possibly empty. No '/', '?', '#', '@', whitespace, control or non-ASCII byte passes.
 * 0 otherwise.
 */
int cache_key_authority_valid(const char *authority, size_t len);

/**
 * Split an absolute-form request target ("http://host:port/path?q", scheme http or https,
 * case-insensitive) into its authority and the rest. On 0, the authority is
 * target[*authority_off .. +*authority_len] (not validated: see cache_key_authority_valid)
 * and the path with its query is target[*path_off .. len]; that rest is empty or starts
 * with '?' when the target names no path (the origin-form is then "/" followed by it).
 * Returns -1 when the target is not absolute-form http(s).
 */
int cache_key_split_absolute(const char *target, size_t len, size_t *authority_off, size_t *authority_len, size_t *path_off);

/** The largest key cache_key_build can produce for these lengths (the buffer to give it). */
static inline size_t cache_key_max_len(size_t host_len, size_t path_len)
{
    return 8 + 3 * host_len + 1 + path_len; /* 8: "https://" */
}

/**
 * Build the cache key of (host, path-with-query) under `rules` into buf: the host
 * lower-cased, without a ":80" port, with every byte outside the authority alphabet
 * (and '%') written as %XX, then '\n', then the path with its query rewritten by the
 * rules (preceded by the scheme when rules->include_scheme: see cache_key_build_scheme, of
 * which this is the "http" case). Two pairs get the same key only when they are equal after that normalisation
 * (host case, ":80", the query rules), whatever bytes they hold; without include_host
 * the key is "\n" and the path. Writes at most cap bytes (no NUL); returns the key's full
 * length, which is > cap when buf was too small (the key must then not be used);
 * cache_key_max_len(host_len, path_len) is always enough. Bytes are borrowed.
 */
size_t cache_key_build(const cache_key_rules_t *rules, const char *host, size_t host_len, const char *path, size_t path_len,
                       char *buf, size_t cap);

/**
 * cache_key_build for a request that came over TLS (https != 0) or not. With
 * rules->include_scheme the key starts with "https://" or "http://"; neither can start a key
 * without it, whose host part writes '/' as %2F, so keys stay one-to-one across both rules.
 * Without include_scheme, `https` is ignored and the key is cache_key_build's.
 */
size_t cache_key_build_scheme(const cache_key_rules_t *rules, int https, const char *host, size_t host_len, const char *path,
                              size_t path_len, char *buf, size_t cap);

#endif

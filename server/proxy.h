/*
 * server/proxy.h — the proxy handler: cache lookup, hit, miss, pass, and the
 * h2o front end (one event loop per worker thread).
 */
#ifndef EDGECACHE_PROXY_H
#define EDGECACHE_PROXY_H

#include <stddef.h>

/**
 * Build the cache key for a request: lower-cased host (":80" stripped) followed by the
 * path with its query, e.g. "example.com/a/b?x=1". Writes at most cap bytes (no NUL);
 * returns the full length (if > cap the key was truncated and must not be used).
 */
size_t proxy_cache_key(char *buf, size_t cap, const char *host, size_t host_len, const char *path, size_t path_len);

#endif

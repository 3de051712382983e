/*
 * server/proxy.h — the proxy handler: cache lookup, hit, miss, pass, PURGE, and the
 * origin fetch (h2o's HTTP/1 client over per-worker socket pools).
 */
#ifndef EDGECACHE_PROXY_H
#define EDGECACHE_PROXY_H

#include <stddef.h>
#include <h2o.h>
#include "server/config.h"
#include "storage/store.h"
#include "storage/mem.h"

struct worker;

/**
 * The cache key of (host, path with query) under the process's cache-key rules (those of
 * the config given to proxy_init; before it, the host is included and the query kept):
 * cache_key_build's key, e.g. "example.com\n/a/b?x=1". Writes at most cap bytes (no NUL);
 * returns the full length (if > cap the key was truncated and must not be used);
 * cache_key_max_len(host_len, path_len) bytes are always enough. The proxy and the admin
 * API's URL purge both call this, so a purge names exactly what a request stored.
 */
size_t proxy_cache_key(char *buf, size_t cap, const char *host, size_t host_len, const char *path, size_t path_len);

/**
 * proxy_cache_key for a request that came over TLS (https) or not: the two differ only when
 * the config's cache_key.include_scheme is on (proxy_cache_key is the http case).
 */
size_t proxy_cache_key_scheme(char *buf, size_t cap, int https, const char *host, size_t host_len, const char *path,
                              size_t path_len);

/** 1 when cache keys carry the scheme (cache_key.include_scheme): a URL then has an http and an https key. */
int proxy_cache_key_has_scheme(void);

/**
 * 1 when the request came over a TLS connection (not what a client's :scheme or
 * X-Forwarded-Proto claims: the connection's own socket).
 */
static inline int proxy_req_is_tls(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    return sock != NULL && sock->ssl != NULL;
}

/** The settings that can change at run time (the admin API's live settings), as the proxy reads them. */
typedef struct proxy_live_settings {
    uint32_t default_ttl, default_grace, max_heuristic_ttl, negative_ttl;  /* seconds */
    int cookie_policy_strip, obey_client_no_cache, keep_surrogate_headers; /* 0 or 1, as in config_t */
} proxy_live_settings_t;

/**
 * Fill *out with the live settings: 0, or -1 when there are none (the config's values apply).
 * Called for every request, on the workers' threads: lock-free, never blocks.
 */
typedef int (*proxy_live_settings_fn)(void *arg, proxy_live_settings_t *out);

/**
 * Set up the process-wide proxy state. Borrows cfg, store and mem, which must outlive the
 * proxy; live_settings (may be NULL) is how each request reads the live settings, with its
 * arg. Returns 0 or -1 with err.
 */
int proxy_init(const config_t *cfg, store_t *store, mem_tier_t *mem, proxy_live_settings_fn live_settings,
               void *live_settings_arg, char *err, size_t errlen);

struct header_rules;

/**
 * The live header rules (borrowed; NULL when none). A replaced set is kept allocated until
 * exit, so a pointer read once stays valid for the request that read it.
 */
const struct header_rules *proxy_header_rules(void);

/**
 * Replace the live header rules; takes ownership of `rules` (NULL: no rules). Any thread;
 * every worker uses the new set from its next request. Persisting them is the caller's job.
 */
void proxy_header_rules_replace(struct header_rules *rules);

/** Register the proxy handler on a path configuration ("/" of the default host). */
void proxy_register(h2o_pathconf_t *pathconf);

/** Per-thread set-up, on the worker's thread after h2o_context_init. */
void proxy_worker_init(struct worker *w);

/** Per-thread tear-down, on the worker's thread after its loop stopped. */
void proxy_worker_dispose(struct worker *w);

#endif

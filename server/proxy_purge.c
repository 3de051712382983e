/*
 * server/proxy_purge.c — PURGE on the proxy listener.
 *
 * The purge module (server/purge.c) does the work and the answer: it authorises the job
 * (the callback main wires: a token once any exists, loopback peers before), purges the URL
 * through the store's writer, forwards it to the shield after the local purge, and answers
 * on this worker's loop once it is durable. What is the proxy's own is the cache key, built
 * by on_req before any method is looked at, and the shield's name for this URL.
 *
 * Worker threads only.
 */
#include <string.h>
#include "server/cache_key.h"
#include "server/proxy.h"
#include "server/proxy_int.h"
#include "server/purge.h"
#include "server/worker.h"

void proxy_handle_purge(h2o_req_t *req, const char *key, size_t key_len)
{
    worker_t *w = worker_of_req(req);
    purge_job_t *job = purge_job_new(PURGE_URL, purge_request_wants_soft(req), PURGE_FROM_PROXY);
    purge_job_add_key(job, key, key_len);
    if (proxy_cache_key_has_scheme()) {
        /* the URL's object under the other scheme goes too: a purge names a URL, not a connection */
        size_t cap = cache_key_max_len(req->authority.len, req->path.len);
        char *twin = h2o_mem_alloc_pool(&req->pool, cap);
        size_t twin_len = proxy_cache_key_scheme(twin, cap, !proxy_req_is_tls(req), req->authority.base, req->authority.len,
                                                 req->path.base, req->path.len);
        if (twin_len <= cap)
            purge_job_add_key(job, twin, twin_len);
    }
    /* the scheme is spelled out: the shield reads a leading "http:/" or "http%3a%2f%2f" as one,
     * so a Host of "http:" with a path of "/victim.example/x" would purge another URL there */
    static const char prefix[] = "/purge/http://";
    size_t plen = sizeof(prefix) - 1, forward_path_len = plen + req->authority.len + req->path.len;
    char *forward_path = h2o_mem_alloc_pool(&req->pool, forward_path_len);
    memcpy(forward_path, prefix, plen);
    memcpy(forward_path + plen, req->authority.base, req->authority.len);
    memcpy(forward_path + plen + req->authority.len, req->path.base, req->path.len);
    purge_job_forward(job, PURGE_FORWARD_AFTER_LOCAL, forward_path, forward_path_len, NULL, 0, NULL, 0);
    if (purge_request_submit(job, &w->purge_loop, req) == 0)
        atomic_fetch_add_explicit(&w->counters.purges, 1, memory_order_relaxed);
}

/*
 * admin-api/metrics_int.h — what the stats files of the admin API share: the JSON
 * documents (stats_api.c), the Prometheus exposition (metrics.c) and the token-free
 * metrics listener (metrics_listener.c). Not a public interface: nothing outside
 * admin-api/ includes it.
 */
#ifndef EDGECACHE_METRICS_INT_H
#define EDGECACHE_METRICS_INT_H

#include <h2o.h>

/* backends listed in /stats and /metrics at most */
#define ADMIN_MAX_BACKENDS_SHOWN 256

/* the exposition's media type (Prometheus text format 0.0.4) */
#define ADMIN_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/** Answer req with the exposition: 200, ADMIN_METRICS_CONTENT_TYPE, Cache-Control: no-store,
 * a Content-Length (no body for HEAD). The text is copied into req's pool. Thread of req. */
void admin_metrics_send(h2o_req_t *req);

/** The percent-decoded value of query parameter `name` of req into buf (cap bytes,
 * NUL-terminated; '+' is a space): 1 found, 0 absent, -1 malformed or too long. */
int admin_stats_query_param(h2o_req_t *req, const char *name, char *buf, size_t cap);

#endif

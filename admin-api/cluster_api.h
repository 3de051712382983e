/*
 * admin-api/cluster_api.h — the cluster's admin endpoints (see cluster_api.c).
 */
#ifndef EDGECACHE_CLUSTER_API_H
#define EDGECACHE_CLUSTER_API_H

#include <stddef.h>
#include <h2o.h>

struct admin_ext_route;

/** GET /cluster (read scope): every node, alive or not, its applied sequence and lag. */
extern const struct admin_ext_route cluster_admin_route;

/** Answer GET /service/<sid>/purge/<id>/status (the router checked the token and scope): which nodes applied it. */
void cluster_api_purge_status(h2o_req_t *req, const char *id, size_t id_len);

#endif

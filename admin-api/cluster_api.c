/*
 * admin-api/cluster_api.c — the cluster's admin endpoints: GET /cluster (an admin extension
 * route, read scope) and the purge status the router hands over for
 * GET /service/<sid>/purge/<id>/status. Only formatting: the state is cluster_nodes.c's.
 * Runs on an admin loop's thread; reads a snapshot under the cluster's lock, never NATS.
 */
#include "admin-api/cluster_api.h"

#include <string.h>
#include "admin-api/admin_ext.h"
#include "admin-api/admin_int.h"
#include "cluster/cluster.h"

static int cluster_match(const char *path, size_t len, unsigned *methods)
{
    if (len != 8 || memcmp(path, "/cluster", 8) != 0)
        return 0;
    *methods = ADMIN_M_GET;
    return 1;
}

static unsigned cluster_scopes(const char *path, size_t len, unsigned method)
{
    (void)path, (void)len, (void)method;
    return ADMIN_SCOPE_GLOBAL | ADMIN_SCOPE_GLOBAL_READ;
}

static void cluster_handle(admin_t *admin, h2o_req_t *req, unsigned method, const char *path, size_t len)
{
    (void)admin, (void)method, (void)path, (void)len;
    json_t *doc = cluster_nodes_json();
    if (doc == NULL) {
        admin_send_json_error(req, 404, "Not found", "this node is not in a cluster (no --cluster)");
        return;
    }
    admin_send_json_value(req, 200, doc);
}

const admin_ext_route_t cluster_admin_route = {"cluster", cluster_match, cluster_scopes, cluster_handle};

void cluster_api_purge_status(h2o_req_t *req, const char *id, size_t id_len)
{
    json_t *doc = cluster_purge_status_json(id, id_len);
    if (doc == NULL) {
        admin_send_json_error(req, 404, "Record not found",
                              cluster_enabled() ? "no such purge among the ones this node applied lately"
                                                : "this node is not in a cluster (no --cluster)");
        return;
    }
    admin_send_json_value(req, 200, doc);
}

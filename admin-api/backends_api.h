/*
 * admin-api/backends_api.h — the admin API's origin endpoints (Fastly's shapes):
 *
 *   GET|POST          /service/<sid>/version/<v>/backend
 *   GET|PUT|DELETE    /service/<sid>/version/<v>/backend/<name>
 *   GET|POST          /service/<sid>/version/<v>/healthcheck
 *   GET|PUT|DELETE    /service/<sid>/version/<v>/healthcheck/<name>
 *   GET|PUT           /config/load-balancing        {"load_balancing": "round_robin"|"hash"|"first"}
 *
 * Any <v> names the one live configuration. Bodies are JSON objects or Fastly's
 * application/x-www-form-urlencoded fields (same names). Responses echo the object with the
 * defaults filled in (plus "service_id" and "version"); DELETE answers {"status":"ok"}.
 * Auth: GET needs a global or global:read token, writes a global one.
 */
#ifndef EDGECACHE_BACKENDS_API_H
#define EDGECACHE_BACKENDS_API_H

#include <stddef.h>
#include <h2o.h>
#include "admin-api/admin.h"
#include "admin-api/admin_ext.h"

/**
 * The endpoints above as an admin_ext.h route, for the router's ext_routes[] table (the
 * router does the 405 / 401 / 403 checks; the handler checks the service id, 404). Admin
 * thread only; blocks while a change is resolved and synced to the store, as PUT
 * /config/settings does.
 */
extern const admin_ext_route_t admin_backends_route;

#endif

/*
 * admin-api/admin_ext.h — routes that live outside admin_router.c (header rules, stats,
 * backends). The router in admin_router.c tries its own table first, then each extension:
 * `match` claims a path and says which methods it allows; the router then does the
 * 405 / auth / scope checks exactly as for its own routes, and calls `handle`, which
 * must send a response.
 */
#ifndef EDGECACHE_ADMIN_EXT_H
#define EDGECACHE_ADMIN_EXT_H

#include <stddef.h>
#include <h2o.h>
#include "admin-api/admin.h"

/* method bits, the same values the router uses */
#define ADMIN_M_GET 1u
#define ADMIN_M_POST 2u
#define ADMIN_M_PUT 4u
#define ADMIN_M_DELETE 8u

typedef struct admin_ext_route {
    const char *name;
    /** 1 when `path` (no query) is this extension's; *methods receives the allowed ADMIN_M_* bits. */
    int (*match)(const char *path, size_t len, unsigned *methods);
    /** The token scopes (ADMIN_SCOPE_*) that may use `method` on it; 0 = no token needed. */
    unsigned (*scopes)(const char *path, size_t len, unsigned method);
    /** Serve the request (auth already checked); must send a response. */
    void (*handle)(admin_t *admin, h2o_req_t *req, unsigned method, const char *path, size_t len);
} admin_ext_route_t;

/** GET|POST|PUT|DELETE /config/header-rules, DELETE /config/header-rules/<index> */
extern const admin_ext_route_t admin_header_rules_route;

/** GET /dashboard, /dashboard.js, /dashboard.css: the live dashboard (dashboard.c); no token */
extern const admin_ext_route_t admin_dashboard_route;

#endif

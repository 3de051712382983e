/*
 * admin-api/admin.h — the admin listener: token-authenticated JSON API
 * (Fastly-compatible purges, tokens, settings), on its own thread and h2o event loop.
 * Also the auth and purge-id helpers the proxy listener's PURGE method uses.
 */
#ifndef EDGECACHE_ADMIN_H
#define EDGECACHE_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include "server/config.h"
#include "storage/store.h"
#include "storage/mem.h"

typedef struct admin admin_t;

/* token scopes (bit set) */
#define ADMIN_SCOPE_PURGE_SELECT 0x1
#define ADMIN_SCOPE_PURGE_ALL 0x2
#define ADMIN_SCOPE_GLOBAL_READ 0x4
#define ADMIN_SCOPE_GLOBAL 0x8

/**
 * Bind cfg->admin_listen (port 0 = ephemeral) and start the admin thread. Borrows cfg,
 * store and mem, which must outlive the admin. Returns 0, or -1 with a one-line message.
 */
int admin_start(admin_t **out, const config_t *cfg, store_t *store, mem_tier_t *mem, char *err, size_t errlen);

/** The port the admin listener is bound to. */
uint16_t admin_bound_port(admin_t *admin);

/** Stop the listener, finish in-flight admin requests (bounded), join the thread; sets *admin to NULL. */
void admin_stop(admin_t **admin);

/**
 * Authorize a PURGE received on the proxy listener (any worker thread). Returns 0 when
 * allowed (a valid token with purge_select or global scope, or no token needed because no
 * token exists and the setting allows it); otherwise sends the 401/403 JSON response on req
 * and returns -1.
 */
int admin_authorize_proxy_purge_or_respond(admin_t *admin, h2o_req_t *req);

/** A new purge id "<node>-<unix time>-<sequence>" into buf (NUL-terminated). Thread-safe. */
void admin_next_purge_id(admin_t *admin, char *buf, size_t cap);

/** Send a JSON error body {"msg":...,"detail":...} (detail may be NULL) with status. */
void admin_send_json_error(h2o_req_t *req, int status, const char *msg, const char *detail);

/** `edgecache token create|list|revoke ...`: argv[0] is "token". Returns the exit status. */
int admin_token_cli(int argc, char **argv);

#endif

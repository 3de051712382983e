/*
 * admin-api/admin.h — the admin listener: token-authenticated JSON API
 * (Fastly-compatible purges, tokens, settings), on its own thread and h2o event loop.
 * Also the authorization of the proxy listener's PURGE method (main wires it into the
 * purge module, server/purge.h).
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

/** The port the admin TLS listener (--admin-tls-listen) is bound to; 0 when there is none. */
uint16_t admin_tls_bound_port(admin_t *admin);

/**
 * Stop the listener, finish in-flight admin requests (bounded), join the thread; sets *admin
 * to NULL. Call it before store_close: purges in flight still call back into the admin.
 */
void admin_stop(admin_t **admin);

/**
 * Authorize a PURGE received on the proxy listener (any worker thread). Returns 0 when
 * allowed (a valid token with purge_select or global scope, or no token needed because no
 * token exists, or the purge_requires_auth setting is off); otherwise sends the 401/403 JSON
 * response on req and returns -1. Repeated bad tokens from one address get their 401 only
 * after a delay (an h2o timer on req's loop; the loop never blocks), so after -1 the caller
 * must not touch the response; the request stays alive until then.
 */
int admin_authorize_proxy_purge_or_respond(admin_t *admin, h2o_req_t *req);

/**
 * Send a JSON error body {"msg":...,"detail":...} (detail may be NULL) with status. msg and
 * detail may hold any bytes (quoted request text): whatever is not well-formed UTF-8, and any
 * control byte, is written as "\xHH" (server/text.h). Never fails: an answer that cannot be
 * built goes out as a fixed body with the same status.
 */
void admin_send_json_error(h2o_req_t *req, int status, const char *msg, const char *detail);

/** `edgecache token create|list|revoke ...`: argv[0] is "token". Returns the exit status. */
int admin_token_cli(int argc, char **argv);

/* ---- live settings (GET|PUT /config/settings) ---- */

/* the settings the admin API can change at run time; stored as JSON in the store's `config`
 * database under "settings". The config file / flags seed them only on a fresh store. */
typedef struct admin_settings {
    uint32_t default_ttl;       /* seconds, 0..ADMIN_SETTINGS_MAX_SECONDS */
    uint32_t default_grace;     /* seconds, 0..ADMIN_SETTINGS_MAX_SECONDS */
    uint32_t max_heuristic_ttl; /* seconds, 0..ADMIN_SETTINGS_MAX_SECONDS */
    uint32_t negative_ttl;      /* seconds, 0..ADMIN_SETTINGS_MAX_SECONDS: TTL of a 4xx/5xx without freshness
                                   of its own; 0: not stored (config_t's field of the same name) */
    int purge_requires_auth;    /* 1 (default): PURGE on the proxy needs a token once any token exists */
    /* caching semantics, same meaning as the config_t fields of the same names (server/config.h);
     * JSON: "cookie_policy": "pass"|"strip", "obey_client_no_cache" and "keep_surrogate_headers":
     * true|false. Each is 0 or 1. */
    int cookie_policy_strip;    /* 1: "strip", 0: "pass" */
    int obey_client_no_cache;   /* 1: a client's no-cache / max-age=0 forces revalidation */
    int keep_surrogate_headers; /* 1: Surrogate-Control / Surrogate-Key also go downstream */
} admin_settings_t;

#define ADMIN_SETTINGS_MAX_SECONDS 31536000u /* one year */

/**
 * Copy the live settings into *out. Any thread, lock-free (seqlock read): never blocks on the
 * admin thread, never sees half of an update. A PUT /config/settings is visible to every
 * caller as soon as its 200 has been sent.
 */
void admin_settings_snapshot(admin_t *admin, admin_settings_t *out);

#endif

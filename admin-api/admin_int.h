/*
 * admin-api/admin_int.h — internals shared by the admin-api files and its unit tests:
 * tokens (hashing, scopes, records), the per-address failure budget, the settings
 * seqlock and validator and the admin request-path parsers. Not a public
 * interface: nothing outside admin-api/, tests/unit/test_admin_*.c and
 * tests/fuzz/fuzz_admin_*.c includes it.
 */
#ifndef EDGECACHE_ADMIN_INT_H
#define EDGECACHE_ADMIN_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include "admin-api/admin.h"
#include "server/purge.h"

#define ADMIN_MAGIC 0xad31a5e1u
#define ADMIN_MAX_BODY (64 * 1024)          /* request bodies above this get 413 */
#define ADMIN_MAX_CONNS 1024                /* connections one admin loop keeps open (more: closed at accept) */
#define ADMIN_MAX_CONNS_PER_ADDR 64         /* of them from one address other than loopback */
#define ADMIN_MAX_BATCH_KEYS 256            /* Fastly's limit for one batch purge */
#define ADMIN_MAX_SKEY_LEN OBJ_SKEY_MAX_LEN /* one surrogate key: the longest the store indexes */
/* a batch purge's body: room for ADMIN_MAX_BATCH_KEYS keys of ADMIN_MAX_SKEY_LEN bytes even
 * when every byte is JSON-escaped to two ('"', '\\'), and for whitespace; with the general
 * 64 KiB limit a JSON batch could hold only about 60 of the keys the header form takes */
#define ADMIN_MAX_BATCH_BODY (ADMIN_MAX_BATCH_KEYS * (2 * ADMIN_MAX_SKEY_LEN + 8) + 64 * 1024)
#define ADMIN_MAX_TOKEN_LEN 512 /* a presented token longer than this is refused outright */
#define ADMIN_TOKEN_RAW_LEN 32  /* random bytes in a new token */
#define ADMIN_TOKEN_HASH_LEN 32 /* BLAKE2b-256 of the token */
#define ADMIN_TOKEN_HASH_HEX (2 * ADMIN_TOKEN_HASH_LEN + 1)
#define ADMIN_TOKEN_ID_HEX 17  /* 8 random bytes, hex, NUL */
#define ADMIN_TOKEN_STR_CAP 64 /* base64url of 32 bytes is 43 chars + NUL */
#define ADMIN_MAX_NAME_LEN 128

/* errors (negative, outside errno's range) */
#define ADMIN_EINVAL (-30990) /* untrusted input failed validation; the message says why */
#define ADMIN_ENOTFOUND (-30991)
#define ADMIN_EAMBIGUOUS (-30992)

typedef struct admin_loop admin_loop_t; /* one admin thread's loop (below) */

/* ---- tokens ---- */

/** Parse scopes ("purge_select,global" or "purge_select global"; repeated calls OR into *mask).
 * Returns 0, or ADMIN_EINVAL with the bad scope named in err. An empty string is an error. */
int admin_scopes_parse(const char *s, size_t len, unsigned *mask, char *err, size_t errlen);

/** A new JSON array of scope names for mask (new reference). */
json_t *admin_scopes_to_json(unsigned mask);

/** The scopes of a JSON array of names (unknown names are ignored: records are untrusted).
 * Returns 0 or ADMIN_EINVAL when `arr` is not an array of strings. */
int admin_scopes_from_json(const json_t *arr, unsigned *mask);

/** Hex BLAKE2b-256 of the token bytes into hex (ADMIN_TOKEN_HASH_HEX bytes, NUL-terminated). */
void admin_token_hash_hex(const char *token, size_t len, char hex[ADMIN_TOKEN_HASH_HEX]);

/** A new random token (base64url, no padding, NUL-terminated) and its id (hex). */
void admin_token_generate(char token[ADMIN_TOKEN_STR_CAP], char id[ADMIN_TOKEN_ID_HEX]);

/* a token record as stored in `tokens` (key = hash hex) */
typedef struct admin_token_rec {
    char id[ADMIN_TOKEN_ID_HEX];
    char name[ADMIN_MAX_NAME_LEN + 1];
    unsigned scopes;
    int64_t created; /* unix seconds */
} admin_token_rec_t;

/** Serialize a record (new JSON string, caller frees). */
char *admin_token_rec_dump(const admin_token_rec_t *rec);

/** Parse a stored record (untrusted bytes). Returns 0 or ADMIN_EINVAL. */
int admin_token_rec_parse(const char *json, size_t len, admin_token_rec_t *rec);

/** A new JSON object describing rec for output: id, name, scopes, created_at (never the hash). */
json_t *admin_token_rec_to_json(const admin_token_rec_t *rec);

/** Validate a token name: 1..ADMIN_MAX_NAME_LEN printable ASCII bytes without spaces at the ends.
 * Returns 0 or ADMIN_EINVAL. */
int admin_token_name_validate(const char *name, size_t len);

/**
 * Look up a presented token: hash it, read `tokens` (a fresh LMDB read per call, so tokens
 * created or revoked by another process count at once). Returns 0 with *rec filled,
 * ADMIN_ENOTFOUND, or ADMIN_EINVAL for a token that is empty, too long or whose record is corrupt.
 */
int admin_token_lookup(store_t *store, const char *token, size_t len, admin_token_rec_t *rec);

/** 1 when `tokens` holds at least one record. */
int admin_tokens_exist(store_t *store);

/**
 * Find a token by id or, failing that, by name. On success writes its hash hex and record.
 * Returns 0, ADMIN_ENOTFOUND, or ADMIN_EAMBIGUOUS when several tokens share that name.
 */
int admin_token_find(store_t *store, const char *id_or_name, char hash_hex[ADMIN_TOKEN_HASH_HEX], admin_token_rec_t *rec,
                     int by_id_only);

/** The value of the first request header with this (lower-case) name, matched
 * case-insensitively; borrowed from req. NULL when absent. */
const h2o_iovec_t *admin_find_header(h2o_req_t *req, const char *name, size_t name_len);

/**
 * Make the lines of the request header `name` (lower-case) one line, in place: the first
 * line gets every line's value in order, joined by `sep`, and the others are removed
 * (RFC 9110 5.3), so that admin_find_header sees the whole field. The joined value is
 * allocated in the request's pool.
 */
void admin_join_header_lines(h2o_req_t *req, const char *name, size_t name_len, char sep);

/**
 * The credential a request presents: `Fastly-Key: T` or `Authorization: Bearer T` (Fastly-Key
 * wins). Returns 1 and the (borrowed, valid while req lives) token, or 0 when none is given.
 */
int admin_request_token(h2o_req_t *req, const char **token, size_t *len);

/**
 * Send 401 {"msg":"Provided credentials are missing or invalid"}. bad_token: a token was
 * presented and is unknown; it is counted against the peer's failure budget, and past the
 * budget the 401 goes out only after ADMIN_BUDGET_DELAY_MS (timer on req's loop).
 */
void admin_auth_send_401(admin_t *admin, h2o_req_t *req, int bad_token);

/** Send 403 {"msg":"You are not authorized to perform this action"}. */
void admin_auth_send_403(h2o_req_t *req);

/**
 * An admin loop's thread, at shutdown: send every delayed 401 of that loop's requests now (and,
 * since `stopping` is set, admin_auth_send_401 delays no new one there), so that no connection
 * waits for a timer while the admin closes. Returns how many were sent.
 */
size_t admin_auth_flush_delayed_401s(admin_loop_t *loop);

/* ---- per-address failure budget ---- */

#define ADMIN_BUDGET_SLOTS 256
#define ADMIN_BUDGET_FAILURES 10   /* failures allowed per address and window ... */
#define ADMIN_BUDGET_WINDOW_S 60   /* ... of this many seconds; beyond them bad tokens wait */
#define ADMIN_BUDGET_DELAY_MS 1000 /* (h2o's one-second timeout) */

typedef struct admin_budget_slot {
    uint8_t addr[16]; /* IPv6, or IPv4-mapped */
    int used;
    int64_t window_start;
    uint32_t failures;
} admin_budget_slot_t;

typedef struct admin_budget {
    pthread_mutex_t lock;
    admin_budget_slot_t slots[ADMIN_BUDGET_SLOTS];
} admin_budget_t;

void admin_budget_init(admin_budget_t *b);
void admin_budget_dispose(admin_budget_t *b);

/** Count a failed authentication from addr at time now; returns 1 when the address is over
 * its budget (its answer should be delayed), else 0. Any thread. */
int admin_budget_fail(admin_budget_t *b, const uint8_t addr[16], int64_t now);

/** The request's peer address as 16 bytes (IPv4 mapped into IPv6; zeros when unknown). */
void admin_request_addr(h2o_req_t *req, uint8_t addr[16]);
/** The same for an accepted socket (zeros when its peer cannot be read). */
void admin_socket_addr(h2o_socket_t *sock, uint8_t addr[16]);
/** Is addr (as admin_request_addr fills it: IPv4 as v4-mapped IPv6) a loopback address,
 * 127.0.0.0/8 or ::1? The all-zero address of a connection with no peer is not. */
int admin_addr_is_loopback(const uint8_t addr[16]);

/* ---- settings ---- */

/* seqlock around the live settings: one writer (under `wlock`), lock-free readers */
typedef struct admin_settings_cell {
    pthread_mutex_t wlock;
    atomic_uint seq;
    atomic_uint default_ttl, default_grace, max_heuristic_ttl, negative_ttl, purge_requires_auth;
    atomic_uint cookie_policy_strip, obey_client_no_cache, keep_surrogate_headers;
} admin_settings_cell_t;

void admin_settings_cell_init(admin_settings_cell_t *c, const admin_settings_t *s);
void admin_settings_cell_dispose(admin_settings_cell_t *c);
void admin_settings_cell_set(admin_settings_cell_t *c, const admin_settings_t *s);
void admin_settings_cell_get(admin_settings_cell_t *c, admin_settings_t *out);

/**
 * Apply a JSON object of changes (any subset of default_ttl, default_grace, max_heuristic_ttl,
 * negative_ttl, purge_requires_auth, cookie_policy, obey_client_no_cache,
 * keep_surrogate_headers) to *s. All or nothing: on error *s is untouched and `detail` says
 * "<field>: why" (a wrong type, a value out of range, an unknown cookie policy or an unknown
 * field). Returns 0 or ADMIN_EINVAL.
 */
int admin_settings_apply_json(admin_settings_t *s, const json_t *obj, char *detail, size_t detail_len);

/** 1 when obj (a JSON object) names every setting admin_settings_to_json writes, else 0: a stored
 * value from an older version lacks the newer fields. Borrows obj. */
int admin_settings_json_is_complete(const json_t *obj);

/** A new JSON object with every setting. */
json_t *admin_settings_to_json(const admin_settings_t *s);

/** Seed settings from the config (used on a fresh store). */
void admin_settings_from_config(admin_settings_t *s, const config_t *cfg);

/* ---- request paths ---- */

/**
 * Split the target of a URL purge (what follows "/purge/": "host/path?q",
 * "http://host/path" or "https://host:443/p") into host and path. host points into
 * `target`; the path is copied into pathbuf (pathcap bytes, no NUL): it starts with '/'
 * ("host" and "host?q" get the "/" they imply) and keeps its query. An https target's
 * ":443" is dropped (":80" is dropped by proxy_cache_key). Returns 0 or ADMIN_EINVAL with
 * "url: why" in detail.
 */
int admin_parse_url_target(const char *target, size_t len, const char **host, size_t *host_len, char *pathbuf, size_t pathcap,
                           size_t *path_len, char *detail, size_t detail_len);

/** Percent-decode src into dst (cap bytes). Returns the length, or -1 for a malformed escape,
 * a decoded NUL or an overflow. */
ssize_t admin_percent_decode(const char *src, size_t len, char *dst, size_t cap);

/** 1 when a surrogate key is acceptable: 1..ADMIN_MAX_SKEY_LEN bytes, no whitespace or control bytes. */
int admin_skey_valid(const char *k, size_t len);

/* ---- the admin itself ---- */

struct admin_conn;

/*
 * One admin thread: its own listening socket (SO_REUSEPORT when there are several, so the
 * kernel spreads connections over them, as for the proxy workers), event loop, h2o context
 * and receivers. Everything in it is touched only by its thread, except the receivers'
 * queue (h2o_multithread is thread-safe) and the start and stop handshakes.
 */
struct admin_loop {
    struct admin *admin;
    unsigned index;
    int listen_fd;
    pthread_t thread;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t control_receiver; /* woken by admin_stop */
    purge_loop_t purges;                         /* completions of the purges this loop submitted (server/purge.h) */
    h2o_linklist_t conns;                        /* struct admin_conn: accepted sockets still open */
    size_t num_conns;
    uint64_t refused_conns;      /* closed at accept: over ADMIN_MAX_CONNS or ADMIN_MAX_CONNS_PER_ADDR */
    h2o_linklist_t delayed_401s; /* auth.c's delayed 401s of this loop's requests */
    int leaked;                  /* the thread gave up waiting at shutdown; the admin stays allocated */
    int tls_listen_fd;           /* --admin-tls-listen: -1 when off or once tls_listener owns it */
    h2o_accept_ctx_t tls_accept_ctx;
    h2o_socket_t *tls_listener;

    /* start and stop handshakes. `ready`: the thread has made its loop, context and queue
     * (admin_start waits for it). `wake_sent`: the thread destroys the queue that admin_stop
     * writes its wake-up into, so it waits for this (set once the write is done) first */
    pthread_mutex_t wake_lock;
    pthread_cond_t wake_cond;
    int ready;
    int wake_sent;
};

#define ADMIN_MAX_THREADS 64

struct admin {
    uint32_t magic;
    const config_t *cfg; /* borrowed */
    store_t *store;      /* borrowed */
    mem_tier_t *mem;     /* borrowed */
    admin_settings_cell_t settings;
    admin_budget_t budget;
    /* held by the handlers that read, change and store configuration (settings, header rules,
     * backends, tokens) and by the stats routes, so that two admin threads never interleave
     * a read-modify-write; never held across a wait for the event loop */
    pthread_mutex_t config_lock;

    uint16_t port;
    uint16_t tls_port;           /* --admin-tls-listen's; 0 when off */
    h2o_globalconf_t globalconf; /* shared by the loops' contexts; read-only once they run */
    atomic_int stopping;
    unsigned num_loops;
    admin_loop_t *loops;
};

/** The router (admin_router.c): create the admin's one handler on pathconf, serving every
 * route for `admin` (borrowed; it must outlive the globalconf). admin_start calls it once. */
void admin_router_register(admin_t *admin, h2o_pathconf_t *pathconf);

/** The admin loop whose context is ctx, or NULL (a proxy worker's context, say). */
admin_loop_t *admin_loop_of(admin_t *admin, h2o_context_t *ctx);

/* ---- purge handlers (purge.c; admin thread). Each sends its response, now or (through the
 * purge module) when the store has acknowledged every purge, and returns 0. ---- */

/** POST /service/<sid>/purge/<key>: raw_key is the percent-encoded rest of the path. */
int admin_purge_key(admin_t *admin, h2o_req_t *req, const char *raw_key, size_t raw_len);
/** POST /service/<sid>/purge: keys from Surrogate-Key or {"surrogate_keys":[...]}. */
int admin_purge_batch(admin_t *admin, h2o_req_t *req);
/** POST /service/<sid>/purge_all. */
int admin_purge_everything(admin_t *admin, h2o_req_t *req);
/** POST /purge/<target>: target is what follows "/purge/", query included. */
int admin_purge_url(admin_t *admin, h2o_req_t *req, const char *target, size_t len);

/* ---- JSON responses ---- */

/** Send `json` (len bytes, copied into req's pool) with status and Content-Type: application/json. */
void admin_send_json(h2o_req_t *req, int status, const char *json, size_t len);

/** Send a jansson value (steals the reference) as the response body with status. value may be
 * NULL (a build that failed) and may fail to encode: then a fixed JSON error body goes out
 * (with status if it is an error status, else 500). Never ends the process. */
void admin_send_json_value(h2o_req_t *req, int status, json_t *value);

#endif

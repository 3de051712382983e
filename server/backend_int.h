/*
 * server/backend_int.h — internals of the backend module shared by its pieces
 * (server/backend.c, backend_config.c, backend_pick.c, backend_prober.c) and its unit
 * tests: the health window, the runtime objects and the module state, the two balancing
 * algorithms, the persisted document, and the helpers the pieces share.
 * Not a public interface: nothing outside server/backend*.c and tests/unit/test_backend_*.c
 * (and test_origin_tls.c, for the stored document) includes it.
 */
#ifndef EDGECACHE_BACKEND_INT_H
#define EDGECACHE_BACKEND_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <jansson.h>
#include "common/errbuf.h"
#include "server/backend.h"

/* the key of the persisted document in the store's `config` database */
#define BACKEND_STORE_KEY "backends"

/* ---- health window: the last `window` probe results as bits, newest in bit 0 ---- */

typedef struct backend_window {
    uint64_t bits;
    uint32_t window;    /* 1..BACKEND_WINDOW_MAX */
    uint32_t threshold; /* healthy while at least this many of the bits are set */
} backend_window_t;

/** Start with `initial` successes (the newest `initial` slots) and the rest failures. */
void backend_window_init(backend_window_t *w, uint32_t window, uint32_t threshold, uint32_t initial);

/** Shift in one probe result (ok: 1 success, 0 failure). Returns backend_window_healthy afterwards. */
int backend_window_record(backend_window_t *w, int ok);

/** Successes among the last `window` results. */
uint32_t backend_window_successes(const backend_window_t *w);

/** 1 while successes >= threshold. */
int backend_window_healthy(const backend_window_t *w);

/* ---- the runtime objects (server/backend.c builds them; the other pieces read them) ---- */

#define BACKEND_MAGIC 0xbac4e9d1u

typedef struct backend_state {
    atomic_uint refs;
    char name[BACKEND_NAME_MAX + 1];
    _Atomic uint64_t requests, errors, probes, probe_failures, probe_latency_us;
    atomic_uint inflight; /* fetches holding a pick (all workers): max_conn bounds it */
    _Atomic int64_t last_probe_ms;
    atomic_int healthy;            /* the window's verdict; meaningless without a health check */
    _Atomic int64_t next_probe_at; /* monotonic ms; 0 = probe at once */
    pthread_mutex_t lock;          /* window and health_gen */
    backend_window_t window;
    uint64_t health_gen;
    int probe_inflight; /* prober thread only */
} backend_state_t;

struct backend {
    uint32_t magic;
    atomic_uint refs;
    uint64_t id;       /* unique per version: worker instances are keyed by it */
    uint64_t pool_key; /* shared by versions with the same address, port and max_conn */
    backend_conf_t conf;
    int has_hc;
    backend_healthcheck_conf_t hc; /* copy of the named health check */
    int resolved;                  /* 0: the address did not resolve; never used */
    struct sockaddr_storage sa;
    socklen_t salen;
    uint64_t name_hash;
    backend_state_t *state; /* own reference */
    origin_tls_t *tls;      /* own reference; NULL without use_ssl */
};

typedef struct backend_set {
    atomic_uint refs;
    uint64_t gen;
    backend_lb_t lb;
    size_t n;
    backend_t *b[BACKEND_MAX]; /* own references */
} backend_set_t;

/* the module's state, one per process (defined in server/backend.c) */
typedef struct backend_module_state {
    int initialised;
    const config_t *cfg;
    store_t *store;
    pthread_mutex_t lock;        /* current, config (short sections only) */
    pthread_mutex_t commit_lock; /* one commit at a time (held across resolution and the sync) */
    backend_set_t *current;
    _Atomic uint64_t gen;
    backend_config_t *config; /* the live configuration */
    uint64_t next_id;         /* under commit_lock */
    unsigned num_workers;
    struct backend_worker *workers; /* [num_workers + 1]: server/backend_pick.c's */
    int have_shield_admin;
    struct sockaddr_storage shield_admin_sa;
    socklen_t shield_admin_salen;
    origin_tls_t *shield_admin_tls; /* --shield-admin-tls: own reference; NULL for cleartext */
} backend_module_state_t;

extern backend_module_state_t backend_g;

/** Take one more reference to b (returned). Any thread. */
backend_t *backend_ref(backend_t *b);

/** Drop a reference; the last one frees b (and its share of the state). Any thread. */
void backend_unref(backend_t *b);

/** 1 when b takes traffic: its address resolved and it is healthy (or has no health check). */
int backend_usable(const backend_t *b);

/** A new reference to the current set (NULL before init) and its generation in *gen. Takes backend_g.lock. */
backend_set_t *backend_set_acquire(uint64_t *gen);

/** Drop a reference to a set (s may be NULL); the last one drops its backends. */
void backend_set_unref(backend_set_t *s);

/** Allocate the per-worker state of n worker threads (server/backend_pick.c); module init, before any worker starts. */
void backend_workers_alloc(unsigned n);

/** Stop and join the prober thread if it runs (server/backend_prober.c); main thread, after the workers stopped. */
void backend_prober_stop(void);

/* ---- balancing (pure functions; `eligible[i]` non-zero for the candidates) ---- */

/**
 * Smooth weighted round robin (as nginx's): each eligible candidate's `current[i]` grows by
 * its weight, the largest wins and pays back the total. Weight 0 takes no turn unless every
 * eligible weight is 0 (then all count as 1). Ineligible entries have current[i] reset to 0.
 * Returns the index, or SIZE_MAX when nothing is eligible.
 */
size_t backend_wrr_pick(int64_t *current, const uint32_t *weights, const unsigned char *eligible, size_t n);

/** The 64-bit hash of a backend's name used by rendezvous hashing. */
uint64_t backend_name_hash(const char *name, size_t len);

/**
 * Weighted rendezvous (highest random weight) hashing of a cache-key hash: every key goes to
 * one candidate, and removing a candidate moves only the keys it had. Weights as in
 * backend_wrr_pick. Returns the index, or SIZE_MAX when nothing is eligible.
 */
size_t backend_rendezvous_pick(const uint8_t hash[CACHE_HASH_LEN], const uint64_t *name_hashes, const uint32_t *weights,
                               const unsigned char *eligible, size_t n);

/* ---- helpers shared by the pieces (defined in server/backend.c) ---- */

/* ---- configuration (server/backend_config.c) ---- */

/** The health check of c named `name`, or NULL. Borrowed from c. */
const backend_healthcheck_conf_t *backend_config_find_healthcheck(const backend_config_t *c, const char *name);

/**
 * Make c an empty configuration (no backends, no health checks, round robin not stored),
 * releasing the PEM strings of its entries in use, without writing its unused entries (a
 * calloc'd one stays mostly untouched pages). c: calloc'd, or a configuration.
 */
void backend_config_clear(backend_config_t *c);

/** Make dst (calloc'd, or a configuration: cleared first) a copy of src: its settings and the entries in use, deep. */
void backend_config_copy(backend_config_t *dst, const backend_config_t *src);

/* ---- the persisted document ---- */

/** A new JSON document of the whole configuration (new reference). */
json_t *backend_config_to_json(const backend_config_t *c);

/**
 * Read a stored document (untrusted bytes) into *c (cleared first, backend_config_clear):
 * every object is defaults + its fields, then the whole is validated. Returns 0 or BACKEND_EINVAL with detail.
 */
int backend_config_from_json(backend_config_t *c, const json_t *doc, char *detail, size_t detail_len);

/** The configuration a fresh store starts with: cfg->backends as "backend1"..., cfg->load_balancing. */
void backend_config_seed(backend_config_t *c, const config_t *cfg);

/**
 * Apply --shield HOST:PORT to c: a backend named "shield" with shield "shield" and that address
 * (added, or updated when it differs). tls_ca non-NULL (--shield-tls): use_ssl and ssl_check_cert
 * on, ssl_ca_cert tls_ca ("" = the system's store); NULL leaves its TLS fields as stored.
 * Returns 1 when c changed, 0 when not, -1 when there is no room for one more backend.
 */
int backend_config_force_shield(backend_config_t *c, const config_addr_t *shield, const char *tls_ca);

#endif

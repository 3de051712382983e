/*
 * server/backend_int.h — internals of the backend module shared by its pieces
 * (server/backend.c, backend_config.c) and its unit tests: the health window, the two
 * balancing algorithms, the persisted document, and the helpers the pieces share.
 * Not a public interface: nothing outside server/backend*.c and tests/unit/test_backend.c
 * includes it.
 */
#ifndef EDGECACHE_BACKEND_INT_H
#define EDGECACHE_BACKEND_INT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
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

/** Report out of memory on stderr and abort: the module never continues without memory. */
void backend_fatal_oom(void);

/** vsnprintf into detail[0..cap) (a message for the caller); nothing when detail is NULL or cap 0. */
void backend_set_detail(char *detail, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- configuration (server/backend_config.c) ---- */

/** The health check of c named `name`, or NULL. Borrowed from c. */
const backend_healthcheck_conf_t *backend_config_find_healthcheck(const backend_config_t *c, const char *name);

/* ---- the persisted document ---- */

/** A new JSON document of the whole configuration (new reference). */
json_t *backend_config_to_json(const backend_config_t *c);

/**
 * Read a stored document (untrusted bytes) into *c: every object is defaults + its fields,
 * then the whole is validated. Returns 0 or BACKEND_EINVAL with detail.
 */
int backend_config_from_json(backend_config_t *c, const json_t *doc, char *detail, size_t detail_len);

/** The configuration a fresh store starts with: cfg->backends as "backend1"..., cfg->load_balancing. */
void backend_config_seed(backend_config_t *c, const config_t *cfg);

/**
 * Apply --shield HOST:PORT to c: a backend named "shield" with shield "shield" and that address
 * (added, or updated when it differs). Returns 1 when c changed, 0 when not, -1 when there is no
 * room for one more backend.
 */
int backend_config_force_shield(backend_config_t *c, const config_addr_t *shield);

#endif

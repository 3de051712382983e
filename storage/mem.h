/*
 * storage/mem.h — the memory tier: a sharded hash table of refcounted objects
 * with a byte budget and CLOCK eviction. Thread-safe; each shard has its own
 * mutex, held only for the table operation itself (never while sending).
 */
#ifndef EDGECACHE_MEM_H
#define EDGECACHE_MEM_H

#include "storage/object.h"

typedef struct mem_tier mem_tier_t;

typedef struct mem_stats {
    uint64_t objects;
    uint64_t bytes; /* sum of obj->mem_size of resident objects */
    uint64_t budget;
    uint64_t evictions; /* objects dropped to stay within the budget */
    uint64_t lookups, hits;
    uint64_t shift_steps; /* slots the backward shifts of removals stepped over (a cluster-length probe) */
} mem_stats_t;

/**
 * Create a tier with a budget in bytes. `nshards` is rounded up to a power of two
 * (0 picks a default). Never returns NULL (out of memory is fatal).
 */
mem_tier_t *mem_create(size_t budget_bytes, unsigned nshards);
/** Drop every object and free the tier; sets *tier to NULL. */
void mem_destroy(mem_tier_t **tier);

/**
 * Look up by hash. Returns a new reference (the caller obj_unref()s it) or NULL.
 * The caller compares the full key. Marks the entry as recently used.
 */
cache_obj_t *mem_lookup(mem_tier_t *tier, const uint8_t hash[CACHE_HASH_LEN]);

/**
 * Insert, replacing any object with the same hash. The tier takes its own reference
 * (the caller keeps its own). Evicts with CLOCK until the tier is within budget.
 * An object bigger than a quarter of the budget is not admitted (returns -1); 0 on success.
 */
int mem_insert(mem_tier_t *tier, cache_obj_t *obj);

/** Remove the entry with this hash; returns 1 if one was removed, else 0. */
int mem_remove(mem_tier_t *tier, const uint8_t hash[CACHE_HASH_LEN]);

/** Remove the entry with this hash only if it is `obj` itself (1 if removed). */
int mem_remove_if_same(mem_tier_t *tier, const uint8_t hash[CACHE_HASH_LEN], const cache_obj_t *obj);

/** Remove every object. */
void mem_clear(mem_tier_t *tier);

/** Snapshot of the counters. */
void mem_get_stats(mem_tier_t *tier, mem_stats_t *out);

#endif

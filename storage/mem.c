/*
 * storage/mem.c — the memory tier: a sharded hash table of refcounted objects
 * with a byte budget and CLOCK eviction.
 *
 * What it owns: one reference to every resident object (taken by mem_insert,
 * dropped when the entry is replaced, removed, evicted or cleared; the object
 * itself lives on for whoever else holds a reference), and the shard tables.
 *
 * Layout: a power-of-two number of shards, each a cache-line-aligned struct with
 * its own mutex and an open-addressing (linear probing) table of slots
 * {mixed hash, object, reference bit}. Deletion shifts the following entries of
 * the cluster back (no tombstones), so a lookup stops at the first empty slot.
 * The table doubles at 3/4 load (the only allocation made under a shard lock)
 * and never shrinks except through mem_clear. The shard is chosen by the high
 * bits of a mix of the 16-byte hash, the home slot by its low bits.
 *
 * Eviction is CLOCK per shard: mem_lookup sets the entry's reference bit; a hand
 * sweeps the shard's slots, clearing set bits and evicting the first entry whose
 * bit is clear. The hand visits the slots in a scrambled order, step k at slot
 * k * stride mod cap (stride odd, about 0.618 cap: a permutation of the slots that
 * puts neighbouring slots far apart in time). Swept in slot order, the slots just
 * ahead of the hand were the longest without an eviction, so they filled up into one
 * cluster the size of a lap's inserts, and every probe and backward shift walked it:
 * 1M fills of 1 KiB through a full 256 MiB tier spent a fifth of the process's CPU
 * in shard_delete_at (a simulation of one shard at 58% load: 3,000 slots scanned per
 * eviction, 1,300 probes per insert; scrambled, 1.2 and 1.9). An insert does not set the bit (an object earns its second chance
 * by being looked up), and the object being inserted is never its own victim.
 * After evicting at the hand, the hand stays put: the backward shift may have
 * moved a not-yet-visited entry into that slot. (A shift can also move an entry
 * into a slot the hand has passed in this lap, or out of one it has not reached:
 * that entry waits one extra lap or is looked at twice. Harmless for an
 * approximation of LRU.)
 *
 * Budget: each shard's share is budget / nshards. After an insert the shard
 * evicts until it is within its share — or until the new object is the only
 * thing left in it, which is the one case a shard holds more than its share: an
 * admissible object (<= budget / 4) may be larger than a share. To keep such
 * objects from adding up across shards, a second pass bounds the whole tier:
 * while the sum over all shards (an atomic touched only by inserts and removals,
 * never by lookups) exceeds the budget, evict one CLOCK victim from each shard in
 * turn, starting where the previous pass stopped. Slack: when no insert is in
 * progress the tier holds at most `budget` bytes; while inserts run, the total
 * can exceed the budget transiently by the objects being inserted at that moment
 * (at most budget / 4 each), and a concurrent insert may cause one spurious
 * eviction elsewhere. The slot arrays themselves (24 bytes a slot) are not
 * charged to the budget.
 *
 * Threads: every function may be called from any thread, except that
 * mem_destroy must not race with anything. A shard lock is held only for the
 * table operation: the references of evicted, replaced or removed objects are
 * dropped after it is released (freeing a large record can take a while), at
 * most MEM_DROP_BATCH victims at a time. No thread ever holds two shard locks.
 * Lookups touch only their shard: the counters are per shard, under its lock,
 * and are summed by mem_get_stats.
 */
#include "storage/mem.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/alloc.h"
#include <unistd.h>

#define MEM_TIER_MAGIC 0x3e3071e4u
#define MEM_INITIAL_SLOTS 16
#define MEM_MAX_SHARDS 4096
#define MEM_DROP_BATCH 32

typedef struct mem_slot {
    uint64_t h;         /* mem_mix(obj->hash); meaningless when obj == NULL */
    cache_obj_t *obj;   /* the tier's reference; NULL = empty slot */
    uint8_t referenced; /* CLOCK bit: looked up since the hand last passed */
} mem_slot_t;

typedef struct mem_shard {
    _Alignas(64) pthread_mutex_t lock;
    mem_slot_t *slots;
    size_t cap;    /* power of two */
    size_t count;  /* entries in use */
    size_t hand;   /* CLOCK hand: a step, 0..cap-1; the slot is hand * stride mod cap */
    size_t stride; /* odd, about 0.618 cap (shard_set_stride) */
    uint64_t bytes;
    uint64_t evictions, lookups, hits, shift_steps;
} mem_shard_t;

struct mem_tier {
    uint32_t magic;
    unsigned nshards, shard_mask;
    uint64_t budget, shard_budget, max_obj_size;
    mem_shard_t *shards;
    atomic_uint_fast64_t total_bytes; /* sum of the shards' bytes; updated on insert/remove only */
    atomic_uint evict_cursor;         /* where the next global eviction pass starts */
};

static mem_slot_t *mem_alloc_slots(size_t cap)
{
    mem_slot_t *s = calloc(cap, sizeof(*s));
    if (s == NULL)
        alloc_die(NULL, cap * sizeof(*s));
    return s;
}

/* Spread the 128-bit hash into 64 well-mixed bits (tests and callers may use non-random hashes). */
static uint64_t mem_mix(const uint8_t hash[CACHE_HASH_LEN])
{
    uint64_t a, b;
    memcpy(&a, hash, 8);
    memcpy(&b, hash + 8, 8);
    uint64_t x = a ^ (b * 0x9e3779b97f4a7c15ull);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static mem_shard_t *mem_shard_of(mem_tier_t *t, uint64_t h)
{
    return &t->shards[(h >> 48) & t->shard_mask];
}

static void mem_lock(mem_shard_t *s)
{
    int rc = pthread_mutex_lock(&s->lock);
    assert(rc == 0);
    (void)rc;
}

static void mem_unlock(mem_shard_t *s)
{
    int rc = pthread_mutex_unlock(&s->lock);
    assert(rc == 0);
    (void)rc;
}

/* ---- one shard's table; the caller holds s->lock ---- */

/* Slot index of the entry with this hash, or SIZE_MAX. */
static size_t shard_find(const mem_shard_t *s, uint64_t h, const uint8_t hash[CACHE_HASH_LEN])
{
    size_t mask = s->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const mem_slot_t *slot = &s->slots[i];
        if (slot->obj == NULL)
            return SIZE_MAX;
        if (slot->h == h && memcmp(slot->obj->hash, hash, CACHE_HASH_LEN) == 0)
            return i;
    }
}

/* First empty slot of h's probe sequence (the table is never full). */
static size_t shard_free_slot(const mem_shard_t *s, uint64_t h)
{
    size_t mask = s->cap - 1;
    size_t i = h & mask;
    while (s->slots[i].obj != NULL)
        i = (i + 1) & mask;
    return i;
}

/* the hand's stride for the shard's current cap; restarts the hand */
static void shard_set_stride(mem_shard_t *s)
{
    s->stride = (size_t)((double)s->cap * 0.6180339887498949) | 1;
    s->hand = 0;
}

/* the slot under the CLOCK hand */
static size_t shard_hand_slot(const mem_shard_t *s)
{
    return (s->hand * s->stride) & (s->cap - 1);
}

static void shard_grow(mem_shard_t *s)
{
    mem_slot_t *old = s->slots;
    size_t old_cap = s->cap;
    if (old_cap > SIZE_MAX / 2 / sizeof(mem_slot_t))
        alloc_die(NULL, SIZE_MAX);
    s->cap = old_cap * 2;
    s->slots = mem_alloc_slots(s->cap);
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].obj != NULL)
            s->slots[shard_free_slot(s, old[i].h)] = old[i];
    shard_set_stride(s);
    free(old);
}

/*
 * Remove the entry at slot i (its reference passes to the caller) and close the
 * gap by shifting back the entries of the cluster that may live there.
 */
static cache_obj_t *shard_delete_at(mem_tier_t *t, mem_shard_t *s, size_t i)
{
    size_t mask = s->cap - 1;
    cache_obj_t *obj = s->slots[i].obj;
    assert(obj != NULL);
    for (size_t j = (i + 1) & mask; s->slots[j].obj != NULL; j = (j + 1) & mask) {
        s->shift_steps++;
        size_t home = s->slots[j].h & mask;
        /* the entry at j stays if its home lies cyclically in (i, j] */
        int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        s->slots[i] = s->slots[j];
        i = j;
    }
    s->slots[i].obj = NULL;
    s->slots[i].referenced = 0;
    s->count--;
    assert(s->bytes >= obj->mem_size);
    s->bytes -= obj->mem_size;
    atomic_fetch_sub_explicit(&t->total_bytes, obj->mem_size, memory_order_relaxed);
    return obj;
}

/*
 * CLOCK: evict one entry other than `skip` (which may be NULL or not in this
 * shard). Returns the victim (its reference passes to the caller) or NULL when
 * the shard holds nothing but `skip`.
 */
static cache_obj_t *shard_evict_one(mem_tier_t *t, mem_shard_t *s, const cache_obj_t *skip)
{
    if (s->count == 0)
        return NULL;
    if (s->count == 1 && skip != NULL) {
        size_t i = shard_find(s, mem_mix(skip->hash), skip->hash);
        if (i != SIZE_MAX && s->slots[i].obj == skip)
            return NULL;
    }
    size_t mask = s->cap - 1;
    /* one lap clears every bit, so a victim turns up within two laps */
    for (size_t steps = 0; steps <= 2 * s->cap; steps++) {
        size_t at = shard_hand_slot(s);
        mem_slot_t *slot = &s->slots[at];
        if (slot->obj != NULL && slot->obj != skip) {
            if (!slot->referenced) {
                s->evictions++;
                /* the hand stays: the shift may have moved an unvisited entry here */
                return shard_delete_at(t, s, at);
            }
            slot->referenced = 0;
        }
        s->hand = (s->hand + 1) & mask;
    }
    assert(!"CLOCK found no victim in a non-empty shard");
    return NULL;
}

static void mem_drop_all(cache_obj_t **objs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        obj_unref(&objs[i]);
}

/* ---- public API ---- */

static unsigned mem_round_pow2(unsigned n)
{
    unsigned p = 1;
    while (p < n && p < MEM_MAX_SHARDS)
        p <<= 1;
    return p;
}

mem_tier_t *mem_create(size_t budget_bytes, unsigned nshards)
{
    if (nshards == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nshards = cpus > 0 ? (unsigned)(cpus < 64 ? cpus : 64) * 4 : 16;
        if (nshards < 8)
            nshards = 8;
    }
    nshards = mem_round_pow2(nshards);

    mem_tier_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        alloc_die(NULL, sizeof(*t));
    t->magic = MEM_TIER_MAGIC;
    t->nshards = nshards;
    t->shard_mask = nshards - 1;
    t->budget = budget_bytes;
    t->shard_budget = budget_bytes / nshards;
    t->max_obj_size = budget_bytes / 4;
    atomic_init(&t->total_bytes, 0);
    atomic_init(&t->evict_cursor, 0);

    size_t size = (size_t)nshards * sizeof(mem_shard_t);
    t->shards = aligned_alloc(_Alignof(mem_shard_t), size);
    if (t->shards == NULL)
        alloc_die(NULL, size);
    memset(t->shards, 0, size);
    for (unsigned i = 0; i < nshards; i++) {
        mem_shard_t *s = &t->shards[i];
        if (pthread_mutex_init(&s->lock, NULL) != 0) {
            fprintf(stderr, "edgecache: pthread_mutex_init failed\n");
            abort();
        }
        s->cap = MEM_INITIAL_SLOTS;
        s->slots = mem_alloc_slots(s->cap);
        shard_set_stride(s);
    }
    return t;
}

void mem_destroy(mem_tier_t **tierp)
{
    assert(tierp != NULL);
    mem_tier_t *t = *tierp;
    *tierp = NULL;
    if (t == NULL)
        return;
    assert(t->magic == MEM_TIER_MAGIC);
    mem_clear(t);
    for (unsigned i = 0; i < t->nshards; i++) {
        pthread_mutex_destroy(&t->shards[i].lock);
        free(t->shards[i].slots);
    }
    free(t->shards);
    t->magic = 0;
    free(t);
}

cache_obj_t *mem_lookup(mem_tier_t *t, const uint8_t hash[CACHE_HASH_LEN])
{
    assert(t != NULL && t->magic == MEM_TIER_MAGIC);
    uint64_t h = mem_mix(hash);
    mem_shard_t *s = mem_shard_of(t, h);
    cache_obj_t *obj = NULL;

    mem_lock(s);
    s->lookups++;
    size_t i = shard_find(s, h, hash);
    if (i != SIZE_MAX) {
        s->slots[i].referenced = 1;
        obj = obj_ref(s->slots[i].obj);
        s->hits++;
    }
    mem_unlock(s);
    return obj;
}

/*
 * Keep the whole tier within its budget (see the essay): one CLOCK victim per
 * shard in turn, never `keep`, until the total fits or a full round finds nothing.
 */
static void mem_evict_global(mem_tier_t *t, const cache_obj_t *keep)
{
    unsigned i = atomic_fetch_add_explicit(&t->evict_cursor, 1, memory_order_relaxed);
    unsigned misses = 0;
    while (misses < t->nshards && atomic_load_explicit(&t->total_bytes, memory_order_relaxed) > t->budget) {
        mem_shard_t *s = &t->shards[i & t->shard_mask];
        i++;
        mem_lock(s);
        cache_obj_t *victim = shard_evict_one(t, s, keep);
        mem_unlock(s);
        if (victim == NULL) {
            misses++;
            continue;
        }
        misses = 0;
        obj_unref(&victim);
    }
    atomic_store_explicit(&t->evict_cursor, i, memory_order_relaxed);
}

int mem_insert(mem_tier_t *t, cache_obj_t *obj)
{
    assert(t != NULL && t->magic == MEM_TIER_MAGIC);
    assert(obj != NULL && obj->magic == OBJ_MAGIC);
    if (obj->mem_size > t->max_obj_size)
        return -1;

    uint64_t h = mem_mix(obj->hash);
    mem_shard_t *s = mem_shard_of(t, h);
    cache_obj_t *drop[MEM_DROP_BATCH];
    size_t ndrop = 0;

    obj_ref(obj); /* the tier's reference */
    mem_lock(s);
    /* grow before placing so the table always keeps an empty slot */
    if ((s->count + 1) * 4 > s->cap * 3)
        shard_grow(s);
    size_t i = shard_find(s, h, obj->hash);
    if (i != SIZE_MAX) {
        /* replace; the entry keeps its reference bit (a refreshed hot object stays hot) */
        cache_obj_t *old = s->slots[i].obj;
        s->slots[i].obj = obj;
        s->bytes -= old->mem_size;
        atomic_fetch_sub_explicit(&t->total_bytes, old->mem_size, memory_order_relaxed);
        drop[ndrop++] = old;
    } else {
        i = shard_free_slot(s, h);
        s->slots[i].h = h;
        s->slots[i].obj = obj;
        s->slots[i].referenced = 0;
        s->count++;
    }
    s->bytes += obj->mem_size;
    atomic_fetch_add_explicit(&t->total_bytes, obj->mem_size, memory_order_relaxed);

    while (s->bytes > t->shard_budget) {
        if (ndrop == MEM_DROP_BATCH) {
            mem_unlock(s);
            mem_drop_all(drop, ndrop);
            ndrop = 0;
            mem_lock(s);
            continue;
        }
        cache_obj_t *victim = shard_evict_one(t, s, obj);
        if (victim == NULL)
            break; /* only `obj` is left: the shard's one allowed overshoot */
        drop[ndrop++] = victim;
    }
    mem_unlock(s);
    mem_drop_all(drop, ndrop);

    if (atomic_load_explicit(&t->total_bytes, memory_order_relaxed) > t->budget)
        mem_evict_global(t, obj);
    return 0;
}

static int mem_remove_matching(mem_tier_t *t, const uint8_t hash[CACHE_HASH_LEN], const cache_obj_t *only)
{
    assert(t != NULL && t->magic == MEM_TIER_MAGIC);
    uint64_t h = mem_mix(hash);
    mem_shard_t *s = mem_shard_of(t, h);
    cache_obj_t *victim = NULL;

    mem_lock(s);
    size_t i = shard_find(s, h, hash);
    if (i != SIZE_MAX && (only == NULL || s->slots[i].obj == only))
        victim = shard_delete_at(t, s, i);
    mem_unlock(s);
    if (victim == NULL)
        return 0;
    obj_unref(&victim);
    return 1;
}

int mem_remove(mem_tier_t *t, const uint8_t hash[CACHE_HASH_LEN])
{
    return mem_remove_matching(t, hash, NULL);
}

int mem_remove_if_same(mem_tier_t *t, const uint8_t hash[CACHE_HASH_LEN], const cache_obj_t *obj)
{
    assert(obj != NULL);
    return mem_remove_matching(t, hash, obj);
}

void mem_clear(mem_tier_t *t)
{
    assert(t != NULL && t->magic == MEM_TIER_MAGIC);
    for (unsigned k = 0; k < t->nshards; k++) {
        mem_shard_t *s = &t->shards[k];
        mem_slot_t *fresh = mem_alloc_slots(MEM_INITIAL_SLOTS);
        mem_lock(s);
        mem_slot_t *old = s->slots;
        size_t old_cap = s->cap;
        atomic_fetch_sub_explicit(&t->total_bytes, s->bytes, memory_order_relaxed);
        s->slots = fresh;
        s->cap = MEM_INITIAL_SLOTS;
        s->count = 0;
        shard_set_stride(s);
        s->bytes = 0;
        mem_unlock(s);
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].obj != NULL)
                obj_unref(&old[i].obj);
        free(old);
    }
}

void mem_get_stats(mem_tier_t *t, mem_stats_t *out)
{
    assert(t != NULL && t->magic == MEM_TIER_MAGIC);
    memset(out, 0, sizeof(*out));
    out->budget = t->budget;
    for (unsigned k = 0; k < t->nshards; k++) {
        mem_shard_t *s = &t->shards[k];
        mem_lock(s);
        out->objects += s->count;
        out->bytes += s->bytes;
        out->evictions += s->evictions;
        out->lookups += s->lookups;
        out->hits += s->hits;
        out->shift_steps += s->shift_steps;
        mem_unlock(s);
    }
}

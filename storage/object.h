/*
 * storage/object.h — a cached response, the unit shared by the memory tier
 * (storage/mem.h), the LMDB store (storage/store.h) and the proxy.
 *
 * An object is one immutable, encoded record (the exact bytes stored in LMDB)
 * plus a small decoded view whose pointers point into that record. It is
 * refcounted; every field except `flags` is immutable once built, so any
 * thread may read it without a lock while it holds a reference.
 *
 * Record layout (little endian), version 2 (written) and 1 (still read):
 *
 *   u32 magic "ECR1" | u16 version | u16 status | u32 flags
 *   u64 generation | i64 request_time_ms | i64 response_time_ms
 *   u32 initial_age | u32 ttl | u32 stale_while_revalidate | u32 stale_if_error
 *   u32 key_len | u32 skeys_len | u32 vary_len | u32 num_headers | u64 body_len
 *   u64 checksum (SipHash-2-4 of the whole record with this field zeroed)
 *   key | skeys | vary | num_headers x header | body
 *
 * A header, version 1: u32 name_len, u32 value_len, name, value. Version 2: a LEB128
 * varint `code` (odd: the name is entry code >> 1 of object.c's table of common header
 * names; even: a name of code >> 1 bytes follows), then varint value_len and the value:
 * 2 bytes instead of 8 + the name for the usual headers (a 1 KiB object from nginx: 1,272
 * bytes instead of 1,379, three to an LMDB page instead of two).
 *
 * Records read back from disk are untrusted: obj_decode validates every length
 * and the checksum and returns an error, never asserts.
 */
#ifndef EDGECACHE_OBJECT_H
#define EDGECACHE_OBJECT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_HASH_LEN 16
#define OBJ_MAGIC 0x0bec0b1eu        /* in-memory magic, checked at entry */
#define OBJ_RECORD_MAGIC 0x31524345u /* "ECR1" on disk */
#define OBJ_RECORD_VERSION 2         /* written; 1 .. this are read */
#define OBJ_RECORD_FIXED_LEN 84      /* bytes before the key */

/* errors (negative, outside errno's range) */
#define OBJ_ECORRUPT (-30900)

/* object flags */
#define OBJ_F_NO_CACHE 0x1        /* stored, but must be revalidated before every use */
#define OBJ_F_MUST_REVALIDATE 0x2 /* never served stale */
#define OBJ_F_SOFT_PURGED 0x4     /* soft purge: treat as stale; may be revalidated / served in grace */
#define OBJ_F_VARY_INDEX \
    0x8 /* not a response: marks a URL whose responses vary; its "vary" header
                                     names the request headers, the variants live under obj_variant_hash */

typedef struct obj_header {
    const char *name; /* lower-case */
    uint32_t name_len;
    const char *value;
    uint32_t value_len;
} obj_header_t;

/* the decoded freshness metadata; also what obj_builder_begin takes */
typedef struct obj_meta {
    uint16_t status;
    uint32_t flags;
    uint64_t generation;             /* purge-all generation the object belongs to */
    int64_t request_time_ms;         /* unix ms when the request to the origin was sent */
    int64_t response_time_ms;        /* unix ms when the response head arrived */
    uint32_t initial_age;            /* corrected_initial_age, seconds (RFC 9111 4.2.3) */
    uint32_t ttl;                    /* freshness lifetime, seconds */
    uint32_t stale_while_revalidate; /* seconds */
    uint32_t stale_if_error;         /* seconds */
} obj_meta_t;

typedef struct cache_obj {
    uint32_t magic;
    atomic_uint refcnt;
    atomic_uint flags; /* OBJ_F_*; starts as meta.flags, may gain OBJ_F_SOFT_PURGED later */
    uint8_t hash[CACHE_HASH_LEN];
    obj_meta_t meta; /* meta.flags is the value as stored; read `flags` for the live value */
    const char *key; /* full cache key (not NUL terminated) */
    uint32_t key_len;
    const char *skeys; /* surrogate keys, space separated, as received */
    uint32_t skeys_len;
    const char *vary; /* secondary key (normalized Vary values); empty when none */
    uint32_t vary_len;
    uint32_t num_headers;
    obj_header_t *headers; /* points into `rec` (array owned by the object) */
    const uint8_t *body;   /* points into `rec` */
    uint64_t body_len;
    uint8_t *rec; /* the encoded record, owned */
    size_t rec_len;
    size_t mem_size; /* bytes charged to the memory tier for this object */
} cache_obj_t;

/** BLAKE2b-128 of the cache key (libsodium crypto_generichash). */
void obj_key_hash(const char *key, size_t key_len, uint8_t out[CACHE_HASH_LEN]);

/**
 * Hash of one Vary variant: BLAKE2b-128 of key + "\n" + vary. An object whose `vary`
 * is non-empty is stored under this hash; the store indexes it under obj_key_hash(key)
 * (the `variants` database) so that purging the URL removes every variant.
 */
void obj_variant_hash(const char *key, size_t key_len, const char *vary, size_t vary_len, uint8_t out[CACHE_HASH_LEN]);

/* ---- surrogate keys ----
 *
 * One rule for which keys of a Surrogate-Key value count (Fastly's): keys of at most
 * OBJ_SKEY_MAX_LEN bytes that lie wholly within the value's first OBJ_SKEYS_MAX_LEN
 * bytes; the first key that breaks either limit is ignored with every key after it.
 * The admin API accepts keys up to the same OBJ_SKEY_MAX_LEN, so every key it accepts
 * can name objects.
 *
 * LMDB keys are at most 511 bytes, so the skeys index holds each key under its index
 * key: the key itself when it has at most OBJ_SKEY_VERBATIM_MAX bytes and does not
 * begin with a NUL byte, else a NUL byte and the BLAKE2b-256 of the key
 * (OBJ_SKEY_HASHED_LEN bytes). The forms cannot meet (one begins with NUL, the other
 * never does); two keys share a hashed form only through a BLAKE2b-256 collision. */
#define OBJ_SKEY_MAX_LEN 1024
#define OBJ_SKEYS_MAX_LEN 16384
#define OBJ_SKEY_VERBATIM_MAX 511
#define OBJ_SKEY_HASHED_LEN 33
#define OBJ_SKEY_INDEX_KEY_MAX OBJ_SKEY_VERBATIM_MAX /* the longer of the two forms */

/**
 * The next surrogate key of skeys[0..len) (space or tab separated) from *pos on, under
 * the rule above: NULL at the end of the list, or when the next key is longer than
 * OBJ_SKEY_MAX_LEN or ends past OBJ_SKEYS_MAX_LEN (then every later call returns NULL
 * too). The key is borrowed from skeys; *tok_len is its length.
 */
const char *obj_skeys_next(const char *skeys, size_t len, size_t *pos, size_t *tok_len);

/** Write the index key of skey[0..len) (see above) into out; returns its length (1..511), or 0 for an empty key. */
size_t obj_skey_index_key(const char *skey, size_t len, uint8_t out[OBJ_SKEY_INDEX_KEY_MAX]);

/**
 * Decode a record (e.g. read from LMDB). The bytes are copied: `rec` need only be
 * valid during the call. Returns a new object with refcount 1, or NULL and sets
 * *err to OBJ_ECORRUPT when the record is malformed or its checksum is wrong.
 */
cache_obj_t *obj_decode(const uint8_t hash[CACHE_HASH_LEN], const void *rec, size_t rec_len, int *err);

/** Validate a record without building an object (0 or OBJ_ECORRUPT). */
int obj_record_validate(const void *rec, size_t rec_len);

/**
 * The surrogate-key field of a record, from its structure only (the checksum is not
 * read, so only the record's first bytes are touched): *skeys points into rec. Returns 0,
 * or OBJ_ECORRUPT when the record is malformed. For scans of the whole store (migrations).
 */
int obj_record_skeys(const void *rec, size_t rec_len, const char **skeys, size_t *skeys_len);

/* Builder: a response streamed from the origin becomes an object without a second copy of its body. */
typedef struct obj_builder obj_builder_t;

/**
 * Start an object. Copies key, surrogate keys, vary key and headers; the builder owns
 * its buffer until obj_builder_finish or obj_builder_discard. Never returns NULL.
 * `expected_body_len` is a capacity hint (0 if unknown).
 */
obj_builder_t *obj_builder_begin(const obj_meta_t *meta, const char *key, size_t key_len, const char *skeys, size_t skeys_len,
                                 const char *vary, size_t vary_len, const obj_header_t *headers, size_t num_headers,
                                 size_t expected_body_len);
/** Append body bytes (copied). */
void obj_builder_append(obj_builder_t *b, const void *data, size_t len);
/** Bytes of body appended so far. */
uint64_t obj_builder_body_len(const obj_builder_t *b);
/** Finish: frees the builder, returns a new object (refcount 1). */
cache_obj_t *obj_builder_finish(obj_builder_t *b);
/** Abandon: frees the builder. */
void obj_builder_discard(obj_builder_t *b);

/**
 * A copy of `src` with new metadata and headers and the same body (used when a 304
 * refreshes an object). Returns a new object, refcount 1.
 */
cache_obj_t *obj_rebuild(const cache_obj_t *src, const obj_meta_t *meta, const obj_header_t *headers, size_t num_headers);

/** Take a reference. Returns obj. */
cache_obj_t *obj_ref(cache_obj_t *obj);
/** Drop a reference and set *obj to NULL; frees (and zeroes the magic) on the last one. NULL is fine. */
void obj_unref(cache_obj_t **obj);

/** Find a header by lower-case name (first match) in an object; NULL if absent. Borrowed from obj. */
const obj_header_t *obj_find_header(const cache_obj_t *obj, const char *name, size_t name_len);

#endif

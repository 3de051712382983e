/*
 * storage/object.c — cached objects: the on-disk record format, its builder and
 * its defensive decoder, key hashing, the object refcount, and the one rule for
 * which surrogate keys of a record count and under which index key each is indexed
 * (object.h; the store, its migrations and the admin API all go by it).
 *
 * What it owns: each cache_obj_t owns its encoded record (`rec`, one malloc) and
 * its header array, which lives in the same allocation as the object itself
 * (cache_obj_t followed by num_headers obj_header_t), so an object is exactly two
 * heap blocks. Every pointer of the decoded view (key, skeys, vary, header names
 * and values, body) points into `rec`, except the names a version 2 record gives as an
 * index into obj_header_names (static strings). The builder writes version 2; records of
 * version 1 (written before it) are read as they are.
 *
 * Invariants: an object with magic OBJ_MAGIC and refcnt > 0 is immutable except
 * for the atomic `flags`; its `rec` always holds a record that passes
 * obj_record_validate (the builder seals it, obj_decode checks it), so the store
 * may write `rec` back to disk as is. Header names in a record are lower case
 * (the builder lower-cases them). The magic is zeroed before the memory is freed,
 * so a use after the last obj_unref trips the assert in obj_ref/obj_unref.
 *
 * Record bytes read back from disk are untrusted: obj_decode and
 * obj_record_validate check the magic, the version, every length against the
 * bytes that remain (subtracting from a remaining count, so no sum can overflow)
 * and the checksum, and return OBJ_ECORRUPT; nothing in there asserts on input.
 *
 * Threads: everything here is reentrant. Objects are shared across threads by
 * reference; the refcount is atomic. A builder belongs to one thread at a time.
 * libsodium is initialised once, lazily, through pthread_once.
 */
#include "storage/object.h"
#include "storage/object_int.h"
#include "storage/le.h"

#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/alloc.h"
#include "common/ascii.h"
#include "common/skey.h"

/*
 * The fixed SipHash key of the record checksum. It is part of the on-disk format
 * (changing it invalidates every stored record): the checksum detects torn or
 * corrupted records, it is not a MAC.
 */
static const uint8_t obj_checksum_key[crypto_shorthash_KEYBYTES] = {'e', 'd', 'g', 'e', 'c', 'a', 'c', 'h',
                                                                    'e', '-', 'r', 'e', 'c', '-', 'v', '1'};

_Static_assert(crypto_shorthash_BYTES == 8, "the record checksum is a u64");
_Static_assert(OBJ_REC_OFF_CHECKSUM + 8 == OBJ_RECORD_FIXED_LEN, "the checksum is the last field of the fixed prefix");

/* the most body capacity obj_builder_begin reserves up front from its hint */
#define OBJ_BODY_HINT_MAX ((size_t)16 << 20)
/* headers whose table index obj_builder_begin's size pass keeps for its write pass (on its
 * stack); a response with more has the names after these looked up again */
#define OBJ_BUILDER_KEPT_INDEXES 64

/* ---- small helpers ---- */

static pthread_once_t obj_sodium_once = PTHREAD_ONCE_INIT;

static void obj_sodium_init_once(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "edgecache: sodium_init failed\n");
        abort();
    }
}

static void obj_sodium_init(void)
{
    int rc = pthread_once(&obj_sodium_once, obj_sodium_init_once);
    assert(rc == 0);
    (void)rc;
}

/* Our own lengths must fit the record's u32 fields; a caller handing us more is a bug. */
static uint32_t obj_len32(size_t len, const char *what)
{
    if (len > UINT32_MAX) {
        fprintf(stderr, "edgecache: object %s too long (%zu bytes)\n", what, len);
        abort();
    }
    return (uint32_t)len;
}

/* SipHash-2-4 of a record whose checksum field is already zero. */
static void obj_checksum(const uint8_t *rec, size_t rec_len, uint8_t out[8])
{
    obj_sodium_init();
    crypto_shorthash(out, rec, rec_len, obj_checksum_key);
}

void obj_record_seal(void *rec, size_t rec_len)
{
    assert(rec_len >= OBJ_RECORD_FIXED_LEN);
    uint8_t *p = rec;
    uint8_t sum[8];
    memset(p + OBJ_REC_OFF_CHECKSUM, 0, 8);
    obj_checksum(p, rec_len, sum);
    memcpy(p + OBJ_REC_OFF_CHECKSUM, sum, 8);
}

/* ---- the header encoding of version 2 ----
 *
 * Version 1 spent 8 bytes of lengths and the whole name on every header: a 1 KiB object
 * with nginx's seven headers was a 1,379-byte record, two to an LMDB page. Version 2
 * writes each length as a LEB128 varint and the common names as an index into this
 * table, which is part of the on-disk format: entries are only ever appended.
 */
static const char *const obj_header_names[] = {
    "accept-ranges",
    "access-control-allow-origin",
    "age",
    "cache-control",
    "cdn-cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-security-policy",
    "content-type",
    "date",
    "etag",
    "expires",
    "last-modified",
    "link",
    "location",
    "referrer-policy",
    "server",
    "set-cookie",
    "strict-transport-security",
    "surrogate-control",
    "surrogate-key",
    "timing-allow-origin",
    "vary",
    "via",
    "x-content-type-options",
    "x-frame-options",
    "x-powered-by",
    "x-xss-protection",
};
#define OBJ_HEADER_NAMES (sizeof(obj_header_names) / sizeof(obj_header_names[0]))
_Static_assert(OBJ_HEADER_NAMES < 64, "an indexed name's code (index * 2 + 1) is a one-byte varint");

/* The table index of a name (any case), or -1. */
static int obj_header_name_index(const char *name, size_t len)
{
    for (size_t i = 0; i < OBJ_HEADER_NAMES; i++) {
        const char *t = obj_header_names[i];
        size_t j = 0;
        while (j < len && t[j] != '\0' && t[j] == ascii_lower(name[j]))
            j++;
        if (j == len && t[j] == '\0')
            return (int)i;
    }
    return -1;
}

static size_t obj_varint_len(uint32_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Read a LEB128 u32 at rec[*off] within *remaining bytes; advances both. 0, or OBJ_ECORRUPT
 * when it runs past the bytes or past 32 bits. */
static int obj_varint_get(const uint8_t *rec, size_t *off, size_t *remaining, uint32_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 35; shift += 7) {
        if (*remaining == 0)
            return OBJ_ECORRUPT;
        uint8_t b = rec[*off];
        (*off)++;
        (*remaining)--;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            /* one encoding per value (no padded 0x80 0x00 ...): what decodes re-encodes alike */
            if (v > UINT32_MAX || (b == 0 && shift > 0))
                return OBJ_ECORRUPT;
            *out = (uint32_t)v;
            return 0;
        }
    }
    return OBJ_ECORRUPT;
}

/* The bytes a header takes in a version 2 record: its name's code (and the name itself when
 * it is not in the table), the value's length and the value. name_len * 2 fits 32 bits. */
static size_t obj_header_v2_len(int indexed, uint32_t name_len, uint32_t value_len)
{
    size_t name = indexed ? 1 : obj_varint_len(name_len * 2) + name_len;
    return name + obj_varint_len(value_len) + value_len;
}

int obj_header_name_indexed(const char *name)
{
    for (size_t i = 0; i < OBJ_HEADER_NAMES; i++)
        if (name == obj_header_names[i])
            return 1;
    return 0;
}

size_t obj_header_record_len(unsigned version, const obj_header_t *h)
{
    if (version == 1)
        return 8 + (size_t)h->name_len + h->value_len;
    return obj_header_v2_len(obj_header_name_indexed(h->name), h->name_len, h->value_len);
}

/* ---- hashing and time ---- */

void obj_key_hash(const char *key, size_t key_len, uint8_t out[CACHE_HASH_LEN])
{
    obj_sodium_init();
    crypto_generichash(out, CACHE_HASH_LEN, (const unsigned char *)key, key_len, NULL, 0);
}

void obj_variant_hash(const char *key, size_t key_len, const char *vary, size_t vary_len, uint8_t out[CACHE_HASH_LEN])
{
    crypto_generichash_state st;
    obj_sodium_init();
    crypto_generichash_init(&st, NULL, 0, CACHE_HASH_LEN);
    crypto_generichash_update(&st, (const unsigned char *)key, key_len);
    crypto_generichash_update(&st, (const unsigned char *)"\n", 1);
    crypto_generichash_update(&st, (const unsigned char *)vary, vary_len);
    crypto_generichash_final(&st, out, CACHE_HASH_LEN);
}

/* The hash an object is stored under: the variant hash when it has a Vary key. */
static void obj_storage_hash(const char *key, size_t key_len, const char *vary, size_t vary_len, uint8_t out[CACHE_HASH_LEN])
{
    if (vary_len > 0)
        obj_variant_hash(key, key_len, vary, vary_len, out);
    else
        obj_key_hash(key, key_len, out);
}

const char *obj_skeys_next(const char *skeys, size_t len, size_t *pos, size_t *tok_len)
{
    return skey_next(skeys, len, pos, tok_len, OBJ_SKEY_MAX_LEN, OBJ_SKEYS_MAX_LEN);
}

size_t obj_skey_index_key(const char *skey, size_t len, uint8_t out[OBJ_SKEY_INDEX_KEY_MAX])
{
    if (len == 0)
        return 0;
    if (len <= OBJ_SKEY_VERBATIM_MAX && skey[0] != '\0') {
        memcpy(out, skey, len);
        return len;
    }
    obj_sodium_init();
    out[0] = 0;
    crypto_generichash(out + 1, OBJ_SKEY_HASHED_LEN - 1, (const unsigned char *)skey, len, NULL, 0);
    return OBJ_SKEY_HASHED_LEN;
}

/* ---- parsing ---- */

/* Where the variable parts of a structurally valid record are. */
typedef struct obj_layout {
    obj_meta_t meta;
    uint32_t key_len, skeys_len, vary_len, num_headers;
    uint64_t body_len;
    size_t key_off, skeys_off, vary_off, headers_off, body_off;
} obj_layout_t;

/*
 * Check the structure of a record (not its checksum) and fill *lo. When `headers`
 * is not NULL (lo->num_headers entries, i.e. on a second call), also point each
 * header into `rec`. Every length is compared with the bytes that remain before it
 * is subtracted, so no arithmetic here can overflow.
 */
static int obj_parse(const uint8_t *rec, size_t rec_len, obj_layout_t *lo, obj_header_t *headers)
{
    if (rec == NULL || rec_len < OBJ_RECORD_FIXED_LEN)
        return OBJ_ECORRUPT;
    uint16_t version = le_get_u16(rec + OBJ_REC_OFF_VERSION);
    if (le_get_u32(rec + OBJ_REC_OFF_MAGIC) != OBJ_RECORD_MAGIC || version < 1 || version > OBJ_RECORD_VERSION)
        return OBJ_ECORRUPT;

    lo->meta.status = le_get_u16(rec + OBJ_REC_OFF_STATUS);
    lo->meta.flags = le_get_u32(rec + OBJ_REC_OFF_FLAGS);
    lo->meta.generation = le_get_u64(rec + OBJ_REC_OFF_GENERATION);
    lo->meta.request_time_ms = (int64_t)le_get_u64(rec + OBJ_REC_OFF_REQUEST_TIME);
    lo->meta.response_time_ms = (int64_t)le_get_u64(rec + OBJ_REC_OFF_RESPONSE_TIME);
    lo->meta.initial_age = le_get_u32(rec + OBJ_REC_OFF_INITIAL_AGE);
    lo->meta.ttl = le_get_u32(rec + OBJ_REC_OFF_TTL);
    lo->meta.stale_while_revalidate = le_get_u32(rec + OBJ_REC_OFF_SWR);
    lo->meta.stale_if_error = le_get_u32(rec + OBJ_REC_OFF_SIE);
    lo->key_len = le_get_u32(rec + OBJ_REC_OFF_KEY_LEN);
    lo->skeys_len = le_get_u32(rec + OBJ_REC_OFF_SKEYS_LEN);
    lo->vary_len = le_get_u32(rec + OBJ_REC_OFF_VARY_LEN);
    lo->num_headers = le_get_u32(rec + OBJ_REC_OFF_NUM_HEADERS);
    lo->body_len = le_get_u64(rec + OBJ_REC_OFF_BODY_LEN);

    size_t off = OBJ_RECORD_FIXED_LEN, remaining = rec_len - OBJ_RECORD_FIXED_LEN;

#define TAKE(len)                        \
    do {                                 \
        if ((uint64_t)(len) > remaining) \
            return OBJ_ECORRUPT;         \
        off += (size_t)(len);            \
        remaining -= (size_t)(len);      \
    } while (0)

    lo->key_off = off;
    TAKE(lo->key_len);
    lo->skeys_off = off;
    TAKE(lo->skeys_len);
    lo->vary_off = off;
    TAKE(lo->vary_len);
    lo->headers_off = off;
    /* each header needs at least its two lengths (8 bytes in version 1, two 1-byte varints
     * in version 2): bounds the loop and the header array */
    if (lo->num_headers > remaining / (version == 1 ? 8 : 2))
        return OBJ_ECORRUPT;
    for (uint32_t i = 0; i < lo->num_headers; i++) {
        const char *name;
        uint32_t name_len, value_len;
        if (version == 1) {
            const uint8_t *h = rec + off;
            TAKE(8);
            name_len = le_get_u32(h);
            value_len = le_get_u32(h + 4);
            name = (const char *)rec + off;
            TAKE(name_len);
        } else {
            uint32_t code;
            if (obj_varint_get(rec, &off, &remaining, &code) != 0)
                return OBJ_ECORRUPT;
            if (code & 1) { /* an index into obj_header_names */
                if ((code >> 1) >= OBJ_HEADER_NAMES)
                    return OBJ_ECORRUPT;
                name = obj_header_names[code >> 1];
                name_len = (uint32_t)strlen(name);
            } else {
                name_len = code >> 1;
                name = (const char *)rec + off;
                TAKE(name_len);
            }
            if (obj_varint_get(rec, &off, &remaining, &value_len) != 0)
                return OBJ_ECORRUPT;
        }
        size_t value_off = off;
        TAKE(value_len);
        if (headers != NULL) {
            headers[i].name = name;
            headers[i].name_len = name_len;
            headers[i].value = (const char *)rec + value_off;
            headers[i].value_len = value_len;
        }
    }
    lo->body_off = off;
    /* the body is the rest of the record, exactly */
    if (lo->body_len != (uint64_t)remaining)
        return OBJ_ECORRUPT;
#undef TAKE
    return 0;
}

/* Verify the checksum of a record we may scribble on; the record is left unchanged. */
static int obj_verify_checksum_inplace(uint8_t *rec, size_t rec_len)
{
    uint8_t stored[8], sum[8];
    memcpy(stored, rec + OBJ_REC_OFF_CHECKSUM, 8);
    memset(rec + OBJ_REC_OFF_CHECKSUM, 0, 8);
    obj_checksum(rec, rec_len, sum);
    memcpy(rec + OBJ_REC_OFF_CHECKSUM, stored, 8);
    return memcmp(stored, sum, 8) == 0 ? 0 : OBJ_ECORRUPT;
}

/*
 * Make an object around `rec` (taking ownership of it), which must be a
 * structurally valid record described by *lo. Refcount 1.
 */
static cache_obj_t *obj_from_record(uint8_t *rec, size_t rec_len, const obj_layout_t *lo, const uint8_t hash[CACHE_HASH_LEN])
{
    size_t headers_size = (size_t)lo->num_headers * sizeof(obj_header_t);
    cache_obj_t *obj = alloc_xmalloc(sizeof(*obj) + headers_size, NULL);
    memset(obj, 0, sizeof(*obj));
    obj->headers = (obj_header_t *)(obj + 1);

    obj_layout_t again;
    int rc = obj_parse(rec, rec_len, &again, lo->num_headers > 0 ? obj->headers : NULL);
    assert(rc == 0 && again.num_headers == lo->num_headers);
    (void)rc;

    obj->magic = OBJ_MAGIC;
    atomic_init(&obj->refcnt, 1);
    atomic_init(&obj->flags, lo->meta.flags);
    if (hash != NULL)
        memcpy(obj->hash, hash, CACHE_HASH_LEN);
    else
        obj_storage_hash((const char *)rec + lo->key_off, lo->key_len, (const char *)rec + lo->vary_off, lo->vary_len,
                         obj->hash);
    obj->meta = lo->meta;
    obj->key = (const char *)rec + lo->key_off;
    obj->key_len = lo->key_len;
    obj->skeys = (const char *)rec + lo->skeys_off;
    obj->skeys_len = lo->skeys_len;
    obj->vary = (const char *)rec + lo->vary_off;
    obj->vary_len = lo->vary_len;
    obj->num_headers = lo->num_headers;
    obj->body = rec + lo->body_off;
    obj->body_len = lo->body_len;
    obj->rec = rec;
    obj->rec_len = rec_len;
    obj->mem_size = rec_len + sizeof(cache_obj_t) + headers_size;
    return obj;
}

int obj_record_skeys(const void *rec, size_t rec_len, const char **skeys, size_t *skeys_len)
{
    obj_layout_t lo;
    if (obj_parse(rec, rec_len, &lo, NULL) != 0)
        return OBJ_ECORRUPT;
    *skeys = (const char *)rec + lo.skeys_off;
    *skeys_len = lo.skeys_len;
    return 0;
}

int obj_record_validate(const void *rec, size_t rec_len)
{
    obj_layout_t lo;
    if (obj_parse(rec, rec_len, &lo, NULL) != 0)
        return OBJ_ECORRUPT;
    /*
     * libsodium's SipHash has no streaming interface, so the checksum (computed with
     * its own field zeroed) needs a writable copy. Validation is off the hit path.
     */
    uint8_t *copy = alloc_xmalloc(rec_len, NULL);
    memcpy(copy, rec, rec_len);
    int rc = obj_verify_checksum_inplace(copy, rec_len);
    free(copy);
    return rc;
}

cache_obj_t *obj_decode(const uint8_t hash[CACHE_HASH_LEN], const void *rec, size_t rec_len, int *err)
{
    obj_layout_t lo;
    uint8_t *copy = NULL;

    if (rec == NULL || rec_len < OBJ_RECORD_FIXED_LEN)
        goto fail;
    /* copy first and check the copy, so the bytes validated are the bytes kept */
    copy = alloc_xmalloc(rec_len, NULL);
    memcpy(copy, rec, rec_len);
    if (obj_parse(copy, rec_len, &lo, NULL) != 0)
        goto fail;
    if (obj_verify_checksum_inplace(copy, rec_len) != 0)
        goto fail;
    if (err != NULL)
        *err = 0;
    return obj_from_record(copy, rec_len, &lo, hash);

fail:
    free(copy);
    if (err != NULL)
        *err = OBJ_ECORRUPT;
    return NULL;
}

/* ---- builder ---- */

struct obj_builder {
    uint8_t *buf;
    size_t len, cap;
    size_t body_off;
    uint8_t hash[CACHE_HASH_LEN];
};

static void builder_reserve(obj_builder_t *b, size_t more)
{
    if (more > SIZE_MAX - b->len)
        alloc_die(NULL, SIZE_MAX);
    size_t need = b->len + more;
    if (need <= b->cap)
        return;
    size_t cap = b->cap < 256 ? 256 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->buf = alloc_xrealloc(b->buf, cap, NULL);
    b->cap = cap;
}

static void builder_put(obj_builder_t *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    builder_reserve(b, len);
    memcpy(b->buf + b->len, data, len);
    b->len += len;
}

static void builder_put_varint(obj_builder_t *b, uint32_t v)
{
    uint8_t out[5];
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    builder_put(b, out, n);
}

obj_builder_t *obj_builder_begin(const obj_meta_t *meta, const char *key, size_t key_len, const char *skeys, size_t skeys_len,
                                 const char *vary, size_t vary_len, const obj_header_t *headers, size_t num_headers,
                                 size_t expected_body_len)
{
    assert(meta != NULL);
    assert(key != NULL || key_len == 0);
    assert(skeys != NULL || skeys_len == 0);
    assert(vary != NULL || vary_len == 0);
    assert(headers != NULL || num_headers == 0);

    obj_builder_t *b = alloc_xmalloc(sizeof(*b), NULL);
    memset(b, 0, sizeof(*b));

    /* each name is looked up in the table once: a scan of its 32 entries per header */
    signed char kept[OBJ_BUILDER_KEPT_INDEXES]; /* an index is below 64 (the _Static_assert by the table) */
    size_t head_len = OBJ_RECORD_FIXED_LEN + key_len + skeys_len + vary_len;
    for (size_t i = 0; i < num_headers; i++) {
        uint32_t name_len = headers[i].name_len;
        (void)obj_len32((size_t)name_len * 2, "header name"); /* a name's code, its length * 2, is a u32 */
        int index = obj_header_name_index(headers[i].name, name_len);
        if (i < OBJ_BUILDER_KEPT_INDEXES)
            kept[i] = (signed char)index;
        head_len += obj_header_v2_len(index >= 0, name_len, headers[i].value_len);
    }
    /* the hint may come from an origin's Content-Length: believe it only so far */
    size_t hint = expected_body_len < OBJ_BODY_HINT_MAX ? expected_body_len : OBJ_BODY_HINT_MAX;
    /* exactly that, not builder_reserve's next power of two: with a right Content-Length
     * the record is then one block of its own size (a 1 KiB object took a 2 KiB block) */
    b->cap = head_len + hint;
    b->buf = alloc_xmalloc(b->cap, NULL);

    uint8_t *p = b->buf;
    memset(p, 0, OBJ_RECORD_FIXED_LEN);
    le_put_u32(p + OBJ_REC_OFF_MAGIC, OBJ_RECORD_MAGIC);
    le_put_u16(p + OBJ_REC_OFF_VERSION, OBJ_RECORD_VERSION);
    le_put_u16(p + OBJ_REC_OFF_STATUS, meta->status);
    le_put_u32(p + OBJ_REC_OFF_FLAGS, meta->flags);
    le_put_u64(p + OBJ_REC_OFF_GENERATION, meta->generation);
    le_put_u64(p + OBJ_REC_OFF_REQUEST_TIME, (uint64_t)meta->request_time_ms);
    le_put_u64(p + OBJ_REC_OFF_RESPONSE_TIME, (uint64_t)meta->response_time_ms);
    le_put_u32(p + OBJ_REC_OFF_INITIAL_AGE, meta->initial_age);
    le_put_u32(p + OBJ_REC_OFF_TTL, meta->ttl);
    le_put_u32(p + OBJ_REC_OFF_SWR, meta->stale_while_revalidate);
    le_put_u32(p + OBJ_REC_OFF_SIE, meta->stale_if_error);
    le_put_u32(p + OBJ_REC_OFF_KEY_LEN, obj_len32(key_len, "key"));
    le_put_u32(p + OBJ_REC_OFF_SKEYS_LEN, obj_len32(skeys_len, "surrogate keys"));
    le_put_u32(p + OBJ_REC_OFF_VARY_LEN, obj_len32(vary_len, "vary key"));
    le_put_u32(p + OBJ_REC_OFF_NUM_HEADERS, obj_len32(num_headers, "header count"));
    /* body_len and checksum are filled in by obj_builder_finish */
    b->len = OBJ_RECORD_FIXED_LEN;

    builder_put(b, key, key_len);
    builder_put(b, skeys, skeys_len);
    builder_put(b, vary, vary_len);
    for (size_t i = 0; i < num_headers; i++) {
        const obj_header_t *h = &headers[i];
        assert(h->name != NULL || h->name_len == 0);
        assert(h->value != NULL || h->value_len == 0);
        int index = i < OBJ_BUILDER_KEPT_INDEXES ? kept[i] : obj_header_name_index(h->name, h->name_len);
        if (index >= 0) {
            builder_put_varint(b, (uint32_t)index * 2 + 1);
        } else {
            builder_put_varint(b, h->name_len * 2);
            uint8_t *name = b->buf + b->len;
            builder_put(b, h->name, h->name_len);
            for (uint32_t j = 0; j < h->name_len; j++)
                name[j] = (uint8_t)ascii_lower((char)name[j]);
        }
        builder_put_varint(b, h->value_len);
        builder_put(b, h->value, h->value_len);
    }
    assert(b->len == head_len);
    b->body_off = b->len;
    obj_storage_hash(key, key_len, vary, vary_len, b->hash);
    return b;
}

void obj_builder_append(obj_builder_t *b, const void *data, size_t len)
{
    assert(b != NULL);
    assert(data != NULL || len == 0);
    builder_put(b, data, len);
}

uint64_t obj_builder_body_len(const obj_builder_t *b)
{
    assert(b != NULL);
    return b->len - b->body_off;
}

cache_obj_t *obj_builder_finish(obj_builder_t *b)
{
    assert(b != NULL);
    le_put_u64(b->buf + OBJ_REC_OFF_BODY_LEN, (uint64_t)(b->len - b->body_off));
    /* give back what the hint or the doubling left over: the memory tier charges rec_len
     * only, so slack would be memory it does not count (shrinking splits the block in place) */
    if (b->cap != b->len) {
        b->buf = alloc_xrealloc(b->buf, b->len, NULL);
        b->cap = b->len;
    }
    obj_record_seal(b->buf, b->len);

    obj_layout_t lo;
    int rc = obj_parse(b->buf, b->len, &lo, NULL);
    assert(rc == 0);
    (void)rc;
    cache_obj_t *obj = obj_from_record(b->buf, b->len, &lo, b->hash);
    free(b);
    return obj;
}

void obj_builder_discard(obj_builder_t *b)
{
    if (b == NULL)
        return;
    free(b->buf);
    free(b);
}

cache_obj_t *obj_rebuild(const cache_obj_t *src, const obj_meta_t *meta, const obj_header_t *headers, size_t num_headers)
{
    assert(src != NULL && src->magic == OBJ_MAGIC);
    obj_builder_t *b = obj_builder_begin(meta, src->key, src->key_len, src->skeys, src->skeys_len, src->vary, src->vary_len,
                                         headers, num_headers, (size_t)src->body_len);
    obj_builder_append(b, src->body, (size_t)src->body_len);
    memcpy(b->hash, src->hash, CACHE_HASH_LEN);
    return obj_builder_finish(b);
}

/* ---- references ---- */

cache_obj_t *obj_ref(cache_obj_t *obj)
{
    assert(obj != NULL);
    assert(obj->magic == OBJ_MAGIC);
    unsigned prev = atomic_fetch_add_explicit(&obj->refcnt, 1, memory_order_relaxed);
    assert(prev > 0);
    (void)prev;
    return obj;
}

void obj_unref(cache_obj_t **objp)
{
    assert(objp != NULL);
    cache_obj_t *obj = *objp;
    *objp = NULL;
    if (obj == NULL)
        return;
    assert(obj->magic == OBJ_MAGIC);
    unsigned prev = atomic_fetch_sub_explicit(&obj->refcnt, 1, memory_order_acq_rel);
    assert(prev > 0);
    if (prev != 1)
        return;
    obj->magic = 0;
    free(obj->rec);
    free(obj);
}

const obj_header_t *obj_find_header(const cache_obj_t *obj, const char *name, size_t name_len)
{
    assert(obj != NULL && obj->magic == OBJ_MAGIC);
    for (uint32_t i = 0; i < obj->num_headers; i++) {
        const obj_header_t *h = &obj->headers[i];
        if (h->name_len != name_len)
            continue;
        /* stored names are lower case; tolerate a caller's capitals */
        size_t j = 0;
        while (j < name_len && h->name[j] == ascii_lower(name[j]))
            j++;
        if (j == name_len)
            return h;
    }
    return NULL;
}

/*
 * tests/unit/test_object.c — storage/object.c: record round trip, header
 * lower-casing, many headers encoded exactly as one alone, defensive decoding of corrupt / truncated / lying records,
 * hashing, rebuild and the refcount.
 */
#include <check.h>
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/now.h"

#include "storage/object.h"
#include "storage/object_int.h"
#include "tests/unit/unit_obj_v1.h"

/* the refcount, as a plain number for readable failure messages */
static unsigned refs(const cache_obj_t *o)
{
    return atomic_load(&((cache_obj_t *)o)->refcnt);
}

static const obj_meta_t test_meta = {
    .status = 203,
    .flags = OBJ_F_NO_CACHE | OBJ_F_MUST_REVALIDATE,
    .generation = 0x0102030405060708ull,
    .request_time_ms = -1234567890123ll,
    .response_time_ms = 1700000000123ll,
    .initial_age = 17,
    .ttl = 0xfffffff0u,
    .stale_while_revalidate = 60,
    .stale_if_error = 86400,
};

static const obj_header_t test_headers[] = {
    {"Content-Type", 12, "text/html; charset=utf-8", 24},
    {"ETAG", 4, "\"abc\"", 5},
    {"x-Empty", 7, "", 0},
    {"Cache-Control", 13, "max-age=60, s-maxage=120", 24},
};
#define TEST_NUM_HEADERS (sizeof(test_headers) / sizeof(test_headers[0]))

static const char test_key[] = "example.com/path?q=1";
static const char test_skeys[] = "product-1 all-products";
static const char test_vary[] = "accept-encoding=gzip";

/* a body with every byte value, appended in uneven chunks */
static cache_obj_t *build_test_obj(size_t body_len, size_t hint)
{
    obj_builder_t *b = obj_builder_begin(&test_meta, test_key, strlen(test_key), test_skeys, strlen(test_skeys), test_vary,
                                         strlen(test_vary), test_headers, TEST_NUM_HEADERS, hint);
    uint8_t chunk[777];
    size_t done = 0;
    while (done < body_len) {
        size_t n = body_len - done < sizeof(chunk) ? body_len - done : sizeof(chunk);
        for (size_t i = 0; i < n; i++)
            chunk[i] = (uint8_t)((done + i) * 7 + 3);
        obj_builder_append(b, chunk, n);
        done += n;
        ck_assert_uint_eq(obj_builder_body_len(b), done);
    }
    return obj_builder_finish(b);
}

static void check_body(const cache_obj_t *obj, size_t body_len)
{
    ck_assert_uint_eq(obj->body_len, body_len);
    for (size_t i = 0; i < body_len; i++)
        ck_assert_uint_eq(obj->body[i], (uint8_t)(i * 7 + 3));
}

static void check_meta_eq(const obj_meta_t *a, const obj_meta_t *b)
{
    ck_assert_uint_eq(a->status, b->status);
    ck_assert_uint_eq(a->flags, b->flags);
    ck_assert_uint_eq(a->generation, b->generation);
    ck_assert_int_eq(a->request_time_ms, b->request_time_ms);
    ck_assert_int_eq(a->response_time_ms, b->response_time_ms);
    ck_assert_uint_eq(a->initial_age, b->initial_age);
    ck_assert_uint_eq(a->ttl, b->ttl);
    ck_assert_uint_eq(a->stale_while_revalidate, b->stale_while_revalidate);
    ck_assert_uint_eq(a->stale_if_error, b->stale_if_error);
}

static void check_test_obj(const cache_obj_t *obj, size_t body_len)
{
    ck_assert_uint_eq(obj->magic, OBJ_MAGIC);
    ck_assert_uint_eq(refs(obj), 1);
    ck_assert_uint_eq(atomic_load(&obj->flags), test_meta.flags);
    check_meta_eq(&obj->meta, &test_meta);
    ck_assert_uint_eq(obj->key_len, strlen(test_key));
    ck_assert(memcmp(obj->key, test_key, obj->key_len) == 0);
    ck_assert_uint_eq(obj->skeys_len, strlen(test_skeys));
    ck_assert(memcmp(obj->skeys, test_skeys, obj->skeys_len) == 0);
    ck_assert_uint_eq(obj->vary_len, strlen(test_vary));
    ck_assert(memcmp(obj->vary, test_vary, obj->vary_len) == 0);
    ck_assert_uint_eq(obj->num_headers, TEST_NUM_HEADERS);
    static const char *lower[] = {"content-type", "etag", "x-empty", "cache-control"};
    for (size_t i = 0; i < TEST_NUM_HEADERS; i++) {
        ck_assert_uint_eq(obj->headers[i].name_len, strlen(lower[i]));
        ck_assert(memcmp(obj->headers[i].name, lower[i], strlen(lower[i])) == 0);
        ck_assert_uint_eq(obj->headers[i].value_len, test_headers[i].value_len);
        ck_assert(memcmp(obj->headers[i].value, test_headers[i].value, test_headers[i].value_len) == 0);
    }
    check_body(obj, body_len);
    /* all views point into the record */
    ck_assert_ptr_eq(obj->key, (const char *)obj->rec + OBJ_RECORD_FIXED_LEN);
    ck_assert_ptr_eq(obj->body + obj->body_len, obj->rec + obj->rec_len);
    ck_assert_uint_eq(obj->mem_size, obj->rec_len + sizeof(cache_obj_t) + obj->num_headers * sizeof(obj_header_t));
    ck_assert_int_eq(obj_record_validate(obj->rec, obj->rec_len), 0);
}

START_TEST(test_fixed_len)
{
    /* magic..checksum as listed in object.h */
    size_t sum = 4 + 2 + 2 + 4 + 8 + 8 + 8 + 4 * 4 + 4 * 4 + 8 + 8;
    ck_assert_uint_eq(sum, OBJ_RECORD_FIXED_LEN);
    cache_obj_t *obj = build_test_obj(0, 0);
    const uint8_t *r = obj->rec;
    ck_assert(memcmp(r, "ECR1", 4) == 0);
    ck_assert_uint_eq(r[4] | r[5] << 8, OBJ_RECORD_VERSION);
    ck_assert_uint_eq(r[6] | r[7] << 8, 203);
    ck_assert_uint_eq(r[OBJ_REC_OFF_KEY_LEN], strlen(test_key));
    size_t expect = OBJ_RECORD_FIXED_LEN + strlen(test_key) + strlen(test_skeys) + strlen(test_vary);
    /* version 2: content-type, etag and cache-control are in the table of names (a 1-byte
     * code), x-empty is not (a 1-byte code and its 7 bytes); each value length is 1 byte */
    for (size_t i = 0; i < TEST_NUM_HEADERS; i++)
        expect += 1 + (i == 2 ? test_headers[i].name_len : 0) + 1 + test_headers[i].value_len;
    ck_assert_uint_eq(obj->rec_len, expect);
    const uint8_t *h = r + OBJ_RECORD_FIXED_LEN + strlen(test_key) + strlen(test_skeys) + strlen(test_vary);
    ck_assert_uint_eq(h[0] & 1, 1); /* content-type: a table index */
    ck_assert_uint_eq(h[1], 24);
    h += 2 + 24 + 2 + 5;
    ck_assert_uint_eq(h[0], 7 * 2); /* x-empty: a literal name of 7 bytes, lower-cased */
    ck_assert(memcmp(h + 1, "x-empty", 7) == 0);
    obj_unref(&obj);
}
END_TEST

START_TEST(test_round_trip)
{
    size_t sizes[] = {0, 1, 777, 100000};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        cache_obj_t *obj = build_test_obj(sizes[s], s == 2 ? 1u << 20 : sizes[s] / 3);
        check_test_obj(obj, sizes[s]);

        uint8_t vh[CACHE_HASH_LEN];
        obj_variant_hash(test_key, strlen(test_key), test_vary, strlen(test_vary), vh);
        ck_assert(memcmp(obj->hash, vh, CACHE_HASH_LEN) == 0);

        /* decode from a copy that is freed before the object is used */
        uint8_t *copy = malloc(obj->rec_len);
        memcpy(copy, obj->rec, obj->rec_len);
        uint8_t h[CACHE_HASH_LEN];
        memset(h, 0xa5, sizeof(h));
        int err = 12345;
        cache_obj_t *dec = obj_decode(h, copy, obj->rec_len, &err);
        free(copy);
        ck_assert_ptr_nonnull(dec);
        ck_assert_int_eq(err, 0);
        check_test_obj(dec, sizes[s]);
        ck_assert(memcmp(dec->hash, h, CACHE_HASH_LEN) == 0);
        ck_assert_uint_eq(dec->rec_len, obj->rec_len);
        ck_assert(memcmp(dec->rec, obj->rec, obj->rec_len) == 0);
        ck_assert_ptr_ne(dec->rec, obj->rec);
        obj_unref(&dec);
        ck_assert_ptr_null(dec);
        obj_unref(&obj);
    }
}
END_TEST

START_TEST(test_empty_object)
{
    obj_meta_t m = {0};
    obj_builder_t *b = obj_builder_begin(&m, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0);
    cache_obj_t *obj = obj_builder_finish(b);
    ck_assert_uint_eq(obj->rec_len, OBJ_RECORD_FIXED_LEN);
    ck_assert_uint_eq(obj->key_len + obj->skeys_len + obj->vary_len + obj->num_headers, 0);
    ck_assert_uint_eq(obj->body_len, 0);
    uint8_t kh[CACHE_HASH_LEN];
    obj_key_hash("", 0, kh);
    ck_assert(memcmp(obj->hash, kh, CACHE_HASH_LEN) == 0);
    int err = 1;
    cache_obj_t *dec = obj_decode(kh, obj->rec, obj->rec_len, &err);
    ck_assert_ptr_nonnull(dec);
    ck_assert_int_eq(err, 0);
    ck_assert_uint_eq(dec->mem_size, OBJ_RECORD_FIXED_LEN + sizeof(cache_obj_t));
    obj_unref(&dec);
    obj_unref(&obj);
}
END_TEST

START_TEST(test_headers_lower_and_find)
{
    cache_obj_t *obj = build_test_obj(10, 10);
    const obj_header_t *h = obj_find_header(obj, "etag", 4);
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(h->value_len, 5);
    ck_assert(memcmp(h->value, "\"abc\"", 5) == 0);
    ck_assert_ptr_eq(obj_find_header(obj, "content-type", 12), &obj->headers[0]);
    ck_assert_ptr_eq(obj_find_header(obj, "Content-Type", 12), &obj->headers[0]);
    ck_assert_ptr_eq(obj_find_header(obj, "x-empty", 7), &obj->headers[2]);
    ck_assert_ptr_null(obj_find_header(obj, "content-typ", 11));
    ck_assert_ptr_null(obj_find_header(obj, "content-types", 13));
    ck_assert_ptr_null(obj_find_header(obj, "vary", 4));
    /* the builder did not modify the caller's headers */
    ck_assert(memcmp(test_headers[0].name, "Content-Type", 12) == 0);
    obj_unref(&obj);
}
END_TEST

/* The header section of obj's record: the bytes between the vary key and the body. */
static const uint8_t *header_bytes(const cache_obj_t *obj, size_t *len)
{
    size_t off = OBJ_RECORD_FIXED_LEN + obj->key_len + obj->skeys_len + obj->vary_len;
    *len = obj->rec_len - (size_t)obj->body_len - off;
    return obj->rec + off;
}

/*
 * A response with many headers (more than the builder keeps the table index of between
 * its two passes: 64), names of the table in any case, names that are not (some a prefix
 * or an extension of one), values whose length takes one varint byte or two: each header
 * is encoded exactly as alone in a record (the concatenation of the one-header records'
 * sections is the many-header record's section), the record decodes back to the same
 * headers, and obj_header_record_len adds up to its header section.
 */
START_TEST(test_many_headers_byte_exact)
{
    static const char *const names[] = {"Content-Type", "X-Custom", "ETAG",   "content-typ", "Vary",   "x-powered-BY",
                                        "etags",        "Age",      "X-Long", "via",         "Server", "x-request-id"};
    enum { N = 150 };
    obj_header_t hs[N];
    char values[N][300];
    for (size_t i = 0; i < N; i++) {
        size_t vlen = (i * 37) % 300; /* 0 .. 299: one varint byte below 128, two from it */
        for (size_t k = 0; k < vlen; k++)
            values[i][k] = (char)('a' + (i + k) % 26);
        const char *name = names[i % (sizeof(names) / sizeof(names[0]))];
        hs[i] = (obj_header_t){name, (uint32_t)strlen(name), values[i], (uint32_t)vlen};
    }
    cache_obj_t *obj = obj_builder_finish(obj_builder_begin(&test_meta, test_key, strlen(test_key), test_skeys,
                                                            strlen(test_skeys), test_vary, strlen(test_vary), hs, N, 0));
    ck_assert_uint_eq(obj->num_headers, N);
    size_t all_len, at = 0, sum = 0;
    const uint8_t *all = header_bytes(obj, &all_len);
    for (size_t i = 0; i < N; i++) {
        cache_obj_t *one = obj_builder_finish(obj_builder_begin(&test_meta, test_key, strlen(test_key), test_skeys,
                                                                strlen(test_skeys), test_vary, strlen(test_vary), &hs[i], 1, 0));
        size_t one_len;
        const uint8_t *bytes = header_bytes(one, &one_len);
        ck_assert_msg(at + one_len <= all_len && memcmp(all + at, bytes, one_len) == 0, "header %zu (%s) encoded otherwise", i,
                      hs[i].name);
        at += one_len;
        ck_assert_uint_eq(obj_header_record_len(OBJ_RECORD_VERSION, &obj->headers[i]), one_len);
        sum += one_len;
        obj_unref(&one);
    }
    ck_assert_uint_eq(at, all_len);
    ck_assert_uint_eq(sum, all_len);

    int err = -1;
    cache_obj_t *dec = obj_decode(obj->hash, obj->rec, obj->rec_len, &err);
    ck_assert_ptr_nonnull(dec);
    ck_assert_int_eq(err, 0);
    ck_assert_uint_eq(dec->num_headers, N);
    for (size_t i = 0; i < N; i++) {
        const obj_header_t *h = &dec->headers[i];
        ck_assert_uint_eq(h->name_len, hs[i].name_len);
        for (size_t k = 0; k < h->name_len; k++)
            ck_assert_int_eq(h->name[k], tolower((unsigned char)hs[i].name[k]));
        ck_assert_uint_eq(h->value_len, hs[i].value_len);
        ck_assert(memcmp(h->value, hs[i].value, h->value_len) == 0);
        /* the names of the table are indexes, the others bytes of the record */
        int in_table = strcmp(hs[i].name, "X-Custom") != 0 && strcmp(hs[i].name, "content-typ") != 0 &&
                       strcmp(hs[i].name, "etags") != 0 && strcmp(hs[i].name, "X-Long") != 0 &&
                       strcmp(hs[i].name, "x-request-id") != 0;
        ck_assert_int_eq(obj_header_name_indexed(h->name), in_table);
    }
    obj_unref(&dec);
    obj_unref(&obj);
}
END_TEST

START_TEST(test_every_byte_flip_rejected)
{
    cache_obj_t *obj = build_test_obj(40, 40);
    uint8_t *rec = malloc(obj->rec_len);
    uint8_t h[CACHE_HASH_LEN] = {0};
    for (size_t i = 0; i < obj->rec_len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(rec, obj->rec, obj->rec_len);
            rec[i] ^= (uint8_t)(1u << bit);
            int err = 0;
            cache_obj_t *dec = obj_decode(h, rec, obj->rec_len, &err);
            ck_assert_msg(dec == NULL, "flip of byte %zu bit %d accepted", i, bit);
            ck_assert_int_eq(err, OBJ_ECORRUPT);
            ck_assert_int_eq(obj_record_validate(rec, obj->rec_len), OBJ_ECORRUPT);
        }
        memcpy(rec, obj->rec, obj->rec_len);
        rec[i] = (uint8_t)~rec[i];
        ck_assert_int_eq(obj_record_validate(rec, obj->rec_len), OBJ_ECORRUPT);
    }
    /* the untouched copy still decodes */
    memcpy(rec, obj->rec, obj->rec_len);
    cache_obj_t *dec = obj_decode(h, rec, obj->rec_len, NULL);
    ck_assert_ptr_nonnull(dec);
    obj_unref(&dec);
    free(rec);
    obj_unref(&obj);
}
END_TEST

START_TEST(test_truncated_and_extended)
{
    cache_obj_t *obj = build_test_obj(100, 0);
    for (size_t len = 0; len < obj->rec_len; len++) {
        /* exact-size heap copy, so ASan catches any read past the end */
        uint8_t *rec = malloc(len ? len : 1);
        memcpy(rec, obj->rec, len);
        int err = 0;
        ck_assert_ptr_null(obj_decode(obj->hash, rec, len, &err));
        ck_assert_int_eq(err, OBJ_ECORRUPT);
        ck_assert_int_eq(obj_record_validate(rec, len), OBJ_ECORRUPT);
        /* even when re-sealed, the lengths do not add up */
        if (len >= OBJ_RECORD_FIXED_LEN) {
            obj_record_seal(rec, len);
            ck_assert_ptr_null(obj_decode(obj->hash, rec, len, &err));
            ck_assert_int_eq(obj_record_validate(rec, len), OBJ_ECORRUPT);
        }
        free(rec);
    }
    uint8_t *longer = malloc(obj->rec_len + 1);
    memcpy(longer, obj->rec, obj->rec_len);
    longer[obj->rec_len] = 0;
    ck_assert_int_eq(obj_record_validate(longer, obj->rec_len + 1), OBJ_ECORRUPT);
    obj_record_seal(longer, obj->rec_len + 1);
    ck_assert_int_eq(obj_record_validate(longer, obj->rec_len + 1), OBJ_ECORRUPT);
    free(longer);
    ck_assert_ptr_null(obj_decode(obj->hash, NULL, 0, NULL));
    obj_unref(&obj);
}
END_TEST

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A sealed (valid checksum) copy of obj's record with a 32-bit field overwritten; must be rejected. */
static void expect_rejected32(const cache_obj_t *obj, size_t off, uint32_t v)
{
    uint8_t *rec = malloc(obj->rec_len);
    memcpy(rec, obj->rec, obj->rec_len);
    put32(rec + off, v);
    obj_record_seal(rec, obj->rec_len);
    int err = 0;
    ck_assert_msg(obj_decode(obj->hash, rec, obj->rec_len, &err) == NULL, "offset %zu value %u accepted", off, v);
    ck_assert_int_eq(err, OBJ_ECORRUPT);
    ck_assert_int_eq(obj_record_validate(rec, obj->rec_len), OBJ_ECORRUPT);
    free(rec);
}

START_TEST(test_lying_lengths)
{
    cache_obj_t *obj = build_test_obj(50, 0);
    /* resealing an unmodified record keeps it valid: seal matches the builder */
    uint8_t *rec = malloc(obj->rec_len);
    memcpy(rec, obj->rec, obj->rec_len);
    obj_record_seal(rec, obj->rec_len);
    ck_assert(memcmp(rec, obj->rec, obj->rec_len) == 0);
    free(rec);

    size_t len_fields[] = {OBJ_REC_OFF_KEY_LEN, OBJ_REC_OFF_SKEYS_LEN, OBJ_REC_OFF_VARY_LEN, OBJ_REC_OFF_NUM_HEADERS};
    uint32_t values[] = {0xffffffffu, 0xfffffff8u, 0x80000000u, 0x7fffffffu, 1000, 1};
    for (size_t f = 0; f < 4; f++)
        for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            uint32_t orig = obj->rec[len_fields[f]] | (uint32_t)obj->rec[len_fields[f] + 1] << 8;
            if (values[v] != orig)
                expect_rejected32(obj, len_fields[f], values[v]);
            expect_rejected32(obj, len_fields[f], orig + values[v]);
        }
    /* the first header (content-type: code, then the value's length, 24): a name index
     * past the table, a literal name or a value longer than the record, one a byte off,
     * varints that never end or pass 32 bits */
    size_t h0 = OBJ_RECORD_FIXED_LEN + obj->key_len + obj->skeys_len + obj->vary_len;
    static const uint8_t lies[][6] = {
        {2, 81, 24},                       /* index 40: past the table */
        {2, 0xff, 0x7f},                   /* a name of 8,191 bytes */
        {1, 23},                           /* value one byte short */
        {1, 25},                           /* value one byte long */
        {1, 0x7f},                         /* value longer than what is left */
        {5, 0xff, 0xff, 0xff, 0xff, 0xff}, /* a varint that does not end within 5 bytes */
        {5, 0x98, 0x80, 0x80, 0x80, 0x10}, /* 24 + 2^32: past 32 bits */
    };
    for (size_t l = 0; l < sizeof(lies) / sizeof(lies[0]); l++) {
        uint8_t *rec2 = malloc(obj->rec_len);
        memcpy(rec2, obj->rec, obj->rec_len);
        size_t at = lies[l][0] == 1 ? h0 + 1 : h0;
        memcpy(rec2 + at, &lies[l][1], lies[l][0]);
        obj_record_seal(rec2, obj->rec_len);
        ck_assert_msg(obj_decode(obj->hash, rec2, obj->rec_len, NULL) == NULL, "lie %zu accepted", l);
        ck_assert_int_eq(obj_record_validate(rec2, obj->rec_len), OBJ_ECORRUPT);
        free(rec2);
    }
    expect_rejected32(obj, OBJ_REC_OFF_MAGIC, 0x32524345u);      /* "ECR2" */
    expect_rejected32(obj, OBJ_REC_OFF_VERSION, 3 | 203u << 16); /* version 3, same status */
    expect_rejected32(obj, OBJ_REC_OFF_VERSION, 0 | 203u << 16); /* version 0 */

    /* body_len: huge, off by one either way */
    uint64_t blens[] = {UINT64_MAX, UINT64_MAX - 49, 1ull << 63, 49, 51, 0};
    for (size_t i = 0; i < sizeof(blens) / sizeof(blens[0]); i++) {
        rec = malloc(obj->rec_len);
        memcpy(rec, obj->rec, obj->rec_len);
        put64(rec + OBJ_REC_OFF_BODY_LEN, blens[i]);
        obj_record_seal(rec, obj->rec_len);
        ck_assert_ptr_null(obj_decode(obj->hash, rec, obj->rec_len, NULL));
        free(rec);
    }

    /* a record claiming 2^32-1 headers in a short record: rejected without a huge
     * allocation; version 1 (8 bytes a header at least), then version 2 (2 bytes) */
    uint8_t small[OBJ_RECORD_FIXED_LEN + 16];
    memcpy(small, obj->rec, OBJ_RECORD_FIXED_LEN);
    small[OBJ_REC_OFF_VERSION] = 1;
    memset(small + OBJ_RECORD_FIXED_LEN, 0, 16);
    put32(small + OBJ_REC_OFF_KEY_LEN, 0);
    put32(small + OBJ_REC_OFF_SKEYS_LEN, 0);
    put32(small + OBJ_REC_OFF_VARY_LEN, 0);
    put32(small + OBJ_REC_OFF_NUM_HEADERS, 2);
    put64(small + OBJ_REC_OFF_BODY_LEN, 0);
    obj_record_seal(small, sizeof(small));
    cache_obj_t *two = obj_decode(obj->hash, small, sizeof(small), NULL);
    ck_assert_ptr_nonnull(two); /* two empty headers, sanity check of the crafted record */
    ck_assert_uint_eq(two->num_headers, 2);
    ck_assert_uint_eq(two->headers[1].name_len, 0);
    obj_unref(&two);
    put32(small + OBJ_REC_OFF_NUM_HEADERS, 0xffffffffu);
    obj_record_seal(small, sizeof(small));
    ck_assert_ptr_null(obj_decode(obj->hash, small, sizeof(small), NULL));
    put32(small + OBJ_REC_OFF_NUM_HEADERS, 3);
    obj_record_seal(small, sizeof(small));
    ck_assert_ptr_null(obj_decode(obj->hash, small, sizeof(small), NULL));
    uint8_t small2[OBJ_RECORD_FIXED_LEN + 4];
    memcpy(small2, small, OBJ_RECORD_FIXED_LEN);
    small2[OBJ_REC_OFF_VERSION] = 2;
    memset(small2 + OBJ_RECORD_FIXED_LEN, 0, 4);
    put32(small2 + OBJ_REC_OFF_NUM_HEADERS, 2);
    obj_record_seal(small2, sizeof(small2));
    two = obj_decode(obj->hash, small2, sizeof(small2), NULL);
    ck_assert_ptr_nonnull(two);
    ck_assert_uint_eq(two->num_headers, 2);
    ck_assert_uint_eq(two->headers[1].name_len, 0);
    obj_unref(&two);
    put32(small2 + OBJ_REC_OFF_NUM_HEADERS, 0xffffffffu);
    obj_record_seal(small2, sizeof(small2));
    ck_assert_ptr_null(obj_decode(obj->hash, small2, sizeof(small2), NULL));
    put32(small2 + OBJ_REC_OFF_NUM_HEADERS, 3);
    obj_record_seal(small2, sizeof(small2));
    ck_assert_ptr_null(obj_decode(obj->hash, small2, sizeof(small2), NULL));
    obj_unref(&obj);
}
END_TEST

START_TEST(test_reads_version_1)
{
    /* records written before version 2 stay readable, field for field */
    cache_obj_t *obj = build_test_obj(1000, 0);
    size_t len;
    uint8_t *v1 = unit_obj_encode_v1(obj, &len);
    ck_assert_uint_eq(len, obj->rec_len + 121 - 68); /* the same headers, 53 bytes longer in version 1 */
    ck_assert_int_eq(obj_record_validate(v1, len), 0);
    int err = -1;
    cache_obj_t *dec = obj_decode(NULL, v1, len, &err);
    ck_assert_ptr_nonnull(dec);
    ck_assert_int_eq(err, 0);
    check_test_obj(dec, 1000);
    ck_assert(memcmp(dec->hash, obj->hash, CACHE_HASH_LEN) == 0);
    /* a 304's rebuild of it writes version 2 */
    cache_obj_t *re = obj_rebuild(dec, &dec->meta, dec->headers, dec->num_headers);
    ck_assert_uint_eq(re->rec[OBJ_REC_OFF_VERSION], 2);
    ck_assert_uint_eq(re->rec_len, obj->rec_len);
    check_test_obj(re, 1000);
    obj_unref(&re);
    obj_unref(&dec);
    free(v1);
    obj_unref(&obj);
}
END_TEST

START_TEST(test_random_mutations)
{
    /* random multi-byte damage, resealed half of the time: never a crash (ASan watches) */
    cache_obj_t *obj = build_test_obj(64, 0);
    uint8_t *rec = malloc(obj->rec_len);
    srand(42);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(rec, obj->rec, obj->rec_len);
        int n = 1 + rand() % 4;
        for (int k = 0; k < n; k++) {
            size_t at = (size_t)rand() % OBJ_REC_OFF_CHECKSUM;
            if (rand() % 3 == 0 && at < OBJ_REC_OFF_BODY_LEN)
                at = OBJ_REC_OFF_KEY_LEN + 4 * (size_t)(rand() % 4) + (size_t)(rand() % 4);
            rec[at] = (uint8_t)rand();
        }
        size_t len = rand() % 4 == 0 ? (size_t)rand() % (obj->rec_len + 1) : obj->rec_len;
        if (len >= OBJ_RECORD_FIXED_LEN && rand() % 2)
            obj_record_seal(rec, len);
        int err = 0;
        cache_obj_t *dec = obj_decode(NULL, rec, len, &err);
        if (dec != NULL) {
            ck_assert_int_eq(err, 0);
            /* whatever was accepted is internally consistent */
            ck_assert_uint_le((uint64_t)OBJ_RECORD_FIXED_LEN + dec->key_len + dec->skeys_len + dec->vary_len + dec->body_len,
                              dec->rec_len);
            for (uint32_t i = 0; i < dec->num_headers; i++)
                ck_assert((const uint8_t *)dec->headers[i].value + dec->headers[i].value_len <= dec->rec + dec->rec_len);
            ck_assert_int_eq(obj_record_validate(dec->rec, dec->rec_len), 0);
            obj_unref(&dec);
        } else {
            ck_assert_int_eq(err, OBJ_ECORRUPT);
        }
    }
    free(rec);
    obj_unref(&obj);
}
END_TEST

START_TEST(test_hashes)
{
    uint8_t k1[CACHE_HASH_LEN], k2[CACHE_HASH_LEN], v1[CACHE_HASH_LEN], v2[CACHE_HASH_LEN], v3[CACHE_HASH_LEN];
    uint8_t ref[CACHE_HASH_LEN];
    obj_key_hash(test_key, strlen(test_key), k1);
    obj_key_hash(test_key, strlen(test_key), k2);
    ck_assert(memcmp(k1, k2, CACHE_HASH_LEN) == 0);
    ck_assert_int_ge(sodium_init(), 0);
    crypto_generichash(ref, CACHE_HASH_LEN, (const unsigned char *)test_key, strlen(test_key), NULL, 0);
    ck_assert(memcmp(k1, ref, CACHE_HASH_LEN) == 0);

    obj_variant_hash(test_key, strlen(test_key), test_vary, strlen(test_vary), v1);
    ck_assert(memcmp(k1, v1, CACHE_HASH_LEN) != 0);
    /* key + "\n" + vary */
    char joined[128];
    size_t jl = (size_t)snprintf(joined, sizeof(joined), "%s\n%s", test_key, test_vary);
    obj_key_hash(joined, jl, v2);
    ck_assert(memcmp(v1, v2, CACHE_HASH_LEN) == 0);
    obj_variant_hash(test_key, strlen(test_key), "", 0, v3);
    ck_assert(memcmp(k1, v3, CACHE_HASH_LEN) != 0);
    obj_key_hash("other", 5, k2);
    ck_assert(memcmp(k1, k2, CACHE_HASH_LEN) != 0);

    /* an object without vary is stored under the key hash */
    obj_builder_t *b = obj_builder_begin(&test_meta, test_key, strlen(test_key), NULL, 0, NULL, 0, NULL, 0, 0);
    cache_obj_t *obj = obj_builder_finish(b);
    ck_assert(memcmp(obj->hash, k1, CACHE_HASH_LEN) == 0);
    /* decode without a hash computes the same one */
    cache_obj_t *dec = obj_decode(NULL, obj->rec, obj->rec_len, NULL);
    ck_assert(memcmp(dec->hash, k1, CACHE_HASH_LEN) == 0);
    obj_unref(&dec);
    obj_unref(&obj);
}
END_TEST

START_TEST(test_now_ms)
{
    int64_t a = now_wall_ms();
    int64_t t = (int64_t)time(NULL) * 1000;
    ck_assert_int_le(a > t ? a - t : t - a, 2000);
    ck_assert_int_le(a, now_wall_ms());
}
END_TEST

START_TEST(test_rebuild_keeps_body)
{
    cache_obj_t *src = build_test_obj(5000, 0);
    obj_meta_t m = test_meta;
    m.status = 200;
    m.ttl = 300;
    m.flags = 0;
    m.response_time_ms += 1000;
    obj_header_t hs[] = {{"ETag", 4, "\"def\"", 5}, {"Age", 3, "0", 1}};
    cache_obj_t *nu = obj_rebuild(src, &m, hs, 2);
    ck_assert_ptr_ne(nu, src);
    ck_assert_ptr_ne(nu->rec, src->rec);
    check_meta_eq(&nu->meta, &m);
    ck_assert_uint_eq(atomic_load(&nu->flags), 0);
    ck_assert(memcmp(nu->hash, src->hash, CACHE_HASH_LEN) == 0);
    ck_assert_uint_eq(nu->key_len, src->key_len);
    ck_assert(memcmp(nu->key, src->key, src->key_len) == 0);
    ck_assert(memcmp(nu->skeys, src->skeys, src->skeys_len) == 0);
    ck_assert(memcmp(nu->vary, src->vary, src->vary_len) == 0);
    ck_assert_uint_eq(nu->num_headers, 2);
    ck_assert(memcmp(nu->headers[0].name, "etag", 4) == 0);
    ck_assert(memcmp(obj_find_header(nu, "age", 3)->value, "0", 1) == 0);
    check_body(nu, 5000);
    ck_assert_int_eq(obj_record_validate(nu->rec, nu->rec_len), 0);
    /* the source is unchanged */
    check_test_obj(src, 5000);
    obj_unref(&src);
    /* the rebuilt object does not depend on the source */
    check_body(nu, 5000);
    obj_unref(&nu);
}
END_TEST

START_TEST(test_refcount)
{
    cache_obj_t *obj = build_test_obj(1, 0);
    cache_obj_t *r = obj_ref(obj);
    ck_assert_ptr_eq(r, obj);
    ck_assert_uint_eq(refs(obj), 2);
    obj_unref(&r);
    ck_assert_ptr_null(r);
    ck_assert_uint_eq(obj->magic, OBJ_MAGIC);
    ck_assert_uint_eq(refs(obj), 1);
    obj_unref(&obj);
    ck_assert_ptr_null(obj);
    obj_unref(&obj); /* NULL is fine */
}
END_TEST

START_TEST(test_discard_and_big_hint)
{
    obj_builder_t *b = obj_builder_begin(&test_meta, "k", 1, NULL, 0, NULL, 0, test_headers, 2, 12);
    obj_builder_append(b, "hello", 5);
    obj_builder_discard(b);
    obj_builder_discard(NULL);
    /* an absurd Content-Length hint is not allocated up front */
    b = obj_builder_begin(&test_meta, "k", 1, NULL, 0, NULL, 0, NULL, 0, (size_t)1 << 50);
    obj_builder_append(b, "x", 1);
    cache_obj_t *obj = obj_builder_finish(b);
    ck_assert_uint_eq(obj->body_len, 1);
    ck_assert_uint_eq(obj->rec_len, OBJ_RECORD_FIXED_LEN + 2);
    obj_unref(&obj);
}
END_TEST

static Suite *object_suite(void)
{
    Suite *s = suite_create("object");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fixed_len);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_empty_object);
    tcase_add_test(tc, test_headers_lower_and_find);
    tcase_add_test(tc, test_many_headers_byte_exact);
    tcase_add_test(tc, test_every_byte_flip_rejected);
    tcase_add_test(tc, test_truncated_and_extended);
    tcase_add_test(tc, test_lying_lengths);
    tcase_add_test(tc, test_reads_version_1);
    tcase_add_test(tc, test_random_mutations);
    tcase_add_test(tc, test_hashes);
    tcase_add_test(tc, test_now_ms);
    tcase_add_test(tc, test_rebuild_keeps_body);
    tcase_add_test(tc, test_refcount);
    tcase_add_test(tc, test_discard_and_big_hint);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(object_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

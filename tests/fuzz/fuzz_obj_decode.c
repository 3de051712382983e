/*
 * tests/fuzz/fuzz_obj_decode.c — the LMDB record decoder (obj_decode, obj_record_validate).
 *
 * Each input is tried twice: as it is (nearly always a checksum failure, which must be
 * reported as OBJ_ECORRUPT by both functions alike), and with its checksum recomputed
 * (obj_record_seal), so that mutated lengths reach the structural checks behind it.
 *
 * Invariants for a record that decodes: every decoded pointer lies inside the object's
 * own copy of the record (or, for a version 2 header name given by index, is an entry of
 * the table of names); the parts add up to the record's length; every header can be
 * found by name; and encoding the decoded fields again with obj_builder_* gives a record
 * that decodes to the same fields (byte-identical when it was a version 2 record whose
 * names were already lower-case and given by index where the table has them, as the
 * builder writes them; no longer otherwise).
 */
#include <string.h>
#include "storage/object.h"
#include "storage/object_int.h"
#include "tests/fuzz/fuzz.h"

static int inside(const cache_obj_t *o, const void *p, uint64_t len)
{
    const uint8_t *b = p;
    return b >= o->rec && len <= o->rec_len && (size_t)(b - o->rec) <= o->rec_len - len;
}

static void check_object(const cache_obj_t *o, const uint8_t *rec, size_t rec_len)
{
    FUZZ_CHECK(o->magic == OBJ_MAGIC);
    FUZZ_CHECK(o->rec_len == rec_len && memcmp(o->rec, rec, rec_len) == 0);
    FUZZ_CHECK(inside(o, o->key, o->key_len));
    FUZZ_CHECK(inside(o, o->skeys, o->skeys_len));
    FUZZ_CHECK(inside(o, o->vary, o->vary_len));
    FUZZ_CHECK(inside(o, o->body, o->body_len));
    uint64_t total = OBJ_RECORD_FIXED_LEN + (uint64_t)o->key_len + o->skeys_len + o->vary_len + o->body_len;
    for (uint32_t i = 0; i < o->num_headers; i++) {
        const obj_header_t *h = &o->headers[i];
        FUZZ_CHECK(inside(o, h->name, h->name_len) || (o->rec[OBJ_REC_OFF_VERSION] == 2 && obj_header_name_indexed(h->name)));
        FUZZ_CHECK(inside(o, h->value, h->value_len));
        total += obj_header_record_len(o->rec[OBJ_REC_OFF_VERSION], h);
    }
    FUZZ_CHECK(total == rec_len);
    FUZZ_CHECK(o->body + o->body_len == o->rec + o->rec_len);
    /* obj_find_header finds every lower-case name (the builder writes only those; a record
     * with capitals is not one we wrote, and its headers need not be found) */
    for (uint32_t i = 0; i < o->num_headers && i < 64; i++) {
        const obj_header_t *h = &o->headers[i];
        int lower = 1;
        for (uint32_t k = 0; k < h->name_len; k++)
            lower &= !(h->name[k] >= 'A' && h->name[k] <= 'Z');
        if (!lower)
            continue;
        const obj_header_t *found = obj_find_header(o, h->name, h->name_len);
        FUZZ_CHECK(found != NULL && found->name_len == h->name_len && memcmp(found->name, h->name, h->name_len) == 0);
    }
}

static void check_roundtrip(cache_obj_t *o)
{
    int lower = 1;
    for (uint32_t i = 0; i < o->num_headers; i++)
        for (uint32_t k = 0; k < o->headers[i].name_len; k++)
            if (o->headers[i].name[k] >= 'A' && o->headers[i].name[k] <= 'Z')
                lower = 0;
    obj_builder_t *b = obj_builder_begin(&o->meta, o->key, o->key_len, o->skeys, o->skeys_len, o->vary, o->vary_len,
                                         o->headers, o->num_headers, (size_t)o->body_len);
    obj_builder_append(b, o->body, (size_t)o->body_len);
    cache_obj_t *again = obj_builder_finish(b);
    int err = 1;
    cache_obj_t *decoded = obj_decode(NULL, again->rec, again->rec_len, &err);
    FUZZ_CHECK(decoded != NULL && err == 0);
    FUZZ_CHECK(decoded->num_headers == o->num_headers);
    /* the builder writes version 2, a table name by index: a version 1 record, or a name of
     * the table spelled out, comes back shorter; anything else byte for byte */
    int same_form = o->rec[OBJ_REC_OFF_VERSION] == 2;
    for (uint32_t i = 0; i < o->num_headers; i++) {
        const obj_header_t *h = &o->headers[i], *d = &decoded->headers[i];
        FUZZ_CHECK(d->name_len == h->name_len && d->value_len == h->value_len);
        FUZZ_CHECK(memcmp(d->value, h->value, h->value_len) == 0);
        for (uint32_t k = 0; k < h->name_len; k++)
            FUZZ_CHECK(d->name[k] == (h->name[k] >= 'A' && h->name[k] <= 'Z' ? h->name[k] + 32 : h->name[k]));
        same_form &= obj_header_name_indexed(h->name) == obj_header_name_indexed(d->name);
    }
    FUZZ_CHECK(same_form ? again->rec_len == o->rec_len : again->rec_len <= o->rec_len);
    if (same_form && lower)
        FUZZ_CHECK(memcmp(again->rec, o->rec, o->rec_len) == 0);
    FUZZ_CHECK(memcmp(decoded->hash, again->hash, CACHE_HASH_LEN) == 0);
    FUZZ_CHECK(decoded->body_len == o->body_len && memcmp(decoded->body, o->body, (size_t)o->body_len) == 0);
    obj_unref(&decoded);
    obj_unref(&again);
    FUZZ_CHECK(again == NULL);
}

static void try_record(const uint8_t *rec, size_t len)
{
    static const uint8_t hash[CACHE_HASH_LEN] = {1, 2, 3};
    int err = 12345;
    int valid = obj_record_validate(rec, len);
    cache_obj_t *o = obj_decode(hash, rec, len, &err);
    FUZZ_CHECK(valid == 0 || valid == OBJ_ECORRUPT);
    FUZZ_CHECK((o != NULL) == (valid == 0));
    FUZZ_CHECK(o != NULL ? err == 0 : err == OBJ_ECORRUPT);
    if (o == NULL)
        return;
    FUZZ_CHECK(memcmp(o->hash, hash, CACHE_HASH_LEN) == 0);
    check_object(o, rec, len);
    check_roundtrip(o);
    obj_unref(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_record(data, size);
    if (size >= OBJ_RECORD_FIXED_LEN) {
        uint8_t *copy = malloc(size);
        if (copy == NULL)
            abort();
        memcpy(copy, data, size);
        obj_record_seal(copy, size);
        try_record(copy, size);
        free(copy);
    }
    return 0;
}

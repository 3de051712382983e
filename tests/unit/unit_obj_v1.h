/*
 * tests/unit/unit_obj_v1.h — an object's record as version 1 of the format wrote it (u32
 * lengths, header names spelled out), for the suites that check that records written
 * before version 2 are still read. Header-only: static functions, one copy per suite.
 */
#ifndef EDGECACHE_UNIT_OBJ_V1_H
#define EDGECACHE_UNIT_OBJ_V1_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "storage/object.h"
#include "storage/object_int.h"

/* obj's record re-encoded in version 1 and sealed (malloc'd, the caller frees it; *len its size) */
static inline uint8_t *unit_obj_encode_v1(const cache_obj_t *obj, size_t *len)
{
    size_t n = OBJ_RECORD_FIXED_LEN + obj->key_len + obj->skeys_len + obj->vary_len + obj->body_len;
    for (uint32_t i = 0; i < obj->num_headers; i++)
        n += 8 + obj->headers[i].name_len + obj->headers[i].value_len;
    uint8_t *rec = malloc(n), *p = rec + OBJ_RECORD_FIXED_LEN;
    memcpy(rec, obj->rec, OBJ_RECORD_FIXED_LEN);
    rec[OBJ_REC_OFF_VERSION] = 1;
    memcpy(p, obj->key, obj->key_len);
    p += obj->key_len;
    memcpy(p, obj->skeys, obj->skeys_len);
    p += obj->skeys_len;
    memcpy(p, obj->vary, obj->vary_len);
    p += obj->vary_len;
    for (uint32_t i = 0; i < obj->num_headers; i++) {
        const obj_header_t *h = &obj->headers[i];
        for (int k = 0; k < 4; k++) {
            p[k] = (uint8_t)(h->name_len >> (8 * k));
            p[4 + k] = (uint8_t)(h->value_len >> (8 * k));
        }
        memcpy(p + 8, h->name, h->name_len);
        memcpy(p + 8 + h->name_len, h->value, h->value_len);
        p += 8 + h->name_len + h->value_len;
    }
    memcpy(p, obj->body, obj->body_len);
    obj_record_seal(rec, n);
    *len = n;
    return rec;
}

#endif

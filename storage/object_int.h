/*
 * storage/object_int.h — internals of storage/object.c shared only with its unit
 * test and fuzz targets (not part of the public interface; modules use object.h).
 */
#ifndef EDGECACHE_OBJECT_INT_H
#define EDGECACHE_OBJECT_INT_H

#include <stddef.h>
#include "storage/object.h"

/* byte offsets of the fixed prefix (see the layout in object.h) */
#define OBJ_REC_OFF_MAGIC 0
#define OBJ_REC_OFF_VERSION 4
#define OBJ_REC_OFF_STATUS 6
#define OBJ_REC_OFF_FLAGS 8
#define OBJ_REC_OFF_GENERATION 12
#define OBJ_REC_OFF_REQUEST_TIME 20
#define OBJ_REC_OFF_RESPONSE_TIME 28
#define OBJ_REC_OFF_INITIAL_AGE 36
#define OBJ_REC_OFF_TTL 40
#define OBJ_REC_OFF_SWR 44
#define OBJ_REC_OFF_SIE 48
#define OBJ_REC_OFF_KEY_LEN 52
#define OBJ_REC_OFF_SKEYS_LEN 56
#define OBJ_REC_OFF_VARY_LEN 60
#define OBJ_REC_OFF_NUM_HEADERS 64
#define OBJ_REC_OFF_BODY_LEN 68
#define OBJ_REC_OFF_CHECKSUM 76

/**
 * Recompute the checksum of a record in place (rec_len >= OBJ_RECORD_FIXED_LEN).
 * For tests and fuzz drivers that need a record with a valid checksum but
 * malformed lengths, so that the structural checks themselves are exercised.
 */
void obj_record_seal(void *rec, size_t rec_len);

/** 1 when a decoded header's name is an entry of the table of common names (version 2), not bytes of the record. */
int obj_header_name_indexed(const char *name);

/** The bytes a decoded header takes in a record of `version` (1 or 2), for checks that the parts add up. */
size_t obj_header_record_len(unsigned version, const obj_header_t *h);

#endif

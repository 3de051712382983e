/*
 * server/h2_frames.h — how many bytes of request bodies a client's HTTP/2 input carries,
 * read from the frames' own headers (RFC 9113 4.1, 6.1), for server/inflow.c.
 *
 * Nothing here checks a frame beyond its length: h2o's own parser refuses what is not
 * valid (a frame longer than its SETTINGS allow, padding longer than its payload) and
 * closes the connection, after which these figures no longer matter.
 */
#ifndef EDGECACHE_H2_FRAMES_H
#define EDGECACHE_H2_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#define H2_FRAMES_PREFACE_LEN 24 /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */

typedef enum h2_frames_start {
    H2_FRAMES_START_OTHER,   /* in does not start the client preface */
    H2_FRAMES_START_PARTIAL, /* in is a strict prefix of it: more bytes decide */
    H2_FRAMES_START_PREFACE, /* in starts with the whole preface */
} h2_frames_start_t;

/** How in's len bytes start, against the HTTP/2 client connection preface. */
h2_frames_start_t h2_frames_preface(const uint8_t *in, size_t len);

/** The request-body bytes that the complete frames at the start of in carry: the payloads of
 * its DATA frames, less their padding (a PADDED frame's pad length byte and pad bytes). A
 * frame cut short by the end of in counts nothing (it is counted once whole). in must start
 * at a frame's first byte. */
uint64_t h2_frames_data_bytes(const uint8_t *in, size_t len);

#endif

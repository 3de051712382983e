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

#define H2_FRAMES_TYPE_DATA 0x0
#define H2_FRAMES_TYPE_HEADERS 0x1
#define H2_FRAMES_TYPE_RST_STREAM 0x3
#define H2_FRAMES_FLAG_END_STREAM 0x1
#define H2_FRAMES_MAX_PARTIAL (H2_FRAMES_PREFACE_LEN + 9 + 16384) /* the preface, then a frame cut short */

/* one whole frame, as its header says */
typedef struct h2_frame {
    uint8_t type, flags;
    uint32_t stream_id; /* without the reserved bit */
    size_t size;        /* header and payload: where the next frame starts */
    uint64_t body;      /* a DATA frame's request-body bytes: its payload less padding; 0 for other frames */
} h2_frame_t;

/** How in's len bytes start, against the HTTP/2 client connection preface. */
h2_frames_start_t h2_frames_preface(const uint8_t *in, size_t len);

/** The frame at the start of in: 1 with *f filled when in holds all of it, 0 when it holds
 * less (its header or payload cut short). in must start at a frame's first byte. */
int h2_frames_next(const uint8_t *in, size_t len, h2_frame_t *f);

/** The request-body bytes that the complete frames at the start of in carry: the payloads of
 * its DATA frames, less their padding (a PADDED frame's pad length byte and pad bytes). A
 * frame cut short by the end of in counts nothing (it is counted once whole). in must start
 * at a frame's first byte. */
uint64_t h2_frames_data_bytes(const uint8_t *in, size_t len);

#endif

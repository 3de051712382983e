/*
 * server/h2_frames.c — request-body bytes in HTTP/2 input (see server/h2_frames.h).
 *
 * Pure functions over bytes; any thread.
 */
#include <string.h>
#include "server/h2_frames.h"

#define FRAME_HEADER_LEN 9
#define FRAME_TYPE_DATA 0x0
#define FRAME_FLAG_PADDED 0x8

static const char preface[H2_FRAMES_PREFACE_LEN + 1] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

h2_frames_start_t h2_frames_preface(const uint8_t *in, size_t len)
{
    if (len >= H2_FRAMES_PREFACE_LEN)
        return memcmp(in, preface, H2_FRAMES_PREFACE_LEN) == 0 ? H2_FRAMES_START_PREFACE : H2_FRAMES_START_OTHER;
    return memcmp(in, preface, len) == 0 ? H2_FRAMES_START_PARTIAL : H2_FRAMES_START_OTHER;
}

int h2_frames_next(const uint8_t *in, size_t len, h2_frame_t *f)
{
    if (len < FRAME_HEADER_LEN)
        return 0;
    size_t payload = (size_t)in[0] << 16 | (size_t)in[1] << 8 | in[2];
    if (len - FRAME_HEADER_LEN < payload)
        return 0; /* cut short: h2o waits for the rest too */
    f->type = in[3];
    f->flags = in[4];
    f->stream_id = ((uint32_t)in[5] << 24 | (uint32_t)in[6] << 16 | (uint32_t)in[7] << 8 | in[8]) & 0x7fffffffu;
    f->size = FRAME_HEADER_LEN + payload;
    f->body = 0;
    if (f->type == FRAME_TYPE_DATA) {
        if ((f->flags & FRAME_FLAG_PADDED) == 0)
            f->body = payload;
        else if (payload != 0 && in[FRAME_HEADER_LEN] < payload) /* else more padding than payload: h2o refuses it */
            f->body = payload - 1 - in[FRAME_HEADER_LEN];
    }
    return 1;
}

uint64_t h2_frames_data_bytes(const uint8_t *in, size_t len)
{
    uint64_t data = 0;
    h2_frame_t f;
    for (size_t at = 0; h2_frames_next(in + at, len - at, &f); at += f.size)
        data += f.body;
    return data;
}

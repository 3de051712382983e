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

uint64_t h2_frames_data_bytes(const uint8_t *in, size_t len)
{
    uint64_t data = 0;
    size_t at = 0;
    while (len - at >= FRAME_HEADER_LEN) {
        const uint8_t *h = in + at;
        size_t payload = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        if (len - at - FRAME_HEADER_LEN < payload)
            break; /* cut short: h2o waits for the rest too */
        if (h[3] == FRAME_TYPE_DATA) {
            if ((h[4] & FRAME_FLAG_PADDED) == 0)
                data += payload;
            else if (payload != 0 && h[FRAME_HEADER_LEN] < payload) /* else more padding than payload: h2o refuses it */
                data += payload - 1 - h[FRAME_HEADER_LEN];
        }
        at += FRAME_HEADER_LEN + payload;
    }
    return data;
}

/*
 * tests/fuzz/fuzz_h2_frames.c — the request-body bytes of a client's HTTP/2 input
 * (server/h2_frames.c), which server/inflow.c reads from every HTTP/2 connection's input
 * buffer before h2o parses it.
 *
 * Input: the bytes of an input buffer, starting at a frame (or at the client preface).
 *
 * Invariants: it reads no byte past the input (ASan); it counts no more than the input holds;
 * it agrees with a second reading written here (frame by frame, each whole frame's DATA payload
 * less its padding, padding that does not fit counting nothing); a shorter input never counts
 * more, and the count of the whole input is that of its first complete frame plus that of the
 * rest (what h2o leaves after consuming it). h2_frames_next reads the first frame as the second
 * reading does, and no stream id has the reserved bit. The preface test agrees with memcmp.
 */
#include <string.h>
#include "server/h2_frames.h"
#include "tests/fuzz/fuzz.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* the second reading: one frame at p, whole within `left`; its body bytes, and its size in *size */
static uint64_t one_frame(const uint8_t *p, size_t left, size_t *size)
{
    if (left < 9)
        return *size = 0, 0;
    size_t payload = ((size_t)p[0] << 16) + ((size_t)p[1] << 8) + (size_t)p[2];
    if (payload > left - 9)
        return *size = 0, 0;
    *size = 9 + payload;
    if (p[3] != 0)
        return 0;
    if (!(p[4] & 0x8))
        return payload;
    if (payload == 0)
        return 0;
    size_t pad = p[9];
    return pad + 1 <= payload ? payload - 1 - pad : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    h2_frames_start_t start = h2_frames_preface(data, size);
    size_t cmp = size < 24 ? size : 24;
    int same = memcmp(data, preface, cmp) == 0;
    FUZZ_CHECK(start == (!same ? H2_FRAMES_START_OTHER : size < 24 ? H2_FRAMES_START_PARTIAL : H2_FRAMES_START_PREFACE));

    uint64_t got = h2_frames_data_bytes(data, size);
    FUZZ_CHECK(got <= size);
    uint64_t want = 0;
    size_t at = 0, n;
    for (;;) {
        uint64_t body = one_frame(data + at, size - at, &n);
        if (n == 0)
            break;
        want += body;
        at += n;
    }
    FUZZ_CHECK(got == want);
    FUZZ_CHECK(h2_frames_data_bytes(data, size / 2) <= got);
    uint64_t first = one_frame(data, size, &n);
    if (n != 0)
        FUZZ_CHECK(got == first + h2_frames_data_bytes(data + n, size - n));
    h2_frame_t f;
    int whole = h2_frames_next(data, size, &f);
    FUZZ_CHECK(whole == (n != 0));
    if (whole) {
        FUZZ_CHECK(f.size == n && f.body == first && f.type == data[3] && f.flags == data[4]);
        FUZZ_CHECK((f.stream_id & 0x80000000u) == 0);
    }
    return 0;
}

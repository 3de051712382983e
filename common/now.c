/*
 * common/now.c — the process's clocks.
 *
 * Two clocks and no more: CLOCK_MONOTONIC for anything measured (it never jumps back when
 * the wall clock is set), CLOCK_REALTIME for anything stored or shown (record timestamps,
 * Date-derived ages). Any thread; no state.
 */
#include "common/now.h"
#include <time.h>

int64_t now_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t now_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * common/now.h — the clocks: monotonic for durations and deadlines, wall for timestamps.
 */
#ifndef COMMON_NOW_H
#define COMMON_NOW_H

#include <stdint.h>

/** CLOCK_MONOTONIC in microseconds and milliseconds: durations, timeouts, deadlines. */
int64_t now_mono_us(void);
int64_t now_mono_ms(void);

/** CLOCK_REALTIME in milliseconds since the epoch: what a record or a log line stores. */
int64_t now_wall_ms(void);

#endif

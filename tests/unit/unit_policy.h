/*
 * tests/unit/unit_policy.h — what the cache policy's suites (test_policy_cc.c,
 * test_policy_dates.c, test_policy_decide.c) share: T0, the instant of RFC 9110's example
 * date, and CAP, the largest delta-seconds a cache must accept (RFC 9111 1.2.2), which every
 * larger value is capped to.
 */
#ifndef EDGECACHE_UNIT_POLICY_H
#define EDGECACHE_UNIT_POLICY_H

#include <stdint.h>

#define T0 ((int64_t)784111777) /* Sun, 06 Nov 1994 08:49:37 GMT */
#define CAP 2147483648u         /* RFC 9111 1.2.2 */

#endif

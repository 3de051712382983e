/*
 * tests/fuzz/fuzz.h — what every fuzz target shares: the libFuzzer entry point (so the
 * targets compile with -Wmissing-prototypes) and FUZZ_CHECK, which turns a broken
 * invariant into an abort that libFuzzer and the replay driver both report as a crash.
 *
 * A target is one file tests/fuzz/fuzz_<name>.c defining LLVMFuzzerTestOneInput; it is
 * linked either with libFuzzer (clang -fsanitize=fuzzer, `make fuzz`) or with
 * tests/fuzz/replay_main.c (gcc + ASan/UBSan, `make fuzz-replay`), which feeds it every
 * file of tests/fuzz/corpus/<name>/.
 */
#ifndef EDGECACHE_FUZZ_H
#define EDGECACHE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/** One input; the bytes are borrowed for the call only. Always returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/** Abort (a "crash" for the fuzzer) when an invariant of the code under test does not hold. */
#define FUZZ_CHECK(cond)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "fuzz: invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

#endif

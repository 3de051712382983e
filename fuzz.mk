# fuzz.mk — the fuzz targets of tests/fuzz/ (included by the Makefile after its own variables).
#
#   make fuzz-replay            replay every committed seed corpus (gcc + ASan/UBSan, seconds);
#                               part of `make test`
#   make fuzz FUZZ_TIME=60      build the targets with clang's libFuzzer and run each for
#                               FUZZ_TIME seconds (FUZZ_TARGETS="cc_parse obj_decode" for some)
#
# Both reuse the Makefile's object rule through a sub-make with their own BUILD: the replay
# build shares build/asan's objects (same flags as `make test-sanitize`), the libFuzzer build
# lives in build/fuzz. A target is tests/fuzz/fuzz_<name>.c with its corpus in
# tests/fuzz/corpus/<name>/; tests/fuzz/run does the replaying and the fuzzing.
# The sub-makes read `-f Makefile -f fuzz.mk`, so this file works included or not; the guard
# keeps a second reading from redefining anything.

ifndef EDGECACHE_FUZZ_MK
EDGECACHE_FUZZ_MK := 1

FUZZ_ALL          = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS     ?= $(FUZZ_ALL)
FUZZ_TIME        ?= 60
FUZZ_CC          ?= clang
FUZZ_BUILD       ?= build/fuzz
FUZZ_REPLAY_BUILD ?= build/asan
FUZZ_REPLAY_SAN   = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SRC_DEPS     = tests/fuzz/fuzz.h $(LIB_OBJ) $(HDRS)

.PHONY: fuzz-replay fuzz fuzz-replay-bins fuzz-bins

fuzz-replay:
	@$(MAKE) --no-print-directory -f Makefile -f fuzz.mk BUILD=$(FUZZ_REPLAY_BUILD) OPT=-O1 SANITIZE="$(FUZZ_REPLAY_SAN)" fuzz-replay-bins
	@tests/fuzz/run replay $(FUZZ_REPLAY_BUILD) $(FUZZ_ALL)

fuzz:
	@tests/fuzz/run fuzz $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_TARGETS)

# the binaries, in whatever BUILD the sub-make was given
fuzz-replay-bins: $(FUZZ_ALL:%=$(BUILD)/fuzz/replay_%)

fuzz-bins: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)

$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c $(FUZZ_SRC_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ tests/fuzz/fuzz_$*.c tests/fuzz/replay_main.c $(LIB_OBJ) $(LDFLAGS) $(LIBS)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRC_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LDFLAGS) -fsanitize=fuzzer $(LIBS)

endif

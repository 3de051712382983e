# edgecache — plain Makefile. The two commands a newcomer needs:
#   make run    install missing Debian packages, build, start a demo origin + edgecache
#   make run-cluster   the same as a cache network: 3 NATS servers, a shield and 3 edges (scripts/cluster-demo)
#   make test   install, build, run every test (normal build, then ASan+UBSan build)

BUILD    ?= build
CC       ?= cc
OPT      ?= -O2
SANITIZE ?=
WARN      = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
CFLAGS   += -std=c11 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 $(OPT) -g $(WARN) -I. -pthread $(SANITIZE)
# each object records the headers it includes (BUILD/obj/x.d), so a header change rebuilds only those
DEPFLAGS  = -MMD -MP
LDFLAGS  += -pthread $(SANITIZE)
LIBS      = -lh2o-evloop -lssl -lcrypto -lz -llmdb -ljansson -lsodium -lnats -lm
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt)

# every .c in the modules is part of the program; main.c only of the binary
LIB_SRC  = $(filter-out server/main.c,$(wildcard common/*.c server/*.c storage/*.c migrations/*.c admin-api/*.c cluster/*.c))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ = $(BUILD)/obj/server/main.o
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
HDRS     = $(wildcard common/*.h server/*.h storage/*.h migrations/*.h admin-api/*.h cluster/*.h tests/unit/*.h)

.PHONY: all deps run run-cluster test test-unit test-integration test-sanitize unit-bins clean bench fuzz format format-check lint

all: $(BUILD)/edgecache

deps:
	@scripts/install-deps

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# the dashboard's page, script and style are files of admin-api/, compiled in as C arrays
DASHBOARD_ASSETS = admin-api/dashboard.html admin-api/dashboard.js admin-api/dashboard.css
$(BUILD)/gen/dashboard_assets.h: $(DASHBOARD_ASSETS) scripts/embed-assets
	@mkdir -p $(@D)
	scripts/embed-assets $@ $(foreach f,$(DASHBOARD_ASSETS),$(subst .,_,$(notdir $(f)))=$(f))
$(BUILD)/obj/admin-api/dashboard.o: $(BUILD)/gen/dashboard_assets.h
$(BUILD)/obj/admin-api/dashboard.o: CFLAGS += -I$(BUILD)/gen

$(BUILD)/edgecache: $(LIB_OBJ) $(MAIN_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -Wno-missing-prototypes -o $@ $< $(LIB_OBJ) $(LDFLAGS) $(LIBS) $(CHECK_LIBS)

# test_store_journal makes the purge journal's writes fail on demand (__wrap_pwrite there)
$(BUILD)/tests/test_store_journal: LDFLAGS += -Wl,--wrap=pwrite

unit-bins: $(UNIT_BIN)

run: deps $(BUILD)/edgecache
	@scripts/demo

run-cluster: deps $(BUILD)/edgecache
	@scripts/cluster-demo

# make test: both builds, every suite; tests/run-all prints "N passed, N failed" last
test: deps
	@scripts/test-all

test-unit: $(UNIT_BIN)
	@tests/run-unit $(UNIT_BIN)

test-integration: $(BUILD)/edgecache
	@python3 tests/integration/run.py --binary $(BUILD)/edgecache

# unit tests with leak detection; the server under integration tests without it: h2o 2.2
# keeps per-thread buffer caches and idle keep-alive connections alive until exit
ASAN_BUILD = $(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
test-sanitize:
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 $(ASAN_BUILD) test-unit
	@ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 $(ASAN_BUILD) test-integration

bench: deps $(BUILD)/edgecache
	@EDGECACHE_BINARY=$(BUILD)/edgecache bench/run

# what a deleted object costs LMDB by transaction size (bench/README.md)
$(BUILD)/lmdb-deletes: bench/lmdb-deletes.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< -llmdb

# the layout is .clang-format's: `make format` rewrites every C file of the project in place,
# `make format-check` changes nothing and fails naming the files `make format` would change
CLANG_FORMAT ?= clang-format
FORMAT_SRC = $(wildcard server/*.[ch] cluster/*.[ch] storage/*.[ch] migrations/*.[ch] admin-api/*.[ch] common/*.[ch] purge/*.[ch] \
	  tests/unit/*.[ch] tests/fuzz/*.[ch] bench/*.[ch])
format:
	$(CLANG_FORMAT) -i $(FORMAT_SRC)
format-check:
	@$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_SRC) 2>&1 | sed -n 's/:[0-9]*:[0-9]*: error: code should be clang-formatted.*//p' | \
	  sort -u | awk '{ print "format-check: " $$0 " would change (make format)" } END { exit NR > 0 }'

# static analysis of the program's modules: cppcheck's warnings, portability and performance
# checks, every finding an error; scripts/cppcheck.supp holds the false positives, each
# with its reason. Whole-program checks (a NULL passed across files) need the build dir.
CPPCHECK ?= cppcheck
LINT_SRC  = $(wildcard server/*.c cluster/*.c storage/*.c migrations/*.c admin-api/*.c common/*.c purge/*.c)
lint:
	@mkdir -p $(BUILD)/cppcheck
	$(CPPCHECK) --quiet --std=c11 -I. -D_GNU_SOURCE -DH2O_USE_LIBUV=0 --enable=warning,portability,performance \
	  --inline-suppr --suppressions-list=scripts/cppcheck.supp --cppcheck-build-dir=$(BUILD)/cppcheck \
	  --error-exitcode=1 -j2 --template='{file}:{line}: {severity}: {id}: {message}' $(LINT_SRC)

clean:
	rm -rf build
include fuzz.mk
-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BIN:=.d)

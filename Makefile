# Substrate build. `make` builds build/substrate; `make check` runs every test
# suite (normal and ASan+UBSan builds); `make bench` runs the benchmarks.
# SAN=1 selects the sanitizer build in build-asan/.

CC      ?= cc
PKGS    := libcurl openssl jansson yaml-0.1 libsodium libarchive zlib libseccomp
SAN     ?= 0

ifeq ($(SAN),1)
BUILD   ?= build-asan
OPT     := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDSAN   := -fsanitize=address,undefined
else
BUILD   ?= build
OPT     := -O2 -g -D_FORTIFY_SOURCE=2
LDSAN   :=
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wpointer-arith \
        -Wstrict-prototypes -Wmissing-prototypes -Wmissing-declarations -Wvla -Wundef \
        -Wnull-dereference -Wdouble-promotion -Wimplicit-fallthrough \
        -Wno-missing-field-initializers -Wno-format-nonliteral
CFLAGS_ALL := -std=gnu17 $(OPT) $(WARN) -D_GNU_SOURCE -fstack-protector-strong -fPIE \
        -Iinclude -I$(BUILD)/gen $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := -pie -Wl,-z,relro,-z,now $(LDSAN) $(LDFLAGS)

LIB_SRCS  := $(sort $(wildcard lib/*/*.c))
CLI_SRCS  := $(sort $(wildcard src/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o)
DEPS      := $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(UNIT_OBJS:.o=.d)

VERSION := $(shell cat VERSION)

.PHONY: all check check-vm test unit bench clean deps asan mutation
all: $(BUILD)/substrate $(BUILD)/unit-tests $(BUILD)/substrate-agent

$(BUILD)/gen/version.h: VERSION
	@mkdir -p $(dir $@)
	@printf '#pragma once\n#define SUBSTRATE_VERSION "%s"\n' "$(VERSION)" > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: %.c $(BUILD)/gen/version.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libsubstrate.a: $(LIB_OBJS)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/substrate: $(CLI_OBJS) $(BUILD)/libsubstrate.a
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $(CLI_OBJS) $(BUILD)/libsubstrate.a $(PKG_LIBS)

# The guest agent (PID 1 of a Tier-2 microVM): static, no sanitizer (it runs
# in the guest, alone), found by the runner next to the substrate binary.
$(BUILD)/substrate-agent: guest/agent.c include/substrate/guestproto.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@ (static)"
	@$(CC) -std=gnu17 -O2 $(WARN) -D_GNU_SOURCE -Iinclude -static -o $@ guest/agent.c

$(BUILD)/unit-tests: $(UNIT_OBJS) $(BUILD)/libsubstrate.a
	@echo "  LINK    $@"
	@$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $(UNIT_OBJS) $(BUILD)/libsubstrate.a $(PKG_LIBS)

asan:
	$(MAKE) SAN=1

# Every suite, normal, sanitizer and fuzz builds; last line "N passed, N failed, N skipped".
check: all
	$(MAKE) SAN=1 all
	$(MAKE) fuzz-build
	tests/run

test: check

# The acceptance suite inside the golden VM (platform/vm/provision-vm), opt-in:
# tens of minutes on TCG.
check-vm: all
	SUBSTRATE_TEST_VM=1 tests/run vm/

bench: all
	bench/run

# One-line mutants of the security decisions, each must fail its suites
# (tests/mutation/mutants.txt; slow, not part of `make check`).
mutation: all
	tests/mutation/run

deps:
	scripts/install-deps

clean:
	rm -rf build build-asan build-fuzz

-include $(DEPS)

# ---- fuzzing (tests/fuzz) -----------------------------------------------------------------
# libFuzzer harnesses, one per tests/fuzz/fuzz-<target>.c, linked against the
# library sources compiled again with clang, ASan and UBSan in build-fuzz/
# (same warnings as the normal build). `make fuzz-build` builds them (clang-14
# and libclang-rt-14-dev, from scripts/install-deps); `make fuzz` runs each
# for FUZZ_SECONDS over its committed corpus tests/fuzz/corpus/<target>/,
# keeping new inputs in build-fuzz/corpus/<target>/ and crashes in
# build-fuzz/crashes/. FUZZ_TARGETS="ref pem" picks some. tests/run replays
# the committed corpora as a regression suite (tests/fuzz/replay).
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -std=gnu17 -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
        -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION $(WARN) -D_GNU_SOURCE -fPIE \
        -Iinclude -I$(FUZZ_BUILD)/gen $(PKG_CFLAGS)
FUZZ_SRCS    := $(sort $(wildcard tests/fuzz/fuzz-*.c))
FUZZ_TARGETS ?= $(FUZZ_SRCS:tests/fuzz/fuzz-%.c=%)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)

.PHONY: fuzz fuzz-build
.SECONDARY: $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/obj/tests/fuzz/%.o)
fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/gen/version.h: VERSION
	@mkdir -p $(dir $@)
	@printf '#pragma once\n#define SUBSTRATE_VERSION "%s"\n' "$(VERSION)" > $@.tmp && mv $@.tmp $@

$(FUZZ_BUILD)/obj/%.o: %.c $(FUZZ_BUILD)/gen/version.h
	@mkdir -p $(dir $@)
	@echo "  CC-FUZZ $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libsubstrate.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_BUILD)/fuzz-%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz-%.o $(FUZZ_BUILD)/libsubstrate.a
	@echo "  LINK    $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -pie -o $@ $< $(FUZZ_BUILD)/libsubstrate.a $(PKG_LIBS)

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	    echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes; \
	    nice $(FUZZ_BUILD)/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t- \
	        $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t; \
	done

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/obj/tests/fuzz/%.d)

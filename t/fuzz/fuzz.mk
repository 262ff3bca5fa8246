# make fuzz: the libFuzzer targets (t/fuzz/fuzz_*.c), built with clang,
# ASan and UBSan in FUZZ_DIR, each run in turn for FUZZ_TIME seconds (by
# t/fuzz/run); fails on any crash, leak or timeout. FUZZ_TARGETS=... runs
# only those. make fuzz-build only builds. See t/fuzz/README.md. Included
# by the Makefile.

FUZZ_CC      ?= clang-14
FUZZ_TIME    ?= 60
FUZZ_DIR     ?= $(BUILD)/fuzz
FUZZ_TARGETS := clienthello config probe_http sesscache ticket session
# More libFuzzer options for every run (t/fuzz/run has each target's).
FUZZ_OPTS    ?=

ifeq ($(filter-out 0,$(FUZZ_TIME)),)
$(error FUZZ_TIME=$(FUZZ_TIME): give the seconds per target (0 would be no limit))
endif

# The library as the targets link it: every module, instrumented for
# coverage, without jemalloc (ASan brings its allocator); the targets pull
# in what they use.
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
# The Makefile's warnings; clang's -Wformat=2 also says it of vsnprintf
# with a va_list, which gcc leaves alone (lib/log.c).
FUZZ_CFLAGS  := -std=c11 -g -O1 $(WARN) -Wno-format-nonliteral $(FUZZ_SAN) $(WOLFSSL_CFLAGS) \
                $(LIBCONFIG_CFLAGS)
FUZZ_LIB     := $(FUZZ_DIR)/libtlsoffd.a
FUZZ_OBJS    := $(LIB_MODULES:%=$(FUZZ_DIR)/lib/%.o) $(LIB_PARTS:%=$(FUZZ_DIR)/lib/%.o)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz fuzz-build

fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/lib/%.o: lib/%.c $(wildcard lib/*.h) Makefile t/fuzz/fuzz.mk $(WOLFSSL_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC   $@"
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJS)
	@echo "  AR   $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: t/fuzz/fuzz_%.c t/fuzz/fuzz.h $(FUZZ_LIB) $(WOLFSSL_LINK_DEPS)
	@echo "  LINK $@"
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) \
	    $(WOLFSSL_LIBS) $(LIBCONFIG_LIBS) -lpthread -lm

# The runs, one after the other (t/fuzz/run says how each is run).
fuzz: fuzz-build
	$(Q)FUZZ_OPTS='$(FUZZ_OPTS)' sh t/fuzz/run $(FUZZ_DIR) $(FUZZ_TIME) $(FUZZ_TARGETS)

# Included by the Makefile once WOLFSSL and BUILD are known: sets
# WOLFSSL_CFLAGS, WOLFSSL_LIBS, WOLFSSL_CPPFLAGS, WOLFSSL_DEPS (what the
# objects depend on), WOLFSSL_LINK_DEPS (what the binaries depend on) and
# WOLFSSL_CHECK_LINK (run on $@ after linking tlsoffd).
#
# WOLFSSL_LINK: static (libwolfssl.a in WOLFSSL_PREFIX), rpath (DIR's
# libwolfssl.so, by run path) or system (pkg-config wolfssl).

ifeq ($(WOLFSSL),fast)
# BUILD/wolfssl.mk, written by contrib/wolfssl-fast/choose, says what
# `fast' came to here: WOLFSSL_CHOSEN (fast or system), WOLFSSL_PREFIX,
# WOLFSSL_SOURCE, WOLFSSL_STATIC_LIBS, WOLFSSL_WHY. make remakes it (which
# runs contrib/wolfssl-fast/build: a no-op when DEST/prefix is complete),
# then reads it. A recorded fallback is kept until the file is removed,
# unless WOLFSSL=fast was given on the command line (--strict: no fallback).
WOLFSSL_MK     := $(BUILD)/wolfssl.mk
WOLFSSL_STRICT := $(if $(filter command line,$(origin WOLFSSL)),--strict)
ifneq ($(filter-out clean distclean fast fast-check fast-install wolfssl-fast,$(or $(MAKECMDGOALS),all)),)
-include $(WOLFSSL_MK)
endif
$(WOLFSSL_MK): $(if $(and $(filter system,$(WOLFSSL_CHOSEN)),$(if $(WOLFSSL_STRICT),,y)),,FORCE)
	$(Q)sh contrib/wolfssl-fast/choose $(WOLFSSL_STRICT) $(WOLFSSL_FAST) $@

ifeq ($(WOLFSSL_CHOSEN),fast)
WOLFSSL_LINK   := static
else ifeq ($(WOLFSSL_CHOSEN),system)
WOLFSSL_LINK   := system
WOLFSSL_NOTE   := WARNING: $(BUILD)/ is built against Debian's shared, slow wolfSSL: the fast one cannot be made here ($(WOLFSSL_WHY)). rm $(WOLFSSL_MK) to try again.
$(info $(WOLFSSL_NOTE))
endif

else ifeq ($(WOLFSSL),dir)
override WOLFSSL_DIR := $(abspath $(WOLFSSL_DIR))
WOLFSSL_PREFIX := $(WOLFSSL_DIR)
WOLFSSL_LINK   := $(if $(wildcard $(WOLFSSL_DIR)/lib/libwolfssl.a),static,rpath)
# A prefix made by contrib/wolfssl-fast/build says what it is.
WOLFSSL_STAMP  := $(wildcard $(WOLFSSL_DIR)/.stamp)
WOLFSSL_SOURCE := $(if $(WOLFSSL_STAMP),$(shell sed -n 's/^version=//p' $(WOLFSSL_STAMP)))
WOLFSSL_STATIC_LIBS := $(or $(if $(WOLFSSL_STAMP),$(shell sed -n 's/^static_libs=//p' $(WOLFSSL_STAMP))),-lpthread -ldl)
$(WOLFSSL_DIR)/include/wolfssl/options.h:
	@echo "WOLFSSL_DIR=$(WOLFSSL_DIR) has no include/wolfssl/options.h (contrib/wolfssl-fast/build makes a wolfSSL that has)" >&2; exit 1

else
WOLFSSL_LINK   := system
endif

WOLFSSL_ID := $(WOLFSSL_LINK) $(WOLFSSL_PREFIX) $(WOLFSSL_SOURCE)
ifeq ($(WOLFSSL_LINK),static)
WOLFSSL_CFLAGS    := -isystem $(WOLFSSL_PREFIX)/include
WOLFSSL_LIBS      := $(WOLFSSL_PREFIX)/lib/libwolfssl.a $(WOLFSSL_STATIC_LIBS)
WOLFSSL_LINK_DEPS := $(WOLFSSL_PREFIX)/lib/libwolfssl.a
WOLFSSL_CPPFLAGS  := -DTLSOFFD_WOLFSSL_STATIC \
    $(if $(WOLFSSL_SOURCE),-DTLSOFFD_WOLFSSL_SOURCE='"Debian source wolfssl $(WOLFSSL_SOURCE)"')
# No libwolfssl.so may come in through another library either.
WOLFSSL_CHECK_LINK = if ldd $@ | grep libwolfssl >&2; then \
    echo "$@ loads the shared libwolfssl above, not $(WOLFSSL_PREFIX)/lib/libwolfssl.a" >&2; \
    rm -f $@; exit 1; fi; echo "  $@: wolfSSL linked statically from $(WOLFSSL_PREFIX)"
else ifeq ($(WOLFSSL_LINK),rpath)
WOLFSSL_CFLAGS    := -isystem $(WOLFSSL_PREFIX)/include
WOLFSSL_LIBS      := -L$(WOLFSSL_PREFIX)/lib -Wl,-rpath,$(WOLFSSL_PREFIX)/lib -lwolfssl
WOLFSSL_CHECK_LINK = lib=$$(ldd $@ | awk '/libwolfssl/ { print $$3 }'); \
    case "$$lib" in $(WOLFSSL_PREFIX)/lib/*) echo "  $@ loads $$lib";; \
    *) echo "$@ loads '$$lib', not the wolfSSL in $(WOLFSSL_PREFIX)/lib" >&2; rm -f $@; exit 1;; esac
else ifeq ($(WOLFSSL_LINK),system)
WOLFSSL_CFLAGS    := $(shell $(PKG_CONFIG) --cflags wolfssl)
WOLFSSL_LIBS      := $(shell $(PKG_CONFIG) --libs wolfssl)
WOLFSSL_CHECK_LINK = echo "  $@: Debian's shared wolfSSL, $$(ldd $@ | awk '/libwolfssl/ { print $$3 }')"$(if $(WOLFSSL_NOTE),; echo "$(WOLFSSL_NOTE)" >&2)
endif
WOLFSSL_DEPS = $(if $(WOLFSSL_PREFIX),$(WOLFSSL_PREFIX)/include/wolfssl/options.h) $(BUILD)/.wolfssl-id

# Objects are rebuilt when another wolfSSL is used in this directory.
$(BUILD)/.wolfssl-id: FORCE
	@mkdir -p $(dir $@)
	@echo '$(WOLFSSL_ID)' | cmp -s - $@ || echo '$(WOLFSSL_ID)' > $@

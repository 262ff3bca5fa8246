# tlsoffd — hand-written Makefile; works on Debian 12 without ./configure.
# ./configure (from configure.ac) optionally writes config.mk to point at
# other library locations; anything set there overrides the defaults below.
-include config.mk

PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
SYSCONFDIR  ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
DESTDIR     ?=
VERSION     := $(shell cat VERSION)

CC          ?= cc
PKG_CONFIG  ?= pkg-config
PYTHON      ?= python3

# wolfSSL, by WOLFSSL (see contrib/wolfssl-fast/README.md):
#   fast    (the default) libwolfssl.a, linked into the binaries, from the
#           optimised wolfSSL that contrib/wolfssl-fast/build makes from
#           Debian's source package under WOLFSSL_FAST/prefix (AES-NI, AVX2,
#           SP assembly, session export for parking). Where it cannot be
#           made (not x86-64, Debian's archive unreachable, the build
#           fails), a WARNING says why and the build falls back to system;
#           BUILD/wolfssl.mk records the choice (remove it to try again).
#           WOLFSSL=fast on the command line fails instead of falling back.
#   system  Debian's shared libwolfssl (libwolfssl-dev, pkg-config), in
#           build-system/ (build-san-system/ with SANITIZE=1).
#   dir     WOLFSSL_DIR=DIR (implies WOLFSSL=dir): the wolfSSL installed
#           under DIR (include/, lib/): DIR/lib/libwolfssl.a if there is one,
#           else DIR/lib/libwolfssl.so with DIR/lib in the run path (its
#           SONAME is Debian's: without it the loader would take the
#           system's library). In build-dir/ unless BUILD says otherwise.
# ./configure --with-wolfssl=... sets WOLFSSL (and WOLFSSL_DIR) in config.mk.
# Headers are -isystem, as for /usr/include: wolfSSL's do not pass
# -Wshadow (fe_operations.h's `fe').
ifeq ($(strip $(WOLFSSL)),)
override WOLFSSL := $(if $(WOLFSSL_DIR),dir,fast)
endif
WOLFSSL_FAST ?= build/wolfssl-fast
ifeq ($(filter fast system dir,$(WOLFSSL)),)
$(error WOLFSSL=$(WOLFSSL): use fast, system or dir (WOLFSSL_DIR=DIR))
endif
ifeq ($(WOLFSSL):$(WOLFSSL_DIR),dir:)
$(error WOLFSSL=dir needs WOLFSSL_DIR=DIR)
endif
LIBCONFIG_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libconfig)
LIBCONFIG_LIBS   ?= $(shell $(PKG_CONFIG) --libs libconfig)
JEMALLOC_LIBS    ?= $(shell $(PKG_CONFIG) --libs jemalloc)
CHECK_CFLAGS     ?= $(shell $(PKG_CONFIG) --cflags check)
CHECK_LIBS       ?= $(shell $(PKG_CONFIG) --libs check)
USE_JEMALLOC     ?= 1

# The build directory: build/ (fast), build-system/, build-dir/; with
# SANITIZE=1 (AddressSanitizer + UndefinedBehaviorSanitizer) build-san/,
# build-san-system/, build-san-dir/. ASan brings its own allocator, so
# jemalloc is left out.
BUILD_SUFFIX := $(if $(filter fast,$(WOLFSSL)),,-$(WOLFSSL))
ifeq ($(SANITIZE),1)
BUILD       ?= build-san$(BUILD_SUFFIX)
SAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
USE_JEMALLOC := 0
else
BUILD       ?= build$(BUILD_SUFFIX)
SAN_FLAGS   :=
endif

.DEFAULT_GOAL := all
include contrib/wolfssl-fast/select.mk

ifeq ($(USE_JEMALLOC),1)
ALLOC_CFLAGS := -DHAVE_JEMALLOC
ALLOC_LIBS   := $(JEMALLOC_LIBS)
endif

OPT         ?= -O2 -g
WARN        := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
CPPFLAGS    += -D_GNU_SOURCE -DTLSOFFD_VERSION='"$(VERSION)"' \
               -DTLSOFFD_SYSCONFDIR='"$(SYSCONFDIR)"' $(WOLFSSL_CPPFLAGS) -Ilib
ALL_CFLAGS  := -std=c11 $(OPT) $(WARN) $(SAN_FLAGS) $(WOLFSSL_CFLAGS) \
               $(LIBCONFIG_CFLAGS) $(ALLOC_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(SAN_FLAGS) $(WOLFSSL_LDFLAGS) $(LDFLAGS)
LIBS        := $(WOLFSSL_LIBS) $(LIBCONFIG_LIBS) $(ALLOC_LIBS) -lpthread -lm

LIB_MODULES := alloc addr config log listen net clienthello tls tls_io tls_resume tls_identity tls_policy tls_park \
               tls_frontend tls_ocsp upstream relay shm sesscache sessblob ticketkeys clients stats passfd \
               proxyproto probe probe_http threadstack pkcs11 keyproto keystore tls_keys secretfile \
               tls_hello
DAEMON_SRCS := daemon/main.c daemon/runtime.c daemon/upgrade.c daemon/ctl.c daemon/child.c \
               daemon/master.c daemon/worker.c daemon/health.c daemon/capacity.c daemon/park.c daemon/pool.c \
               daemon/keys.c daemon/keyclient.c daemon/notify.c daemon/report.c
# A module's other files (its own header is the module's: config_int.h),
# tested through the module's suite.
LIB_PARTS   := config_read config_tls config_frontend config_upstream config_limits config_keys \
               pkcs11_uri pkcs11_token
LIB_OBJS    := $(LIB_MODULES:%=$(BUILD)/lib/%.o) $(LIB_PARTS:%=$(BUILD)/lib/%.o)
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/%.o)
UNIT_TESTS  := $(LIB_MODULES:%=$(BUILD)/t/unit/check_%)
HELPERS     := $(BUILD)/t/helper/backend

TLSOFFD     := $(BUILD)/tlsoffd

# V=1 shows the full commands.
Q           := $(if $(V),,@)

.PHONY: all check unit-check daemon-check demo install clean helpers
.DELETE_ON_ERROR:

all: $(TLSOFFD)

$(BUILD)/libtlsoffd.a: $(LIB_OBJS)
	@echo "  AR   $@"
	$(Q)ar rcs $@ $^

$(TLSOFFD): $(DAEMON_OBJS) $(BUILD)/libtlsoffd.a $(WOLFSSL_LINK_DEPS)
	@echo "  LINK $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(DAEMON_OBJS) $(BUILD)/libtlsoffd.a $(LIBS)
	@$(WOLFSSL_CHECK_LINK)

$(BUILD)/%.o: %.c $(wildcard lib/*.h daemon/*.h) Makefile $(wildcard config.mk) $(WOLFSSL_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC   $<"
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -Idaemon -c -o $@ $<

$(BUILD)/t/unit/check_%: t/unit/check_%.c t/unit/unit.h t/unit/tlspair.h $(BUILD)/libtlsoffd.a \
                         $(WOLFSSL_LINK_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC   $@"
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(BUILD)/libtlsoffd.a \
	    $(ALL_LDFLAGS) $(CHECK_LIBS) $(LIBS)

$(BUILD)/t/helper/%: t/helper/%.c $(BUILD)/libtlsoffd.a $(WOLFSSL_LINK_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC   $@"
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libtlsoffd.a $(ALL_LDFLAGS) $(LIBS)

helpers: $(HELPERS)

# Test certificates (self-signed CA, server certs, a mismatched key), made
# once per build directory by t/mkcerts.
$(BUILD)/t/certs/.stamp: t/mkcerts
	@mkdir -p $(dir $@)
	@echo "  CERT $(dir $@)"
	$(Q)sh t/mkcerts $(dir $@)
	@touch $@

check: unit-check daemon-check

unit-check: $(UNIT_TESTS) $(BUILD)/t/certs/.stamp
	@set -e; for t in $(UNIT_TESTS); do \
	    TLSOFFD_CERTS=$(BUILD)/t/certs CK_DEFAULT_TIMEOUT=60 $$t; done

daemon-check: $(TLSOFFD) $(HELPERS) $(BUILD)/t/certs/.stamp
	TLSOFFD=$(TLSOFFD) TLSOFFD_HELPERS=$(BUILD)/t/helper TLSOFFD_CERTS=$(BUILD)/t/certs \
	TLSOFFD_SANITIZE=$(SANITIZE) $(PYTHON) t/run.py $(T)

demo: $(TLSOFFD) $(HELPERS)
	sh contrib/demo.sh $(BUILD)

# testssl.sh against the default TLS policy; fails on a MEDIUM+ finding.
.PHONY: audit
audit: $(TLSOFFD) $(HELPERS) $(BUILD)/t/certs/.stamp
	TLSOFFD=$(TLSOFFD) TLSOFFD_HELPERS=$(BUILD)/t/helper TLSOFFD_CERTS=$(BUILD)/t/certs \
	$(PYTHON) contrib/audit/testssl

install: $(TLSOFFD)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(SYSCONFDIR)/tlsoffd
	install -m 0755 $(TLSOFFD) $(DESTDIR)$(SBINDIR)/tlsoffd
	install -m 0644 man/tlsoffd.8 $(DESTDIR)$(MANDIR)/man8/tlsoffd.8
	install -m 0644 man/tlsoffd.conf.5 $(DESTDIR)$(MANDIR)/man5/tlsoffd.conf.5
	install -m 0644 etc/tlsoffd.conf $(DESTDIR)$(SYSCONFDIR)/tlsoffd/tlsoffd.conf.sample

# make fast, fast-check, fast-install, from when the default was Debian's
# library: now make, make check and make install with WOLFSSL=fast given,
# so without the fallback. build-fast/ is no longer used.
.PHONY: fast fast-check fast-install wolfssl-fast
fast fast-check fast-install:
	@echo "  ($@ is now the default build: make $(patsubst fast,all,$(patsubst fast-%,%,$@)) WOLFSSL=fast)"
	$(MAKE) WOLFSSL=fast $(patsubst fast,all,$(patsubst fast-%,%,$@))

# Only the optimised wolfSSL (contrib/wolfssl-fast/build -u DEST checks
# Debian for a newer revision of its source).
wolfssl-fast:
	sh contrib/wolfssl-fast/build $(WOLFSSL_FAST)

.PHONY: FORCE

# make fuzz, make fuzz-build: the libFuzzer targets (t/fuzz/README.md).
include t/fuzz/fuzz.mk

# clean keeps the wolfSSL that contrib/wolfssl-fast/build made under build/
# (a minute to make again, and a download); distclean removes it too.
.PHONY: distclean
clean:
	rm -rf build-san build-system build-san-system build-dir build-san-dir build-fast build-san-fast
	[ ! -d build ] || find build -mindepth 1 -maxdepth 1 ! -name 'wolfssl-*' -exec rm -rf {} +

distclean: clean
	rm -rf build

# make deb: the Debian package (debian/), in build/deb/:
# build/deb/tlsoffd_$(VERSION)-1_amd64.deb. The same as
# `dpkg-buildpackage -b -us -uc`, which leaves it in ../. Needs the
# Build-Depends of debian/control (dpkg-checkbuilddeps names what is
# missing). DEB_BUILD_OPTIONS=nocheck skips the unit suites;
# TLSOFFD_WOLFSSL_FAST=DIR uses a wolfSSL already built in DIR (see
# debian/rules).
DEB_DIR ?= build/deb
.PHONY: deb
deb:
	@mkdir -p $(DEB_DIR)
	TLSOFFD_DEB_DIR=$(abspath $(DEB_DIR)) dpkg-buildpackage -b -us -uc \
	    --buildinfo-option=-u$(abspath $(DEB_DIR)) --changes-option=-u$(abspath $(DEB_DIR)) \
	    --buildinfo-file=$(DEB_DIR)/tlsoffd_$(VERSION)-1_amd64.buildinfo \
	    --changes-file=$(DEB_DIR)/tlsoffd_$(VERSION)-1_amd64.changes
	@echo "  DEB  $(DEB_DIR)/tlsoffd_$(VERSION)-1_amd64.deb"

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

# wolfSSL: Debian's libwolfssl-dev (pkg-config) unless config.mk says
# otherwise, or WOLFSSL_DIR=DIR: the wolfSSL installed under DIR (include/,
# lib/), e.g. the optimised one `make fast` builds. Its SONAME is Debian's
# (libwolfssl.so.35), so DIR/lib goes into the binaries' run path; without
# it the loader would take the system's slow library, which does not match
# DIR's headers either. -isystem, as for /usr/include: wolfSSL's headers
# do not pass -Wshadow (fe_operations.h's `fe').
ifneq ($(WOLFSSL_DIR),)
override WOLFSSL_DIR := $(abspath $(WOLFSSL_DIR))
WOLFSSL_CFLAGS   := -isystem $(WOLFSSL_DIR)/include
WOLFSSL_LIBS     := -L$(WOLFSSL_DIR)/lib -Wl,-rpath,$(WOLFSSL_DIR)/lib -lwolfssl
# Objects are rebuilt when DIR's options.h changes or another DIR is used.
WOLFSSL_DEPS      = $(WOLFSSL_DIR)/include/wolfssl/options.h $(BUILD)/.wolfssl-dir
endif
WOLFSSL_CFLAGS   ?= $(shell $(PKG_CONFIG) --cflags wolfssl)
WOLFSSL_LIBS     ?= $(shell $(PKG_CONFIG) --libs wolfssl)
LIBCONFIG_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libconfig)
LIBCONFIG_LIBS   ?= $(shell $(PKG_CONFIG) --libs libconfig)
JEMALLOC_LIBS    ?= $(shell $(PKG_CONFIG) --libs jemalloc)
CHECK_CFLAGS     ?= $(shell $(PKG_CONFIG) --cflags check)
CHECK_LIBS       ?= $(shell $(PKG_CONFIG) --libs check)
USE_JEMALLOC     ?= 1

# SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer, in its own
# build directory. ASan brings its own allocator, so jemalloc is left out.
ifeq ($(SANITIZE),1)
BUILD       ?= build-san
SAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
USE_JEMALLOC := 0
else
BUILD       ?= build
SAN_FLAGS   :=
endif

ifeq ($(USE_JEMALLOC),1)
ALLOC_CFLAGS := -DHAVE_JEMALLOC
ALLOC_LIBS   := $(JEMALLOC_LIBS)
endif

OPT         ?= -O2 -g
WARN        := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
CPPFLAGS    += -D_GNU_SOURCE -DTLSOFFD_VERSION='"$(VERSION)"' \
               -DTLSOFFD_SYSCONFDIR='"$(SYSCONFDIR)"' -Ilib
ALL_CFLAGS  := -std=c11 $(OPT) $(WARN) $(SAN_FLAGS) $(WOLFSSL_CFLAGS) \
               $(LIBCONFIG_CFLAGS) $(ALLOC_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(SAN_FLAGS) $(WOLFSSL_LDFLAGS) $(LDFLAGS)
LIBS        := $(WOLFSSL_LIBS) $(LIBCONFIG_LIBS) $(ALLOC_LIBS) -lpthread -lm

LIB_MODULES := alloc addr config log listen net clienthello tls tls_io tls_resume tls_policy tls_park \
               tls_frontend tls_ocsp upstream relay shm sesscache ticketkeys clients stats passfd \
               proxyproto probe probe_http threadstack pkcs11 keyproto keystore tls_keys secretfile
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

$(TLSOFFD): $(DAEMON_OBJS) $(BUILD)/libtlsoffd.a
	@echo "  LINK $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(DAEMON_OBJS) $(BUILD)/libtlsoffd.a $(LIBS)

$(BUILD)/%.o: %.c $(wildcard lib/*.h daemon/*.h) Makefile $(wildcard config.mk) $(WOLFSSL_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CC   $<"
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -Idaemon -c -o $@ $<

$(BUILD)/t/unit/check_%: t/unit/check_%.c t/unit/unit.h t/unit/tlspair.h $(BUILD)/libtlsoffd.a
	@mkdir -p $(dir $@)
	@echo "  CC   $@"
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(BUILD)/libtlsoffd.a \
	    $(ALL_LDFLAGS) $(CHECK_LIBS) $(LIBS)

$(BUILD)/t/helper/%: t/helper/%.c $(BUILD)/libtlsoffd.a
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

# make fast: tlsoffd in build-fast/, linked (run path) against an optimised
# wolfSSL that contrib/wolfssl-fast/build makes from Debian's source package
# (AES-NI, AVX2, SP assembly) under WOLFSSL_FAST/prefix. Needs no ./configure
# and leaves build/ alone; `make fast-check` runs the tests against it,
# `make fast-install` installs it (mind the run path: see the README).
# See contrib/wolfssl-fast/README.md.
WOLFSSL_FAST ?= build/wolfssl-fast
FAST_BUILD   ?= build-fast
FAST_VARS     = BUILD=$(FAST_BUILD) WOLFSSL_DIR=$(abspath $(WOLFSSL_FAST))/prefix
.PHONY: fast fast-check fast-install wolfssl-fast
wolfssl-fast:
	sh contrib/wolfssl-fast/build $(WOLFSSL_FAST)

fast: wolfssl-fast
	$(MAKE) $(FAST_VARS) all
	@lib=$$(ldd $(FAST_BUILD)/tlsoffd | awk '/libwolfssl/ { print $$3 }'); \
	case "$$lib" in \
	    $(abspath $(WOLFSSL_FAST))/prefix/lib/*) echo "  $(FAST_BUILD)/tlsoffd loads $$lib";; \
	    *) echo "$(FAST_BUILD)/tlsoffd loads '$$lib', not the wolfSSL in $(WOLFSSL_FAST)/prefix/lib" >&2; exit 1;; \
	esac

fast-check: fast
	$(MAKE) $(FAST_VARS) check

fast-install: fast
	$(MAKE) $(FAST_VARS) install

ifneq ($(WOLFSSL_DIR),)
$(WOLFSSL_DIR)/include/wolfssl/options.h:
	@echo "WOLFSSL_DIR=$(WOLFSSL_DIR) has no include/wolfssl/options.h (make fast builds a wolfSSL)" >&2; exit 1
endif
.PHONY: FORCE
$(BUILD)/.wolfssl-dir: FORCE
	@mkdir -p $(dir $@)
	@echo '$(WOLFSSL_DIR)' | cmp -s - $@ || echo '$(WOLFSSL_DIR)' > $@

clean:
	rm -rf build build-san build-fast build-san-fast

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

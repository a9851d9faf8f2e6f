# Config.mk - build knobs and flags shared by every libxlmig Makefile.
#
# Included by the top Makefile and by each directory's Makefile, which
# first set TOP (absolute path of the tree) and REL (their directory
# relative to TOP, with a trailing slash, used only in the quiet lines).
#
# Knobs (give them on the command line: `make debug=y SANITIZE=address`):
#   debug=y|n      y: -Og -g (still optimises enough for gcc's
#                  -Wmaybe-uninitialized); n: -O2 -g.  Default n.
#   WERROR=y|n     add -Werror.  Default y.
#   SANITIZE=      e.g. address,undefined or thread; adds -fsanitize=...
#                  to compile and link.  Default empty.
#   CC=            C compiler.  Default gcc.
#   LIBXL=y|n      build the libxl backend (needs libxen-dev).  Default y.
#   ISAL=y|n LIBDEFLATE=y|n   fast zlib-format codecs.  Default y.
#   PREFIX=        install prefix.  Default /usr/local.
#   DESTDIR=       staging root for `make install`.
#   V=1            print full command lines instead of `  CC  path.o`.
#   CFLAGS= CPPFLAGS= LDFLAGS=   appended after ours (e.g. distro flags).
#
# Different knobs never mix objects: every object depends on
# $(TOP)/.build-flags, a file holding the compiler and all flags, which
# is rewritten (and so becomes newer than every object) only when they
# change.  Switching between `make check` and
# `make check SANITIZE=address,undefined` therefore rebuilds everything
# in place, never links a sanitized object with a plain one, and costs
# nothing when the flags did not change.  (git's GIT-CFLAGS does the
# same.)  The fuzz build uses clang and lives apart in .build-fuzz/.

# Every Makefile including this one has `all` as its default goal.
.DEFAULT_GOAL := all

debug ?= n
WERROR ?= y
SANITIZE ?=
PREFIX ?= /usr/local
DESTDIR ?=
V ?= 0

# `make` defines CC=cc by default; only an explicit CC counts.
ifeq ($(origin CC),default)
CC := gcc
endif
CXX_HDRCHECK ?= g++
CLANG ?= clang
CLANG_FORMAT ?= clang-format
CPPCHECK ?= cppcheck
PKG_CONFIG ?= pkg-config
INSTALL ?= install

BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions

# Library version: keep in step with LXM_API_VERSION in libxlmig.h.
LXM_MAJOR := 0
LXM_MINOR := 1
LXM_MICRO := 0
LXM_VERSION := $(LXM_MAJOR).$(LXM_MINOR).$(LXM_MICRO)

# pkg-config modules.  The library's are needed by everything that
# links it.
PKG_LIBXLMIG := xentoollog yajl libxxhash zlib libzstd liblz4
PKG_TESTS := check

# Fast producers/decoders of the zlib format (libxlmig/codec/block.c):
# ISAL=y encodes with ISA-L igzip (libisal-dev), LIBDEFLATE=y decodes
# (and, without ISA-L, encodes) with libdeflate (libdeflate-dev).  With
# both n, stock zlib does everything; the format is the same.
ISAL ?= y
LIBDEFLATE ?= y
ifeq ($(ISAL),y)
PKG_LIBXLMIG += libisal
LXM_FEATURES += -DLXM_HAVE_ISAL
endif
ifeq ($(LIBDEFLATE),y)
PKG_LIBXLMIG += libdeflate
LXM_FEATURES += -DLXM_HAVE_LIBDEFLATE
endif

# The libxl backend (libxlmig/backend/backend-libxl.c): real Xen through
# libxenlight from libxen-dev.  LIBXL=n builds without it (sim only).
LIBXL ?= y
ifeq ($(LIBXL),y)
PKG_LIBXLMIG += xenlight
LXM_FEATURES += -DLXM_HAVE_LIBXL_BACKEND
endif

# xenstore (libxlmig/evacuate/xs_status.c, xenstore-hooks/): publish
# evacuation status where dom0 tools read it.  XENSTORE=n builds
# without it (the status is then never published).
XENSTORE ?= y
ifeq ($(XENSTORE),y)
PKG_LIBXLMIG += xenstore
LXM_FEATURES += -DLXM_HAVE_XENSTORE
endif

# ------------------------------------------------------------------
# Flags

LXM_WARN_BASE := -Wall -Wextra -Wmissing-prototypes -Wstrict-prototypes \
                 -Wshadow -Wformat=2
ifeq ($(WERROR),y)
LXM_WERROR := -Werror
endif
LXM_WARN := $(LXM_WARN_BASE) $(LXM_WERROR)

ifeq ($(debug),y)
LXM_OPT := -Og -g
else
LXM_OPT := -O2 -g
endif

ifneq ($(SANITIZE),)
LXM_SAN := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
# GCC's manual: "sanitizers tend to increase the rate of false positive
# warnings ... We recommend against combining -Werror and [the use of]
# sanitizers."  Its flow-sensitive warnings stay on but do not fail a
# sanitized build (the plain build still fails on them).
ifneq ($(shell echo __clang__ | $(CC) -E -P - 2>/dev/null),1)
LXM_WARN += -Wno-error=maybe-uninitialized -Wno-error=array-bounds \
            -Wno-error=stringop-overread -Wno-error=stringop-overflow \
            -Wno-error=stringop-truncation
endif
else
LXM_SAN :=
endif

LXM_INCLUDES := -I$(TOP)/libxlmig/include -I$(TOP)/libxlmig

# What every object is compiled with (pkg-config cflags come on top).
# Sources are compiled by absolute path (so diagnostics name the file
# whatever directory make is in); __FILE__ stays relative to the top.
LXM_CFLAGS := -std=gnu11 $(LXM_OPT) $(LXM_WARN) $(LXM_SAN) -fPIC \
              -MMD -MP -fmacro-prefix-map=$(TOP)/= $(LXM_INCLUDES) \
              $(LXM_FEATURES) $(CPPFLAGS) $(CFLAGS)
LXM_LDFLAGS := $(LXM_SAN) -pthread $(LDFLAGS)

# ------------------------------------------------------------------
# pkg-config, evaluated at most once per make and only when used, so
# that `make deps`, `make clean` and friends work before the -dev
# packages are installed.

# $(call lxm_pkg,--cflags|--libs,modules)
lxm_pkg = $(if $(shell $(PKG_CONFIG) --exists $(2) 2>/dev/null && echo ok),$\
            $(shell $(PKG_CONFIG) $(1) $(2)),$\
            $(error pkg-config cannot find some of: $(2); run `make deps`))

LIBXLMIG_PKG_CFLAGS = $(eval LIBXLMIG_PKG_CFLAGS := $(call lxm_pkg,--cflags,$(PKG_LIBXLMIG)))$(LIBXLMIG_PKG_CFLAGS)
LIBXLMIG_PKG_LIBS = $(eval LIBXLMIG_PKG_LIBS := $(call lxm_pkg,--libs,$(PKG_LIBXLMIG)))$(LIBXLMIG_PKG_LIBS)
TESTS_PKG_CFLAGS = $(eval TESTS_PKG_CFLAGS := $(call lxm_pkg,--cflags,$(PKG_TESTS)))$(TESTS_PKG_CFLAGS)
TESTS_PKG_LIBS = $(eval TESTS_PKG_LIBS := $(call lxm_pkg,--libs,$(PKG_TESTS)))$(TESTS_PKG_LIBS)

# The static archive tools, tests and benches link (they use _hidden
# internals), and what it needs.
LIBXLMIG_A := $(TOP)/libxlmig/libxlmig.a
LIBXLMIG_LINK = $(LIBXLMIG_A) $(LIBXLMIG_PKG_LIBS)

# ------------------------------------------------------------------
# The flags stamp (see the top of this file).

BUILD_FLAGS_FILE := $(TOP)/.build-flags
BUILD_FLAGS := CC=$(CC) CFLAGS=$(LXM_CFLAGS) LDFLAGS=$(LXM_LDFLAGS)
# Not for targets that only clean or fetch dependencies.
ifeq ($(filter-out clean distclean deps help,$(MAKECMDGOALS))$(if $(MAKECMDGOALS),,all),)
else
$(shell f='$(BUILD_FLAGS_FILE)'; n='$(subst ','\'',$(BUILD_FLAGS))'; \
        [ -f "$$f" ] && [ "$$(cat "$$f")" = "$$n" ] || \
        { printf '%s\n' "$$n" >"$$f.tmp.$$$$" && mv -f "$$f.tmp.$$$$" "$$f"; })
endif

# ------------------------------------------------------------------
# Quiet command lines: $(call cmd,TAG,command) prints `  TAG  path`
# (path relative to the top) unless V=1, then runs command;
# `$(Q)$(call say,TAG,what) command` does the same for any label.
# A literal comma inside $(call ...) is written $(comma).

ifeq ($(V),1)
cmd = $(2)
say =
Q :=
else
cmd = @printf '  %-8s %s\n' '$(1)' '$(REL)$@' && $(2)
say = printf '  %-8s %s\n' '$(1)' '$(2)' &&
Q := @
endif
comma := ,

# Sub-makes should not chatter about directories.
MAKEFLAGS += --no-print-directory

.PHONY: FORCE
FORCE:

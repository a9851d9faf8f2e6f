# Makefile - top of libxlmig.  Knobs are in Config.mk; each directory
# has its own Makefile (libxlmig/, tools/, tests/, bench/).
#
#   make                 library (.a, .so, .pc) and tools/xlmig/xlmig
#   make check           install missing deps, build, run tests/lxm-tests
#   make check SANITIZE=address,undefined    the same under ASan+UBSan
#   make install DESTDIR=... PREFIX=...
#   make headers-check   libxlmig.h compiles alone, as C and as C++
#   make fuzz            libFuzzer harnesses (libxlmig/*/*-fuzz.c) -> fuzz/
#   make fuzz-run FUZZ_SECONDS=60
#   make bench           optimised benchmarks, then bench/run.sh
#   make demo            scripts/demo.sh
#   make check-xen       real Xen 4.17 under QEMU: tests/xen-lab/run.sh
#   make format-check | format | analyze | deps | clean | distclean
#
# `make help` prints this list.

TOP := $(CURDIR)
REL :=
include $(TOP)/Config.mk

XLMIG := $(TOP)/tools/xlmig/xlmig
XLMIGD := $(TOP)/tools/xlmigd/xlmigd
VERIFY_STREAM := $(TOP)/.cache/bin/verify-stream-v2

.PHONY: all
all: build-libxlmig build-tools build-hooks

# ------------------------------------------------------------------
# Directories.  Order: the library, then what links it.

.PHONY: build-libxlmig build-tools build-hooks build-tests build-bench
build-libxlmig:
	$(Q)$(MAKE) -C libxlmig all
build-tools: build-libxlmig
	$(Q)$(MAKE) -C tools all
build-hooks: build-libxlmig
	$(Q)$(MAKE) -C xenstore-hooks all
build-tests: build-libxlmig
	$(Q)$(MAKE) -C tests all
build-bench: build-libxlmig
	$(Q)$(MAKE) -C bench all

# ------------------------------------------------------------------
# Dependencies (Debian packages + Xen's verify-stream-v2 in .cache/).

DEPS_OK = $(TOP)/scripts/deps.sh --check >/dev/null 2>&1 || $(MAKE) deps

.PHONY: deps
deps:
	$(Q)$(TOP)/scripts/deps.sh

# ------------------------------------------------------------------
# Tests.  The runner's last line is Check's summary: nothing may be
# printed after it, so the test command is the last recipe line.

TEST_ENV := LXM_XLMIG=$(XLMIG) \
            LXM_XLMIGD=$(XLMIGD) \
            LXM_VERIFY_STREAM=$(VERIFY_STREAM) \
            LXM_TOP=$(TOP) \
            CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-60} \
            ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1} \
            UBSAN_OPTIONS=$${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
            TSAN_OPTIONS=$${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

.PHONY: check
check:
	@$(DEPS_OK)
	@$(MAKE) all build-tests build-bench
	@cd $(TOP) && $(TEST_ENV) ./tests/lxm-tests

# ------------------------------------------------------------------
# Install.

.PHONY: install uninstall
install: all
	$(Q)$(MAKE) -C libxlmig install
	$(Q)$(MAKE) -C tools install
	$(Q)$(MAKE) -C xenstore-hooks install

uninstall:
	$(Q)$(MAKE) -C libxlmig uninstall
	$(Q)$(MAKE) -C tools uninstall
	$(Q)$(MAKE) -C xenstore-hooks uninstall

# ------------------------------------------------------------------
# The public header compiles on its own (twice, for the include
# guard), as C and, when g++ is there, as C++.

HDRCHECK_SRC := printf '\#include <libxlmig.h>\n\#include <libxlmig.h>\n'
HDRCHECK_INC = -I$(TOP)/libxlmig/include $(LIBXLMIG_PKG_CFLAGS)
HDR := libxlmig/include/libxlmig.h

.PHONY: headers-check
headers-check:
	$(Q)$(call say,HDRCHK,$(HDR) (gnu11)) $(HDRCHECK_SRC) | \
	    $(CC) -x c -std=gnu11 $(LXM_WARN_BASE) -Werror \
	    -fsyntax-only $(HDRCHECK_INC) -
	$(Q)$(call say,HDRCHK,$(HDR) (c99 -pedantic)) $(HDRCHECK_SRC) | \
	    $(CC) -x c -std=c99 -pedantic -Wall -Wextra -Werror \
	    -fsyntax-only $(HDRCHECK_INC) -
	$(Q)if command -v $(CXX_HDRCHECK) >/dev/null 2>&1; then \
	    $(call say,HDRCHK,$(HDR) (c++11)) $(HDRCHECK_SRC) | \
	    $(CXX_HDRCHECK) -x c++ -std=c++11 -Wall -Wextra -Werror \
	        -fsyntax-only $(HDRCHECK_INC) -; \
	else echo "  SKIP     C++ header check: $(CXX_HDRCHECK) not found"; fi

# ------------------------------------------------------------------
# libFuzzer harnesses: each libxlmig/**/NAME-fuzz.c, with the library
# sources, all compiled by clang with ASan+UBSan into .build-fuzz/
# (never mixed with the normal objects), linked into fuzz/NAME.

FUZZ_SECONDS ?= 60
FUZZ_CC ?= $(CLANG)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -O1 -g $(LXM_WARN_BASE) $(LXM_WERROR) $(FUZZ_SAN) \
               -fsanitize=fuzzer-no-link -MMD -MP $(LXM_INCLUDES) \
               -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FUZZ_LDFLAGS := $(FUZZ_SAN) -fsanitize=fuzzer

FUZZ_SRCS := $(sort $(wildcard libxlmig/*-fuzz.c libxlmig/*/*-fuzz.c))
FUZZ_NAMES := $(notdir $(FUZZ_SRCS:.c=))
FUZZ_LIB_SRCS := $(filter-out %-fuzz.c,$(sort $(wildcard libxlmig/*.c libxlmig/*/*.c)))
FUZZ_LIB_OBJS := $(addprefix .build-fuzz/,$(FUZZ_LIB_SRCS:.c=.o))
FUZZ_FLAGS_FILE := .build-fuzz/flags

.PHONY: fuzz
fuzz: $(addprefix fuzz/,$(FUZZ_NAMES))
ifeq ($(FUZZ_NAMES),)
	@echo "  SKIP     no libxlmig/*/*-fuzz.c harness yet"
endif

# Rewritten only when the fuzz flags change (make then sees it newer).
$(FUZZ_FLAGS_FILE): FORCE
	@mkdir -p $(@D)
	@echo 'CC=$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_LDFLAGS)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

.build-fuzz/%.o: %.c $(FUZZ_FLAGS_FILE)
	@mkdir -p $(@D)
	$(call cmd,FUZZCC,$(FUZZ_CC) $(FUZZ_CFLAGS) $(LIBXLMIG_PKG_CFLAGS) -c -o $@ $<)

define fuzz_rule
fuzz/$(notdir $(1:.c=)): .build-fuzz/$(1:.c=.o) $$(FUZZ_LIB_OBJS)
	@mkdir -p fuzz
	$$(call cmd,FUZZLD,$$(FUZZ_CC) $$(FUZZ_LDFLAGS) -o $$@ $$^ $$(LIBXLMIG_PKG_LIBS))
endef
$(foreach s,$(FUZZ_SRCS),$(eval $(call fuzz_rule,$(s))))

# Seeds come from the CLI's synthesiser; each harness gets every seed.
# Full libFuzzer output goes to fuzz/NAME.log; its tail is shown, and
# crash inputs land in fuzz/artifacts/NAME/.  Exits non-zero if any
# harness found a crash, leak or timeout.
.PHONY: fuzz-run
fuzz-run: fuzz
	@$(MAKE) all
	@failed=; for n in $(FUZZ_NAMES); do \
	    c=fuzz/corpus/$$n; mkdir -p $$c fuzz/artifacts/$$n && \
	    $(XLMIG) stream-synth --guest pv --memory 256K --rounds 1 $$c/pv.xl && \
	    $(XLMIG) stream-synth --guest hvm --memory 256K --rounds 1 $$c/hvm.xl && \
	    $(XLMIG) stream-synth --guest pvh --memory 256K --rounds 1 --format libxl $$c/pvh.libxl && \
	    $(XLMIG) stream-synth --guest pv --memory 256K --rounds 1 --format libxc $$c/pv.libxc || \
	    { echo "fuzz-run: cannot write the seed corpus for $$n" >&2; exit 1; }; \
	    echo "  FUZZ     $$n for $(FUZZ_SECONDS)s (log: fuzz/$$n.log)"; \
	    if fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -detect_leaks=1 \
	        -rss_limit_mb=2048 -max_len=1048576 -timeout=30 \
	        -print_final_stats=1 -artifact_prefix=fuzz/artifacts/$$n/ \
	        $$c >fuzz/$$n.log 2>&1; then \
	        grep -E '^(#[0-9]+.*DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb)' fuzz/$$n.log | sed 's/^/    /'; \
	    else \
	        echo "fuzz-run: $$n FAILED; last lines of fuzz/$$n.log:" >&2; \
	        tail -n 60 fuzz/$$n.log >&2; failed="$$failed $$n"; \
	    fi; \
	done; \
	if [ -n "$$failed" ]; then \
	    echo "fuzz-run: FAILED:$$failed (inputs in fuzz/artifacts/; rerun one" \
	         "with fuzz/NAME FILE)" >&2; exit 1; \
	fi

# ------------------------------------------------------------------
# Benchmarks: always optimised and unsanitized (the flags stamp makes
# this rebuild in place if the tree was last built otherwise).

.PHONY: bench
bench:
	@$(MAKE) debug=n SANITIZE= all build-bench
	@if [ -f bench/run.sh ]; then \
	    cd $(TOP) && LXM_TOP=$(TOP) LXM_XLMIG=$(XLMIG) \
	    LXM_VERIFY_STREAM=$(VERIFY_STREAM) bash bench/run.sh; \
	else echo "  SKIP     bench/run.sh not found; benchmarks built only"; fi

# ------------------------------------------------------------------
# Demo.

.PHONY: demo
demo:
	@$(DEPS_OK)
	@$(MAKE) all
	@cd $(TOP) && LXM_VERIFY_STREAM=$(VERIFY_STREAM) scripts/demo.sh

# ------------------------------------------------------------------
# The real Xen lab (tests/xen-lab/, docs/xen-lab.md): Xen 4.17 + a
# Debian dom0 under QEMU TCG, the project's tools inside; needs root
# (apt-get) and 3-10 minutes.  Cache and results in .cache/xen-lab/

.PHONY: check-xen
check-xen:
	@$(DEPS_OK)
	@$(MAKE) all
	@cd $(TOP) && LXM_XLMIG=$(XLMIG) LXM_XLMIGD=$(XLMIGD) \
	    LXM_VERIFY_STREAM=$(VERIFY_STREAM) tests/xen-lab/run.sh

# ------------------------------------------------------------------
# Style and static analysis, on our own sources only.

FORMAT_FILES = $(sort $(wildcard libxlmig/*.[ch] libxlmig/*/*.[ch] \
                 tools/*/*.[ch] xenstore-hooks/*.[ch] tests/*.[ch] bench/*.[ch]))
ANALYZE_FILES = $(sort $(wildcard libxlmig/*.c libxlmig/*/*.c tools/*/*.c xenstore-hooks/*.c))

.PHONY: format-check format analyze
format-check:
	$(Q)$(call say,FORMAT,$(words $(FORMAT_FILES)) files) \
	    $(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES)

format:
	$(Q)$(CLANG_FORMAT) -i $(FORMAT_FILES)

analyze:
	$(Q)$(call say,CPPCHECK,$(words $(ANALYZE_FILES)) files) \
	    $(CPPCHECK) --enable=warning,portability \
	    --error-exitcode=1 --inline-suppr --quiet --std=c11 \
	    --suppress=missingIncludeSystem -D__GNUC__ -D__linux__ \
	    -I libxlmig/include -I libxlmig $(ANALYZE_FILES)

# ------------------------------------------------------------------

.PHONY: clean distclean
clean:
	$(Q)$(MAKE) -C libxlmig clean
	$(Q)$(MAKE) -C tools clean
	$(Q)$(MAKE) -C xenstore-hooks clean
	$(Q)$(MAKE) -C tests clean
	$(Q)$(MAKE) -C bench clean
	rm -rf .build-fuzz .build-flags $(addprefix fuzz/,$(FUZZ_NAMES))

distclean: clean
	rm -rf .cache fuzz/corpus fuzz/artifacts fuzz/*.log
	-@rmdir fuzz 2>/dev/null || true

.PHONY: help
help:
	@sed -n '3,14s/^# //p' Makefile
	@sed -n '/^# Knobs/,/^$$/s/^# \{0,1\}//p' Config.mk

-include $(FUZZ_LIB_OBJS:.o=.d) $(patsubst %.c,.build-fuzz/%.d,$(FUZZ_SRCS))

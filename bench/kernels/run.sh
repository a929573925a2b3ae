#!/usr/bin/env bash
# Builds the CUDA backend into build/h-bench and runs the per-op benchmark.
# Usage: bench/kernels/run.sh [tokens]   (from the repository root)
set -euo pipefail
BUILD=build/h-bench
LIB_C="$(ls src/core/*.c) src/backend/backend.c $(ls src/backend/cpu/*.c)"
CUDA_SRC="$(ls kernels/*.cu src/backend/cuda/*.cu)"
objects=""
for f in $LIB_C $CUDA_SRC bench/kernels/bench_cuda_ops.c; do
  objects="$objects $BUILD/$f.o"
done
make --no-print-directory BUILD=$BUILD CUDA=1 LIB_C="$LIB_C" LIB_CXX="" $objects
g++ -fopenmp -o $BUILD/bench_cuda_ops $objects $(make --no-print-directory -s CUDA=1 print-ldlibs)
exec $BUILD/bench_cuda_ops "$@"

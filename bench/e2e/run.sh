#!/usr/bin/env bash
# Builds the end-to-end training benchmark (the library's objects, src/cli excluded, plus
# bench/e2e/bench_train.c) into build/h-e2e and runs it with the arguments given.
# Usage, from the repository root: bench/e2e/run.sh --preset llama-3.1-8b --device cuda \
#            --micro-batch 1,2,4 --out bench/e2e/results.jsonl     (--help lists the options)
# Environment: CUDA=0|1 (default: 1 when nvcc is on the PATH), BUILD (default build/h-e2e),
# JOBS (parallel compiles, default 2).
set -euo pipefail
BUILD=${BUILD:-build/h-e2e}
if [ -z "${CUDA:-}" ]; then
  if command -v nvcc >/dev/null; then CUDA=1; else CUDA=0; fi
fi
LIB_C="$(find src -name '*.c' -not -path 'src/cli/*' -not -path 'src/backend/cuda/*' | sort)"
LIB_CXX="$(find src -name '*.cc' | sort)"
CUDA_SRC=""
if [ "$CUDA" = 1 ]; then
  CUDA_SRC="$(ls kernels/*.cu src/backend/cuda/*.cu)"
fi
objects=""
for f in $LIB_C $LIB_CXX $CUDA_SRC bench/e2e/bench_train.c; do
  objects="$objects $BUILD/$f.o"
done
make --no-print-directory -s -j"${JOBS:-2}" BUILD="$BUILD" CUDA="$CUDA" $objects
g++ -fopenmp -o "$BUILD/bench_train" $objects $(make --no-print-directory -s CUDA="$CUDA" print-ldlibs)

# The commit the numbers belong to, "+dirty" when tracked files differ from it (read only:
# GIT_OPTIONAL_LOCKS=0 keeps git status from refreshing the index). "unknown" outside git.
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
  if [ -n "$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit+dirty"
  fi
else
  commit=unknown
fi
export AL_BENCH_COMMIT="$commit"
exec "$BUILD/bench_train" "$@"

/* Which OpenBLAS kernels this CPU should run.
 *
 * OpenBLAS picks its GEMM kernels when it loads, from the CPU model. A model it does not
 * know, which is what virtual machines often report ("Intel Xeon Processor"), gets the
 * generic Prescott (SSE3) kernels even on a CPU with AVX-512: GEMMs then run 2-3x slower.
 * The choice can only be forced before the library loads, through the OPENBLAS_CORETYPE
 * environment variable, so the CLI asks here and restarts itself with it set. */
#include <cblas.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backend/cpu/cpu_blas_core.h"

/* Kernel families OpenBLAS names that already use AVX-512, or at least AVX2 with FMA. */
static const char *const AVX512_CORES[] = {"skylakex", "cooperlake", "sapphirerapids"};
static const char *const AVX2_CORES[] = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"};

static bool named_in(const char *core, const char *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcasecmp(core, names[i]) == 0)
            return true;
    return false;
}

static bool cpu_has_avx512(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

const char *al_cpu_blas_better_core(void)
{
#if defined(__x86_64__)
    const char *core = openblas_get_corename();
    if (!core)
        return NULL;
    __builtin_cpu_init();
    if (cpu_has_avx512() && !named_in(core, AVX512_CORES, sizeof AVX512_CORES / sizeof *AVX512_CORES))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        !named_in(core, AVX2_CORES, sizeof AVX2_CORES / sizeof *AVX2_CORES))
        return "Haswell";
#endif
    return NULL;
}

void al_cpu_blas_use_best_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE"))
        return;
    const char *core = al_cpu_blas_better_core();
    if (!core || setenv("OPENBLAS_CORETYPE", core, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
}

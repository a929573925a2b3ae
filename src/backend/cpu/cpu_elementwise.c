/* Elementwise ops on activations. */
#include "agentlora/error.h"
#include "backend/cpu/cpu_ops.h"

/* y may alias a or b: each element is read before it is written. */
int al_cpu_add(struct al_backend *backend, void *y, const void *a, const void *b, int64_t n)
{
    (void)backend;
    if (n < 0)
        return al_fail("cpu add: negative element count %lld", (long long)n);
    float *sum = y;
    const float *left = a;
    const float *right = b;

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(n)
    for (int64_t i = 0; i < n; i++)
        sum[i] = left[i] + right[i];
    return 0;
}

/* Optimizer ops on the F32 LoRA parameters: the squared norm (for gradient clipping) and
 * one AdamW step. */
#include <math.h>
#include <stdlib.h>

#include "agentlora/error.h"
#include "backend/cpu/cpu_ops.h"

/* sum_squares adds up fixed blocks of this many elements, each in double, then the block
 * sums in order: the result does not depend on how many threads ran. */
#define SUM_SQUARES_BLOCK 4096

int al_cpu_sum_squares(struct al_backend *backend, float *out, const float *x, int64_t n)
{
    (void)backend;
    if (n < 0)
        return al_fail("cpu sum_squares: negative element count %lld", (long long)n);
    if (n == 0)
        return 0;
    int64_t blocks = (n + SUM_SQUARES_BLOCK - 1) / SUM_SQUARES_BLOCK;
    double *partial = malloc((size_t)blocks * sizeof(double));
    if (!partial)
        return al_fail("cpu sum_squares: out of memory for %lld partial sums", (long long)blocks);

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(n)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t first = b * SUM_SQUARES_BLOCK;
        int64_t last = first + SUM_SQUARES_BLOCK < n ? first + SUM_SQUARES_BLOCK : n;
        double sum = 0.0;
        for (int64_t i = first; i < last; i++)
            sum += (double)x[i] * (double)x[i];
        partial[b] = sum;
    }
    double total = 0.0;
    for (int64_t b = 0; b < blocks; b++)
        total += partial[b];
    free(partial);
    *out += (float)total;
    return 0;
}

/* PyTorch's AdamW (torch.optim.AdamW, single-tensor path), with g = grad * grad_scale:
 *   param -= lr * weight_decay * param
 *   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
 *   param -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * The bias corrections are computed in double, as Python floats are. */
int al_cpu_adamw(struct al_backend *backend, float *param, const float *grad, float *m, float *v, int64_t n,
                 float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                 int64_t step)
{
    (void)backend;
    if (n < 0)
        return al_fail("cpu adamw: negative element count %lld", (long long)n);
    if (step < 1)
        return al_fail("cpu adamw: step counts from 1, got %lld", (long long)step);
    double bias_correction1 = 1.0 - pow(beta1, (double)step);
    double bias_correction2 = 1.0 - pow(beta2, (double)step);
    float step_size = (float)(lr / bias_correction1);
    float bias_correction2_sqrt = (float)sqrt(bias_correction2);
    float decay = (float)(1.0 - (double)lr * (double)weight_decay);

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(n)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        param[i] *= decay;
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float denom = sqrtf(v[i]) / bias_correction2_sqrt + eps;
        param[i] -= step_size * (m[i] / denom);
    }
    return 0;
}

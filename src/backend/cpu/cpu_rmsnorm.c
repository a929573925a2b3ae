/* RMSNorm: out = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps), per token. */
#include <math.h>

#include "agentlora/error.h"
#include "backend/cpu/cpu_ops.h"

/* Mean of squares, summed in double: the F32 result is then as close to exact as F32
 * allows, which is what the bf16 kernels are compared against. */
static float mean_square(const float *x, int dim)
{
    double sum = 0.0;
    for (int j = 0; j < dim; j++)
        sum += (double)x[j] * (double)x[j];
    return (float)(sum / dim);
}

int al_cpu_rmsnorm_forward(struct al_backend *backend, void *out, float *rstd, const void *x, const void *weight,
                           int64_t n, int dim, float eps)
{
    (void)backend;
    if (al_cpu_check_shape("cpu rmsnorm_forward", n, dim) != 0)
        return -1;
    const float *input = x;
    const float *w = weight;
    float *y = out;

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(n * dim)
    for (int64_t i = 0; i < n; i++) {
        const float *row = input + i * dim;
        float r = 1.0f / sqrtf(mean_square(row, dim) + eps);
        rstd[i] = r;
        /* x * rstd is one rounding (to the activation type, F32 here), then the weight. */
        for (int j = 0; j < dim; j++) {
            float normalized = row[j] * r;
            y[i * dim + j] = normalized * w[j];
        }
    }
    return 0;
}

/* With xhat = x * rstd and g = dout * weight:
 *   dx = rstd * (g - xhat * mean(g * xhat)),   dweight += sum over tokens of dout * xhat. */
static void rmsnorm_backward_row(float *dx, const float *dout, const float *x, const float *weight, float rstd,
                                 int dim)
{
    double dot = 0.0;
    for (int j = 0; j < dim; j++)
        dot += (double)(dout[j] * weight[j]) * (double)(x[j] * rstd);
    float mean_dot = (float)(dot / dim);
    for (int j = 0; j < dim; j++) {
        float xhat = x[j] * rstd;
        dx[j] = rstd * (dout[j] * weight[j] - xhat * mean_dot);
    }
}

/* Threads split the columns so that each dweight element sums its tokens in order. */
static void accumulate_dweight(float *dweight, const float *dout, const float *x, const float *rstd, int64_t n,
                               int dim)
{
    int blocks = (dim + AL_CPU_COLUMN_BLOCK - 1) / AL_CPU_COLUMN_BLOCK;

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(n * dim)
    for (int block = 0; block < blocks; block++) {
        int first = block * AL_CPU_COLUMN_BLOCK;
        int last = first + AL_CPU_COLUMN_BLOCK < dim ? first + AL_CPU_COLUMN_BLOCK : dim;
        for (int64_t i = 0; i < n; i++)
            for (int j = first; j < last; j++)
                dweight[j] += dout[i * dim + j] * (x[i * dim + j] * rstd[i]);
    }
}

int al_cpu_rmsnorm_backward(struct al_backend *backend, void *dx, float *dweight, const void *dout,
                            const void *x, const void *weight, const float *rstd, int64_t n, int dim)
{
    (void)backend;
    if (al_cpu_check_shape("cpu rmsnorm_backward", n, dim) != 0)
        return -1;
    float *grad_x = dx;
    const float *grad_out = dout;
    const float *input = x;

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(n * dim)
    for (int64_t i = 0; i < n; i++)
        rmsnorm_backward_row(grad_x + i * dim, grad_out + i * dim, input + i * dim, weight, rstd[i], dim);

    if (dweight)
        accumulate_dweight(dweight, grad_out, input, rstd, n, dim);
    return 0;
}

/* Linear layer with optional bias and LoRA:
 *   y = x W^T + bias + scale * (drop(x) A^T) B^T
 * Every product is one al_cpu_gemm (cpu_gemm.c, row-major). Dropout is counter-based: element e of x
 * (flat index t * in + c) is kept when al_hash_uniform(seed, e) >= dropout, so backward
 * regenerates exactly the forward mask without storing it. */
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/rng.h"
#include "backend/cpu/cpu_ops.h"

static int check_linear(const char *op, const struct al_lora_args *lora, int64_t n, int in, int out)
{
    if (al_cpu_check_shape(op, n, in) != 0 || al_cpu_check_shape(op, n, out) != 0)
        return -1;
    return al_backend_check_lora_args(op, lora);
}

/* The factor dropout applies to element `index`: 0 when dropped, 1 / (1 - p) when kept. */
static float dropout_factor(const struct al_lora_args *lora, uint64_t index)
{
    if (al_hash_uniform(lora->dropout_seed, index) < lora->dropout)
        return 0.0f;
    return 1.0f / (1.0f - lora->dropout);
}

/* drop(x) in a fresh buffer, or x itself when dropout is off (*owned stays NULL). */
static const float *dropped_input(const char *op, const struct al_lora_args *lora, const float *x, int64_t n,
                                  int in, float **owned)
{
    *owned = NULL;
    if (lora->dropout == 0.0f)
        return x;
    int64_t count = n * in;
    float *dropped = malloc((size_t)count * sizeof(float));
    if (!dropped) {
        al_fail("%s: out of memory for the dropout of %lld x %d inputs", op, (long long)n, in);
        return NULL;
    }
#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(count)
    for (int64_t e = 0; e < count; e++)
        dropped[e] = x[e] * dropout_factor(lora, (uint64_t)e);
    *owned = dropped;
    return dropped;
}

static void broadcast_bias(float *y, const float *bias, int64_t n, int out)
{
#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(n * out)
    for (int64_t i = 0; i < n; i++)
        memcpy(y + i * out, bias, (size_t)out * sizeof(float));
}

int al_cpu_linear_forward(struct al_backend *backend, void *y, const void *x, const void *weight,
                          const void *bias, const struct al_lora_args *lora, int64_t n, int in, int out)
{
    (void)backend;
    const char *op = "cpu linear_forward";
    if (check_linear(op, lora, n, in, out) != 0)
        return -1;
    if (n == 0)
        return 0;

    /* y = bias (broadcast), then y += x W^T; without bias the GEMM overwrites y. */
    float beta = 0.0f;
    if (bias) {
        broadcast_bias(y, bias, n, out);
        beta = 1.0f;
    }
    al_cpu_gemm(false, true, n, out, in, 1.0f, x, in, weight, in, beta, y, out);
    if (!lora)
        return 0;

    float *owned = NULL;
    const float *input = dropped_input(op, lora, x, n, in, &owned);
    if (!input)
        return -1;
    int rank = lora->rank;
    /* xa = drop(x) A^T is kept for backward (dB needs it); y += scale * xa B^T. */
    al_cpu_gemm(false, true, n, rank, in, 1.0f, input, in, lora->A, in, 0.0f, lora->xa, rank);
    al_cpu_gemm(false, true, n, out, rank, lora->scale, lora->xa, rank, lora->B, rank, 1.0f, y, out);
    free(owned);
    return 0;
}

/* dx += scale * drop'(g A), where drop' multiplies by the same factors as the forward
 * mask (the derivative of a fixed mask is the mask). */
static int add_lora_input_gradient(const char *op, float *dx, const float *g, const struct al_lora_args *lora,
                                   int64_t n, int in)
{
    int rank = lora->rank;
    if (lora->dropout == 0.0f) {
        al_cpu_gemm(false, false, n, in, rank, lora->scale, g, rank, lora->A, in, 1.0f, dx, in);
        return 0;
    }
    int64_t count = n * in;
    float *through_a = malloc((size_t)count * sizeof(float));
    if (!through_a)
        return al_fail("%s: out of memory for a %lld x %d LoRA input gradient", op, (long long)n, in);
    al_cpu_gemm(false, false, n, in, rank, 1.0f, g, rank, lora->A, in, 0.0f, through_a, in);
#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(count)
    for (int64_t e = 0; e < count; e++)
        dx[e] += lora->scale * (through_a[e] * dropout_factor(lora, (uint64_t)e));
    free(through_a);
    return 0;
}

/* With g = dy B [n, rank]:
 *   dB += scale * dy^T xa,   dA += scale * g^T drop(x),   dx += scale * drop'(g A). */
static int lora_backward(const char *op, float *dx, const float *dy, const float *x,
                         const struct al_lora_args *lora, int64_t n, int in, int out)
{
    int rank = lora->rank;
    al_cpu_gemm(true, false, out, rank, n, lora->scale, dy, out, lora->xa, rank, 1.0f, lora->dB, rank);

    float *g = malloc((size_t)n * (size_t)rank * sizeof(float));
    if (!g)
        return al_fail("%s: out of memory for a %lld x %d LoRA gradient", op, (long long)n, rank);
    al_cpu_gemm(false, false, n, rank, out, 1.0f, dy, out, lora->B, rank, 0.0f, g, rank);

    float *owned = NULL;
    const float *input = dropped_input(op, lora, x, n, in, &owned);
    int status = input ? 0 : -1;
    if (input)
        al_cpu_gemm(true, false, rank, in, n, lora->scale, g, rank, input, in, 1.0f, lora->dA, in);
    free(owned);
    if (status == 0 && dx)
        status = add_lora_input_gradient(op, dx, g, lora, n, in);
    free(g);
    return status;
}

int al_cpu_linear_backward(struct al_backend *backend, void *dx, int accumulate_dx, const void *dy,
                           const void *x, const void *weight, const struct al_lora_args *lora, int64_t n, int in,
                           int out)
{
    (void)backend;
    const char *op = "cpu linear_backward";
    if (check_linear(op, lora, n, in, out) != 0)
        return -1;
    if (lora && (!lora->dA || !lora->dB))
        return al_fail("%s: LoRA arguments lack the dA or dB accumulator", op);
    if (n == 0) /* nothing flows back; parameter gradients are unchanged */
        return 0;

    /* dx = dy W, or dx += dy W when q, k and v share the input. */
    if (dx)
        al_cpu_gemm(false, false, n, in, out, 1.0f, dy, out, weight, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
    if (!lora)
        return 0;
    return lora_backward(op, dx, dy, x, lora, n, in, out);
}

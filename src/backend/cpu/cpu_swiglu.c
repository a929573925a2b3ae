/* SwiGLU gating: out = silu(gate) * up, silu(g) = g * sigmoid(g). */
#include <math.h>

#include "agentlora/error.h"
#include "backend/cpu/cpu_ops.h"

/* For very negative g, expf(-g) overflows to infinity and the quotient is a clean 0. */
static float sigmoid(float g)
{
    return 1.0f / (1.0f + expf(-g));
}

int al_cpu_swiglu_forward(struct al_backend *backend, void *out, const void *gate, const void *up, int64_t n,
                          int dim)
{
    (void)backend;
    if (al_cpu_check_shape("cpu swiglu_forward", n, dim) != 0)
        return -1;
    float *y = out;
    const float *g = gate;
    const float *u = up;
    int64_t count = n * dim;

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(count)
    for (int64_t i = 0; i < count; i++)
        y[i] = g[i] * sigmoid(g[i]) * u[i];
    return 0;
}

/* d silu(g)/dg = sigmoid(g) * (1 + g * (1 - sigmoid(g))). */
int al_cpu_swiglu_backward(struct al_backend *backend, void *dgate, void *dup, const void *dout,
                           const void *gate, const void *up, int64_t n, int dim)
{
    (void)backend;
    if (al_cpu_check_shape("cpu swiglu_backward", n, dim) != 0)
        return -1;
    float *grad_gate = dgate;
    float *grad_up = dup;
    const float *grad_out = dout;
    const float *g = gate;
    const float *u = up;
    int64_t count = n * dim;

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(count)
    for (int64_t i = 0; i < count; i++) {
        float s = sigmoid(g[i]);
        float silu = g[i] * s;
        grad_gate[i] = grad_out[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        grad_up[i] = grad_out[i] * silu;
    }
    return 0;
}

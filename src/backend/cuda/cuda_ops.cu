/* Host glue of the small ops: argument checks, then one launcher each. The kernels and
 * their CPU references are named in kernels/kernels.h. */
#include <math.h>

#include "backend/cuda/cuda_internal.h"

typedef const al_bf16 *bf16_in;

int al_cuda_embedding_forward(struct al_backend *backend, void *out, const int32_t *ids, const void *table,
                              int64_t n, int dim)
{
    if (al_cuda_check_shape("cuda embedding_forward", n, dim) != 0)
        return -1;
    AL_CUDA_TRY(al_launch_embedding_forward((al_bf16 *)out, ids, (bf16_in)table, n, dim, al_cuda_of(backend)->stream));
    return 0;
}

int al_cuda_embedding_backward(struct al_backend *backend, float *dtable, const int32_t *ids, const void *dout,
                               int64_t n, int dim)
{
    if (al_cuda_check_shape("cuda embedding_backward", n, dim) != 0)
        return -1;
    AL_CUDA_TRY(al_launch_embedding_backward(dtable, ids, (bf16_in)dout, n, dim, al_cuda_of(backend)->stream));
    return 0;
}

int al_cuda_rmsnorm_forward(struct al_backend *backend, void *out, float *rstd, const void *x, const void *weight,
                            int64_t n, int dim, float eps)
{
    if (al_cuda_check_shape("cuda rmsnorm_forward", n, dim) != 0)
        return -1;
    AL_CUDA_TRY(al_launch_rmsnorm_forward((al_bf16 *)out, rstd, (bf16_in)x, (bf16_in)weight, n, dim, eps,
                                          al_cuda_of(backend)->stream));
    return 0;
}

int al_cuda_rmsnorm_backward(struct al_backend *backend, void *dx, float *dweight, const void *dout, const void *x,
                             const void *weight, const float *rstd, int64_t n, int dim)
{
    if (al_cuda_check_shape("cuda rmsnorm_backward", n, dim) != 0)
        return -1;
    AL_CUDA_TRY(al_launch_rmsnorm_backward((al_bf16 *)dx, dweight, (bf16_in)dout, (bf16_in)x, (bf16_in)weight, rstd,
                                           n, dim, al_cuda_of(backend)->stream));
    return 0;
}

static int rope(struct al_backend *backend, const char *op, void *x, const int32_t *pos, const float *inv_freq,
                int64_t n, int heads, int head_dim, float direction)
{
    if (al_cuda_check_shape(op, n, heads) != 0)
        return -1;
    if (head_dim <= 0 || head_dim % 2 != 0)
        return al_fail("%s: head_dim must be positive and even, got %d", op, head_dim);
    AL_CUDA_TRY(al_launch_rope((al_bf16 *)x, pos, inv_freq, n, heads, head_dim, direction,
                               al_cuda_of(backend)->stream));
    return 0;
}

int al_cuda_rope_forward(struct al_backend *backend, void *x, const int32_t *pos, const float *inv_freq, int64_t n,
                         int heads, int head_dim)
{
    return rope(backend, "cuda rope_forward", x, pos, inv_freq, n, heads, head_dim, 1.0f);
}

int al_cuda_rope_backward(struct al_backend *backend, void *dx, const int32_t *pos, const float *inv_freq,
                          int64_t n, int heads, int head_dim)
{
    return rope(backend, "cuda rope_backward", dx, pos, inv_freq, n, heads, head_dim, -1.0f);
}

int al_cuda_swiglu_forward(struct al_backend *backend, void *out, const void *gate, const void *up, int64_t n,
                           int dim)
{
    if (al_cuda_check_shape("cuda swiglu_forward", n, dim) != 0)
        return -1;
    AL_CUDA_TRY(al_launch_swiglu_forward((al_bf16 *)out, (bf16_in)gate, (bf16_in)up, n * dim,
                                         al_cuda_of(backend)->stream));
    return 0;
}

int al_cuda_swiglu_backward(struct al_backend *backend, void *dgate, void *dup, const void *dout, const void *gate,
                            const void *up, int64_t n, int dim)
{
    if (al_cuda_check_shape("cuda swiglu_backward", n, dim) != 0)
        return -1;
    AL_CUDA_TRY(al_launch_swiglu_backward((al_bf16 *)dgate, (al_bf16 *)dup, (bf16_in)dout, (bf16_in)gate, (bf16_in)up,
                                          n * dim, al_cuda_of(backend)->stream));
    return 0;
}

int al_cuda_add(struct al_backend *backend, void *y, const void *a, const void *b, int64_t n)
{
    if (n < 0)
        return al_fail("cuda add: negative element count %lld", (long long)n);
    AL_CUDA_TRY(al_launch_add((al_bf16 *)y, (bf16_in)a, (bf16_in)b, n, al_cuda_of(backend)->stream));
    return 0;
}

int al_cuda_sum_squares(struct al_backend *backend, float *out, const float *x, int64_t n)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    if (n < 0)
        return al_fail("cuda sum_squares: negative element count %lld", (long long)n);
    AL_CUDA_TRY(al_launch_sum_squares(out, x, n, cuda->reduce_partials, cuda->stream));
    return 0;
}

/* The bias corrections in double, as the CPU reference (and PyTorch) form them. */
int al_cuda_adamw(struct al_backend *backend, float *param, const float *grad, float *m, float *v, int64_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale, int64_t step)
{
    if (n < 0)
        return al_fail("cuda adamw: negative element count %lld", (long long)n);
    if (step < 1)
        return al_fail("cuda adamw: step counts from 1, got %lld", (long long)step);
    double bias_correction1 = 1.0 - pow(beta1, (double)step);
    double bias_correction2 = 1.0 - pow(beta2, (double)step);
    struct al_adamw_step s;
    s.lr = lr;
    s.beta1 = beta1;
    s.beta2 = beta2;
    s.eps = eps;
    s.grad_scale = grad_scale;
    s.decay = 1.0f - lr * weight_decay;
    s.step_size = (float)(lr / bias_correction1);
    s.bias_correction2_sqrt = (float)sqrt(bias_correction2);
    AL_CUDA_TRY(al_launch_adamw(param, grad, m, v, n, &s, al_cuda_of(backend)->stream));
    return 0;
}

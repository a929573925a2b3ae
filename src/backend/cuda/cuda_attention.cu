/* Host glue of flash-style attention (kernels/attention.cu): argument checks, and the
 * backward's three launches around one [n, q_heads] F32 scratch (delta = rowsum(dout * out)).
 * CPU reference: src/backend/cpu/cpu_attention.c. */
#include "backend/cuda/cuda_internal.h"

static int check_attention(const char *op, int window, int64_t n, int q_heads, int kv_heads, int head_dim)
{
    if (window < 0)
        return al_fail("%s: sliding window %d is negative (0 means none)", op, window);
    if (al_cuda_check_shape(op, n, q_heads) != 0 || al_cuda_check_shape(op, n, kv_heads) != 0)
        return -1;
    if (q_heads % kv_heads != 0)
        return al_fail("%s: %d query heads cannot share %d kv heads evenly", op, q_heads, kv_heads);
    if (head_dim <= 0 || head_dim > AL_ATTENTION_MAX_HEAD_DIM)
        return al_fail("%s: head_dim %d is outside 1..%d", op, head_dim, AL_ATTENTION_MAX_HEAD_DIM);
    if (n > INT32_MAX)
        return al_fail("%s: %lld tokens exceed what int32 document starts can index", op, (long long)n);
    return 0;
}

int al_cuda_attention_forward(struct al_backend *backend, void *out, float *lse, const void *q, const void *k,
                              const void *v, const int32_t *doc_start, int window, int64_t n, int q_heads,
                              int kv_heads, int head_dim)
{
    if (check_attention("cuda attention_forward", window, n, q_heads, kv_heads, head_dim) != 0)
        return -1;
    AL_CUDA_TRY(al_launch_attention_forward((al_bf16 *)out, lse, (const al_bf16 *)q, (const al_bf16 *)k,
                                            (const al_bf16 *)v, doc_start, window, n, q_heads, kv_heads, head_dim,
                                            al_cuda_of(backend)->stream));
    return 0;
}

static int backward_kernels(struct al_cuda *cuda, float *delta, al_bf16 *dq, al_bf16 *dk, al_bf16 *dv,
                            const al_bf16 *dout, const al_bf16 *q, const al_bf16 *k, const al_bf16 *v,
                            const al_bf16 *out, const float *lse, const int32_t *doc_start, int window, int64_t n,
                            int q_heads, int kv_heads, int head_dim)
{
    AL_CUDA_TRY(al_launch_attention_delta(delta, dout, out, n, q_heads, head_dim, cuda->stream));
    AL_CUDA_TRY(al_launch_attention_backward_dq(dq, dout, q, k, v, lse, delta, doc_start, window, n, q_heads,
                                                kv_heads, head_dim, cuda->stream));
    AL_CUDA_TRY(al_launch_attention_backward_dkdv(dk, dv, dout, q, k, v, lse, delta, doc_start, window, n, q_heads,
                                                  kv_heads, head_dim, cuda->stream));
    return 0;
}

int al_cuda_attention_backward(struct al_backend *backend, void *dq, void *dk, void *dv, const void *dout,
                               const void *q, const void *k, const void *v, const void *out, const float *lse,
                               const int32_t *doc_start, int window, int64_t n, int q_heads, int kv_heads,
                               int head_dim)
{
    struct al_cuda *cuda = al_cuda_of(backend);
    if (check_attention("cuda attention_backward", window, n, q_heads, kv_heads, head_dim) != 0)
        return -1;
    if (n == 0)
        return 0;
    float *delta = (float *)al_cuda_scratch(cuda, (size_t)n * q_heads * sizeof(float), "attention backward");
    if (!delta)
        return -1;
    int status = backward_kernels(cuda, delta, (al_bf16 *)dq, (al_bf16 *)dk, (al_bf16 *)dv, (const al_bf16 *)dout,
                                  (const al_bf16 *)q, (const al_bf16 *)k, (const al_bf16 *)v, (const al_bf16 *)out,
                                  lse, doc_start, window, n, q_heads, kv_heads, head_dim);
    al_cuda_scratch_free(cuda, delta);
    return status;
}

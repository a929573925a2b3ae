/* Host-side launchers of the CUDA kernels, one family per file in kernels/. Each launcher
 * queues its kernel(s) on `stream` and returns the launch status (cudaGetLastError), which
 * the host glue in src/backend/cuda/ checks and turns into an al_fail message.
 *
 * Element types follow the CUDA backend: activations, frozen weights, biases and norm
 * weights are bf16; LoRA matrices, parameter gradients, optimizer state, rstd and lse
 * are F32. Shapes are row-major, as in src/backend/backend.h. */
#ifndef AGENTLORA_KERNELS_H
#define AGENTLORA_KERNELS_H

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "agentlora/dtype.h"
}

typedef __nv_bfloat16 al_bf16;

/* LoRA dropout, regenerated from (seed, flat element index) as on the CPU. */
struct al_dropout {
    float probability; /* 0 disables */
    float keep_scale;  /* 1 / (1 - probability), formed in F32 as the CPU does */
    uint64_t seed;
};

/* ---- convert.cu: F32 / F16 / BF16 conversions (CPU reference: al_convert, src/core/dtype.c) ---- */
cudaError_t al_launch_convert(void *dst, enum al_dtype dst_dtype, const void *src, enum al_dtype src_dtype,
                              int64_t n, cudaStream_t stream);

/* ---- embedding.cu (CPU reference: src/backend/cpu/cpu_embedding.c) ---- */
cudaError_t al_launch_embedding_forward(al_bf16 *out, const int32_t *ids, const al_bf16 *table, int64_t n,
                                        int dim, cudaStream_t stream);
cudaError_t al_launch_embedding_backward(float *dtable, const int32_t *ids, const al_bf16 *dout, int64_t n,
                                         int dim, cudaStream_t stream);

/* ---- rmsnorm.cu (CPU reference: src/backend/cpu/cpu_rmsnorm.c) ---- */
cudaError_t al_launch_rmsnorm_forward(al_bf16 *out, float *rstd, const al_bf16 *x, const al_bf16 *weight,
                                      int64_t n, int dim, float eps, cudaStream_t stream);
cudaError_t al_launch_rmsnorm_backward(al_bf16 *dx, float *dweight, const al_bf16 *dout, const al_bf16 *x,
                                       const al_bf16 *weight, const float *rstd, int64_t n, int dim,
                                       cudaStream_t stream);

/* ---- rope.cu (CPU reference: src/backend/cpu/cpu_rope.c); direction +1 forward, -1 backward ---- */
cudaError_t al_launch_rope(al_bf16 *x, const int32_t *pos, const float *inv_freq, int64_t n, int heads,
                           int head_dim, float direction, cudaStream_t stream);

/* ---- elementwise.cu (CPU references: cpu_swiglu.c, cpu_elementwise.c, cpu_linear.c add_bias) ---- */
cudaError_t al_launch_swiglu_forward(al_bf16 *out, const al_bf16 *gate, const al_bf16 *up, int64_t count,
                                     cudaStream_t stream);
cudaError_t al_launch_swiglu_backward(al_bf16 *dgate, al_bf16 *dup, const al_bf16 *dout, const al_bf16 *gate,
                                      const al_bf16 *up, int64_t count, cudaStream_t stream);
cudaError_t al_launch_add(al_bf16 *y, const al_bf16 *a, const al_bf16 *b, int64_t count, cudaStream_t stream);
/* y[i, j] += bias[j]; y [n, out]. */
cudaError_t al_launch_add_bias(al_bf16 *y, const al_bf16 *bias, int64_t n, int out, cudaStream_t stream);

/* ---- lora.cu: the small fp32 products of LoRA (CPU reference: src/backend/cpu/cpu_linear.c) ----
 * C[i, j] = alpha * dropC(i, j) * sum_k L(i, k) R(k, j) + beta * C[i, j], with
 * L(i, k) = dropL(o) * L.data[o], o = i * row_stride + k * col_stride (and likewise R(k, j) with
 * o = k * row_stride + j * col_stride); a dropout's index is the element's flat offset o,
 * and the output's is i * ld + j. Every operand may be bf16 or F32; accumulation is F32. */
struct al_skinny_operand {
    const void *data;
    int is_bf16;
    int64_t row_stride;
    int64_t col_stride;
    struct al_dropout dropout;
};

struct al_skinny_output {
    void *data;
    int is_bf16;
    int64_t ld;
    float alpha;
    float beta; /* 0: C is overwritten and never read */
    struct al_dropout dropout;
};

cudaError_t al_launch_skinny_gemm(int64_t m, int64_t n, int64_t k, const struct al_skinny_operand *left,
                                  const struct al_skinny_operand *right, const struct al_skinny_output *out,
                                  cudaStream_t stream);

/* ---- attention.cu (CPU reference: src/backend/cpu/cpu_attention.c) ----
 * head_dim must be at most AL_ATTENTION_MAX_HEAD_DIM; window 0 means none (see backend.h's
 * attention_forward for the mask). delta [n, q_heads] F32 is
 * rowsum(dout * out), formed by al_launch_attention_delta before the two backward kernels. */
#define AL_ATTENTION_MAX_HEAD_DIM 128
cudaError_t al_launch_attention_forward(al_bf16 *out, float *lse, const al_bf16 *q, const al_bf16 *k,
                                        const al_bf16 *v, const int32_t *doc_start, int window, int64_t n,
                                        int q_heads, int kv_heads, int head_dim, cudaStream_t stream);
cudaError_t al_launch_attention_delta(float *delta, const al_bf16 *dout, const al_bf16 *out, int64_t n,
                                      int q_heads, int head_dim, cudaStream_t stream);
cudaError_t al_launch_attention_backward_dq(al_bf16 *dq, const al_bf16 *dout, const al_bf16 *q, const al_bf16 *k,
                                            const al_bf16 *v, const float *lse, const float *delta,
                                            const int32_t *doc_start, int window, int64_t n, int q_heads,
                                            int kv_heads, int head_dim, cudaStream_t stream);
cudaError_t al_launch_attention_backward_dkdv(al_bf16 *dk, al_bf16 *dv, const al_bf16 *dout, const al_bf16 *q,
                                              const al_bf16 *k, const al_bf16 *v, const float *lse,
                                              const float *delta, const int32_t *doc_start, int window, int64_t n,
                                              int q_heads, int kv_heads, int head_dim, cudaStream_t stream);

/* ---- decode.cu: KV-cache decoding (CPU reference: src/backend/cpu/cpu_decode.c) ----
 * The cache tensors are [sequences, capacity, kv_heads, head_dim] bf16; seq and pos are
 * device int32 [n]. head_dim must be at most AL_ATTENTION_MAX_HEAD_DIM. A token whose seq
 * or pos is outside the cache is not written, and its attention output row is NaN. */
cudaError_t al_launch_kv_cache_write(al_bf16 *cache_k, al_bf16 *cache_v, const al_bf16 *k, const al_bf16 *v,
                                     const int32_t *seq, const int32_t *pos, int64_t n, int kv_heads,
                                     int head_dim, int sequences, int capacity, cudaStream_t stream);
cudaError_t al_launch_decode_attention(al_bf16 *out, const al_bf16 *q, const al_bf16 *cache_k,
                                       const al_bf16 *cache_v, const int32_t *seq, const int32_t *pos, int window,
                                       int64_t n, int q_heads, int kv_heads, int head_dim, int sequences,
                                       int capacity, cudaStream_t stream);

/* ---- cross_entropy.cu (CPU reference: src/backend/cpu/cpu_cross_entropy.c) ----
 * For each of `rows` rows of F32 logits [rows, vocab]: row_loss[r] = lse - logit[target]
 * (0 without a target) and, when dlogits is not NULL, dlogits[r] = grad_scale *
 * (softmax - onehot(target)) in bf16 (a zero row without a target). */
cudaError_t al_launch_cross_entropy_rows(const float *logits, al_bf16 *dlogits, float *row_loss,
                                         const int32_t *targets, int rows, int vocab, float grad_scale,
                                         cudaStream_t stream);
/* *out += sum of values[0..count), summed by one block in a fixed order (deterministic). */
cudaError_t al_launch_sum_into(float *out, const float *values, int64_t count, cudaStream_t stream);

/* ---- optimizer.cu (CPU reference: src/backend/cpu/cpu_optimizer.c) ---- */
/* Scratch the sum of squares needs: one F32 partial per block. */
#define AL_SUM_SQUARES_BLOCKS 512
cudaError_t al_launch_sum_squares(float *out, const float *x, int64_t n, float *partials, cudaStream_t stream);
struct al_adamw_step {
    float lr, beta1, beta2, eps, grad_scale;
    float decay;                 /* 1 - lr * weight_decay */
    float step_size;             /* lr / (1 - beta1^t) */
    float bias_correction2_sqrt; /* sqrt(1 - beta2^t) */
};
cudaError_t al_launch_adamw(float *param, const float *grad, float *m, float *v, int64_t n,
                            const struct al_adamw_step *step, cudaStream_t stream);

#endif

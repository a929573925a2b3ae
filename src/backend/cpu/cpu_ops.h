/* The CPU backend's ops, one family per file, collected into the ops table by
 * cpu_backend.c. Every pointer is host memory; every element is F32 (act_dtype and
 * weight_dtype are both F32 on the CPU), so the ops cast void pointers to float.
 *
 * Determinism: training must be bit-reproducible from run to run, so no op lets the
 * order of a floating-point sum depend on thread scheduling. Loops are split with static
 * schedules over independent rows (or column blocks, for parameter gradients), and
 * partial sums are combined in a fixed order. */
#ifndef AGENTLORA_CPU_OPS_H
#define AGENTLORA_CPU_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

/* Parameter gradients accumulated over tokens (dweight, dtable) are split into blocks of
 * this many columns: each thread owns whole columns and walks the tokens in order, so the
 * sum for every element is formed in the same order whatever the thread count. */
#define AL_CPU_COLUMN_BLOCK 64

/* Loops with less work than this (elements, or multiply-adds) run on one thread: waking
 * a team costs more than it saves on small ops, which are common (tests, decoding one
 * token). How a loop is split never changes its results, only its speed. */
#define AL_CPU_PARALLEL_MIN_WORK 32768
#define AL_CPU_PARALLEL_IF(work) if ((int64_t)(work) >= AL_CPU_PARALLEL_MIN_WORK)

/* ---- cpu_gemm.c ---- */
/* Rows (or columns) of C per GEMM block: large enough for BLAS speed, small enough that a
 * token-sized product splits across threads. */
#define AL_CPU_GEMM_BLOCK 128

/* Keeps OpenBLAS to one thread; the backend calls it once at creation. */
void al_cpu_gemm_init(void);

/* C = alpha op(A) op(B) + beta C, row-major (op(A) is m x k, op(B) k x n), threaded over
 * fixed blocks, with the same bits for any thread count. */
void al_cpu_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* Checks shared by the ops: a message naming the op, and -1, on a bad argument. */
int al_cpu_check_shape(const char *op, int64_t n, int dim);

/* ---- cpu_embedding.c ---- */
int al_cpu_embedding_forward(struct al_backend *backend, void *out, const int32_t *ids, const void *table,
                             int64_t n, int dim);
int al_cpu_embedding_backward(struct al_backend *backend, float *dtable, const int32_t *ids, const void *dout,
                              int64_t n, int dim);

/* ---- cpu_rmsnorm.c ---- */
int al_cpu_rmsnorm_forward(struct al_backend *backend, void *out, float *rstd, const void *x, const void *weight,
                           int64_t n, int dim, float eps);
int al_cpu_rmsnorm_backward(struct al_backend *backend, void *dx, float *dweight, const void *dout,
                            const void *x, const void *weight, const float *rstd, int64_t n, int dim);

/* ---- cpu_rope.c ---- */
int al_cpu_rope_forward(struct al_backend *backend, void *x, const int32_t *pos, const float *inv_freq,
                        int64_t n, int heads, int head_dim);
int al_cpu_rope_backward(struct al_backend *backend, void *dx, const int32_t *pos, const float *inv_freq,
                         int64_t n, int heads, int head_dim);

/* ---- cpu_attention.c ---- */
int al_cpu_attention_forward(struct al_backend *backend, void *out, float *lse, const void *q, const void *k,
                             const void *v, const int32_t *doc_start, int window, int64_t n, int q_heads,
                             int kv_heads, int head_dim);
int al_cpu_attention_backward(struct al_backend *backend, void *dq, void *dk, void *dv, const void *dout,
                              const void *q, const void *k, const void *v, const void *out, const float *lse,
                              const int32_t *doc_start, int window, int64_t n, int q_heads, int kv_heads,
                              int head_dim);

/* ---- cpu_swiglu.c ---- */
int al_cpu_swiglu_forward(struct al_backend *backend, void *out, const void *gate, const void *up, int64_t n,
                          int dim);
int al_cpu_swiglu_backward(struct al_backend *backend, void *dgate, void *dup, const void *dout,
                           const void *gate, const void *up, int64_t n, int dim);

/* ---- cpu_linear.c ---- */
int al_cpu_linear_forward(struct al_backend *backend, void *y, const void *x, const void *weight,
                          const void *bias, const struct al_lora_args *lora, int64_t n, int in, int out);
int al_cpu_linear_backward(struct al_backend *backend, void *dx, int accumulate_dx, const void *dy,
                           const void *x, const void *weight, const struct al_lora_args *lora, int64_t n,
                           int in, int out);

/* ---- cpu_elementwise.c ---- */
int al_cpu_add(struct al_backend *backend, void *y, const void *a, const void *b, int64_t n);

/* ---- cpu_cross_entropy.c ---- */
int al_cpu_lm_head_cross_entropy(struct al_backend *backend, float *loss_sum, void *dx, const void *x,
                                 const void *weight, const int32_t *targets, int64_t n, int dim, int vocab,
                                 float grad_scale);

/* ---- cpu_optimizer.c ---- */
int al_cpu_sum_squares(struct al_backend *backend, float *out, const float *x, int64_t n);
int al_cpu_adamw(struct al_backend *backend, float *param, const float *grad, float *m, float *v, int64_t n,
                 float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                 int64_t step);

/* ---- cpu_decode.c ---- */
int al_cpu_kv_cache_write(struct al_backend *backend, const struct al_kv_cache_layer *cache, const void *k,
                          const void *v, const int32_t *seq, const int32_t *pos, int64_t n, int kv_heads,
                          int head_dim);
int al_cpu_decode_attention(struct al_backend *backend, void *out, const void *q,
                            const struct al_kv_cache_layer *cache, const int32_t *seq, const int32_t *pos,
                            int window, int64_t n, int q_heads, int kv_heads, int head_dim);

#endif

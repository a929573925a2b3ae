/* The CUDA backend's private state and the helpers its op files share: the status
 * checks that turn every CUDA / cuBLAS / cuBLASLt failure into an al_fail message, the
 * device-memory arena, and the bf16 GEMM. Compiled as C++ by nvcc; the project's C headers
 * are included with C linkage. */
#ifndef AGENTLORA_CUDA_INTERNAL_H
#define AGENTLORA_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "agentlora/error.h"
#include "backend/backend.h"
}

#include "kernels.h"

struct al_cuda_arena;

struct al_cuda {
    int device;
    cudaStream_t stream; /* every op is queued here, so stream order is the only ordering */
    cublasHandle_t blas;
    cublasLtHandle_t blas_lt;
    void *gemm_workspace;
    size_t gemm_workspace_bytes;
    float *reduce_partials; /* AL_SUM_SQUARES_BLOCKS floats for sum_squares */
    struct al_cuda_arena *arena;
    void *group;    /* the NCCL communicator of a data-parallel run, or NULL */
    int group_size;
};

static inline struct al_cuda *al_cuda_of(struct al_backend *backend)
{
    return (struct al_cuda *)backend->impl;
}

/* ---- cuda_check.cu: 0 on success; otherwise records "<call> failed at file:line: <why>"
 * and returns -1. ---- */
int al_cuda_check_runtime(cudaError_t status, const char *call, const char *file, int line);
int al_cuda_check_blas(cublasStatus_t status, const char *call, const char *file, int line);

static inline int al_cuda_check(cudaError_t status, const char *call, const char *file, int line)
{
    return status == cudaSuccess ? 0 : al_cuda_check_runtime(status, call, file, line);
}

static inline int al_cuda_check(cublasStatus_t status, const char *call, const char *file, int line)
{
    return status == CUBLAS_STATUS_SUCCESS ? 0 : al_cuda_check_blas(status, call, file, line);
}

/* Every CUDA, cuBLAS and cuBLASLt call (and every kernel launcher, which returns the
 * launch status) goes through this: on failure the function returns -1 with the message. */
#define AL_CUDA_TRY(call)                                                                          \
    do {                                                                                           \
        if (al_cuda_check((call), #call, __FILE__, __LINE__) != 0)                                 \
            return -1;                                                                             \
    } while (0)

/* ---- cuda_nccl.cu: the group ops (data parallelism over NCCL) ---- */
int al_cuda_group_id(struct al_backend *backend, unsigned char *id);
int al_cuda_group_join(struct al_backend *backend, const unsigned char *id, int rank, int size);
int al_cuda_group_sum_f32(struct al_backend *backend, float *data, int64_t n);
void al_cuda_group_leave(struct al_cuda *cuda);

/* ---- cuda_arena.cu: device memory carved out of large cudaMalloc'd chunks ---- */
struct al_cuda_arena *al_cuda_arena_create(size_t initial_bytes, size_t grow_bytes);
void al_cuda_arena_destroy(struct al_cuda_arena *arena);
/* NULL + al_fail when the device is out of memory. Not zeroed. */
void *al_cuda_arena_alloc(struct al_cuda_arena *arena, size_t bytes);
/* -1 (no message) when ptr did not come from this arena or is already free. */
int al_cuda_arena_free(struct al_cuda_arena *arena, void *ptr);
/* Bytes in live blocks now and at most since creation or the last reset_peak (which
 * restarts the peak from the current use). Reserved-but-free chunk space is not counted. */
void al_cuda_arena_usage(struct al_cuda_arena *arena, size_t *in_use, size_t *peak_in_use, int reset_peak);

/* Scratch for one op: freed with al_cuda_scratch_free once the op's kernels are queued.
 * Reuse is safe without a synchronisation because every kernel runs on the one stream. */
void *al_cuda_scratch(struct al_cuda *cuda, size_t bytes, const char *what);
void al_cuda_scratch_free(struct al_cuda *cuda, void *ptr);

/* ---- cuda_gemm.cu: column-major C = alpha op(A) op(B) + beta C, bf16 A and B, F32
 * compute, C bf16 or F32 (c_type CUDA_R_16BF / CUDA_R_32F). cuBLASLt, with cuBLAS as the
 * fallback when the heuristic offers no algorithm. ---- */
struct al_gemm {
    int trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const al_bf16 *a;
    int64_t lda;
    const al_bf16 *b;
    int64_t ldb;
    void *c;
    cudaDataType_t c_type;
    int64_t ldc;
};
int al_cuda_gemm(struct al_cuda *cuda, const struct al_gemm *gemm);

/* ---- the ops (backend.h), by family ---- */
int al_cuda_embedding_forward(struct al_backend *backend, void *out, const int32_t *ids, const void *table,
                              int64_t n, int dim);
int al_cuda_embedding_backward(struct al_backend *backend, float *dtable, const int32_t *ids, const void *dout,
                               int64_t n, int dim);
int al_cuda_rmsnorm_forward(struct al_backend *backend, void *out, float *rstd, const void *x, const void *weight,
                            int64_t n, int dim, float eps);
int al_cuda_rmsnorm_backward(struct al_backend *backend, void *dx, float *dweight, const void *dout, const void *x,
                             const void *weight, const float *rstd, int64_t n, int dim);
int al_cuda_rope_forward(struct al_backend *backend, void *x, const int32_t *pos, const float *inv_freq, int64_t n,
                         int heads, int head_dim);
int al_cuda_rope_backward(struct al_backend *backend, void *dx, const int32_t *pos, const float *inv_freq,
                          int64_t n, int heads, int head_dim);
int al_cuda_attention_forward(struct al_backend *backend, void *out, float *lse, const void *q, const void *k,
                              const void *v, const int32_t *doc_start, int window, int64_t n, int q_heads,
                              int kv_heads, int head_dim);
int al_cuda_attention_backward(struct al_backend *backend, void *dq, void *dk, void *dv, const void *dout,
                               const void *q, const void *k, const void *v, const void *out, const float *lse,
                               const int32_t *doc_start, int window, int64_t n, int q_heads, int kv_heads,
                               int head_dim);
int al_cuda_swiglu_forward(struct al_backend *backend, void *out, const void *gate, const void *up, int64_t n,
                           int dim);
int al_cuda_swiglu_backward(struct al_backend *backend, void *dgate, void *dup, const void *dout, const void *gate,
                            const void *up, int64_t n, int dim);
int al_cuda_linear_forward(struct al_backend *backend, void *y, const void *x, const void *weight, const void *bias,
                           const struct al_lora_args *lora, int64_t n, int in, int out);
int al_cuda_linear_backward(struct al_backend *backend, void *dx, int accumulate_dx, const void *dy, const void *x,
                            const void *weight, const struct al_lora_args *lora, int64_t n, int in, int out);
int al_cuda_add(struct al_backend *backend, void *y, const void *a, const void *b, int64_t n);
int al_cuda_lm_head_cross_entropy(struct al_backend *backend, float *loss_sum, void *dx, const void *x,
                                  const void *weight, const int32_t *targets, int64_t n, int dim, int vocab,
                                  float grad_scale);
int al_cuda_sum_squares(struct al_backend *backend, float *out, const float *x, int64_t n);
int al_cuda_adamw(struct al_backend *backend, float *param, const float *grad, float *m, float *v, int64_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale, int64_t step);
int al_cuda_kv_cache_write(struct al_backend *backend, const struct al_kv_cache_layer *cache, const void *k,
                           const void *v, const int32_t *seq, const int32_t *pos, int64_t n, int kv_heads,
                           int head_dim);
int al_cuda_decode_attention(struct al_backend *backend, void *out, const void *q,
                             const struct al_kv_cache_layer *cache, const int32_t *seq, const int32_t *pos, int window,
                             int64_t n, int q_heads, int kv_heads, int head_dim);

/* Shared argument check: a message naming the op, and -1, on a bad shape. */
int al_cuda_check_shape(const char *op, int64_t n, int dim);

#endif

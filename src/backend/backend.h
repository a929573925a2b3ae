/* The op interface. The transformer (src/model/) is written once against these ops; a
 * backend implements them and knows nothing of LoRA targets, data or checkpoints.
 *
 * Conventions shared by every backend:
 * - Pointers are backend memory (host memory on the CPU, device memory on CUDA), from
 *   backend->ops->alloc. Integer inputs (ids, targets, positions, document starts) are
 *   int32 in backend memory too.
 * - Element types: activations (and their gradients) are in backend->act_dtype (F32 on
 *   the CPU, BF16 on CUDA); frozen weights, biases and norm weights in
 *   backend->weight_dtype; LoRA A/B, their gradients, optimizer state and statistics
 *   saved for backward (rstd, lse) are always F32.
 * - Shapes are row-major; n is a token count across the whole batch. Rows of a batch are
 *   flattened into one token axis: a row boundary is simply a document boundary.
 * - Backward ops overwrite the input gradients they produce, unless the op says it
 *   accumulates; parameter gradients (dA, dB, dtable, dweight) always accumulate, so that
 *   gradient accumulation over micro-batches needs no extra buffers.
 * - Every op returns 0, or -1 with a message recorded through al_fail.
 */
#ifndef AGENTLORA_BACKEND_H
#define AGENTLORA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "agentlora/dtype.h"

struct al_backend;

/* The LoRA term of a linear layer: y += scale * (drop(x) A^T) B^T.
 * Dropout keeps element i of x with probability 1 - dropout and scales it by
 * 1 / (1 - dropout); the mask is al_hash_uniform(dropout_seed, i) >= dropout, so forward
 * and backward (and every backend) draw the same mask without storing it. */
struct al_lora_args {
    const float *A;   /* [rank, in] */
    const float *B;   /* [out, rank] */
    float *dA;        /* [rank, in], accumulated by backward */
    float *dB;        /* [out, rank], accumulated by backward */
    float *xa;        /* [n, rank]: drop(x) A^T, written by forward, read by backward */
    int rank;
    float scale;      /* alpha / rank, or alpha / sqrt(rank) with rsLoRA */
    float dropout;    /* 0 disables dropout (inference, eval) */
    uint64_t dropout_seed;
};

/* One layer's key/value cache for decoding: keys and values of up to `capacity`
 * positions for each of `sequences` sequences, k and v [sequences, capacity, kv_heads,
 * head_dim] in the activation type, backend memory. Slot p of sequence s holds the key
 * and value of that sequence's token at position p (positions count from 0 in each
 * sequence, as in a batch's documents). */
struct al_kv_cache_layer {
    void *k;
    void *v;
    int sequences;
    int capacity;
};

struct al_backend_ops {
    void (*destroy)(struct al_backend *backend);

    /* ---- memory ---- */
    void *(*alloc)(struct al_backend *backend, size_t bytes); /* zero-filled; NULL + error */
    void (*free)(struct al_backend *backend, void *ptr);
    int (*zero)(struct al_backend *backend, void *ptr, size_t bytes);
    int (*copy_to_backend)(struct al_backend *backend, void *dst, const void *host_src, size_t bytes);
    int (*copy_to_host)(struct al_backend *backend, void *host_dst, const void *src, size_t bytes);
    /* Converts n host elements of src_dtype into backend memory of dst_dtype (F32/F16/BF16). */
    int (*upload_convert)(struct al_backend *backend, void *dst, enum al_dtype dst_dtype, const void *host_src,
                          enum al_dtype src_dtype, int64_t n);
    /* Converts n backend elements of src_dtype into host F32. */
    int (*download_f32)(struct al_backend *backend, float *host_dst, const void *src, enum al_dtype src_dtype,
                        int64_t n);
    /* Waits for queued work; reports asynchronous failures. */
    int (*synchronize)(struct al_backend *backend);

    /* ---- token embedding ----
     * out[i, :] = table[ids[i], :]; table [vocab, dim]. */
    int (*embedding_forward)(struct al_backend *backend, void *out, const int32_t *ids, const void *table,
                             int64_t n, int dim);
    /* dtable[ids[i], :] += dout[i, :]; dtable F32 [vocab, dim]. */
    int (*embedding_backward)(struct al_backend *backend, float *dtable, const int32_t *ids, const void *dout,
                              int64_t n, int dim);

    /* ---- RMSNorm ----
     * rstd[i] = 1 / sqrt(mean_j x[i,j]^2 + eps); out = x * rstd[i] * weight[j].
     * Like Hugging Face, x * rstd is formed in F32 and rounded to the activation type
     * before the multiplication by weight. */
    int (*rmsnorm_forward)(struct al_backend *backend, void *out, float *rstd, const void *x, const void *weight,
                           int64_t n, int dim, float eps);
    /* dx overwritten; dweight (F32 [dim], may be NULL) accumulated. */
    int (*rmsnorm_backward)(struct al_backend *backend, void *dx, float *dweight, const void *dout, const void *x,
                            const void *weight, const float *rstd, int64_t n, int dim);

    /* ---- rotary position embedding (rotate-half), in place ----
     * x [n, heads, head_dim]; for j < head_dim/2 the pair (j, j + head_dim/2) of token i is
     * rotated by angle pos[i] * inv_freq[j]. inv_freq (F32 [head_dim/2], backend memory)
     * already includes any llama3 scaling. Backward rotates by the opposite angle. */
    int (*rope_forward)(struct al_backend *backend, void *x, const int32_t *pos, const float *inv_freq, int64_t n,
                        int heads, int head_dim);
    int (*rope_backward)(struct al_backend *backend, void *dx, const int32_t *pos, const float *inv_freq, int64_t n,
                         int heads, int head_dim);

    /* ---- causal grouped-query attention with document masks and a sliding window ----
     * q [n, q_heads, head_dim]; k, v [n, kv_heads, head_dim]; query head h reads kv head
     * h / (q_heads / kv_heads). Token i attends to token j exactly when
     * doc_start[i] <= j <= i, where doc_start[i] is the index of the first token of i's
     * document (packed rows: several documents per row; a row boundary is a document
     * boundary), and, when window > 0, also i - window < j: a token sees at most the last
     * `window` tokens, itself included (transformers' sliding_window mask). window 0 means
     * no window. Scores are scaled by 1/sqrt(head_dim).
     * out [n, q_heads, head_dim]; lse F32 [n, q_heads] = log-sum-exp of the scaled scores,
     * saved for backward so that no [n x n] matrix is ever stored. */
    int (*attention_forward)(struct al_backend *backend, void *out, float *lse, const void *q, const void *k,
                             const void *v, const int32_t *doc_start, int window, int64_t n, int q_heads,
                             int kv_heads, int head_dim);
    /* dq, dk, dv overwritten; doc_start and window as in the forward. */
    int (*attention_backward)(struct al_backend *backend, void *dq, void *dk, void *dv, const void *dout,
                              const void *q, const void *k, const void *v, const void *out, const float *lse,
                              const int32_t *doc_start, int window, int64_t n, int q_heads, int kv_heads,
                              int head_dim);

    /* ---- SwiGLU: out = silu(gate) * up, all [n, dim] ---- */
    int (*swiglu_forward)(struct al_backend *backend, void *out, const void *gate, const void *up, int64_t n,
                          int dim);
    /* dgate, dup overwritten. */
    int (*swiglu_backward)(struct al_backend *backend, void *dgate, void *dup, const void *dout, const void *gate,
                           const void *up, int64_t n, int dim);

    /* ---- linear with optional bias and LoRA ----
     * y [n, out] = x [n, in] W^T + bias + scale * (drop(x) A^T) B^T; W [out, in] frozen;
     * bias [out] or NULL; lora NULL for a plain linear (also how logits are computed). */
    int (*linear_forward)(struct al_backend *backend, void *y, const void *x, const void *weight, const void *bias,
                          const struct al_lora_args *lora, int64_t n, int in, int out);
    /* dx [n, in] = dy W + scale * drop'((dy B) A), overwritten, or added to what dx holds
     * when accumulate_dx is non-zero (q, k and v share one input). dx may be NULL when
     * no input gradient is needed. With lora: dB += scale * dy^T xa;
     * dA += scale * (dy B)^T drop(x). The frozen W and bias get no gradient. */
    int (*linear_backward)(struct al_backend *backend, void *dx, int accumulate_dx, const void *dy, const void *x,
                           const void *weight, const struct al_lora_args *lora, int64_t n, int in, int out);

    /* ---- elementwise ---- */
    /* y = a + b, n elements; y may alias a or b (the residual stream). */
    int (*add)(struct al_backend *backend, void *y, const void *a, const void *b, int64_t n);

    /* ---- lm_head + cross-entropy, fused ----
     * logits = x [n, dim] W^T, W [vocab, dim], computed in chunks of tokens so the full
     * [n x vocab] matrix never exists. targets[i] < 0 means "no target". Adds
     * sum_i -log softmax(logits_i)[targets[i]] to *loss_sum (F32, backend memory). When dx
     * is not NULL it is overwritten with grad_scale * d(sum)/dx (zero rows where there is
     * no target), grad_scale being 1 / (target tokens in the whole accumulated batch). */
    int (*lm_head_cross_entropy)(struct al_backend *backend, float *loss_sum, void *dx, const void *x,
                                 const void *weight, const int32_t *targets, int64_t n, int dim, int vocab,
                                 float grad_scale);

    /* ---- optimizer (LoRA parameters, F32) ----
     * *out (F32, backend memory) += sum of squares of the n elements of x. */
    int (*sum_squares)(struct al_backend *backend, float *out, const float *x, int64_t n);
    /* One AdamW step (decoupled weight decay) on n parameters; the gradient is multiplied by
     * grad_scale first (clipping). step counts from 1 for the bias corrections. */
    int (*adamw)(struct al_backend *backend, float *param, const float *grad, float *m, float *v, int64_t n,
                 float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale, int64_t step);

    /* ---- decoding with a key/value cache (generation; no backward) ----
     * Required for generation; both backends implement them (cpu_decode.c, and
     * cuda_decode.cu with kernels/decode.cu). A backend may leave them NULL: the model's
     * decoder then fails with a message saying that decoding is not implemented on it.
     *
     * A decode step holds n tokens; token i belongs to sequence seq[i] and sits at position
     * pos[i] of it (its RoPE position and its cache slot), 0 <= seq[i] < cache->sequences,
     * 0 <= pos[i] < cache->capacity. Several tokens of one sequence may share a step (a
     * prefill chunk); their keys and values are all written before any query reads them.
     *
     * Writes token i's key and value (k, v [n, kv_heads, head_dim]) into slot pos[i] of
     * sequence seq[i]. */
    int (*kv_cache_write)(struct al_backend *backend, const struct al_kv_cache_layer *cache, const void *k,
                          const void *v, const int32_t *seq, const int32_t *pos, int64_t n, int kv_heads,
                          int head_dim);
    /* Causal grouped-query attention over the cache: query i (q [n, q_heads, head_dim])
     * attends to slots 0..pos[i] of sequence seq[i] (only pos[i] - window < slot when
     * window > 0, as in attention_forward), which must hold that sequence's keys and
     * values (the token's own included); query head h reads kv head
     * h / (q_heads / kv_heads); scores are scaled by 1/sqrt(head_dim). out [n, q_heads,
     * head_dim]. The result equals attention_forward's for the same keys to rounding: on the CPU
     * both run the same blocked GEMMs (cpu_attention_block.c), on shapes that differ. */
    int (*decode_attention)(struct al_backend *backend, void *out, const void *q,
                            const struct al_kv_cache_layer *cache, const int32_t *seq, const int32_t *pos,
                            int window, int64_t n, int q_heads, int kv_heads, int head_dim);

    /* ---- memory accounting (optional: NULL where the backend keeps none, as the CPU's) ----
     * Bytes of backend memory allocated now (scratch included), and the most allocated at
     * once since the backend was created or since the last call with reset_peak non-zero,
     * which restarts the peak from the current figure. What a benchmark reports as peak
     * memory (the analogue of torch.cuda.max_memory_allocated). */
    int (*memory_stats)(struct al_backend *backend, size_t *in_use, size_t *peak_in_use, int reset_peak);

    /* ---- data parallelism through the device's own collectives (optional: NULL on the
     * CPU, whose ranks sum gradients in a fixed order over MPI instead) ----
     * One rank makes the group's id (AL_BACKEND_GROUP_ID_BYTES), every rank joins with it,
     * its rank and the group size; then group_sum_f32 replaces n floats (backend memory)
     * with their sum over the ranks, the same bytes on every rank. NCCL on CUDA. */
    int (*group_id)(struct al_backend *backend, unsigned char *id);
    int (*group_join)(struct al_backend *backend, const unsigned char *id, int rank, int size);
    int (*group_sum_f32)(struct al_backend *backend, float *data, int64_t n);
};

#define AL_BACKEND_GROUP_ID_BYTES 128

struct al_backend {
    const char *name;           /* "cpu", "cuda" */
    enum al_dtype act_dtype;    /* activations and their gradients */
    enum al_dtype weight_dtype; /* frozen weights, biases, norm weights */
    const struct al_backend_ops *ops;
    void *impl;                 /* the backend's own state */
};

/* The CPU reference: F32 everywhere, OpenBLAS GEMMs, OpenMP loops. */
struct al_backend *al_backend_cpu_create(void);

/* The CUDA backend (bf16 activations and weights), NULL + error when the build has no CUDA
 * or no GPU is visible. */
struct al_backend *al_backend_cuda_create(int device_index);
/* al_backend_create for one rank of a data-parallel run: CUDA on the rank's own GPU (its
 * local rank among the machine's ranks), the CPU as al_backend_create. */
struct al_backend *al_backend_create_for_rank(const char *name, int local_rank);

/* "cpu", "cuda" or "auto" (CUDA when a GPU is visible, else the CPU). */
struct al_backend *al_backend_create(const char *name);

void al_backend_destroy(struct al_backend *backend);

/* Checks the LoRA arguments every backend's linear ops need (rank, dropout range, the A,
 * B and xa buffers); the message names op. NULL lora (a plain linear) passes. */
int al_backend_check_lora_args(const char *op, const struct al_lora_args *lora);

/* Bytes of n elements of the activation type. */
size_t al_backend_act_bytes(const struct al_backend *backend, int64_t n);

#endif

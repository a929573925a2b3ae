/* A block of queries of one attention head against a contiguous run of keys (and their
 * values), computed with GEMMs; see cpu_attention_block.c. */
#ifndef AGENTLORA_CPU_ATTENTION_BLOCK_H
#define AGENTLORA_CPU_ATTENTION_BLOCK_H

#include <stdint.h>

/* Queries per block. Large enough that the GEMMs run near BLAS speed, small enough that a
 * block's scores (rows x keys floats) stay in cache-friendly scratch. */
#define AL_ATTENTION_BLOCK_ROWS 64

struct al_attention_block {
    const float *q;      /* row r of the block at q + r * q_stride */
    int64_t q_stride;
    const float *k, *v;  /* key/value j of the run at k + j * kv_stride (v likewise) */
    int64_t kv_stride;
    int64_t rows, keys;
    const int64_t *lo, *hi; /* row r sees keys lo[r]..hi[r] of the run (none when lo > hi) */
    int head_dim;
    float scale;
};

/* Softmax of row[lo..hi] in place, zeros elsewhere in row[0..keys); returns the
 * log-sum-exp of the visible scores. */
float al_attention_row_softmax(float *row, int64_t keys, int64_t lo, int64_t hi);

/* out row r (at out + r * out_stride) = softmax(scale q_r K^T) V over the row's visible
 * keys; lse[r * lse_stride] gets the row's log-sum-exp when lse is not NULL. scores is
 * scratch of rows x keys floats; it ends holding the probabilities. Every row must see
 * at least one key. */
void al_attention_block_forward(const struct al_attention_block *b, float *scores, float *out, int64_t out_stride,
                                float *lse, int64_t lse_stride);

/* The probabilities a forward produced, recomputed from its saved log-sum-exp:
 * scores[r, j] = exp(scale q_r . k_j - lse[r * lse_stride]) for visible keys, else 0. */
void al_attention_block_probabilities(const struct al_attention_block *b, float *scores, const float *lse,
                                      int64_t lse_stride);

#endif

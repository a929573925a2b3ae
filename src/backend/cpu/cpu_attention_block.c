/* Attention for a block of queries of one head against a run of keys, as two GEMMs: the
 * scores S = scale * Q K^T, a masked, max-subtracted softmax per row, and O = P V. This is
 * the forward shared by training (cpu_attention.c) and KV-cache decoding (cpu_decode.c),
 * and the probability recomputation of the backward.
 *
 * Why blocks: one query at a time is a chain of dot products that runs at a few GFLOP/s;
 * as GEMMs the same work runs at BLAS speed (on 2 cores, 10-20x faster for a prefill of a
 * few hundred tokens). A block's scores take rows x keys floats of scratch, never the
 * whole [n x n] matrix.
 *
 * Determinism: each block is computed start to finish by one thread with one single-thread
 * GEMM call per product, so the result does not depend on how blocks are dealt out. */
#include <cblas.h>
#include <math.h>

#include "backend/cpu/cpu_attention_block.h"

/* S = scale * Q K^T over the block's rows and the run's keys, into scores [rows, keys]. */
static void block_scores(const struct al_attention_block *b, float *scores)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b->rows, (int)b->keys, b->head_dim, b->scale, b->q,
                (int)b->q_stride, b->k, (int)b->kv_stride, 0.0f, scores, (int)b->keys);
}

float al_attention_row_softmax(float *row, int64_t keys, int64_t lo, int64_t hi)
{
    float max_score = -INFINITY;
    for (int64_t j = lo; j <= hi; j++)
        if (row[j] > max_score)
            max_score = row[j];
    float total = 0.0f;
    for (int64_t j = 0; j < keys; j++) {
        row[j] = j >= lo && j <= hi ? expf(row[j] - max_score) : 0.0f;
        total += row[j];
    }
    for (int64_t j = lo; j <= hi; j++)
        row[j] /= total;
    return max_score + logf(total);
}

void al_attention_block_forward(const struct al_attention_block *b, float *scores, float *out, int64_t out_stride,
                                float *lse, int64_t lse_stride)
{
    block_scores(b, scores);
    for (int64_t r = 0; r < b->rows; r++) {
        float row_lse = al_attention_row_softmax(scores + r * b->keys, b->keys, b->lo[r], b->hi[r]);
        if (lse)
            lse[r * lse_stride] = row_lse;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b->rows, b->head_dim, (int)b->keys, 1.0f, scores,
                (int)b->keys, b->v, (int)b->kv_stride, 0.0f, out, (int)out_stride);
}

void al_attention_block_probabilities(const struct al_attention_block *b, float *scores, const float *lse,
                                      int64_t lse_stride)
{
    block_scores(b, scores);
    for (int64_t r = 0; r < b->rows; r++) {
        float *row = scores + r * b->keys;
        float row_lse = lse[r * lse_stride];
        for (int64_t j = 0; j < b->keys; j++)
            row[j] = j >= b->lo[r] && j <= b->hi[r] ? expf(row[j] - row_lse) : 0.0f;
    }
}

/* Decoding with a key/value cache: writing a step's keys and values into their slots,
 * and causal grouped-query attention of the step's queries over their sequences' caches,
 * within a sliding window when the layer has one (the cache still keeps every slot; a
 * window only narrows the slots a query reads).
 *
 * The step's tokens are cut into runs (consecutive tokens of one sequence at consecutive
 * positions: a prefill chunk, or one new token per sequence), and each run of each query
 * head is one block of cpu_attention_block.c against its sequence's cache, the same
 * computation attention_forward does over a whole sequence. A token decoded step by step
 * therefore gets the attention output of a full forward, up to the rounding of the GEMMs'
 * different shapes, which is what the decoding tests check. */
#include <stdbool.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "agentlora/error.h"
#include "backend/cpu/cpu_attention_block.h"
#include "backend/cpu/cpu_ops.h"

static int check_tokens(const char *op, const struct al_kv_cache_layer *cache, const int32_t *seq,
                        const int32_t *pos, int64_t n, int kv_heads, int head_dim)
{
    if (al_cpu_check_shape(op, n, head_dim) != 0)
        return -1;
    if (kv_heads <= 0)
        return al_fail("%s: kv head count must be positive, got %d", op, kv_heads);
    if (!cache || !cache->k || !cache->v || cache->sequences <= 0 || cache->capacity <= 0)
        return al_fail("%s: the key/value cache is missing or empty", op);
    for (int64_t i = 0; i < n; i++) {
        if (seq[i] < 0 || seq[i] >= cache->sequences)
            return al_fail("%s: token %lld belongs to sequence %d, outside the cache's [0, %d)", op, (long long)i,
                           seq[i], cache->sequences);
        if (pos[i] < 0 || pos[i] >= cache->capacity)
            return al_fail("%s: token %lld has position %d, outside the cache's [0, %d)", op, (long long)i, pos[i],
                           cache->capacity);
    }
    return 0;
}

/* Slot `slot` of sequence `sequence`, kv head `kv_head`, in a cache tensor. */
static const float *cache_row(const struct al_kv_cache_layer *cache, const float *base, int sequence, int64_t slot,
                              int kv_heads, int kv_head, int head_dim)
{
    int64_t token = (int64_t)sequence * cache->capacity + slot;
    return base + (token * kv_heads + kv_head) * head_dim;
}

int al_cpu_kv_cache_write(struct al_backend *backend, const struct al_kv_cache_layer *cache, const void *k,
                          const void *v, const int32_t *seq, const int32_t *pos, int64_t n, int kv_heads,
                          int head_dim)
{
    (void)backend;
    if (check_tokens("cpu kv_cache_write", cache, seq, pos, n, kv_heads, head_dim) != 0)
        return -1;
    size_t token_bytes = (size_t)kv_heads * (size_t)head_dim * sizeof(float);
    int64_t width = (int64_t)kv_heads * head_dim;
    for (int64_t i = 0; i < n; i++) {
        float *k_slot = (float *)cache_row(cache, cache->k, seq[i], pos[i], kv_heads, 0, head_dim);
        float *v_slot = (float *)cache_row(cache, cache->v, seq[i], pos[i], kv_heads, 0, head_dim);
        memcpy(k_slot, (const float *)k + i * width, token_bytes);
        memcpy(v_slot, (const float *)v + i * width, token_bytes);
    }
    return 0;
}

/* Runs of the step: token i starts a new run unless it continues the previous token's
 * sequence at the next position, and a run holds at most one block of queries. Returns
 * the number of runs; run r covers tokens starts[r] .. starts[r + 1] - 1. */
static int64_t find_runs(const int32_t *seq, const int32_t *pos, int64_t n, int64_t *starts)
{
    int64_t runs = 0;
    for (int64_t i = 0; i < n; i++) {
        bool continues = i > 0 && seq[i] == seq[i - 1] && pos[i] == pos[i - 1] + 1 &&
                         i - starts[runs - 1] < AL_ATTENTION_BLOCK_ROWS;
        if (!continues)
            starts[runs++] = i;
    }
    starts[runs] = n;
    return runs;
}

/* The first slot a query at position p sees: 0, or p - window + 1 with a window. */
static int64_t first_visible_slot(int64_t p, int window)
{
    return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
}

/* The block of run tokens [i0, i0 + rows) of query head h over the slots of their
 * sequence's cache that they see: first_visible_slot..pos. A run's positions rise one by
 * one, so its first token sees the earliest slot; the block's keys start there. */
static struct al_attention_block run_block(const struct al_kv_cache_layer *cache, const float *q, const int32_t *seq,
                                           const int32_t *pos, int window, int64_t i0, int64_t rows, int h,
                                           int q_heads, int kv_heads, int head_dim, int64_t *bounds)
{
    int64_t *lo = bounds, *hi = bounds + AL_ATTENTION_BLOCK_ROWS;
    int64_t first = first_visible_slot(pos[i0], window);
    for (int64_t r = 0; r < rows; r++) {
        lo[r] = first_visible_slot(pos[i0 + r], window) - first;
        hi[r] = pos[i0 + r] - first;
    }
    int kv_head = h / (q_heads / kv_heads);
    return (struct al_attention_block){
        .q = q + (i0 * q_heads + h) * head_dim,
        .q_stride = (int64_t)q_heads * head_dim,
        .k = cache_row(cache, cache->k, seq[i0], first, kv_heads, kv_head, head_dim),
        .v = cache_row(cache, cache->v, seq[i0], first, kv_heads, kv_head, head_dim),
        .kv_stride = (int64_t)kv_heads * head_dim,
        .rows = rows,
        .keys = pos[i0 + rows - 1] + 1 - first,
        .lo = lo,
        .hi = hi,
        .head_dim = head_dim,
        .scale = 1.0f / sqrtf((float)head_dim),
    };
}

int al_cpu_decode_attention(struct al_backend *backend, void *out, const void *q,
                            const struct al_kv_cache_layer *cache, const int32_t *seq, const int32_t *pos,
                            int window, int64_t n, int q_heads, int kv_heads, int head_dim)
{
    (void)backend;
    const char *op = "cpu decode_attention";
    if (check_tokens(op, cache, seq, pos, n, kv_heads, head_dim) != 0)
        return -1;
    if (q_heads <= 0 || q_heads % kv_heads != 0)
        return al_fail("%s: %d query heads cannot share %d kv heads evenly", op, q_heads, kv_heads);
    if (window < 0)
        return al_fail("%s: sliding window %d is negative (0 means none)", op, window);
    if (n == 0)
        return 0;

    /* A run's keys: at most its block of queries plus the slots its first query sees. */
    int64_t longest = 1, slots_read = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t seen = pos[i] + 1 - first_visible_slot(pos[i], window);
        int64_t run_keys = window > 0 ? seen + AL_ATTENTION_BLOCK_ROWS : seen;
        if (run_keys > longest)
            longest = run_keys;
        slots_read += seen;
    }
    int threads = omp_get_max_threads();
    int64_t scores_per_thread = AL_ATTENTION_BLOCK_ROWS * longest;
    float *scores = malloc((size_t)threads * (size_t)scores_per_thread * sizeof(float));
    int64_t *bounds = malloc((size_t)threads * 2 * AL_ATTENTION_BLOCK_ROWS * sizeof(int64_t));
    int64_t *starts = malloc((size_t)(n + 1) * sizeof(int64_t));
    if (!scores || !bounds || !starts) {
        free(scores);
        free(bounds);
        free(starts);
        return al_fail("%s: out of memory for %d threads' score blocks of %lld keys", op, threads,
                       (long long)longest);
    }

    int64_t runs = find_runs(seq, pos, n, starts);
    int64_t stride = (int64_t)q_heads * head_dim;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) AL_CPU_PARALLEL_IF(slots_read * q_heads * head_dim)
    for (int64_t task = 0; task < runs * q_heads; task++) {
        int thread = omp_get_thread_num();
        int64_t run = task / q_heads, i0 = starts[run];
        int h = (int)(task % q_heads);
        struct al_attention_block b = run_block(cache, q, seq, pos, window, i0, starts[run + 1] - i0, h, q_heads,
                                                kv_heads, head_dim, bounds + thread * 2 * AL_ATTENTION_BLOCK_ROWS);
        al_attention_block_forward(&b, scores + thread * scores_per_thread, (float *)out + i0 * stride + h * head_dim,
                                   stride, NULL, 0);
    }
    free(scores);
    free(bounds);
    free(starts);
    return 0;
}

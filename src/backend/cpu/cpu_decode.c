/* Decoding with a key/value cache: writing a step's keys and values into their slots,
 * and causal grouped-query attention of the step's queries over their sequences' caches.
 *
 * The arithmetic of one query is the same as attention_forward's (cpu_attention.c):
 * scores summed over head_dim in order, a max-subtracted softmax whose total and
 * weighted value sum run over the keys in position order. A token decoded step by step
 * therefore gets the attention output of a full forward over its whole sequence, which
 * is what the decoding tests check. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "agentlora/error.h"
#include "backend/cpu/cpu_ops.h"

/* Rows (one query head of one token) per task: a step's queries differ in cost (a long
 * sequence's query reads more slots), and each row is computed by one thread start to
 * finish, so dealing them out dynamically cannot change any result. */
#define DECODE_ROWS_PER_TASK 8

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

static float dot(const float *a, const float *b, int count)
{
    float sum = 0.0f;
    for (int d = 0; d < count; d++)
        sum += a[d] * b[d];
    return sum;
}

/* Where one query reads: its sequence's cache up to its own slot, through one kv head. */
struct query_view {
    const struct al_kv_cache_layer *cache;
    int sequence;
    int64_t last; /* the query's own slot */
    int kv_heads, kv_head, head_dim;
    float scale;
};

static const float *key_at(const struct query_view *view, int64_t slot)
{
    return cache_row(view->cache, view->cache->k, view->sequence, slot, view->kv_heads, view->kv_head,
                     view->head_dim);
}

static const float *value_at(const struct query_view *view, int64_t slot)
{
    return cache_row(view->cache, view->cache->v, view->sequence, slot, view->kv_heads, view->kv_head,
                     view->head_dim);
}

/* One query row: scores into the scratch row, a max-subtracted softmax, and the
 * probability-weighted sum of values into out. */
static void attend_over_cache(const struct query_view *view, float *out, float *scores, const float *query)
{
    float max_score = -INFINITY;
    for (int64_t j = 0; j <= view->last; j++) {
        scores[j] = dot(query, key_at(view, j), view->head_dim) * view->scale;
        if (scores[j] > max_score)
            max_score = scores[j];
    }
    float total = 0.0f;
    for (int64_t j = 0; j <= view->last; j++) {
        scores[j] = expf(scores[j] - max_score);
        total += scores[j];
    }
    for (int d = 0; d < view->head_dim; d++)
        out[d] = 0.0f;
    for (int64_t j = 0; j <= view->last; j++) {
        float p = scores[j] / total;
        const float *value = value_at(view, j);
        for (int d = 0; d < view->head_dim; d++)
            out[d] += p * value[d];
    }
}

int al_cpu_decode_attention(struct al_backend *backend, void *out, const void *q,
                            const struct al_kv_cache_layer *cache, const int32_t *seq, const int32_t *pos,
                            int64_t n, int q_heads, int kv_heads, int head_dim)
{
    (void)backend;
    const char *op = "cpu decode_attention";
    if (check_tokens(op, cache, seq, pos, n, kv_heads, head_dim) != 0)
        return -1;
    if (q_heads <= 0 || q_heads % kv_heads != 0)
        return al_fail("%s: %d query heads cannot share %d kv heads evenly", op, q_heads, kv_heads);
    if (n == 0)
        return 0;

    int64_t longest = 1, slots_read = 0;
    for (int64_t i = 0; i < n; i++) {
        if (pos[i] + 1 > longest)
            longest = pos[i] + 1;
        slots_read += pos[i] + 1;
    }
    int threads = omp_get_max_threads();
    float *scratch = malloc((size_t)threads * (size_t)longest * sizeof(float));
    if (!scratch)
        return al_fail("%s: out of memory for %d score rows of %lld", op, threads, (long long)longest);

    int group = q_heads / kv_heads;
    float scale = 1.0f / sqrtf((float)head_dim);
    int64_t rows = n * q_heads;
#pragma omp parallel num_threads(threads) AL_CPU_PARALLEL_IF(slots_read * q_heads * head_dim)
    {
        float *scores = scratch + (size_t)omp_get_thread_num() * (size_t)longest;
#pragma omp for schedule(dynamic, DECODE_ROWS_PER_TASK)
        for (int64_t row = 0; row < rows; row++) {
            int64_t i = row / q_heads;
            int h = (int)(row % q_heads);
            struct query_view view = {cache, seq[i], pos[i], kv_heads, h / group, head_dim, scale};
            attend_over_cache(&view, (float *)out + row * head_dim, scores, (const float *)q + row * head_dim);
        }
    }
    free(scratch);
    return 0;
}

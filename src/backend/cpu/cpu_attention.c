/* Causal grouped-query attention with document masks, flash-attention style: forward
 * saves only the log-sum-exp of each query's scores, and backward recomputes the
 * probabilities from it, so no [n x n] matrix is ever stored.
 *
 * Query token i of head h attends to keys j with doc_start[i] <= j <= i, read from kv
 * head h / (q_heads / kv_heads). */
#include <math.h>
#include <stdlib.h>

#include <omp.h>

#include "agentlora/error.h"
#include "backend/cpu/cpu_ops.h"

/* Causal rows differ in cost (the last query sees the whole document), so rows are dealt
 * out dynamically in small batches. That cannot change any result: each row (a query's
 * output, or a key's gradient) is computed start to finish by one thread, in a fixed
 * order, whichever thread it is. */
#define ATTENTION_ROWS_PER_TASK 16

/* The shape of one call, so helpers take one argument instead of five. */
struct attention_shape {
    int64_t n;
    int q_heads;
    int kv_heads;
    int head_dim;
    int group; /* query heads per kv head */
    float scale;
};

static int make_shape(const char *op, struct attention_shape *shape, const int32_t *doc_start, int64_t n,
                      int q_heads, int kv_heads, int head_dim)
{
    if (al_cpu_check_shape(op, n, head_dim) != 0)
        return -1;
    if (q_heads <= 0 || kv_heads <= 0 || q_heads % kv_heads != 0)
        return al_fail("%s: %d query heads cannot share %d kv heads evenly", op, q_heads, kv_heads);
    for (int64_t i = 0; i < n; i++)
        if (doc_start[i] < 0 || doc_start[i] > i)
            return al_fail("%s: token %lld has document start %d outside [0, %lld]", op, (long long)i,
                           doc_start[i], (long long)i);
    shape->n = n;
    shape->q_heads = q_heads;
    shape->kv_heads = kv_heads;
    shape->head_dim = head_dim;
    shape->group = q_heads / kv_heads;
    shape->scale = 1.0f / sqrtf((float)head_dim);
    return 0;
}

/* Keys seen by the query that sees the most: the length of the longest document. */
static int64_t longest_document(const int32_t *doc_start, int64_t n)
{
    int64_t longest = 1;
    for (int64_t i = 0; i < n; i++)
        if (i - doc_start[i] + 1 > longest)
            longest = i - doc_start[i] + 1;
    return longest;
}

static const float *q_row(const struct attention_shape *s, const float *base, int64_t i, int h)
{
    return base + (i * s->q_heads + h) * s->head_dim;
}

static const float *kv_row(const struct attention_shape *s, const float *base, int64_t j, int kv_head)
{
    return base + (j * s->kv_heads + kv_head) * s->head_dim;
}

static float dot(const float *a, const float *b, int count)
{
    float sum = 0.0f;
    for (int d = 0; d < count; d++)
        sum += a[d] * b[d];
    return sum;
}

/* One query row: scores into the scratch row, a max-subtracted softmax, the weighted sum
 * of values into out, and the log-sum-exp for backward. */
static float attend_one_query(const struct attention_shape *s, float *out, float *scores, const float *query,
                              const float *k, const float *v, int64_t first, int64_t i, int kv_head)
{
    float max_score = -INFINITY;
    for (int64_t j = first; j <= i; j++) {
        float score = dot(query, kv_row(s, k, j, kv_head), s->head_dim) * s->scale;
        scores[j - first] = score;
        if (score > max_score)
            max_score = score;
    }
    float total = 0.0f;
    for (int64_t j = first; j <= i; j++) {
        scores[j - first] = expf(scores[j - first] - max_score);
        total += scores[j - first];
    }
    for (int d = 0; d < s->head_dim; d++)
        out[d] = 0.0f;
    for (int64_t j = first; j <= i; j++) {
        float p = scores[j - first] / total;
        const float *value = kv_row(s, v, j, kv_head);
        for (int d = 0; d < s->head_dim; d++)
            out[d] += p * value[d];
    }
    return max_score + logf(total);
}

int al_cpu_attention_forward(struct al_backend *backend, void *out, float *lse, const void *q, const void *k,
                             const void *v, const int32_t *doc_start, int64_t n, int q_heads, int kv_heads,
                             int head_dim)
{
    (void)backend;
    struct attention_shape s;
    if (make_shape("cpu attention_forward", &s, doc_start, n, q_heads, kv_heads, head_dim) != 0)
        return -1;
    if (n == 0)
        return 0;

    /* The longest score row is the longest document; one row of scratch per thread. */
    int64_t longest = longest_document(doc_start, n);
    int threads = omp_get_max_threads();
    float *scratch = malloc((size_t)threads * (size_t)longest * sizeof(float));
    if (!scratch)
        return al_fail("cpu attention_forward: out of memory for %d score rows of %lld", threads,
                       (long long)longest);

    int64_t rows = n * q_heads;
#pragma omp parallel num_threads(threads) AL_CPU_PARALLEL_IF(rows * longest * head_dim)
    {
        float *scores = scratch + (size_t)omp_get_thread_num() * (size_t)longest;
#pragma omp for schedule(dynamic, ATTENTION_ROWS_PER_TASK)
        for (int64_t row = 0; row < rows; row++) {
            int64_t i = row / q_heads;
            int h = (int)(row % q_heads);
            float *o = (float *)out + row * head_dim;
            lse[row] = attend_one_query(&s, o, scores, q_row(&s, q, i, h), k, v, doc_start[i], i, h / s.group);
        }
    }
    free(scratch);
    return 0;
}

/* Backward, with P_ij = exp(score_ij - lse_i), D_i = dout_i . out_i and
 * dS_ij = P_ij (dout_i . v_j - D_i):
 *   dq_i = scale * sum_j dS_ij k_j
 *   dk_j = scale * sum over queries i (all heads of j's group) of dS_ij q_i
 *   dv_j = sum over the same queries of P_ij dout_i
 * Two passes keep every sum in a fixed order: one over queries (dq), one over keys
 * (dk, dv), each writing only its own rows. The probabilities are recomputed in both. */

static void query_gradient(const struct attention_shape *s, float *dq, const float *dout_i, const float *query,
                           float lse_i, float delta_i, const float *k, const float *v, int64_t first, int64_t i,
                           int kv_head)
{
    for (int d = 0; d < s->head_dim; d++)
        dq[d] = 0.0f;
    for (int64_t j = first; j <= i; j++) {
        const float *key = kv_row(s, k, j, kv_head);
        float p = expf(dot(query, key, s->head_dim) * s->scale - lse_i);
        float dscore = p * (dot(dout_i, kv_row(s, v, j, kv_head), s->head_dim) - delta_i);
        for (int d = 0; d < s->head_dim; d++)
            dq[d] += s->scale * dscore * key[d];
    }
}

/* Queries i that see key j: i >= j and doc_start[i] <= j. Documents are contiguous, but
 * the test costs nothing next to the dot products, so no layout is assumed. */
static void key_value_gradient(const struct attention_shape *s, float *dk, float *dv, const float *key,
                               const float *value, const float *dout, const float *q, const float *lse,
                               const float *delta, const int32_t *doc_start, int64_t j, int kv_head)
{
    for (int d = 0; d < s->head_dim; d++) {
        dk[d] = 0.0f;
        dv[d] = 0.0f;
    }
    for (int h = kv_head * s->group; h < (kv_head + 1) * s->group; h++) {
        for (int64_t i = j; i < s->n; i++) {
            if (doc_start[i] > j)
                continue;
            int64_t row = i * s->q_heads + h;
            const float *query = q_row(s, q, i, h);
            const float *dout_i = q_row(s, dout, i, h);
            float p = expf(dot(query, key, s->head_dim) * s->scale - lse[row]);
            float dscore = p * (dot(dout_i, value, s->head_dim) - delta[row]);
            for (int d = 0; d < s->head_dim; d++) {
                dk[d] += s->scale * dscore * query[d];
                dv[d] += p * dout_i[d];
            }
        }
    }
}

int al_cpu_attention_backward(struct al_backend *backend, void *dq, void *dk, void *dv, const void *dout,
                              const void *q, const void *k, const void *v, const void *out, const float *lse,
                              const int32_t *doc_start, int64_t n, int q_heads, int kv_heads, int head_dim)
{
    (void)backend;
    struct attention_shape s;
    if (make_shape("cpu attention_backward", &s, doc_start, n, q_heads, kv_heads, head_dim) != 0)
        return -1;
    if (n == 0)
        return 0;
    int64_t rows = n * q_heads;
    int64_t work = rows * longest_document(doc_start, n) * head_dim;
    float *delta = malloc((size_t)rows * sizeof(float));
    if (!delta)
        return al_fail("cpu attention_backward: out of memory for %lld row statistics", (long long)rows);

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(rows * head_dim)
    for (int64_t row = 0; row < rows; row++)
        delta[row] = dot((const float *)dout + row * head_dim, (const float *)out + row * head_dim, head_dim);

#pragma omp parallel for schedule(dynamic, ATTENTION_ROWS_PER_TASK) AL_CPU_PARALLEL_IF(work)
    for (int64_t row = 0; row < rows; row++) {
        int64_t i = row / q_heads;
        int h = (int)(row % q_heads);
        query_gradient(&s, (float *)dq + row * head_dim, q_row(&s, dout, i, h), q_row(&s, q, i, h), lse[row],
                       delta[row], k, v, doc_start[i], i, h / s.group);
    }

    int64_t kv_rows = n * kv_heads;
#pragma omp parallel for schedule(dynamic, ATTENTION_ROWS_PER_TASK) AL_CPU_PARALLEL_IF(work)
    for (int64_t row = 0; row < kv_rows; row++) {
        int64_t j = row / kv_heads;
        int g = (int)(row % kv_heads);
        key_value_gradient(&s, (float *)dk + row * head_dim, (float *)dv + row * head_dim, kv_row(&s, k, j, g),
                           kv_row(&s, v, j, g), dout, q, lse, delta, doc_start, j, g);
    }
    free(delta);
    return 0;
}

/* Causal grouped-query attention with document masks and an optional sliding window,
 * flash-attention style: forward saves only the log-sum-exp of each query's scores, and
 * backward recomputes the probabilities from it, so no [n x n] matrix is ever stored.
 *
 * Query token i of head h attends to keys j with start[i] <= j <= i, read from kv head
 * h / (q_heads / kv_heads), where start[i] = doc_start[i] without a window and
 * max(doc_start[i], i - window + 1) with one: the window is one more lower bound on the
 * keys a query sees, so it composes with document masks and, once folded into the
 * starts, needs nothing else. Blocks then only span the keys their queries see, so a
 * window shorter than the sequence also cuts the work.
 *
 * The work is cut into blocks of AL_ATTENTION_BLOCK_ROWS tokens and done with GEMMs
 * (cpu_attention_block.c): forward and the query gradient by blocks of queries, the key
 * and value gradients by blocks of keys. A block is computed start to finish by one
 * thread, in a fixed order, so dealing blocks out dynamically cannot change any result. */
#include <math.h>
#include <stdlib.h>

#include <cblas.h>
#include <omp.h>

#include "agentlora/error.h"
#include "backend/cpu/cpu_attention_block.h"
#include "backend/cpu/cpu_ops.h"

/* The shape of one call, so helpers take one argument instead of five. */
struct attention_shape {
    int64_t n;
    int q_heads;
    int kv_heads;
    int head_dim;
    int group; /* query heads per kv head */
    int window; /* 0: none */
    float scale;
};

static int make_shape(const char *op, struct attention_shape *shape, const int32_t *doc_start, int window,
                      int64_t n, int q_heads, int kv_heads, int head_dim)
{
    if (al_cpu_check_shape(op, n, head_dim) != 0)
        return -1;
    if (q_heads <= 0 || kv_heads <= 0 || q_heads % kv_heads != 0)
        return al_fail("%s: %d query heads cannot share %d kv heads evenly", op, q_heads, kv_heads);
    if (window < 0)
        return al_fail("%s: sliding window %d is negative (0 means none)", op, window);
    for (int64_t i = 0; i < n; i++)
        if (doc_start[i] < 0 || doc_start[i] > i)
            return al_fail("%s: token %lld has document start %d outside [0, %lld]", op, (long long)i,
                           doc_start[i], (long long)i);
    shape->n = n;
    shape->q_heads = q_heads;
    shape->kv_heads = kv_heads;
    shape->head_dim = head_dim;
    shape->group = q_heads / kv_heads;
    shape->window = window;
    shape->scale = 1.0f / sqrtf((float)head_dim);
    return 0;
}

/* The first key each token sees: its document's start, raised to i - window + 1 by a
 * window. Returns doc_start itself when there is no window, else a new array (*owned). */
static const int32_t *visible_starts(const char *op, const int32_t *doc_start, int window, int64_t n,
                                     int32_t **owned)
{
    *owned = NULL;
    if (window == 0)
        return doc_start;
    int32_t *start = malloc((size_t)n * sizeof(int32_t));
    if (!start)
        return al_fail_null("%s: out of memory for %lld window starts", op, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        int64_t window_start = i - window + 1;
        start[i] = window_start > doc_start[i] ? (int32_t)window_start : doc_start[i];
    }
    *owned = start;
    return start;
}

/* Checks a call and folds its window into the starts (*owned to be freed). *start is
 * NULL when there is nothing to compute (no tokens). */
static int prepare_call(const char *op, struct attention_shape *s, const int32_t *doc_start, int window, int64_t n,
                        int q_heads, int kv_heads, int head_dim, const int32_t **start, int32_t **owned)
{
    *start = NULL;
    *owned = NULL;
    if (make_shape(op, s, doc_start, window, n, q_heads, kv_heads, head_dim) != 0)
        return -1;
    if (n == 0)
        return 0;
    *start = visible_starts(op, doc_start, window, n, owned);
    return *start ? 0 : -1;
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

static int64_t min_int64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max_int64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Keys a block of queries [i0, i0 + rows) reads: from the earliest document start among
 * them to the last query. No query of the block starts more than `longest` keys back. */
static int64_t block_first_key(const int32_t *doc_start, int64_t i0, int64_t rows)
{
    int64_t first = i0;
    for (int64_t r = 0; r < rows; r++)
        first = min_int64(first, doc_start[i0 + r]);
    return first;
}

/* Scratch floats one thread needs for a query block's scores: its key run is at most the
 * block plus the longest document. */
static int64_t query_block_keys(const struct attention_shape *s, const int32_t *doc_start)
{
    return min_int64(s->n, AL_ATTENTION_BLOCK_ROWS + longest_document(doc_start, s->n));
}

/* Per-thread scratch: `floats` floats and AL_ATTENTION_BLOCK_ROWS lo/hi pairs per thread. */
struct thread_scratch {
    float *floats;
    int64_t *bounds;
    int64_t floats_per_thread;
};

static int scratch_create(struct thread_scratch *t, const char *op, int threads, int64_t floats_per_thread)
{
    t->floats_per_thread = floats_per_thread;
    t->floats = malloc((size_t)threads * (size_t)floats_per_thread * sizeof(float));
    t->bounds = malloc((size_t)threads * 2 * AL_ATTENTION_BLOCK_ROWS * sizeof(int64_t));
    if (!t->floats || !t->bounds) {
        free(t->floats);
        free(t->bounds);
        return al_fail("%s: out of memory for %d threads' scratch of %lld floats", op, threads,
                       (long long)floats_per_thread);
    }
    return 0;
}

static void scratch_free(struct thread_scratch *t)
{
    free(t->floats);
    free(t->bounds);
}

/* The block of queries [i0, i0 + rows) of head h against keys [first, first + keys):
 * each query sees its document up to itself, clipped to the run. */
static struct al_attention_block query_block(const struct attention_shape *s, const float *q, const float *k,
                                             const float *v, const int32_t *doc_start, int h, int64_t i0,
                                             int64_t rows, int64_t first, int64_t keys, int64_t *bounds)
{
    int64_t *lo = bounds, *hi = bounds + AL_ATTENTION_BLOCK_ROWS;
    for (int64_t r = 0; r < rows; r++) {
        lo[r] = max_int64(doc_start[i0 + r] - first, 0);
        hi[r] = min_int64(i0 + r - first, keys - 1);
    }
    int kv_head = h / s->group;
    return (struct al_attention_block){
        .q = q_row(s, q, i0, h),
        .q_stride = (int64_t)s->q_heads * s->head_dim,
        .k = kv_row(s, k, first, kv_head),
        .v = kv_row(s, v, first, kv_head),
        .kv_stride = (int64_t)s->kv_heads * s->head_dim,
        .rows = rows,
        .keys = keys,
        .lo = lo,
        .hi = hi,
        .head_dim = s->head_dim,
        .scale = s->scale,
    };
}

static int64_t block_count(int64_t n)
{
    return (n + AL_ATTENTION_BLOCK_ROWS - 1) / AL_ATTENTION_BLOCK_ROWS;
}

static int forward_with_starts(const char *op, const struct attention_shape *sp, void *out, float *lse,
                               const void *q, const void *k, const void *v, const int32_t *doc_start)
{
    struct attention_shape s = *sp;
    int64_t n = s.n;
    int q_heads = s.q_heads, head_dim = s.head_dim;
    int threads = omp_get_max_threads();
    struct thread_scratch scratch;
    if (scratch_create(&scratch, op, threads, AL_ATTENTION_BLOCK_ROWS * query_block_keys(&s, doc_start)) != 0)
        return -1;
    int64_t tasks = block_count(n) * q_heads;
    int64_t work = n * q_heads * longest_document(doc_start, n) * head_dim;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) AL_CPU_PARALLEL_IF(work)
    for (int64_t task = 0; task < tasks; task++) {
        int thread = omp_get_thread_num();
        int h = (int)(task % q_heads);
        int64_t i0 = task / q_heads * AL_ATTENTION_BLOCK_ROWS;
        int64_t rows = min_int64(AL_ATTENTION_BLOCK_ROWS, n - i0);
        int64_t first = block_first_key(doc_start, i0, rows);
        struct al_attention_block b = query_block(&s, q, k, v, doc_start, h, i0, rows, first, i0 + rows - first,
                                                  scratch.bounds + thread * 2 * AL_ATTENTION_BLOCK_ROWS);
        al_attention_block_forward(&b, scratch.floats + thread * scratch.floats_per_thread,
                                   (float *)q_row(&s, out, i0, h), b.q_stride, lse + i0 * q_heads + h, q_heads);
    }
    scratch_free(&scratch);
    return 0;
}

int al_cpu_attention_forward(struct al_backend *backend, void *out, float *lse, const void *q, const void *k,
                             const void *v, const int32_t *doc_start, int window, int64_t n, int q_heads,
                             int kv_heads, int head_dim)
{
    (void)backend;
    const char *op = "cpu attention_forward";
    struct attention_shape s;
    const int32_t *start;
    int32_t *owned;
    if (prepare_call(op, &s, doc_start, window, n, q_heads, kv_heads, head_dim, &start, &owned) != 0)
        return -1;
    int rc = start ? forward_with_starts(op, &s, out, lse, q, k, v, start) : 0;
    free(owned);
    return rc;
}

/* Backward, with P_ij = exp(score_ij - lse_i), D_i = dout_i . out_i and
 * dS_ij = P_ij (dout_i . v_j - D_i):
 *   dq_i = scale * sum_j dS_ij k_j
 *   dk_j = scale * sum over queries i (all heads of j's group) of dS_ij q_i
 *   dv_j = sum over the same queries of P_ij dout_i
 * Two passes keep every sum in a fixed order: one over query blocks (dq), one over key
 * blocks (dk, dv), each writing only its own rows. The probabilities are recomputed in both. */

static float dot(const float *a, const float *b, int count)
{
    float sum = 0.0f;
    for (int d = 0; d < count; d++)
        sum += a[d] * b[d];
    return sum;
}

/* dS = P * (dP - D) in place over dp, row by row; D of row r at delta[r * delta_stride]. */
static void score_gradient(float *dp, const float *p, int64_t rows, int64_t keys, const float *delta,
                           int64_t delta_stride)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < keys; j++)
            dp[r * keys + j] = p[r * keys + j] * (dp[r * keys + j] - delta[r * delta_stride]);
}

/* What both passes read. */
struct backward_inputs {
    const struct attention_shape *s;
    const float *dout, *q, *k, *v, *lse, *delta;
    const int32_t *doc_start;
};

/* P and dS of one block (P into p, dS into dp, each rows x keys). */
static void block_score_gradient(const struct backward_inputs *in, const struct al_attention_block *b, int h,
                                 int64_t i0, float *p, float *dp)
{
    const struct attention_shape *s = in->s;
    int64_t row0 = i0 * s->q_heads + h;
    al_attention_block_probabilities(b, p, in->lse + row0, s->q_heads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b->rows, (int)b->keys, s->head_dim, 1.0f,
                q_row(s, in->dout, i0, h), (int)b->q_stride, b->v, (int)b->kv_stride, 0.0f, dp, (int)b->keys);
    score_gradient(dp, p, b->rows, b->keys, in->delta + row0, s->q_heads);
}

/* dq of the queries [i0, i0 + rows) of head h. */
static void query_block_gradient(const struct backward_inputs *in, float *dq, int h, int64_t i0, int64_t rows,
                                 float *p, float *dp, int64_t *bounds)
{
    const struct attention_shape *s = in->s;
    int64_t first = block_first_key(in->doc_start, i0, rows);
    struct al_attention_block b =
        query_block(s, in->q, in->k, in->v, in->doc_start, h, i0, rows, first, i0 + rows - first, bounds);
    block_score_gradient(in, &b, h, i0, p, dp);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, s->head_dim, (int)b.keys, s->scale, dp,
                (int)b.keys, b.k, (int)b.kv_stride, 0.0f, (float *)q_row(s, dq, i0, h), (int)b.q_stride);
}

/* The last query that sees any of the keys [j0, j0 + keys): documents need not be laid
 * out in any order, so every later query is checked (a cost far below the GEMMs'). */
static int64_t last_query_seeing(const struct attention_shape *s, const int32_t *doc_start, int64_t j0,
                                 int64_t keys)
{
    int64_t last = j0;
    /* With a window, no query past the last key + window - 1 sees the block. */
    int64_t end = s->window > 0 ? min_int64(s->n, j0 + keys + s->window - 1) : s->n;
    for (int64_t i = j0; i < end; i++)
        if (doc_start[i] < j0 + keys)
            last = i;
    return last;
}

/* dk and dv of the keys [j0, j0 + keys) of kv head g: sums over the group's query heads,
 * then over query blocks, in order. */
static void key_block_gradient(const struct backward_inputs *in, float *dk, float *dv, int g, int64_t j0,
                               int64_t keys, float *p, float *dp, int64_t *bounds)
{
    const struct attention_shape *s = in->s;
    int64_t last = last_query_seeing(s, in->doc_start, j0, keys);
    float *dk_block = (float *)kv_row(s, dk, j0, g), *dv_block = (float *)kv_row(s, dv, j0, g);
    float beta = 0.0f;
    for (int h = g * s->group; h < (g + 1) * s->group; h++)
        for (int64_t i0 = j0; i0 <= last; i0 += AL_ATTENTION_BLOCK_ROWS) {
            int64_t rows = min_int64(AL_ATTENTION_BLOCK_ROWS, last + 1 - i0);
            struct al_attention_block b =
                query_block(s, in->q, in->k, in->v, in->doc_start, h, i0, rows, j0, keys, bounds);
            block_score_gradient(in, &b, h, i0, p, dp);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)keys, s->head_dim, (int)rows, 1.0f, p,
                        (int)keys, q_row(s, in->dout, i0, h), (int)b.q_stride, beta, dv_block, (int)b.kv_stride);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)keys, s->head_dim, (int)rows, s->scale, dp,
                        (int)keys, b.q, (int)b.q_stride, beta, dk_block, (int)b.kv_stride);
            beta = 1.0f;
        }
}

static int backward_with_starts(const char *op, const struct attention_shape *sp, void *dq, void *dk, void *dv,
                                const void *dout, const void *q, const void *k, const void *v, const void *out,
                                const float *lse, const int32_t *doc_start)
{
    struct attention_shape s = *sp;
    int64_t n = s.n;
    int q_heads = s.q_heads, kv_heads = s.kv_heads, head_dim = s.head_dim;
    int64_t rows = n * q_heads;
    int64_t work = rows * longest_document(doc_start, n) * head_dim;
    float *delta = malloc((size_t)rows * sizeof(float));
    int threads = omp_get_max_threads();
    /* Two score-sized buffers (P, dS) per thread; a key block's query run is a block wide. */
    int64_t block_floats = AL_ATTENTION_BLOCK_ROWS * query_block_keys(&s, doc_start);
    struct thread_scratch scratch;
    if (!delta || scratch_create(&scratch, op, threads, 2 * block_floats) != 0) {
        free(delta);
        return delta ? -1 : al_fail("%s: out of memory for %lld row statistics", op, (long long)rows);
    }

#pragma omp parallel for schedule(static) AL_CPU_PARALLEL_IF(rows * head_dim)
    for (int64_t row = 0; row < rows; row++)
        delta[row] = dot((const float *)dout + row * head_dim, (const float *)out + row * head_dim, head_dim);

    struct backward_inputs in = {&s, dout, q, k, v, lse, delta, doc_start};
    int64_t blocks = block_count(n);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) AL_CPU_PARALLEL_IF(work)
    for (int64_t task = 0; task < blocks * q_heads; task++) {
        int thread = omp_get_thread_num();
        float *p = scratch.floats + thread * scratch.floats_per_thread;
        int64_t i0 = task / q_heads * AL_ATTENTION_BLOCK_ROWS;
        query_block_gradient(&in, dq, (int)(task % q_heads), i0, min_int64(AL_ATTENTION_BLOCK_ROWS, n - i0), p,
                             p + block_floats, scratch.bounds + thread * 2 * AL_ATTENTION_BLOCK_ROWS);
    }

#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) AL_CPU_PARALLEL_IF(work)
    for (int64_t task = 0; task < blocks * kv_heads; task++) {
        int thread = omp_get_thread_num();
        float *p = scratch.floats + thread * scratch.floats_per_thread;
        int64_t j0 = task / kv_heads * AL_ATTENTION_BLOCK_ROWS;
        key_block_gradient(&in, dk, dv, (int)(task % kv_heads), j0, min_int64(AL_ATTENTION_BLOCK_ROWS, n - j0), p,
                           p + block_floats, scratch.bounds + thread * 2 * AL_ATTENTION_BLOCK_ROWS);
    }
    scratch_free(&scratch);
    free(delta);
    return 0;
}

int al_cpu_attention_backward(struct al_backend *backend, void *dq, void *dk, void *dv, const void *dout,
                              const void *q, const void *k, const void *v, const void *out, const float *lse,
                              const int32_t *doc_start, int window, int64_t n, int q_heads, int kv_heads,
                              int head_dim)
{
    (void)backend;
    const char *op = "cpu attention_backward";
    struct attention_shape s;
    const int32_t *start;
    int32_t *owned;
    if (prepare_call(op, &s, doc_start, window, n, q_heads, kv_heads, head_dim, &start, &owned) != 0)
        return -1;
    int rc = start ? backward_with_starts(op, &s, dq, dk, dv, dout, q, k, v, out, lse, start) : 0;
    free(owned);
    return rc;
}

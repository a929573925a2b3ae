/* Bit-reproducibility of the CPU backend: every op, forward and backward, gives the same
 * bits when run again and whatever the number of OpenMP threads. Shapes are large enough
 * that the loops really are split across threads. */
#include "cpu_ops_testing.h"

#include <omp.h>

/* Everything the ops produced, end to end, for one comparison. */
struct recording {
    float *values;
    int64_t count, capacity;
};

static void record(struct recording *r, const float *values, int64_t count)
{
    if (r->count + count > r->capacity) {
        r->capacity = 2 * (r->count + count);
        r->values = realloc(r->values, (size_t)r->capacity * sizeof(float));
        cr_assert_not_null(r->values);
    }
    memcpy(r->values + r->count, values, (size_t)count * sizeof(float));
    r->count += count;
}

static void run_attention(struct op_test *t, struct recording *r)
{
    enum { Q_HEADS = 4, KV_HEADS = 2, HEAD_DIM = 16 };
    const int lengths[] = {50, 9, 37};
    int32_t doc_start[96], pos[96];
    int n = (int)pack_documents(lengths, 3, doc_start, pos);
    int64_t q_count = (int64_t)n * Q_HEADS * HEAD_DIM, kv_count = (int64_t)n * KV_HEADS * HEAD_DIM;
    float *q = random_floats(t, q_count, 200, 1.0f), *k = random_floats(t, kv_count, 201, 1.0f),
          *v = random_floats(t, kv_count, 202, 1.0f), *dout = random_floats(t, q_count, 203, 1.0f);
    float *out = alloc_floats(t, q_count), *lse = alloc_floats(t, (int64_t)n * Q_HEADS);
    float *dq = alloc_floats(t, q_count), *dk = alloc_floats(t, kv_count), *dv = alloc_floats(t, kv_count);
    int32_t *starts = alloc_ints(t, n, doc_start), *positions = alloc_ints(t, n, pos);
    float *inv_freq = alloc_floats(t, HEAD_DIM / 2);
    for (int j = 0; j < HEAD_DIM / 2; j++)
        inv_freq[j] = powf(10000.0f, -2.0f * j / HEAD_DIM);
    const struct al_backend_ops *ops = t->backend->ops;
    cr_assert_eq(ops->rope_forward(t->backend, q, positions, inv_freq, n, Q_HEADS, HEAD_DIM), 0);
    cr_assert_eq(ops->attention_forward(t->backend, out, lse, q, k, v, starts, 0, n, Q_HEADS, KV_HEADS, HEAD_DIM), 0);
    cr_assert_eq(ops->attention_backward(t->backend, dq, dk, dv, dout, q, k, v, out, lse, starts, 0, n, Q_HEADS,
                                         KV_HEADS, HEAD_DIM),
                 0);
    cr_assert_eq(ops->rope_backward(t->backend, dq, positions, inv_freq, n, Q_HEADS, HEAD_DIM), 0);
    record(r, out, q_count);
    record(r, lse, (int64_t)n * Q_HEADS);
    record(r, dq, q_count);
    record(r, dk, kv_count);
    record(r, dv, kv_count);
}

static void run_norm_embedding_swiglu(struct op_test *t, struct recording *r)
{
    enum { N = 64, DIM = 600, VOCAB = 10 };
    int32_t id_values[N];
    for (int i = 0; i < N; i++)
        id_values[i] = (i * 7) % VOCAB; /* every id repeats */
    const struct al_backend_ops *ops = t->backend->ops;
    int32_t *ids = alloc_ints(t, N, id_values);
    float *table = random_floats(t, VOCAB * DIM, 210, 1.0f), *dtable = alloc_floats(t, VOCAB * DIM);
    float *x = alloc_floats(t, N * DIM), *normed = alloc_floats(t, N * DIM), *rstd = alloc_floats(t, N);
    float *weight = random_floats(t, DIM, 211, 1.0f), *dweight = alloc_floats(t, DIM);
    float *dout = random_floats(t, N * DIM, 212, 1.0f), *dx = alloc_floats(t, N * DIM);
    float *up = random_floats(t, N * DIM, 213, 1.0f), *gated = alloc_floats(t, N * DIM);
    float *dgate = alloc_floats(t, N * DIM), *dup = alloc_floats(t, N * DIM);
    cr_assert_eq(ops->embedding_forward(t->backend, x, ids, table, N, DIM), 0);
    cr_assert_eq(ops->rmsnorm_forward(t->backend, normed, rstd, x, weight, N, DIM, 1e-5f), 0);
    cr_assert_eq(ops->swiglu_forward(t->backend, gated, normed, up, N, DIM), 0);
    cr_assert_eq(ops->add(t->backend, gated, gated, x, N * DIM), 0);
    cr_assert_eq(ops->swiglu_backward(t->backend, dgate, dup, dout, normed, up, N, DIM), 0);
    cr_assert_eq(ops->rmsnorm_backward(t->backend, dx, dweight, dgate, x, weight, rstd, N, DIM), 0);
    cr_assert_eq(ops->embedding_backward(t->backend, dtable, ids, dx, N, DIM), 0);
    record(r, gated, N * DIM);
    record(r, rstd, N);
    record(r, dup, N * DIM);
    record(r, dweight, DIM);
    record(r, dtable, VOCAB * DIM);
}

static void run_linear_and_loss(struct op_test *t, struct recording *r)
{
    enum { N = 70, IN = 96, OUT = 80, RANK = 8, VOCAB = 1200 };
    const struct al_backend_ops *ops = t->backend->ops;
    float *x = random_floats(t, N * IN, 220, 1.0f), *w = random_floats(t, OUT * IN, 221, 0.2f);
    float *bias = random_floats(t, OUT, 222, 0.2f), *y = alloc_floats(t, N * OUT);
    struct al_lora_args lora = {
        .A = random_floats(t, RANK * IN, 223, 0.2f),
        .B = random_floats(t, OUT * RANK, 224, 0.2f),
        .dA = alloc_floats(t, RANK * IN),
        .dB = alloc_floats(t, OUT * RANK),
        .xa = alloc_floats(t, N * RANK),
        .rank = RANK,
        .scale = 2.0f,
        .dropout = 0.1f,
        .dropout_seed = 99,
    };
    float *lm_head = random_floats(t, VOCAB * OUT, 225, 0.2f);
    int32_t target_values[N];
    for (int i = 0; i < N; i++)
        target_values[i] = i % 3 == 0 ? -1 : (i * 31) % VOCAB;
    int32_t *targets = alloc_ints(t, N, target_values);
    float *loss = alloc_floats(t, 1), *dy = alloc_floats(t, N * OUT), *dx = alloc_floats(t, N * IN);
    cr_assert_eq(ops->linear_forward(t->backend, y, x, w, bias, &lora, N, IN, OUT), 0);
    cr_assert_eq(ops->lm_head_cross_entropy(t->backend, loss, dy, y, lm_head, targets, N, OUT, VOCAB, 1.0f / 46),
                 0);
    cr_assert_eq(ops->linear_backward(t->backend, dx, 0, dy, x, w, &lora, N, IN, OUT), 0);

    enum { PARAMS = 100003 };
    float *param = random_floats(t, PARAMS, 226, 1.0f), *grad = random_floats(t, PARAMS, 227, 1.0f);
    float *m = alloc_floats(t, PARAMS), *v = alloc_floats(t, PARAMS), *norm = alloc_floats(t, 1);
    cr_assert_eq(ops->sum_squares(t->backend, norm, grad, PARAMS), 0);
    for (int step = 1; step <= 2; step++)
        cr_assert_eq(ops->adamw(t->backend, param, grad, m, v, PARAMS, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.7f, step),
                     0);
    record(r, y, N * OUT);
    record(r, lora.xa, N * RANK);
    record(r, loss, 1);
    record(r, dy, N * OUT);
    record(r, dx, N * IN);
    record(r, lora.dA, RANK * IN);
    record(r, lora.dB, OUT * RANK);
    record(r, norm, 1);
    record(r, param, PARAMS);
    record(r, m, PARAMS);
    record(r, v, PARAMS);
}

static struct recording run_everything(int threads)
{
    omp_set_num_threads(threads);
    struct recording r = {0};
    struct op_test t;
    op_test_begin(&t);
    run_attention(&t, &r);
    run_norm_embedding_swiglu(&t, &r);
    run_linear_and_loss(&t, &r);
    op_test_end(&t);
    return r;
}

static void assert_identical(const struct recording *a, const struct recording *b, const char *what)
{
    cr_assert_eq(a->count, b->count);
    for (int64_t i = 0; i < a->count; i++)
        cr_assert(memcmp(&a->values[i], &b->values[i], sizeof(float)) == 0, "%s: value %lld differs: %.9g vs %.9g",
                  what, (long long)i, a->values[i], b->values[i]);
}

Test(cpu_ops_determinism, same_bits_run_to_run_and_across_thread_counts)
{
    struct recording two = run_everything(2);
    struct recording again = run_everything(2);
    struct recording one = run_everything(1);
    struct recording three = run_everything(3);
    assert_identical(&two, &again, "run to run");
    assert_identical(&two, &one, "2 threads vs 1");
    assert_identical(&two, &three, "2 threads vs 3");
    free(two.values);
    free(again.values);
    free(one.values);
    free(three.values);
}

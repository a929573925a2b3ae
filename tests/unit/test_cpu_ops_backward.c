/* Backward ops of the CPU backend against central finite differences of the forward:
 * the scalar objective is L = sum(out * R) for a fixed random R (so dout = R), evaluated
 * in double over the F32 forward, and every analytic gradient must match dL/d(input). */
#include "cpu_ops_testing.h"

/* ---- embedding ---- */

struct embedding_problem {
    struct al_backend *backend;
    float *out, *table, *weights;
    int32_t *ids;
    int n, dim;
};

static double embedding_objective(void *context)
{
    struct embedding_problem *p = context;
    cr_assert_eq(p->backend->ops->embedding_forward(p->backend, p->out, p->ids, p->table, p->n, p->dim), 0);
    return weighted_sum(p->out, p->weights, (int64_t)p->n * p->dim);
}

Test(cpu_ops_backward, embedding_accumulates_repeated_ids)
{
    struct op_test t;
    op_test_begin(&t);
    enum { VOCAB = 6, DIM = 67, N = 9 }; /* DIM spans two column blocks */
    const int32_t ids[N] = {2, 5, 2, 0, 2, 5, 1, 4, 3};
    struct embedding_problem p = {
        .backend = t.backend,
        .out = alloc_floats(&t, N * DIM),
        .table = random_floats(&t, VOCAB * DIM, 100, 1.0f),
        .weights = random_floats(&t, N * DIM, 101, 1.0f),
        .ids = alloc_ints(&t, N, ids),
        .n = N,
        .dim = DIM,
    };
    float *prior = random_floats(&t, VOCAB * DIM, 102, 1.0f);
    float *dtable = copy_floats(&t, prior, VOCAB * DIM);
    cr_assert_eq(t.backend->ops->embedding_backward(t.backend, dtable, p.ids, p.weights, N, DIM), 0);
    /* dtable accumulates: compare what was added. */
    for (int e = 0; e < VOCAB * DIM; e++)
        dtable[e] -= prior[e];
    check_gradient(embedding_objective, &p, p.table, dtable, VOCAB * DIM, "embedding dtable");
    op_test_end(&t);
}

/* ---- RMSNorm ---- */

struct rmsnorm_problem {
    struct al_backend *backend;
    float *out, *rstd, *x, *weight, *weights;
    int n, dim;
};

static const float RMSNORM_EPS = 1e-6f;

static double rmsnorm_objective(void *context)
{
    struct rmsnorm_problem *p = context;
    cr_assert_eq(p->backend->ops->rmsnorm_forward(p->backend, p->out, p->rstd, p->x, p->weight, p->n, p->dim,
                                                  RMSNORM_EPS),
                 0);
    return weighted_sum(p->out, p->weights, (int64_t)p->n * p->dim);
}

Test(cpu_ops_backward, rmsnorm_dx_and_dweight)
{
    struct op_test t;
    op_test_begin(&t);
    enum { N = 5, DIM = 70 };
    struct rmsnorm_problem p = {
        .backend = t.backend,
        .out = alloc_floats(&t, N * DIM),
        .rstd = alloc_floats(&t, N),
        .x = random_floats(&t, N * DIM, 110, 2.0f),
        .weight = random_floats(&t, DIM, 111, 1.5f),
        .weights = random_floats(&t, N * DIM, 112, 1.0f),
        .n = N,
        .dim = DIM,
    };
    rmsnorm_objective(&p); /* fills rstd */
    float *dx = random_floats(&t, N * DIM, 113, 1.0f); /* overwritten */
    float *prior = random_floats(&t, DIM, 114, 1.0f);
    float *dweight = copy_floats(&t, prior, DIM);
    cr_assert_eq(t.backend->ops->rmsnorm_backward(t.backend, dx, dweight, p.weights, p.x, p.weight, p.rstd, N, DIM),
                 0);
    for (int j = 0; j < DIM; j++)
        dweight[j] -= prior[j];
    check_gradient(rmsnorm_objective, &p, p.x, dx, N * DIM, "rmsnorm dx");
    check_gradient(rmsnorm_objective, &p, p.weight, dweight, DIM, "rmsnorm dweight");

    /* dweight may be NULL: dx alone, the same values. */
    float *dx_alone = alloc_floats(&t, N * DIM);
    rmsnorm_objective(&p);
    cr_assert_eq(t.backend->ops->rmsnorm_backward(t.backend, dx_alone, NULL, p.weights, p.x, p.weight, p.rstd, N, DIM),
                 0);
    cr_assert_eq(memcmp(dx, dx_alone, sizeof(float) * N * DIM), 0);
    op_test_end(&t);
}

/* ---- RoPE ---- */

struct rope_problem {
    struct al_backend *backend;
    float *x, *rotated, *inv_freq, *weights;
    int32_t *pos;
    int n, heads, head_dim;
};

static double rope_objective(void *context)
{
    struct rope_problem *p = context;
    int64_t count = (int64_t)p->n * p->heads * p->head_dim;
    memcpy(p->rotated, p->x, (size_t)count * sizeof(float));
    cr_assert_eq(p->backend->ops->rope_forward(p->backend, p->rotated, p->pos, p->inv_freq, p->n, p->heads,
                                               p->head_dim),
                 0);
    return weighted_sum(p->rotated, p->weights, count);
}

static struct rope_problem make_rope_problem(struct op_test *t, uint64_t seed)
{
    enum { HEADS = 3, HEAD_DIM = 8 };
    const int lengths[] = {4, 3, 5};
    int32_t doc_start[12], pos[12];
    int n = (int)pack_documents(lengths, 3, doc_start, pos);
    struct rope_problem p = {
        .backend = t->backend,
        .x = random_floats(t, n * HEADS * HEAD_DIM, seed, 1.0f),
        .rotated = alloc_floats(t, n * HEADS * HEAD_DIM),
        .inv_freq = alloc_floats(t, HEAD_DIM / 2),
        .weights = random_floats(t, n * HEADS * HEAD_DIM, seed + 1, 1.0f),
        .pos = alloc_ints(t, n, pos),
        .n = n,
        .heads = HEADS,
        .head_dim = HEAD_DIM,
    };
    for (int j = 0; j < HEAD_DIM / 2; j++)
        p.inv_freq[j] = powf(10000.0f, -2.0f * j / HEAD_DIM);
    return p;
}

Test(cpu_ops_backward, rope_gradient)
{
    struct op_test t;
    op_test_begin(&t);
    struct rope_problem p = make_rope_problem(&t, 120);
    int64_t count = (int64_t)p.n * p.heads * p.head_dim;
    float *dx = copy_floats(&t, p.weights, count);
    cr_assert_eq(t.backend->ops->rope_backward(t.backend, dx, p.pos, p.inv_freq, p.n, p.heads, p.head_dim), 0);
    check_gradient(rope_objective, &p, p.x, dx, count, "rope dx");
    op_test_end(&t);
}

/* A rotation's gradient is its inverse: backward undoes forward. */
#define ROPE_ROUND_TRIP_TOLERANCE 1e-6
Test(cpu_ops_backward, rope_backward_inverts_forward)
{
    struct op_test t;
    op_test_begin(&t);
    struct rope_problem p = make_rope_problem(&t, 121);
    int64_t count = (int64_t)p.n * p.heads * p.head_dim;
    rope_objective(&p);
    int changed = 0;
    for (int64_t e = 0; e < count; e++)
        changed += p.rotated[e] != p.x[e];
    cr_assert_gt(changed, count / 2, "forward must move most elements");
    cr_assert_eq(t.backend->ops->rope_backward(t.backend, p.rotated, p.pos, p.inv_freq, p.n, p.heads, p.head_dim), 0);
    cr_assert_leq(test_max_abs_error(p.rotated, p.x, count), ROPE_ROUND_TRIP_TOLERANCE);
    op_test_end(&t);
}

/* ---- attention ---- */

struct attention_problem {
    struct al_backend *backend;
    float *q, *k, *v, *out, *lse, *weights;
    int32_t *doc_start;
    int window, n, q_heads, kv_heads, head_dim;
};

static double attention_objective(void *context)
{
    struct attention_problem *p = context;
    cr_assert_eq(p->backend->ops->attention_forward(p->backend, p->out, p->lse, p->q, p->k, p->v, p->doc_start,
                                                    p->window, p->n, p->q_heads, p->kv_heads, p->head_dim),
                 0);
    return weighted_sum(p->out, p->weights, (int64_t)p->n * p->q_heads * p->head_dim);
}

static void check_attention_backward(const int *lengths, int documents, int window, int q_heads, int kv_heads,
                                     int head_dim, uint64_t seed)
{
    struct op_test t;
    op_test_begin(&t);
    int32_t doc_start[64], pos[64];
    int n = (int)pack_documents(lengths, documents, doc_start, pos);
    int64_t q_count = (int64_t)n * q_heads * head_dim, kv_count = (int64_t)n * kv_heads * head_dim;
    struct attention_problem p = {
        .backend = t.backend,
        .q = random_floats(&t, q_count, seed, 1.5f),
        .k = random_floats(&t, kv_count, seed + 1, 1.5f),
        .v = random_floats(&t, kv_count, seed + 2, 1.0f),
        .out = alloc_floats(&t, q_count),
        .lse = alloc_floats(&t, (int64_t)n * q_heads),
        .weights = random_floats(&t, q_count, seed + 3, 1.0f),
        .doc_start = alloc_ints(&t, n, doc_start),
        .window = window,
        .n = n,
        .q_heads = q_heads,
        .kv_heads = kv_heads,
        .head_dim = head_dim,
    };
    attention_objective(&p);
    /* Garbage in the outputs: backward must overwrite, not accumulate. */
    float *dq = random_floats(&t, q_count, seed + 4, 1.0f);
    float *dk = random_floats(&t, kv_count, seed + 5, 1.0f);
    float *dv = random_floats(&t, kv_count, seed + 6, 1.0f);
    cr_assert_eq(t.backend->ops->attention_backward(t.backend, dq, dk, dv, p.weights, p.q, p.k, p.v, p.out, p.lse,
                                                    p.doc_start, window, n, q_heads, kv_heads, head_dim),
                 0, "%s", al_error_message());
    check_gradient(attention_objective, &p, p.q, dq, q_count, "attention dq");
    check_gradient(attention_objective, &p, p.k, dk, kv_count, "attention dk");
    check_gradient(attention_objective, &p, p.v, dv, kv_count, "attention dv");
    op_test_end(&t);
}

Test(cpu_ops_backward, attention_gqa_two_kv_heads_three_documents)
{
    const int lengths[] = {5, 3, 6};
    check_attention_backward(lengths, 3, 0, 4, 2, 8, 130);
}

Test(cpu_ops_backward, attention_gqa_one_kv_head)
{
    const int lengths[] = {7, 1, 4};
    check_attention_backward(lengths, 3, 0, 4, 1, 6, 131);
}

Test(cpu_ops_backward, attention_multi_head_single_document)
{
    const int lengths[] = {9};
    check_attention_backward(lengths, 1, 0, 2, 2, 4, 132);
}

/* A window of 3 over documents of 5, 3 and 6 tokens: keys drop out of the window inside
 * the first and last documents, and the middle one fits exactly. */
Test(cpu_ops_backward, attention_sliding_window_with_document_masks)
{
    const int lengths[] = {5, 3, 6};
    check_attention_backward(lengths, 3, 3, 4, 2, 8, 133);
}

/* ---- SwiGLU ---- */

struct swiglu_problem {
    struct al_backend *backend;
    float *out, *gate, *up, *weights;
    int n, dim;
};

static double swiglu_objective(void *context)
{
    struct swiglu_problem *p = context;
    cr_assert_eq(p->backend->ops->swiglu_forward(p->backend, p->out, p->gate, p->up, p->n, p->dim), 0);
    return weighted_sum(p->out, p->weights, (int64_t)p->n * p->dim);
}

Test(cpu_ops_backward, swiglu_dgate_and_dup)
{
    struct op_test t;
    op_test_begin(&t);
    enum { N = 4, DIM = 11 };
    struct swiglu_problem p = {
        .backend = t.backend,
        .out = alloc_floats(&t, N * DIM),
        .gate = random_floats(&t, N * DIM, 140, 4.0f),
        .up = random_floats(&t, N * DIM, 141, 2.0f),
        .weights = random_floats(&t, N * DIM, 142, 1.0f),
        .n = N,
        .dim = DIM,
    };
    float *dgate = random_floats(&t, N * DIM, 143, 1.0f), *dup = random_floats(&t, N * DIM, 144, 1.0f);
    cr_assert_eq(t.backend->ops->swiglu_backward(t.backend, dgate, dup, p.weights, p.gate, p.up, N, DIM), 0);
    check_gradient(swiglu_objective, &p, p.gate, dgate, N * DIM, "swiglu dgate");
    check_gradient(swiglu_objective, &p, p.up, dup, N * DIM, "swiglu dup");
    op_test_end(&t);
}

/* ---- linear with LoRA ---- */

struct linear_problem {
    struct al_backend *backend;
    float *x, *weight, *bias, *y, *weights;
    struct al_lora_args lora;
    int n, in, out;
};

static double linear_objective(void *context)
{
    struct linear_problem *p = context;
    cr_assert_eq(p->backend->ops->linear_forward(p->backend, p->y, p->x, p->weight, p->bias, &p->lora, p->n, p->in,
                                                 p->out),
                 0, "%s", al_error_message());
    return weighted_sum(p->y, p->weights, (int64_t)p->n * p->out);
}

static struct linear_problem make_linear_problem(struct op_test *t, float dropout, uint64_t seed)
{
    enum { N = 7, IN = 13, OUT = 10, RANK = 4 };
    struct linear_problem p = {
        .backend = t->backend,
        .x = random_floats(t, N * IN, seed, 1.0f),
        .weight = random_floats(t, OUT * IN, seed + 1, 0.5f),
        .bias = random_floats(t, OUT, seed + 2, 1.0f),
        .y = alloc_floats(t, N * OUT),
        .weights = random_floats(t, N * OUT, seed + 3, 1.0f),
        .n = N,
        .in = IN,
        .out = OUT,
    };
    p.lora = (struct al_lora_args){
        .A = random_floats(t, RANK * IN, seed + 4, 0.5f),
        .B = random_floats(t, OUT * RANK, seed + 5, 0.5f),
        .dA = random_floats(t, RANK * IN, seed + 6, 1.0f), /* accumulated into */
        .dB = random_floats(t, OUT * RANK, seed + 7, 1.0f),
        .xa = alloc_floats(t, N * RANK),
        .rank = RANK,
        .scale = 1.5f,
        .dropout = dropout,
        .dropout_seed = seed * 104729,
    };
    return p;
}

static void check_linear_backward(float dropout, uint64_t seed)
{
    struct op_test t;
    op_test_begin(&t);
    struct linear_problem p = make_linear_problem(&t, dropout, seed);
    int64_t x_count = (int64_t)p.n * p.in, a_count = (int64_t)p.lora.rank * p.in,
            b_count = (int64_t)p.out * p.lora.rank;
    linear_objective(&p); /* fills xa */

    /* accumulate_dx: dx starts with a prior that the op adds to (q, k, v share x). */
    float *prior_dx = random_floats(&t, x_count, seed + 8, 1.0f);
    float *dx = copy_floats(&t, prior_dx, x_count);
    float *prior_da = copy_floats(&t, p.lora.dA, a_count), *prior_db = copy_floats(&t, p.lora.dB, b_count);
    cr_assert_eq(t.backend->ops->linear_backward(t.backend, dx, 1, p.weights, p.x, p.weight, &p.lora, p.n, p.in,
                                                 p.out),
                 0, "%s", al_error_message());
    for (int64_t e = 0; e < x_count; e++)
        dx[e] -= prior_dx[e];
    for (int64_t e = 0; e < a_count; e++)
        p.lora.dA[e] -= prior_da[e];
    for (int64_t e = 0; e < b_count; e++)
        p.lora.dB[e] -= prior_db[e];
    check_gradient(linear_objective, &p, p.x, dx, x_count, "linear dx");
    check_gradient(linear_objective, &p, (float *)p.lora.A, p.lora.dA, a_count, "linear dA");
    check_gradient(linear_objective, &p, (float *)p.lora.B, p.lora.dB, b_count, "linear dB");

    /* Overwriting dx gives the same gradient as accumulating onto zero... */
    linear_objective(&p);
    float *fresh_dx = random_floats(&t, x_count, seed + 9, 1.0f);
    cr_assert_eq(t.backend->ops->linear_backward(t.backend, fresh_dx, 0, p.weights, p.x, p.weight, &p.lora, p.n,
                                                 p.in, p.out),
                 0);
    double *expected = alloc_doubles(x_count);
    for (int64_t e = 0; e < x_count; e++)
        expected[e] = dx[e];
    assert_close(fresh_dx, expected, x_count, FORWARD_TOLERANCE, "linear dx overwritten");
    free(expected);

    /* ...and dx may be NULL when only the LoRA gradients are wanted. */
    float *before = copy_floats(&t, p.lora.dA, a_count);
    cr_assert_eq(t.backend->ops->linear_backward(t.backend, NULL, 0, p.weights, p.x, p.weight, &p.lora, p.n, p.in,
                                                 p.out),
                 0);
    cr_assert_neq(memcmp(before, p.lora.dA, sizeof(float) * a_count), 0, "dA still accumulates without dx");
    op_test_end(&t);
}

Test(cpu_ops_backward, linear_lora_without_dropout)
{
    check_linear_backward(0.0f, 150);
}

Test(cpu_ops_backward, linear_lora_with_dropout)
{
    check_linear_backward(0.25f, 151);
}

struct plain_linear_problem {
    struct al_backend *backend;
    float *x, *weight, *y, *weights;
    int n, in, out;
};

static double plain_linear_objective(void *context)
{
    struct plain_linear_problem *p = context;
    cr_assert_eq(p->backend->ops->linear_forward(p->backend, p->y, p->x, p->weight, NULL, NULL, p->n, p->in, p->out),
                 0);
    return weighted_sum(p->y, p->weights, (int64_t)p->n * p->out);
}

Test(cpu_ops_backward, linear_without_lora)
{
    struct op_test t;
    op_test_begin(&t);
    enum { N = 6, IN = 5, OUT = 9 };
    struct plain_linear_problem p = {
        .backend = t.backend,
        .x = random_floats(&t, N * IN, 160, 1.0f),
        .weight = random_floats(&t, OUT * IN, 161, 1.0f),
        .y = alloc_floats(&t, N * OUT),
        .weights = random_floats(&t, N * OUT, 162, 1.0f),
        .n = N,
        .in = IN,
        .out = OUT,
    };
    float *dx = random_floats(&t, N * IN, 163, 1.0f);
    cr_assert_eq(t.backend->ops->linear_backward(t.backend, dx, 0, p.weights, p.x, p.weight, NULL, N, IN, OUT), 0);
    check_gradient(plain_linear_objective, &p, p.x, dx, N * IN, "plain linear dx");
    op_test_end(&t);
}

/* ---- lm_head + cross-entropy ---- */

struct cross_entropy_problem {
    struct al_backend *backend;
    float *x, *weight, *loss_sum;
    int32_t *targets;
    int n, dim, vocab;
    float grad_scale;
};

/* The objective is the scaled loss, so dx must be its gradient. */
static double cross_entropy_objective(void *context)
{
    struct cross_entropy_problem *p = context;
    *p->loss_sum = 0.0f;
    cr_assert_eq(p->backend->ops->lm_head_cross_entropy(p->backend, p->loss_sum, NULL, p->x, p->weight, p->targets,
                                                        p->n, p->dim, p->vocab, p->grad_scale),
                 0);
    return (double)*p->loss_sum * p->grad_scale;
}

Test(cpu_ops_backward, lm_head_cross_entropy_dx_with_grad_scale)
{
    struct op_test t;
    op_test_begin(&t);
    enum { N = 37, DIM = 6, VOCAB = 29 };
    int32_t targets[N];
    for (int i = 0; i < N; i++)
        targets[i] = i % 5 == 2 ? -1 : (i * 7 + 3) % VOCAB;
    struct cross_entropy_problem p = {
        .backend = t.backend,
        .x = random_floats(&t, N * DIM, 170, 1.0f),
        .weight = random_floats(&t, VOCAB * DIM, 171, 1.0f),
        .loss_sum = alloc_floats(&t, 1),
        .targets = alloc_ints(&t, N, targets),
        .n = N,
        .dim = DIM,
        .vocab = VOCAB,
        .grad_scale = 1.0f / 3.0f, /* as if the accumulated batch held 3 target tokens */
    };
    float *dx = random_floats(&t, N * DIM, 172, 1.0f);
    cr_assert_eq(t.backend->ops->lm_head_cross_entropy(t.backend, p.loss_sum, dx, p.x, p.weight, p.targets, N, DIM,
                                                       VOCAB, p.grad_scale),
                 0);
    check_gradient(cross_entropy_objective, &p, p.x, dx, N * DIM, "cross-entropy dx");
    op_test_end(&t);
}

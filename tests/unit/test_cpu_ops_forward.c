/* Forward ops of the CPU backend against naive double-precision loops written here,
 * independently of the implementation, on random data and awkward shapes. */
#include "cpu_ops_testing.h"

#include "agentlora/dtype.h"
#include "agentlora/rng.h"

/* ---- memory ---- */

Test(cpu_backend, alloc_is_zero_filled_and_copies_round_trip)
{
    struct op_test t;
    op_test_begin(&t);
    struct al_backend *b = t.backend;
    cr_assert_str_eq(b->name, "cpu");

    enum { N = 37 };
    unsigned char *p = op_test_alloc(&t, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(p[i], 0, "byte %d of a fresh allocation is %d", i, p[i]);
    cr_assert_not_null(op_test_alloc(&t, 0), "a zero-byte allocation is not a failure");

    float host[N], back[N];
    test_fill_random(host, N, 1, 2.0f);
    float *dev = alloc_floats(&t, N);
    cr_assert_eq(b->ops->copy_to_backend(b, dev, host, sizeof(host)), 0);
    cr_assert_eq(b->ops->copy_to_host(b, back, dev, sizeof(host)), 0);
    cr_assert_eq(memcmp(host, back, sizeof(host)), 0);
    cr_assert_eq(b->ops->zero(b, dev, sizeof(host)), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(dev[i], 0.0f);
    cr_assert_eq(b->ops->synchronize(b), 0);
    op_test_end(&t);
}

Test(cpu_backend, upload_convert_and_download_f32)
{
    struct op_test t;
    op_test_begin(&t);
    struct al_backend *b = t.backend;
    enum { N = 9 };
    /* Values exact in bf16, so both directions are exact. */
    const float values[N] = {1.0f, -2.5f, 0.15625f, 3.0f, -0.0078125f, 96.0f, -1.75f, 0.5f, 12.0f};
    uint16_t bf16[N];
    for (int i = 0; i < N; i++)
        bf16[i] = al_f32_to_bf16(values[i]);

    float *dev = alloc_floats(&t, N);
    cr_assert_eq(b->ops->upload_convert(b, dev, AL_DTYPE_F32, bf16, AL_DTYPE_BF16, N), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(dev[i], values[i], "element %d: %g != %g", i, dev[i], values[i]);

    uint16_t *dev_bf16 = op_test_alloc(&t, sizeof(bf16));
    cr_assert_eq(b->ops->upload_convert(b, dev_bf16, AL_DTYPE_BF16, values, AL_DTYPE_F32, N), 0);
    float back[N];
    cr_assert_eq(b->ops->download_f32(b, back, dev_bf16, AL_DTYPE_BF16, N), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(back[i], values[i]);

    cr_assert_eq(b->ops->upload_convert(b, dev, AL_DTYPE_F32, bf16, AL_DTYPE_I32, N), -1);
    cr_assert(strstr(al_error_message(), "I32") != NULL, "message: %s", al_error_message());
    op_test_end(&t);
}

/* ---- embedding ---- */

Test(cpu_ops_forward, embedding_gathers_rows)
{
    struct op_test t;
    op_test_begin(&t);
    enum { VOCAB = 11, DIM = 13, N = 7 };
    const int32_t id_values[N] = {3, 0, 10, 3, 7, 1, 3};
    float *table = random_floats(&t, VOCAB * DIM, 2, 1.0f);
    int32_t *ids = alloc_ints(&t, N, id_values);
    float *out = alloc_floats(&t, N * DIM);
    cr_assert_eq(t.backend->ops->embedding_forward(t.backend, out, ids, table, N, DIM), 0);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < DIM; j++)
            cr_assert_eq(out[i * DIM + j], table[id_values[i] * DIM + j], "token %d column %d", i, j);
    op_test_end(&t);
}

/* ---- RMSNorm ---- */

static void check_rmsnorm_forward(int n, int dim, uint64_t seed)
{
    struct op_test t;
    op_test_begin(&t);
    const float eps = 1e-5f;
    float *x = random_floats(&t, (int64_t)n * dim, seed, 2.0f);
    float *w = random_floats(&t, dim, seed + 1, 1.5f);
    float *out = alloc_floats(&t, (int64_t)n * dim);
    float *rstd = alloc_floats(&t, n);
    cr_assert_eq(t.backend->ops->rmsnorm_forward(t.backend, out, rstd, x, w, n, dim, eps), 0);

    double *ref = alloc_doubles((int64_t)n * dim), *ref_rstd = alloc_doubles(n);
    for (int i = 0; i < n; i++) {
        double sum = 0;
        for (int j = 0; j < dim; j++)
            sum += (double)x[i * dim + j] * x[i * dim + j];
        ref_rstd[i] = 1.0 / sqrt(sum / dim + eps);
        for (int j = 0; j < dim; j++)
            ref[i * dim + j] = x[i * dim + j] * ref_rstd[i] * w[j];
    }
    assert_close(out, ref, (int64_t)n * dim, FORWARD_TOLERANCE, "rmsnorm out");
    assert_close(rstd, ref_rstd, n, FORWARD_TOLERANCE, "rmsnorm rstd");
    free(ref);
    free(ref_rstd);
    op_test_end(&t);
}

Test(cpu_ops_forward, rmsnorm_matches_double_loop)
{
    check_rmsnorm_forward(5, 7, 10);
    check_rmsnorm_forward(3, 64 + 5, 11); /* more than one column block */
    check_rmsnorm_forward(1, 1, 12);
}

/* ---- RoPE ---- */

static void rope_inv_freq(float *inv_freq, int head_dim)
{
    for (int j = 0; j < head_dim / 2; j++)
        inv_freq[j] = (float)pow(10000.0, -2.0 * j / head_dim);
}

static void check_rope_forward(int heads, int head_dim, uint64_t seed)
{
    struct op_test t;
    op_test_begin(&t);
    const int lengths[] = {5, 2, 7};
    int32_t doc_start[14], pos_values[14];
    int64_t n = pack_documents(lengths, 3, doc_start, pos_values);
    int64_t count = n * heads * head_dim;
    int half = head_dim / 2;

    float *x = random_floats(&t, count, seed, 1.0f);
    float *original = copy_floats(&t, x, count);
    float *inv_freq = alloc_floats(&t, half);
    rope_inv_freq(inv_freq, head_dim);
    int32_t *pos = alloc_ints(&t, n, pos_values);
    cr_assert_eq(t.backend->ops->rope_forward(t.backend, x, pos, inv_freq, n, heads, head_dim), 0);

    double *ref = alloc_doubles(count);
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < head_dim; j++) {
                const float *v = original + (i * heads + h) * head_dim;
                int pair = j < half ? j + half : j - half;
                double angle = (double)pos_values[i] * inv_freq[j % half];
                double rotated_half = j < half ? -v[pair] : v[pair];
                ref[(i * heads + h) * head_dim + j] = v[j] * cos(angle) + rotated_half * sin(angle);
            }
    assert_close(x, ref, count, FORWARD_TOLERANCE, "rope");
    /* Position 0 (each document's first token) is left alone. */
    cr_assert_eq(memcmp(x, original, (size_t)heads * head_dim * sizeof(float)), 0);
    free(ref);
    op_test_end(&t);
}

Test(cpu_ops_forward, rope_rotates_half_pairs_with_restarting_positions)
{
    check_rope_forward(3, 6, 20);
    check_rope_forward(2, 16, 21);
}

/* ---- attention ---- */

/* Naive attention in double: full masked score row, softmax, weighted values. With a
 * window, token i sees keys j with i - window < j (transformers' sliding_window mask). */
static void reference_attention(double *out, double *lse, const float *q, const float *k, const float *v,
                                const int32_t *doc_start, int window, int64_t n, int q_heads, int kv_heads,
                                int head_dim)
{
    double scale = 1.0 / sqrt((double)head_dim);
    double *scores = alloc_doubles(n);
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < q_heads; h++) {
            int g = h / (q_heads / kv_heads);
            const float *qi = q + (i * q_heads + h) * head_dim;
            int64_t first = doc_start[i];
            if (window > 0 && i - window + 1 > first)
                first = i - window + 1;
            double max_score = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                if (j > i || j < first)
                    continue;
                double s = 0;
                for (int d = 0; d < head_dim; d++)
                    s += (double)qi[d] * k[(j * kv_heads + g) * head_dim + d];
                scores[j] = s * scale;
                if (scores[j] > max_score)
                    max_score = scores[j];
            }
            double total = 0;
            for (int64_t j = first; j <= i; j++)
                total += exp(scores[j] - max_score);
            double *o = out + (i * q_heads + h) * head_dim;
            for (int d = 0; d < head_dim; d++) {
                double acc = 0;
                for (int64_t j = first; j <= i; j++)
                    acc += exp(scores[j] - max_score) / total * v[(j * kv_heads + g) * head_dim + d];
                o[d] = acc;
            }
            lse[i * q_heads + h] = max_score + log(total);
        }
    free(scores);
}

static void check_attention_forward(const int *lengths, int documents, int window, int q_heads, int kv_heads,
                                    int head_dim, uint64_t seed)
{
    struct op_test t;
    op_test_begin(&t);
    int32_t doc_start[256], pos[256];
    int64_t n = pack_documents(lengths, documents, doc_start, pos);
    int64_t q_count = n * q_heads * head_dim, kv_count = n * kv_heads * head_dim;
    float *q = random_floats(&t, q_count, seed, 2.0f);
    float *k = random_floats(&t, kv_count, seed + 1, 2.0f);
    float *v = random_floats(&t, kv_count, seed + 2, 1.0f);
    int32_t *starts = alloc_ints(&t, n, doc_start);
    float *out = alloc_floats(&t, q_count);
    float *lse = alloc_floats(&t, n * q_heads);
    cr_assert_eq(t.backend->ops->attention_forward(t.backend, out, lse, q, k, v, starts, window, n, q_heads,
                                                   kv_heads, head_dim),
                 0, "%s", al_error_message());

    double *ref = alloc_doubles(q_count), *ref_lse = alloc_doubles(n * q_heads);
    reference_attention(ref, ref_lse, q, k, v, doc_start, window, n, q_heads, kv_heads, head_dim);
    assert_close(out, ref, q_count, FORWARD_TOLERANCE, "attention out");
    assert_close(lse, ref_lse, n * q_heads, FORWARD_TOLERANCE, "attention lse");
    free(ref);
    free(ref_lse);
    op_test_end(&t);
}

Test(cpu_ops_forward, attention_gqa_with_document_masks)
{
    const int three_documents[] = {5, 3, 7};
    check_attention_forward(three_documents, 3, 0, 4, 2, 8, 30);
    check_attention_forward(three_documents, 3, 0, 4, 1, 6, 31);
    const int one_document[] = {9};
    check_attention_forward(one_document, 1, 0, 2, 2, 16, 32);
    const int single_tokens[] = {1, 1, 1};
    check_attention_forward(single_tokens, 3, 0, 3, 3, 4, 33); /* each token sees only itself */
}

/* Windows shorter than some documents and longer than others, one of 1 (each token sees
 * only itself), and documents longer than a 64-query block, so that blocks start mid-window. */
Test(cpu_ops_forward, attention_sliding_window_with_document_masks)
{
    const int three_documents[] = {5, 3, 7};
    check_attention_forward(three_documents, 3, 4, 4, 2, 8, 34);
    check_attention_forward(three_documents, 3, 1, 2, 1, 4, 35);
    const int long_documents[] = {150, 40};
    check_attention_forward(long_documents, 2, 37, 4, 2, 8, 36);
    check_attention_forward(long_documents, 2, 64, 2, 2, 4, 37);
}

Test(cpu_ops_forward, attention_rejects_bad_shapes)
{
    struct op_test t;
    op_test_begin(&t);
    const int32_t bad_start[2] = {0, 2}; /* token 1 cannot start after itself */
    int32_t *starts = alloc_ints(&t, 2, bad_start);
    float *buf = random_floats(&t, 2 * 4 * 4, 1, 1.0f);
    float *lse = alloc_floats(&t, 8);
    cr_assert_eq(t.backend->ops->attention_forward(t.backend, buf, lse, buf, buf, buf, starts, 0, 2, 4, 4, 4), -1);
    cr_assert(strstr(al_error_message(), "token 1") != NULL, "message: %s", al_error_message());
    const int32_t good_start[2] = {0, 0};
    memcpy(starts, good_start, sizeof(good_start));
    cr_assert_eq(t.backend->ops->attention_forward(t.backend, buf, lse, buf, buf, buf, starts, 0, 2, 4, 3, 4), -1);
    cr_assert(strstr(al_error_message(), "kv heads") != NULL, "message: %s", al_error_message());
    cr_assert_eq(t.backend->ops->attention_forward(t.backend, buf, lse, buf, buf, buf, starts, -1, 2, 4, 4, 4), -1);
    cr_assert(strstr(al_error_message(), "sliding window -1") != NULL, "message: %s", al_error_message());
    op_test_end(&t);
}

/* ---- SwiGLU ---- */

Test(cpu_ops_forward, swiglu_matches_double_loop)
{
    struct op_test t;
    op_test_begin(&t);
    enum { N = 5, DIM = 19 };
    float *gate = random_floats(&t, N * DIM, 40, 6.0f);
    float *up = random_floats(&t, N * DIM, 41, 2.0f);
    gate[0] = -100.0f; /* far into the tail: silu -> 0 without NaN */
    float *out = alloc_floats(&t, N * DIM);
    cr_assert_eq(t.backend->ops->swiglu_forward(t.backend, out, gate, up, N, DIM), 0);
    double ref[N * DIM];
    for (int i = 0; i < N * DIM; i++)
        ref[i] = gate[i] / (1.0 + exp(-(double)gate[i])) * up[i];
    assert_close(out, ref, N * DIM, FORWARD_TOLERANCE, "swiglu");
    op_test_end(&t);
}

/* ---- linear ---- */

struct linear_case {
    int n, in, out, rank;
    int with_bias, with_lora;
    float dropout;
};

static void check_linear_forward(struct linear_case c, uint64_t seed)
{
    struct op_test t;
    op_test_begin(&t);
    float *x = random_floats(&t, (int64_t)c.n * c.in, seed, 1.0f);
    float *w = random_floats(&t, (int64_t)c.out * c.in, seed + 1, 0.5f);
    float *bias = c.with_bias ? random_floats(&t, c.out, seed + 2, 1.0f) : NULL;
    float *y = alloc_floats(&t, (int64_t)c.n * c.out);
    struct al_lora_args lora = {0};
    if (c.with_lora) {
        lora.A = random_floats(&t, (int64_t)c.rank * c.in, seed + 3, 0.5f);
        lora.B = random_floats(&t, (int64_t)c.out * c.rank, seed + 4, 0.5f);
        lora.xa = alloc_floats(&t, (int64_t)c.n * c.rank);
        lora.rank = c.rank;
        lora.scale = 2.0f;
        lora.dropout = c.dropout;
        lora.dropout_seed = seed * 7919;
    }
    cr_assert_eq(t.backend->ops->linear_forward(t.backend, y, x, w, bias, c.with_lora ? &lora : NULL, c.n, c.in,
                                                c.out),
                 0, "%s", al_error_message());

    double *ref = alloc_doubles((int64_t)c.n * c.out), *ref_xa = alloc_doubles((int64_t)c.n * c.rank);
    int dropped = 0;
    for (int i = 0; i < c.n; i++) {
        for (int r = 0; r < c.rank && c.with_lora; r++) {
            double acc = 0;
            for (int j = 0; j < c.in; j++) {
                uint64_t e = (uint64_t)i * c.in + j;
                int keep = al_hash_uniform(lora.dropout_seed, e) >= c.dropout;
                dropped += !keep;
                double kept = keep ? x[e] / (1.0 - c.dropout) : 0.0;
                acc += kept * lora.A[r * c.in + j];
            }
            ref_xa[i * c.rank + r] = acc;
        }
        for (int o = 0; o < c.out; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int j = 0; j < c.in; j++)
                acc += (double)x[i * c.in + j] * w[o * c.in + j];
            for (int r = 0; r < c.rank && c.with_lora; r++)
                acc += lora.scale * ref_xa[i * c.rank + r] * lora.B[o * c.rank + r];
            ref[i * c.out + o] = acc;
        }
    }
    if (c.dropout > 0)
        cr_assert_gt(dropped, 0, "the dropout case must drop something");
    assert_close(y, ref, (int64_t)c.n * c.out, FORWARD_TOLERANCE, "linear y");
    if (c.with_lora)
        assert_close(lora.xa, ref_xa, (int64_t)c.n * c.rank, FORWARD_TOLERANCE, "linear xa");
    free(ref);
    free(ref_xa);
    op_test_end(&t);
}

Test(cpu_ops_forward, linear_plain_bias_lora_and_dropout)
{
    check_linear_forward((struct linear_case){.n = 7, .in = 11, .out = 13}, 50);
    check_linear_forward((struct linear_case){.n = 7, .in = 11, .out = 13, .with_bias = 1}, 51);
    check_linear_forward((struct linear_case){.n = 9, .in = 16, .out = 5, .rank = 3, .with_lora = 1}, 52);
    check_linear_forward(
        (struct linear_case){.n = 9, .in = 16, .out = 5, .rank = 3, .with_bias = 1, .with_lora = 1, .dropout = 0.3f},
        53);
    check_linear_forward((struct linear_case){.n = 1, .in = 1, .out = 1, .rank = 1, .with_lora = 1}, 54);
}

/* ---- add ---- */

Test(cpu_ops_forward, add_allows_aliasing)
{
    struct op_test t;
    op_test_begin(&t);
    enum { N = 23 };
    float *a = random_floats(&t, N, 60, 1.0f);
    float *b = random_floats(&t, N, 61, 1.0f);
    float *a_copy = copy_floats(&t, a, N);
    float *y = alloc_floats(&t, N);
    cr_assert_eq(t.backend->ops->add(t.backend, y, a, b, N), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(y[i], a[i] + b[i]);
    cr_assert_eq(t.backend->ops->add(t.backend, a, a, b, N), 0); /* the residual stream: a += b */
    for (int i = 0; i < N; i++)
        cr_assert_eq(a[i], a_copy[i] + b[i]);
    op_test_end(&t);
}

/* ---- lm_head + cross-entropy ---- */

/* Reference loss and gradient in double from the full logits (fine at test sizes). */
static double reference_cross_entropy(double *dx, const float *x, const float *w, const int32_t *targets, int n,
                                      int dim, int vocab, double grad_scale)
{
    double loss = 0;
    double *logits = alloc_doubles(vocab);
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < dim; d++)
            dx[i * dim + d] = 0;
        if (targets[i] < 0)
            continue;
        double max_logit = -INFINITY, total = 0;
        for (int c = 0; c < vocab; c++) {
            logits[c] = 0;
            for (int d = 0; d < dim; d++)
                logits[c] += (double)x[i * dim + d] * w[c * dim + d];
            if (logits[c] > max_logit)
                max_logit = logits[c];
        }
        for (int c = 0; c < vocab; c++)
            total += exp(logits[c] - max_logit);
        double lse = max_logit + log(total);
        loss += lse - logits[targets[i]];
        for (int c = 0; c < vocab; c++) {
            double dlogit = exp(logits[c] - lse) - (c == targets[i]);
            for (int d = 0; d < dim; d++)
                dx[i * dim + d] += grad_scale * dlogit * w[c * dim + d];
        }
    }
    free(logits);
    return loss;
}

static void check_cross_entropy(int n, int dim, int vocab, uint64_t seed)
{
    struct op_test t;
    op_test_begin(&t);
    float *x = random_floats(&t, (int64_t)n * dim, seed, 1.0f);
    float *w = random_floats(&t, (int64_t)vocab * dim, seed + 1, 1.0f);
    int32_t target_values[128];
    struct al_rng rng;
    al_rng_seed(&rng, seed, 3);
    int counted = 0;
    for (int i = 0; i < n; i++) {
        target_values[i] = i % 4 == 1 ? -1 : (int32_t)al_rng_below(&rng, (uint32_t)vocab);
        counted += target_values[i] >= 0;
    }
    int32_t *targets = alloc_ints(&t, n, target_values);
    float *loss_sum = alloc_floats(&t, 1);
    const float previous = 1.25f; /* the op adds to what the accumulator holds */
    *loss_sum = previous;
    float *dx = random_floats(&t, (int64_t)n * dim, seed + 2, 1.0f); /* overwritten */
    float grad_scale = 1.0f / (float)counted;
    cr_assert_eq(t.backend->ops->lm_head_cross_entropy(t.backend, loss_sum, dx, x, w, targets, n, dim, vocab,
                                                       grad_scale),
                 0, "%s", al_error_message());

    double *ref_dx = alloc_doubles((int64_t)n * dim);
    double ref_loss = reference_cross_entropy(ref_dx, x, w, target_values, n, dim, vocab, grad_scale);
    double ref_sum = previous + ref_loss;
    cr_assert(fabs(*loss_sum - ref_sum) <= FORWARD_TOLERANCE * fabs(ref_sum), "loss %.7g, expected %.7g",
              *loss_sum, ref_sum);
    assert_close(dx, ref_dx, (int64_t)n * dim, FORWARD_TOLERANCE, "cross-entropy dx");
    for (int i = 0; i < n; i++)
        if (target_values[i] < 0)
            for (int d = 0; d < dim; d++)
                cr_assert_eq(dx[i * dim + d], 0.0f, "token %d has no target, so no gradient", i);

    /* Without dx only the loss is produced, and it is the same loss. */
    float *loss_only = alloc_floats(&t, 1);
    cr_assert_eq(t.backend->ops->lm_head_cross_entropy(t.backend, loss_only, NULL, x, w, targets, n, dim, vocab,
                                                       grad_scale),
                 0);
    cr_assert_eq(*loss_only + previous, *loss_sum);
    free(ref_dx);
    op_test_end(&t);
}

Test(cpu_ops_forward, lm_head_cross_entropy_loss_and_gradient)
{
    check_cross_entropy(75, 10, 37, 70); /* several token chunks, the last one partial */
    check_cross_entropy(3, 7, 5, 71);
    check_cross_entropy(33, 4, 101, 72);
}

Test(cpu_ops_forward, lm_head_cross_entropy_is_stable_for_large_logits)
{
    struct op_test t;
    op_test_begin(&t);
    enum { DIM = 2, VOCAB = 3 };
    /* logits 1000, 999, 0: exp would overflow without the max subtraction. */
    const float x_values[DIM] = {1000.0f, 1.0f};
    const float w_values[VOCAB * DIM] = {1, 0, 1, -1, 0, 0};
    float *x = copy_floats(&t, x_values, DIM);
    float *w = copy_floats(&t, w_values, VOCAB * DIM);
    const int32_t target_value = 1;
    int32_t *target = alloc_ints(&t, 1, &target_value);
    float *loss = alloc_floats(&t, 1);
    cr_assert_eq(t.backend->ops->lm_head_cross_entropy(t.backend, loss, NULL, x, w, target, 1, DIM, VOCAB, 1.0f), 0);
    double expected = log(1.0 + exp(-1.0) + exp(-1000.0)) + 1.0;
    cr_assert(fabs(*loss - expected) < 1e-5, "loss %g, expected %g", *loss, expected);

    const int32_t bad_target = VOCAB;
    memcpy(target, &bad_target, sizeof(bad_target));
    cr_assert_eq(t.backend->ops->lm_head_cross_entropy(t.backend, loss, NULL, x, w, target, 1, DIM, VOCAB, 1.0f), -1);
    cr_assert(strstr(al_error_message(), "target 3") != NULL, "message: %s", al_error_message());
    op_test_end(&t);
}

/* ---- optimizer ---- */

Test(cpu_ops_forward, sum_squares_accumulates)
{
    struct op_test t;
    op_test_begin(&t);
    enum { N = 10007 }; /* several blocks, the last partial */
    float *x = random_floats(&t, N, 80, 1.0f);
    float *out = alloc_floats(&t, 1);
    *out = 0.5f;
    cr_assert_eq(t.backend->ops->sum_squares(t.backend, out, x, N), 0);
    double expected = 0.5;
    for (int i = 0; i < N; i++)
        expected += (double)x[i] * x[i];
    cr_assert(fabs(*out - expected) <= 1e-6 * expected, "%.9g != %.9g", *out, expected);
    op_test_end(&t);
}

/* Two AdamW steps worked by hand (PyTorch semantics), lr 0.1, betas (0.9, 0.99),
 * eps 1e-8, weight decay 0.5, grad_scale 0.5, on param 1.0 with raw gradients 4 then -2:
 *   step 1: g = 2; param = 1 * (1 - 0.05) = 0.95; m = 0.2; v = 0.04;
 *           m_hat = 0.2 / 0.1 = 2; v_hat = 0.04 / 0.01 = 4; param = 0.95 - 0.1 * 2 / 2 = 0.85
 *   step 2: g = -1; param = 0.85 * 0.95 = 0.8075; m = 0.18 - 0.1 = 0.08;
 *           v = 0.0396 + 0.01 = 0.0496; m_hat = 0.08 / 0.19; v_hat = 0.0496 / 0.0199;
 *           param = 0.8075 - 0.1 * (0.08 / 0.19) / sqrt(0.0496 / 0.0199) */
/* The constants themselves (0.9f, 0.99f, ...) are F32, a few ulps from the decimals
 * above; a wrong formula (bias correction, decay order) is off by percents. */
#define ADAMW_TOLERANCE 1e-6
Test(cpu_ops_forward, adamw_two_steps_by_hand)
{
    struct op_test t;
    op_test_begin(&t);
    float *param = alloc_floats(&t, 1), *grad = alloc_floats(&t, 1), *m = alloc_floats(&t, 1),
          *v = alloc_floats(&t, 1);
    *param = 1.0f;
    *grad = 4.0f;
    cr_assert_eq(t.backend->ops->adamw(t.backend, param, grad, m, v, 1, 0.1f, 0.9f, 0.99f, 1e-8f, 0.5f, 0.5f, 1), 0);
    cr_assert(fabs(*m - 0.2) < ADAMW_TOLERANCE * 0.2 && fabs(*v - 0.04) < ADAMW_TOLERANCE * 0.04, "m %g v %g", *m, *v);
    cr_assert(fabs(*param - 0.85) < ADAMW_TOLERANCE, "param after step 1: %.9g", *param);
    *grad = -2.0f;
    cr_assert_eq(t.backend->ops->adamw(t.backend, param, grad, m, v, 1, 0.1f, 0.9f, 0.99f, 1e-8f, 0.5f, 0.5f, 2), 0);
    double expected = 0.8075 - 0.1 * (0.08 / 0.19) / sqrt(0.0496 / 0.0199);
    cr_assert(fabs(*m - 0.08) < ADAMW_TOLERANCE * 0.08 && fabs(*v - 0.0496) < ADAMW_TOLERANCE * 0.0496, "m %g v %g",
              *m, *v);
    cr_assert(fabs(*param - expected) < ADAMW_TOLERANCE, "param after step 2: %.9g, expected %.9g", *param, expected);
    cr_assert_eq(t.backend->ops->adamw(t.backend, param, grad, m, v, 1, 0.1f, 0.9f, 0.99f, 1e-8f, 0.5f, 0.5f, 0), -1);
    op_test_end(&t);
}

/* ---- arguments ---- */

Test(cpu_ops_forward, empty_batch_is_a_no_op_and_bad_arguments_fail)
{
    struct op_test t;
    op_test_begin(&t);
    const struct al_backend_ops *ops = t.backend->ops;
    float *buf = random_floats(&t, 64, 90, 1.0f);
    float *saved = copy_floats(&t, buf, 64);
    int32_t zero_id = 0;
    int32_t *ids = alloc_ints(&t, 1, &zero_id);
    struct al_lora_args lora = {.A = buf, .B = buf, .dA = buf, .dB = buf, .xa = buf, .rank = 2, .scale = 1.0f};

    /* n = 0: every op succeeds and writes nothing. */
    cr_assert_eq(ops->embedding_forward(t.backend, buf, ids, buf, 0, 4), 0);
    cr_assert_eq(ops->rmsnorm_forward(t.backend, buf, buf, buf, buf, 0, 4, 1e-5f), 0);
    cr_assert_eq(ops->attention_forward(t.backend, buf, buf, buf, buf, buf, ids, 0, 0, 2, 1, 4), 0);
    cr_assert_eq(ops->attention_backward(t.backend, buf, buf, buf, buf, buf, buf, buf, buf, buf, ids, 0, 0, 2, 1, 4),
                 0);
    cr_assert_eq(ops->linear_forward(t.backend, buf, buf, buf, buf, &lora, 0, 4, 4), 0);
    cr_assert_eq(ops->linear_backward(t.backend, buf, 1, buf, buf, buf, &lora, 0, 4, 4), 0);
    cr_assert_eq(ops->lm_head_cross_entropy(t.backend, buf, buf, buf, buf, ids, 0, 4, 4, 1.0f), 0);
    cr_assert_eq(ops->sum_squares(t.backend, buf, buf, 0), 0);
    cr_assert_eq(ops->adamw(t.backend, buf, buf, buf, buf, 0, 0.1f, 0.9f, 0.99f, 1e-8f, 0.0f, 1.0f, 1), 0);
    cr_assert_eq(memcmp(buf, saved, 64 * sizeof(float)), 0, "an empty batch must leave memory alone");

    /* Bad arguments: -1 and a message that names the problem. */
    int32_t negative_id = -3;
    memcpy(ids, &negative_id, sizeof(negative_id));
    cr_assert_eq(ops->embedding_forward(t.backend, buf, ids, buf, 1, 4), -1);
    cr_assert(strstr(al_error_message(), "-3") != NULL, "message: %s", al_error_message());
    cr_assert_eq(ops->rmsnorm_forward(t.backend, buf, buf, buf, buf, 1, 0, 1e-5f), -1);
    cr_assert_eq(ops->rope_forward(t.backend, buf, ids, buf, 1, 1, 5), -1);
    cr_assert(strstr(al_error_message(), "even") != NULL, "message: %s", al_error_message());
    lora.dropout = 1.0f;
    cr_assert_eq(ops->linear_forward(t.backend, buf, buf, buf, NULL, &lora, 1, 4, 4), -1);
    cr_assert(strstr(al_error_message(), "dropout") != NULL, "message: %s", al_error_message());
    cr_assert_eq(memcmp(buf, saved, 64 * sizeof(float)), 0, "a rejected call must leave memory alone");
    op_test_end(&t);
}

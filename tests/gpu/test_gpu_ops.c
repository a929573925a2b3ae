/* Every op of the CUDA backend against the CPU reference (src/backend/cpu/), on fresh
 * random inputs of several shapes: odd lengths, several documents per row, head_dim 64, 80,
 * 96 and 128, forward and backward, and the KV-cache decoding ops (caches of several
 * sequences of different lengths, prefill and decode tokens in one step). Inputs are
 * rounded to bf16 on the host first, so both backends see the same values and the
 * remaining difference is the GPU's bf16 rounding of its outputs (and intermediates).
 * Outputs are filled with NaN bit patterns before each op, so an element the GPU never
 * writes fails the comparison. Accumulated outputs (parameter gradients, loss) start from
 * the same random values on both backends.
 *
 * Without a visible GPU these tests skip; the creation tests at the end run anywhere. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentlora/dtype.h"
#include "agentlora/error.h"
#include "backend/backend.h"
#include "test_support.h"

/* bf16 keeps 8 significant bits: one rounding is a relative error up to 2^-9, and an op
 * may round an intermediate or two (GEMM output, then bias, then LoRA term). */
#define BF16_TOLERANCE 1e-2
/* F32 results from the same inputs, summed in another order (or in F32 instead of double). */
#define F32_TOLERANCE 1e-4
/* AdamW and the sum of squares are elementwise F32 on both sides. */
#define OPTIMIZER_TOLERANCE 1e-5
/* Relative errors are taken against max |reference|, never below this. */
#define ERROR_FLOOR 1e-6
/* Attention gradients can be pure cancellation: with one visible key the softmax is
 * constant, so dq and dk are exactly 0 in exact arithmetic and rounding noise in F32 (a
 * document's first token, or n = 1). Against such a reference the floor is this
 * (the gradients of the tests are of order 0.1 to 1). */
#define ATTENTION_GRADIENT_FLOOR 1e-3

/* ---- set-up ---- */

struct backends {
    struct al_backend *cpu;
    struct al_backend *gpu;
};

static struct backends open_backends(void)
{
    struct backends b;
    b.gpu = al_backend_cuda_create(0);
    if (!b.gpu)
        cr_skip_test("no CUDA device to test on: %s", al_error_message());
    b.cpu = al_backend_cpu_create();
    cr_assert(b.cpu != NULL, "CPU backend: %s", al_error_message());
    return b;
}

static void close_backends(struct backends *b)
{
    al_backend_destroy(b->gpu);
    al_backend_destroy(b->cpu);
}

/* Fresh inputs on every run; the seed is in every failure message. */
static uint64_t fresh_seed(void)
{
    return ((uint64_t)time(NULL) << 16) ^ (uint64_t)getpid();
}

static float *random_values(int64_t n, uint64_t seed, float scale)
{
    float *x = malloc((size_t)n * sizeof(float));
    cr_assert(x != NULL);
    test_fill_random(x, n, seed, scale);
    return x;
}

/* Random values that bf16 represents exactly. */
static float *random_bf16_values(int64_t n, uint64_t seed, float scale)
{
    float *x = random_values(n, seed, scale);
    for (int64_t i = 0; i < n; i++)
        x[i] = al_bf16_to_f32(al_f32_to_bf16(x[i]));
    return x;
}

static void *upload(struct al_backend *b, const float *host, int64_t n, enum al_dtype dtype)
{
    void *p = b->ops->alloc(b, (size_t)n * al_dtype_size(dtype));
    cr_assert(p != NULL, "%s alloc: %s", b->name, al_error_message());
    cr_assert(b->ops->upload_convert(b, p, dtype, host, AL_DTYPE_F32, n) == 0, "%s upload: %s", b->name,
              al_error_message());
    return p;
}

static void *upload_act(struct al_backend *b, const float *host, int64_t n)
{
    return upload(b, host, n, b->act_dtype);
}

static void *upload_weight(struct al_backend *b, const float *host, int64_t n)
{
    return upload(b, host, n, b->weight_dtype);
}

static int32_t *upload_i32(struct al_backend *b, const int32_t *host, int64_t n)
{
    int32_t *p = b->ops->alloc(b, (size_t)n * sizeof(int32_t));
    cr_assert(p != NULL, "%s alloc: %s", b->name, al_error_message());
    cr_assert(b->ops->copy_to_backend(b, p, host, (size_t)n * sizeof(int32_t)) == 0, "%s: %s", b->name,
              al_error_message());
    return p;
}

/* All bits set: a NaN in F32 and in bf16. */
static void poison(struct al_backend *b, void *p, size_t bytes)
{
    unsigned char *ones = malloc(bytes);
    cr_assert(ones != NULL);
    memset(ones, 0xff, bytes);
    cr_assert(b->ops->copy_to_backend(b, p, ones, bytes) == 0, "%s poison: %s", b->name, al_error_message());
    free(ones);
}

/* An output buffer of n elements, poisoned. */
static void *output(struct al_backend *b, int64_t n, enum al_dtype dtype)
{
    size_t bytes = (size_t)n * al_dtype_size(dtype);
    void *p = b->ops->alloc(b, bytes);
    cr_assert(p != NULL, "%s alloc: %s", b->name, al_error_message());
    poison(b, p, bytes);
    return p;
}

static float *download(struct al_backend *b, const void *p, int64_t n, enum al_dtype dtype)
{
    float *host = malloc((size_t)n * sizeof(float));
    cr_assert(host != NULL);
    cr_assert(b->ops->synchronize(b) == 0, "%s: %s", b->name, al_error_message());
    cr_assert(b->ops->download_f32(b, host, p, dtype, n) == 0, "%s download: %s", b->name, al_error_message());
    return host;
}

/* Downloads the same tensor from both backends and compares: every GPU element finite
 * (so written), and max |gpu - cpu| / max |cpu| under the tolerance. */
static void expect_close_with_floor(const char *what, struct backends *b, const void *gpu, const void *cpu,
                                    int64_t n, enum al_dtype gpu_dtype, double tolerance, double floor,
                                    uint64_t seed)
{
    float *got = download(b->gpu, gpu, n, gpu_dtype);
    float *want = download(b->cpu, cpu, n, AL_DTYPE_F32);
    for (int64_t i = 0; i < n; i++) {
        cr_assert(isfinite(want[i]), "%s: CPU reference element %lld is not finite (seed %llu)", what,
                  (long long)i, (unsigned long long)seed);
        cr_assert(isfinite(got[i]), "%s: GPU element %lld of %lld is %g: unwritten or overflowed (seed %llu)", what,
                  (long long)i, (long long)n, got[i], (unsigned long long)seed);
    }
    double error = test_max_rel_error(got, want, n, floor);
    cr_assert(error < tolerance, "%s: relative error %.3g over %lld elements, tolerance %.1g (seed %llu)", what,
              error, (long long)n, tolerance, (unsigned long long)seed);
    free(got);
    free(want);
}

static void expect_close(const char *what, struct backends *b, const void *gpu, const void *cpu, int64_t n,
                         enum al_dtype gpu_dtype, double tolerance, uint64_t seed)
{
    expect_close_with_floor(what, b, gpu, cpu, n, gpu_dtype, tolerance, ERROR_FLOOR, seed);
}

#define ACT(b) ((b)->act_dtype)

/* ---- embedding ---- */

Test(gpu_ops, embedding_forward_and_backward)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    const int vocab = 50, dim = 96;
    const int64_t n = 77;
    int32_t ids[77];
    for (int64_t i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 7 + seed) % vocab); /* ids repeat: backward must add, not store */
    float *table = random_bf16_values((int64_t)vocab * dim, seed, 1.0f);
    float *dout = random_bf16_values(n * dim, seed + 1, 1.0f);
    float *dtable0 = random_values((int64_t)vocab * dim, seed + 2, 0.5f);

    void *out[2], *dtable[2];
    struct al_backend *side[2] = {b.cpu, b.gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *k = side[s];
        void *t = upload_weight(k, table, (int64_t)vocab * dim);
        int32_t *id = upload_i32(k, ids, n);
        out[s] = output(k, n * dim, ACT(k));
        cr_assert(k->ops->embedding_forward(k, out[s], id, t, n, dim) == 0, "%s", al_error_message());
        dtable[s] = upload(k, dtable0, (int64_t)vocab * dim, AL_DTYPE_F32);
        void *g = upload_act(k, dout, n * dim);
        cr_assert(k->ops->embedding_backward(k, dtable[s], id, g, n, dim) == 0, "%s", al_error_message());
    }
    expect_close("embedding out", &b, out[1], out[0], n * dim, ACT(b.gpu), BF16_TOLERANCE, seed);
    expect_close("embedding dtable", &b, dtable[1], dtable[0], (int64_t)vocab * dim, AL_DTYPE_F32, F32_TOLERANCE,
                 seed);
    free(table);
    free(dout);
    free(dtable0);
    close_backends(&b);
}

/* ---- RMSNorm ---- */

static void check_rmsnorm(struct backends *b, int64_t n, int dim, uint64_t seed)
{
    float *x = random_bf16_values(n * dim, seed, 2.0f);
    float *w = random_bf16_values(dim, seed + 1, 1.5f);
    float *dout = random_bf16_values(n * dim, seed + 2, 1.0f);
    float *dweight0 = random_values(dim, seed + 3, 0.5f);
    void *out[2], *rstd[2], *dx[2], *dweight[2];
    struct al_backend *side[2] = {b->cpu, b->gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *k = side[s];
        void *xs = upload_act(k, x, n * dim), *ws = upload_weight(k, w, dim), *gs = upload_act(k, dout, n * dim);
        out[s] = output(k, n * dim, ACT(k));
        rstd[s] = output(k, n, AL_DTYPE_F32);
        cr_assert(k->ops->rmsnorm_forward(k, out[s], rstd[s], xs, ws, n, dim, 1e-5f) == 0, "%s", al_error_message());
        dx[s] = output(k, n * dim, ACT(k));
        dweight[s] = upload(k, dweight0, dim, AL_DTYPE_F32);
        cr_assert(k->ops->rmsnorm_backward(k, dx[s], dweight[s], gs, xs, ws, rstd[s], n, dim) == 0, "%s",
                  al_error_message());
    }
    expect_close("rmsnorm out", b, out[1], out[0], n * dim, ACT(b->gpu), BF16_TOLERANCE, seed);
    expect_close("rmsnorm rstd", b, rstd[1], rstd[0], n, AL_DTYPE_F32, F32_TOLERANCE, seed);
    expect_close("rmsnorm dx", b, dx[1], dx[0], n * dim, ACT(b->gpu), BF16_TOLERANCE, seed);
    expect_close("rmsnorm dweight", b, dweight[1], dweight[0], dim, AL_DTYPE_F32, F32_TOLERANCE, seed);
    free(x);
    free(w);
    free(dout);
    free(dweight0);
}

Test(gpu_ops, rmsnorm_forward_and_backward)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    check_rmsnorm(&b, 7, 64, seed);
    check_rmsnorm(&b, 33, 77, seed + 10);
    check_rmsnorm(&b, 130, 1000, seed + 20);
    close_backends(&b);
}

/* ---- RoPE ---- */

static void check_rope(struct backends *b, int64_t n, int heads, int head_dim, uint64_t seed)
{
    int half = head_dim / 2;
    int64_t count = n * heads * head_dim;
    float *x = random_bf16_values(count, seed, 1.0f);
    float *dx = random_bf16_values(count, seed + 1, 1.0f);
    float *inv_freq = malloc((size_t)half * sizeof(float));
    int32_t *pos = malloc((size_t)n * sizeof(int32_t));
    cr_assert(inv_freq && pos);
    for (int j = 0; j < half; j++)
        inv_freq[j] = powf(10000.0f, -2.0f * (float)j / (float)head_dim);
    for (int64_t i = 0; i < n; i++)
        pos[i] = (int32_t)((i * 37 + seed) % 5000); /* positions need not be increasing */
    void *fx[2], *bx[2];
    struct al_backend *side[2] = {b->cpu, b->gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *k = side[s];
        float *freq = upload(k, inv_freq, half, AL_DTYPE_F32);
        int32_t *p = upload_i32(k, pos, n);
        fx[s] = upload_act(k, x, count);
        bx[s] = upload_act(k, dx, count);
        cr_assert(k->ops->rope_forward(k, fx[s], p, freq, n, heads, head_dim) == 0, "%s", al_error_message());
        cr_assert(k->ops->rope_backward(k, bx[s], p, freq, n, heads, head_dim) == 0, "%s", al_error_message());
    }
    expect_close("rope forward", b, fx[1], fx[0], count, ACT(b->gpu), BF16_TOLERANCE, seed);
    expect_close("rope backward", b, bx[1], bx[0], count, ACT(b->gpu), BF16_TOLERANCE, seed);
    free(x);
    free(dx);
    free(inv_freq);
    free(pos);
}

Test(gpu_ops, rope_forward_and_backward)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    check_rope(&b, 13, 3, 64, seed);
    check_rope(&b, 29, 2, 80, seed + 10);
    check_rope(&b, 5, 4, 128, seed + 20);
    check_rope(&b, 31, 1, 96, seed + 30);
    close_backends(&b);
}

/* ---- SwiGLU and add ---- */

Test(gpu_ops, swiglu_forward_and_backward)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    const int64_t n = 37;
    const int dim = 101;
    int64_t count = n * dim;
    float *gate = random_bf16_values(count, seed, 4.0f);
    float *up = random_bf16_values(count, seed + 1, 2.0f);
    float *dout = random_bf16_values(count, seed + 2, 1.0f);
    void *out[2], *dgate[2], *dup[2];
    struct al_backend *side[2] = {b.cpu, b.gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *k = side[s];
        void *g = upload_act(k, gate, count), *u = upload_act(k, up, count), *d = upload_act(k, dout, count);
        out[s] = output(k, count, ACT(k));
        dgate[s] = output(k, count, ACT(k));
        dup[s] = output(k, count, ACT(k));
        cr_assert(k->ops->swiglu_forward(k, out[s], g, u, n, dim) == 0, "%s", al_error_message());
        cr_assert(k->ops->swiglu_backward(k, dgate[s], dup[s], d, g, u, n, dim) == 0, "%s", al_error_message());
    }
    expect_close("swiglu out", &b, out[1], out[0], count, ACT(b.gpu), BF16_TOLERANCE, seed);
    expect_close("swiglu dgate", &b, dgate[1], dgate[0], count, ACT(b.gpu), BF16_TOLERANCE, seed);
    expect_close("swiglu dup", &b, dup[1], dup[0], count, ACT(b.gpu), BF16_TOLERANCE, seed);
    free(gate);
    free(up);
    free(dout);
    close_backends(&b);
}

Test(gpu_ops, add_separate_and_in_place)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    const int64_t count = 1001;
    float *a = random_bf16_values(count, seed, 3.0f);
    float *c = random_bf16_values(count, seed + 1, 3.0f);
    void *sum[2], *in_place[2];
    struct al_backend *side[2] = {b.cpu, b.gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *k = side[s];
        void *x = upload_act(k, a, count), *y = upload_act(k, c, count);
        sum[s] = output(k, count, ACT(k));
        cr_assert(k->ops->add(k, sum[s], x, y, count) == 0, "%s", al_error_message());
        in_place[s] = upload_act(k, a, count); /* the residual stream: y aliases a */
        cr_assert(k->ops->add(k, in_place[s], in_place[s], y, count) == 0, "%s", al_error_message());
    }
    expect_close("add", &b, sum[1], sum[0], count, ACT(b.gpu), BF16_TOLERANCE, seed);
    expect_close("add in place", &b, in_place[1], in_place[0], count, ACT(b.gpu), BF16_TOLERANCE, seed);
    free(a);
    free(c);
    close_backends(&b);
}

/* ---- linear with bias and LoRA ---- */

struct linear_case {
    int64_t n;
    int in, out, rank;
    int bias;
    int lora;
    float dropout;
    int accumulate_dx;
};

static void check_linear(struct backends *b, struct linear_case c, uint64_t seed)
{
    int64_t n = c.n;
    float *x = random_bf16_values(n * c.in, seed, 1.0f);
    float *w = random_bf16_values((int64_t)c.out * c.in, seed + 1, 0.5f);
    float *bias = random_bf16_values(c.out, seed + 2, 1.0f);
    float *A = random_values((int64_t)c.rank * c.in, seed + 3, 0.3f);
    float *B = random_values((int64_t)c.out * c.rank, seed + 4, 0.3f);
    float *dA0 = random_values((int64_t)c.rank * c.in, seed + 5, 0.1f);
    float *dB0 = random_values((int64_t)c.out * c.rank, seed + 6, 0.1f);
    float *dy = random_bf16_values(n * c.out, seed + 7, 1.0f);
    float *dx0 = random_bf16_values(n * c.in, seed + 8, 1.0f);

    void *y[2], *dx[2];
    struct al_lora_args lora[2];
    struct al_backend *side[2] = {b->cpu, b->gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *k = side[s];
        void *xs = upload_act(k, x, n * c.in), *ws = upload_weight(k, w, (int64_t)c.out * c.in);
        void *bs = c.bias ? upload_weight(k, bias, c.out) : NULL;
        memset(&lora[s], 0, sizeof lora[s]);
        lora[s].A = upload(k, A, (int64_t)c.rank * c.in, AL_DTYPE_F32);
        lora[s].B = upload(k, B, (int64_t)c.out * c.rank, AL_DTYPE_F32);
        lora[s].dA = upload(k, dA0, (int64_t)c.rank * c.in, AL_DTYPE_F32);
        lora[s].dB = upload(k, dB0, (int64_t)c.out * c.rank, AL_DTYPE_F32);
        lora[s].xa = output(k, n * c.rank, AL_DTYPE_F32);
        lora[s].rank = c.rank;
        lora[s].scale = 2.0f / (float)c.rank;
        lora[s].dropout = c.dropout;
        lora[s].dropout_seed = seed * 31 + 7;
        const struct al_lora_args *l = c.lora ? &lora[s] : NULL;

        y[s] = output(k, n * c.out, ACT(k));
        cr_assert(k->ops->linear_forward(k, y[s], xs, ws, bs, l, n, c.in, c.out) == 0, "%s", al_error_message());
        void *g = upload_act(k, dy, n * c.out);
        dx[s] = c.accumulate_dx ? upload_act(k, dx0, n * c.in) : output(k, n * c.in, ACT(k));
        cr_assert(k->ops->linear_backward(k, dx[s], c.accumulate_dx, g, xs, ws, l, n, c.in, c.out) == 0, "%s",
                  al_error_message());
    }
    expect_close("linear y", b, y[1], y[0], n * c.out, ACT(b->gpu), BF16_TOLERANCE, seed);
    expect_close("linear dx", b, dx[1], dx[0], n * c.in, ACT(b->gpu), BF16_TOLERANCE, seed);
    if (c.lora) {
        expect_close("lora xa", b, lora[1].xa, lora[0].xa, n * c.rank, AL_DTYPE_F32, F32_TOLERANCE, seed);
        expect_close("lora dA", b, lora[1].dA, lora[0].dA, (int64_t)c.rank * c.in, AL_DTYPE_F32, F32_TOLERANCE,
                     seed);
        expect_close("lora dB", b, lora[1].dB, lora[0].dB, (int64_t)c.out * c.rank, AL_DTYPE_F32, F32_TOLERANCE,
                     seed);
    }
    free(x);
    free(w);
    free(bias);
    free(A);
    free(B);
    free(dA0);
    free(dB0);
    free(dy);
    free(dx0);
}

Test(gpu_ops, linear_plain_and_with_bias)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    check_linear(&b, (struct linear_case){37, 64, 96, 8, 0, 0, 0.0f, 0}, seed);
    check_linear(&b, (struct linear_case){65, 130, 70, 4, 1, 0, 0.0f, 1}, seed + 100);
    check_linear(&b, (struct linear_case){1, 8, 8, 1, 1, 0, 0.0f, 0}, seed + 200);
    close_backends(&b);
}

Test(gpu_ops, linear_with_lora)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    check_linear(&b, (struct linear_case){37, 64, 96, 8, 1, 1, 0.0f, 0}, seed);
    check_linear(&b, (struct linear_case){65, 130, 70, 4, 0, 1, 0.0f, 1}, seed + 100);
    check_linear(&b, (struct linear_case){200, 256, 128, 16, 0, 1, 0.0f, 0}, seed + 200);
    close_backends(&b);
}

/* The GPU must draw exactly the CPU's mask: a different mask is a large error, not a
 * rounding one. */
Test(gpu_ops, linear_with_lora_dropout)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    check_linear(&b, (struct linear_case){37, 64, 96, 8, 1, 1, 0.1f, 0}, seed);
    check_linear(&b, (struct linear_case){65, 130, 70, 4, 0, 1, 0.3f, 1}, seed + 100);
    close_backends(&b);
}

/* ---- lm_head + cross-entropy ---- */

static void check_cross_entropy(struct backends *b, int64_t n, int dim, int vocab, int want_dx, uint64_t seed)
{
    float *x = random_bf16_values(n * dim, seed, 1.0f);
    float *w = random_bf16_values((int64_t)vocab * dim, seed + 1, 0.5f);
    int32_t *targets = malloc((size_t)n * sizeof(int32_t));
    cr_assert(targets != NULL);
    int64_t with_target = 0;
    for (int64_t i = 0; i < n; i++) {
        targets[i] = (i % 5 == 3) ? -1 : (int32_t)((i * 131 + seed) % vocab); /* some tokens have no target */
        with_target += targets[i] >= 0;
    }
    float grad_scale = 1.0f / (float)(with_target > 0 ? with_target : 1);
    float loss0 = 1.5f;
    void *loss[2], *dx[2];
    struct al_backend *side[2] = {b->cpu, b->gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *k = side[s];
        void *xs = upload_act(k, x, n * dim), *ws = upload_weight(k, w, (int64_t)vocab * dim);
        int32_t *t = upload_i32(k, targets, n);
        loss[s] = upload(k, &loss0, 1, AL_DTYPE_F32);
        dx[s] = want_dx ? output(k, n * dim, ACT(k)) : NULL;
        cr_assert(k->ops->lm_head_cross_entropy(k, loss[s], dx[s], xs, ws, t, n, dim, vocab, grad_scale) == 0, "%s",
                  al_error_message());
    }
    expect_close("cross-entropy loss", b, loss[1], loss[0], 1, AL_DTYPE_F32, F32_TOLERANCE, seed);
    if (want_dx)
        expect_close("cross-entropy dx", b, dx[1], dx[0], n * dim, ACT(b->gpu), BF16_TOLERANCE, seed);
    free(x);
    free(w);
    free(targets);
}

Test(gpu_ops, lm_head_cross_entropy)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    check_cross_entropy(&b, 37, 64, 1001, 1, seed);
    check_cross_entropy(&b, 37, 64, 1001, 0, seed + 10);
    /* More tokens than one chunk (1024), so the chunk loop and its offsets are exercised. */
    check_cross_entropy(&b, 1500, 40, 300, 1, seed + 20);
    close_backends(&b);
}

/* ---- attention ---- */

struct attention_case {
    int64_t n;
    int q_heads, kv_heads, head_dim;
    int documents; /* packed documents of uneven lengths */
    int window;    /* sliding window, 0 for none */
};

static int32_t *document_starts(int64_t n, int documents, uint64_t seed)
{
    int32_t *starts = malloc((size_t)n * sizeof(int32_t));
    cr_assert(starts != NULL);
    /* Boundaries near even splits, jittered by the seed: documents of uneven, odd lengths. */
    int64_t boundary[16] = {0};
    int count = documents < 16 ? documents : 16;
    for (int d = 1; d < count; d++) {
        int64_t at = d * n / count + (int64_t)((seed >> (3 * d)) % 5) - 2;
        if (at <= boundary[d - 1])
            at = boundary[d - 1] + 1;
        boundary[d] = at < n ? at : n - 1;
    }
    int d = 0;
    for (int64_t i = 0; i < n; i++) {
        while (d + 1 < count && boundary[d + 1] <= i && boundary[d + 1] > boundary[d])
            d++;
        starts[i] = (int32_t)boundary[d];
    }
    return starts;
}

static void check_attention(struct backends *b, struct attention_case c, uint64_t seed)
{
    int64_t n = c.n;
    int64_t q_count = n * c.q_heads * c.head_dim, kv_count = n * c.kv_heads * c.head_dim;
    int64_t lse_count = n * c.q_heads;
    float *q = random_bf16_values(q_count, seed, 2.0f);
    float *k = random_bf16_values(kv_count, seed + 1, 2.0f);
    float *v = random_bf16_values(kv_count, seed + 2, 1.0f);
    float *dout = random_bf16_values(q_count, seed + 3, 1.0f);
    int32_t *starts = document_starts(n, c.documents, seed);

    /* Forward on both. */
    void *out[2], *lse[2], *qs[2], *ks[2], *vs[2], *ds[2];
    struct al_backend *side[2] = {b->cpu, b->gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *be = side[s];
        qs[s] = upload_act(be, q, q_count);
        ks[s] = upload_act(be, k, kv_count);
        vs[s] = upload_act(be, v, kv_count);
        ds[s] = upload_i32(be, starts, n);
        out[s] = output(be, q_count, ACT(be));
        lse[s] = output(be, lse_count, AL_DTYPE_F32);
        cr_assert(be->ops->attention_forward(be, out[s], lse[s], qs[s], ks[s], vs[s], ds[s], c.window, n, c.q_heads,
                                             c.kv_heads, c.head_dim) == 0,
                  "%s", al_error_message());
    }
    expect_close("attention out", b, out[1], out[0], q_count, ACT(b->gpu), BF16_TOLERANCE, seed);
    expect_close("attention lse", b, lse[1], lse[0], lse_count, AL_DTYPE_F32, F32_TOLERANCE, seed);

    /* Backward on both from the same out and lse (the CPU's, out rounded to bf16), so that
     * only the backward itself is compared. */
    float *ref_out = download(b->cpu, out[0], q_count, AL_DTYPE_F32);
    float *ref_lse = download(b->cpu, lse[0], lse_count, AL_DTYPE_F32);
    for (int64_t i = 0; i < q_count; i++)
        ref_out[i] = al_bf16_to_f32(al_f32_to_bf16(ref_out[i]));
    void *dq[2], *dk[2], *dv[2];
    for (int s = 0; s < 2; s++) {
        struct al_backend *be = side[s];
        void *o = upload_act(be, ref_out, q_count);
        void *l = upload(be, ref_lse, lse_count, AL_DTYPE_F32);
        void *g = upload_act(be, dout, q_count);
        dq[s] = output(be, q_count, ACT(be));
        dk[s] = output(be, kv_count, ACT(be));
        dv[s] = output(be, kv_count, ACT(be));
        cr_assert(be->ops->attention_backward(be, dq[s], dk[s], dv[s], g, qs[s], ks[s], vs[s], o, l, ds[s], c.window,
                                              n, c.q_heads, c.kv_heads, c.head_dim) == 0,
                  "%s", al_error_message());
    }
    expect_close_with_floor("attention dq", b, dq[1], dq[0], q_count, ACT(b->gpu), BF16_TOLERANCE,
                            ATTENTION_GRADIENT_FLOOR, seed);
    expect_close_with_floor("attention dk", b, dk[1], dk[0], kv_count, ACT(b->gpu), BF16_TOLERANCE,
                            ATTENTION_GRADIENT_FLOOR, seed);
    expect_close_with_floor("attention dv", b, dv[1], dv[0], kv_count, ACT(b->gpu), BF16_TOLERANCE,
                            ATTENTION_GRADIENT_FLOOR, seed);
    free(q);
    free(k);
    free(v);
    free(dout);
    free(starts);
    free(ref_out);
    free(ref_lse);
}

Test(gpu_ops, attention_head_dim_64_gqa_two_documents)
{
    struct backends b = open_backends();
    check_attention(&b, (struct attention_case){37, 4, 2, 64, 2}, fresh_seed());
    close_backends(&b);
}

Test(gpu_ops, attention_head_dim_80_three_documents)
{
    struct backends b = open_backends();
    check_attention(&b, (struct attention_case){100, 6, 2, 80, 3}, fresh_seed());
    close_backends(&b);
}

Test(gpu_ops, attention_head_dim_96_no_grouping)
{
    struct backends b = open_backends();
    check_attention(&b, (struct attention_case){70, 4, 4, 96, 4}, fresh_seed());
    close_backends(&b);
}

Test(gpu_ops, attention_head_dim_128_multi_query_long)
{
    struct backends b = open_backends();
    check_attention(&b, (struct attention_case){129, 2, 1, 128, 1}, fresh_seed());
    check_attention(&b, (struct attention_case){300, 4, 1, 128, 5}, fresh_seed() + 1);
    close_backends(&b);
}

Test(gpu_ops, attention_single_token_and_head_dim_40)
{
    struct backends b = open_backends();
    check_attention(&b, (struct attention_case){1, 2, 1, 64, 1}, fresh_seed());
    check_attention(&b, (struct attention_case){45, 3, 1, 40, 7}, fresh_seed() + 1);
    close_backends(&b);
}

/* Sliding windows: shorter than a 32-key tile and than a 16-query tile (so tiles are
 * skipped on both sides of the window), a window of 1, and one longer than some documents
 * (the document mask then decides), all beside document boundaries. */
Test(gpu_ops, attention_sliding_window)
{
    struct backends b = open_backends();
    check_attention(&b, (struct attention_case){150, 4, 2, 64, 2, 20}, fresh_seed());
    check_attention(&b, (struct attention_case){70, 2, 1, 40, 1, 1}, fresh_seed() + 1);
    check_attention(&b, (struct attention_case){130, 3, 1, 96, 3, 45}, fresh_seed() + 2);
    close_backends(&b);
}

/* ---- KV-cache decoding ---- */

#define DECODE_MAX_SEQUENCES 4

/* One decode step over a cache that already holds some history: sequence s ends the
 * step with length[s] tokens, the last step_tokens[s] of them fed in this step (a
 * prefill when there are several, a decode step when there is one, none when 0). */
struct decode_case {
    int sequences, capacity, q_heads, kv_heads, head_dim;
    int length[DECODE_MAX_SEQUENCES];
    int step_tokens[DECODE_MAX_SEQUENCES];
    int window; /* sliding window, 0 for none */
};

/* The tokens of a write, interleaved round-robin over the sequences so the scatter
 * order differs from the cache order: slots [first[s], first[s] + count[s]) of each
 * sequence s. Returns the token count; seq and pos hold room for every slot. */
static int64_t interleaved_tokens(const struct decode_case *c, const int *first, const int *count, int32_t *seq,
                                  int32_t *pos)
{
    int64_t n = 0;
    for (int t = 0; t < c->capacity; t++)
        for (int s = 0; s < c->sequences; s++)
            if (t < count[s]) {
                seq[n] = s;
                pos[n++] = first[s] + t;
            }
    return n;
}

/* Writes the same tokens into both backends' caches: keys and values from `seed`. */
static void write_tokens(struct backends *b, struct al_kv_cache_layer *caches, const struct decode_case *c,
                         const int32_t *seq, const int32_t *pos, int64_t n, uint64_t seed)
{
    if (n == 0)
        return;
    int64_t kv_count = n * c->kv_heads * c->head_dim;
    float *k = random_bf16_values(kv_count, seed, 2.0f);
    float *v = random_bf16_values(kv_count, seed + 1, 1.0f);
    struct al_backend *side[2] = {b->cpu, b->gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *be = side[s];
        void *ks = upload_act(be, k, kv_count), *vs = upload_act(be, v, kv_count);
        int32_t *seqs = upload_i32(be, seq, n), *poss = upload_i32(be, pos, n);
        cr_assert(be->ops->kv_cache_write(be, &caches[s], ks, vs, seqs, poss, n, c->kv_heads, c->head_dim) == 0,
                  "%s", al_error_message());
        cr_assert(be->ops->synchronize(be) == 0, "%s", al_error_message());
        be->ops->free(be, ks);
        be->ops->free(be, vs);
        be->ops->free(be, seqs);
        be->ops->free(be, poss);
    }
    free(k);
    free(v);
}

/* Every written slot of the GPU cache equals the CPU's exactly (bf16 values copied), and
 * every other slot still holds the poison: the write touched its own slots only. */
static void expect_cache_equal(const char *what, struct backends *b, const void *gpu, const void *cpu,
                               const struct decode_case *c, uint64_t seed)
{
    int64_t width = (int64_t)c->kv_heads * c->head_dim;
    int64_t count = (int64_t)c->sequences * c->capacity * width;
    float *got = download(b->gpu, gpu, count, ACT(b->gpu));
    float *want = download(b->cpu, cpu, count, AL_DTYPE_F32);
    for (int s = 0; s < c->sequences; s++)
        for (int p = 0; p < c->capacity; p++)
            for (int64_t e = 0; e < width; e++) {
                int64_t at = ((int64_t)s * c->capacity + p) * width + e;
                if (p < c->length[s])
                    cr_assert(got[at] == want[at], "%s: sequence %d slot %d element %lld is %g, want %g (seed %llu)",
                              what, s, p, (long long)e, got[at], want[at], (unsigned long long)seed);
                else
                    cr_assert(isnan(got[at]), "%s: sequence %d slot %d was written past its length %d (seed %llu)",
                              what, s, p, c->length[s], (unsigned long long)seed);
            }
    free(got);
    free(want);
}

static void check_decode(struct backends *b, struct decode_case c, uint64_t seed)
{
    cr_assert(c.sequences <= DECODE_MAX_SEQUENCES);
    int64_t cache_count = (int64_t)c.sequences * c.capacity * c.kv_heads * c.head_dim;
    struct al_kv_cache_layer caches[2];
    struct al_backend *side[2] = {b->cpu, b->gpu};
    for (int s = 0; s < 2; s++) {
        /* Poisoned, so a slot read before it is written makes the output NaN. */
        caches[s] = (struct al_kv_cache_layer){output(side[s], cache_count, ACT(side[s])),
                                               output(side[s], cache_count, ACT(side[s])), c.sequences, c.capacity};
    }

    /* The history: every slot before the step's, written in one earlier call. */
    int history[DECODE_MAX_SEQUENCES], zero[DECODE_MAX_SEQUENCES] = {0};
    for (int s = 0; s < c.sequences; s++) {
        cr_assert(c.step_tokens[s] <= c.length[s] && c.length[s] <= c.capacity);
        history[s] = c.length[s] - c.step_tokens[s];
    }
    int32_t *seq = malloc((size_t)c.sequences * c.capacity * sizeof(int32_t));
    int32_t *pos = malloc((size_t)c.sequences * c.capacity * sizeof(int32_t));
    cr_assert(seq && pos);
    int64_t before = interleaved_tokens(&c, zero, history, seq, pos);
    write_tokens(b, caches, &c, seq, pos, before, seed);

    /* The step: its keys and values go in first, then its queries read the caches. */
    int64_t n = interleaved_tokens(&c, history, c.step_tokens, seq, pos);
    cr_assert(n > 0);
    write_tokens(b, caches, &c, seq, pos, n, seed + 2);
    expect_cache_equal("kv_cache_write keys", b, caches[1].k, caches[0].k, &c, seed);
    expect_cache_equal("kv_cache_write values", b, caches[1].v, caches[0].v, &c, seed);

    int64_t q_count = n * c.q_heads * c.head_dim;
    float *q = random_bf16_values(q_count, seed + 4, 2.0f);
    void *out[2];
    for (int s = 0; s < 2; s++) {
        struct al_backend *be = side[s];
        void *qs = upload_act(be, q, q_count);
        int32_t *seqs = upload_i32(be, seq, n), *poss = upload_i32(be, pos, n);
        out[s] = output(be, q_count, ACT(be));
        cr_assert(be->ops->decode_attention(be, out[s], qs, &caches[s], seqs, poss, c.window, n, c.q_heads,
                                            c.kv_heads, c.head_dim) == 0,
                  "%s", al_error_message());
    }
    expect_close("decode_attention out", b, out[1], out[0], q_count, ACT(b->gpu), BF16_TOLERANCE, seed);
    free(q);
    free(seq);
    free(pos);
}

/* Decode steps (one token per sequence) with grouped query heads; sequence 0 holds its
 * first token only, the others end inside and just past a 32-slot tile. */
Test(gpu_decode, decode_step_gqa_head_dim_64)
{
    struct backends b = open_backends();
    check_decode(&b, (struct decode_case){3, 40, 4, 2, 64, {1, 32, 33}, {1, 1, 1}}, fresh_seed());
    close_backends(&b);
}

/* A whole prompt of sequence 0 prefilled in one step next to single tokens of the others,
 * an odd group size (3 query heads per kv head) and head_dim 80. */
Test(gpu_decode, prefill_beside_decode_tokens_odd_group)
{
    struct backends b = open_backends();
    check_decode(&b, (struct decode_case){3, 80, 6, 2, 80, {70, 5, 12}, {70, 1, 1}}, fresh_seed());
    close_backends(&b);
}

/* Odd head counts without grouping, a chunked prefill continuing a cached prefix, and a
 * sequence that takes no part in the step. */
Test(gpu_decode, odd_heads_chunk_after_prefix_and_an_idle_sequence)
{
    struct backends b = open_backends();
    check_decode(&b, (struct decode_case){3, 48, 3, 3, 96, {40, 21, 7}, {1, 9, 0}}, fresh_seed());
    close_backends(&b);
}

/* Groups larger than one block's warps (5 query heads per kv head), head_dim 40 (lanes
 * past head_dim idle) and 128 (four dimensions per lane), lengths across tile edges. */
Test(gpu_decode, large_groups_and_head_dims_40_and_128)
{
    struct backends b = open_backends();
    check_decode(&b, (struct decode_case){4, 70, 10, 2, 40, {65, 64, 2, 31}, {1, 3, 2, 1}}, fresh_seed());
    check_decode(&b, (struct decode_case){2, 40, 7, 1, 128, {33, 17}, {2, 17}}, fresh_seed() + 1);
    close_backends(&b);
}

/* A sliding window of 20 slots: a prefill longer than the window, decode tokens whose
 * window starts inside a 32-slot tile (the tiles before it are skipped), and a sequence
 * shorter than the window. */
Test(gpu_decode, sliding_window)
{
    struct backends b = open_backends();
    check_decode(&b, (struct decode_case){3, 80, 4, 2, 64, {70, 45, 9}, {30, 1, 1}, 20}, fresh_seed());
    check_decode(&b, (struct decode_case){2, 40, 3, 1, 40, {33, 3}, {1, 1}, 1}, fresh_seed() + 1);
    close_backends(&b);
}

/* The argument checks name the op; a token whose sequence lies outside the cache is
 * not written, and its output row is NaN rather than another sequence's attention. */
Test(gpu_decode, bad_arguments)
{
    struct backends b = open_backends();
    struct al_backend *k = b.gpu;
    const int kv_heads = 1, head_dim = 8, capacity = 4;
    size_t cache_bytes = al_backend_act_bytes(k, (int64_t)capacity * kv_heads * head_dim);
    struct al_kv_cache_layer cache = {output(k, capacity * kv_heads * head_dim, ACT(k)),
                                      output(k, capacity * kv_heads * head_dim, ACT(k)), 1, capacity};
    float row[16];
    test_fill_random(row, 16, 5, 1.0f);
    void *kv = upload_act(k, row, 8), *q = upload_act(k, row, 16);
    int32_t host_seq = 1, host_pos = 0;
    int32_t *seq = upload_i32(k, &host_seq, 1), *pos = upload_i32(k, &host_pos, 1);
    void *out = output(k, 16, ACT(k));

    cr_assert(k->ops->decode_attention(k, out, q, &cache, seq, pos, 0, 1, 3, 2, head_dim) != 0);
    cr_assert(strstr(al_error_message(), "cuda decode_attention") && strstr(al_error_message(), "3 query heads"),
              "%s", al_error_message());
    cr_assert(k->ops->kv_cache_write(k, &cache, kv, kv, seq, pos, 1, kv_heads, 130) != 0);
    cr_assert(strstr(al_error_message(), "cuda kv_cache_write") && strstr(al_error_message(), "head_dim 130"), "%s",
              al_error_message());
    struct al_kv_cache_layer empty = {NULL, NULL, 1, capacity};
    cr_assert(k->ops->decode_attention(k, out, q, &empty, seq, pos, 0, 1, 2, kv_heads, head_dim) != 0);
    cr_assert(strstr(al_error_message(), "cache is missing"), "%s", al_error_message());

    /* Sequence 1 of a one-sequence cache. */
    cr_assert(k->ops->kv_cache_write(k, &cache, kv, kv, seq, pos, 1, kv_heads, head_dim) == 0, "%s",
              al_error_message());
    cr_assert(k->ops->decode_attention(k, out, q, &cache, seq, pos, 0, 1, 2, kv_heads, head_dim) == 0, "%s",
              al_error_message());
    float *got = download(k, out, 16, ACT(k));
    for (int i = 0; i < 16; i++)
        cr_assert(isnan(got[i]), "output element %d of an out-of-range token is %g", i, got[i]);
    unsigned char *bytes = malloc(cache_bytes);
    cr_assert(bytes != NULL);
    cr_assert(k->ops->copy_to_host(k, bytes, cache.k, cache_bytes) == 0, "%s", al_error_message());
    for (size_t i = 0; i < cache_bytes; i++)
        cr_assert(bytes[i] == 0xff, "the cache was written by an out-of-range token (byte %zu)", i);
    free(bytes);
    free(got);
    close_backends(&b);
}

/* ---- optimizer ---- */

Test(gpu_ops, sum_squares_accumulates)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    const int64_t n = 100003;
    float *x = random_values(n, seed, 1.0f);
    float start = 1.5f;
    void *sum[2];
    struct al_backend *side[2] = {b.cpu, b.gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *k = side[s];
        float *xs = upload(k, x, n, AL_DTYPE_F32);
        sum[s] = upload(k, &start, 1, AL_DTYPE_F32);
        cr_assert(k->ops->sum_squares(k, sum[s], xs, n) == 0, "%s", al_error_message());
        cr_assert(k->ops->sum_squares(k, sum[s], xs, 17) == 0, "%s", al_error_message());
    }
    expect_close("sum_squares", &b, sum[1], sum[0], 1, AL_DTYPE_F32, OPTIMIZER_TOLERANCE, seed);
    free(x);
    close_backends(&b);
}

Test(gpu_ops, adamw_step)
{
    struct backends b = open_backends();
    uint64_t seed = fresh_seed();
    const int64_t n = 10007;
    float *param = random_values(n, seed, 1.0f);
    float *grad = random_values(n, seed + 1, 1.0f);
    float *m = random_values(n, seed + 2, 0.1f);
    float *v = random_values(n, seed + 3, 0.1f);
    for (int64_t i = 0; i < n; i++)
        v[i] = fabsf(v[i]); /* a second moment is never negative */
    void *ps[2], *ms[2], *vs[2];
    struct al_backend *side[2] = {b.cpu, b.gpu};
    for (int s = 0; s < 2; s++) {
        struct al_backend *k = side[s];
        ps[s] = upload(k, param, n, AL_DTYPE_F32);
        ms[s] = upload(k, m, n, AL_DTYPE_F32);
        vs[s] = upload(k, v, n, AL_DTYPE_F32);
        float *g = upload(k, grad, n, AL_DTYPE_F32);
        cr_assert(k->ops->adamw(k, ps[s], g, ms[s], vs[s], n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.5f, 3) == 0,
                  "%s", al_error_message());
    }
    expect_close("adamw param", &b, ps[1], ps[0], n, AL_DTYPE_F32, OPTIMIZER_TOLERANCE, seed);
    expect_close("adamw m", &b, ms[1], ms[0], n, AL_DTYPE_F32, OPTIMIZER_TOLERANCE, seed);
    expect_close("adamw v", &b, vs[1], vs[0], n, AL_DTYPE_F32, OPTIMIZER_TOLERANCE, seed);
    free(param);
    free(grad);
    free(m);
    free(v);
    close_backends(&b);
}

/* ---- memory ---- */

/* Round trips through every conversion, and alloc's zero fill after a poisoned block is
 * freed and its memory handed out again. */
Test(gpu_ops, conversions_and_zeroed_alloc)
{
    struct backends b = open_backends();
    struct al_backend *k = b.gpu;
    uint64_t seed = fresh_seed();
    const int64_t n = 4099;
    float *x = random_values(n, seed, 100.0f);
    enum al_dtype types[3] = {AL_DTYPE_F32, AL_DTYPE_F16, AL_DTYPE_BF16};
    for (int t = 0; t < 3; t++) {
        /* The host's own conversion is the reference. */
        uint16_t *half = malloc((size_t)n * 4);
        float *want = malloc((size_t)n * sizeof(float));
        cr_assert(half && want);
        al_convert(half, types[t], x, AL_DTYPE_F32, n);
        al_convert(want, AL_DTYPE_F32, half, types[t], n);
        void *p = upload(k, x, n, types[t]);
        float *got = download(k, p, n, types[t]);
        cr_assert(memcmp(got, want, (size_t)n * sizeof(float)) == 0, "%s round trip differs from al_convert",
                  al_dtype_name(types[t]));
        /* Upload from F16 / BF16 host data too. */
        void *q = k->ops->alloc(k, (size_t)n * sizeof(float));
        cr_assert(q != NULL);
        cr_assert(k->ops->upload_convert(k, q, AL_DTYPE_F32, half, types[t], n) == 0, "%s", al_error_message());
        float *back = download(k, q, n, AL_DTYPE_F32);
        cr_assert(memcmp(back, want, (size_t)n * sizeof(float)) == 0, "upload from %s differs from al_convert",
                  al_dtype_name(types[t]));
        k->ops->free(k, q);
        k->ops->free(k, p);
        free(half);
        free(want);
        free(got);
        free(back);
    }
    const size_t bytes = 1 << 20;
    void *first = k->ops->alloc(k, bytes);
    cr_assert(first != NULL);
    poison(k, first, bytes);
    k->ops->free(k, first);
    unsigned char *again = k->ops->alloc(k, bytes);
    cr_assert(again != NULL);
    unsigned char *host = malloc(bytes);
    cr_assert(host != NULL);
    cr_assert(k->ops->copy_to_host(k, host, again, bytes) == 0, "%s", al_error_message());
    for (size_t i = 0; i < bytes; i++)
        cr_assert(host[i] == 0, "alloc returned a non-zero byte at %zu", i);
    free(host);
    free(x);
    close_backends(&b);
}

/* ---- creation failures (these run anywhere) ---- */

Test(gpu_create, fails_cleanly_without_a_visible_gpu)
{
    /* Criterion runs each test in its own process, so this hides the GPUs from this
     * process only, before the CUDA runtime starts. */
    cr_assert(setenv("CUDA_VISIBLE_DEVICES", "", 1) == 0);
    al_error_clear();
    struct al_backend *backend = al_backend_cuda_create(0);
    cr_assert(backend == NULL, "al_backend_cuda_create succeeded with no visible device");
    cr_assert(strlen(al_error_message()) > 0, "no error message was recorded");
    /* Whether the runtime reports "no device" or fails outright (no driver), the user is
     * told in the same words what is missing and what to do instead. */
    cr_assert(strstr(al_error_message(), "no NVIDIA GPU found") != NULL,
              "the message does not say that no NVIDIA GPU was found: %s", al_error_message());
    cr_assert(strstr(al_error_message(), "--device cpu") != NULL,
              "the message does not suggest --device cpu: %s", al_error_message());
}

Test(gpu_create, rejects_a_device_index_out_of_range)
{
    al_error_clear();
    struct al_backend *backend = al_backend_cuda_create(1000);
    cr_assert(backend == NULL, "device 1000 should not exist");
    cr_assert(strlen(al_error_message()) > 0, "no error message was recorded");
}

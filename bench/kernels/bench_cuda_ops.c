/* Times each CUDA backend op at Llama-3-8B shapes (one layer's worth) and prints, per op,
 * the median time and the rate it reached: TFLOP/s for the matrix ops, GB/s for the
 * memory-bound ones, computed from the minimum work (each input read once, each output
 * written once), so the numbers compare directly with the device's measured peaks.
 *
 * Inputs are random (never zeros), the ops are warmed up first, and each timing
 * synchronises before reading the clock. Build and run: bench/kernels/run.sh [tokens]
 * (needs nvcc and a GPU).
 * CPU reference for every op: src/backend/cpu/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentlora/dtype.h"
#include "agentlora/error.h"
#include "agentlora/rng.h"
#include "backend/backend.h"

/* Llama-3-8B. */
#define DIM 4096
#define HIDDEN 14336
#define Q_HEADS 32
#define KV_HEADS 8
#define HEAD_DIM 128
#define VOCAB 128256
#define RANK 16
#define DEFAULT_TOKENS 4096
#define DOCUMENT_TOKENS 1024 /* packed rows: documents of this length */

/* One decoding step: this many sequences, each with this many tokens already cached. */
#define DECODE_SEQUENCES 8
#define DECODE_CONTEXT 4096

#define WARMUP 3
#define REPEATS 15

struct bench {
    struct al_backend *gpu;
    int64_t n;
};

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *device_random(struct al_backend *b, int64_t n, enum al_dtype dtype, float scale, uint64_t seed)
{
    float *host = malloc((size_t)n * sizeof(float));
    void *p = b->ops->alloc(b, (size_t)n * al_dtype_size(dtype));
    if (!host || !p) {
        fprintf(stderr, "out of memory for %lld elements: %s\n", (long long)n, al_error_message());
        exit(1);
    }
    struct al_rng rng;
    al_rng_seed(&rng, seed, 1);
    for (int64_t i = 0; i < n; i++)
        host[i] = al_rng_uniform_range(&rng, -scale, scale);
    if (b->ops->upload_convert(b, p, dtype, host, AL_DTYPE_F32, n) != 0) {
        fprintf(stderr, "upload: %s\n", al_error_message());
        exit(1);
    }
    free(host);
    return p;
}

/* One timed op: a function that queues it once. */
typedef int (*op_fn)(struct bench *bench, void *state);

static void report(const char *name, struct bench *bench, op_fn run, void *state, double flops, double bytes)
{
    double times[REPEATS];
    for (int r = 0; r < WARMUP + REPEATS; r++) {
        bench->gpu->ops->synchronize(bench->gpu);
        double start = now_seconds();
        if (run(bench, state) != 0 || bench->gpu->ops->synchronize(bench->gpu) != 0) {
            printf("%-28s FAILED: %s\n", name, al_error_message());
            return;
        }
        if (r >= WARMUP)
            times[r - WARMUP] = now_seconds() - start;
    }
    qsort(times, REPEATS, sizeof times[0], compare_doubles);
    double median = times[REPEATS / 2];
    printf("%-28s %9.3f ms", name, median * 1e3);
    if (flops > 0)
        printf("  %8.1f TFLOP/s", flops / median * 1e-12);
    if (bytes > 0)
        printf("  %8.1f GB/s", bytes / median * 1e-9);
    printf("\n");
}

/* ---- the ops ---- */

struct tensors {
    void *x, *y, *w_qkv, *gate, *up, *act, *dact, *dgate, *dup, *norm_w, *q, *k, *v, *att, *datt, *dq, *dk, *dv,
        *lm_w, *dx;
    float *rstd, *lse, *loss;
    int32_t *doc_start, *targets;
    struct al_lora_args lora;
};

static int run_linear_forward(struct bench *b, void *s)
{
    struct tensors *t = s;
    return b->gpu->ops->linear_forward(b->gpu, t->gate, t->x, t->w_qkv, NULL, &t->lora, b->n, DIM, HIDDEN);
}

static int run_linear_backward(struct bench *b, void *s)
{
    struct tensors *t = s;
    return b->gpu->ops->linear_backward(b->gpu, t->dx, 0, t->dgate, t->x, t->w_qkv, &t->lora, b->n, DIM, HIDDEN);
}

static int run_attention_forward(struct bench *b, void *s)
{
    struct tensors *t = s;
    return b->gpu->ops->attention_forward(b->gpu, t->att, t->lse, t->q, t->k, t->v, t->doc_start, 0, b->n,
                                          Q_HEADS, KV_HEADS, HEAD_DIM);
}

static int run_attention_backward(struct bench *b, void *s)
{
    struct tensors *t = s;
    return b->gpu->ops->attention_backward(b->gpu, t->dq, t->dk, t->dv, t->datt, t->q, t->k, t->v, t->att, t->lse,
                                           t->doc_start, 0, b->n, Q_HEADS, KV_HEADS, HEAD_DIM);
}

static int run_rmsnorm_forward(struct bench *b, void *s)
{
    struct tensors *t = s;
    return b->gpu->ops->rmsnorm_forward(b->gpu, t->y, t->rstd, t->x, t->norm_w, b->n, DIM, 1e-5f);
}

static int run_rmsnorm_backward(struct bench *b, void *s)
{
    struct tensors *t = s;
    return b->gpu->ops->rmsnorm_backward(b->gpu, t->dx, NULL, t->y, t->x, t->norm_w, t->rstd, b->n, DIM);
}

static int run_swiglu_forward(struct bench *b, void *s)
{
    struct tensors *t = s;
    return b->gpu->ops->swiglu_forward(b->gpu, t->act, t->gate, t->up, b->n, HIDDEN);
}

static int run_swiglu_backward(struct bench *b, void *s)
{
    struct tensors *t = s;
    return b->gpu->ops->swiglu_backward(b->gpu, t->dgate, t->dup, t->dact, t->gate, t->up, b->n, HIDDEN);
}

static int run_rope(struct bench *b, void *s)
{
    struct tensors *t = s;
    /* inv_freq: any F32 values serve for timing; lse is a convenient [n x heads] F32 buffer
     * and doc_start a convenient int32 position array. */
    return b->gpu->ops->rope_forward(b->gpu, t->q, t->doc_start, t->lse, b->n, Q_HEADS, HEAD_DIM);
}

static int run_lm_head(struct bench *b, void *s)
{
    struct tensors *t = s;
    return b->gpu->ops->lm_head_cross_entropy(b->gpu, t->loss, t->dx, t->x, t->lm_w, t->targets, b->n, DIM, VOCAB,
                                              1.0f / (float)b->n);
}

/* A decoding step: one new token for each of DECODE_SEQUENCES sequences whose caches hold
 * DECODE_CONTEXT tokens (the last slot is the new token's own). */
struct decode_tensors {
    struct al_kv_cache_layer cache;
    void *q, *out, *k_new, *v_new;
    int32_t *seq, *pos;
};

static int run_kv_cache_write(struct bench *b, void *s)
{
    struct decode_tensors *t = s;
    return b->gpu->ops->kv_cache_write(b->gpu, &t->cache, t->k_new, t->v_new, t->seq, t->pos, DECODE_SEQUENCES,
                                       KV_HEADS, HEAD_DIM);
}

static int run_decode_attention(struct bench *b, void *s)
{
    struct decode_tensors *t = s;
    return b->gpu->ops->decode_attention(b->gpu, t->out, t->q, &t->cache, t->seq, t->pos, 0, DECODE_SEQUENCES, Q_HEADS,
                                         KV_HEADS, HEAD_DIM);
}

/* n int32 values uploaded to the device. */
static int32_t *device_int_copy(struct al_backend *g, const int32_t *host, int64_t n)
{
    int32_t *p = g->ops->alloc(g, (size_t)n * sizeof(int32_t));
    if (!p || g->ops->copy_to_backend(g, p, host, (size_t)n * sizeof(int32_t)) != 0) {
        fprintf(stderr, "device ints: %s\n", al_error_message());
        exit(1);
    }
    return p;
}

/* Document starts of packed documents of `documents_of` tokens, or pseudo-random ids
 * below `modulo` (documents_of 0). */
static int32_t *device_ints(struct al_backend *g, int64_t n, int documents_of, int modulo)
{
    int32_t *host = malloc((size_t)n * sizeof(int32_t));
    if (!host) {
        fprintf(stderr, "out of memory for %lld ints\n", (long long)n);
        exit(1);
    }
    for (int64_t i = 0; i < n; i++)
        host[i] = documents_of ? (int32_t)(i / documents_of * documents_of) : (int32_t)((i * 7919) % modulo);
    int32_t *p = device_int_copy(g, host, n);
    free(host);
    return p;
}

int main(int argc, char **argv)
{
    struct bench bench = {NULL, argc > 1 ? atoll(argv[1]) : DEFAULT_TOKENS};
    bench.gpu = al_backend_cuda_create(0);
    if (!bench.gpu) {
        fprintf(stderr, "bench_cuda_ops: %s\n", al_error_message());
        return 1;
    }
    struct al_backend *g = bench.gpu;
    int64_t n = bench.n;
    enum al_dtype bf16 = AL_DTYPE_BF16;
    struct tensors t;
    memset(&t, 0, sizeof t);
    t.x = device_random(g, n * DIM, bf16, 1.0f, 1);
    t.y = device_random(g, n * DIM, bf16, 1.0f, 2);
    t.dx = device_random(g, n * DIM, bf16, 1.0f, 3);
    t.w_qkv = device_random(g, (int64_t)HIDDEN * DIM, bf16, 0.02f, 4);
    t.gate = device_random(g, n * HIDDEN, bf16, 2.0f, 5);
    t.up = device_random(g, n * HIDDEN, bf16, 2.0f, 6);
    t.act = device_random(g, n * HIDDEN, bf16, 1.0f, 7);
    t.dact = device_random(g, n * HIDDEN, bf16, 1.0f, 8);
    t.dgate = device_random(g, n * HIDDEN, bf16, 1.0f, 9);
    t.dup = device_random(g, n * HIDDEN, bf16, 1.0f, 10);
    t.norm_w = device_random(g, DIM, bf16, 1.0f, 11);
    t.q = device_random(g, n * Q_HEADS * HEAD_DIM, bf16, 1.0f, 12);
    t.k = device_random(g, n * KV_HEADS * HEAD_DIM, bf16, 1.0f, 13);
    t.v = device_random(g, n * KV_HEADS * HEAD_DIM, bf16, 1.0f, 14);
    t.att = device_random(g, n * Q_HEADS * HEAD_DIM, bf16, 1.0f, 15);
    t.datt = device_random(g, n * Q_HEADS * HEAD_DIM, bf16, 1.0f, 16);
    t.dq = device_random(g, n * Q_HEADS * HEAD_DIM, bf16, 1.0f, 17);
    t.dk = device_random(g, n * KV_HEADS * HEAD_DIM, bf16, 1.0f, 18);
    t.dv = device_random(g, n * KV_HEADS * HEAD_DIM, bf16, 1.0f, 19);
    t.lm_w = device_random(g, (int64_t)VOCAB * DIM, bf16, 0.02f, 20);
    t.rstd = device_random(g, n, AL_DTYPE_F32, 1.0f, 21);
    t.lse = device_random(g, n * Q_HEADS, AL_DTYPE_F32, 1.0f, 22);
    t.loss = device_random(g, 1, AL_DTYPE_F32, 1.0f, 23);
    t.doc_start = device_ints(g, n, DOCUMENT_TOKENS, 0);
    t.targets = device_ints(g, n, 0, VOCAB);
    t.lora.A = device_random(g, (int64_t)RANK * DIM, AL_DTYPE_F32, 0.01f, 24);
    t.lora.B = device_random(g, (int64_t)HIDDEN * RANK, AL_DTYPE_F32, 0.01f, 25);
    t.lora.dA = device_random(g, (int64_t)RANK * DIM, AL_DTYPE_F32, 0.01f, 26);
    t.lora.dB = device_random(g, (int64_t)HIDDEN * RANK, AL_DTYPE_F32, 0.01f, 27);
    t.lora.xa = device_random(g, n * RANK, AL_DTYPE_F32, 0.01f, 28);
    t.lora.rank = RANK;
    t.lora.scale = 2.0f;
    t.lora.dropout = 0.05f;
    t.lora.dropout_seed = 42;

    double nd = (double)n, act = 2.0; /* bytes per bf16 */
    /* Causal attention inside documents: each query sees on average half its document. */
    double pairs = nd * (DOCUMENT_TOKENS < n ? DOCUMENT_TOKENS : nd) / 2.0;
    printf("tokens %lld, Llama-3-8B shapes, LoRA rank %d, documents of %d tokens\n", (long long)n, RANK,
           DOCUMENT_TOKENS);
    report("linear_forward 4096->14336", &bench, run_linear_forward, &t, 2.0 * nd * DIM * HIDDEN, 0);
    report("linear_backward", &bench, run_linear_backward, &t, 2.0 * nd * DIM * HIDDEN, 0);
    report("attention_forward", &bench, run_attention_forward, &t, 4.0 * pairs * HEAD_DIM * Q_HEADS, 0);
    report("attention_backward", &bench, run_attention_backward, &t, 10.0 * pairs * HEAD_DIM * Q_HEADS, 0);
    report("rmsnorm_forward", &bench, run_rmsnorm_forward, &t, 0, 2.0 * nd * DIM * act);
    report("rmsnorm_backward", &bench, run_rmsnorm_backward, &t, 0, 3.0 * nd * DIM * act);
    report("swiglu_forward", &bench, run_swiglu_forward, &t, 0, 3.0 * nd * HIDDEN * act);
    report("swiglu_backward", &bench, run_swiglu_backward, &t, 0, 5.0 * nd * HIDDEN * act);
    report("rope_forward (q)", &bench, run_rope, &t, 0, 2.0 * nd * Q_HEADS * HEAD_DIM * act);
    report("lm_head_cross_entropy", &bench, run_lm_head, &t, 4.0 * nd * DIM * VOCAB, 0);

    struct decode_tensors d;
    int64_t cache_elements = (int64_t)DECODE_SEQUENCES * DECODE_CONTEXT * KV_HEADS * HEAD_DIM;
    d.cache = (struct al_kv_cache_layer){device_random(g, cache_elements, bf16, 1.0f, 30),
                                         device_random(g, cache_elements, bf16, 1.0f, 31), DECODE_SEQUENCES,
                                         DECODE_CONTEXT};
    d.q = device_random(g, (int64_t)DECODE_SEQUENCES * Q_HEADS * HEAD_DIM, bf16, 1.0f, 32);
    d.out = device_random(g, (int64_t)DECODE_SEQUENCES * Q_HEADS * HEAD_DIM, bf16, 1.0f, 33);
    d.k_new = device_random(g, (int64_t)DECODE_SEQUENCES * KV_HEADS * HEAD_DIM, bf16, 1.0f, 34);
    d.v_new = device_random(g, (int64_t)DECODE_SEQUENCES * KV_HEADS * HEAD_DIM, bf16, 1.0f, 35);
    int32_t sequence[DECODE_SEQUENCES], last_slot[DECODE_SEQUENCES];
    for (int i = 0; i < DECODE_SEQUENCES; i++) {
        sequence[i] = i;
        last_slot[i] = DECODE_CONTEXT - 1;
    }
    d.seq = device_int_copy(g, sequence, DECODE_SEQUENCES);
    d.pos = device_int_copy(g, last_slot, DECODE_SEQUENCES);
    double cache_bytes = 2.0 * (double)cache_elements * act; /* every cached key and value read once */
    printf("decoding: %d sequences of %d cached tokens, one new token each\n", DECODE_SEQUENCES, DECODE_CONTEXT);
    report("kv_cache_write", &bench, run_kv_cache_write, &d, 0,
           4.0 * DECODE_SEQUENCES * KV_HEADS * HEAD_DIM * act);
    report("decode_attention", &bench, run_decode_attention, &d, 0, cache_bytes);
    al_backend_destroy(g);
    return 0;
}

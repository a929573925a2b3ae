/* KV-cache decoding on the CPU: the cache ops against attention_forward, and the
 * decoder's logits (a batched prefill, then one token per step per active sequence)
 * against a full forward over each whole sequence (al_model_logits), for Llama and Qwen2
 * tiny models, with and without an adapter, in one batch of sequences of different
 * lengths. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/generate.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "backend/backend.h"
#include "model_testing.h"
#include "test_support.h"
#include "tiny_model.h"

/* fp32 on both paths; only GEMM shapes differ (n rows at once vs one), so the logits
 * agree to rounding. */
#define DECODE_REL_TOLERANCE 1e-5
/* Denominator floor for the relative error: logits of these models are O(0.1..1). */
#define DECODE_REL_FLOOR 1e-3

/* ---- the ops ---- */

/* Attention outputs here are O(1) averages of unit-scale values; a different GEMM shape
 * reorders a few float sums, which moves them by a few ulps. */
#define DECODE_OP_TOLERANCE 1e-6

struct op_case {
    int sequences, capacity, q_heads, kv_heads, head_dim;
};

/* Two sequences packed as documents: attention_forward over the pack is the reference
 * for decode_attention over a cache holding the same keys, with the same window. */
static void check_cache_attention_equals_packed(int window)
{
    struct al_backend *be = al_backend_cpu_create();
    const int lengths[2] = {5, 8};
    const struct op_case s = {2, 10, 4, 2, 8};
    int n = lengths[0] + lengths[1];
    int q_width = s.q_heads * s.head_dim, kv_width = s.kv_heads * s.head_dim;
    float *q = malloc(sizeof(float) * n * q_width), *k = malloc(sizeof(float) * n * kv_width);
    float *v = malloc(sizeof(float) * n * kv_width), *ref = malloc(sizeof(float) * n * q_width);
    float *out = malloc(sizeof(float) * n * q_width), *lse = malloc(sizeof(float) * n * s.q_heads);
    int32_t doc_start[13], seq[13], pos[13];
    test_fill_random(q, n * q_width, 1, 1.0f);
    test_fill_random(k, n * kv_width, 2, 1.0f);
    test_fill_random(v, n * kv_width, 3, 1.0f);
    for (int i = 0; i < n; i++) {
        seq[i] = i < lengths[0] ? 0 : 1;
        pos[i] = i < lengths[0] ? i : i - lengths[0];
        doc_start[i] = i < lengths[0] ? 0 : lengths[0];
    }
    cr_assert_eq(be->ops->attention_forward(be, ref, lse, q, k, v, doc_start, window, n, s.q_heads, s.kv_heads,
                                            s.head_dim),
                 0);

    size_t cache_bytes = sizeof(float) * s.sequences * s.capacity * kv_width;
    struct al_kv_cache_layer cache = {be->ops->alloc(be, cache_bytes), be->ops->alloc(be, cache_bytes), s.sequences,
                                      s.capacity};
    cr_assert_eq(be->ops->kv_cache_write(be, &cache, k, v, seq, pos, n, s.kv_heads, s.head_dim), 0);
    /* Slot p of sequence 1 holds that sequence's token p. */
    const float *slot = (const float *)cache.k + (1 * s.capacity + 3) * kv_width;
    cr_expect_eq(memcmp(slot, k + (lengths[0] + 3) * kv_width, sizeof(float) * kv_width), 0);
    cr_assert_eq(be->ops->decode_attention(be, out, q, &cache, seq, pos, window, n, s.q_heads, s.kv_heads,
                                           s.head_dim),
                 0);
    /* The same blocked computation; only the GEMMs' shapes differ, so equal to rounding. */
    cr_expect_lt(test_max_abs_error(out, ref, n * q_width), DECODE_OP_TOLERANCE);

    /* A single query at the end of sequence 0 alone gives the same row. */
    int32_t one_seq = 0, one_pos = lengths[0] - 1;
    float row[32];
    cr_assert_eq(be->ops->decode_attention(be, row, q + (lengths[0] - 1) * q_width, &cache, &one_seq, &one_pos,
                                           window, 1, s.q_heads, s.kv_heads, s.head_dim),
                 0);
    cr_expect_lt(test_max_abs_error(row, ref + (lengths[0] - 1) * q_width, q_width), DECODE_OP_TOLERANCE);

    be->ops->free(be, cache.k);
    be->ops->free(be, cache.v);
    free(q), free(k), free(v), free(ref), free(out), free(lse);
    al_backend_destroy(be);
}

Test(decode_ops, cache_attention_equals_packed_attention)
{
    check_cache_attention_equals_packed(0);
}

/* A window of 3: both sequences are longer, so later queries lose their first slots. */
Test(decode_ops, cache_attention_equals_packed_attention_in_a_sliding_window)
{
    check_cache_attention_equals_packed(3);
}

Test(decode_ops, tokens_outside_the_cache_are_errors)
{
    struct al_backend *be = al_backend_cpu_create();
    float buffer[2 * 4 * 8] = {0}, kv[8] = {0}, out[16];
    struct al_kv_cache_layer cache = {buffer, buffer, 2, 4};
    int32_t seq = 2, pos = 0;
    cr_expect_neq(be->ops->kv_cache_write(be, &cache, kv, kv, &seq, &pos, 1, 1, 8), 0);
    cr_expect(strstr(al_error_message(), "sequence 2"), "%s", al_error_message());
    seq = 1;
    pos = 4;
    cr_expect_neq(be->ops->decode_attention(be, out, kv, &cache, &seq, &pos, 0, 1, 2, 1, 8), 0);
    cr_expect(strstr(al_error_message(), "position 4"), "%s", al_error_message());
    pos = 3;
    cr_expect_neq(be->ops->decode_attention(be, out, kv, &cache, &seq, &pos, 0, 1, 3, 2, 8), 0,
                  "3 query heads cannot share 2 kv heads");
    cr_expect_neq(be->ops->decode_attention(be, out, kv, &cache, &seq, &pos, -2, 1, 2, 1, 8), 0);
    cr_expect(strstr(al_error_message(), "sliding window -2"), "%s", al_error_message());
    al_backend_destroy(be);
}

/* ---- the model ---- */

struct model_fixture {
    char *dir;
    struct al_backend *backend;
    struct al_model *model;
    struct al_lora *lora;
    int vocab;
};

/* A tiny model of `arch`, or, when golden_dir is given, that committed model folder (the
 * transformers goldens with sliding windows and Qwen3's q/k norms). */
static void model_open_from(struct model_fixture *f, enum al_arch arch, const char *golden_dir, bool with_adapter)
{
    memset(f, 0, sizeof *f);
    if (golden_dir) {
        f->dir = strdup(golden_dir);
    } else {
        struct tiny_model_spec spec = tiny_model_default_spec();
        spec.arch = arch;
        spec.rope_llama3 = arch == AL_ARCH_LLAMA;
        spec.vocab_size = 96;
        f->dir = test_tmpdir();
        cr_assert_eq(tiny_model_write(&spec, f->dir), 0, "%s", al_error_message());
    }
    f->backend = al_backend_cpu_create();
    f->model = al_model_load(f->dir, f->backend);
    cr_assert_not_null(f->model, "%s", al_error_message());
    f->vocab = al_model_get_config(f->model)->vocab_size;
    if (with_adapter) {
        /* Dropout is set so that a decoder that forgot to turn it off would disagree. */
        struct al_lora_config lc = {.rank = 4, .alpha = 8, .dropout = 0.25f, .target_mask = AL_LORA_ALL_TARGETS};
        f->lora = al_lora_create(al_model_get_config(f->model), f->backend, &lc, 7);
        cr_assert_not_null(f->lora, "%s", al_error_message());
        cr_assert_eq(test_lora_randomize(f->lora, 11, 0.2f), 0, "B must be non-zero for the adapter to matter");
    }
}

static void model_open(struct model_fixture *f, enum al_arch arch, bool with_adapter)
{
    model_open_from(f, arch, NULL, with_adapter);
}

static void model_close(struct model_fixture *f)
{
    al_lora_free(f->lora);
    al_model_free(f->model);
    al_backend_destroy(f->backend);
    free(f->dir);
}

#define SEQUENCES 3

/* Sequence s has prompt_length[s] prompt tokens and total_length[s] tokens in all; the
 * rest are fed one per step, so sequences finish at different steps. */
static const int prompt_length[SEQUENCES] = {5, 9, 2};
static const int total_length[SEQUENCES] = {11, 12, 4};

/* The reference: a full forward over the sequences packed as documents. */
static float *reference_logits(struct model_fixture *f, struct test_batch *tb)
{
    struct al_workspace *ws = al_workspace_create(f->model, f->lora, tb->batch.num_tokens, false);
    cr_assert_not_null(ws, "%s", al_error_message());
    float *logits = malloc(sizeof(float) * tb->batch.num_tokens * f->vocab);
    cr_assert_eq(al_model_logits(f->model, f->lora, ws, &tb->batch, logits), 0, "%s", al_error_message());
    al_workspace_free(ws);
    return logits;
}

static void expect_rows_close(const float *got, const float *ref, int rows, int vocab, const char *what)
{
    double err = test_max_rel_error(got, ref, (int64_t)rows * vocab, DECODE_REL_FLOOR);
    cr_expect(err <= DECODE_REL_TOLERANCE, "%s: relative error %g", what, err);
}

/* Prefill every prompt in one step, then decode: the logits of every token must equal
 * the full forward's at the same place. */
static void check_decoding_of(const char *golden_dir, enum al_arch arch, bool with_adapter, int max_step_tokens)
{
    struct model_fixture f;
    model_open_from(&f, arch, golden_dir, with_adapter);
    struct test_batch tb;
    test_batch_make(&tb, total_length, SEQUENCES, f.vocab, 21, 0);
    float *ref = reference_logits(&f, &tb);
    int start[SEQUENCES];
    for (int s = 0, offset = 0; s < SEQUENCES; offset += total_length[s], s++)
        start[s] = offset;

    struct al_decoder *d = al_decoder_create(f.model, f.lora, SEQUENCES, 16, max_step_tokens);
    cr_assert_not_null(d, "%s", al_error_message());

    /* The prefill step: all prompts, logits for every token. */
    int32_t seq[32], ids[32];
    int n = 0;
    for (int s = 0; s < SEQUENCES; s++)
        for (int t = 0; t < prompt_length[s]; t++) {
            seq[n] = s;
            ids[n++] = tb.ids[start[s] + t];
        }
    float *logits = malloc(sizeof(float) * 32 * f.vocab);
    cr_assert_eq(al_decoder_step(d, seq, ids, n, NULL, logits), 0, "%s", al_error_message());
    for (int s = 0, row = 0; s < SEQUENCES; row += prompt_length[s], s++) {
        expect_rows_close(logits + row * f.vocab, ref + start[s] * f.vocab, prompt_length[s], f.vocab, "prefill");
        cr_expect_eq(al_decoder_length(d, s), prompt_length[s]);
    }

    /* Decode steps: one token for each sequence that still has one. */
    for (int t = 0;; t++) {
        int active = 0, where[SEQUENCES];
        for (int s = 0; s < SEQUENCES; s++) {
            int position = prompt_length[s] + t;
            if (position >= total_length[s])
                continue;
            seq[active] = s;
            ids[active] = tb.ids[start[s] + position];
            where[active++] = start[s] + position;
        }
        if (active == 0)
            break;
        cr_assert_eq(al_decoder_step(d, seq, ids, active, NULL, logits), 0, "%s", al_error_message());
        for (int a = 0; a < active; a++)
            expect_rows_close(logits + a * f.vocab, ref + where[a] * f.vocab, 1, f.vocab, "decode step");
    }
    for (int s = 0; s < SEQUENCES; s++)
        cr_expect_eq(al_decoder_length(d, s), total_length[s]);

    free(logits);
    al_decoder_free(d);
    free(ref);
    test_batch_free(&tb);
    model_close(&f);
}

static void check_decoding_matches_full_forward(enum al_arch arch, bool with_adapter, int max_step_tokens)
{
    check_decoding_of(NULL, arch, with_adapter, max_step_tokens);
}

/* Sliding windows (5 on every layer; 6 on Qwen3's first layer) shorter than the 11- and
 * 12-token sequences: decode steps must drop the same old keys the full forward drops. */
Test(decode_model, mistral_sliding_window_matches_full_forward)
{
    check_decoding_of("tests/golden/mistral_window_tiny/model", AL_ARCH_MISTRAL, true, 0);
}

Test(decode_model, qwen3_window_and_qk_norm_match_full_forward)
{
    check_decoding_of("tests/golden/qwen3_tiny/model", AL_ARCH_QWEN3, true, 4);
}

Test(decode_model, llama_matches_full_forward)
{
    check_decoding_matches_full_forward(AL_ARCH_LLAMA, false, 0);
}

Test(decode_model, llama_with_adapter_matches_full_forward)
{
    check_decoding_matches_full_forward(AL_ARCH_LLAMA, true, 0);
}

Test(decode_model, qwen2_matches_full_forward)
{
    check_decoding_matches_full_forward(AL_ARCH_QWEN2, false, 0);
}

Test(decode_model, qwen2_with_adapter_matches_full_forward)
{
    check_decoding_matches_full_forward(AL_ARCH_QWEN2, true, 0);
}

/* A prefill longer than a step is split into chunks; later chunks read what earlier ones
 * cached, so nothing changes. */
Test(decode_model, chunked_prefill_matches_full_forward)
{
    check_decoding_matches_full_forward(AL_ARCH_QWEN2, true, 4);
}

/* Only the wanted rows come back, in token order: here each prompt's last token. */
Test(decode_model, logits_only_for_wanted_tokens)
{
    struct model_fixture f;
    model_open(&f, AL_ARCH_LLAMA, true);
    struct test_batch tb;
    test_batch_make(&tb, prompt_length, SEQUENCES, f.vocab, 5, 0);
    float *ref = reference_logits(&f, &tb);
    struct al_decoder *d = al_decoder_create(f.model, f.lora, SEQUENCES, 16, 0);
    cr_assert_not_null(d, "%s", al_error_message());
    int32_t seq[16];
    bool want[16];
    int n = (int)tb.batch.num_tokens;
    for (int i = 0; i < n; i++) {
        seq[i] = tb.doc_start[i] == 0 ? 0 : tb.doc_start[i] == prompt_length[0] ? 1 : 2;
        want[i] = i + 1 == n || tb.doc_start[i + 1] != tb.doc_start[i];
    }
    float *logits = malloc(sizeof(float) * SEQUENCES * f.vocab);
    cr_assert_eq(al_decoder_step(d, seq, tb.ids, n, want, logits), 0, "%s", al_error_message());
    for (int s = 0, last = -1; s < SEQUENCES; s++) {
        last += prompt_length[s];
        expect_rows_close(logits + s * f.vocab, ref + last * f.vocab, 1, f.vocab, "last prompt token");
    }
    free(logits);
    al_decoder_free(d);
    free(ref);
    test_batch_free(&tb);
    model_close(&f);
}

/* A step that does not fit changes nothing; reset empties the sequences. */
Test(decode_model, bad_steps_change_nothing)
{
    struct model_fixture f;
    model_open(&f, AL_ARCH_LLAMA, false);
    struct al_decoder *d = al_decoder_create(f.model, NULL, 2, 3, 0);
    cr_assert_not_null(d, "%s", al_error_message());
    int32_t seq[5] = {0, 0, 0, 1, 0}, ids[5] = {1, 2, 3, 4, 5};
    cr_expect_neq(al_decoder_step(d, seq, ids, 5, NULL, NULL), 0);
    cr_expect(strstr(al_error_message(), "sequence 0 would exceed its 3 positions"), "%s", al_error_message());
    cr_expect_eq(al_decoder_length(d, 0), 0);
    cr_expect_eq(al_decoder_length(d, 1), 0);

    ids[1] = f.vocab;
    cr_expect_neq(al_decoder_step(d, seq, ids, 3, NULL, NULL), 0);
    cr_expect(strstr(al_error_message(), "outside the vocabulary"), "%s", al_error_message());
    seq[0] = 2;
    ids[1] = 2;
    cr_expect_neq(al_decoder_step(d, seq, ids, 3, NULL, NULL), 0);
    cr_expect(strstr(al_error_message(), "sequence 2"), "%s", al_error_message());

    seq[0] = 0;
    cr_assert_eq(al_decoder_step(d, seq, ids, 4, NULL, NULL), 0, "%s", al_error_message());
    cr_expect_eq(al_decoder_length(d, 0), 3);
    cr_expect_eq(al_decoder_length(d, 1), 1);
    al_decoder_reset(d);
    cr_expect_eq(al_decoder_length(d, 0), 0);
    al_decoder_free(d);
    model_close(&f);
}

/* A backend without the decode ops is refused with a message that says so. */
Test(decode_model, backend_without_decode_ops_is_refused)
{
    struct model_fixture f;
    model_open(&f, AL_ARCH_LLAMA, false);
    struct al_backend_ops ops = *f.backend->ops;
    ops.decode_attention = NULL;
    const struct al_backend_ops *saved = f.backend->ops;
    f.backend->ops = &ops;
    struct al_decoder *d = al_decoder_create(f.model, NULL, 1, 8, 0);
    f.backend->ops = saved;
    cr_expect_null(d);
    cr_expect(strstr(al_error_message(), "does not implement KV-cache decoding"), "%s", al_error_message());
    model_close(&f);
}

/* Token choice and token-level generation: greedy picks the argmax; top-p edge cases
 * (0 is greedy, the nucleus never grows past what top_p needs); sampling follows the
 * distribution; the same seed gives the same tokens and another seed others; generation
 * follows the model (each greedy token is the argmax of a full forward over everything
 * before it), stops at stop ids and at max_new_tokens, and a batch gives the tokens each
 * prompt gets alone. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/generate.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/random_model.h"
#include "backend/backend.h"
#include "model_testing.h"
#include "test_support.h"

/* ---- choosing tokens ---- */

static int32_t next_token(struct al_token_sampler *sampler, const float *logits)
{
    int32_t token = -1;
    cr_assert_eq(al_token_sampler_next(sampler, logits, &token), 0, "%s", al_error_message());
    return token;
}

static struct al_token_sampler make_sampler(float temperature, float top_p, uint64_t seed, int vocab, uint64_t stream)
{
    struct al_sampling sampling = {temperature, top_p, seed};
    struct al_token_sampler sampler;
    cr_assert_eq(al_token_sampler_init(&sampler, &sampling, vocab, stream), 0, "%s", al_error_message());
    return sampler;
}

Test(generate_sampling, greedy_takes_the_argmax_and_the_lowest_id_among_equals)
{
    struct al_token_sampler s = make_sampler(0.0f, 1.0f, 0, 5, 0);
    const float logits[5] = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
    cr_expect_eq(next_token(&s, logits), 1);
    const float masked[5] = {-INFINITY, -INFINITY, 3.0f, -INFINITY, -INFINITY};
    cr_expect_eq(next_token(&s, masked), 2);
    al_token_sampler_free(&s);
}

Test(generate_sampling, top_p_zero_is_greedy_at_any_temperature)
{
    float logits[64];
    for (int row = 0; row < 50; row++) {
        test_fill_random(logits, 64, 100 + (uint64_t)row, 3.0f);
        struct al_token_sampler greedy = make_sampler(0.0f, 1.0f, 0, 64, 0);
        struct al_token_sampler hot = make_sampler(5.0f, 0.0f, (uint64_t)row, 64, 0);
        cr_expect_eq(next_token(&hot, logits), next_token(&greedy, logits));
        al_token_sampler_free(&greedy);
        al_token_sampler_free(&hot);
    }
}

/* Probabilities 0.5, 0.3, 0.2 (logits are their logs): top_p 0.45 keeps only the first,
 * 0.7 the first two, 1 all three, in proportion. */
Test(generate_sampling, nucleus_and_frequencies)
{
    const float logits[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    const float top_ps[3] = {0.45f, 0.7f, 1.0f};
    const int draws = 20000;
    for (int k = 0; k < 3; k++) {
        struct al_token_sampler s = make_sampler(1.0f, top_ps[k], 9, 3, 0);
        int counts[3] = {0};
        for (int i = 0; i < draws; i++)
            counts[next_token(&s, logits)]++;
        al_token_sampler_free(&s);
        if (k == 0)
            cr_expect_eq(counts[0], draws, "top_p 0.45: only the most likely token");
        if (k == 1) {
            cr_expect_eq(counts[2], 0, "top_p 0.7: the third token is outside the nucleus");
            cr_expect(fabs(counts[0] / (double)draws - 0.5 / 0.8) < 0.02, "%d of %d", counts[0], draws);
        }
        if (k == 2)
            for (int t = 0; t < 3; t++)
                cr_expect(fabs(counts[t] / (double)draws - expf(logits[t])) < 0.02, "token %d: %d of %d", t,
                          counts[t], draws);
    }
}

/* A high temperature flattens the distribution, a low one sharpens it. */
Test(generate_sampling, temperature_scales_the_logits)
{
    const float logits[2] = {1.0f, 0.0f};
    const int draws = 20000;
    const float temperatures[2] = {0.25f, 4.0f};
    for (int k = 0; k < 2; k++) {
        struct al_token_sampler s = make_sampler(temperatures[k], 1.0f, 4, 2, 0);
        int first = 0;
        for (int i = 0; i < draws; i++)
            first += next_token(&s, logits) == 0;
        al_token_sampler_free(&s);
        double expected = 1.0 / (1.0 + exp(-1.0 / temperatures[k]));
        cr_expect(fabs(first / (double)draws - expected) < 0.02, "T %g: %d of %d, expected %g",
                  (double)temperatures[k], first, draws, expected);
    }
}

Test(generate_sampling, seeds_and_streams_decide_the_draws)
{
    float logits[32];
    test_fill_random(logits, 32, 5, 1.0f);
    int32_t runs[4][40];
    const uint64_t seeds[4] = {1, 1, 2, 1}, streams[4] = {0, 0, 0, 7};
    for (int r = 0; r < 4; r++) {
        struct al_token_sampler s = make_sampler(1.0f, 0.95f, seeds[r], 32, streams[r]);
        for (int i = 0; i < 40; i++)
            runs[r][i] = next_token(&s, logits);
        al_token_sampler_free(&s);
    }
    cr_expect_eq(memcmp(runs[0], runs[1], sizeof runs[0]), 0, "same seed and stream, same tokens");
    cr_expect_neq(memcmp(runs[0], runs[2], sizeof runs[0]), 0, "another seed, other tokens");
    cr_expect_neq(memcmp(runs[0], runs[3], sizeof runs[0]), 0, "another stream, other tokens");
}

Test(generate_sampling, bad_settings_and_logits_are_errors)
{
    struct al_token_sampler s;
    struct al_sampling bad[4] = {{-1.0f, 1.0f, 0}, {NAN, 1.0f, 0}, {1.0f, 1.5f, 0}, {1.0f, -0.1f, 0}};
    for (int i = 0; i < 4; i++)
        cr_expect_neq(al_token_sampler_init(&s, &bad[i], 8, 0), 0, "setting %d", i);
    s = make_sampler(1.0f, 1.0f, 0, 3, 0);
    const float nan_row[3] = {0.0f, NAN, 1.0f};
    int32_t token;
    cr_expect_neq(al_token_sampler_next(&s, nan_row, &token), 0);
    cr_expect(strstr(al_error_message(), "token 1"), "%s", al_error_message());
    const float all_masked[3] = {-INFINITY, -INFINITY, -INFINITY};
    cr_expect_neq(al_token_sampler_next(&s, all_masked, &token), 0);
    al_token_sampler_free(&s);
}

/* ---- generation on a tiny random model ---- */

/* Weights with a larger std than Hugging Face's 0.02 so that the logits of a random model
 * have clear maxima (the demo's setting). */
#define MODEL_INIT_STD 0.1f
#define VOCAB 256

struct gen_fixture {
    char *dir;
    struct al_backend *backend;
    struct al_model *model;
    struct al_lora *lora;
};

/* max_positions 0 keeps the preset's context. */
static void gen_open_with_context(struct gen_fixture *f, bool with_adapter, int max_positions)
{
    memset(f, 0, sizeof *f);
    struct al_model_config config;
    cr_assert_eq(al_model_preset("tiny", &config), 0);
    if (max_positions)
        config.max_position_embeddings = max_positions;
    config.vocab_size = VOCAB;
    config.num_eos_token_ids = 0;
    config.bos_token_id = -1;
    f->dir = test_tmpdir();
    cr_assert_eq(al_random_model_write_std(&config, AL_DTYPE_F32, 3, MODEL_INIT_STD, f->dir, 0), 0, "%s",
                 al_error_message());
    f->backend = al_backend_cpu_create();
    f->model = al_model_load(f->dir, f->backend);
    cr_assert_not_null(f->model, "%s", al_error_message());
    if (with_adapter) {
        struct al_lora_config lc = {.rank = 4, .alpha = 8, .dropout = 0.1f, .target_mask = AL_LORA_ALL_TARGETS};
        f->lora = al_lora_create(al_model_get_config(f->model), f->backend, &lc, 5);
        cr_assert_not_null(f->lora, "%s", al_error_message());
        cr_assert_eq(test_lora_randomize(f->lora, 6, 0.3f), 0);
    }
}

static void gen_open(struct gen_fixture *f, bool with_adapter)
{
    gen_open_with_context(f, with_adapter, 0);
}

static void gen_close(struct gen_fixture *f)
{
    al_lora_free(f->lora);
    al_model_free(f->model);
    al_backend_destroy(f->backend);
    free(f->dir);
}

#define PROMPTS 3
static const int32_t prompt0[] = {5, 17, 99, 3, 42, 7};
static const int32_t prompt1[] = {200, 1};
static const int32_t prompt2[] = {12, 13, 14, 15, 16, 17, 18, 19, 20, 21};

static void make_prompts(struct al_token_prompt *prompts)
{
    prompts[0] = (struct al_token_prompt){prompt0, 6, 10};
    prompts[1] = (struct al_token_prompt){prompt1, 2, 11};
    prompts[2] = (struct al_token_prompt){prompt2, 10, 12};
}

static struct al_generate_options options_with(int max_new_tokens, float temperature, float top_p, uint64_t seed)
{
    struct al_generate_options options = al_generate_default_options();
    options.max_new_tokens = max_new_tokens;
    options.sampling = (struct al_sampling){temperature, top_p, seed};
    return options;
}

static void generate(struct gen_fixture *f, const struct al_token_prompt *prompts, int n,
                     const struct al_generate_options *options, struct al_token_generation *out)
{
    cr_assert_eq(al_generate_tokens(f->model, f->lora, prompts, n, options, out), 0, "%s", al_error_message());
}

static bool same_tokens(const struct al_token_generation *a, const struct al_token_generation *b)
{
    return a->count == b->count && a->stop == b->stop && memcmp(a->ids, b->ids, sizeof(int32_t) * a->count) == 0;
}

static int argmax_row(const float *row, int vocab)
{
    int best = 0;
    for (int v = 1; v < vocab; v++)
        if (row[v] > row[best])
            best = v;
    return best;
}

/* Each greedy token is the argmax of a full forward over the prompt and the tokens
 * generated before it. */
static void expect_follows_the_model(struct gen_fixture *f, const struct al_token_prompt *prompt,
                                     const struct al_token_generation *g)
{
    int total = prompt->length + g->count;
    int32_t *ids = malloc(sizeof(int32_t) * total), *targets = malloc(sizeof(int32_t) * total);
    int32_t *positions = malloc(sizeof(int32_t) * total), *doc_start = calloc((size_t)total, sizeof(int32_t));
    memcpy(ids, prompt->ids, sizeof(int32_t) * prompt->length);
    memcpy(ids + prompt->length, g->ids, sizeof(int32_t) * g->count);
    for (int i = 0; i < total; i++) {
        targets[i] = -1;
        positions[i] = i;
    }
    struct al_batch batch = {total, ids, targets, positions, doc_start};
    struct al_workspace *ws = al_workspace_create(f->model, f->lora, total, false);
    float *logits = malloc(sizeof(float) * total * VOCAB);
    cr_assert_eq(al_model_logits(f->model, f->lora, ws, &batch, logits), 0, "%s", al_error_message());
    for (int t = 0; t < g->count; t++)
        cr_expect_eq(g->ids[t], argmax_row(logits + (prompt->length + t - 1) * VOCAB, VOCAB),
                     "new token %d is not the full forward's argmax", t);
    free(logits);
    al_workspace_free(ws);
    free(ids), free(targets), free(positions), free(doc_start);
}

static void check_greedy_follows_the_model(bool with_adapter)
{
    struct gen_fixture f;
    gen_open(&f, with_adapter);
    struct al_token_prompt prompts[PROMPTS];
    make_prompts(prompts);
    struct al_generate_options options = options_with(12, 0.0f, 1.0f, 0);
    struct al_token_generation first[PROMPTS], second[PROMPTS];
    generate(&f, prompts, PROMPTS, &options, first);
    generate(&f, prompts, PROMPTS, &options, second);
    for (int i = 0; i < PROMPTS; i++) {
        cr_expect_eq(first[i].count, 12);
        cr_expect_eq(first[i].stop, AL_STOP_MAX_TOKENS);
        cr_expect_eq(first[i].stop_id, -1);
        cr_expect(same_tokens(&first[i], &second[i]), "greedy generation is deterministic");
        expect_follows_the_model(&f, &prompts[i], &first[i]);
        al_token_generation_free(&first[i]);
        al_token_generation_free(&second[i]);
    }
    gen_close(&f);
}

Test(generate_tokens, greedy_is_deterministic_and_follows_the_model)
{
    check_greedy_follows_the_model(false);
}

Test(generate_tokens, greedy_with_an_adapter_follows_the_adapted_model)
{
    check_greedy_follows_the_model(true);
}

Test(generate_tokens, sampling_repeats_with_a_seed_and_varies_across_seeds)
{
    struct gen_fixture f;
    gen_open(&f, false);
    struct al_token_prompt prompts[PROMPTS];
    make_prompts(prompts);
    struct al_generate_options seeded = options_with(16, 1.5f, 0.98f, 77), other = options_with(16, 1.5f, 0.98f, 78);
    struct al_token_generation a[PROMPTS], b[PROMPTS], c[PROMPTS];
    generate(&f, prompts, PROMPTS, &seeded, a);
    generate(&f, prompts, PROMPTS, &seeded, b);
    generate(&f, prompts, PROMPTS, &other, c);
    int differing = 0;
    for (int i = 0; i < PROMPTS; i++) {
        cr_expect(same_tokens(&a[i], &b[i]), "prompt %d: the same seed must give the same tokens", i);
        differing += !same_tokens(&a[i], &c[i]);
    }
    cr_expect_eq(differing, PROMPTS, "another seed must give other tokens for every prompt");
    for (int i = 0; i < PROMPTS; i++) {
        al_token_generation_free(&a[i]);
        al_token_generation_free(&b[i]);
        al_token_generation_free(&c[i]);
    }
    gen_close(&f);
}

Test(generate_tokens, top_p_zero_generates_the_greedy_tokens)
{
    struct gen_fixture f;
    gen_open(&f, true);
    struct al_token_prompt prompts[PROMPTS];
    make_prompts(prompts);
    struct al_generate_options greedy = options_with(10, 0.0f, 1.0f, 0), narrow = options_with(10, 2.0f, 0.0f, 5);
    struct al_token_generation g[PROMPTS], n[PROMPTS];
    generate(&f, prompts, PROMPTS, &greedy, g);
    generate(&f, prompts, PROMPTS, &narrow, n);
    for (int i = 0; i < PROMPTS; i++) {
        cr_expect(same_tokens(&g[i], &n[i]), "prompt %d", i);
        al_token_generation_free(&g[i]);
        al_token_generation_free(&n[i]);
    }
    gen_close(&f);
}

/* A stop id ends the sequence at its first occurrence, and is not part of the output. */
Test(generate_tokens, stops_at_a_stop_id)
{
    struct gen_fixture f;
    gen_open(&f, false);
    struct al_token_prompt prompts[PROMPTS];
    make_prompts(prompts);
    struct al_generate_options options = options_with(12, 0.0f, 1.0f, 0);
    struct al_token_generation free_run[PROMPTS];
    generate(&f, prompts, PROMPTS, &options, free_run);

    /* Prompt 0's fourth token becomes a stop id. */
    int32_t stop = free_run[0].ids[3];
    options.stop_ids[0] = stop;
    options.n_stop_ids = 1;
    struct al_token_generation stopped[PROMPTS];
    generate(&f, prompts, PROMPTS, &options, stopped);
    for (int i = 0; i < PROMPTS; i++) {
        int first = free_run[i].count;
        for (int t = 0; t < free_run[i].count; t++)
            if (free_run[i].ids[t] == stop) {
                first = t;
                break;
            }
        cr_expect_eq(stopped[i].count, first, "prompt %d stops before its first stop id", i);
        cr_expect_eq(memcmp(stopped[i].ids, free_run[i].ids, sizeof(int32_t) * stopped[i].count), 0);
        cr_expect_eq(stopped[i].stop, first < free_run[i].count ? AL_STOP_END_OF_TURN : AL_STOP_MAX_TOKENS);
        cr_expect_eq(stopped[i].stop_id, first < free_run[i].count ? stop : -1);
        if (i == 0)
            cr_expect_leq(stopped[0].count, 3);
        al_token_generation_free(&free_run[i]);
        al_token_generation_free(&stopped[i]);
    }
    gen_close(&f);
}

/* Decoded together or one at a time, each prompt gets the same tokens: greedy, and
 * sampled (each prompt draws from its own stream). */
Test(generate_tokens, a_batch_gives_what_each_prompt_gets_alone)
{
    struct gen_fixture f;
    gen_open(&f, true);
    struct al_token_prompt prompts[PROMPTS];
    make_prompts(prompts);
    struct al_generate_options settings[2] = {options_with(9, 0.0f, 1.0f, 0), options_with(9, 1.0f, 0.9f, 31)};
    for (int k = 0; k < 2; k++) {
        /* A stop id that one prompt meets early, so the batch shrinks while the others go on. */
        struct al_token_generation together[PROMPTS], alone;
        generate(&f, prompts, PROMPTS, &settings[k], together);
        settings[k].stop_ids[0] = together[1].ids[2];
        settings[k].n_stop_ids = 1;
        for (int i = 0; i < PROMPTS; i++)
            al_token_generation_free(&together[i]);
        generate(&f, prompts, PROMPTS, &settings[k], together);
        cr_expect_eq(together[1].stop, AL_STOP_END_OF_TURN);
        for (int i = 0; i < PROMPTS; i++) {
            generate(&f, &prompts[i], 1, &settings[k], &alone);
            cr_expect(same_tokens(&together[i], &alone), "setting %d, prompt %d", k, i);
            al_token_generation_free(&alone);
            al_token_generation_free(&together[i]);
        }
    }
    gen_close(&f);
}

Test(generate_tokens, bad_requests_are_errors)
{
    struct gen_fixture f;
    gen_open(&f, false);
    struct al_token_generation out[2];
    const int32_t outside[2] = {1, VOCAB};
    struct al_token_prompt empty = {prompt0, 0, 0}, bad_id = {outside, 2, 0};
    struct al_generate_options options = options_with(4, 0.0f, 1.0f, 0);
    cr_expect_neq(al_generate_tokens(f.model, NULL, &empty, 1, &options, out), 0);
    cr_expect(strstr(al_error_message(), "prompt 0 is empty"), "%s", al_error_message());
    cr_expect_neq(al_generate_tokens(f.model, NULL, &bad_id, 1, &options, out), 0);
    cr_expect(strstr(al_error_message(), "outside the vocabulary"), "%s", al_error_message());
    options.max_new_tokens = 0;
    cr_expect_neq(al_generate_tokens(f.model, NULL, &bad_id, 1, &options, out), 0);
    gen_close(&f);
}

/* Prompt and completion never outgrow max_position_embeddings. */
Test(generate_tokens, stops_when_the_context_is_full)
{
    struct gen_fixture f;
    gen_open_with_context(&f, false, 12);
    struct al_token_prompt prompts[PROMPTS];
    make_prompts(prompts);
    struct al_generate_options options = options_with(8, 0.0f, 1.0f, 0);
    struct al_token_generation out[PROMPTS];
    generate(&f, prompts, PROMPTS, &options, out);
    cr_expect_eq(out[0].count, 6, "6 prompt tokens leave room for 6");
    cr_expect_eq(out[0].stop, AL_STOP_CONTEXT_FULL);
    cr_expect_eq(out[1].count, 8, "2 prompt tokens leave room for all 8");
    cr_expect_eq(out[1].stop, AL_STOP_MAX_TOKENS);
    cr_expect_eq(out[2].count, 2);
    cr_expect_eq(out[2].stop, AL_STOP_CONTEXT_FULL);
    for (int i = 0; i < PROMPTS; i++)
        al_token_generation_free(&out[i]);

    const int32_t full[12] = {0};
    struct al_token_prompt too_long = {full, 12, 0};
    cr_expect_neq(al_generate_tokens(f.model, NULL, &too_long, 1, &options, out), 0);
    cr_expect(strstr(al_error_message(), "max_position_embeddings"), "%s", al_error_message());
    gen_close(&f);
}

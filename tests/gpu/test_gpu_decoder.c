/* The model's decoder (src/model/decode.c) on the CUDA backend against the CPU: the same
 * tiny random model loaded on both, a batched prefill of three prompts of different
 * lengths, then greedy decode steps, one token per sequence. Both decoders are fed the
 * same tokens (the CPU's greedy choices), so a disagreement cannot snowball: every row
 * of logits is compared on its own, and the GPU's greedy token must equal the CPU's
 * wherever the CPU's choice is clear.
 *
 * The op-level comparisons of kv_cache_write and decode_attention are in
 * test_gpu_ops.c; this checks the ops as the decoder drives them (device seq and
 * positions, caches of every layer, prefill then single steps). Skips without a GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/generate.h"
#include "agentlora/model.h"
#include "agentlora/random_model.h"
#include "backend/backend.h"
#include "test_support.h"

#define DECODER_SEQUENCES 3
#define DECODER_VOCAB 256
#define DECODER_MAX_LEN 32
#define DECODER_STEPS 8
/* Weights of std 0.2 (instead of Hugging Face's 0.02) give logits spread over a few
 * units, so greedy choices are mostly clear-cut. */
#define DECODER_INIT_STD 0.2f
/* The GPU rounds every activation to bf16 (2^-9 relative) through two blocks, the
 * lm_head and the attention; the CPU keeps F32. Relative to the row's largest logit. */
#define DECODER_LOGIT_TOLERANCE 5e-2
/* A greedy choice counts as clear when the CPU's best logit beats the runner-up by more
 * than twice the worst logit error the tolerance allows. */
#define DECODER_CLEAR_MARGIN_FACTOR (2.0 * DECODER_LOGIT_TOLERANCE)

static const int prompt_length[DECODER_SEQUENCES] = {7, 12, 1};

struct decoder_side {
    struct al_backend *backend;
    struct al_model *model;
    struct al_decoder *decoder;
};

static void open_side(struct decoder_side *side, struct al_backend *backend, const char *dir)
{
    side->backend = backend;
    side->model = al_model_load(dir, backend);
    cr_assert(side->model != NULL, "%s model: %s", backend->name, al_error_message());
    side->decoder = al_decoder_create(side->model, NULL, DECODER_SEQUENCES, DECODER_MAX_LEN, 0);
    cr_assert(side->decoder != NULL, "%s decoder: %s", backend->name, al_error_message());
}

static void close_side(struct decoder_side *side)
{
    al_decoder_free(side->decoder);
    al_model_free(side->model);
    al_backend_destroy(side->backend);
}

/* The most likely token (the lowest id among equals) and its margin over the next best. */
static int32_t greedy(const float *row, int vocab, double *margin)
{
    int32_t best = 0;
    for (int t = 1; t < vocab; t++)
        if (row[t] > row[best])
            best = t;
    double second = -INFINITY;
    for (int t = 0; t < vocab; t++)
        if (t != best && row[t] > second)
            second = row[t];
    *margin = row[best] - second;
    return best;
}

static double max_abs(const float *row, int vocab)
{
    double m = 0.0;
    for (int t = 0; t < vocab; t++)
        m = fmax(m, fabs(row[t]));
    return m;
}

/* Compares one step's rows; returns how many greedy choices were clear enough to check. */
static int compare_rows(const float *gpu, const float *cpu, int rows, const char *what, int step)
{
    int checked = 0;
    for (int r = 0; r < rows; r++) {
        const float *g = gpu + (size_t)r * DECODER_VOCAB, *c = cpu + (size_t)r * DECODER_VOCAB;
        double scale = max_abs(c, DECODER_VOCAB);
        for (int t = 0; t < DECODER_VOCAB; t++)
            cr_assert(isfinite(g[t]), "%s step %d row %d: GPU logit %d is %g", what, step, r, t, g[t]);
        double error = test_max_rel_error(g, c, DECODER_VOCAB, 1e-3);
        cr_assert(error < DECODER_LOGIT_TOLERANCE, "%s step %d row %d: relative error %.3g, tolerance %.2g", what,
                  step, r, error, DECODER_LOGIT_TOLERANCE);
        double margin, unused;
        int32_t want = greedy(c, DECODER_VOCAB, &margin);
        if (margin <= DECODER_CLEAR_MARGIN_FACTOR * scale)
            continue;
        cr_assert_eq(greedy(g, DECODER_VOCAB, &unused), want, "%s step %d row %d: GPU and CPU choose differently",
                     what, step, r);
        checked++;
    }
    return checked;
}

Test(gpu_decoder, greedy_decoding_matches_the_cpu)
{
    struct al_backend *gpu = al_backend_cuda_create(0);
    if (!gpu)
        cr_skip_test("no CUDA device to test on: %s", al_error_message());
    struct al_backend *cpu = al_backend_cpu_create();
    cr_assert(cpu != NULL, "%s", al_error_message());

    struct al_model_config config;
    cr_assert(al_model_preset("tiny", &config) == 0, "%s", al_error_message());
    config.vocab_size = DECODER_VOCAB;
    char *dir = test_tmpdir();
    /* bf16 weights: the CPU widens them exactly, so both sides hold the same model. */
    cr_assert(al_random_model_write_std(&config, AL_DTYPE_BF16, 17, DECODER_INIT_STD, dir, 0) == 0, "%s",
              al_error_message());
    struct decoder_side sides[2];
    open_side(&sides[0], cpu, dir);
    open_side(&sides[1], gpu, dir);

    /* The prefill: every prompt in one step, interleaved, logits for each prompt's last token. */
    int32_t seq[32], ids[32];
    bool want[32];
    int n = 0;
    for (int t = 0; t < DECODER_MAX_LEN; t++)
        for (int s = 0; s < DECODER_SEQUENCES; s++)
            if (t < prompt_length[s]) {
                seq[n] = s;
                ids[n] = (int32_t)((s * 37 + t * 11 + 5) % DECODER_VOCAB);
                want[n++] = t + 1 == prompt_length[s];
            }
    float *logits[2];
    for (int k = 0; k < 2; k++) {
        logits[k] = malloc(sizeof(float) * DECODER_SEQUENCES * DECODER_VOCAB);
        cr_assert(logits[k] != NULL);
        cr_assert(al_decoder_step(sides[k].decoder, seq, ids, n, want, logits[k]) == 0, "%s prefill: %s",
                  sides[k].backend->name, al_error_message());
    }
    /* Rows come in token order: row r is the sequence whose prompt ended r-th (here 2, 0,
     * 1). Decode steps keep that order, so row r of every step stays that sequence's. */
    int32_t row_sequence[DECODER_SEQUENCES];
    for (int i = 0, rows = 0; i < n; i++)
        if (want[i])
            row_sequence[rows++] = seq[i];
    int checked = compare_rows(logits[1], logits[0], DECODER_SEQUENCES, "prefill", 0);

    for (int step = 1; step <= DECODER_STEPS; step++) {
        for (int r = 0; r < DECODER_SEQUENCES; r++) {
            double unused;
            seq[r] = row_sequence[r];
            ids[r] = greedy(logits[0] + (size_t)r * DECODER_VOCAB, DECODER_VOCAB, &unused);
        }
        for (int k = 0; k < 2; k++)
            cr_assert(al_decoder_step(sides[k].decoder, seq, ids, DECODER_SEQUENCES, NULL, logits[k]) == 0,
                      "%s step %d: %s", sides[k].backend->name, step, al_error_message());
        checked += compare_rows(logits[1], logits[0], DECODER_SEQUENCES, "decode", step);
    }
    /* Most choices of a model with logits this spread are clear; if none were, the test
     * checked nothing about greedy decoding. */
    cr_assert(checked >= (DECODER_STEPS + 1) * DECODER_SEQUENCES / 2, "only %d greedy choices were clear enough",
              checked);
    for (int s = 0; s < DECODER_SEQUENCES; s++)
        cr_assert_eq(al_decoder_length(sides[1].decoder, s), prompt_length[s] + DECODER_STEPS);

    free(logits[0]);
    free(logits[1]);
    close_side(&sides[1]);
    close_side(&sides[0]);
    free(dir);
}

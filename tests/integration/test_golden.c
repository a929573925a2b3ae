/* The engine against Hugging Face transformers + PEFT (fixtures from
 * tests/golden/make_golden.py): logits with and without the adapter, the loss, and the
 * gradient of every LoRA parameter. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/safetensors.h"
#include "backend/backend.h"
#include "test_support.h"

/* Tolerances required by the foundation issue: fp32 everywhere, so differences come only
 * from summation order. */
#define LOGITS_MAX_REL_ERROR 1e-4
#define LOSS_MAX_ABS_ERROR 1e-5
#define GRAD_MAX_REL_ERROR 1e-3

struct golden {
    struct al_backend *backend;
    struct al_model *model;
    struct al_lora *lora;
    struct al_safetensors *expected;
    int batch_size, padded_length, vocab;
    int32_t *ids, *targets, *positions, *doc_start;
    int64_t *row_of_token; /* index into the padded [batch, L] grid of each packed token */
    struct al_batch batch;
};

static const struct al_tensor_view *expect_tensor(const struct golden *g, const char *name)
{
    const struct al_tensor_view *view = al_safetensors_find(g->expected, name);
    cr_assert_not_null(view, "expected.safetensors lacks %s", name);
    return view;
}

/* The two padded sequences become two documents of one packed batch; HF's labels shifted
 * by one give each position's target. */
static void build_batch(struct golden *g)
{
    const struct al_tensor_view *ids = expect_tensor(g, "input_ids");
    const struct al_tensor_view *labels = expect_tensor(g, "labels");
    const struct al_tensor_view *lengths = expect_tensor(g, "lengths");
    g->batch_size = (int)ids->shape[0];
    g->padded_length = (int)ids->shape[1];
    const int32_t *id_grid = ids->data, *label_grid = labels->data, *len = lengths->data;
    int64_t n = 0;
    for (int s = 0; s < g->batch_size; s++)
        n += len[s];
    g->ids = malloc((size_t)n * sizeof(int32_t));
    g->targets = malloc((size_t)n * sizeof(int32_t));
    g->positions = malloc((size_t)n * sizeof(int32_t));
    g->doc_start = malloc((size_t)n * sizeof(int32_t));
    g->row_of_token = malloc((size_t)n * sizeof(int64_t));
    int64_t i = 0;
    for (int s = 0; s < g->batch_size; s++) {
        int64_t start = i;
        for (int t = 0; t < len[s]; t++, i++) {
            int64_t cell = (int64_t)s * g->padded_length + t;
            g->ids[i] = id_grid[cell];
            int32_t next_label = t + 1 < len[s] ? label_grid[cell + 1] : -100;
            g->targets[i] = next_label < 0 ? -1 : next_label;
            g->positions[i] = t;
            g->doc_start[i] = (int32_t)start;
            g->row_of_token[i] = cell;
        }
    }
    g->batch = (struct al_batch){n, g->ids, g->targets, g->positions, g->doc_start};
}

static void golden_open(struct golden *g, const char *name)
{
    memset(g, 0, sizeof *g);
    char path[512];
    g->backend = al_backend_cpu_create();
    cr_assert_not_null(g->backend, "%s", al_error_message());
    snprintf(path, sizeof path, "tests/golden/%s/model", name);
    g->model = al_model_load(path, g->backend);
    cr_assert_not_null(g->model, "%s", al_error_message());
    snprintf(path, sizeof path, "tests/golden/%s/adapter", name);
    g->lora = al_lora_load_peft(al_model_get_config(g->model), g->backend, path);
    cr_assert_not_null(g->lora, "%s", al_error_message());
    snprintf(path, sizeof path, "tests/golden/%s/expected.safetensors", name);
    g->expected = al_safetensors_open(path);
    cr_assert_not_null(g->expected, "%s", al_error_message());
    g->vocab = al_model_get_config(g->model)->vocab_size;
    build_batch(g);
}

static void golden_close(struct golden *g)
{
    free(g->ids);
    free(g->targets);
    free(g->positions);
    free(g->doc_start);
    free(g->row_of_token);
    al_safetensors_close(g->expected);
    al_lora_free(g->lora);
    al_model_free(g->model);
    al_backend_destroy(g->backend);
}

/* Compares the packed logits with the reference grid row by row. */
static void check_logits(struct golden *g, const struct al_lora *lora, const char *key)
{
    int64_t n = g->batch.num_tokens;
    struct al_workspace *ws = al_workspace_create(g->model, lora, n, false);
    cr_assert_not_null(ws, "%s", al_error_message());
    float *logits = malloc((size_t)(n * g->vocab) * sizeof(float));
    cr_assert_eq(al_model_logits(g->model, lora, ws, &g->batch, logits), 0, "%s", al_error_message());
    const float *reference = expect_tensor(g, key)->data;
    float *gathered = malloc((size_t)(n * g->vocab) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        memcpy(gathered + i * g->vocab, reference + g->row_of_token[i] * g->vocab, (size_t)g->vocab * sizeof(float));
    double error = test_max_rel_error(logits, gathered, n * g->vocab, 1e-6);
    cr_assert_lt(error, LOGITS_MAX_REL_ERROR, "%s: max relative error %g", key, error);
    free(gathered);
    free(logits);
    al_workspace_free(ws);
}

static void check_loss_and_gradients(struct golden *g)
{
    int64_t n = g->batch.num_tokens;
    struct al_workspace *ws = al_workspace_create(g->model, g->lora, n, false);
    cr_assert_not_null(ws, "%s", al_error_message());
    int64_t targets = al_batch_count_targets(&g->batch);
    double loss_sum = 0;
    cr_assert_eq(al_lora_zero_grads(g->lora), 0);
    cr_assert_eq(al_model_forward_backward(g->model, g->lora, ws, &g->batch, 1.0f / (float)targets, 0, &loss_sum), 0,
                 "%s", al_error_message());
    float expected_loss = *(const float *)expect_tensor(g, "loss")->data;
    double loss = loss_sum / (double)targets;
    cr_assert_lt(fabs(loss - expected_loss), LOSS_MAX_ABS_ERROR, "loss %.8f, transformers %.8f", loss,
                 expected_loss);

    float *grads = malloc((size_t)g->lora->num_params * sizeof(float));
    cr_assert_eq(al_lora_download_grads(g->lora, grads), 0);
    int compared = 0;
    for (int layer = 0; layer < g->lora->num_layers; layer++) {
        for (int t = 0; t < AL_LORA_TARGET_COUNT; t++) {
            const struct al_lora_slot *slot = &g->lora->slots[layer][t];
            cr_assert(slot->present, "the golden adapter targets all seven modules");
            for (int is_b = 0; is_b < 2; is_b++) {
                char key[200] = "grad.";
                al_lora_key(key + 5, (int)sizeof key - 5, layer, (enum al_lora_target)t, is_b);
                const struct al_tensor_view *ref = expect_tensor(g, key);
                const float *mine = grads + (is_b ? slot->b_offset : slot->a_offset);
                double error = test_max_rel_error(mine, ref->data, ref->count, 1e-12);
                cr_assert_lt(error, GRAD_MAX_REL_ERROR, "%s: max relative error %g", key, error);
                compared++;
            }
        }
    }
    cr_assert_eq(compared, 2 * AL_LORA_TARGET_COUNT * g->lora->num_layers);
    free(grads);
    al_workspace_free(ws);
}

#define GOLDEN_CASE(name)                                                                                         \
    Test(golden_##name, logits_with_adapter)                                                                       \
    {                                                                                                              \
        struct golden g;                                                                                           \
        golden_open(&g, #name);                                                                                    \
        check_logits(&g, g.lora, "logits");                                                                        \
        golden_close(&g);                                                                                          \
    }                                                                                                              \
    Test(golden_##name, logits_of_base_model)                                                                      \
    {                                                                                                              \
        struct golden g;                                                                                           \
        golden_open(&g, #name);                                                                                    \
        check_logits(&g, NULL, "base_logits");                                                                     \
        golden_close(&g);                                                                                          \
    }                                                                                                              \
    Test(golden_##name, loss_and_lora_gradients)                                                                   \
    {                                                                                                              \
        struct golden g;                                                                                           \
        golden_open(&g, #name);                                                                                    \
        check_loss_and_gradients(&g);                                                                              \
        golden_close(&g);                                                                                          \
    }

GOLDEN_CASE(llama_tiny)
GOLDEN_CASE(qwen2_tiny)
/* Sliding windows shorter than the sequence (all layers; mixed by max_window_layers), and
 * Qwen3 (q/k norms, GQA, head_dim override, explicit layer_types). */
GOLDEN_CASE(mistral_window_tiny)
GOLDEN_CASE(qwen2_window_tiny)
GOLDEN_CASE(qwen3_tiny)

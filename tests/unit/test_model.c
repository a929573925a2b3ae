/* The whole model on the CPU: LoRA gradients against finite differences, the base model
 * path when B = 0, merging, gradient checkpointing, accumulation, batch validation. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/rng.h"
#include "agentlora/safetensors.h"
#include "backend/backend.h"
#include "model_testing.h"
#include "test_support.h"
#include "tiny_model.h"

/* Directional central differences in fp32: for each A and B tensor, the loss is moved
 * along a random +-1 direction over all its entries, which makes the change large
 * against the loss's rounding noise (about 5e-7 on a loss near 4). */
#define FD_STEP 1e-3f
#define FD_ABS_TOLERANCE 2e-3
#define FD_REL_TOLERANCE 1e-2

struct fixture {
    char *dir;
    struct al_backend *backend;
    struct al_model *model;
    struct al_lora *lora;
    struct test_batch tb;
    int64_t num_targets;
};

static struct tiny_model_spec small_spec(enum al_arch arch, bool tied)
{
    struct tiny_model_spec spec = tiny_model_default_spec();
    spec.arch = arch;
    spec.hidden_size = 32;
    spec.intermediate_size = 48;
    spec.num_heads = 4;
    spec.num_kv_heads = 2;
    spec.vocab_size = 64;
    spec.tied = tied;
    spec.rope_llama3 = arch == AL_ARCH_LLAMA;
    return spec;
}

static void fixture_open(struct fixture *f, struct tiny_model_spec spec, const struct al_lora_config *lc)
{
    memset(f, 0, sizeof *f);
    f->dir = test_tmpdir();
    cr_assert_eq(tiny_model_write(&spec, f->dir), 0, "%s", al_error_message());
    f->backend = al_backend_cpu_create();
    f->model = al_model_load(f->dir, f->backend);
    cr_assert_not_null(f->model, "%s", al_error_message());
    f->lora = al_lora_create(al_model_get_config(f->model), f->backend, lc, 42);
    cr_assert_not_null(f->lora, "%s", al_error_message());
    cr_assert_eq(test_lora_randomize(f->lora, 9, 0.2f), 0);
    static const int lengths[] = {7, 5, 9};
    test_batch_make(&f->tb, lengths, 3, spec.vocab_size, 5, 4);
    f->num_targets = al_batch_count_targets(&f->tb.batch);
}

static void fixture_close(struct fixture *f)
{
    test_batch_free(&f->tb);
    al_lora_free(f->lora);
    al_model_free(f->model);
    al_backend_destroy(f->backend);
    free(f->dir);
}

static struct al_lora_config all_targets(float dropout, bool rslora)
{
    return (struct al_lora_config){.rank = 3, .alpha = 6, .dropout = dropout, .use_rslora = rslora,
                                   .target_mask = AL_LORA_ALL_TARGETS};
}

/* Mean loss over targets, computed the way training does (dropout seed fixed). */
static double mean_loss(struct fixture *f, struct al_workspace *ws, uint64_t seed)
{
    double loss_sum = 0;
    int rc = f->lora->config.dropout > 0
                 ? al_model_forward_backward(f->model, f->lora, ws, &f->tb.batch, 0.0f, seed, &loss_sum)
                 : al_model_loss(f->model, f->lora, ws, &f->tb.batch, &loss_sum);
    cr_assert_eq(rc, 0, "%s", al_error_message());
    return loss_sum / (double)f->num_targets;
}

static float *analytic_gradients(struct fixture *f, struct al_workspace *ws, uint64_t seed)
{
    double loss_sum;
    cr_assert_eq(al_lora_zero_grads(f->lora), 0);
    cr_assert_eq(al_model_forward_backward(f->model, f->lora, ws, &f->tb.batch, 1.0f / (float)f->num_targets, seed,
                                           &loss_sum),
                 0, "%s", al_error_message());
    float *grads = malloc((size_t)f->lora->num_params * sizeof(float));
    cr_assert_eq(al_lora_download_grads(f->lora, grads), 0);
    return grads;
}

/* Moves the tensor [base, base + count) of params by step * direction and uploads. */
static void nudge(struct fixture *f, float *params, const float *saved, const float *direction, int64_t base,
                  int64_t count, float step)
{
    for (int64_t i = 0; i < count; i++)
        params[base + i] = saved[base + i] + step * direction[i];
    cr_assert_eq(al_lora_upload_params(f->lora, params), 0);
}

/* Checks the directional derivative of the loss along a random direction, for every A
 * and every B, against the analytic gradient. */
static void check_finite_differences(struct fixture *f, uint64_t seed)
{
    struct al_workspace *ws = al_workspace_create(f->model, f->lora, f->tb.batch.num_tokens, false);
    cr_assert_not_null(ws, "%s", al_error_message());
    float *grads = analytic_gradients(f, ws, seed);
    int64_t total = f->lora->num_params;
    float *params = malloc((size_t)total * sizeof(float));
    float *saved = malloc((size_t)total * sizeof(float));
    float *direction = malloc((size_t)total * sizeof(float));
    cr_assert_eq(al_lora_download_params(f->lora, saved), 0);
    memcpy(params, saved, (size_t)total * sizeof(float));
    struct al_rng rng;
    al_rng_seed(&rng, 77, 1);
    int checked = 0;
    for (int layer = 0; layer < f->lora->num_layers; layer++) {
        for (int t = 0; t < AL_LORA_TARGET_COUNT; t++) {
            const struct al_lora_slot *slot = &f->lora->slots[layer][t];
            for (int is_b = 0; is_b < 2; is_b++) {
                int64_t base = is_b ? slot->b_offset : slot->a_offset;
                int64_t count = (int64_t)f->lora->config.rank * (is_b ? slot->out : slot->in);
                double analytic = 0;
                for (int64_t i = 0; i < count; i++) {
                    direction[i] = (al_rng_u32(&rng) & 1) ? 1.0f : -1.0f;
                    analytic += (double)grads[base + i] * direction[i];
                }
                nudge(f, params, saved, direction, base, count, FD_STEP);
                double plus = mean_loss(f, ws, seed);
                nudge(f, params, saved, direction, base, count, -FD_STEP);
                double minus = mean_loss(f, ws, seed);
                nudge(f, params, saved, direction, base, count, 0.0f);
                double numeric = (plus - minus) / (2.0 * FD_STEP);
                double allowed = FD_ABS_TOLERANCE + FD_REL_TOLERANCE * fabs(numeric);
                cr_assert_leq(fabs(numeric - analytic), allowed,
                              "layer %d %s lora_%c: analytic %.6g, finite differences %.6g", layer,
                              al_lora_target_name((enum al_lora_target)t), is_b ? 'B' : 'A', analytic, numeric);
                checked++;
            }
        }
    }
    cr_assert_eq(checked, f->lora->num_layers * AL_LORA_TARGET_COUNT * 2);
    free(direction);
    free(saved);
    free(params);
    free(grads);
    al_workspace_free(ws);
}

Test(model, lora_gradients_match_finite_differences_llama)
{
    struct fixture f;
    struct al_lora_config lc = all_targets(0.0f, false);
    fixture_open(&f, small_spec(AL_ARCH_LLAMA, false), &lc);
    check_finite_differences(&f, 0);
    fixture_close(&f);
}

Test(model, lora_gradients_match_finite_differences_qwen2_tied_rslora)
{
    struct fixture f;
    struct al_lora_config lc = all_targets(0.0f, true);
    fixture_open(&f, small_spec(AL_ARCH_QWEN2, true), &lc);
    check_finite_differences(&f, 0);
    fixture_close(&f);
}

Test(model, lora_gradients_match_finite_differences_with_dropout)
{
    struct fixture f;
    struct al_lora_config lc = all_targets(0.25f, false);
    fixture_open(&f, small_spec(AL_ARCH_LLAMA, false), &lc);
    check_finite_differences(&f, 1234);
    fixture_close(&f);
}

static float *logits_of(struct fixture *f, const struct al_lora *lora)
{
    const struct al_model_config *c = al_model_get_config(f->model);
    struct al_workspace *ws = al_workspace_create(f->model, lora, f->tb.batch.num_tokens, false);
    cr_assert_not_null(ws, "%s", al_error_message());
    float *logits = malloc((size_t)(f->tb.batch.num_tokens * c->vocab_size) * sizeof(float));
    cr_assert_eq(al_model_logits(f->model, lora, ws, &f->tb.batch, logits), 0, "%s", al_error_message());
    al_workspace_free(ws);
    return logits;
}

Test(model, fresh_adapter_with_zero_b_equals_base_model)
{
    struct fixture f;
    struct al_lora_config lc = all_targets(0.0f, false);
    fixture_open(&f, small_spec(AL_ARCH_QWEN2, false), &lc);
    struct al_lora *fresh = al_lora_create(al_model_get_config(f.model), f.backend, &lc, 3);
    cr_assert_not_null(fresh);
    int64_t count = f.tb.batch.num_tokens * al_model_get_config(f.model)->vocab_size;
    float *base = logits_of(&f, NULL);
    float *adapted = logits_of(&f, fresh);
    float *random_adapter = logits_of(&f, f.lora);
    cr_assert_eq(memcmp(base, adapted, (size_t)count * sizeof(float)), 0, "B = 0 must leave the logits unchanged");
    cr_assert_gt(test_max_abs_error(random_adapter, base, count), 1e-3, "a non-zero adapter must change them");
    free(base);
    free(adapted);
    free(random_adapter);
    al_lora_free(fresh);
    fixture_close(&f);
}

Test(model, peft_init_draws_a_within_kaiming_bound_and_zero_b)
{
    struct fixture f;
    struct al_lora_config lc = all_targets(0.0f, false);
    fixture_open(&f, small_spec(AL_ARCH_LLAMA, false), &lc);
    struct al_lora *fresh = al_lora_create(al_model_get_config(f.model), f.backend, &lc, 3);
    float *params = malloc((size_t)fresh->num_params * sizeof(float));
    al_lora_download_params(fresh, params);
    const struct al_lora_slot *down = &fresh->slots[1][AL_LORA_DOWN];
    float bound = 1.0f / sqrtf((float)down->in), largest = 0;
    for (int64_t i = 0; i < (int64_t)lc.rank * down->in; i++)
        largest = fmaxf(largest, fabsf(params[down->a_offset + i]));
    cr_assert_leq(largest, bound);
    cr_assert_gt(largest, 0.8f * bound, "A should spread over the kaiming range");
    for (int64_t i = 0; i < (int64_t)down->out * lc.rank; i++)
        cr_assert_eq(params[down->b_offset + i], 0.0f);
    free(params);
    al_lora_free(fresh);
    fixture_close(&f);
}

/* Writes a copy of the model folder whose adapted weights are W + s * B A. */
static char *write_merged_model(struct fixture *f, const struct tiny_model_spec *spec)
{
    char *path = al_path_join(f->dir, "model.safetensors");
    struct al_safetensors *original = al_safetensors_open(path);
    cr_assert_not_null(original, "%s", al_error_message());
    float *params = malloc((size_t)f->lora->num_params * sizeof(float));
    al_lora_download_params(f->lora, params);
    struct al_safetensors_writer *writer = al_safetensors_writer_create();
    float scale = al_lora_scale(&f->lora->config);
    int rank = f->lora->config.rank;
    for (int i = 0; i < al_safetensors_count(original); i++) {
        const struct al_tensor_view *view = al_safetensors_tensor(original, i);
        float *values = malloc((size_t)view->count * sizeof(float));
        memcpy(values, view->data, (size_t)view->count * sizeof(float));
        for (int layer = 0; layer < f->lora->num_layers; layer++) {
            for (int t = 0; t < AL_LORA_TARGET_COUNT; t++) {
                char name[128];
                snprintf(name, sizeof name, "model.layers.%d.%s.%s.weight", layer,
                         al_lora_target_parent((enum al_lora_target)t), al_lora_target_name((enum al_lora_target)t));
                if (strcmp(name, view->name) != 0)
                    continue;
                const struct al_lora_slot *slot = &f->lora->slots[layer][t];
                const float *A = params + slot->a_offset, *B = params + slot->b_offset;
                for (int o = 0; o < slot->out; o++)
                    for (int in = 0; in < slot->in; in++) {
                        double sum = 0;
                        for (int r = 0; r < rank; r++)
                            sum += (double)B[o * rank + r] * A[r * slot->in + in];
                        values[o * slot->in + in] += scale * (float)sum;
                    }
            }
        }
        cr_assert_eq(al_safetensors_writer_add(writer, view->name, view->dtype, view->ndim, view->shape, values), 0);
        free(values);
    }
    char *merged_dir = test_tmpdir();
    char *merged_path = al_path_join(merged_dir, "model.safetensors");
    cr_assert_eq(al_safetensors_writer_write(writer, merged_path), 0, "%s", al_error_message());
    char *config = tiny_model_config_json(spec);
    free(test_write_file(merged_dir, "config.json", config, strlen(config)));
    free(config);
    free(merged_path);
    al_safetensors_writer_free(writer);
    free(params);
    al_safetensors_close(original);
    free(path);
    return merged_dir;
}

Test(model, merged_weights_give_the_adapter_logits)
{
    struct fixture f;
    struct al_lora_config lc = all_targets(0.0f, false);
    struct tiny_model_spec spec = small_spec(AL_ARCH_LLAMA, false);
    fixture_open(&f, spec, &lc);
    char *merged_dir = write_merged_model(&f, &spec);
    float *adapted = logits_of(&f, f.lora);
    struct al_model *merged = al_model_load(merged_dir, f.backend);
    cr_assert_not_null(merged, "%s", al_error_message());
    struct al_model *original = f.model;
    f.model = merged;
    float *merged_logits = logits_of(&f, NULL);
    f.model = original;
    int64_t count = f.tb.batch.num_tokens * spec.vocab_size;
    double error = test_max_rel_error(merged_logits, adapted, count, 1e-6);
    cr_assert_lt(error, 1e-5, "merged vs adapter logits: relative error %g", error);
    free(adapted);
    free(merged_logits);
    al_model_free(merged);
    free(merged_dir);
    fixture_close(&f);
}

Test(model, gradient_checkpointing_gives_identical_gradients)
{
    struct fixture f;
    struct al_lora_config lc = all_targets(0.1f, false);
    fixture_open(&f, small_spec(AL_ARCH_LLAMA, false), &lc);
    struct al_workspace *full = al_workspace_create(f.model, f.lora, f.tb.batch.num_tokens, false);
    struct al_workspace *recompute = al_workspace_create(f.model, f.lora, f.tb.batch.num_tokens, true);
    cr_assert(full && recompute, "%s", al_error_message());
    float *a = analytic_gradients(&f, full, 99);
    float *b = analytic_gradients(&f, recompute, 99);
    cr_assert_eq(memcmp(a, b, (size_t)f.lora->num_params * sizeof(float)), 0);
    free(a);
    free(b);
    al_workspace_free(full);
    al_workspace_free(recompute);
    fixture_close(&f);
}

Test(model, accumulated_micro_batches_equal_one_batch)
{
    struct fixture f;
    struct al_lora_config lc = all_targets(0.0f, false);
    fixture_open(&f, small_spec(AL_ARCH_LLAMA, false), &lc);
    struct al_workspace *ws = al_workspace_create(f.model, f.lora, f.tb.batch.num_tokens, false);
    float *whole = analytic_gradients(&f, ws, 0);
    /* Documents 0 and 1 (12 tokens) then document 2 (9 tokens), each a micro-batch. */
    const struct al_batch *b = &f.tb.batch;
    int32_t shifted_start[9];
    for (int i = 0; i < 9; i++)
        shifted_start[i] = 0;
    struct al_batch first = {12, b->input_ids, b->targets, b->positions, b->doc_start};
    struct al_batch second = {9, b->input_ids + 12, b->targets + 12, b->positions + 12, shifted_start};
    float scale = 1.0f / (float)f.num_targets;
    double loss_a, loss_b, loss_whole;
    al_lora_zero_grads(f.lora);
    cr_assert_eq(al_model_forward_backward(f.model, f.lora, ws, &first, scale, 0, &loss_a), 0, "%s",
                 al_error_message());
    cr_assert_eq(al_model_forward_backward(f.model, f.lora, ws, &second, scale, 0, &loss_b), 0, "%s",
                 al_error_message());
    cr_assert_eq(al_model_loss(f.model, f.lora, ws, b, &loss_whole), 0);
    float *accumulated = malloc((size_t)f.lora->num_params * sizeof(float));
    al_lora_download_grads(f.lora, accumulated);
    double error = test_max_rel_error(accumulated, whole, f.lora->num_params, 1e-12);
    cr_assert_lt(error, 1e-5, "accumulated vs whole-batch gradients: %g", error);
    cr_assert_lt(fabs(loss_a + loss_b - loss_whole), 1e-4 * fabs(loss_whole));
    free(whole);
    free(accumulated);
    al_workspace_free(ws);
    fixture_close(&f);
}

Test(model, bad_batches_are_rejected_with_the_token_named)
{
    struct fixture f;
    struct al_lora_config lc = all_targets(0.0f, false);
    fixture_open(&f, small_spec(AL_ARCH_LLAMA, false), &lc);
    struct al_workspace *ws = al_workspace_create(f.model, f.lora, f.tb.batch.num_tokens, false);
    double loss;
    f.tb.ids[3] = 64; /* vocab is 64 */
    cr_assert_eq(al_model_loss(f.model, f.lora, ws, &f.tb.batch, &loss), -1);
    cr_assert(strstr(al_error_message(), "token 3"), "%s", al_error_message());
    f.tb.ids[3] = 1;
    f.tb.doc_start[4] = 2; /* neither itself nor its predecessor's document start */
    cr_assert_eq(al_model_loss(f.model, f.lora, ws, &f.tb.batch, &loss), -1);
    cr_assert(strstr(al_error_message(), "document start"), "%s", al_error_message());
    al_workspace_free(ws);
    struct al_workspace *small = al_workspace_create(f.model, f.lora, 4, false);
    f.tb.doc_start[4] = 0;
    cr_assert_eq(al_model_loss(f.model, f.lora, small, &f.tb.batch, &loss), -1);
    cr_assert(strstr(al_error_message(), "exceeds"), "%s", al_error_message());
    al_workspace_free(small);
    fixture_close(&f);
}

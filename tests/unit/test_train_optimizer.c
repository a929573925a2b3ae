/* The optimizer step: global norm, clipping, the non-finite guard and AdamW, checked
 * against a plain host implementation of torch.optim.AdamW + clip_grad_norm_. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/lora.h"
#include "agentlora/optimizer.h"
#include "backend/backend.h"
#include "test_support.h"

/* The backend sums squares in double and runs AdamW in float like the reference below. */
#define OPTIMIZER_REL_TOLERANCE 1e-5

struct fixture {
    struct al_backend *backend;
    struct al_lora *lora;
    struct al_optimizer *optimizer;
    int64_t n;
};

static struct al_model_config tiny_model(void)
{
    struct al_model_config config = {0};
    config.hidden_size = 8;
    config.intermediate_size = 12;
    config.num_hidden_layers = 2;
    config.num_attention_heads = 2;
    config.num_key_value_heads = 1;
    config.head_dim = 4;
    config.vocab_size = 16;
    return config;
}

static struct fixture setup(float max_grad_norm)
{
    struct fixture f = {0};
    struct al_model_config model = tiny_model();
    f.backend = al_backend_cpu_create();
    cr_assert_not_null(f.backend, "%s", al_error_message());
    struct al_lora_config config = {.rank = 2, .alpha = 4.0f, .target_mask = AL_LORA_ALL_TARGETS};
    f.lora = al_lora_create(&model, f.backend, &config, 7);
    cr_assert_not_null(f.lora, "%s", al_error_message());
    f.n = f.lora->num_params;
    struct al_adamw_config adamw = al_adamw_defaults();
    adamw.weight_decay = 0.01f;
    adamw.max_grad_norm = max_grad_norm;
    f.optimizer = al_optimizer_create(f.backend, f.n, &adamw);
    cr_assert_not_null(f.optimizer, "%s", al_error_message());
    return f;
}

static void teardown(struct fixture *f)
{
    al_optimizer_free(f->optimizer);
    al_lora_free(f->lora);
    al_backend_destroy(f->backend);
}

static void set_grads(struct fixture *f, const float *host)
{
    cr_assert_eq(f->backend->ops->copy_to_backend(f->backend, f->lora->grads, host, (size_t)f->n * sizeof(float)), 0);
}

/* torch.optim.AdamW (single tensor) after clip_grad_norm_, on the host. */
static void reference_step(float *param, const float *grad, float *m, float *v, int64_t n, float lr,
                           const struct al_adamw_config *c, int64_t t)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)grad[i] * grad[i];
    float norm = (float)sqrt(sum);
    float scale = c->max_grad_norm > 0 ? fminf(1.0f, c->max_grad_norm / (norm + 1e-6f)) : 1.0f;
    double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] * scale;
        param[i] *= 1.0f - lr * c->weight_decay;
        m[i] = c->beta1 * m[i] + (1 - c->beta1) * g;
        v[i] = c->beta2 * v[i] + (1 - c->beta2) * g * g;
        param[i] -= (float)(lr / bc1) * (m[i] / (sqrtf(v[i]) / (float)sqrt(bc2) + c->eps));
    }
}

Test(train_optimizer, steps_match_reference_adamw_with_clipping)
{
    struct fixture f = setup(1.0f);
    float *params = malloc((size_t)f.n * sizeof(float)), *grads = malloc((size_t)f.n * sizeof(float));
    float *m = calloc((size_t)f.n, sizeof(float)), *v = calloc((size_t)f.n, sizeof(float));
    float *got = malloc((size_t)f.n * sizeof(float));
    cr_assert_eq(al_lora_download_params(f.lora, params), 0);
    for (int step = 1; step <= 3; step++) {
        /* Large gradients on step 1 (clipped), small ones after (not clipped). */
        test_fill_random(grads, f.n, 100 + step, step == 1 ? 5.0f : 0.01f);
        set_grads(&f, grads);
        struct al_step_report report;
        cr_assert_eq(al_optimizer_step(f.optimizer, f.lora, 1e-2f, &report), 0, "%s", al_error_message());
        cr_assert(!report.skipped);
        if (step == 1)
            cr_assert(report.clip_scale < 1.0f && report.grad_norm > 1.0, "step 1 must clip (norm %g)", report.grad_norm);
        else
            cr_assert_eq(report.clip_scale, 1.0f);
        reference_step(params, grads, m, v, f.n, 1e-2f, &f.optimizer->config, step);
    }
    cr_assert_eq(f.optimizer->updates, 3);
    cr_assert_eq(al_lora_download_params(f.lora, got), 0);
    cr_assert_lt(test_max_rel_error(got, params, f.n, 1e-3), OPTIMIZER_REL_TOLERANCE);
    float *gm = malloc((size_t)f.n * sizeof(float)), *gv = malloc((size_t)f.n * sizeof(float));
    cr_assert_eq(al_optimizer_download_state(f.optimizer, gm, gv), 0);
    cr_assert_lt(test_max_rel_error(gm, m, f.n, 1e-6), OPTIMIZER_REL_TOLERANCE);
    cr_assert_lt(test_max_rel_error(gv, v, f.n, 1e-9), OPTIMIZER_REL_TOLERANCE);
    free(params), free(grads), free(m), free(v), free(got), free(gm), free(gv);
    teardown(&f);
}

Test(train_optimizer, grad_norm_and_clip_scale_follow_pytorch)
{
    struct fixture f = setup(1.0f);
    float *grads = calloc((size_t)f.n, sizeof(float));
    grads[0] = 6.0f;
    grads[f.n - 1] = 8.0f; /* norm 10 */
    set_grads(&f, grads);
    struct al_step_report report;
    cr_assert_eq(al_optimizer_step(f.optimizer, f.lora, 1e-3f, &report), 0);
    cr_assert_float_eq(report.grad_norm, 10.0, 1e-6);
    cr_assert_float_eq(report.clip_scale, 1.0f / (10.0f + 1e-6f), 1e-7);
    free(grads);
    teardown(&f);
}

Test(train_optimizer, clipping_disabled_by_non_positive_max_norm)
{
    struct fixture f = setup(0.0f);
    float *grads = calloc((size_t)f.n, sizeof(float));
    grads[3] = 100.0f;
    set_grads(&f, grads);
    struct al_step_report report;
    cr_assert_eq(al_optimizer_step(f.optimizer, f.lora, 1e-3f, &report), 0);
    cr_assert_eq(report.clip_scale, 1.0f);
    free(grads);
    teardown(&f);
}

Test(train_optimizer, non_finite_gradients_skip_the_step_and_count)
{
    struct fixture f = setup(1.0f);
    float *before = malloc((size_t)f.n * sizeof(float)), *after = malloc((size_t)f.n * sizeof(float));
    float *grads = malloc((size_t)f.n * sizeof(float));
    cr_assert_eq(al_lora_download_params(f.lora, before), 0);
    test_fill_random(grads, f.n, 3, 1.0f);
    float poison[] = {NAN, INFINITY};
    struct al_step_report report;
    for (int i = 0; i < 2; i++) {
        grads[5] = poison[i];
        set_grads(&f, grads);
        cr_assert_eq(al_optimizer_step(f.optimizer, f.lora, 1e-2f, &report), 0);
        cr_assert(report.skipped);
        cr_assert(!isfinite(report.grad_norm));
        cr_assert_eq(report.consecutive_nonfinite, i + 1);
    }
    cr_assert_eq(al_lora_download_params(f.lora, after), 0);
    cr_assert_eq(memcmp(before, after, (size_t)f.n * sizeof(float)), 0, "a skipped step must not touch parameters");
    cr_assert_eq(f.optimizer->updates, 0);
    cr_assert_eq(f.optimizer->nonfinite_total, 2);

    grads[5] = 0.5f;
    set_grads(&f, grads);
    cr_assert_eq(al_optimizer_step(f.optimizer, f.lora, 1e-2f, &report), 0);
    cr_assert(!report.skipped);
    cr_assert_eq(f.optimizer->nonfinite_consecutive, 0, "a good step resets the run of bad ones");
    cr_assert_eq(f.optimizer->nonfinite_total, 2);
    cr_assert_eq(f.optimizer->updates, 1);
    free(before), free(after), free(grads);
    teardown(&f);
}

Test(train_optimizer, state_round_trips_through_host)
{
    struct fixture f = setup(1.0f);
    float *m = malloc((size_t)f.n * sizeof(float)), *v = malloc((size_t)f.n * sizeof(float));
    float *m2 = malloc((size_t)f.n * sizeof(float)), *v2 = malloc((size_t)f.n * sizeof(float));
    test_fill_random(m, f.n, 11, 1.0f);
    test_fill_random(v, f.n, 12, 1.0f);
    for (int64_t i = 0; i < f.n; i++)
        v[i] = fabsf(v[i]);
    cr_assert_eq(al_optimizer_upload_state(f.optimizer, m, v, 42, 3, 1), 0);
    cr_assert_eq(al_optimizer_download_state(f.optimizer, m2, v2), 0);
    cr_assert_eq(memcmp(m, m2, (size_t)f.n * sizeof(float)), 0);
    cr_assert_eq(memcmp(v, v2, (size_t)f.n * sizeof(float)), 0);
    cr_assert_eq(f.optimizer->updates, 42);
    cr_assert_eq(f.optimizer->nonfinite_total, 3);
    cr_assert_eq(f.optimizer->nonfinite_consecutive, 1);
    free(m), free(v), free(m2), free(v2);
    teardown(&f);
}

Test(train_optimizer, mismatched_sizes_are_refused)
{
    struct fixture f = setup(1.0f);
    struct al_adamw_config adamw = al_adamw_defaults();
    struct al_optimizer *other = al_optimizer_create(f.backend, f.n + 1, &adamw);
    cr_assert_not_null(other);
    cr_assert_eq(al_optimizer_step(other, f.lora, 1e-3f, NULL), -1);
    cr_assert(strstr(al_error_message(), "parameters") != NULL);
    al_optimizer_free(other);
    adamw.beta1 = 1.0f;
    cr_assert_null(al_optimizer_create(f.backend, 10, &adamw));
    teardown(&f);
}
